"""Run-time cascades: serve a cascade plan's cheapest stage, check its answer, escalate on failure.

The Runtime runs each stage as an ordinary call pinned to that stage's deployment (so retries and
fallbacks apply to every stage alike), with a `Stage` in a contextvar that the call's telemetry
attempt reads: it runs the node's check on the answer and writes the verdict into the stage's
CallRecord (`stage`, `check`, `escalated`), and the loop here reads the same verdict to decide
whether to escalate. A streamed call is buffered per stage until its check passes (the last
stage streams live): a check needs the whole answer.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from murakkab_lg.checks import Check, confidence
from murakkab_lg.wire import Route

__all__ = ("STAGE", "Stage", "acomplete", "astream", "complete", "stage_routes", "stream")

Body = dict[str, Any]


@dataclass
class Stage:
    """One stage of one cascaded call; `passed` is set when its attempt finishes."""

    index: int
    last: bool
    check: Check | None
    min_confidence: float | None
    passed: bool | None = None
    text: list[str] = field(default_factory=list)  # streamed content, for the check

    def judge(self, response: Body | None) -> bool:
        """Run the check (and the confidence threshold) on the answer; a missing answer fails."""
        if response is not None:
            choice = (response.get("choices") or [{}])[0]
            text = (choice.get("message") or {}).get("content") or ""
            conf = confidence(choice)
        else:
            text, conf = "".join(self.text), None
        ok = self.check(text) if self.check is not None else True
        if ok and self.min_confidence is not None and conf is not None:
            ok = conf >= self.min_confidence
        self.passed = ok
        return ok


STAGE: contextvars.ContextVar[Stage | None] = contextvars.ContextVar("murakkab_stage", default=None)


def stage_routes(route: Route, stages: tuple[str, ...]) -> list[tuple[Route, Stage]]:
    intent = route.intent
    assert intent is not None
    return [(route.model_copy(update={"deployment": name}),
             Stage(i, i == len(stages) - 1, intent.check, intent.min_confidence)) for i, name in enumerate(stages)]


def _body(body: Body, stage: Stage) -> Body:
    return {**body, "logprobs": True} if stage.min_confidence is not None and "logprobs" not in body else body


def complete(call: Callable[[Body, Route], Body], body: Body, route: Route, stages: tuple[str, ...]) -> Body:
    resp: Body = {}
    for r, stage in stage_routes(route, stages):
        token = STAGE.set(stage)
        try:
            resp = call(_body(body, stage), r)
        finally:
            STAGE.reset(token)
        if stage.passed or stage.last:
            return resp
    return resp


async def acomplete(call: Callable[[Body, Route], Any], body: Body, route: Route, stages: tuple[str, ...]) -> Body:
    resp: Body = {}
    for r, stage in stage_routes(route, stages):
        token = STAGE.set(stage)
        try:
            resp = await call(_body(body, stage), r)
        finally:
            STAGE.reset(token)
        if stage.passed or stage.last:
            return resp
    return resp


def stream(call: Callable[[Body, Route], Iterator[Body]], body: Body, route: Route,
           stages: tuple[str, ...]) -> Iterator[Body]:
    for r, stage in stage_routes(route, stages):
        token = STAGE.set(stage)
        try:  # the stage's attempt starts (and reads STAGE) on the first chunk
            chunks = iter(call(_body(body, stage), r))
            held = [next(chunks)] if stage.last else list(chunks)
        except StopIteration:
            held = []
        finally:
            STAGE.reset(token)
        if stage.last:  # streams live after its first chunk
            yield from held
            yield from chunks
            return
        if stage.passed:
            yield from held
            return


async def astream(call: Callable[[Body, Route], AsyncIterator[Body]], body: Body, route: Route,
                  stages: tuple[str, ...]) -> AsyncIterator[Body]:
    for r, stage in stage_routes(route, stages):
        token = STAGE.set(stage)
        try:  # reset before yielding: a consumer may resume this generator from another task
            chunks = aiter(call(_body(body, stage), r))
            if stage.last:
                first = await anext(chunks, None)
                held = [] if first is None else [first]
            else:
                held = [c async for c in chunks]
        finally:
            STAGE.reset(token)
        if stage.last:
            for c in held:
                yield c
            async for c in chunks:
                yield c
            return
        if stage.passed:
            for c in held:
                yield c
            return
