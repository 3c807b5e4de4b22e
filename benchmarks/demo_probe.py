"""Measure, with the real llama-server, what the demo's workload costs that the shipped CPU profile does not say.

The shipped profile (catalog/data/cpu_embedded_profile.json) measured each model with the default
settings (all cores as threads, 4 slots), free-text prompts with a nonce, `cache_prompt` off. The
demo differs in three ways, and `sim.validate` needs a measured figure for each:

1. threads: the demo gives each engine its share of the cores (`t=1` with two engines on 2 cores);
   here each demo model is measured at 1 thread and at all cores with the profile's own load sweep
   (`profiling.measure.measure_load`, 100-word prompts, 24 output tokens), side by side, and the
   validator scales the profile by the ratio;
2. prompt caching: llama-server reuses the cached prefix of a prompt (a slot's own, or its RAM
   prompt cache); the demo's prompts share long prefixes (decide: the support policy; sentiment:
   the few-shot examples). Here the demo's requests are replayed exactly (same messages,
   max_tokens, response_format; the graph's order: sentiment and extract at once, then decide,
   then reply; 4 tickets in flight) on the engines each run used, and llama-server's own
   `timings.cache_n` gives the cached prompt tokens per node;
3. the JSON grammar: extract decodes under `response_format`; here the same extract prompts are
   decoded with and without it on the same engine, one at a time, cache_prompt off, and the
   ratio of decode time per token is the grammar's cost (it came out 0.84-1.0: none measurable,
   so the validator adds nothing for it; the figure is kept as the evidence).

Run it on a quiet machine (it takes about 13 minutes):

    flock -x /work/quiet.lock .venv/bin/python benchmarks/demo_probe.py --demo-json docs/demo_run.json

It writes murakkab_lg/sim/data/demo_probe.json, which `sim.validate` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from murakkab_lg.backends.engines.llamacpp import LlamaCppEngine  # noqa: E402
from murakkab_lg.catalog.hardware import describe_machine, watts_per_core  # noqa: E402
from murakkab_lg.demo import tasks  # noqa: E402
from murakkab_lg.profiling.measure import measure_load  # noqa: E402
from murakkab_lg.sim.validate import PROBE_PATH, node_settings  # noqa: E402
from murakkab_lg.spec import LlamaCppSettings  # noqa: E402

PROMPT_WORDS, OUTPUT_TOKENS = 100, 24  # the shipped profile's --quick load sweep


def _engine(model: str, threads: int, parallel: int) -> LlamaCppEngine:
    return LlamaCppEngine(f"{model}@t{threads}-np{parallel}", model,
                          LlamaCppSettings(threads=threads, parallel=parallel, ctx_size=2048))


async def _ask(engine: LlamaCppEngine, messages: list[dict[str, str]], max_tokens: int,
               **extra: Any) -> dict[str, Any]:
    return await engine.acomplete({"model": engine.name, "messages": messages, "max_tokens": max_tokens,
                                   "temperature": 0.0, **extra})


async def _grammar(engine: LlamaCppEngine, concurrency: int, n: int) -> dict[str, float]:
    """Decode ms per token on the extract prompts, with and without the JSON grammar."""
    items = tasks.tickets("heldout")[:n]
    out: dict[str, float] = {}
    # cache_prompt off: the second pass must not find the first pass's prompts cached (less
    # prefill interleaved with its decode steps would make it look faster)
    for label, extra in (("free", {"cache_prompt": False}),
                         ("grammar", {"cache_prompt": False, "response_format": tasks.EXTRACT_FORMAT})):
        sem = asyncio.Semaphore(concurrency)

        async def one(t: dict[str, Any], extra: dict[str, Any] = extra,
                      sem: asyncio.Semaphore = sem) -> dict[str, Any]:
            async with sem:
                return (await _ask(engine, tasks.extract_messages(t), 40, **extra))["timings"]

        ts = await asyncio.gather(*(one(t) for t in items))
        out[f"{label}_ms_per_token"] = sum(t["predicted_ms"] for t in ts) / sum(t["predicted_n"] for t in ts)
        out[f"{label}_tokens_per_call"] = statistics.fmean(t["predicted_n"] for t in ts)
    out["ratio"] = out["grammar_ms_per_token"] / out["free_ms_per_token"]
    return out


async def _measure_engine(engine: LlamaCppEngine, rounds: int) -> dict[str, Any]:
    load = {}
    for c in (1, 4):
        p = await measure_load(engine, model=engine.name, concurrency=c, requests=max(c * rounds, 8),
                               prompt_words=PROMPT_WORDS, output_tokens=OUTPUT_TOKENS,
                               cpu_seconds=engine.cpu_seconds, watts_per_core=watts_per_core())
        load[str(c)] = p.model_dump(mode="json")
    return {"load": load, "grammar": {"1": await _grammar(engine, 1, 8)}}


def _mean_points(points: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("prefill_tok_s", "tpot_s", "power_w", "throughput_tok_s")
    return {**points[0], **{k: statistics.fmean(p[k] for p in points) for k in keys}}


def threads_and_grammar(models: list[str], threads: list[int], parallel: int, rounds: int,
                        passes: int) -> dict[str, Any]:
    """Every (model, threads) engine measured `passes` times, the settings alternating (t1, t2, t1,
    t2, ...), so a disturbance or drift during one pass does not decide a ratio; the mean is kept
    and every pass's figures too."""
    raw: dict[str, list[dict[str, Any]]] = {}
    for i in range(passes):
        for model in models:
            for t in threads:
                engine = _engine(model, t, parallel)
                print(f"  pass {i + 1}/{passes} {engine.name}: load sweep and grammar ...", flush=True)
                engine.start(240.0)
                try:
                    raw.setdefault(engine.name, []).append(asyncio.run(_measure_engine(engine, rounds)))
                finally:
                    engine.stop()
    out: dict[str, Any] = {}
    for name, runs in raw.items():
        out[name] = {"load": {c: _mean_points([r["load"][c] for r in runs]) for c in runs[0]["load"]},
                     "grammar": {"1": {"ratio": statistics.fmean(r["grammar"]["1"]["ratio"] for r in runs)}},
                     "passes": runs}
    return out


async def _replay(engines: dict[str, LlamaCppEngine], items: list[dict[str, Any]], concurrency: int
                  ) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """The demo graph's requests, in its order, with llama-server's timings per call."""
    rec: dict[str, list[dict[str, Any]]] = {n: [] for n in ("sentiment", "extract", "decide", "reply")}
    sem = asyncio.Semaphore(concurrency)

    async def call(node: str, messages: list[dict[str, str]], max_tokens: int, **extra: Any) -> str:
        r = await _ask(engines[node], messages, max_tokens, **extra)
        rec[node].append({**r["timings"], "prompt_tokens": r["usage"]["prompt_tokens"]})
        return r["choices"][0]["message"]["content"] or ""

    async def ticket(t: dict[str, Any]) -> None:
        async with sem:
            _, raw = await asyncio.gather(call("sentiment", tasks.sentiment_messages(t), 4),
                                          call("extract", tasks.extract_messages(t), 40,
                                               response_format=tasks.EXTRACT_FORMAT))
            action = await call("decide", tasks.decide_messages(t), 4)
            order_id = str(tasks.parse_extract(raw).get("order_id") or "your order")
            await call("reply", tasks.reply_messages(t, order_id, tasks.first_action(action) or "escalate"), 48)

    t0 = time.perf_counter()
    await asyncio.gather(*(ticket(t) for t in items))
    return rec, time.perf_counter() - t0


def replay(run: dict[str, Any], concurrency: int, cores: int) -> dict[str, Any]:
    settings = {n["name"]: (n["model"], *node_settings(n, cores)[:2]) for n in run["nodes"]}
    engines = {key: _engine(*key) for key in set(settings.values())}
    print(f"  replay on {', '.join(e.name for e in engines.values())} ...", flush=True)
    for e in engines.values():
        e.start(240.0)
    try:
        cpu0 = {k: e.cpu_seconds() or 0.0 for k, e in engines.items()}
        rec, wall = asyncio.run(_replay({n: engines[k] for n, k in settings.items()}, tasks.tickets("heldout"),
                                        concurrency))
        cpu = sum((e.cpu_seconds() or 0.0) - cpu0[k] for k, e in engines.items())
    finally:
        for e in engines.values():
            e.stop()
    nodes = {}
    for node, rs in rec.items():
        nodes[node] = {
            "calls": len(rs), "engine": engines[settings[node]].name,
            "prompt_tokens_per_call": statistics.fmean(r["prompt_tokens"] for r in rs),
            "cached_tokens_per_call": statistics.fmean(r["cache_n"] for r in rs),
            "computed_prompt_tokens_per_call": statistics.fmean(r["prompt_n"] for r in rs),
            "completion_tokens_per_call": statistics.fmean(r["predicted_n"] for r in rs),
            "cached_share": sum(r["cache_n"] for r in rs) / sum(r["prompt_tokens"] for r in rs),
        }
    return {"wall_s": wall, "energy_j": cpu * watts_per_core(), "nodes": nodes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo-json", type=Path, default=ROOT / "docs" / "demo_run.json",
                    help="the demo run whose models and engine settings to probe")
    ap.add_argument("--out", type=Path, default=PROBE_PATH)
    ap.add_argument("--rounds", type=int, default=3,
                    help="requests per load level = rounds x concurrency (at least 8)")
    ap.add_argument("--passes", type=int, default=2, help="measurements of every engine, alternating settings")
    ap.add_argument("--replay-from", type=Path, metavar="PROBE_JSON",
                    help="keep the replay of an earlier probe file instead of replaying again (it is a token-level "
                         "measurement: cached prompt tokens per node)")
    args = ap.parse_args(argv)
    demo = json.loads(args.demo_json.read_text())
    cores = int(demo.get("cores") or os.cpu_count() or 1)
    runs = {name: demo[name] for name in ("static", "planned")}
    models = sorted({n["model"] for r in runs.values() for n in r["nodes"]})
    threads = sorted({1, cores} | {node_settings(n, cores)[0] for r in runs.values() for n in r["nodes"]})
    t0 = time.perf_counter()
    print(f"probing {', '.join(models)} at threads {threads} ...", flush=True)
    data: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": describe_machine(), "cores": cores,
        "command": "python benchmarks/demo_probe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "demo_json": str(args.demo_json.relative_to(ROOT) if args.demo_json.is_relative_to(ROOT) else args.demo_json),
        "load_sweep": {"prompt_words": PROMPT_WORDS, "output_tokens": OUTPUT_TOKENS, "rounds": args.rounds,
                       "passes": args.passes, "parallel": 4},
        "engines": threads_and_grammar(models, threads, 4, args.rounds, args.passes),
    }
    if args.replay_from:
        old = json.loads(args.replay_from.read_text())
        data |= {k: old[k] for k in ("replay_items", "replay_concurrency", "replay")}
        data["replay_source"] = f"{args.replay_from.name}, probed {old['date']}"
    else:
        data |= {"replay_items": len(tasks.tickets("heldout")), "replay_concurrency": int(demo["concurrency"]),
                 "replay": {name: replay(run, int(demo["concurrency"]), cores) for name, run in runs.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
