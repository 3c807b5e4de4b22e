"""Above the runtime: how users reach it (LangGraph interception, MurakkabChat, the litellm provider)."""
