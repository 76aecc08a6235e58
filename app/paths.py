"""Where the workbench keeps its data: platformdirs, or all under `LLM_WORKBENCH_HOME`."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "llm-workbench"
HOME_ENV = "LLM_WORKBENCH_HOME"


@dataclass(frozen=True, slots=True)
class AppPaths:
    """The folders and files the workbench writes to."""

    data_dir: Path
    models_dir: Path
    log_dir: Path
    config_dir: Path

    @property
    def database(self) -> Path:
        """The SQLite history database."""
        return self.data_dir / "workbench.sqlite3"

    @property
    def settings_file(self) -> Path:
        """The JSON settings file (window state, last conversation, preferences)."""
        return self.config_dir / "settings.json"

    @property
    def log_file(self) -> Path:
        """The main log file."""
        return self.log_dir / "workbench.log"

    def ensure(self) -> AppPaths:
        """Create every folder; returns self."""
        for folder in (self.data_dir, self.models_dir, self.log_dir, self.config_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def app_paths() -> AppPaths:
    """The paths in effect: under `$LLM_WORKBENCH_HOME` when set, else the platform's folders."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        root = Path(home).expanduser().resolve()
        return AppPaths(
            data_dir=root / "data",
            models_dir=root / "models",
            log_dir=root / "logs",
            config_dir=root / "config",
        )
    data = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return AppPaths(
        data_dir=data,
        models_dir=data / "models",
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
    )


def resources_dir() -> Path:
    """The shipped `resources/` folder: inside a frozen app's bundle, or in the checkout."""
    bundle = getattr(sys, "_MEIPASS", None)  # PyInstaller unpacks data files here
    root = Path(bundle) if bundle else Path(__file__).resolve().parents[1]
    return root / "resources"


def bundled_demo_dir() -> Path:
    """Where a frozen app carries the demo model (`packaging/llm-workbench.spec`)."""
    return resources_dir() / "demo"
