"""One measurement each: run an eval set on an engine, measure one load level, read memory.

Speed comes from llama-server's own per-request `timings` (prompt and decode milliseconds),
which exclude HTTP and queueing; time to first token and aggregate throughput come from our
wall clock, which include them, because that is what a caller waits for. Energy is estimated
from the engine process's CPU-seconds over the measured window (see catalog.hardware).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from murakkab_lg.backends.engines.base import EngineAdapter
from murakkab_lg.catalog.profiles import LoadPoint
from murakkab_lg.errors import MurakkabError
from murakkab_lg.evals.base import EvalItem, EvalSet

__all__ = ("ItemResult", "ProfileError", "load_prompt", "measure_load", "measure_load_streamed", "peak_rss_gb",
           "run_eval_items")


class ProfileError(MurakkabError):
    """A measurement could not be taken (the engine reports no timings, no tokens came back)."""


@dataclass(frozen=True)
class ItemResult:
    item_id: str
    score: float
    prompt_tokens: int
    completion_tokens: int


async def run_eval_items(
    engine: EngineAdapter,
    eval_set: EvalSet,
    items: Sequence[EvalItem],
    *,
    model: str,
    concurrency: int,
    on_done: Callable[[ItemResult], None],
) -> None:
    """Ask every item (up to `concurrency` at once) and score it; `on_done` sees each result."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(item: EvalItem) -> None:
        async with sem:
            resp = await engine.acomplete({**eval_set.body(item), "model": model})
        # Scoring may run generated code in a subprocess: keep it off the event loop.
        score = await asyncio.to_thread(eval_set.score, item, eval_set.output(resp))
        usage = resp.get("usage") or {}
        on_done(ItemResult(item.id, float(score), int(usage.get("prompt_tokens") or 0),
                           int(usage.get("completion_tokens") or 0)))

    await asyncio.gather(*(one(i) for i in items))


_FILLER = (
    "The committee reviewed the quarterly report, discussed the budget for the coming year, "
    "and agreed to revisit the staffing plan after the audit. "
)


def load_prompt(index: int, words: int) -> str:
    """A distinct prompt of about `words` words; the leading nonce defeats prompt caching."""
    body = (_FILLER * (words // len(_FILLER.split()) + 1)).split()[:words]
    return f"Request {index}: " + " ".join(body) + "\nContinue the minutes of this meeting."


async def measure_load(
    engine: EngineAdapter,
    *,
    model: str,
    concurrency: int,
    requests: int,
    prompt_words: int,
    output_tokens: int,
    cpu_seconds: Callable[[], float | None],
    watts_per_core: float,
) -> LoadPoint:
    """`requests` identical-size requests, `concurrency` in flight at a time, as one LoadPoint."""
    sem = asyncio.Semaphore(concurrency)
    records: list[tuple[float, dict[str, Any]]] = []

    async def one(i: int) -> None:
        body = {
            "model": model, "temperature": 0.0, "seed": i, "max_tokens": output_tokens,
            "messages": [{"role": "user", "content": load_prompt(i, prompt_words)}],
            "ignore_eos": True, "cache_prompt": False,  # llama-server: fixed-length, no KV reuse
        }
        async with sem:
            t0 = time.perf_counter()
            resp = await engine.acomplete(body)
            records.append((time.perf_counter() - t0, resp))

    cpu0 = cpu_seconds()
    wall0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - wall0
    cpu1 = cpu_seconds()

    timings = [r.get("timings") for _, r in records]
    if any(not t or not t.get("predicted_n") or not t.get("prompt_n") for t in timings):
        raise ProfileError(
            f"engine {engine.name!r} returned no llama.cpp `timings` (prompt/decode ms); the load "
            "sweep needs them. To fix: profile a llama-server engine, or one that reports timings."
        )
    prompt_n = sum(t["prompt_n"] for t in timings)
    prompt_s = sum(t["prompt_ms"] for t in timings) / 1000
    pred_n = sum(t["predicted_n"] for t in timings)
    pred_s = sum(t["predicted_ms"] for t in timings) / 1000
    out_tokens = sum(int((r.get("usage") or {}).get("completion_tokens") or 0) for _, r in records) or pred_n
    ttft = sum(lat - t["predicted_ms"] / 1000 for (lat, _), t in zip(records, timings, strict=True)) / requests

    cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else 0.0
    joules = max(0.0, cpu) * watts_per_core
    prefill_share = prompt_s / (prompt_s + pred_s) if prompt_s + pred_s > 0 else 0.0
    return LoadPoint(
        concurrency=concurrency,
        prefill_tok_s=prompt_n / max(prompt_s, 1e-9),
        tpot_s=pred_s / pred_n,
        throughput_tok_s=out_tokens / wall,
        power_w=joules / wall,
        energy_per_output_token_j=joules * (1 - prefill_share) / out_tokens,
        energy_per_input_token_j=joules * prefill_share / prompt_n,
        **({"ttft_s": max(0.0, ttft)} if "ttft_s" in LoadPoint.model_fields else {}),
    )


def peak_rss_gb(pid: int | None) -> float | None:
    """Peak resident memory (VmHWM) of `pid` in GiB, None where /proc is unavailable."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None


async def measure_load_streamed(
    engine: EngineAdapter,
    *,
    model: str,
    concurrency: int,
    requests: int,
    prompt_words: int,
    output_tokens: int,
    cpu_seconds: Callable[[], float | None],
    watts_per_core: float,
) -> LoadPoint:
    """One load level for an engine that reports no llama.cpp `timings` (an existing server, a
    hosted API, vLLM): each request is streamed, so TTFT is the first content chunk on our clock,
    time per output token is the rest of the call over the remaining tokens, and prefill speed is
    prompt tokens over TTFT (an upper bound on the time: it includes the network and queueing).
    Energy is estimated from the engine's CPU time where it has a process, else 0 (the profile's
    `energy_label` then says `unknown`)."""
    sem = asyncio.Semaphore(concurrency)
    rows: list[tuple[float, float, int, int]] = []  # latency, ttft, prompt tokens, completion tokens

    async def one(i: int) -> None:
        body = {"model": model, "temperature": 0.0, "seed": i, "max_tokens": output_tokens,
                "messages": [{"role": "user", "content": load_prompt(i, prompt_words)}],
                "stream_options": {"include_usage": True}}
        async with sem:
            t0 = time.perf_counter()
            ttft, usage = None, None
            async for chunk in engine.astream(body):
                if ttft is None and any((c.get("delta") or {}).get("content") or (c.get("delta") or {}).get(
                        "tool_calls") for c in chunk.get("choices") or []):
                    ttft = time.perf_counter() - t0
                usage = chunk.get("usage") or usage
            lat = time.perf_counter() - t0
        if not usage or not usage.get("completion_tokens"):
            raise ProfileError(f"engine {engine.name!r} streamed no usage; the load sweep needs token counts. "
                               "To fix: use a server that honours stream_options.include_usage.")
        rows.append((lat, ttft if ttft is not None else lat, int(usage.get("prompt_tokens") or 0),
                     int(usage["completion_tokens"])))

    cpu0 = cpu_seconds()
    wall0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - wall0
    cpu1 = cpu_seconds()
    ttft = sum(r[1] for r in rows) / len(rows)
    prompt_n = sum(r[2] for r in rows)
    out_n = sum(r[3] for r in rows)
    decode_s = sum(max(r[0] - r[1], 0.0) for r in rows)
    decode_n = sum(max(r[3] - 1, 1) for r in rows)
    joules = max(0.0, cpu1 - cpu0) * watts_per_core if cpu0 is not None and cpu1 is not None else 0.0
    return LoadPoint(
        concurrency=concurrency,
        prefill_tok_s=max(prompt_n, 1) / max(sum(r[1] for r in rows), 1e-9),
        tpot_s=max(decode_s / decode_n, 1e-6),
        throughput_tok_s=out_n / wall,
        power_w=joules / wall if joules else None,
        energy_per_output_token_j=joules / out_n,
        energy_per_input_token_j=0.0,
        ttft_s=ttft,
    )
