"""Ground floor: adapters to inference engines (llama.cpp, Ollama, OpenAI-compatible)."""
