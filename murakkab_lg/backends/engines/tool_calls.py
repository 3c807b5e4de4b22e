"""Tool calls for engines that cannot parse them: a JSON schema in, OpenAI `tool_calls` out.

The embedded models (Qwen2.5-Coder 0.5B/1.5B, SmolLM2-135M) served by the bundled llama-server
answer a request that carries `tools` with the call written as JSON text (sometimes inside a
```json fence), so `tool_calls` stays empty and an agent never runs its tool, with `tool_choice`
`auto` and `required` alike (the build parses these templates as plain content). What works is
what engines without native tool parsing are usually served with: constrain the output with a
JSON schema built from the request's tools and map the result back.

- `constrain(body)` returns the request to send (tools described, output constrained by a JSON
  schema of `{"name": <tool>, "arguments": <its parameters>}` per tool, plus `{"content": str}`
  (or the request's own `response_format` schema) when `tool_choice` is `auto`) and what is
  needed to read the answer; None when the body has no tools to constrain.
- `ConstrainedTools.response` / `.stream` / `.astream` turn the engine's answer back into an
  OpenAI message with `tool_calls` (streamed as one `delta.tool_calls` once the JSON is complete:
  the call is only known when its object closes).

The tools are described in the system message and the tool turns of the history flattened into
text, for every template alike. Measured on the 16 items of `core.tool-use` (2 shared cores,
2026-12-04): letting Qwen's own template render `tools` scored 14/16 (0.5B) and 7/16 (1.5B, which
then often took the plain-answer branch and made an answer up), our rendering 14/16 and 13/16;
SmolLM2's template drops `tools` and fails on `content: null`, our rendering scores 12/16.
Unconstrained, all of them score 0/16. One call per answer: `parallel_tool_calls` is not offered.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from murakkab_lg.errors import EngineRequestError

__all__ = ("ANSWER_KEY", "ConstrainedTools", "constrain", "parse_output", "tools_schema")

Body = dict[str, Any]
ANSWER_KEY = "content"
_CONFLICTS = ("json_schema", "grammar")  # llama-server's own constraint fields
_REF_ROOTS = ("#/$defs/", "#/definitions/")


def _bad(message: str) -> EngineRequestError:
    return EngineRequestError(message, status_code=400, body={"error": {"message": message,
                                                                         "type": "invalid_request_error"}})


def _function(tool: Any) -> dict[str, Any]:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if not (isinstance(tool, dict) and tool.get("type", "function") == "function" and isinstance(fn, dict)
            and isinstance(fn.get("name"), str) and fn["name"]):
        raise _bad(f"tool {tool!r} is not an OpenAI function tool. To fix: pass "
                   '{"type": "function", "function": {"name": ..., "parameters": {...}}}.')
    return fn


def _retarget(node: Any, prefix: str) -> Any:
    """A copy of `node` whose local `$ref`s point at `#/$defs/<prefix><name>` (hoisted defs)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(_REF_ROOTS):
                out[k] = "#/$defs/" + prefix + v.split("/", 2)[2]
            elif k not in ("$defs", "definitions"):
                out[k] = _retarget(v, prefix)
        return out
    if isinstance(node, list):
        return [_retarget(v, prefix) for v in node]
    return node


def _selected(tools: list[Any], tool_choice: Any) -> tuple[list[dict[str, Any]], bool]:
    """(the functions the answer may call, whether a plain answer is allowed)."""
    fns = [_function(t) for t in tools]
    if tool_choice in (None, "auto"):
        return fns, True
    if tool_choice == "required":
        return fns, False
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [f for f in fns if f["name"] == name]
        if not chosen:
            raise _bad(f"tool_choice names {name!r}, which is not among the tools "
                       f"({', '.join(f['name'] for f in fns)}). To fix: name one of them.")
        return chosen, False
    raise _bad(f"tool_choice {tool_choice!r} is not supported. To fix: use 'auto', 'required', 'none' "
               'or {"type": "function", "function": {"name": ...}}.')


def tools_schema(tools: list[Any], tool_choice: Any = "auto", answer: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON schema an answer must match: one call of a chosen tool, or (auto) a plain answer:
    `{"content": <string>}`, or the request's own `answer` schema (its `response_format`).

    Each tool's `$defs`/`definitions` move to the root under `<tool>__<name>` (the answer's
    under `answer__`) and the `$ref`s follow, so two schemas may use the same definition names.
    """
    fns, plain = _selected(tools, tool_choice)
    branches: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for fn in fns:
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        prefix = f"{fn['name']}__"
        for key in ("$defs", "definitions"):
            for dname, d in (params.get(key) or {}).items():
                defs[prefix + dname] = _retarget(d, prefix)
        branches.append({
            "type": "object",
            "properties": {"name": {"const": fn["name"]}, "arguments": _retarget(params, prefix)},
            "required": ["name", "arguments"], "additionalProperties": False,
        })
    if plain and answer is not None:
        for key in ("$defs", "definitions"):
            for dname, d in (answer.get(key) or {}).items():
                defs["answer__" + dname] = _retarget(d, "answer__")
        branches.append(_retarget(answer, "answer__"))
    elif plain:
        branches.append({"type": "object", "properties": {ANSWER_KEY: {"type": "string"}},
                         "required": [ANSWER_KEY], "additionalProperties": False})
    schema: dict[str, Any] = branches[0] if len(branches) == 1 else {"anyOf": branches}
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def _instructions(fns: list[dict[str, Any]], plain: bool, answer: dict[str, Any] | None = None) -> str:
    lines = ["You can call these tools:"]
    for fn in fns:
        lines.append(json.dumps({"name": fn["name"], "description": fn.get("description", ""),
                                 "parameters": fn.get("parameters") or {}}))
    lines.append('To call a tool, reply with one JSON object: {"name": <tool name>, "arguments": {...}}.')
    if plain:
        final = (f"a JSON object that matches this schema: {json.dumps(answer)}" if answer is not None
                 else f'{{"{ANSWER_KEY}": "<your answer>"}}')
        lines.append(f"Call a tool whenever one can do what is asked. Only when none fits, reply with {final}.")
    return "\n".join(lines)


def _flatten(messages: list[Body]) -> list[Body]:
    """The tool turns of a history as plain text, for templates that only know role + content."""
    names: dict[str, str] = {}
    out: list[Body] = []
    for m in messages:
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        if calls:
            parts = [m["content"]] if m.get("content") else []
            for c in calls:
                fn = c.get("function") or {}
                names[str(c.get("id"))] = fn.get("name", "")
                args = fn.get("arguments")
                with contextlib.suppress(ValueError):  # not JSON: keep the text as it came
                    args = json.loads(args) if isinstance(args, str) else args
                parts.append(json.dumps({"name": fn.get("name"), "arguments": args}))
            out.append({"role": "assistant", "content": "\n".join(parts)})
        elif m.get("role") == "tool":
            name = names.get(str(m.get("tool_call_id")), "the tool")
            out.append({"role": "user", "content": f"Result of {name}: {_text(m.get('content'))}"})
        else:
            out.append(m)
    return out


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _with_system(messages: list[Body], extra: str) -> list[Body]:
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": f"{_text(messages[0].get('content'))}\n\n{extra}"}, *messages[1:]]
    return [{"role": "system", "content": extra}, *messages]


def _past_calls(messages: list[Body]) -> frozenset[tuple[str, str]]:
    """(name, canonical arguments) of every call the history already made."""
    out = set()
    for m in messages:
        for c in (m.get("tool_calls") or []) if m.get("role") == "assistant" else []:
            fn = c.get("function") or {}
            out.add((str(fn.get("name")), _canonical(fn.get("arguments"))))
    return frozenset(out)


def _canonical(args: Any) -> str:
    try:
        value = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        return str(args)
    return json.dumps(value, sort_keys=True)


def constrain(body: Body) -> ConstrainedTools | None:
    """The request to send for a body with tools, and how to read its answer (None: no tools)."""
    tools = body.get("tools")
    if not tools:
        return None
    choice = body.get("tool_choice", "auto")
    req = {k: v for k, v in body.items() if k not in ("tool_choice", "parallel_tool_calls", "tools")}
    history = list(body.get("messages") or [])
    messages = _flatten(history)
    if choice == "none":  # no call may come back: the engine sees no tools at all
        return ConstrainedTools(request={**req, "messages": messages}, constrained=False)
    conflict = [k for k in _CONFLICTS if body.get(k)]
    if conflict:
        raise _bad(f"this engine serves tool calls through a JSON schema, so {conflict[0]!r} cannot be "
                   "combined with tools. To fix: use response_format, or drop one of them.")
    fns, plain = _selected(list(tools), choice)
    structured = _answer_schema(body.get("response_format"))
    schema = tools_schema(list(tools), choice, structured)
    request = {**req, "messages": _with_system(messages, _instructions(fns, plain, structured)),
               "response_format": {"type": "json_schema", "json_schema": {"name": "tool_call", "schema": schema}}}
    answer_request = None
    if plain:
        answer_request = {**request, "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": tools_schema([], "auto", structured)}}}
    return ConstrainedTools(request=request, constrained=True, answer_request=answer_request,
                            past=_past_calls(history), names=frozenset(f["name"] for f in fns),
                            structured=structured is not None)


def _answer_schema(rf: Any) -> dict[str, Any] | None:
    """The schema a final answer must follow (`response_format`), None for free text.

    An agent with structured output (LangChain's `create_agent(response_format=...)` on a model
    it believes supports it) sends `tools` and `response_format` together: the answer branch then
    follows that schema instead of `{"content": ...}`.
    """
    if not rf or rf.get("type") == "text":
        return None
    if rf.get("type") == "json_object":
        return {"type": "object"}
    schema = (rf.get("json_schema") or {}).get("schema") if rf.get("type") == "json_schema" else None
    if not isinstance(schema, dict):
        raise _bad(f"response_format {rf!r} is not supported with tools. To fix: use "
                   '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}} or "json_object".')
    return schema


_ANSWER_START = re.compile(r'\s*\{\s*"content"\s*:\s*"')


def _partial_string(rest: str) -> str:
    """The text of a JSON string cut off before its closing quote (escapes decoded)."""
    for end in (len(rest), len(rest) - 1, len(rest) - 2, len(rest) - 5):  # drop a half escape
        try:
            return json.loads('"' + rest[:max(end, 0)] + '"')
        except ValueError:
            continue
    return rest


def parse_output(text: str, names: frozenset[str] | None = None,
                 structured: bool = False) -> tuple[str | None, list[Body] | None]:
    """(content, tool_calls) from a constrained answer; text that is not one stays content.

    `names`: the tools that may be called (None: any); `structured`: a plain answer is the
    request's own JSON (kept as the content's text), not `{"content": ...}`.
    """
    try:
        value = json.loads(text)
    except ValueError:  # cut short (max_tokens): keep what came, the finish_reason says why
        cut = None if structured else _ANSWER_START.match(text)
        return (_partial_string(text[cut.end():]) if cut else text), None
    if (isinstance(value, dict) and set(value) == {"name", "arguments"} and isinstance(value["name"], str)
            and (names is None or value["name"] in names)):
        call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                "function": {"name": value["name"], "arguments": json.dumps(value["arguments"])}}
        return None, [call]
    if not structured and isinstance(value, dict) and isinstance(value.get(ANSWER_KEY), str):
        return value[ANSWER_KEY], None
    return text, None


@dataclass(frozen=True)
class ConstrainedTools:
    """A request rewritten for schema-constrained tool calls, and the mapping of its answer.

    Small models, once a tool result is in the conversation, tend to call the same tool with the
    same arguments again instead of answering (the 0.5B model did so every time, so an agent
    looped until its context ran out). An identical call has its result in the history already,
    so when one comes back and a plain answer is allowed, the request is asked once more with
    only the answer branch. Calls of other tools, or with other arguments, pass: agents may chain.
    """

    request: Body
    constrained: bool
    answer_request: Body | None = None
    past: frozenset[tuple[str, str]] = frozenset()
    names: frozenset[str] | None = None
    structured: bool = False

    def parse(self, text: str) -> tuple[str | None, list[Body] | None]:
        return parse_output(text, self.names, self.structured)

    def repeats(self, calls: list[Body] | None) -> bool:
        """True when `calls` only repeat calls the history already made (and answering is allowed)."""
        return bool(self.answer_request is not None and calls and all(
            (c["function"]["name"], _canonical(c["function"]["arguments"])) in self.past for c in calls))

    # -- whole answers --------------------------------------------------------------------------
    def complete(self, send: Callable[[Body], Body]) -> Body:
        """`send` the request and map its answer (asking for an answer instead of a repeated call)."""
        resp = self.response(send(self.request))
        if self.answer_request is not None and self.repeats(_calls(resp)):
            resp = _add_usage(self.response(send(self.answer_request)), resp)
        return resp

    async def acomplete(self, send: Callable[[Body], Awaitable[Body]]) -> Body:
        resp = self.response(await send(self.request))
        if self.answer_request is not None and self.repeats(_calls(resp)):
            resp = _add_usage(self.response(await send(self.answer_request)), resp)
        return resp

    def response(self, resp: Body) -> Body:
        """The engine's answer with the JSON call (or plain answer) as an OpenAI message."""
        if not self.constrained or not resp.get("choices"):
            return resp
        out = copy.copy(resp)
        out["choices"] = [self._choice(c) for c in resp["choices"]]
        return out

    def _choice(self, choice: Body) -> Body:
        msg = choice.get("message") or {}
        content, calls = self.parse(_text(msg.get("content")))
        new = {k: v for k, v in msg.items() if k not in ("content", "tool_calls")}
        new["content"] = content
        reason = choice.get("finish_reason")
        if calls:
            new["tool_calls"] = calls
            reason = "tool_calls"
        return {**choice, "message": new, "finish_reason": reason}

    # -- streams --------------------------------------------------------------------------------
    def stream(self, send: Callable[[Body], Iterator[Body]]) -> Iterator[Body]:
        """Chunks with the answer held back until its JSON closes, then sent as one delta."""
        if not self.constrained:
            yield from send(self.request)
            return
        acc = _StreamAccumulator(self.parse)
        for chunk in send(self.request):
            acc.feed(chunk)
        if self.answer_request is not None and self.repeats(acc.calls()):
            acc = _StreamAccumulator(self.parse, carried=acc.usage)
            for chunk in send(self.answer_request):
                acc.feed(chunk)
        yield from acc.finish()

    async def astream(self, send: Callable[[Body], AsyncIterator[Body]]) -> AsyncIterator[Body]:
        if not self.constrained:
            async for chunk in send(self.request):
                yield chunk
            return
        acc = _StreamAccumulator(self.parse)
        async for chunk in send(self.request):
            acc.feed(chunk)
        if self.answer_request is not None and self.repeats(acc.calls()):
            acc = _StreamAccumulator(self.parse, carried=acc.usage)
            async for chunk in send(self.answer_request):
                acc.feed(chunk)
        for out in acc.finish():
            yield out


def _calls(resp: Body) -> list[Body] | None:
    choices = resp.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("tool_calls")


def _sum_usage(a: Body | None, b: Body | None) -> Body | None:
    if not a or not b:
        return a or b
    return {k: int(a.get(k) or 0) + int(b.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _add_usage(resp: Body, earlier: Body) -> Body:
    """`resp` with the tokens of the `earlier` try added: both were spent on this call."""
    usage = _sum_usage(resp.get("usage"), earlier.get("usage"))
    return {**resp, "usage": usage} if usage else resp


class _StreamAccumulator:
    """Collects one streamed JSON answer, then emits it as chunks: one delta and the finish."""

    def __init__(self, parse: Callable[[str], tuple[str | None, list[Body] | None]],
                 carried: Body | None = None) -> None:
        self.parse = parse
        self.parts: list[str] = []
        self.base: Body | None = None
        self.reason: str | None = None
        self.usage: Body | None = carried
        self.carried = carried
        self.extra: list[Body] = []  # chunks without choices (usage), re-sent at the end

    def feed(self, chunk: Body) -> None:
        if chunk.get("usage"):
            self.usage = _sum_usage(chunk["usage"], self.carried)
        choices = chunk.get("choices") or []
        if not choices:
            self.extra.append({**chunk, "usage": self.usage} if chunk.get("usage") else chunk)
            return
        if self.base is None:
            self.base = {k: v for k, v in chunk.items() if k not in ("choices", "usage", "timings")}
        delta = choices[0].get("delta") or {}
        if delta.get("content"):
            self.parts.append(delta["content"])
        if choices[0].get("finish_reason"):
            self.reason = choices[0]["finish_reason"]

    def calls(self) -> list[Body] | None:
        return self.parse("".join(self.parts))[1]

    def finish(self) -> Iterator[Body]:
        base = self.base or {"object": "chat.completion.chunk"}
        content, calls = self.parse("".join(self.parts))
        if calls:
            delta: Body = {"role": "assistant", "content": None,
                           "tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}
            reason = "tool_calls"
        else:
            delta, reason = {"role": "assistant", "content": content or ""}, self.reason
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        last: Body = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason or "stop"}]}
        if self.usage is not None and not self.extra:
            last["usage"] = self.usage
        yield last
        yield from self.extra
