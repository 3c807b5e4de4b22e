"""Eval sets per intent (shipped as data) and their scorers.

Importing this package registers the built-in `core.<intent>` sets; other packages (the demo's
`triage.*` sets, a user's own) register theirs with `register_eval_set`.
"""

from murakkab_lg.evals import builtin as _builtin  # noqa: F401  (registers core.* sets)
from murakkab_lg.evals.base import EvalItem, EvalSet, eval_set_names, get_eval_set, register_eval_set, wilson_interval

__all__ = ("EvalItem", "EvalSet", "eval_set_names", "get_eval_set", "register_eval_set", "wilson_interval")
