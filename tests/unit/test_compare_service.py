"""CompareService: runs, turns, replies with figures, votes, win rates, histories, deletion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.compare import CompareRunNotFound, CompareService, WinRate
from app.compare_runner import PaneSpec
from app.model_session import RunFigures
from app.store import Database, open_database
from runtimes.base import ChatMessage, GenerationParams, LoadOptions

PARAMS = GenerationParams(temperature=0, seed=1, max_tokens=64)
FIGURES = RunFigures(1.25, 42.0, 55.5, 800.0, 20, 12, 0.5, 150_000_000)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3")
    yield database
    database.close()


@pytest.fixture()
def service(db: Database) -> CompareService:
    return CompareService(db)


def two_panes() -> list[PaneSpec]:
    return [
        PaneSpec("/m/smol.gguf", "SmolLM2 135M Instruct · Q4_1", LoadOptions(n_ctx=1024)),
        PaneSpec("ollama::gemma3:270m", "gemma3:270m", params=GenerationParams(temperature=0.3)),
    ]


def test_a_run_round_trips_with_panes_turns_replies_and_figures(service: CompareService) -> None:
    run = service.create_run("Greeting", two_panes(), "auto", "Be brief.", PARAMS, 7)
    assert [p.position for p in run.panes] == [0, 1]
    smol, gemma = run.panes
    assert (smol.runtime, smol.quant, smol.load) == ("llamacpp", "Q4_1", LoadOptions(n_ctx=1024))
    assert (gemma.runtime, gemma.params) == ("ollama", GenerationParams(temperature=0.3))
    turn = service.add_turn(run.id, "Say hi.", "sequential")
    service.save_reply(turn.id, smol.id, "Hi!", "complete", figures=FIGURES)
    service.save_reply(turn.id, gemma.id, "Hel", "error", error="Server went away.")
    loaded = service.run(run.id)
    assert (loaded.title, loaded.mode, loaded.system_prompt) == ("Greeting", "auto", "Be brief.")
    assert loaded.params == PARAMS
    assert loaded.source_conversation_id == 7
    (saved,) = loaded.turns
    assert (saved.prompt, saved.mode, saved.position, saved.voted) == (
        "Say hi.",
        "sequential",
        0,
        False,
    )
    first, second = saved.replies
    assert (first.pane_id, first.text, first.status, first.figures) == (
        smol.id,
        "Hi!",
        "complete",
        FIGURES,
    )
    assert (second.text, second.status, second.error, second.figures) == (
        "Hel",
        "error",
        "Server went away.",
        None,
    )
    assert loaded.panes[0].spec("sys") == PaneSpec(
        "/m/smol.gguf", "SmolLM2 135M Instruct · Q4_1", LoadOptions(n_ctx=1024), None, "sys"
    )


def test_saving_a_reply_again_replaces_it(service: CompareService) -> None:
    run = service.create_run("t", two_panes(), "parallel", "", PARAMS)
    turn = service.add_turn(run.id, "Q", "parallel")
    pane = run.panes[0].id
    service.save_reply(turn.id, pane, "par", "partial")
    service.save_reply(turn.id, pane, "partial and whole", "complete", figures=FIGURES)
    (reply,) = service.run(run.id).turns[0].replies
    assert (reply.text, reply.status, reply.figures) == ("partial and whole", "complete", FIGURES)


def test_turns_are_numbered_in_order(service: CompareService) -> None:
    run = service.create_run("t", two_panes(), "auto", "", PARAMS)
    positions = [service.add_turn(run.id, f"Q{i}", "parallel").position for i in range(3)]
    assert positions == [0, 1, 2]
    assert [t.prompt for t in service.run(run.id).turns] == ["Q0", "Q1", "Q2"]


def test_votes_are_stored_replaced_and_cleared(service: CompareService) -> None:
    run = service.create_run("t", two_panes(), "auto", "", PARAMS)
    turn = service.add_turn(run.id, "Q", "parallel")
    service.vote(turn.id, run.panes[1].id)
    saved = service.run(run.id).turns[0]
    assert (saved.voted, saved.winner_pane_id) == (True, run.panes[1].id)
    service.vote(turn.id, None)
    saved = service.run(run.id).turns[0]
    assert (saved.voted, saved.winner_pane_id) == (True, None)
    service.clear_vote(turn.id)
    assert service.run(run.id).turns[0].voted is False


def test_a_vote_for_a_pane_of_another_run_is_refused(service: CompareService) -> None:
    first = service.create_run("a", two_panes(), "auto", "", PARAMS)
    other = service.create_run("b", two_panes(), "auto", "", PARAMS)
    turn = service.add_turn(first.id, "Q", "parallel")
    with pytest.raises(CompareRunNotFound, match="not part of comparison"):
        service.vote(turn.id, other.panes[0].id)


def test_win_rates_count_wins_losses_and_ties_per_model_across_runs(
    service: CompareService,
) -> None:
    for title in ("one", "two"):
        run = service.create_run(title, two_panes(), "auto", "", PARAMS)
        smol, gemma = (p.id for p in run.panes)
        service.vote(service.add_turn(run.id, "Q1", "parallel").id, smol)
        service.vote(service.add_turn(run.id, "Q2", "parallel").id, None)
        service.add_turn(run.id, "unjudged", "parallel")
    service.vote(service.add_turn(run.id, "Q3", "parallel").id, gemma)
    rates = service.win_rates()
    assert rates == [
        WinRate("SmolLM2 135M Instruct · Q4_1", 2, 1, 2, 5, 3 / 5),
        WinRate("gemma3:270m", 1, 2, 2, 5, 2 / 5),
    ]


def test_histories_hold_each_panes_own_replies_and_the_next_prompt(
    service: CompareService,
) -> None:
    run = service.create_run("t", two_panes(), "auto", "Be brief.", PARAMS)
    smol, gemma = (p.id for p in run.panes)
    turn = service.add_turn(run.id, "Q1", "parallel")
    service.save_reply(turn.id, smol, "smol says", "complete")
    service.save_reply(turn.id, gemma, "", "error", error="crashed")
    histories = service.histories(run.id, "Q2")
    system = ChatMessage("system", "Be brief.")
    assert histories[0] == (
        system,
        ChatMessage("user", "Q1"),
        ChatMessage("assistant", "smol says"),
        ChatMessage("user", "Q2"),
    )
    assert histories[1] == (system, ChatMessage("user", "Q2"))
    assert service.histories(run.id)[1] == (system,)


def test_runs_list_the_newest_first_with_models_and_turn_counts(service: CompareService) -> None:
    old = service.create_run("old", two_panes(), "auto", "", PARAMS)
    new = service.create_run("new", two_panes()[:1], "sequential", "", PARAMS)
    service.add_turn(new.id, "Q", "sequential")
    summaries = service.runs()
    assert [(s.id, s.title, s.turn_count) for s in summaries] == [
        (new.id, "new", 1),
        (old.id, "old", 0),
    ]
    assert summaries[1].models == ("SmolLM2 135M Instruct · Q4_1", "gemma3:270m")


def test_deleting_a_run_removes_it_with_its_turns_replies_and_votes(
    service: CompareService, db: Database
) -> None:
    run = service.create_run("t", two_panes(), "auto", "", PARAMS)
    turn = service.add_turn(run.id, "Q", "parallel")
    service.save_reply(turn.id, run.panes[0].id, "x", "complete", figures=FIGURES)
    service.vote(turn.id, run.panes[0].id)
    service.delete_run(run.id)
    service.delete_run(run.id)
    assert service.runs() == []
    assert service.win_rates() == []
    with pytest.raises(CompareRunNotFound):
        service.run(run.id)
    with db.engine.connect() as connection:
        for table in ("compare_panes", "compare_turns", "compare_replies", "compare_votes"):
            count = connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            assert count == 0, table


def test_an_unknown_reply_status_is_refused(service: CompareService) -> None:
    run = service.create_run("t", two_panes(), "auto", "", PARAMS)
    turn = service.add_turn(run.id, "Q", "parallel")
    with pytest.raises(ValueError, match="unknown reply status"):
        service.save_reply(turn.id, run.panes[0].id, "x", "done")
