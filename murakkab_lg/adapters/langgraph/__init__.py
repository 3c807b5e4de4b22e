"""LangGraph integration: from a graph to a workflow (extract), annotations, and call interception."""

from murakkab_lg.adapters.langgraph._report import NodeReport, RunReport
from murakkab_lg.adapters.langgraph._wire import decode_route
from murakkab_lg.adapters.langgraph.annotate import annotate, annotations_of
from murakkab_lg.adapters.langgraph.wrap import WrappedGraph, wrap

__all__ = (
    "NodeReport",
    "RunReport",
    "WrappedGraph",
    "annotate",
    "annotations_of",
    "decode_route",
    "wrap",
)
