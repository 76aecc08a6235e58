"""Fixtures: an Ollama-protocol server on loopback (filled in by the Ollama runtime work)."""
