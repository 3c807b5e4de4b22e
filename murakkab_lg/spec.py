"""The vocabulary of murakkab-lg as frozen pydantic values.

These types cross every boundary (annotation -> workflow -> policy -> plan -> runtime -> report),
so they are immutable: a policy returns a new `Plan`, it never edits the `Workflow` it was given.
Units live in field names (`latency_slo_s`, `max_energy_j`) so a number is never ambiguous.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from murakkab_lg.checks import Check, as_check
from murakkab_lg.errors import ConfigError, UnknownIntentError

__all__ = (
    "Alternative",
    "ApiSettings",
    "Constraints",
    "Deployment",
    "Device",
    "EngineConfig",
    "Intent",
    "Inventory",
    "LlamaCppSettings",
    "NodeChoice",
    "Objective",
    "OpenAiServerSettings",
    "Placement",
    "Plan",
    "Prediction",
    "Rejection",
    "SimulatedSettings",
    "VllmSettings",
    "Workflow",
    "WorkflowNode",
    "intent_metric",
    "known_intents",
    "register_intent",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Objective(StrEnum):
    """What a plan minimises once every constraint holds."""

    ENERGY = "energy"
    LATENCY = "latency"
    COST = "cost"


# An open set: the built-in intents and the one-line metric that scores each of them.
_INTENTS: dict[str, str] = {
    "classify": "accuracy of the predicted label (exact match after normalising case and spaces)",
    "extract": "share of fields extracted exactly (JSON keys compared after normalising)",
    "summarize": "share of required facts present in the summary",
    "plan": "share of items where the chosen action matches the reference",
    "reason": "exact match of the final numeric or categorical answer",
    "answer": "exact match of the short answer after normalising (lenient containment)",
    "code": "share of generated functions that pass their unit tests",
    "draft": "share of drafts that pass their content checks (mentions, length, no placeholders)",
    "tool-use": "share of calls that name the right tool with arguments that validate against its schema "
                "and carry the request's key values",
}


def register_intent(name: str, metric: str) -> None:
    """Add a user intent; its metric is one line saying how quality 0..1 is scored."""
    if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"intent name {name!r} must be a non-empty identifier")
    _INTENTS[name] = metric


def known_intents() -> tuple[str, ...]:
    return tuple(sorted(_INTENTS))


def intent_metric(name: str) -> str:
    try:
        return _INTENTS[name]
    except KeyError:
        raise UnknownIntentError(
            f"unknown intent {name!r}; known intents: {', '.join(known_intents())}. "
            "To fix: use one of these, or call murakkab_lg.register_intent(name, metric) first."
        ) from None


class Constraints(_Frozen):
    """Per-node limits. `None` means unconstrained."""

    min_quality: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    latency_slo_s: Annotated[float, Field(gt=0.0)] | None = None
    latency_stat: Literal["p50", "p95"] = "p50"
    max_cost_usd: Annotated[float, Field(ge=0.0)] | None = None
    max_energy_j: Annotated[float, Field(gt=0.0)] | None = None


_CONSTRAINT_KEYS = frozenset(Constraints.model_fields)


class Intent(_Frozen):
    """The annotation on one node: what it asks an LLM to do, and within which limits.

    Accepts the constraints flat (`Intent("classify", min_quality=0.8)`) or nested
    (`{"intent": "classify", "constraints": {"min_quality": 0.8}}`), because the flat form reads
    best in code and the nested one round-trips through JSON.
    """

    intent: str
    constraints: Constraints = Constraints()
    expected_calls: Annotated[float, Field(gt=0.0)] = 1.0
    expected_input_tokens: Annotated[int, Field(ge=0)] = 200
    expected_output_tokens: Annotated[int, Field(ge=1)] = 32
    # How many times the node runs per workflow run (a loop's expected iterations); the extractor
    # gives every node of a loop the largest value annotated on any of them.
    expected_iterations: Annotated[float, Field(ge=1.0)] = 1.0
    # How many copies run in parallel per run (a `Send` fan-out's expected width): they hit the
    # deployment together, so latency and energy are predicted at that concurrency.
    expected_fanout: Annotated[float, Field(ge=1.0)] = 1.0
    # Run-time cascade (murakkab_lg.checks): the answer of a cascade plan's cheaper stage must pass
    # `check` (a callable, a JSON schema dict, a regex or a built-in name such as "json_valid") and,
    # where the engine returns logprobs, reach `min_confidence` (exp of the mean token logprob),
    # else the call escalates to the next stage. The check is not serialised (a callable cannot
    # be): it is excluded from JSON and from the wire, so a server needs it configured locally.
    check: SkipJsonSchema[Check | None] = Field(default=None, exclude=True)
    min_confidence: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    # Observed share of calls whose first cascade stage failed its check (set by re-planning from
    # live state); None: the planner takes the profile's quality as the first stage's pass rate.
    escalation_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, intent: str | None = None, /, **data: Any) -> None:
        if intent is not None:
            data["intent"] = intent
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _lift_flat_constraints(cls, data: Any) -> Any:
        if isinstance(data, dict):
            flat = {k: data[k] for k in _CONSTRAINT_KEYS if k in data}
            if flat:
                data = {k: v for k, v in data.items() if k not in flat}
                nested = data.get("constraints") or {}
                if isinstance(nested, Constraints):
                    nested = nested.model_dump(exclude_unset=True)
                data["constraints"] = {**nested, **flat}
        return data

    @field_validator("check", mode="before")
    @classmethod
    def _as_check(cls, value: Any) -> Check | None:
        return as_check(value)

    @model_validator(mode="after")
    def _intent_is_known(self) -> Intent:
        intent_metric(self.intent)
        return self

    @property
    def min_quality(self) -> float | None:
        return self.constraints.min_quality

    @property
    def latency_slo_s(self) -> float | None:
        return self.constraints.latency_slo_s


class WorkflowNode(_Frozen):
    """One annotated node; `name` is its path (`research/summarize` inside a subgraph)."""

    name: str
    intent: Intent


class Workflow(_Frozen):
    """The DAG of annotated nodes the planner sees.

    `edges` are (source, target) pairs between node names; conditional edges contribute every
    possible target, so the critical path is the worst feasible one.
    """

    name: str = "workflow"
    nodes: tuple[WorkflowNode, ...]
    edges: tuple[tuple[str, str], ...] = ()
    latency_slo_s: Annotated[float, Field(gt=0.0)] | None = None
    objective: Objective | None = None  # None: the runtime's objective
    # Expected workflow runs per second; None: one run at a time. With a rate, the planner checks
    # that the deployments carry the load and predicts latency at the concurrency it implies.
    arrival_rate_per_s: Annotated[float, Field(gt=0.0)] | None = None

    @model_validator(mode="after")
    def _edges_name_nodes(self) -> Workflow:
        names = {n.name for n in self.nodes}
        if len(names) != len(self.nodes):
            raise ConfigError(f"workflow {self.name!r} has duplicate node names")
        for src, dst in self.edges:
            for end in (src, dst):
                if end not in names:
                    raise ConfigError(
                        f"workflow {self.name!r}: edge {src!r}->{dst!r} names unknown node "
                        f"{end!r}; nodes: {', '.join(sorted(names))}"
                    )
        return self

    def node(self, name: str) -> WorkflowNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(
            f"workflow {self.name!r} has no node {name!r}; "
            f"nodes: {', '.join(n.name for n in self.nodes)}"
        )


class LlamaCppSettings(_Frozen):
    """llama.cpp `llama-server` settings the runtime may choose."""

    engine: Literal["llamacpp"] = "llamacpp"
    threads: Annotated[int, Field(ge=1)] = 2
    parallel: Annotated[int, Field(ge=1)] = 1
    ctx_size: Annotated[int, Field(ge=256)] = 4096
    batch_size: Annotated[int, Field(ge=32)] = 512
    ubatch_size: Annotated[int, Field(ge=32)] = 512
    no_mmap: bool = False

    def label(self) -> str:
        return f"llamacpp t={self.threads} np={self.parallel}"


class VllmSettings(_Frozen):
    """vLLM `vllm serve` settings the runtime may choose."""

    engine: Literal["vllm"] = "vllm"
    tensor_parallel_size: Annotated[int, Field(ge=1)] = 1
    max_num_seqs: Annotated[int, Field(ge=1)] = 256
    quantization: str | None = None
    gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    max_model_len: Annotated[int, Field(ge=256)] | None = None

    def label(self) -> str:
        q = f" q={self.quantization}" if self.quantization else ""
        return f"vllm tp={self.tensor_parallel_size} seqs={self.max_num_seqs}{q}"


class ApiSettings(_Frozen):
    """A hosted model reached through litellm (`openai/gpt-4.1-mini`, `anthropic/...`); no placement.

    Keys come from the environment as litellm reads them (`OPENAI_API_KEY`, ...), or from the
    variable named in `api_key_env`. `api_base` points litellm at another endpoint (a proxy, or a
    local OpenAI-compatible server in tests). `mock_response` makes litellm answer that text
    without any network call: for tests and examples only, never a measurement of a real model.
    """

    engine: Literal["api"] = "api"
    litellm_model: str
    api_base: str | None = None
    api_key_env: str | None = None
    mock_response: str | None = None

    def label(self) -> str:
        return f"api {self.litellm_model}" + (" (mock)" if self.mock_response is not None else "")


class OpenAiServerSettings(_Frozen):
    """An OpenAI-compatible server someone else runs (vLLM, llama.cpp, Ollama, TGI): never started by us.

    `base_url` is the API root as the openai SDK takes it (usually ending in `/v1`); requests are
    sent with `served_model` as their model; the key, if any, is read from the variable named in
    `api_key_env` (never written in a config file).
    """

    engine: Literal["openai"] = "openai"
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    served_model: Annotated[str, Field(min_length=1)]
    api_key_env: str | None = None

    def label(self) -> str:
        return f"openai {self.served_model} at {self.base_url}"


class SimulatedSettings(_Frozen):
    """A profile-driven engine for the simulator and scale tests; never the default."""

    engine: Literal["simulated"] = "simulated"

    def label(self) -> str:
        return "simulated"


EngineConfig = Annotated[
    LlamaCppSettings | VllmSettings | ApiSettings | OpenAiServerSettings | SimulatedSettings,
    Field(discriminator="engine"),
]


class Placement(_Frozen):
    """Where a deployment runs."""

    device: str = "cpu"
    gpus: tuple[int, ...] = ()  # physical GPU indices; replica i uses gpus[i*tp:(i+1)*tp]
    host: str = "localhost"
    # Per replica, the exact CUDA_VISIBLE_DEVICES value where GPU indices are not enough (MIG
    # slices are addressed by UUID); empty: derived from `gpus`.
    cuda_visible_devices: tuple[str, ...] = ()


class Device(_Frozen):
    """One schedulable device: a GPU (or MIG slice) or a host's CPU cores."""

    id: str  # "cpu", "gpu0", "gpu0/mig1g.18gb/0"
    kind: str  # "cpu", "H100", "A100", ...
    memory_gb: Annotated[float, Field(ge=0.0)]
    compute_units: Annotated[float, Field(gt=0.0)] = 1.0  # cores for a CPU, 1.0 for a whole GPU
    host: str = "localhost"
    power_limit_w: Annotated[float, Field(ge=0.0)] | None = None
    gpu_index: int | None = None  # the physical GPU (also for a MIG slice); None for a CPU
    uuid: str | None = None  # "GPU-..." or "MIG-...": what CUDA_VISIBLE_DEVICES names a slice by


class Inventory(_Frozen):
    """The devices a plan may place deployments on."""

    devices: tuple[Device, ...]


class Deployment(_Frozen):
    """model x engine config x placement: what the runtime starts, stops and routes to."""

    name: str
    model: str
    engine: EngineConfig
    placement: Placement = Placement()
    replicas: Annotated[int, Field(ge=1)] = 1


class Prediction(_Frozen):
    """Predicted per-node figures for one call, as a policy computed them from profiles."""

    quality: float | None  # None: no measurement for this intent
    latency_s: float
    energy_j: float
    cost_usd: float = 0.0


class Rejection(_Frozen):
    """A deployment a policy considered for a node and did not choose, and why."""

    deployment: str
    reason: Literal["quality floor", "latency SLO", "energy budget", "cost budget", "capacity", "objective"]
    detail: str
    prediction: Prediction


class Alternative(_Frozen):
    """A deployment that also meets every per-node constraint, ranked behind the choice."""

    deployment: str
    prediction: Prediction


class NodeChoice(_Frozen):
    """One node's deployment, why, and what else would do.

    `alternatives` are the deployments that also meet the node's floor and budgets, best first by
    the plan's objective, each with its predicted latency and energy: the router spills to them
    when the choice is overloaded (runtime/control.py). A policy may set them; otherwise they are
    the `rejected` entries whose only fault was the objective (every policy records those).
    """

    node: str
    intent: str
    deployment: str
    prediction: Prediction
    reason: str
    rejected: tuple[Rejection, ...] = ()
    # Cascade plans: deployments to escalate to, in order, when the node's check fails.
    escalation: tuple[str, ...] = ()
    alternatives: tuple[Alternative, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _alternatives_from_rejected(cls, data: Any) -> Any:
        if isinstance(data, dict) and "alternatives" not in data and data.get("rejected"):
            alts = []
            for r in data["rejected"]:
                r = r if isinstance(r, Rejection) else Rejection.model_validate(r)
                if r.reason == "objective" and " -> " not in r.deployment:  # a cascade chain is no deployment
                    alts.append(Alternative(deployment=r.deployment, prediction=r.prediction))
            data = {**data, "alternatives": tuple(alts)}
        return data


class Plan(_Frozen):
    """The runtime's decision for one workflow."""

    workflow: str
    policy: str
    objective: Objective
    choices: tuple[NodeChoice, ...]
    deployments: tuple[Deployment, ...]
    profile_source: str = ""

    def choice(self, node: str) -> NodeChoice:
        for c in self.choices:
            if c.node == node:
                return c
        raise KeyError(node)

    def deployment_for(self, node: str) -> Deployment:
        name = self.choice(node).deployment
        return next(d for d in self.deployments if d.name == name)
