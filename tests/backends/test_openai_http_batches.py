"""`OpenAIClient.astream_batches` against a real engine process (the instant engine over TCP):
the chunks are exactly `astream`'s, grouped by network read, and a group's `raw` bytes are the
engine's own events for those chunks, so a gateway may forward them unchanged. Then `SseBatch`'s
byte-level answers (first token, usage, the usage events swapped) against spellings other
engines use: CRLF line ends, `"usage": null` in every chunk, spaces after the colon."""

from __future__ import annotations

import asyncio
import json

import orjson

from murakkab_lg.backends.openai_http import OpenAIClient, SseBatch, _events_end, _split_done


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
            assert batch.raw == b"\n\n".join(batch.lines) + b"\n\n"
            raws.append(batch.raw)
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


def _stream(*chunks: dict, sep: bytes = b"\n", spaced: bool = False) -> bytes:
    dump = (lambda c: json.dumps(c).encode()) if spaced else orjson.dumps
    return b"".join(b"data: " + dump(c) + sep + sep for c in chunks) + b"data: [DONE]" + sep + sep


_ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
_TEXT = {"choices": [{"index": 0, "delta": {"content": 'he said "usage": {x} and [DONE]'}}]}
_USAGE = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def test_a_batch_answers_first_token_and_usage_from_the_bytes_in_every_spelling() -> None:
    for sep in (b"\n", b"\r\n"):
        for spaced in (False, True):
            for nulls in (False, True):
                extra = {"usage": None} if nulls else {}
                raw = _stream({**_ROLE, **extra}, {**_TEXT, **extra}, _USAGE, sep=sep, spaced=spaced)
                block, done = _split_done(raw[:_events_end(raw)])
                assert done and b"[DONE]" not in block.splitlines()[-2]
                batch = SseBatch(block)
                assert batch.has_choices()
                assert batch.usage() == _USAGE["usage"]
                assert [c for c in batch] == [{**_ROLE, **extra}, {**_TEXT, **extra}, _USAGE]
                dropped = batch.replace_usage_events(lambda c: b"")
                assert dropped == block[:block.index(b"data: {\"choices\": []" if spaced else b'data: {"choices":[]')]
                assert SseBatch(dropped).usage() is None and len(SseBatch(dropped)) == 2


def test_text_that_looks_like_the_end_or_usage_is_not_taken_for_it() -> None:
    raw = _stream(_TEXT)
    block, done = _split_done(raw[:raw.index(b"data: [DONE]")])
    assert not done and block == raw[:raw.index(b"data: [DONE]")]
    batch = SseBatch(block)
    assert batch.usage() is None and not batch.carries_usage()
    assert batch.replace_usage_events(lambda c: b"") == block


def test_a_read_that_ends_inside_an_event_keeps_it_for_the_next_read() -> None:
    raw = _stream(_ROLE, _TEXT)
    first_end = raw.index(b"\n\n") + 2
    assert _events_end(raw[:first_end - 1]) == 0  # the data line without its blank line: not complete
    assert _events_end(raw[:first_end]) == first_end
    assert _events_end(raw[:first_end + 10]) == first_end


def test_first_token_is_read_from_the_bytes_and_text_cannot_fake_it() -> None:
    usage_only = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    fake = {"choices": [], "note": 'he said "choices": [1] and "choices":[{"index": 0}]'}
    assert not SseBatch(_stream(usage_only, spaced=True)).has_choices()
    assert not SseBatch(_stream(fake)).has_choices()  # the quotes inside a string are escaped
    assert SseBatch(_stream(fake, _ROLE, sep=b"\r\n", spaced=True)).has_choices()
    assert SseBatch(b'data: {"choices" :\t[ {"index": 0}]}\n\n').has_choices()  # any JSON spacing
