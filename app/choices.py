"""Model choices as the pickers name them: a .gguf path (llama.cpp) or "<runtime key>::<model>"."""

from __future__ import annotations

from pathlib import PurePath

SEPARATOR = "::"
LLAMACPP = "llamacpp"


def split_choice(choice: str) -> tuple[str, str]:
    """A choice as (runtime key, model): ("llamacpp", path) for a plain .gguf path, else the
    server's runtime key and model name ("ollama::llama3.2:1b" -> ("ollama", "llama3.2:1b"))."""
    if SEPARATOR in choice:
        key, model = choice.split(SEPARATOR, 1)
        return key, model
    return LLAMACPP, choice


def join_choice(runtime_key: str, model: str) -> str:
    """The choice naming `model` on `runtime_key`; a llama.cpp model is its path alone."""
    if runtime_key == LLAMACPP:
        return model
    return f"{runtime_key}{SEPARATOR}{model}"


def runtime_label(runtime_key: str) -> str:
    """How a runtime key reads: "llama.cpp", "Ollama", or a saved endpoint's name."""
    if runtime_key == LLAMACPP:
        return "llama.cpp"
    if runtime_key == "ollama":
        return "Ollama"
    if runtime_key.startswith("openai:"):
        return runtime_key.split(":", 1)[1]
    return runtime_key


def choice_label(choice: str, name: str = "") -> str:
    """A short label: "SmolLM2 135M Instruct · Q4_1 · llama.cpp", "llama3.2:1b · Ollama".

    Args:
        choice: the model choice.
        name: its display name when known (a library name); else the file stem or the
            server's model name.
    """
    key, model = split_choice(choice)
    if not name:
        name = PurePath(model).name.removesuffix(".gguf") if key == LLAMACPP else model
    return f"{name} · {runtime_label(key)}"
