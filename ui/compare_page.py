"""The Compare tab: panes side by side, the prompt bar, figures, votes and past runs.

`ComparePage` plans memory before each turn (never starting panes that would not fit),
pumps the turn on a `CompareWorker` thread, draws each pane's text through its own 40 ms
timer, and writes turns, replies and votes through `CompareService` on the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollBar,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.choices import choice_label
from app.compare_plan import MemoryPlan, RequestedMode, plan_memory
from app.compare_runner import CompareRunner, PaneEvent, PaneSpec
from app.compare_views import RunView, TurnView
from app.errors import WorkbenchError
from app.model_session import RunFigures
from app.presets import preset_matching
from runtimes.base import ChatMessage, GenerationParams
from ui.banner import Banner
from ui.compare_pane import ComparePane, PromptBar, scroll_fraction
from ui.compare_summary import (
    CompareSummary,
    SummaryRow,
    VoteBar,
    WinRatesDialog,
    figures_note,
    need_text,
    overrides_of,
    reply_note,
)
from ui.compare_worker import CompareWorker
from ui.workers import WorkerThread, start_worker

if TYPE_CHECKING:
    from ui.compare_window import CompareServices

log = logging.getLogger(__name__)

MIN_PANES, MAX_PANES = 2, 4
NEW_RUN = "New comparison"


class ComparePage(QWidget):
    """Panes, the prompt bar, the figures and the votes of one comparison at a time.

    Signals:
        turn_finished(): every pane of a turn has ended (done, failed or stopped).
    """

    turn_finished = Signal()

    def __init__(self, services: CompareServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.runner = CompareRunner(services.opener, keep_loaded=True)
        self.run_id: int | None = None
        self.turn: TurnView | None = None
        self.pane_ids: list[int] = []
        self.panes: list[ComparePane] = []
        self.win_rates_dialog: WinRatesDialog | None = None
        self._title = ""
        self._source_conversation: int | None = None
        # The last turn's worker and thread. Kept after the turn ends: the worker is deleted
        # in its own thread (deleteLater), and dropping the last Python reference here at
        # that moment raced with it (a segfault seen in the tests).
        self._handle: WorkerThread | None = None
        self._running = False
        self._cancel: Callable[[], None] | None = None
        self._texts: list[list[str]] = []
        self._rows: list[SummaryRow | None] = []
        self._turn_mode = ""
        self._quiet = False  # set while a saved run fills the panes: not a user change
        self._syncing = False
        self._build_widgets()
        self._lay_out()
        self._connect()
        for _ in range(MIN_PANES):
            self._add_pane()
        self.refresh_history()

    # ------------------------------------------------------------------ widgets

    def _build_widgets(self) -> None:
        self.banner = Banner(self)
        self.history = QComboBox()
        self.history.setMinimumContentsLength(30)
        self.new_button = QPushButton("New")
        self.add_button = QPushButton("+ Add pane")
        self.sync = QCheckBox("Sync scrolling")
        self.pane_row = QSplitter(Qt.Orientation.Horizontal)
        self.pane_row.setChildrenCollapsible(False)
        self.votes = VoteBar()
        self.summary = CompareSummary()
        self.prompt_bar = PromptBar(self.services.presets)
        bar = self.prompt_bar
        self.system_prompt, self.preset, self.seed, self.mode = (
            bar.system_prompt,
            bar.preset,
            bar.seed,
            bar.mode,
        )
        self.input, self.send_button, self.stop_button = bar.input, bar.send_button, bar.stop_button

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("History"))
        top.addWidget(self.history, 1)
        top.addWidget(self.new_button)
        top.addStretch(1)
        top.addWidget(self.sync)
        top.addWidget(self.add_button)
        bottom = QWidget()
        below = QVBoxLayout(bottom)
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(self.votes)
        below.addWidget(self.summary, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.pane_row)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([600, 330])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(split, 1)
        layout.addWidget(self.prompt_bar)

    def _connect(self) -> None:
        self.history.activated.connect(self._on_history_activated)
        self.new_button.clicked.connect(self.new_comparison)
        self.add_button.clicked.connect(self._on_add_button_clicked)
        self.input.send_requested.connect(self.send)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        self.votes.voted.connect(self._on_votes_voted)
        self.votes.win_rates_requested.connect(self.show_win_rates)

    # ------------------------------------------------------------------ panes

    def _add_pane(self, choice: str = "") -> ComparePane:
        choices = self.services.choices()
        pane = ComparePane(len(self.panes), choices)
        if choice:
            pane.set_choice(choice)
        elif choices:  # a different model in each new pane, to start with
            pane.set_choice(choices[len(self.panes) % len(choices)][1])
        pane.remove_requested.connect(self._on_pane_remove_requested)
        pane.choice_changed.connect(self._on_pane_choice_changed)
        pane.transcript.verticalScrollBar().valueChanged.connect(self._on_pane_scrolled)
        self.panes.append(pane)
        self.pane_row.addWidget(pane)
        self._panes_changed()
        return pane

    def _remove_pane(self, pane: ComparePane) -> None:
        self.panes.remove(pane)
        pane.hide()
        pane.setParent(None)
        pane.deleteLater()
        for i, other in enumerate(self.panes):
            other.set_index(i)
        self._panes_changed()

    def set_pane_count(self, count: int) -> None:
        """Show `count` panes (2–4), adding or removing at the end."""
        count = max(MIN_PANES, min(MAX_PANES, count))
        while len(self.panes) < count:
            self._add_pane()
        while len(self.panes) > count:
            self._remove_pane(self.panes[-1])

    def _panes_changed(self) -> None:
        self.add_button.setEnabled(len(self.panes) < MAX_PANES and not self.busy)
        for pane in self.panes:
            pane.remove.setEnabled(len(self.panes) > MIN_PANES and not self.busy)
        self.votes.set_panes([p.model_name() for p in self.panes])
        if all(p.choice() for p in self.panes):
            try:
                self.plan()  # each header's memory line, before anything is sent
            except WorkbenchError as exc:
                log.info("memory plan not shown: %s", exc)
        if not self._quiet and self.run_id is not None:
            self._detach("The panes changed: the next prompt starts a new comparison.")

    @Slot()
    def _on_add_button_clicked(self) -> None:
        if len(self.panes) < MAX_PANES:
            self._add_pane()

    @Slot()
    def _on_pane_remove_requested(self) -> None:
        pane = self.sender()
        if isinstance(pane, ComparePane) and len(self.panes) > MIN_PANES and not self.busy:
            self._remove_pane(pane)

    @Slot()
    def _on_pane_choice_changed(self) -> None:
        self._panes_changed()

    @Slot(int)
    def _on_pane_scrolled(self, value: int) -> None:
        source = self.sender()
        if not self.sync.isChecked() or self._syncing or not isinstance(source, QScrollBar):
            return
        fraction = scroll_fraction(value, source.maximum())
        self._syncing = True
        try:
            for pane in self.panes:
                bar = pane.transcript.verticalScrollBar()
                if bar is not source:
                    bar.setValue(round(fraction * bar.maximum()))
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ settings

    def requested_mode(self) -> RequestedMode:
        """ "auto", "parallel" or "sequential" (the mode selector)."""
        return self.prompt_bar.requested_mode()

    def shared_params(self) -> GenerationParams:
        """The preset's sampling parameters with the shared seed."""
        return self.prompt_bar.shared_params()

    def _spec(self, pane: ComparePane, params: GenerationParams) -> PaneSpec:
        overrides = pane.overrides
        own = overrides.apply(params)
        system = overrides.system_prompt
        if system is None:
            system = self.system_prompt.text().strip()
        return PaneSpec(
            pane.choice(),
            pane.model_name(),
            overrides.load(),
            own if own != params else None,
            system,
        )

    def plan(self) -> MemoryPlan:
        """The memory plan for the panes as they are (also shown in each pane's header)."""
        needs = self.services.pane_needs([(p.choice(), p.overrides.load()) for p in self.panes])
        plan = plan_memory(needs, self.services.hardware(), self.requested_mode())
        for pane, need in zip(self.panes, plan.needs, strict=False):
            pane.set_need(need_text(need))
        return plan

    # ------------------------------------------------------------------ running

    @property
    def busy(self) -> bool:
        """Whether a turn is running."""
        return self._running

    @Slot()
    def send(self) -> None:
        """Send the prompt to every pane: plan, save the turn, start the worker."""
        prompt = self.input.toPlainText().strip()
        if self.busy or not prompt:
            return
        if any(not pane.choice() for pane in self.panes):
            self.banner.show_message("Choose a model in every pane first.", warning=True)
            return
        try:
            plan = self.plan()
        except WorkbenchError as exc:
            self.banner.show_error(exc)
            return
        if not plan.runnable:
            self.banner.show_message(plan.reason, warning=True)
            return
        params = self.shared_params()
        specs = [self._spec(pane, params) for pane in self.panes]
        try:
            if self.run_id is None:
                self._create_run(prompt, specs, params)
            assert self.run_id is not None
            turn = self.services.compare.add_turn(self.run_id, prompt, plan.mode)
            histories = self.services.compare.histories(self.run_id, prompt)
        except WorkbenchError as exc:
            self.banner.show_error(exc)
            return
        self.input.clear()
        self._start_turn(turn, specs, histories, plan, params)

    def _create_run(self, prompt: str, specs: list[PaneSpec], params: GenerationParams) -> None:
        title = self._title or " ".join(prompt.split())[:60]
        view = self.services.compare.create_run(
            title,
            specs,
            self.requested_mode(),
            self.system_prompt.text().strip(),
            params,
            self._source_conversation,
        )
        self.run_id = view.id
        self.pane_ids = [p.id for p in view.panes]
        self.refresh_history()

    def _start_turn(
        self,
        turn: TurnView,
        specs: list[PaneSpec],
        histories: Sequence[tuple[ChatMessage, ...]],
        plan: MemoryPlan,
        params: GenerationParams,
    ) -> None:
        self.turn = turn
        self._turn_mode = plan.mode
        self._texts = [[] for _ in self.panes]
        self._rows = [None for _ in self.panes]
        for pane in self.panes:
            pane.begin_turn(turn.prompt)
            pane.set_state("loading" if plan.mode == "parallel" else "waiting")
        if plan.mode == "sequential":
            self.banner.show_message(f"Running one model at a time. {plan.reason}")
        else:
            self.banner.show_message(
                f"Running all panes at once: the figures share the machine. {plan.reason}"
            )
        worker = CompareWorker(self.runner, specs, histories, plan.mode, params)

        def connect() -> None:
            worker.pane_event.connect(self._on_worker_pane_event)
            worker.failed.connect(self._on_worker_failed)
            worker.finished.connect(self._on_worker_finished)

        self._cancel = worker.cancel.cancel
        if self._handle is not None:
            self._handle.wait(2000)  # the previous turn's thread has ended by now
        self._running = True
        self._handle = start_worker(worker, connect, self)
        self._set_busy(True)

    def _set_busy(self, busy: bool) -> None:
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.history.setEnabled(not busy)
        self.new_button.setEnabled(not busy)
        self.votes.set_active(not busy and self.turn is not None)
        for pane in self.panes:
            pane.set_locked(busy)
        self.add_button.setEnabled(not busy and len(self.panes) < MAX_PANES)
        if not busy:
            for pane in self.panes:
                pane.remove.setEnabled(len(self.panes) > MIN_PANES)

    @Slot()
    def stop(self) -> None:
        """Stop every pane (Esc); partial replies stay, marked stopped."""
        if self._cancel is not None and self.busy:
            self._cancel()

    def wait(self, msecs: int = 10_000) -> bool:
        """Block (handling events) until the running turn ends; True when none runs."""
        handle = self._handle
        return handle is None or handle.wait(msecs)

    @Slot(object)
    def _on_worker_pane_event(self, event: PaneEvent) -> None:
        if not 0 <= event.pane < len(self.panes):
            return
        pane = self.panes[event.pane]
        if event.kind == "text":
            self._texts[event.pane].append(event.text)
            pane.queue_text(event.text)
        elif event.kind == "loaded":
            pane.set_state("generating")
        elif event.kind == "done":
            self._end_pane(event.pane, "complete", "", event.figures)
        elif event.kind == "failed":
            status = "interrupted" if event.stopped else "error"
            self._end_pane(event.pane, status, "" if event.stopped else event.text, event.figures)
        elif event.kind == "unloaded":
            if pane.state == "done":
                pane.set_state("unloaded")
        else:  # waiting, loading
            pane.set_state(event.kind)

    def _end_pane(self, index: int, status: str, error: str, figures: RunFigures | None) -> None:
        pane = self.panes[index]
        if self._rows[index] is not None:
            return
        text = "".join(self._texts[index])
        extra = figures_note(figures)
        if status == "complete":
            pane.set_state("done")
            pane.end_turn(extra)
        elif status == "interrupted":
            pane.set_state("stopped")
            pane.end_turn("Stopped · " + extra if extra else "Stopped", True)
        else:
            pane.set_state("failed", error)
            pane.end_turn(f"Failed: {error}", True)
        self._rows[index] = SummaryRow(pane.model_name(), figures, status, error)
        if self.turn is not None and index < len(self.pane_ids):
            try:
                self.services.compare.save_reply(
                    self.turn.id, self.pane_ids[index], text, status, error, figures
                )
            except WorkbenchError as exc:
                self.banner.show_error(exc)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        self.banner.show_message(f"The comparison stopped: {message}", warning=True)

    @Slot()
    def _on_worker_finished(self) -> None:
        for i in range(len(self.panes)):
            if self._rows[i] is None:
                self._end_pane(i, "error", "the turn ended before this pane replied", None)
        self._running, self._cancel = False, None
        self._set_busy(False)
        self.summary.set_rows([row for row in self._rows if row is not None], self._turn_mode)
        self.votes.show_vote(None, False)
        self.refresh_history()
        self.turn_finished.emit()

    # ------------------------------------------------------------------ judging

    @Slot(object)
    def _on_votes_voted(self, index: int | None) -> None:
        if self.turn is None:
            return
        pane_id = None if index is None else self.pane_ids[index]
        try:
            self.services.compare.vote(self.turn.id, pane_id)
        except WorkbenchError as exc:
            self.banner.show_error(exc)

    @Slot()
    def show_win_rates(self) -> None:
        """Open the per-model win-rate table (across every saved comparison)."""
        try:
            rates = self.services.compare.win_rates()
        except WorkbenchError as exc:
            self.banner.show_error(exc)
            return
        self.win_rates_dialog = WinRatesDialog(rates, self)
        self.win_rates_dialog.open()

    # ------------------------------------------------------------------ history

    def refresh_history(self) -> None:
        """Fill the History list: "New comparison", then saved runs, newest first."""
        self.history.blockSignals(True)
        self.history.clear()
        self.history.addItem(NEW_RUN, None)
        try:
            runs = self.services.compare.runs()
        except WorkbenchError as exc:
            self.banner.show_error(exc)
            runs = []
        for run in runs:
            when = run.updated_at.strftime("%Y-%m-%d %H:%M")
            turns = f"{run.turn_count} turn" + ("" if run.turn_count == 1 else "s")
            self.history.addItem(
                f"{run.title} · {len(run.models)} models · {turns} · {when}", run.id
            )
        found = self.history.findData(self.run_id) if self.run_id is not None else 0
        self.history.setCurrentIndex(max(found, 0))
        self.history.blockSignals(False)

    @Slot(int)
    def _on_history_activated(self, index: int) -> None:
        run_id = self.history.itemData(index)
        if run_id is None:
            self.new_comparison()
        else:
            self.open_run(int(run_id))

    @Slot()
    def new_comparison(self) -> None:
        """Start over: empty panes, no saved run until the first prompt."""
        if self.busy:
            return
        self._detach("")
        self._title, self._source_conversation = "", None

    def _detach(self, notice: str) -> None:
        self.run_id, self.turn, self.pane_ids = None, None, []
        for pane in self.panes:
            pane.show_history([])
        self.summary.clear()
        self.votes.set_active(False)
        self.refresh_history()
        if notice:
            self.banner.show_message(notice)
        else:
            self.banner.clear()

    def open_run(self, run_id: int) -> None:
        """Show a saved comparison: its panes, turns, replies, figures and votes; the next
        prompt continues it."""
        if self.busy:
            return
        try:
            view = self.services.compare.run(run_id)
        except WorkbenchError as exc:
            self.banner.show_error(exc)
            return
        self._quiet = True
        try:
            self._show_run(view)
        finally:
            self._quiet = False
        self.refresh_history()

    def _show_run(self, view: RunView) -> None:
        self.set_pane_count(len(view.panes))
        self.system_prompt.setText(view.system_prompt)
        self.seed.setValue(-1 if view.params.seed is None else view.params.seed)
        preset = preset_matching(replace(view.params, seed=None)) or preset_matching(view.params)
        if preset:
            self.preset.setCurrentText(preset)
        for pane, saved in zip(self.panes, view.panes, strict=False):
            pane.set_choice(saved.choice, saved.name or choice_label(saved.choice))
            pane.overrides = overrides_of(saved.params, saved.load, view.params)
            turns = []
            for turn in view.turns:
                reply = turn.reply_of(saved.id)
                note, warning = reply_note(reply)
                turns.append((turn.prompt, reply.text if reply else "", note, warning))
            pane.show_history(turns)
        self.run_id, self.pane_ids = view.id, [p.id for p in view.panes]
        self._title, self._source_conversation = view.title, view.source_conversation_id
        self.votes.set_panes([p.model_name() for p in self.panes])
        self.turn = view.turns[-1] if view.turns else None
        self.banner.clear()
        if self.turn is None:
            self.summary.clear()
            self.votes.set_active(False)
            return
        rows = []
        for pane, saved in zip(self.panes, view.panes, strict=False):
            reply = self.turn.reply_of(saved.id)
            status = reply.status if reply else "error"
            error = reply.error if reply else ""
            rows.append(
                SummaryRow(pane.model_name(), reply.figures if reply else None, status, error)
            )
        self.summary.set_rows(rows, self.turn.mode)
        winner = (
            self.pane_ids.index(self.turn.winner_pane_id)
            if self.turn.winner_pane_id in self.pane_ids
            else None
        )
        self.votes.set_active(True)
        self.votes.show_vote(winner, self.turn.voted)

    def start_from_conversation(self, title: str, messages: Sequence[object], choice: str) -> None:
        """Begin a comparison from a chat: its model in pane 1, another in pane 2, its
        system prompt shared and its last user message ready to send."""
        if self.busy:
            return
        self.new_comparison()
        self._title = f"Compare: {title}" if title else ""
        self._source_conversation = next(
            (getattr(m, "conversation_id", None) for m in messages), None
        )
        self.panes[0].set_choice(choice)
        others = [c for _label, c in self.services.choices() if c != choice]
        if others and self.panes[1].choice() == choice:
            self.panes[1].set_choice(others[0])
        system = next((str(getattr(m, "content", "")) for m in messages
                       if getattr(m, "role", "") == "system"), "")  # fmt: skip
        if system:
            self.system_prompt.setText(system)
        last = next((str(getattr(m, "content", "")) for m in reversed(messages)
                     if getattr(m, "role", "") == "user"), "")  # fmt: skip
        self.input.setPlainText(last)
        self.input.setFocus()

    def shutdown(self) -> None:
        """Stop a running turn and unload the models kept loaded (window closing)."""
        self.stop()
        self.wait(10_000)
        self.runner.close()
