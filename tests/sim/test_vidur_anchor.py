"""benchmarks/vidur_anchor.py without vidur: our side by hand, and clear errors for missing inputs."""

import argparse
import importlib.util
from pathlib import Path

import pytest

from murakkab_lg.catalog.published import published_profiles

ROOT = Path(__file__).resolve().parents[2]


def _anchor():
    spec = importlib.util.spec_from_file_location("vidur_anchor", ROOT / "benchmarks" / "vidur_anchor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ours_at_low_load_is_decode_tokens_times_single_stream_tpot():
    mod = _anchor()
    args = argparse.Namespace(decode_tokens=100, requests=20, max_seqs=64, seed=1)
    # 0.001 req/s: requests never overlap, so each decodes alone at concurrency 1
    got = mod.run_ours("llama-3.1-70b-instruct@h100x4", 0.001, 16, args)
    prof = next(p for p in published_profiles() if p.deployment == "llama-3.1-70b-instruct@h100x4")
    want = 100 * prof.at(1).tpot_s
    assert got["p50_s"] == pytest.approx(want, rel=1e-6)
    assert got["p95_s"] == pytest.approx(want, rel=1e-6)
    assert got["tpot_p50_ms"] == pytest.approx(1000 * prof.at(1).tpot_s, rel=1e-6)


def test_unknown_deployment_and_missing_profiles_say_what_to_do(tmp_path):
    mod = _anchor()
    args = argparse.Namespace(decode_tokens=10, requests=2, max_seqs=4, seed=1)
    with pytest.raises(SystemExit, match="choose one of"):
        mod.run_ours("no-such@gpu", 1.0, 16, args)
    with pytest.raises(SystemExit, match=r"profile tables missing.*microsoft/vidur"):
        mod.run_vidur("python3", tmp_path, 1.0, 16, args, tmp_path)
