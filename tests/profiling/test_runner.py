"""The profiler: quality with CIs, load points, provenance, resume after interruption, real engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from murakkab_lg.catalog.profiles import read_profile_file
from murakkab_lg.evals import get_eval_set
from murakkab_lg.profiling import PRODUCED_BY, ProfileOptions, run_profile
from murakkab_lg.profiling.checkpoint import Checkpoint


def _answer_key(body: dict) -> str:
    """Right for every reason item, wrong for every classify item."""
    user = body["messages"][-1]["content"]
    for item in get_eval_set("core.reason").items:
        if item.messages[-1]["content"] == user:
            return str(item.reference)
    return "no idea"


def _opts(tmp_path: Path, **kw: object) -> ProfileOptions:
    return ProfileOptions.make(models=["tiny"], eval_sets=["core.reason", "core.classify"],
                               out=tmp_path / "p.json", command="murakkab profile --test", quick=True,
                               **{"items_per_set": 3, "concurrency": (1, 2), **kw})


def test_profile_rows_quality_speed_and_provenance(tmp_path: Path, fake_factory) -> None:  # type: ignore[no-untyped-def]
    make, _ = fake_factory
    result = run_profile(_opts(tmp_path), engine_factory=make(_answer_key))
    (row,) = result.profiles
    assert row.deployment == "smollm2-135m" and result.produced_by == PRODUCED_BY
    assert row.quality["reason"].score == 1.0 and row.quality["reason"].n == 3
    assert row.quality["classify"].score == 0.0 and row.quality["classify"].ci_high > 0.0
    assert [lp.concurrency for lp in row.load] == [1, 2]
    lp = row.load[0]
    assert lp.prefill_tok_s == pytest.approx(40 / 0.020) and lp.tpot_s == pytest.approx(0.010)
    assert lp.energy_per_output_token_j > 0 and lp.ttft_s is not None
    assert row.provenance.kind == "measured" and row.provenance.command == "murakkab profile --test"
    assert "estimated" in row.provenance.source and row.energy_label == "estimated"
    assert read_profile_file(tmp_path / "p.json") == result
    assert not _opts(tmp_path).checkpoint_path.exists()


def test_interrupted_run_resumes_without_redoing_work(tmp_path: Path, fake_factory) -> None:  # type: ignore[no-untyped-def]
    make, engines = fake_factory
    with pytest.raises(KeyboardInterrupt):
        run_profile(_opts(tmp_path, eval_concurrency=1), engine_factory=make(_answer_key, fail_after=4))
    assert not engines[0].running  # the engine was stopped on the way out
    done = len(Checkpoint(_opts(tmp_path).checkpoint_path))
    assert done >= 3  # items answered before the interrupt (an item in flight is lost, not corrupted)
    run_profile(_opts(tmp_path, eval_concurrency=1), engine_factory=make(_answer_key))
    total = 6 + 1 * 1 + 2 * 1  # 6 eval items, then one round at concurrency 1 and at 2
    assert engines[1].calls == total - done  # only the work not checkpointed before the interrupt
    assert read_profile_file(tmp_path / "p.json").profiles[0].quality["reason"].n == 3


def test_rows_for_other_deployments_are_kept(tmp_path: Path, fake_factory) -> None:  # type: ignore[no-untyped-def]
    make, _ = fake_factory
    run_profile(_opts(tmp_path), engine_factory=make(_answer_key))
    opts = ProfileOptions.make(models=["small"], eval_sets=["core.reason"], out=tmp_path / "p.json",
                               command="x", quick=True, items_per_set=2, concurrency=(1,))
    result = run_profile(opts, engine_factory=make(_answer_key))
    assert {p.deployment for p in result.profiles} == {"smollm2-135m", "qwen2.5-coder-0.5b"}


def test_real_llama_server_profile(tmp_path: Path, tiny_model: str) -> None:
    opts = ProfileOptions.make(models=["tiny"], eval_sets=["core.answer"], out=tmp_path / "real.json",
                               command="pytest", quick=True, items_per_set=2, concurrency=(1, 2),
                               output_tokens=8, prompt_words=40)
    (row,) = run_profile(opts).profiles
    assert row.quality["answer"].n == 2
    for lp in row.load:
        assert lp.prefill_tok_s and lp.prefill_tok_s > 0 and lp.tpot_s > 0 and lp.throughput_tok_s > 0
        assert lp.energy_per_output_token_j > 0  # CPU-seconds of the real engine process
    assert row.memory_gb is not None and 0.05 < row.memory_gb < 4
    assert os.cpu_count() and row.hardware
