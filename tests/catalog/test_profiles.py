"""Profile schema: provenance enforced, files round-trip, measured rows override shipped ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from murakkab_lg.catalog.embedded import profiled_deployments, sweep_deployment
from murakkab_lg.catalog.profiles import (
    DeploymentProfile,
    LoadPoint,
    ProfileFile,
    ProfileStore,
    Provenance,
    QualityScore,
    read_profile_file,
    write_profile_file,
)
from murakkab_lg.errors import ConfigError
from murakkab_lg.runtime import Runtime
from murakkab_lg.spec import Intent, Workflow, WorkflowNode

MEASURED = Provenance(kind="measured", source="murakkab profile", date="2025-01-01", machine="test box",
                      command="murakkab profile --quick")
SHIPPED = Provenance(kind="measured", source="shipped", date="2024-01-01", machine="ci box",
                     command="murakkab profile --quick --out x")


def _profile(name: str, quality: float, energy: float, prov: Provenance = MEASURED) -> DeploymentProfile:
    return DeploymentProfile(
        deployment=name, model=name, engine="llamacpp", hardware="2 cores",
        quality={"classify": QualityScore(score=quality, metric="acc", n=10, ci_low=0.0, ci_high=1.0)},
        load=(LoadPoint(concurrency=4, prefill_tok_s=100, tpot_s=0.05, throughput_tok_s=40,
                        energy_per_output_token_j=energy * 0.8, ttft_s=0.4),
              LoadPoint(concurrency=1, prefill_tok_s=200, tpot_s=0.02, throughput_tok_s=20,
                        energy_per_output_token_j=energy, ttft_s=0.1)),
        energy_label="estimated", provenance=prov,
    )


def test_provenance_is_enforced() -> None:
    with pytest.raises(ValidationError, match="machine"):
        Provenance(kind="measured", source="x", date="2025-01-01")
    with pytest.raises(ValidationError, match="license"):
        Provenance(kind="published", source="x", date="2025-01-01")
    with pytest.raises(ValidationError):  # a row without provenance is rejected
        DeploymentProfile.model_validate({**_profile("a", 0.5, 1.0).model_dump(), "provenance": None})


def test_file_round_trip_and_invalid_file_error(tmp_path: Path) -> None:
    f = ProfileFile(produced_by="test", profiles=(_profile("a", 0.5, 1.0),))
    write_profile_file(tmp_path / "p.json", f)
    back = read_profile_file(tmp_path / "p.json")
    assert back == f
    assert [lp.concurrency for lp in back.profiles[0].load] == [1, 4]  # sorted on load
    (tmp_path / "bad.json").write_text('{"produced_by": "x", "profiles": [{"deployment": "a"}]}')
    with pytest.raises(ConfigError, match="invalid"):
        read_profile_file(tmp_path / "bad.json")


def test_interpolation_carries_ttft_and_tolerates_unpublished_prefill() -> None:
    p = _profile("a", 0.5, 1.0)
    mid = p.at(2.5)
    assert mid.ttft_s == pytest.approx(0.25) and mid.prefill_tok_s == pytest.approx(150)
    unpublished = p.model_copy(update={"load": tuple(lp.model_copy(update={"prefill_tok_s": None}) for lp in p.load)})
    assert unpublished.latency_s(1000, 10) == pytest.approx(10 * 0.02)  # decode only, stated in provenance


def test_planner_prefers_measured_rows_and_says_which_source() -> None:
    store = ProfileStore()
    store.add([_profile("smollm2-135m", 0.9, 1.0, SHIPPED), _profile("qwen2.5-coder-0.5b", 0.9, 5.0, SHIPPED)],
              "shipped: cpu_embedded_profile.json")
    # measured on this machine: the tiny model is in fact poor at classify
    store.add([_profile("smollm2-135m", 0.2, 1.0)], "measured: /home/u/.cache/murakkab-lg/profiles/x.json")
    assert store.source_of("smollm2-135m").startswith("measured")
    assert store.source_of("qwen2.5-coder-0.5b").startswith("shipped")
    rt = Runtime([sweep_deployment("smollm2-135m", 2, 4).model_copy(update={"name": "smollm2-135m"}),
                  sweep_deployment("qwen2.5-coder-0.5b", 2, 4).model_copy(update={"name": "qwen2.5-coder-0.5b"})],
                 store)
    plan = rt.plan(Workflow(name="w", nodes=(WorkflowNode(name="n", intent=Intent("classify", min_quality=0.5)),)))
    assert plan.choice("n").deployment == "qwen2.5-coder-0.5b"  # the shipped 0.9 was overridden by 0.2
    assert "measured:" in plan.profile_source and "shipped:" in plan.profile_source


def test_sweep_rows_get_matching_deployments() -> None:
    default = sweep_deployment("tiny", 1, 1)
    assert default.name == "smollm2-135m@t1-np1" and default.engine.threads == 1
    store = ProfileStore([_profile("smollm2-135m@t1-np1", 0.5, 1.0), _profile("smollm2-135m", 0.5, 1.0)])
    names = {d.name for d in profiled_deployments(store)}
    assert names == {"smollm2-135m@t1-np1", "smollm2-135m"}


def test_docs_give_the_command_that_produced_the_shipped_profile() -> None:
    """docs/profiles.md shows the exact command recorded in the shipped file's provenance."""
    from importlib import resources
    from pathlib import Path

    shipped = read_profile_file(resources.files("murakkab_lg.catalog") / "data" / "cpu_embedded_profile.json")
    commands = {p.provenance.command for p in shipped.profiles}
    assert len(commands) == 1
    docs = (Path(__file__).resolve().parents[2] / "docs" / "profiles.md").read_text()
    assert f"\n{commands.pop()}\n" in docs
