"""Policies: pure functions from (workflow, candidates with profiles, objective) to a Plan."""

from __future__ import annotations

import importlib

from murakkab_lg.errors import ConfigError
from murakkab_lg.policies.base import Candidate, PlanningProblem, Policy, evaluate

__all__ = ("Candidate", "PlanningProblem", "Policy", "evaluate", "get_policy", "policy_names")

# name -> "module:Class"; loaded on first use so a policy's solver is imported only when chosen.
_REGISTRY: dict[str, str] = {
    "static": "murakkab_lg.policies.static:StaticPolicy",
    "greedy": "murakkab_lg.policies.greedy:GreedyPolicy",
    "milp": "murakkab_lg.policies.milp:MilpPolicy",
    "cascade": "murakkab_lg.policies.cascade:CascadePolicy",
}


def register_policy(name: str, target: str) -> None:
    """Register a policy class by dotted path `package.module:Class`."""
    _REGISTRY[name] = target


def policy_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_policy(name: str, **kwargs: object) -> Policy:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown policy {name!r}; valid: {', '.join(policy_names())}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)
