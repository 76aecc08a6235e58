"""Runs a conversation: send, regenerate, edit, continue, load on demand, stream, persist, stop.

The GUI thread owns the database: streamed text reaches it through a 40 ms coalescing timer,
which appends to the view (tail only) and to the `ReplyRecorder` (throttled writes). Message
actions under each message (regenerate, edit, branch arrows, delete, continue, copy) arrive
from the view as `action_requested`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal, Slot

from app.chat import ConversationService, MessageView, ReplyRecorder
from app.context_budget import ContextPlan, drop_oldest
from app.conversation_settings import ConversationSettings
from app.errors import DatabaseUnavailable, LoadCancelled, RuntimeCrashed, WorkbenchError
from runtimes.base import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    GenerationStats,
    LoadedModel,
)
from ui.chat_fallback import FallbackControl
from ui.chat_settings_panel import ChatSettingsPanel
from ui.chat_view import ChatView, metrics_line
from ui.context_guard import ContextGuard, ask_to_drop, draft_estimate
from ui.model_controller import ModelController
from ui.model_picker import split_choice
from ui.unsaved_replies import UnsavedReplies
from ui.workers import GenerationWorker, WorkerThread, start_worker

log = logging.getLogger(__name__)

COALESCE_MS = 40
METER_MS = 250
"""How long typing pauses before the context meter counts the draft."""


@dataclass(frozen=True, slots=True)
class ReplyJob:
    """The reply waiting for its model: a new one, another version, or a continuation."""

    kind: Literal["reply", "regenerate", "continue"]
    target: int | None = None  # regenerate: the user message; continue: the assistant reply
    drop: int = 0  # oldest messages left out of the request (the user agreed)
    shown: bool = False  # the view already shows the path the reply follows (a plain send)


class ChatController(QObject):
    """Connects the chat view, the settings panel, the conversation service and the models.

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
        panel: ChatSettingsPanel | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.view = view
        self.models = models
        self.panel = panel or ChatSettingsPanel()
        self.conversation_id: int | None = None
        self.new_chat_settings: Callable[[], ConversationSettings] = ConversationSettings
        """Makes the settings of a new conversation (the window passes the preferences')."""
        self.guard = ContextGuard(models)
        self.ask_to_drop = ask_to_drop
        """Asked when the history will not fit (tests replace it)."""
        self._log_path = log_path
        self._job: ReplyJob | None = None
        self._buffer: list[str] = []
        self._recorder: ReplyRecorder | None = None
        self._generation: WorkerThread | None = None
        self._model_name = ""
        self._model_path = ""
        self._generating: LoadedModel | None = None
        self._note = ""
        # Fallback (per conversation): the note of a retry in progress, the interrupted reply
        # it replaces (left out of the retried history), and a retry waiting for its thread.
        self._fallback_note = ""
        self._retry_parent: int | None = None
        self._retry_reason = ""
        self._timer = QTimer(self)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._meter_timer = QTimer(self)
        self._meter_timer.setSingleShot(True)
        self._meter_timer.setInterval(METER_MS)
        self._meter_timer.timeout.connect(self.update_meter)
        # Replies whose final write failed (database locked, disk full): kept in memory and
        # written again every few seconds until it works, and once more at close.
        self.unsaved = UnsavedReplies(view.banner, self)
        self.fallback = FallbackControl(service, view, models.picker, self._conversation, self)
        view.send_requested.connect(self.send)
        view.stop_requested.connect(self.stop)
        view.input.textChanged.connect(self._meter_timer.start)
        self.panel.settings_changed.connect(self._on_panel_settings_changed)
        models.model_loaded.connect(self._on_models_model_loaded)
        models.load_failed.connect(self._on_models_load_failed)

    @property
    def busy(self) -> bool:
        """Whether a reply is streaming (or waiting for its model to load)."""
        return self._recorder is not None or self._job is not None

    @property
    def params(self) -> GenerationParams:
        """The sampling parameters the next reply uses (the settings panel's)."""
        return self.panel.params()

    @params.setter
    def params(self, value: GenerationParams) -> None:
        self.panel.set_settings(replace(self.panel.settings(), params=value))

    # ------------------------------------------------------------ conversations

    def open_conversation(self, conversation_id: int) -> None:
        """Show a conversation's messages and settings."""
        if self.busy:
            return
        self.conversation_id = conversation_id
        self.view.show_messages(self.service.messages(conversation_id))
        self.panel.set_settings(self.service.settings(conversation_id))
        self.fallback.show()
        self.update_meter()

    def new_conversation(
        self, model_path: str, model_name: str, settings: ConversationSettings | None = None
    ) -> int:
        """Create and open an empty conversation, with `settings` or else the preferences'
        settings for new chats."""
        conv = self.service.create(model_path, model_name, split_choice(model_path)[0])
        self.conversation_id = conv.id
        settings = settings if settings is not None else self.new_chat_settings()
        try:
            self.service.set_settings(conv.id, settings)
        except WorkbenchError as exc:
            self.view.banner.show_error(exc)
        self.panel.set_settings(settings)
        self.view.show_messages([])
        self.fallback.show()
        self.conversations_changed.emit()
        self.update_meter()
        return conv.id

    def _conversation(self, create: bool) -> int | None:
        if self.conversation_id is None and create:
            picker = self.models.picker
            # The first message of a fresh window: what the panel shows is what the user chose.
            self.panel.flush()
            settings = self.panel.settings()
            try:
                self.new_conversation(picker.selected_path(), picker.model_name(), settings)
            except WorkbenchError as exc:  # database locked, disk full
                self.view.banner.show_error(exc)
                return None
        return self.conversation_id

    def set_fallback(self, choice: str, name: str) -> None:
        """Make `choice` the open conversation's fallback ("" for none)."""
        self.fallback.set(choice, name)

    # ------------------------------------------------------------------ sending

    @Slot(str)
    def send(self, text: str) -> None:
        """Send `text` in the open conversation; loads the chosen model first if needed."""
        if self.busy:
            return
        path = self.chosen_model()
        if not path:
            return
        conversation_id = self._conversation(True)
        if conversation_id is None:
            return
        settings = self._store_settings()
        try:
            history = self.service.request_messages(conversation_id, settings.system_prompt)
        except WorkbenchError as exc:
            self.view.banner.show_error(exc)
            return
        drop = self._fits(path, settings, (*history, ChatMessage("user", text)))
        if drop is None:
            return
        try:
            message = self.service.add_user_message(conversation_id, text)
            self.service.set_model(conversation_id, path, self._name(), split_choice(path)[0])
        except WorkbenchError as exc:
            self.view.banner.show_error(exc)
            return
        self.view.accept_sent()
        self.view.banner.clear()
        self.view.append_user_message(message)
        self.conversations_changed.emit()
        self._begin(ReplyJob("reply", drop=drop, shown=True), path)

    def begin_checked(self, job: ReplyJob, path: str) -> None:
        """Check the context budget (asking when it will not fit), then begin `job`."""
        assert self.conversation_id is not None
        settings = self._store_settings()
        try:
            history = self._history(job, settings)
        except WorkbenchError as exc:
            self.view.banner.show_error(exc)
            return
        drop = self._fits(path, settings, history)
        if drop is None:
            return
        self._begin(replace(job, drop=drop), path)

    def _begin(self, job: ReplyJob, path: str) -> None:
        """Wait for the model (loading it if needed), then stream the job's reply."""
        self._model_name = self._name()
        self._model_path = path
        self._fallback_note = ""
        self._retry_parent = None
        self._job = job
        self.view.set_busy(True)
        wanted = self.panel.settings().n_ctx if split_choice(path)[0] == "llamacpp" else None
        model = self.models.loaded_model(path)
        if model is not None and (wanted is None or model.info.n_ctx == wanted):
            self._start_generation(model)
        else:
            self.models.load(path, n_ctx=wanted)

    @Slot()
    def stop(self) -> None:
        """Stop the streaming reply (or the load it is waiting for)."""
        if self._generation is not None and self._generation.running():
            self._generation.worker.cancel.cancel()
        elif self._job is not None:
            self.models.cancel_load()

    def _start_generation(self, model: LoadedModel) -> None:
        assert self.conversation_id is not None and self._job is not None
        job, self._job = self._job, None
        settings = self.panel.settings()
        try:
            self._recorder = self._open_recorder(job, settings.params)
            history = self._history(job, settings)
            if job.drop > 0:
                history = drop_oldest(history, job.drop)
            request = ChatRequest(history, settings.params, continue_last=job.kind == "continue")
        except WorkbenchError as exc:
            # The user's message is stored; nothing streams, so the view must not stay busy.
            self.view.banner.show_error(exc)
            self._recorder = None
            self.view.set_busy(False)
            self.reply_finished.emit()
            return
        self._show_streaming_start(job)
        worker = GenerationWorker(model, request)

        def connect() -> None:
            worker.text_received.connect(self._on_worker_text_received)
            worker.completed.connect(self._on_worker_completed)
            worker.failed.connect(self._on_worker_failed)
            worker.finished.connect(self._on_worker_finished)

        self._generating = model
        self._generation = start_worker(worker, connect, self)
        self._timer.start()

    def _open_recorder(self, job: ReplyJob, params: GenerationParams) -> ReplyRecorder:
        assert self.conversation_id is not None
        notes = [n for n in (self._fallback_note, _dropped_note(job.drop)) if n]
        self._note = " · ".join(notes)
        if job.kind == "continue":
            assert job.target is not None
            return self.service.continue_reply(self.conversation_id, job.target)
        runtime = split_choice(self._model_path)[0]
        return self.service.start_reply(
            self.conversation_id,
            self._model_name,
            runtime,
            params,
            self._note,
            parent_id=job.target if job.kind == "regenerate" else None,
        )

    def _history(self, job: ReplyJob, settings: ConversationSettings) -> tuple[ChatMessage, ...]:
        assert self.conversation_id is not None
        exclude: set[int] = set()
        if self._recorder is not None and job.kind != "continue":
            exclude.add(self._recorder.message_id)
        if job.kind == "regenerate" and self._recorder is None:
            # Before the new version exists: the path up to the user message it answers.
            path = self.service.messages(self.conversation_id)
            ids = [m.id for m in path]
            cut = ids.index(job.target) + 1 if job.target in ids else len(ids)
            exclude |= set(ids[cut:])
        return self.service.request_messages(
            self.conversation_id,
            settings.system_prompt,
            exclude=exclude,
            include_partial_last=job.kind == "continue",
        )

    def _show_streaming_start(self, job: ReplyJob) -> None:
        """Put the transcript in the state the stream continues from."""
        assert self.conversation_id is not None and self._recorder is not None
        if job.shown:
            self.view.begin_reply()
            return
        path = self.service.messages(self.conversation_id)
        if job.kind == "continue":
            self.view.show_messages(path[:-1])
            self.view.begin_reply()
            self.view.append_reply_text(path[-1].content if path else "")
            return
        self.view.show_messages([m for m in path if m.id != self._recorder.message_id])
        self.view.begin_reply()

    def refuse_while_busy(self) -> bool:
        if self.busy:
            self.view.banner.show_message("Wait for the reply to finish, or stop it (Esc).")
        return self.busy

    # ------------------------------------------------------------ settings, meter

    def chosen_model(self) -> str:
        path = self.models.picker.selected_path()
        if not path:
            self.view.banner.show_message("Choose a model first (the list at the top).")
        return path

    def _name(self) -> str:
        return self.models.picker.model_name()

    def _store_settings(self) -> ConversationSettings:
        """The panel's settings, stored with the conversation (they are the reply's)."""
        self.panel.flush()
        settings = self.panel.settings()
        if self.conversation_id is not None:
            try:
                self.service.set_settings(self.conversation_id, settings)
            except WorkbenchError as exc:
                log.warning("conversation settings not saved: %s", exc)
        return settings

    def _fits(
        self, path: str, settings: ConversationSettings, history: tuple[ChatMessage, ...]
    ) -> int | None:
        """How many oldest messages to leave out (0 when all fit), None when the user cancels."""
        plan: ContextPlan = self.guard.plan(path, settings, history)
        if plan.fits and plan.drop_count == 0:
            return 0
        if self.ask_to_drop(self.view, plan):
            return plan.drop_count
        return None

    @Slot(object)
    def _on_panel_settings_changed(self, settings: ConversationSettings) -> None:
        if self.conversation_id is not None:
            try:
                self.service.set_settings(self.conversation_id, settings)
            except WorkbenchError as exc:
                self.view.banner.show_error(exc)
        self.update_meter()

    @Slot()
    def update_meter(self) -> None:
        """Count the history (and the draft) against the context, for the meter."""
        choice = self.models.picker.selected_path()
        settings = self.panel.settings()
        if self.busy:
            return
        history: tuple[ChatMessage, ...] = ()
        if self.conversation_id is not None:
            try:
                history = self.service.request_messages(
                    self.conversation_id, settings.system_prompt
                )
            except WorkbenchError:
                history = ()
        usage = self.guard.usage(choice, settings, history)
        draft = draft_estimate(self.view.input.toPlainText())
        self.panel.set_context_usage(usage.used + draft, usage.limit, usage.exact and not draft)

    # ------------------------------------------------------------------ slots

    @Slot(object)
    def _on_models_model_loaded(self, model: LoadedModel) -> None:
        self.view.show_notice(model.info.notice or "")
        if self._job is not None:
            self._start_generation(model)
        else:
            self.update_meter()

    @Slot(object)
    def _on_models_load_failed(self, error: BaseException) -> None:
        reason = error.message if isinstance(error, WorkbenchError) else str(error)
        if (
            self._job is not None
            and not isinstance(error, LoadCancelled)
            and self._try_fallback(reason, "failed to load")
        ):
            return
        if not isinstance(error, LoadCancelled):
            self.view.banner.show_error(error, self._log_path)
        if self._job is not None:
            self._job = None
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
                self.unsaved.keep(self._recorder, exc)
        if self._generating is not None:
            self.models.measurements.generated(self._generating, stats)
        line = metrics_line(stats, self._model_name, split_choice(self._model_path)[0])
        footer = f"{line} · {self._note}" if self._note else line
        self.view.end_reply(footer, False, self._view_of_reply())
        self.speed_measured.emit(f"{stats.decode_tps:.1f} tok/s")

    def _view_of_reply(self) -> MessageView | None:
        if self._recorder is None:
            return None
        assert self.conversation_id is not None
        try:
            path = self.service.messages(self.conversation_id)
        except WorkbenchError:
            return None
        return next((m for m in path if m.id == self._recorder.message_id), None)

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
                self.unsaved.keep(self._recorder, exc)
        self.view.end_reply("interrupted — the reply so far is kept", True, self._view_of_reply())
        self.view.banner.show_error(error, self._log_path)
        if isinstance(error, RuntimeCrashed):
            self.models.mark_crashed()
            if self._recorder is not None and self._fallback_available():
                # Retried once the generation thread has ended (_on_worker_finished), as a
                # new version of this reply: the interrupted one stays as version 1.
                assert self.conversation_id is not None
                self._retry_parent = self.service.regenerate_parent(
                    self.conversation_id, self._recorder.message_id
                )
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
        self.update_meter()

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
        if self._job is None:
            self._job = ReplyJob("regenerate", target=self._retry_parent)
        self.view.set_busy(True)
        self.view.banner.show_message(f"{failed} {what}; retrying on {name}…", reason)
        model = self.models.loaded_model(choice)
        if model is None:
            self.models.load(choice)
        else:
            self._start_generation(model)
        return True

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
        if len(self.unsaved) and not self.unsaved.save():
            log.error("%d reply(ies) could not be saved before closing", len(self.unsaved))


def _dropped_note(count: int) -> str:
    return f"{count} oldest message(s) left out to fit the context" if count > 0 else ""
