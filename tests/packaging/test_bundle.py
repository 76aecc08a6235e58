"""The double-click packaging: the .desktop entry and file type, the icon set, and (with
`PACKAGING=1`) a real PyInstaller build whose `--self-test` passes offscreen."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"
ICONS = ROOT / "packaging" / "icons"
sys.path.insert(0, str(ROOT / "packaging"))
import make_icons  # noqa: E402


def _validate(entry: Path) -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    done = subprocess.run([tool, str(entry)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stdout.lower()


def test_the_bundle_desktop_entry_validates_and_opens_gguf_files() -> None:
    entry = LINUX / "llm-workbench.desktop"
    _validate(entry)
    text = entry.read_text(encoding="utf-8")
    assert "Exec=llm-workbench %f\n" in text
    assert "MimeType=application/x-gguf;\n" in text
    assert "Icon=llm-workbench\n" in text


def test_the_source_checkout_entry_validates_once_filled_in(tmp_path: Path) -> None:
    template = (LINUX / "llm-workbench.desktop.in").read_text(encoding="utf-8")
    entry = tmp_path / "llm-workbench.desktop"
    entry.write_text(template.replace("@ROOT@", str(ROOT)), encoding="utf-8")
    _validate(entry)


def test_the_mime_type_matches_gguf_by_name_and_magic() -> None:
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    root = ET.parse(LINUX / "llm-workbench-mime.xml").getroot()
    mime = root.find("m:mime-type", ns)
    assert mime is not None and mime.get("type") == "application/x-gguf"
    assert mime.find("m:glob", ns).get("pattern") == "*.gguf"  # type: ignore[union-attr]
    assert mime.find("m:magic/m:match", ns).get("value") == "GGUF"  # type: ignore[union-attr]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_icon_set_is_complete_and_each_png_has_its_size() -> None:
    for size in make_icons.PNG_SIZES:
        png = ICONS / "hicolor" / f"{size}x{size}" / "apps" / "llm-workbench.png"
        assert _png_size(png.read_bytes()) == (size, size), png
    assert (ICONS / "hicolor" / "scalable" / "apps" / "llm-workbench.svg").read_bytes() == (
        ROOT / "resources" / "icon.svg"
    ).read_bytes()


def test_the_ico_holds_every_windows_size() -> None:
    data = (ICONS / "llm-workbench.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind, count) == (0, 1, len(make_icons.ICO_SIZES))
    sizes = []
    for i in range(count):
        width, _h, _c, _r, _p, _bpp, length, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * i : 22 + 16 * i]
        )
        assert _png_size(data[offset : offset + length]) == (width or 256, width or 256)
        sizes.append(width or 256)
    assert sizes == sorted(make_icons.ICO_SIZES)


def test_the_icns_holds_every_macos_type() -> None:
    data = (ICONS / "llm-workbench.icns").read_bytes()
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    found: dict[str, tuple[int, int]] = {}
    at = 8
    while at < len(data):
        kind = data[at : at + 4].decode("ascii")
        length = struct.unpack(">I", data[at + 4 : at + 8])[0]
        found[kind] = _png_size(data[at + 8 : at + length])
        at += length
    assert found == {kind: (size, size) for kind, size in make_icons.ICNS_TYPES}


@pytest.mark.skipif(
    os.environ.get("PACKAGING") != "1",
    reason="builds the PyInstaller bundle (minutes): run with PACKAGING=1",
)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux bundle")
@pytest.mark.timeout(1800)
def test_the_linux_bundle_builds_and_passes_its_self_test(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable, QT_QPA_PLATFORM="offscreen")
    build = subprocess.run(
        [str(ROOT / "packaging" / "build")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert "self-test passed: 5 checks" in build.stdout
    bundle = ROOT / "dist" / "llm-workbench"
    env["LLM_WORKBENCH_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [str(bundle / "llm-workbench"), "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(frozen app, linux)" in done.stdout.splitlines()[0]
    assert "ok    llama.cpp worker: SmolLM2" in done.stdout
    assert list((ROOT / "dist").glob("llm-workbench-*-linux-*.tar.gz"))
