"""The hardware card of the "This machine" page: each probed fact, with its source on hover."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QFrame, QLabel, QWidget

from app.hardware import HardwareProfile
from app.hardware.profile import short_cpu_name
from ui.memory_bar import gb

_LIMIT_SOURCES = {
    "metal": "Metal recommendedMaxWorkingSetSize",
    "iogpu.wired_limit_mb": "sysctl iogpu.wired_limit_mb",
    "default-share-estimate": "macOS default share, estimated",
}


def hardware_facts(profile: HardwareProfile) -> list[tuple[str, str]]:
    """The card's rows, (label, plain text), in reading order."""
    facts = _processor_facts(profile) + _gpu_facts(profile) + _memory_facts(profile)
    os_text = f"{profile.os.name} {profile.os.version} ({profile.os.machine})"
    os_text += " · WSL" if profile.os.is_wsl else ""
    os_text += " · x86-64 Python under Rosetta: no Metal" if profile.os.is_translated else ""
    facts.append(("OS", os_text))
    facts.extend(("Note", note) for note in profile.notes)
    return facts


def _processor_facts(profile: HardwareProfile) -> list[tuple[str, str]]:
    cpu, apple = profile.cpu, profile.apple
    facts: list[tuple[str, str]] = []
    if apple is not None:
        gpu_cores = f" · {apple.gpu_cores}-core GPU" if apple.gpu_cores else ""
        facts.append((
            "Chip",
            f"{apple.chip} · {apple.performance_cores} performance + "
            f"{apple.efficiency_cores} efficiency cores{gpu_cores}",
        ))  # fmt: skip
    cores = f"{cpu.physical_cores} cores"
    if cpu.efficiency_cores:
        cores = f"{cpu.performance_cores}P + {cpu.efficiency_cores}E cores"
    flags = f" · {' '.join(cpu.flags)}" if cpu.flags else ""
    name = short_cpu_name(cpu.model)
    facts.append(("CPU", f"{name} · {cores} · {cpu.logical_cores} threads{flags}"))
    return facts


def _gpu_facts(profile: HardwareProfile) -> list[tuple[str, str]]:
    apple = profile.apple
    facts: list[tuple[str, str]] = []
    for gpu in profile.gpus:
        free = f" ({gb(gpu.memory_free_bytes)} free)" if gpu.memory_free_bytes is not None else ""
        extra = "".join(
            f" · {name} {value}"
            for name, value in (("driver", gpu.driver), ("compute", gpu.compute_capability))
            if value
        )
        vram = f"{gb(gpu.memory_total_bytes)} VRAM{free}{extra}"
        facts.append(("GPU", f"{gpu.name} · {vram} · via {gpu.source}"))
    if apple is not None:
        where = _LIMIT_SOURCES.get(apple.gpu_limit_source, apple.gpu_limit_source)
        wired = f", wired limit {apple.wired_limit_mb} MB" if apple.wired_limit_mb else ""
        facts.append((
            "Unified memory",
            f"{gb(apple.unified_memory_bytes)} · GPU working-set limit "
            f"{gb(apple.gpu_limit_bytes)} (from {where}{wired})",
        ))  # fmt: skip
    elif not profile.gpus:
        facts.append(("GPU", "none found: models run on the CPU, from RAM"))
    for gpu in profile.other_gpus:
        facts.append(("Other GPU", f"{gpu.vendor} {gpu.name}: not usable by llama.cpp here"))
    budget = profile.gpu_memory_limit_bytes
    if apple is None and budget is not None:
        facts.append(("GPU budget", f"{gb(budget)} of VRAM for models"))
    for band in profile.bandwidth:
        where = "RAM" if band.device == "cpu" else "GPU memory"
        per_s = band.bytes_per_second / 1e9
        facts.append(("Bandwidth", f"{where} {per_s:.0f} GB/s ({band.source})"))
    return facts


def _memory_facts(profile: HardwareProfile) -> list[tuple[str, str]]:
    mem = profile.memory
    swap = "none"
    if mem.swap_total_bytes:
        swap = f"{gb(mem.swap_total_bytes)} ({gb(mem.swap_free_bytes)} free)"
    disk = "not measured"
    if profile.disk_free_bytes is not None:
        disk = f"{gb(profile.disk_free_bytes)} free in {profile.models_dir or 'the models folder'}"
    return [
        ("RAM", f"{gb(mem.total_bytes)} · {gb(mem.available_bytes)} available at probe"),
        ("Swap", swap),
        ("Disk", disk),
    ]


class HardwareCard(QFrame):
    """The probed facts as label: value rows; the sources on hover."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.form = QFormLayout(self)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)

    def set_profile(self, profile: HardwareProfile | None) -> None:
        """Rebuild the rows for `profile` (None: "Probing hardware…")."""
        while self.form.rowCount():
            self.form.removeRow(0)
        if profile is None:
            self.form.addRow(QLabel("Probing hardware…", self))
            self.setToolTip("")
            return
        for label, text in hardware_facts(profile):
            value = QLabel(html.escape(text), self)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            muted = "color: palette(placeholder-text)" if label == "Note" else ""
            value.setStyleSheet(muted)
            self.form.addRow(f"<b>{label}</b>", value)
        sources = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in profile.sources
        )
        self.setToolTip(f"<b>Where each fact came from</b><table>{sources}</table>")

    def texts(self) -> list[str]:
        """The rows' texts as shown (for tests and accessibility)."""
        out: list[str] = []
        for row in range(self.form.rowCount()):
            for role in (QFormLayout.ItemRole.LabelRole, QFormLayout.ItemRole.FieldRole):
                item = self.form.itemAt(row, role)
                widget = item.widget() if item is not None else None
                if isinstance(widget, QLabel):
                    out.append(widget.text())
        return out
