"""Runs a conversation: send, load on demand, stream through a coalescing timer, persist, stop.

The GUI thread owns the database: streamed text reaches it through a 40 ms coalescing timer,
which appends to the view (tail only) and to the `ReplyRecorder` (throttled writes).
"""

from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal, Slot

from app.chat import ConversationService, ReplyRecorder
from app.errors import DatabaseUnavailable, LoadCancelled, RuntimeCrashed, WorkbenchError
from runtimes.base import ChatRequest, GenerationParams, GenerationStats, LoadedModel
from ui.chat_view import ChatView, metrics_line
from ui.model_controller import ModelController
from ui.model_picker import split_choice
from ui.workers import GenerationWorker, WorkerThread, start_worker

log = logging.getLogger(__name__)

COALESCE_MS = 40
RETRY_SAVE_MS = 3000


class ChatController(QObject):
    """Connects the chat view, the conversation service and the loaded model.

    Signals:
        conversations_changed(): titles or order changed (the list should refresh).
        speed_measured(str): a short speed summary for the status bar.
        reply_finished(): a reply ended (completed, stopped or failed).
    """

    conversations_changed = Signal()
    speed_measured = Signal(str)
    reply_finished = Signal()

    def __init__(
        self,
        service: ConversationService,
        view: ChatView,
        models: ModelController,
        log_path: str = "",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.view = view
        self.models = models
        self.params = GenerationParams()
        self.conversation_id: int | None = None
        self._log_path = log_path
        self._pending_text: str | None = None
        self._buffer: list[str] = []
        self._recorder: ReplyRecorder | None = None
        self._generation: WorkerThread | None = None
        self._model_name = ""
        self._model_path = ""
        self._generating: LoadedModel | None = None
        # Fallback (per conversation): the note of a retry in progress, the interrupted reply
        # it replaces (left out of the retried history), and a retry waiting for its thread.
        self._fallback_note = ""
        self._exclude: set[int] = set()
        self._retry_reason = ""
        self._timer = QTimer(self)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        # Replies whose final write failed (database locked, disk full): kept in memory and
        # written again every few seconds until it works, and once more at close.
        self._unsaved: list[ReplyRecorder] = []
        self._retry_timer = QTimer(self)
        self._retry_timer.setInterval(RETRY_SAVE_MS)
        self._retry_timer.timeout.connect(self._on_retry_timer_timeout)
        view.send_requested.connect(self.send)
        view.stop_requested.connect(self.stop)
        view.fallback.about_to_open.connect(self._on_fallback_about_to_open)
        view.fallback.activated.connect(self._on_fallback_activated)
        models.model_loaded.connect(self._on_models_model_loaded)
        models.load_failed.connect(self._on_models_load_failed)

    @property
    def busy(self) -> bool:
        """Whether a reply is streaming (or waiting for its model to load)."""
        return self._recorder is not None or self._pending_text is not None

    # ------------------------------------------------------------ conversations

    def open_conversation(self, conversation_id: int) -> None:
        """Show a conversation's messages."""
        if self.busy:
            return
        self.conversation_id = conversation_id
        self.view.show_messages(self.service.messages(conversation_id))
        self._show_fallback()

    def new_conversation(self, model_path: str, model_name: str) -> int:
        """Create and open an empty conversation."""
        conv = self.service.create(model_path, model_name, split_choice(model_path)[0])
        self.conversation_id = conv.id
        self.view.show_messages([])
        self.conversations_changed.emit()
        return conv.id

    # ------------------------------------------------------------------ sending

    @Slot(str)
    def send(self, text: str) -> None:
        """Send `text` in the open conversation; loads the chosen model first if needed."""
        if self.busy:
            return
        path = self.models.picker.selected_path()
        if not path:
            self.view.banner.show_message("Choose a model first (the list at the top).")
            return
        name = self.models.picker.model_name()
        try:
            if self.conversation_id is None:
                self.new_conversation(path, name)
            assert self.conversation_id is not None
            self.service.add_user_message(self.conversation_id, text)
            self.service.set_model(self.conversation_id, path, name, split_choice(path)[0])
        except WorkbenchError as exc:
            self.view.banner.show_error(exc)
            return
        self.view.accept_sent()
        self.view.banner.clear()
        self.view.append_user_message(text)
        self.conversations_changed.emit()
        self._model_name = name
        self._model_path = path
        self._fallback_note = ""
        self._exclude = set()
        self._pending_text = text
        self.view.set_busy(True)
        model = self.models.loaded_model(path)
        if model is None:
            self.models.load(path)
        else:
            self._start_generation(model)

    @Slot()
    def stop(self) -> None:
        """Stop the streaming reply (or the load it is waiting for)."""
        if self._generation is not None and self._generation.running():
            self._generation.worker.cancel.cancel()
        elif self._pending_text is not None:
            self.models.cancel_load()

    def _start_generation(self, model: LoadedModel) -> None:
        assert self.conversation_id is not None
        self._pending_text = None
        try:
            history = self.service.request_messages(self.conversation_id, exclude=self._exclude)
            request = ChatRequest(history, self.params)
            runtime = split_choice(self._model_path)[0]
            self._recorder = self.service.start_reply(
                self.conversation_id, self._model_name, runtime, self.params, self._fallback_note
            )
        except WorkbenchError as exc:
            # The user's message is stored; nothing streams, so the view must not stay busy.
            self.view.banner.show_error(exc)
            self.view.set_busy(False)
            self.reply_finished.emit()
            return
        self.view.begin_reply()
        worker = GenerationWorker(model, request)

        def connect() -> None:
            worker.text_received.connect(self._on_worker_text_received)
            worker.completed.connect(self._on_worker_completed)
            worker.failed.connect(self._on_worker_failed)
            worker.finished.connect(self._on_worker_finished)

        self._generating = model
        self._generation = start_worker(worker, connect, self)
        self._timer.start()

    # ------------------------------------------------------------------ slots

    @Slot(object)
    def _on_models_model_loaded(self, model: LoadedModel) -> None:
        if model.info.notice:
            self.view.show_notice(model.info.notice)
        else:
            self.view.show_notice("")
        if self._pending_text is not None:
            self._start_generation(model)

    @Slot(object)
    def _on_models_load_failed(self, error: BaseException) -> None:
        reason = error.message if isinstance(error, WorkbenchError) else str(error)
        if (
            self._pending_text is not None
            and not isinstance(error, LoadCancelled)
            and self._try_fallback(reason, "failed to load")
        ):
            return
        if not isinstance(error, LoadCancelled):
            self.view.banner.show_error(error, self._log_path)
        if self._pending_text is not None:
            self._pending_text = None
            self.view.set_busy(False)

    @Slot(str)
    def _on_worker_text_received(self, text: str) -> None:
        self._buffer.append(text)

    @Slot()
    def _on_timer_timeout(self) -> None:
        self._drain_buffer()

    def _drain_buffer(self) -> None:
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer.clear()
        self.view.append_reply_text(text)
        if self._recorder is not None:
            self._recorder.append(text)
            if self._recorder.pending_error:
                self.view.banner.show_message(self._recorder.pending_error, warning=True)

    @Slot(object)
    def _on_worker_completed(self, stats: GenerationStats) -> None:
        self._drain_buffer()
        if self._recorder is not None:
            try:
                self._recorder.finish(stats)
            except DatabaseUnavailable as exc:
                self._keep_unsaved(self._recorder, exc)
        if self._generating is not None:
            self.models.measurements.generated(self._generating, stats)
        line = metrics_line(stats, self._model_name, split_choice(self._model_path)[0])
        self.view.end_reply(f"{line} · {self._fallback_note}" if self._fallback_note else line)
        self.speed_measured.emit(f"{stats.decode_tps:.1f} tok/s")

    @Slot(object)
    def _on_worker_failed(self, error: BaseException) -> None:
        self._drain_buffer()
        if not isinstance(error, WorkbenchError):
            log.error("generation failed with a bug: %r", error)
        message = error.message if isinstance(error, WorkbenchError) else str(error)
        if self._recorder is not None:
            try:
                self._recorder.interrupt(message)
            except DatabaseUnavailable as exc:
                self._keep_unsaved(self._recorder, exc)
        self.view.end_reply("interrupted — the reply so far is kept", warning=True)
        self.view.banner.show_error(error, self._log_path)
        if isinstance(error, RuntimeCrashed):
            self.models.mark_crashed()
            if self._recorder is not None and self._fallback_available():
                # Retried once the generation thread has ended (_on_worker_finished).
                self._exclude.add(self._recorder.message_id)
                self._retry_reason = message
        if not isinstance(error, WorkbenchError):
            # A bug: the reply is stored as interrupted above; now the crash dialog and log.
            sys.excepthook(type(error), error, error.__traceback__)

    @Slot()
    def _on_worker_finished(self) -> None:
        self._timer.stop()
        self._drain_buffer()
        self._recorder = None
        reason, self._retry_reason = self._retry_reason, ""
        if reason and self._try_fallback(reason, "crashed"):
            self.conversations_changed.emit()
            return
        self.view.set_busy(False)
        self.conversations_changed.emit()
        self.reply_finished.emit()

    # ---------------------------------------------------------------- fallback

    def _fallback_available(self) -> bool:
        if self.conversation_id is None or self._fallback_note:
            return False
        fallback = self.service.fallback(self.conversation_id)
        return fallback is not None and fallback[0] != self._model_path

    def _try_fallback(self, reason: str, what: str) -> bool:
        """Retry the reply on the conversation's fallback model, once per message."""
        if not self._fallback_available():
            return False
        assert self.conversation_id is not None
        fallback = self.service.fallback(self.conversation_id)
        assert fallback is not None
        choice, name = fallback
        failed = self._model_name
        self._fallback_note = f"retried on {name}: {failed} {what} ({reason.rstrip('.')})"
        self._model_path, self._model_name = choice, name
        self._pending_text = self._pending_text or "retry"
        self.view.set_busy(True)
        self.view.banner.show_message(f"{failed} {what}; retrying on {name}…", reason)
        model = self.models.loaded_model(choice)
        if model is None:
            self.models.load(choice)
        else:
            self._start_generation(model)
        return True

    def _show_fallback(self) -> None:
        current = self.service.fallback(self.conversation_id) if self.conversation_id else None
        combo = self.view.fallback
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem("no fallback", "")
            if current is not None:
                combo.addItem(current[1], current[0])
                combo.setCurrentIndex(1)
        finally:
            combo.blockSignals(False)

    @Slot()
    def _on_fallback_about_to_open(self) -> None:
        combo = self.view.fallback
        chosen = combo.currentData()
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem("no fallback", "")
            for name, choice in self.models.picker.choices():
                combo.addItem(name, choice)
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
        finally:
            combo.blockSignals(False)

    @Slot(int)
    def _on_fallback_activated(self, index: int) -> None:
        self.set_fallback(
            str(self.view.fallback.itemData(index) or ""), self.view.fallback.itemText(index)
        )

    def set_fallback(self, choice: str, name: str) -> None:
        """Make `choice` the open conversation's fallback ("" for none)."""
        if self.conversation_id is None:
            picker = self.models.picker
            self.new_conversation(picker.selected_path(), picker.model_name())
        assert self.conversation_id is not None
        try:
            self.service.set_fallback(self.conversation_id, choice, name if choice else "")
        except WorkbenchError as exc:
            self.view.banner.show_error(exc)
            return
        self._show_fallback()

    def _keep_unsaved(self, recorder: ReplyRecorder, error: DatabaseUnavailable) -> None:
        self._unsaved.append(recorder)
        self.view.banner.show_message(
            f"{error.message} The reply is kept in memory and will be saved as soon as "
            "the database can be written.",
            warning=True,
        )
        self._retry_timer.start()

    @Slot()
    def _on_retry_timer_timeout(self) -> None:
        self.save_unsaved()

    def save_unsaved(self) -> bool:
        """Try to write replies whose last write failed; True when none is left."""
        still: list[ReplyRecorder] = []
        for recorder in self._unsaved:
            try:
                recorder.retry()
            except DatabaseUnavailable:
                still.append(recorder)
        self._unsaved = still
        if not still:
            self._retry_timer.stop()
            self.view.banner.clear()
        return not still

    def wait_for_generation(self, msecs: int) -> bool:
        """Block until the generation thread (if any) has ended; True when it has."""
        return self._generation is None or self._generation.wait(msecs)

    def shutdown(self) -> None:
        """Stop a running reply and wait for its thread (on window close)."""
        if self._generation is not None and self._generation.running():
            self._generation.worker.cancel.cancel()
            self._generation.wait(5000)
            # Deliver the worker's queued signals so the stopped reply is stored as such.
            QCoreApplication.processEvents()
        self._drain_buffer()
        if self._unsaved and not self.save_unsaved():
            log.error("%d reply(ies) could not be saved before closing", len(self._unsaved))
