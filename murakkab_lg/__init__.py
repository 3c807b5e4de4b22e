"""murakkab-lg: profile-guided, workflow-wide model and engine selection for LangGraph agents."""

from murakkab_lg.adapters.chat import MurakkabChat
from murakkab_lg.errors import MurakkabError, PlanInfeasibleError
from murakkab_lg.runtime import Route, Runtime
from murakkab_lg.spec import Constraints, Intent, Objective, Plan, Workflow, WorkflowNode, register_intent

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
    "register_intent",
)
