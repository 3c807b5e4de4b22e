"""Profile types: the measured or published numbers a policy plans with, each row with its source.

Why a module of its own at the spec level: a policy plans with `DeploymentProfile`s, and a policy
may import only `spec`, `errors` and its solver (a pure function, testable and benchmarkable
alone). These types used to live in `catalog.profiles`, next to the file loader, so importing a
policy pulled in the catalog package and its model downloader. They are kept out of `spec.py`
itself because they are a versioned on-disk schema (`SCHEMA_VERSION`) with their own validation
and arithmetic (interpolation over load points), while `spec.py` holds the workflow and plan
vocabulary. This module imports nothing of murakkab-lg.
`catalog.profiles` re-exports every name here and adds the store and the file I/O.

A row without provenance is rejected at load time: a plan is only as trustworthy as the numbers
behind it, and a user must be able to trace every figure to a machine run or a publication.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = (
    "SCHEMA_VERSION",
    "DeploymentProfile",
    "LoadPoint",
    "ProfileFile",
    "Provenance",
    "QualityScore",
)

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Provenance(_Frozen):
    """Where a row came from: a run on a described machine, a publication, or (for tests and
    examples only) invented figures, which must say so and are never shipped as data."""

    kind: Literal["measured", "published", "synthetic"]
    source: str
    date: str
    machine: str | None = None
    command: str | None = None
    package_versions: dict[str, str] = {}
    file: str | None = None
    commit: str | None = None
    license: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Provenance:
        if self.kind == "measured" and not (self.machine and self.command):
            raise ValueError("measured provenance needs `machine` and `command`")
        if self.kind == "published" and not (self.license and (self.commit or self.date)):
            raise ValueError("published provenance needs `license` and a `commit` or `date`")
        if self.kind == "synthetic" and "synthetic" not in self.source.lower():
            raise ValueError("synthetic provenance must say `synthetic` in its `source`")
        return self

    def describe(self) -> str:
        if self.kind == "measured":
            return f"measured on {self.machine} ({self.date})"
        return f"{self.kind}: {self.source}"


class QualityScore(_Frozen):
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    metric: str
    n: Annotated[int, Field(ge=1)]
    ci_low: Annotated[float, Field(ge=0.0, le=1.0)]
    ci_high: Annotated[float, Field(ge=0.0, le=1.0)]


class LoadPoint(_Frozen):
    """Speed and energy at one concurrency level."""

    concurrency: Annotated[int, Field(ge=1)]
    # Per-stream prompt processing speed. None where the source does not publish it (the
    # ML.ENERGY rows): latency then counts decode only, and the profile's provenance says so.
    prefill_tok_s: Annotated[float, Field(gt=0)] | None
    tpot_s: Annotated[float, Field(gt=0)]  # time per output token, per stream
    throughput_tok_s: Annotated[float, Field(gt=0)]  # aggregate output tokens/s
    power_w: Annotated[float, Field(ge=0)] | None = None
    energy_per_output_token_j: Annotated[float, Field(ge=0)]
    energy_per_input_token_j: Annotated[float, Field(ge=0)] = 0.0
    # Mean time to first token as a caller sees it (queueing + prefill), where measured.
    ttft_s: Annotated[float, Field(ge=0)] | None = None


class DeploymentProfile(_Frozen):
    schema_version: int = SCHEMA_VERSION
    deployment: str
    model: str
    engine: str
    hardware: str
    quality: dict[str, QualityScore] = {}
    load: tuple[LoadPoint, ...]
    memory_gb: Annotated[float, Field(ge=0)] | None = None
    # Price per token for hosted (api) deployments, e.g. from litellm's price map; 0 for self-hosted
    # engines, whose cost is their energy and hardware.
    usd_per_input_token: Annotated[float, Field(ge=0)] = 0.0
    usd_per_output_token: Annotated[float, Field(ge=0)] = 0.0
    # "unknown": a hosted API or someone else's server, whose energy we cannot see; its energy
    # figures are then 0 placeholders that no report may print as a measurement.
    energy_label: Literal["estimated", "measured", "published", "unknown"]
    provenance: Provenance

    @model_validator(mode="after")
    def _sorted_load(self) -> DeploymentProfile:
        if not self.load:
            raise ValueError(f"profile {self.deployment!r} has no load points")
        if list(self.load) != sorted(self.load, key=lambda p: p.concurrency):
            object.__setattr__(self, "load", tuple(sorted(self.load, key=lambda p: p.concurrency)))
        return self

    def at(self, concurrency: float = 1.0) -> LoadPoint:
        """The load point at `concurrency`, linearly interpolated between measured levels."""
        pts = self.load
        if concurrency <= pts[0].concurrency:
            return pts[0]
        for lo, hi in itertools.pairwise(pts):
            if concurrency <= hi.concurrency:
                w = (concurrency - lo.concurrency) / (hi.concurrency - lo.concurrency)

                def mix(a: float, b: float, w: float = w) -> float:
                    return a + (b - a) * w

                def mix_opt(a: float | None, b: float | None) -> float | None:
                    return None if a is None or b is None else mix(a, b)

                return LoadPoint(
                    concurrency=max(1, round(concurrency)),
                    prefill_tok_s=mix_opt(lo.prefill_tok_s, hi.prefill_tok_s),
                    ttft_s=mix_opt(lo.ttft_s, hi.ttft_s),
                    tpot_s=mix(lo.tpot_s, hi.tpot_s),
                    throughput_tok_s=mix(lo.throughput_tok_s, hi.throughput_tok_s),
                    power_w=None,
                    energy_per_output_token_j=mix(lo.energy_per_output_token_j, hi.energy_per_output_token_j),
                    energy_per_input_token_j=mix(lo.energy_per_input_token_j, hi.energy_per_input_token_j),
                )
        return pts[-1]

    def latency_s(self, input_tokens: int, output_tokens: int, concurrency: float = 1.0) -> float:
        p = self.at(concurrency)
        prefill = input_tokens / p.prefill_tok_s if p.prefill_tok_s else 0.0
        return prefill + output_tokens * p.tpot_s

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.usd_per_input_token + output_tokens * self.usd_per_output_token

    def energy_j(self, input_tokens: int, output_tokens: int, concurrency: float = 1.0) -> float:
        p = self.at(concurrency)
        return input_tokens * p.energy_per_input_token_j + output_tokens * p.energy_per_output_token_j


class ProfileFile(_Frozen):
    """One profile file on disk: a schema version, what produced it, and its rows."""

    schema_version: int = SCHEMA_VERSION
    produced_by: str
    profiles: tuple[DeploymentProfile, ...]
