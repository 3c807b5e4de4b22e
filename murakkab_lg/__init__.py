"""murakkab-lg: profile-guided, workflow-wide model and engine selection for LangGraph agents.

The public names load lazily (PEP 562): importing a light submodule such as
`murakkab_lg.policies.milp` must not pull in LangChain, httpx or the runtime, so that policies
stay pure functions that can be imported, tested and benchmarked alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from murakkab_lg.errors import MurakkabError, PlanInfeasibleError
    from murakkab_lg.integrations.chat import MurakkabChat
    from murakkab_lg.integrations.langgraph import annotate, wrap
    from murakkab_lg.runtime import Runtime
    from murakkab_lg.spec import Constraints, Intent, Objective, Plan, Workflow, WorkflowNode, register_intent
    from murakkab_lg.wire import Route

__all__ = (
    "Constraints",
    "Intent",
    "MurakkabChat",
    "MurakkabError",
    "Objective",
    "Plan",
    "PlanInfeasibleError",
    "Route",
    "Runtime",
    "Workflow",
    "WorkflowNode",
    "annotate",
    "register_intent",
    "wrap",
)

_WHERE = {
    "MurakkabChat": "murakkab_lg.integrations.chat",
    "MurakkabError": "murakkab_lg.errors",
    "PlanInfeasibleError": "murakkab_lg.errors",
    "Route": "murakkab_lg.wire",
    "Runtime": "murakkab_lg.runtime",
    "annotate": "murakkab_lg.integrations.langgraph",
    "wrap": "murakkab_lg.integrations.langgraph",
    **{n: "murakkab_lg.spec" for n in ("Constraints", "Intent", "Objective", "Plan", "Workflow",
                                       "WorkflowNode", "register_intent")},
}


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'murakkab_lg' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
