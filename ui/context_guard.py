"""The context budget of a conversation: the meter's figures, and the check before sending.

Never silent truncation: when the history and the reply will not fit the model's context, the
user is asked (drop the oldest turns, or cancel) before anything is sent. Tokens are counted
exactly by a loaded llama.cpp model (its own template and tokenizer); otherwise estimated and
shown with "≈".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtWidgets import QMessageBox, QWidget

from app.context_budget import ContextPlan, estimate_tokens, plan_context
from app.conversation_settings import ConversationSettings
from app.errors import WorkbenchError
from runtimes.base import ChatMessage, LoadedModel
from ui.model_controller import ModelController
from ui.model_picker import split_choice


@dataclass(frozen=True, slots=True)
class ContextUsage:
    """What the meter shows: prompt tokens of the history (+ draft) against the context."""

    used: int
    limit: int
    exact: bool


def estimated(history: Sequence[ChatMessage]) -> int:
    """The heuristic prompt size of a history (content plus template overhead per message)."""
    plan = plan_context(tuple(history), n_ctx=1 << 30, max_tokens=0)
    return plan.needed


class ContextGuard:
    """Counts a conversation's prompt tokens and decides what to do when they do not fit.

    Args:
        models: the model controller (loaded models count exactly; plans give the context).
    """

    def __init__(self, models: ModelController) -> None:
        self._models = models
        self._cache: dict[tuple[str, int, tuple[int, int]], int] = {}

    def limit(self, choice: str, settings: ConversationSettings) -> int:
        """The context the reply will run with: the loaded model's, else the one it will load
        with (the conversation's own choice first), 0 when unknown."""
        model = self._models.loaded_model(choice) if choice else None
        wanted = settings.n_ctx if split_choice(choice)[0] == "llamacpp" else None
        if model is not None and (wanted is None or model.info.n_ctx == wanted):
            return int(model.info.n_ctx)
        if wanted:
            return wanted
        if not choice:
            return 0
        try:
            return int(self._models.plan_for(choice).options.n_ctx)
        except WorkbenchError:  # a plan that cannot be made leaves the limit unknown
            return 0

    def count(self, choice: str, history: Sequence[ChatMessage]) -> tuple[int, bool]:
        """(tokens, exact) of a history: exact from a loaded model that can tell, else ≈."""
        model = self._models.loaded_model(choice) if choice else None
        exact = self._exact(model, choice, tuple(history)) if model is not None else None
        if exact is not None:
            return exact, True
        return estimated(history), False

    def usage(
        self, choice: str, settings: ConversationSettings, history: Sequence[ChatMessage]
    ) -> ContextUsage:
        """The meter's figures for this history (which may end with the draft message)."""
        used, exact = self.count(choice, history)
        return ContextUsage(used=used, limit=self.limit(choice, settings), exact=exact)

    def plan(
        self, choice: str, settings: ConversationSettings, history: Sequence[ChatMessage]
    ) -> ContextPlan:
        """Whether `history` plus a reply of up to max_tokens fits, and what to drop if not."""
        limit = self.limit(choice, settings)
        model = self._models.loaded_model(choice) if choice else None

        def count(messages: Sequence[ChatMessage]) -> int:
            exact = self._exact(model, choice, tuple(messages)) if model is not None else None
            return exact if exact is not None else estimated(messages)

        if limit <= 0:  # unknown context: nothing to warn about
            return plan_context(tuple(history), 1 << 30, settings.params.max_tokens)
        return plan_context(tuple(history), limit, settings.params.max_tokens, count)

    def _exact(
        self, model: LoadedModel, choice: str, history: tuple[ChatMessage, ...]
    ) -> int | None:
        key = (choice, len(history), (hash(history), sum(len(m.content) for m in history)))
        if key in self._cache:
            return self._cache[key]
        try:
            value = model.count_tokens(history)
        except WorkbenchError:  # counting is a nicety: fall back to the estimate
            return None
        if value is not None:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = value
        return value


def ask_to_drop(parent: QWidget | None, plan: ContextPlan) -> bool:
    """Ask whether to leave the oldest turns out; True to send without them, False to cancel."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("The conversation is longer than the context")
    if plan.drop_count < 0:
        box.setText(
            f"Even the last message alone needs about {plan.needed:,} tokens plus "
            f"{plan.reserved:,} for the reply, more than the model's context of "
            f"{plan.limit:,}. Shorten the message, lower Max tokens, or choose a larger "
            "context in the chat settings."
        )
        box.setStandardButtons(QMessageBox.StandardButton.Cancel)
        box.exec()
        return False
    box.setText(
        f"This conversation needs {'' if plan.exact else 'about '}{plan.needed:,} tokens plus "
        f"{plan.reserved:,} for the reply, but the model's context is {plan.limit:,}."
    )
    box.setInformativeText(
        f"Send without the {plan.drop_count} oldest message(s)? They stay in the history; "
        "the model just will not see them. Or cancel, and choose a larger context."
    )
    drop = box.addButton("Leave Out Oldest", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is drop


def draft_estimate(text: str) -> int:
    """The heuristic size of a message being typed."""
    return estimate_tokens(text) if text.strip() else 0
