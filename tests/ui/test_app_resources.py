"""The application object: name, icon, and the Linux launcher for a source checkout."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

from ui.main import RESOURCES, create_application

ROOT = Path(__file__).resolve().parents[2]


def test_the_application_has_its_name_and_a_rendering_icon(qtbot) -> None:
    app = create_application()
    assert app.applicationName() == "LLM Workbench"
    assert (RESOURCES / "icon.svg").is_file()
    pixmap = app.windowIcon().pixmap(64, 64)
    assert not pixmap.isNull()
    assert pixmap.toImage().pixelColor(32, 10).blue() > 150  # the blue tile, not transparency


def test_desktop_entry_installs_and_points_at_this_checkout(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    script = ROOT / "packaging" / "linux" / "install-desktop-entry.sh"
    subprocess.run([str(script)], env=env, check=True, capture_output=True)
    entry = tmp_path / "applications" / "llm-workbench.desktop"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(entry)
    section = parser["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"].strip('"') == str(ROOT / "workbench.sh")
    assert (tmp_path / "icons/hicolor/scalable/apps/llm-workbench.svg").is_file()
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(
            ["desktop-file-validate", str(entry)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
    subprocess.run([str(script), "--remove"], env=env, check=True, capture_output=True)
    assert not entry.exists()
