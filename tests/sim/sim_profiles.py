"""Hand-made profiles for the simulator tests: hand-made profiles whose numbers the tests can reason about."""

from __future__ import annotations

from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint, Provenance

PROV = Provenance(kind="synthetic", source="synthetic: hand-made for tests", date="2026-12-04")


def profile(points: list[tuple[int, float, float]], prefill: float | None = None) -> DeploymentProfile:
    """points: (concurrency, time per output token s, power W)."""
    return DeploymentProfile(
        deployment="d", model="m", engine="simulated", hardware="test", energy_label="estimated", provenance=PROV,
        load=tuple(LoadPoint(concurrency=c, prefill_tok_s=prefill, tpot_s=t, throughput_tok_s=c / t, power_w=p,
                             energy_per_output_token_j=p * t / c) for c, t, p in points))
