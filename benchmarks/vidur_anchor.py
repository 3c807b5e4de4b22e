"""Second anchor for the simulator: one deployment's latency-vs-load curve next to Microsoft's vidur.

Both sides are simulators; nothing here is measured. vidur (PyPI `vidur`, MIT) predicts every batch
from operator-level GPU profiles (MLP and attention kernels, all-reduce) that its authors measured;
ours (`murakkab_lg.sim.engine.Replica`) advances continuous batching from a deployment profile's
per-stream time per output token at each concurrency (ML.ENERGY v3 rows, published).

vidur is not a dependency of this project. It runs as a subprocess in its own Python 3.11 venv:

    python3.11 -m venv /work/wt/vidur-venv
    /work/wt/vidur-venv/bin/pip install torch==2.13.0   # local CPU build first: no CUDA download
    /work/wt/vidur-venv/bin/pip install vidur==0.0.26

vidur 0.0.26 downloads its profiles from HuggingFace datasets at start-up; this script instead points
its predictor at local CSVs (set in the child process only), so nothing is fetched. The CSVs are
vidur's own data and are not shipped here: take them from github.com/microsoft/vidur and lay them out
under PROFILES as

    compute/a100/meta-llama/Meta-Llama-3-70B/mlp.csv
    compute/a100/meta-llama/Meta-Llama-3-70B/attention.csv
    network/a100_pairwise_nvlink/all_reduce.csv
    network/a100_pairwise_nvlink/send_recv.csv

(the same paths under its data/profiling/, except attention.csv: docs/vidur_anchor.md says which
revision of which file, and why).

Run: python benchmarks/vidur_anchor.py --vidur-python /work/wt/vidur-venv/bin/python --profiles DIR
It prints the table and writes docs/vidur_anchor.json. docs/vidur_anchor.md says what differs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from murakkab_lg.catalog.published import published_profiles
from murakkab_lg.sim.engine import Replica, Request, rates_from_profile

ROOT = Path(__file__).resolve().parent.parent

# vidur's side: the one 70B-class deployment for which all four profile tables are public (see doc)
VIDUR_MODEL = "meta-llama/Llama-3-70B"
VIDUR_DEVICE = "a100"
VIDUR_NETWORK = "a100_pairwise_nvlink"
VIDUR_TP = 2
PROFILE_FILES = (
    "compute/a100/meta-llama/Meta-Llama-3-70B/mlp.csv",
    "compute/a100/meta-llama/Meta-Llama-3-70B/attention.csv",
    "network/a100_pairwise_nvlink/all_reduce.csv",
    "network/a100_pairwise_nvlink/send_recv.csv",
)
# In the vidur child: replace the HuggingFace download of profile tables by the local files.
_CHILD = """
import os, runpy, sys
from vidur.execution_time_predictor import sklearn_execution_time_predictor as m
files = tuple(os.environ["ANCHOR_PROFILE_FILES"].split(os.pathsep))
m.SklearnExecutionTimePredictor._get_input_files = lambda self: files
sys.argv = ["vidur.main", *sys.argv[1:]]
runpy.run_module("vidur.main", run_name="__main__")
"""


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def summarise(e2e: list[float], ttft: list[float], tpot: list[float]) -> dict[str, float]:
    return {"p50_s": pct(e2e, 50), "p95_s": pct(e2e, 95), "ttft_p50_s": pct(ttft, 50),
            "tpot_p50_ms": 1000 * statistics.median(tpot)}


def run_vidur(py: str, profiles: Path, qps: float, prompt: int, args: argparse.Namespace,
              work: Path) -> dict[str, float]:
    """One vidur simulation at `qps`; percentiles over its per-request metrics."""
    files = [profiles / f for f in PROFILE_FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        sys.exit(f"error: vidur profile tables missing: {', '.join(missing)}; "
                 "copy them from github.com/microsoft/vidur as this script's docstring says")
    out = work / f"out-{prompt}-{qps:g}"
    p = "random_forrest_execution_time_predictor_config"
    cmd = [
        py, "-c", _CHILD,
        "--replica_config_model_name", VIDUR_MODEL, "--replica_config_device", VIDUR_DEVICE,
        "--replica_config_network_device", VIDUR_NETWORK,
        "--replica_config_tensor_parallel_size", str(VIDUR_TP), "--replica_config_num_pipeline_stages", "1",
        "--request_generator_config_type", "synthetic", "--length_generator_config_type", "fixed",
        "--fixed_request_length_generator_config_prefill_tokens", str(prompt),
        "--fixed_request_length_generator_config_decode_tokens", str(args.decode_tokens),
        "--interval_generator_config_type", "poisson", "--poisson_request_interval_generator_config_qps", str(qps),
        "--poisson_request_interval_generator_config_seed", str(args.seed),
        "--synthetic_request_generator_config_num_requests", str(args.requests),
        "--replica_scheduler_config_type", "vllm", "--vllm_scheduler_config_batch_size_cap", str(args.max_seqs),
        "--execution_time_predictor_config_type", "random_forrest",
        # a small model search, and prediction grids up to 4096 tokens (vidur's vLLM batch-token cap;
        # its default of 2M tokens per request takes many minutes) keep it to seconds
        f"--{p}_k_fold_cv_splits", "2", f"--{p}_num_training_job_threads", "1",
        f"--{p}_num_estimators", "50", f"--{p}_max_depth", "16", f"--{p}_min_samples_split", "2",
        f"--{p}_prediction_max_tokens_per_request", "4096",
        f"--{p}_prediction_max_batch_size", str(args.max_seqs),
        f"--{p}_prediction_max_prefill_chunk_size", "4096",
        f"--{p}_cache_dir", str(work / "cache"),
        "--metrics_config_output_dir", str(out), "--no-metrics_config_store_plots",
        "--no-metrics_config_enable_chrome_trace",
    ]
    env = {**os.environ, "ANCHOR_PROFILE_FILES": os.pathsep.join(map(str, files)),
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    res = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, timeout=args.timeout_s)
    if res.returncode != 0:
        sys.exit(f"error: vidur failed at {qps:g} req/s (exit {res.returncode}):\n{res.stderr[-3000:]}")
    metrics = sorted(out.glob("*/request_metrics.csv"))
    if not metrics:
        sys.exit(f"error: vidur wrote no request_metrics.csv under {out}")
    rows = list(csv.DictReader(metrics[-1].open()))
    e2e = [float(r["request_e2e_time"]) for r in rows]
    ttft = [float(r["prefill_e2e_time"]) for r in rows]
    # decode seconds per output token (execution plus time spent paused), as vidur reports it
    tpot = [float(r["decode_time_execution_plus_preemption_normalized"]) for r in rows]
    return summarise(e2e, ttft, tpot)


def run_ours(deployment: str, qps: float, prompt: int, args: argparse.Namespace) -> dict[str, float]:
    """The same Poisson stream of fixed-size requests through our simulated replica."""
    profile = next((p for p in published_profiles() if p.deployment == deployment), None)
    if profile is None:
        names = ", ".join(p.deployment for p in published_profiles())
        sys.exit(f"error: no published profile {deployment!r}; choose one of: {names}")
    rep = Replica(rates_from_profile(profile, args.max_seqs), name=deployment)
    rng = np.random.default_rng(args.seed)
    arrivals = np.cumsum(rng.exponential(1.0 / qps, args.requests))
    done: list[Request] = []
    finished_at: dict[int, float] = {}
    i, now = 0, 0.0
    while len(done) < args.requests:
        t_next = rep.next_event_s()
        t_arr = float(arrivals[i]) if i < len(arrivals) else float("inf")
        now = min(t_arr, t_next if t_next is not None else float("inf"))
        rep.advance(now)
        for r in rep.pop_finished(now):
            finished_at[id(r)] = now
            done.append(r)
        if now == t_arr:
            req = Request(prompt, args.decode_tokens, 1, None)
            rep.submit(req, now)
            i += 1
    e2e = [finished_at[id(r)] - r.submitted_s for r in done]
    # prefill is not published for these rows, so the first token comes after queueing + one TPOT
    ttft = []
    tpot = []
    for r in done:
        decode_s = finished_at[id(r)] - r.admitted_s
        tpot.append(decode_s / args.decode_tokens)
        ttft.append(r.admitted_s - r.submitted_s + decode_s / args.decode_tokens)
    return summarise(e2e, ttft, tpot)


def compare(prompt: int, args: argparse.Namespace, work: Path) -> dict:
    """vidur and ours at every rate for one prompt length, plus ours at equal load (see below)."""
    rows = []
    for qps in args.rates:
        v = run_vidur(args.vidur_python, args.profiles.resolve(), qps, prompt, args, work)
        o = run_ours(args.deployment, qps, prompt, args)
        rows.append({"rate_req_s": qps, "vidur": v, "ours": o,
                     "ratio_p50": o["p50_s"] / v["p50_s"], "ratio_p95": o["p95_s"] / v["p95_s"]})
        print(f"  prompt {prompt}, {qps:g} req/s done", file=sys.stderr, flush=True)
    # The two deployments differ in speed (GPU and count, see the doc), so equal rates are unequal
    # loads. Second view: ours at `scale` x each rate, scale = vidur's / our TPOT at the lowest
    # rate, so both run about as many sequences at once; then compare how latency grows with load.
    scale = rows[0]["vidur"]["tpot_p50_ms"] / rows[0]["ours"]["tpot_p50_ms"]
    for r in rows:
        r["ours_at_scaled_rate"] = run_ours(args.deployment, r["rate_req_s"] * scale, prompt, args)
    for r in rows:
        r["growth_vidur"] = r["vidur"]["p50_s"] / rows[0]["vidur"]["p50_s"]
        r["growth_ours_scaled"] = r["ours_at_scaled_rate"]["p50_s"] / rows[0]["ours_at_scaled_rate"]["p50_s"]
    return {"prompt_tokens": prompt, "equal_load_scale": scale, "rows": rows}


def print_run(run: dict, args: argparse.Namespace) -> None:
    rows, scale = run["rows"], run["equal_load_scale"]
    print(f"\nlabel: simulated (both). vidur {VIDUR_MODEL} on {VIDUR_TP}x A100 (its measured operator "
          f"profiles); ours {args.deployment} (ML.ENERGY v3 rows). {run['prompt_tokens']} prompt + "
          f"{args.decode_tokens} output tokens, Poisson, {args.requests} requests per rate, max "
          f"{args.max_seqs} sequences.")
    hdr = (f"{'req/s':>6} | {'vidur p50':>9} {'p95':>7} {'TTFT':>6} {'TPOT ms':>7} | {'ours p50':>8} {'p95':>7} "
           f"{'TTFT':>6} {'TPOT ms':>7} | {'p50 ratio':>9} {'p95 ratio':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        v, o = r["vidur"], r["ours"]
        print(f"{r['rate_req_s']:>6g} | {v['p50_s']:>9.2f} {v['p95_s']:>7.2f} {v['ttft_p50_s']:>6.2f} "
              f"{v['tpot_p50_ms']:>7.1f} | {o['p50_s']:>8.2f} {o['p95_s']:>7.2f} {o['ttft_p50_s']:>6.2f} "
              f"{o['tpot_p50_ms']:>7.1f} | {r['ratio_p50']:>9.2f} {r['ratio_p95']:>9.2f}")
    print(f"equal load: ours at {scale:.2f}x each rate (vidur TPOT / ours TPOT at the lowest rate); "
          "growth = p50 latency / the same side's p50 at the lowest rate")
    hdr2 = (f"{'vidur req/s':>11} {'ours req/s':>10} | {'vidur TPOT ms':>13} {'ours TPOT ms':>12} | "
            f"{'growth vidur':>12} {'growth ours':>11} | {'ratio':>6}")
    print(hdr2)
    print("-" * len(hdr2))
    for r in rows:
        o = r["ours_at_scaled_rate"]
        print(f"{r['rate_req_s']:>11g} {r['rate_req_s'] * scale:>10.2f} | {r['vidur']['tpot_p50_ms']:>13.1f} "
              f"{o['tpot_p50_ms']:>12.1f} | {r['growth_vidur']:>12.2f} {r['growth_ours_scaled']:>11.2f} | "
              f"{r['growth_ours_scaled'] / r['growth_vidur']:>6.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vidur-python", required=True, help="python of the separate venv where vidur is installed")
    ap.add_argument("--profiles", type=Path, required=True, help="folder of vidur's profile CSVs (see docstring)")
    ap.add_argument("--deployment", default="llama-3.1-70b-instruct@h100x4", help="our published deployment")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 3, 4], help="arrival rates, req/s")
    ap.add_argument("--prompt-tokens", type=int, nargs="+", default=[16, 512],
                    help="prompt lengths, one comparison each (16: decode-dominated; 512: prefill matters)")
    ap.add_argument("--decode-tokens", type=int, default=256)
    ap.add_argument("--requests", type=int, default=200, help="requests per rate (both sides)")
    ap.add_argument("--max-seqs", type=int, default=64, help="max concurrent sequences (both sides)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout-s", type=float, default=600, help="per vidur run")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "vidur_anchor.json")
    args = ap.parse_args(argv)
    if not Path(args.vidur_python).is_file():
        sys.exit(f"error: --vidur-python {args.vidur_python} does not exist; create the venv as the docstring says")

    t0 = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="vidur-anchor-") as tmp:
        for prompt in args.prompt_tokens:
            runs.append(compare(prompt, args, Path(tmp)))
            print_run(runs[-1], args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "label": "simulated (both sides); vidur = simulated from its measured operator profiles",
        "vidur": {"version": "0.0.26", "model": VIDUR_MODEL, "device": VIDUR_DEVICE, "network": VIDUR_NETWORK,
                  "tensor_parallel": VIDUR_TP, "scheduler": "vllm", "predictor": "random_forrest"},
        "ours": {"deployment": args.deployment, "source": "ML.ENERGY v3 rows (published), murakkab_lg.sim.engine"},
        "decode_tokens": args.decode_tokens, "requests": args.requests, "max_seqs": args.max_seqs,
        "seed": args.seed, "wall_s": round(time.perf_counter() - t0, 1), "runs": runs,
    }, indent=2) + "\n")
    print(f"wrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
