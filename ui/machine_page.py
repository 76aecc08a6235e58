"""The "This machine" page: hardware card, live memory bar, and the Recommended table."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import psutil
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.fit_types import FitRequest, FitVerdict, Recommendation
from app.hardware import HardwareProfile
from ui.fit_badge import FitBadge
from ui.hardware_view import HardwareCard
from ui.memory_bar import MemoryBar, breakdown_legend, size_text
from ui.recommend_table import RecommendControls, RecommendTable, context_label
from ui.workers import CallWorker, WorkerThread, start_worker, wait_all

log = logging.getLogger(__name__)

DEBOUNCE_MS = 150
MEMORY_REFRESH_MS = 2000

RecommendFn = Callable[[FitRequest], Sequence[Recommendation]]
FitFn = Callable[[str, FitRequest], FitVerdict]


class MachinePage(QWidget):
    """What this machine has, and which models × quants fit it at the chosen context.

    Every change of context, KV type or flash attention recomputes all verdicts on a worker
    thread (debounced; only one estimate runs at a time and only the latest request's result
    is shown). The rows update in place.

    Args:
        profile: the probed hardware; None while the probe runs ("Probing hardware…").
        recommend_fn: the recommendations for a request on this machine; None: not yet.
        fit_fn: the verdict for a local GGUF file; None hides "Check a GGUF file…".

    Signals:
        download_requested(object): the user asked to download a `Recommendation`.
        recommendations_shown(object): the table now shows the figures of this `FitRequest`.
    """

    download_requested = Signal(object)
    recommendations_shown = Signal(object)

    def __init__(
        self,
        profile: HardwareProfile | None = None,
        recommend_fn: RecommendFn | None = None,
        fit_fn: FitFn | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("This Machine — LLM Workbench")
        self.profile = profile
        self.recommend_fn = recommend_fn
        self.fit_fn = fit_fn
        self.shown_request: FitRequest | None = None
        self.checked_file = ""
        self.download_notice: QMessageBox | None = None
        self._jobs: list[WorkerThread] = []
        self._recommend_running = False
        self._recommend_pending = False
        self._fit_running = False
        self._fit_pending = False
        self._halted = False  # closed: start nothing until shown again
        self._started_request: FitRequest | None = None
        self._build()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._on_debounce_timeout)
        self._memory_timer = QTimer(self)
        self._memory_timer.setInterval(MEMORY_REFRESH_MS)
        self._memory_timer.timeout.connect(self._on_memory_timer_timeout)
        self.set_profile(profile)

    # ------------------------------------------------------------------ build

    def _build(self) -> None:
        self.card = HardwareCard(self)
        self.memory_bar = MemoryBar(self)
        self.vram_bar = MemoryBar(self)
        self.vram_label = QLabel("GPU memory (at probe time)", self)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.table = RecommendTable(self)
        self.controls = RecommendControls(self)
        self.controls.request_changed.connect(self._on_controls_request_changed)
        # Short names for the controls (tests, screenshots).
        self.context_slider = self.controls.context_slider
        self.kv_combo = self.controls.kv_combo
        self.flash_check = self.controls.flash_check
        self.table.activated_recommendation.connect(self._on_table_activated_recommendation)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)
        title = QLabel("<b>This machine</b> — what it has, and which models run well on it", self)
        self.memory_title = QLabel("<b>Memory</b>", self)
        legend = QLabel(f"Memory column: {breakdown_legend()}", self)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.card)
        layout.addWidget(self.memory_title)
        layout.addWidget(self.memory_bar)
        layout.addWidget(self.vram_label)
        layout.addWidget(self.vram_bar)
        layout.addSpacing(6)
        layout.addWidget(QLabel("<b>Recommended</b> for this machine", self))
        layout.addWidget(self.controls)
        layout.addLayout(self._build_filters())
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(legend)
        layout.addLayout(self._build_file_check())

    def _build_filters(self) -> QHBoxLayout:
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter models…")
        self.filter_edit.setClearButtonEnabled(True)
        self.fits_only_check = QCheckBox("Fits only", self)
        self.download_button = QPushButton("Download…", self)
        self.download_button.setEnabled(False)
        self.filter_edit.textChanged.connect(self._on_filter_edit_text_changed)
        self.fits_only_check.toggled.connect(self._on_fits_only_check_toggled)
        self.download_button.clicked.connect(self._on_download_button_clicked)
        row = QHBoxLayout()
        row.addWidget(self.filter_edit, 1)
        row.addWidget(self.fits_only_check)
        row.addWidget(self.download_button)
        return row

    def _build_file_check(self) -> QHBoxLayout:
        self.check_file_button = QPushButton("Check a GGUF file…", self)
        self.check_file_button.clicked.connect(self._on_check_file_button_clicked)
        self.file_badge = FitBadge(None, self)
        self.file_result = QLabel("", self)
        self.file_result.setWordWrap(True)
        self.file_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(self.check_file_button)
        row.addWidget(self.file_badge)
        row.addWidget(self.file_result, 1)
        self.check_file_button.setVisible(self.fit_fn is not None)
        return row

    # ---------------------------------------------------------------- public

    def set_profile(
        self,
        profile: HardwareProfile | None,
        recommend_fn: RecommendFn | None = None,
        fit_fn: FitFn | None = None,
    ) -> None:
        """Show a (new) probe and estimate again; functions given replace the old ones (they
        are usually bound to the profile)."""
        self.profile = profile
        if recommend_fn is not None:
            self.recommend_fn = recommend_fn
        if fit_fn is not None:
            self.fit_fn = fit_fn
            self.check_file_button.show()
        self.card.set_profile(profile)
        unified = profile is not None and profile.apple is not None
        what = "Unified memory" if unified else "RAM"
        self.memory_title.setText(f"<b>{what}</b> now (refreshed every 2 s)")
        self._show_vram(profile)
        self._on_memory_timer_timeout()
        self.refresh()

    def current_request(self) -> FitRequest:
        """The request the controls describe now."""
        return self.controls.current_request()

    def refresh(self) -> None:
        """Estimate every recommendation for the current request (now, not debounced)."""
        self._debounce.stop()
        if self._halted:
            return
        if self.profile is None or self.recommend_fn is None:
            self._set_status("Probing hardware… recommendations follow when it is done.")
            return
        if self._recommend_running:
            self._recommend_pending = True
            return
        request = self.current_request()
        fn = self.recommend_fn
        self._recommend_running = True
        self._started_request = request
        self._set_status(f"Estimating at {context_label(request.n_ctx)}…")
        self._start(CallWorker(lambda: tuple(fn(request)), (request, self.profile)), "recommend")
        if self.checked_file:
            self.check_file(self.checked_file)

    def check_file(self, path: str) -> None:
        """Fit a local GGUF file at the current request; the badge shows the verdict."""
        if self.fit_fn is None or self._halted:
            return
        self.checked_file = path
        if self._fit_running:  # one check at a time (a dry run takes seconds); then the latest
            self._fit_pending = True
            return
        self._fit_running = True
        request = self.current_request()
        fit_fn = self.fit_fn
        self.file_result.setText(f"Checking {html.escape(path)}…")
        self._start(CallWorker(lambda: fit_fn(path, request), (path, request)), "fit")

    def request_download(self, item: Recommendation) -> None:
        """Announce the download wish and say where the file is (downloads come later)."""
        self.download_requested.emit(item)
        if self.download_notice is not None:
            self.download_notice.close()
            self.download_notice.deleteLater()
        text = (
            f"<b>{html.escape(item.model_name)} · {html.escape(item.quant)}</b><br>"
            f"Repository: <code>{html.escape(item.repo)}</code><br>"
            f"File: <code>{html.escape(item.file_name)}</code> ({size_text(item.file_size_bytes)})"
            "<br><br>Downloads come with the Models (library) page. Until then, get the file "
            f"from https://huggingface.co/{html.escape(item.repo)} and open it with "
            "File ▸ Open GGUF File…"
        )
        if item.local_path:
            text += f"<br><br>This file is already here: {html.escape(item.local_path)}"
        box = QMessageBox(QMessageBox.Icon.Information, "Download", text, parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_notice = box
        box.open()

    def wait_for_workers(self, msecs: int = 10_000) -> bool:
        """Stop timers and block until running estimates end (window close, tests); nothing
        new starts until the page is shown again."""
        self._halted = True
        self._debounce.stop()
        self._memory_timer.stop()
        self._recommend_pending = False
        self._fit_pending = False
        return wait_all(self._jobs, msecs)

    # ------------------------------------------------------------- internals

    def _start(self, worker: CallWorker, kind: str) -> None:
        def connect() -> None:
            if kind == "recommend":
                worker.returned.connect(self._on_recommend_worker_returned)
                worker.failed.connect(self._on_recommend_worker_failed)
                worker.finished.connect(self._on_recommend_worker_finished)
            else:
                worker.returned.connect(self._on_fit_worker_returned)
                worker.failed.connect(self._on_fit_worker_failed)
                worker.finished.connect(self._on_fit_worker_finished)

        self._jobs = [j for j in self._jobs if j.running()]
        self._jobs.append(start_worker(worker, connect, self))

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _show_vram(self, profile: HardwareProfile | None) -> None:
        gpus = profile.gpus if profile is not None and profile.apple is None else ()
        total = sum(g.memory_total_bytes for g in gpus)
        free = sum(g.memory_free_bytes or 0 for g in gpus)
        known = all(g.memory_free_bytes is not None for g in gpus)
        self.vram_bar.set_memory(total, free if known else total, None)
        self.vram_bar.setVisible(bool(gpus))
        self.vram_label.setVisible(bool(gpus))

    def _update_empty_state(self) -> None:
        request = self.shown_request
        if request is None:
            return
        if not self.table.table_model.rows:
            self._set_status("The catalog has nothing to recommend.")
        elif not self.table.visible_recommendations():
            self._set_status(
                f"Nothing matches at {context_label(request.n_ctx)} with a "
                f"{request.kv_cache_type} KV cache: try a shorter context, a q8_0 or q4_0 "
                "KV cache, or clear the filter."
            )
        else:
            self._set_status("")

    # ----------------------------------------------------------------- slots

    @Slot()
    def _on_controls_request_changed(self) -> None:
        self._debounce.start()

    @Slot()
    def _on_debounce_timeout(self) -> None:
        self.refresh()

    @Slot(object, object)
    def _on_recommend_worker_returned(self, tag: object, result: object) -> None:
        request, profile = cast(tuple[FitRequest, HardwareProfile | None], tag)
        if request != self.current_request() or profile is not self.profile:
            return  # a newer request is pending; its result will follow
        assert isinstance(result, tuple)
        self.table.set_recommendations(result)
        self.shown_request = request
        self._update_empty_state()
        self.recommendations_shown.emit(request)

    @Slot(object, str)
    def _on_recommend_worker_failed(self, _tag: object, message: str) -> None:
        self._set_status(f"The estimate failed (a bug, logged): {message}")

    @Slot()
    def _on_recommend_worker_finished(self) -> None:
        self._recommend_running = False
        # A request that changed while this one ran is due now, unless the debounce has it.
        stale = self._started_request != self.current_request()
        if self._recommend_pending or stale:
            self._recommend_pending = False
            if not self._debounce.isActive():
                self.refresh()

    @Slot(object, object)
    def _on_fit_worker_returned(self, tag: object, result: object) -> None:
        path, request = cast(tuple[str, FitRequest], tag)
        if path != self.checked_file or request != self.current_request():
            return
        assert isinstance(result, FitVerdict)
        self.file_badge.set_verdict(result)
        text = result.explanation if result.verdict != "unknown" else f"unknown: {result.reason}"
        self.file_result.setText(f"<b>{html.escape(Path(path).name)}</b>: {html.escape(text)}")
        self.file_result.setToolTip(path)

    @Slot(object, str)
    def _on_fit_worker_failed(self, _tag: object, message: str) -> None:
        self.file_result.setText(f"The check failed (a bug, logged): {html.escape(message)}")

    @Slot()
    def _on_fit_worker_finished(self) -> None:
        self._fit_running = False
        if self._fit_pending:
            self._fit_pending = False
            self.check_file(self.checked_file)

    @Slot()
    def _on_check_file_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Check a GGUF model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.check_file(path)

    @Slot(str)
    def _on_filter_edit_text_changed(self, text: str) -> None:
        self.table.set_filter(text, self.fits_only_check.isChecked())
        self._update_empty_state()

    @Slot(bool)
    def _on_fits_only_check_toggled(self, checked: bool) -> None:
        self.table.set_filter(self.filter_edit.text(), checked)
        self._update_empty_state()

    @Slot()
    def _on_download_button_clicked(self) -> None:
        item = self.table.current_recommendation()
        if item is not None:
            self.request_download(item)

    @Slot(object)
    def _on_table_activated_recommendation(self, item: Recommendation) -> None:
        self.request_download(item)

    @Slot()
    def _on_table_selection_changed(self) -> None:
        self.download_button.setEnabled(self.table.current_recommendation() is not None)

    @Slot()
    def _on_memory_timer_timeout(self) -> None:
        memory = psutil.virtual_memory()
        apple = self.profile.apple if self.profile is not None else None
        limit = apple.gpu_limit_bytes if apple is not None else None
        self.memory_bar.set_memory(int(memory.total), int(memory.available), limit)

    # ---------------------------------------------------------------- events

    def showEvent(self, event: QShowEvent) -> None:
        """Refresh the memory bar every 2 s while visible; estimate again after a close."""
        if self._halted:
            self._halted = False
            self.refresh()
        self._on_memory_timer_timeout()
        self._memory_timer.start()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        """No polling while hidden."""
        self._memory_timer.stop()
        super().hideEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Let a running estimate end before the window goes."""
        self.wait_for_workers()
        super().closeEvent(event)
