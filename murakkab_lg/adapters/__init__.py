"""Adapters: LangGraph and LangChain on top, engines, clusters and telemetry below."""
