"""Comparison runs in the history database: panes, turns, replies with figures, votes.

The service hands out frozen views, never ORM objects. Called from the thread that owns
database writes (the GUI thread, or the CLI).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.choices import split_choice
from app.compare_runner import PaneSpec
from app.compare_views import (
    PaneView,
    ReplyView,
    RunSummary,
    RunView,
    TurnView,
    WinRate,
    load_from,
    params_from,
    reply_view,
)
from app.errors import UserFacingError
from app.model_session import RunFigures
from app.store.compare_models import (
    ComparePane,
    CompareReply,
    CompareRun,
    CompareTurn,
    CompareVote,
)
from app.store.database import Database
from app.store.models import utc_now
from runtimes.base import ChatMessage, GenerationParams

__all__ = [
    "REPLY_STATUSES",
    "CompareRunNotFound",
    "CompareService",
    "PaneView",
    "ReplyView",
    "RunSummary",
    "RunView",
    "TurnView",
    "WinRate",
]

REPLY_STATUSES = ("complete", "partial", "interrupted", "error")


class CompareRunNotFound(UserFacingError):
    """A comparison run, turn or pane id that is not in the history."""


def _quant_of(name: str) -> str:
    return name.rsplit(" · ", 1)[1] if " · " in name else ""


class CompareService:
    """Creates, reads, judges and deletes comparison runs.

    Args:
        db: the open history database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_run(
        self,
        title: str,
        panes: Sequence[PaneSpec],
        mode: str,
        system_prompt: str,
        params: GenerationParams,
        source_conversation_id: int | None = None,
    ) -> RunView:
        """Save a new comparison with its panes (in order) and no turns yet."""
        now = utc_now()
        with self._db.session() as session:
            run = CompareRun(
                title=title,
                mode=mode,
                system_prompt=system_prompt,
                params=params.as_dict(),
                source_conversation_id=source_conversation_id,
                created_at=now,
                updated_at=now,
            )
            session.add(run)
            session.flush()
            for position, pane in enumerate(panes):
                session.add(
                    ComparePane(
                        run_id=run.id,
                        position=position,
                        choice=pane.choice,
                        model_name=pane.name,
                        runtime=split_choice(pane.choice)[0],
                        quant=_quant_of(pane.name),
                        load_options=dataclasses.asdict(pane.load) if pane.load else None,
                        params=pane.params.as_dict() if pane.params else None,
                    )
                )
            session.flush()
            return self._view(session, run.id)

    def add_turn(self, run_id: int, prompt: str, mode: str) -> TurnView:
        """Add a prompt as the run's next turn."""
        with self._db.session() as session:
            run = self._run_row(session, run_id)
            position = session.scalar(
                select(func.coalesce(func.max(CompareTurn.position) + 1, 0)).where(
                    CompareTurn.run_id == run_id
                )
            )
            turn = CompareTurn(run_id=run_id, position=int(position or 0), prompt=prompt, mode=mode)
            session.add(turn)
            run.updated_at = utc_now()
            session.flush()
            return TurnView(turn.id, turn.position, turn.prompt, turn.mode, turn.created_at)

    def save_reply(
        self,
        turn_id: int,
        pane_id: int,
        text: str,
        status: str,
        error: str = "",
        figures: RunFigures | None = None,
    ) -> None:
        """Save (or replace) a pane's reply to a turn with its figures.

        Raises:
            ValueError: an unknown status.
            CompareRunNotFound: no such turn, or the pane is not in the turn's run.
        """
        if status not in REPLY_STATUSES:
            raise ValueError(f"unknown reply status {status!r}")
        with self._db.session() as session:
            turn = self._turn_row(session, turn_id)
            self._pane_row(session, turn.run_id, pane_id)
            reply = session.scalar(
                select(CompareReply).where(
                    CompareReply.turn_id == turn_id, CompareReply.pane_id == pane_id
                )
            )
            if reply is None:
                reply = CompareReply(turn_id=turn_id, pane_id=pane_id)
                session.add(reply)
            reply.text, reply.status, reply.error = text, status, error
            f = figures
            reply.load_seconds = f.load_seconds if f else None
            reply.ttft_ms = f.ttft_ms if f else None
            reply.decode_tps = f.decode_tps if f else None
            reply.prompt_tps = f.prompt_tps if f else None
            reply.prompt_tokens = f.prompt_tokens if f else None
            reply.completion_tokens = f.completion_tokens if f else None
            reply.total_seconds = f.total_seconds if f else None
            reply.peak_memory_bytes = f.peak_memory_bytes if f else None
            self._run_row(session, turn.run_id).updated_at = utc_now()

    def vote(self, turn_id: int, winner_pane_id: int | None) -> None:
        """Record the better pane of a turn (None: a tie), replacing an earlier vote.

        Raises:
            CompareRunNotFound: no such turn, or the pane is not in the turn's run.
        """
        with self._db.session() as session:
            turn = self._turn_row(session, turn_id)
            if winner_pane_id is not None:
                self._pane_row(session, turn.run_id, winner_pane_id)
            row = session.get(CompareVote, turn_id)
            if row is None:
                session.add(CompareVote(turn_id=turn_id, winner_pane_id=winner_pane_id))
            else:
                row.winner_pane_id = winner_pane_id
                row.created_at = utc_now()

    def clear_vote(self, turn_id: int) -> None:
        """Forget a turn's vote (nothing happens when it has none)."""
        with self._db.session() as session:
            session.execute(delete(CompareVote).where(CompareVote.turn_id == turn_id))

    def run(self, run_id: int) -> RunView:
        """A whole comparison: panes, turns, replies and votes.

        Raises:
            CompareRunNotFound: no such run.
        """
        with self._db.session() as session:
            return self._view(session, run_id)

    def runs(self) -> list[RunSummary]:
        """Every saved comparison, most recently changed first."""
        with self._db.session() as session:
            rows = session.scalars(
                select(CompareRun).order_by(CompareRun.updated_at.desc(), CompareRun.id.desc())
            ).all()
            names: dict[int, list[str]] = defaultdict(list)
            for run_id, name, choice in session.execute(
                select(ComparePane.run_id, ComparePane.model_name, ComparePane.choice).order_by(
                    ComparePane.run_id, ComparePane.position
                )
            ):
                names[run_id].append(name or choice)
            counts: dict[int, int] = {
                run_id: int(count)
                for run_id, count in session.execute(
                    select(CompareTurn.run_id, func.count(CompareTurn.id)).group_by(
                        CompareTurn.run_id
                    )
                )
            }
            return [
                RunSummary(
                    r.id, r.title, r.mode, tuple(names[r.id]), counts.get(r.id, 0), r.updated_at
                )
                for r in rows
            ]

    def delete_run(self, run_id: int) -> None:
        """Delete a comparison with its panes, turns, replies and votes (idempotent)."""
        with self._db.session() as session:
            session.execute(delete(CompareRun).where(CompareRun.id == run_id))

    def histories(self, run_id: int, prompt: str = "") -> list[tuple[ChatMessage, ...]]:
        """Each pane's conversation so far, in pane order, for its next turn.

        A pane's history starts with the run's system prompt (when set), then every turn
        it replied to with text: the prompt and its reply. A turn the pane has no text for
        is left out, so roles alternate. With `prompt`, the new user message ends each.

        Raises:
            CompareRunNotFound: no such run.
        """
        view = self.run(run_id)
        head = (ChatMessage("system", view.system_prompt),) if view.system_prompt else ()
        tail = (ChatMessage("user", prompt),) if prompt else ()
        result = []
        for pane in view.panes:
            messages = list(head)
            for turn in view.turns:
                reply = turn.reply_of(pane.id)
                if reply is not None and reply.text:
                    messages += [
                        ChatMessage("user", turn.prompt),
                        ChatMessage("assistant", reply.text),
                    ]
            result.append((*messages, *tail))
        return result

    def win_rates(self) -> list[WinRate]:
        """Per model name (a pane's name, else its choice), across every judged turn of every
        run: a win for the chosen pane, a loss for the others, a tie for all on a tie.
        Best rate first."""
        with self._db.session() as session:
            votes = session.execute(
                select(CompareTurn.run_id, CompareVote.winner_pane_id).join(
                    CompareVote, CompareVote.turn_id == CompareTurn.id
                )
            ).all()
            panes: dict[int, list[tuple[int, str]]] = defaultdict(list)
            for pane_id, run_id, name, choice in session.execute(
                select(
                    ComparePane.id, ComparePane.run_id, ComparePane.model_name, ComparePane.choice
                )
            ):
                panes[run_id].append((pane_id, name or choice))
        record: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for run_id, winner in votes:
            for pane_id, model in panes[run_id]:
                slot = 2 if winner is None else (0 if pane_id == winner else 1)
                record[model][slot] += 1
        rates = []
        for model, (wins, losses, ties) in record.items():
            turns = wins + losses + ties
            rates.append(WinRate(model, wins, losses, ties, turns, (wins + ties / 2) / turns))
        return sorted(rates, key=lambda r: (-r.rate, -r.turns, r.model))

    # Rows and views.

    def _run_row(self, session: Session, run_id: int) -> CompareRun:
        run = session.get(CompareRun, run_id)
        if run is None:
            raise CompareRunNotFound(f"There is no comparison {run_id}; it may have been deleted.")
        return run

    def _turn_row(self, session: Session, turn_id: int) -> CompareTurn:
        turn = session.get(CompareTurn, turn_id)
        if turn is None:
            raise CompareRunNotFound(f"There is no comparison turn {turn_id}.")
        return turn

    def _pane_row(self, session: Session, run_id: int, pane_id: int) -> ComparePane:
        pane = session.get(ComparePane, pane_id)
        if pane is None or pane.run_id != run_id:
            raise CompareRunNotFound(f"Pane {pane_id} is not part of comparison {run_id}.")
        return pane

    def _view(self, session: Session, run_id: int) -> RunView:
        run = self._run_row(session, run_id)
        pane_rows = session.scalars(
            select(ComparePane).where(ComparePane.run_id == run_id).order_by(ComparePane.position)
        ).all()
        turn_rows = session.scalars(
            select(CompareTurn).where(CompareTurn.run_id == run_id).order_by(CompareTurn.position)
        ).all()
        turn_ids = [t.id for t in turn_rows]
        replies: dict[int, list[ReplyView]] = defaultdict(list)
        for row in session.scalars(select(CompareReply).where(CompareReply.turn_id.in_(turn_ids))):
            replies[row.turn_id].append(reply_view(row))
        votes = {
            v.turn_id: v.winner_pane_id
            for v in session.scalars(select(CompareVote).where(CompareVote.turn_id.in_(turn_ids)))
        }
        panes = tuple(
            PaneView(
                p.id,
                p.position,
                p.choice,
                p.model_name,
                p.runtime,
                p.quant,
                load_from(p.load_options),
                params_from(p.params),
            )
            for p in pane_rows
        )
        order = {p.id: p.position for p in panes}
        turns = tuple(
            TurnView(
                t.id,
                t.position,
                t.prompt,
                t.mode,
                t.created_at,
                tuple(sorted(replies[t.id], key=lambda r: order.get(r.pane_id, 0))),
                t.id in votes,
                votes.get(t.id),
            )
            for t in turn_rows
        )
        return RunView(
            run.id,
            run.title,
            run.mode,
            run.system_prompt,
            params_from(run.params) or GenerationParams(),
            run.source_conversation_id,
            run.created_at,
            run.updated_at,
            panes,
            turns,
        )
