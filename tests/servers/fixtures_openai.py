"""Fixtures: OpenAI-compatible servers on loopback (filled in by the OpenAI runtime work)."""
