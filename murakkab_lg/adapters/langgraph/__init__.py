"""LangGraph integration: from a graph to a workflow (extract), annotations, and call interception."""
