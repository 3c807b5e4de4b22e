"""Transcribe ML.ENERGY Leaderboard v3.0 rows into murakkab_lg/catalog/data/mlenergy_vllm.csv.

Reads the leaderboard's per-model JSON (lm-arena-chat task) at a pinned commit of a local clone of
github.com/ml-energy/leaderboard and prints CSV rows in the shipped format, so every shipped figure
can be re-derived: `git -C CLONE show COMMIT:public/data/models/<model>__lm-arena-chat.json`.

    python scripts/import_mlenergy.py CLONE_GIT_DIR COMMIT meta-llama/Llama-3.1-70B-Instruct ... >> x.csv

Rounding: batch size to 0.001 (0.01 from 100 up), energy per token to 5 significant digits,
throughput and power to 0.01, inter-token latency to 0.001 ms (the precision of the rows shipped first).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

FIELDS = (
    "leaderboard", "task", "model_id", "gpu", "num_gpus", "tensor_parallel_published", "max_num_seqs",
    "avg_batch_size", "energy_per_token_j", "output_throughput_tok_s", "avg_power_w", "median_itl_ms",
    "repo", "file", "commit", "license",
)


def _batch(x: float) -> str:
    return f"{x:.2f}" if x >= 100 else f"{x:.3f}"


def rows(clone: str, commit: str, model_id: str) -> list[dict[str, str]]:
    path = f"public/data/models/{model_id.replace('/', '__')}__lm-arena-chat.json"
    data = json.loads(subprocess.check_output(["git", "-C", clone, "show", f"{commit}:{path}"]))
    out = []
    for c in sorted(data["configurations"], key=lambda c: (c["gpu_model"] != "H100", c["num_gpus"], c["max_num_seqs"])):
        out.append({
            "leaderboard": "ML.ENERGY v3.0", "task": "lm-arena-chat", "model_id": model_id,
            "gpu": c["gpu_model"], "num_gpus": str(c["num_gpus"]),
            "tensor_parallel_published": str(c["parallelization"]["tensor_parallel"]),
            "max_num_seqs": str(c["max_num_seqs"]), "avg_batch_size": _batch(c["avg_batch_size"]),
            "energy_per_token_j": f"{c['energy_per_token_joules']:#.5g}",
            "output_throughput_tok_s": f"{c['output_throughput_tokens_per_sec']:.2f}",
            "avg_power_w": f"{c['avg_power_watts']:.2f}", "median_itl_ms": f"{c['median_itl_ms']:.3f}",
            "repo": "ml-energy/leaderboard", "file": path, "commit": commit, "license": "Apache-2.0",
        })
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    clone, commit, *models = argv
    w = csv.DictWriter(sys.stdout, FIELDS, lineterminator="\n")
    for m in models:
        w.writerows(rows(clone, commit, m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
