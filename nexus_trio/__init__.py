"""nexus-trio: an OpenAI-compatible LLM gateway daemon on Trio."""

__version__ = "0.1.0"
