"""Eval sets per intent (shipped as data) and their scorers."""

from murakkab_lg.evals.base import EvalItem, EvalSet, eval_set_names, get_eval_set, register_eval_set, wilson_interval

__all__ = ("EvalItem", "EvalSet", "eval_set_names", "get_eval_set", "register_eval_set", "wilson_interval")
