"""GPU check: NVML inventory and energy counters, and measured vs profile-estimated energy.

Run through `bash benchmarks/gpu_check.sh` on a machine with an NVIDIA GPU and PyTorch (no model
weights and no network needed). Steps, each printed as a table:

1. Inventory through murakkab_lg's NVML telemetry (what `murakkab doctor` shows).
2. Counter check: under a matmul load, the total-energy counter's delta is compared with power
   sampled at ~20 Hz and integrated (two independent NVML readings of the same energy), and the
   idle power is measured.
3. Profile: two randomly initialised decoders (built from a config, pure PyTorch, bf16) run a
   fixed prefill + greedy-decode workload at batch sizes 1, 4 and 16. Each phase's energy comes
   from counter deltas through `GpuEnergyAttributor` (the runtime's `measured` path), and the
   results become a `DeploymentProfile` (joules per input and output token, time per token).
4. Validation: a different workload (batch 8, other lengths) is predicted from that profile with
   the planner's own `DeploymentProfile.energy_j/latency_s` (interpolating between batch sizes)
   and then measured; the table shows the estimate's error. A naive "power limit x time"
   estimate is shown next to it for scale.

Everything is seeded; the whole run stays well under 8 minutes on one H100-class GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from murakkab_lg.backends.telemetry import GpuEnergyAttributor, inventory_from_telemetry, open_nvml
from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint, Provenance

BATCHES = (1, 4, 16)
PROMPT, DECODE = 256, 64  # profile workload per request
VALIDATE = (8, 384, 96)  # batch, prompt, decode: not one of the profiled points


@dataclass(frozen=True)
class DecoderConfig:
    """A Llama-shaped decoder; sizes chosen to bracket the embedded ladder's 0.5B and 1.5B models."""

    name: str
    vocab: int = 32000
    dim: int = 1024
    layers: int = 16
    heads: int = 16
    ffn: int = 2816

    def params(self) -> int:
        per_layer = 4 * self.dim * self.dim + 3 * self.dim * self.ffn + 2 * self.dim
        return 2 * self.vocab * self.dim + self.layers * per_layer + self.dim


SIZES = (
    DecoderConfig("decoder-0.4b", dim=1024, layers=16, heads=16, ffn=2816),
    DecoderConfig("decoder-1.6b", dim=2048, layers=24, heads=16, ffn=5632),
)


def build_model(cfg: DecoderConfig, device: str):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n1, self.n2 = nn.RMSNorm(cfg.dim), nn.RMSNorm(cfg.dim)
            self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
            self.out = nn.Linear(cfg.dim, cfg.dim, bias=False)
            self.up = nn.Linear(cfg.dim, 2 * cfg.ffn, bias=False)
            self.down = nn.Linear(cfg.ffn, cfg.dim, bias=False)

        def forward(self, x, cache):  # type: ignore[no-untyped-def]
            b, t, _ = x.shape
            q, k, v = self.qkv(self.n1(x)).view(b, t, 3, cfg.heads, -1).transpose(1, 3).unbind(2)
            if cache is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
            x = x + self.out(a.transpose(1, 2).reshape(b, t, cfg.dim))
            gate, up = self.up(self.n2(x)).chunk(2, -1)
            return x + self.down(F.silu(gate) * up), (k, v)

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(cfg.vocab, cfg.dim)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.layers))
            self.norm = nn.RMSNorm(cfg.dim)
            self.head = nn.Linear(cfg.dim, cfg.vocab, bias=False)

        def forward(self, ids, caches):  # type: ignore[no-untyped-def]
            x = self.emb(ids)
            new = []
            for blk, c in zip(self.blocks, caches or [None] * len(self.blocks), strict=True):
                x, kv = blk(x, c)
                new.append(kv)
            return self.head(self.norm(x[:, -1:])), new

    torch.manual_seed(0)
    return Decoder().to(device=device, dtype=torch.bfloat16).eval()


def run_workload(model, batch: int, prompt: int, decode: int, device: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Prefill `prompt` tokens then greedily decode `decode` tokens for `batch` sequences; (prefill s, decode s)."""
    import torch

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    g = torch.Generator(device="cpu").manual_seed(batch * 1000 + prompt)
    ids = torch.randint(0, model.emb.num_embeddings, (batch, prompt), generator=g).to(device)
    with torch.inference_mode():
        sync()
        t0 = time.perf_counter()
        logits, caches = model(ids, None)
        sync()
        t1 = time.perf_counter()
        for _ in range(decode):
            logits, caches = model(logits.argmax(-1), caches)
        sync()
        return t1 - t0, time.perf_counter() - t1


@dataclass
class Phase:
    seconds: float
    joules: float


def measured(att: GpuEnergyAttributor, gpu: int, fn, min_s: float = 1.5) -> tuple[Phase, int]:  # type: ignore[no-untyped-def]
    """Repeat `fn` until at least `min_s` passed (the counter updates every few ms, but a longer
    window averages out its granularity); joules via the attributor, per repetition."""
    reps, t0 = 0, time.perf_counter()
    token = att.begin([gpu])
    while True:
        fn()
        reps += 1
        if time.perf_counter() - t0 >= min_s:
            break
    joules = att.end(token) or 0.0
    return Phase((time.perf_counter() - t0) / reps, joules / reps), reps


def counter_check(tel, gpu: int, device: str, seconds: float = 4.0) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import torch

    e0 = tel.energy_j(gpu)
    time.sleep(2.0)
    idle_w = (tel.energy_j(gpu) - e0) / 2.0
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    stop = threading.Event()
    samples: list[tuple[float, float]] = []

    def sampler() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), tel.power_w(gpu)))
            time.sleep(0.05)

    th = threading.Thread(target=sampler)
    e1, t1 = tel.energy_j(gpu), time.perf_counter()
    th.start()
    while time.perf_counter() - t1 < seconds:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    stop.set()
    th.join()
    e2, t2 = tel.energy_j(gpu), time.perf_counter()
    integ = sum((tb - ta) * (pa + pb) / 2 for (ta, pa), (tb, pb) in itertools.pairwise(samples))
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 1.0
    counter_j = e2 - e1
    return {"idle_w": idle_w, "load_s": t2 - t1, "counter_j": counter_j, "counter_w": counter_j / (t2 - t1),
            "sampled_w": integ / span, "samples": float(len(samples)),
            "agreement": (integ / span) / (counter_j / (t2 - t1)) if counter_j > 0 else math.nan}


def profile_for(  # type: ignore[no-untyped-def]
    cfg: DecoderConfig, model, att, gpu: int, gpu_name: str, device: str
) -> tuple[DeploymentProfile, list[dict]]:
    rows, points = [], []
    for b in BATCHES:
        # Warm the exact shapes first: attention backends build kernels per new sequence length, and
        # a cold first pass (seen on an H200: ~80 ms per decode step) would be measured as decode cost.
        run_workload(model, b, PROMPT, DECODE, device)
        pre, _ = measured(att, gpu, lambda b=b: run_workload(model, b, PROMPT, 0, device))
        full, reps = measured(att, gpu, lambda b=b: run_workload(model, b, PROMPT, DECODE, device))
        dec = Phase(full.seconds - pre.seconds, max(full.joules - pre.joules, 0.0))
        e_in = pre.joules / (b * PROMPT)
        e_out = dec.joules / (b * DECODE)
        tpot = dec.seconds / DECODE
        points.append(LoadPoint(concurrency=b, prefill_tok_s=b * PROMPT / pre.seconds, tpot_s=tpot,
                                throughput_tok_s=b / tpot, power_w=full.joules / full.seconds,
                                energy_per_output_token_j=e_out, energy_per_input_token_j=e_in))
        rows.append({"model": cfg.name, "batch": b, "reps": reps, "prefill_s": pre.seconds, "decode_s": dec.seconds,
                     "power_w": full.joules / full.seconds, "j_per_in_tok": e_in, "j_per_out_tok": e_out})
    prof = DeploymentProfile(
        deployment=f"{cfg.name}-torch", model=cfg.name, engine="pytorch-eager", hardware=gpu_name,
        load=tuple(points), energy_label="measured", memory_gb=cfg.params() * 2 / (1 << 30),
        provenance=Provenance(kind="measured", source="benchmarks/gpu_check.py", date=dt.date.today().isoformat(),
                              machine=gpu_name, command="bash benchmarks/gpu_check.sh"),
    )
    return prof, rows


def energy_from_power(prof: DeploymentProfile, prompt: int, decode: int, batch: int) -> float:
    """Joules per request with power and aggregate throughput interpolated, then divided.

    Energy per token falls roughly as 1/batch while power stays near flat, so interpolating joules
    per token linearly in batch overestimates between measured batches; power/throughput does not.
    """
    pts = prof.load
    lo = max((q for q in pts if q.concurrency <= batch), key=lambda q: q.concurrency)
    hi = min((q for q in pts if q.concurrency >= batch), key=lambda q: q.concurrency)
    w = 0.0 if hi.concurrency == lo.concurrency else (batch - lo.concurrency) / (hi.concurrency - lo.concurrency)
    power = (lo.power_w or 0.0) + ((hi.power_w or 0.0) - (lo.power_w or 0.0)) * w
    tput = lo.throughput_tok_s + (hi.throughput_tok_s - lo.throughput_tok_s) * w
    e_in = lo.energy_per_input_token_j + (hi.energy_per_input_token_j - lo.energy_per_input_token_j) * w
    return prompt * e_in + decode * power / tput


def table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}")
    if not rows:
        print("(none)")
        return
    cols = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt(r[c]) for c in cols) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: PyTorch sees no CUDA GPU; nothing to check.", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    tel = open_nvml()
    gpu, device = args.gpu, f"cuda:{args.gpu}"
    info = tel.gpus()[gpu]
    print(f"# murakkab-lg GPU check\n\nNVML driver {tel.driver_version()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}; checking GPU {gpu}: {info.name}")
    inv = inventory_from_telemetry(tel)
    table("NVML inventory", [{"device": d.id, "kind": d.kind, "memory_gb": d.memory_gb,
                              "power_limit_w": d.power_limit_w or 0.0, "uuid": d.uuid or "-"} for d in inv.devices])
    if not info.energy_counter:
        print("GPU has no total-energy counter (pre-Volta): measured energy is not available.", file=sys.stderr)
        return 3
    cc = counter_check(tel, gpu, device)
    table("energy counter vs integrated power (matmul load)", [cc])

    att = GpuEnergyAttributor(tel)
    profile_rows, validate_rows = [], []
    for cfg in SIZES:
        model = build_model(cfg, device)
        run_workload(model, 2, 32, 4, device)  # warm-up: kernels, allocator
        prof, rows = profile_for(cfg, model, att, gpu, info.kind, device)
        profile_rows += rows
        b, p, d = VALIDATE
        run_workload(model, b, p, d, device)  # warm, as a serving engine is
        est_j = b * prof.energy_j(p, d, concurrency=b)
        est_pw_j = b * energy_from_power(prof, p, d, b)
        est_s = prof.latency_s(p, d, concurrency=b)
        got, _ = measured(att, gpu, lambda m=model, b=b, p=p, d=d: run_workload(m, b, p, d, device))
        naive_j = (info.power_limit_w or 0.0) * got.seconds
        validate_rows.append({"model": cfg.name, "params_m": cfg.params() / 1e6, "batch": b, "prompt": p,
                              "decode": d, "measured_j": got.joules, "profile_est_j": est_j,
                              "est_error_pct": 100 * (est_j - got.joules) / got.joules if got.joules else math.nan,
                              "power_over_tput_est_j": est_pw_j,
                              "pw_error_pct": 100 * (est_pw_j - got.joules) / got.joules if got.joules else math.nan,
                              "power_limit_x_time_j": naive_j, "measured_s": got.seconds, "profile_est_s": est_s})
        del model
        torch.cuda.empty_cache()
    table("profile (measured through GpuEnergyAttributor)", profile_rows)
    table(f"validation: batch {VALIDATE[0]}, prompt {VALIDATE[1]}, decode {VALIDATE[2]} (not a profiled point)",
          validate_rows)
    idle = att.idle_j(gpu)
    print(f"\nidle energy between measured phases (not charged to calls): {idle:.1f} J")
    print(f"total wall time {time.perf_counter() - t_start:.0f} s")
    tel.close()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"gpu": info.model_dump(), "counter_check": cc, "profile": profile_rows,
                                        "validation": validate_rows, "sizes": [asdict(c) for c in SIZES]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
