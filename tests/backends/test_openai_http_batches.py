"""`OpenAIClient.astream_batches` against a real engine process (the instant engine over TCP):
the chunks are exactly `astream`'s, grouped by network read, and a group's `lines` are the
engine's own `data:` lines for those chunks, so a gateway may forward them unchanged."""

from __future__ import annotations

import asyncio

import orjson

from murakkab_lg.backends.openai_http import OpenAIClient


def _body(text: str) -> dict:
    return {"model": "instant", "messages": [{"role": "user", "content": text}], "max_tokens": 16,
            "stream_options": {"include_usage": True}}


def _events(raw: bytes) -> list[dict]:
    return [orjson.loads(line[5:]) for line in raw.split(b"\n") if line.startswith(b"data:")]


async def _collect(url: str, text: str) -> tuple[list[list[dict]], list[bytes], list[dict]]:
    client = OpenAIClient(url, who="engine 'instant'")
    try:
        batches, raws = [], []
        async for batch in client.astream_batches(_body(text)):
            batches.append(list(batch))
            raws.append(b"\n\n".join(batch.lines) + b"\n\n")
        flat = [c async for c in client.astream(_body(text))]
    finally:
        await client.aclose()
    return batches, raws, flat


def _without_ids(chunks: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k not in ("id", "created")} for c in chunks]


def test_an_instant_answer_arrives_as_one_group_with_the_engines_bytes(instant_url: str) -> None:
    batches, raws, flat = asyncio.run(_collect(instant_url, "the invoice total is wrong"))
    assert len(batches) == 1
    assert _without_ids(batches[0]) == _without_ids(flat)  # the same chunks as astream, usage last
    assert batches[0][-1]["usage"]["completion_tokens"] > 0
    assert b"[DONE]" not in raws[0]
    assert _events(raws[0]) == batches[0]


def test_a_slow_stream_arrives_in_several_groups_and_loses_nothing(instant_url: str) -> None:
    batches, raws, flat = asyncio.run(_collect(instant_url, "@instant chunk_delay=0.02 words=5"))
    assert len(batches) > 2
    assert _without_ids([c for b in batches for c in b]) == _without_ids(flat)
    for batch, raw in zip(batches, raws, strict=True):
        assert _events(raw) == batch
