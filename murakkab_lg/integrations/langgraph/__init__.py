"""LangGraph integration: from a graph to a workflow (extract), annotations, and call interception."""

from murakkab_lg.integrations.langgraph._report import NodeReport, RunReport
from murakkab_lg.integrations.langgraph.annotate import annotate, annotations_of
from murakkab_lg.integrations.langgraph.wrap import WrappedGraph, wrap
from murakkab_lg.wire import decode_route

__all__ = (
    "NodeReport",
    "RunReport",
    "WrappedGraph",
    "annotate",
    "annotations_of",
    "decode_route",
    "wrap",
)
