"""EvalStore: sets and case editing, runs, upserted results, manual judging, summaries,
run-to-run differences, and the CSV/JSON exports read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import UserFacingError
from app.eval_report import CaseDiff, ModelSummary, export_rows, read_csv
from app.eval_store import EvalStore
from app.evals import CaseSpec, make_case
from app.scorers import Score
from app.store import Database, open_database
from runtimes.base import GenerationParams

CASES = [
    make_case("Capital of France?", "Paris"),
    make_case("17 + 25?", "42", "numeric", options={"tolerance": 0.5}),
    make_case("A haiku", "", "manual", "You are a poet."),
]
A, B = "/models/a-Q4_K_M.gguf", "ollama::llama3.2:1b"


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3", busy_timeout_s=0.05)
    yield database
    database.close()


@pytest.fixture()
def store(db: Database) -> EvalStore:
    return EvalStore(db)


def test_create_and_get_a_set_with_its_cases_in_order(store: EvalStore) -> None:
    made = store.create_set("basics", CASES, source_path="/tmp/basics.jsonl")
    got = store.get_set(made.id)
    assert got == made
    assert got.name == "basics"
    assert [c.spec for c in got.cases] == CASES
    assert [c.position for c in got.cases] == [0, 1, 2]
    [summary] = store.sets()
    assert (summary.name, summary.case_count, summary.source_path) == (
        "basics",
        3,
        "/tmp/basics.jsonl",
    )


def test_set_names_are_unique_and_renames_are_checked(store: EvalStore) -> None:
    first = store.create_set("basics", CASES)
    other = store.create_set("other", CASES[:1])
    with pytest.raises(UserFacingError, match="already an eval set named 'basics'"):
        store.create_set("basics", CASES)
    with pytest.raises(UserFacingError, match="already an eval set named 'basics'"):
        store.rename_set(other.id, "basics")
    with pytest.raises(UserFacingError, match="needs a name"):
        store.rename_set(other.id, "  ")
    store.rename_set(first.id, "renamed")
    assert store.get_set(first.id).name == "renamed"
    assert store.unused_name("other") == "other (2)"


def test_import_set_reuses_an_unchanged_file_and_copies_a_changed_one(store: EvalStore) -> None:
    first = store.import_set("basics", CASES, "/sets/basics.jsonl")
    again = store.import_set("basics", CASES, "/sets/basics.jsonl")
    changed = store.import_set("basics", CASES[:2], "/sets/basics.jsonl")
    assert again.id == first.id
    assert changed.id != first.id
    assert changed.name == "basics (2)"


def test_delete_set_removes_cases_and_runs(store: EvalStore) -> None:
    made = store.create_set("basics", CASES)
    store.start_run(made.id, [A], GenerationParams())
    store.delete_set(made.id)
    assert store.sets() == []
    assert store.runs() == []
    with pytest.raises(UserFacingError, match="no longer exists"):
        store.get_set(made.id)


def test_cases_are_added_updated_moved_and_deleted(store: EvalStore) -> None:
    made = store.create_set("basics", CASES)
    first, second, third = made.cases
    added = store.add_case(made.id, make_case("New first", "x"), position=0)
    assert added.position == 0
    store.update_case(second.id, make_case("17 + 26?", "43", "numeric"))
    store.move_case(third.id, 0)
    store.delete_case(first.id)
    cases = store.get_set(made.id).cases
    assert [c.prompt for c in cases] == ["A haiku", "New first", "17 + 26?"]
    assert [c.position for c in cases] == [0, 1, 2]
    assert cases[2].options == {}


def test_an_invalid_edit_is_refused_and_changes_nothing(store: EvalStore) -> None:
    made = store.create_set("basics", CASES)
    case = made.cases[0]
    with pytest.raises(UserFacingError, match="invalid regex"):
        store.update_case(case.id, CaseSpec("p", "((", "regex"))
    with pytest.raises(UserFacingError, match="invalid regex"):
        store.add_case(made.id, CaseSpec("p", "((", "regex"))
    assert store.get_set(made.id) == made


def test_a_run_keeps_its_models_and_params(store: EvalStore) -> None:
    made = store.create_set("basics", CASES)
    params = GenerationParams(temperature=0.0, seed=1, max_tokens=64, stop=("\n\n",))
    run = store.start_run(made.id, [A, B], params)
    assert (run.status, run.models, run.params, run.set_name) == (
        "running",
        (A, B),
        params,
        "basics",
    )
    store.finish_run(run.id, "complete")
    finished = store.run(run.id)
    assert finished.status == "complete"
    assert finished.finished_at is not None
    assert [r.id for r in store.runs(made.id)] == [run.id]


def test_a_run_needs_models_and_cases(store: EvalStore) -> None:
    made = store.create_set("basics", CASES)
    with pytest.raises(UserFacingError, match="at least one model"):
        store.start_run(made.id, [], GenerationParams())
    empty = store.create_set("empty", [])
    with pytest.raises(UserFacingError, match="no cases"):
        store.start_run(empty.id, [A], GenerationParams())


def _record_all(store: EvalStore) -> tuple[int, int]:
    made = store.create_set("basics", CASES)
    run = store.start_run(made.id, [A, B], GenerationParams(temperature=0.0, seed=1))
    c1, c2, c3 = made.cases
    store.record_result(run.id, c1.id, A, "Paris.", Score(True, "contains 'Paris'"),
                        model_name="A Q4", decode_tps=50.0, ttft_ms=20.0,
                        completion_tokens=3, peak_memory_bytes=100)  # fmt: skip
    store.record_result(run.id, c2.id, A, "41", Score(False, "expected 42 ± 0.5, got 41"),
                        model_name="A Q4", decode_tps=70.0, peak_memory_bytes=300)  # fmt: skip
    store.record_result(run.id, c3.id, A, "Leaves fall", Score(None, "waiting for a judgment"),
                        model_name="A Q4", decode_tps=60.0, peak_memory_bytes=200)  # fmt: skip
    store.record_result(run.id, c1.id, B, "", Score(False, "error"), error="server down")
    store.record_result(run.id, c2.id, B, "42", Score(True, "expected 42 ± 0.5, got 42"),
                        model_name="Llama 1B", decode_tps=30.0)  # fmt: skip
    return made.id, run.id


def test_results_come_in_case_then_model_order(store: EvalStore) -> None:
    _set_id, run_id = _record_all(store)
    results = store.results(run_id)
    assert [(r.reply, r.model) for r in results] == [
        ("Paris.", A),
        ("", B),
        ("41", A),
        ("42", B),
        ("Leaves fall", A),
    ]


def test_record_result_replaces_the_result_of_the_same_case_and_model(store: EvalStore) -> None:
    _set_id, run_id = _record_all(store)
    first = store.results(run_id)[1]
    again = store.record_result(run_id, first.case_id, B, "Paris", Score(True, "ok"))
    assert again.id == first.id
    assert (again.reply, again.passed, again.error) == ("Paris", True, "")
    assert len(store.results(run_id)) == 5


def test_judge_sets_and_clears_a_manual_verdict(store: EvalStore) -> None:
    _set_id, run_id = _record_all(store)
    manual = store.results(run_id)[-1]
    judged = store.judge(manual.id, True)
    assert (judged.passed, judged.detail) == (True, "judged pass by hand")
    cleared = store.judge(manual.id, None)
    assert (cleared.passed, cleared.detail) == (None, "waiting for a judgment")


def test_summary_per_model(store: EvalStore) -> None:
    _set_id, run_id = _record_all(store)
    assert store.summary(run_id) == [
        ModelSummary(A, "A Q4", passed=1, total=3, judged=2, score=0.5, errors=0,
                     decode_tokens_per_second=60.0, peak_memory_bytes=300),
        ModelSummary(B, "Llama 1B", passed=1, total=3, judged=2, score=0.5, errors=1,
                     decode_tokens_per_second=30.0, peak_memory_bytes=None),
    ]  # fmt: skip
    store.judge(store.results(run_id)[-1].id, True)
    assert store.summary(run_id)[0].score == pytest.approx(2 / 3)


def test_summary_names_a_model_that_never_loaded_after_its_file(store: EvalStore) -> None:
    made = store.create_set("basics", CASES)
    run = store.start_run(made.id, ["/m/Broken-Q2_K.gguf"], GenerationParams())
    [summary] = store.summary(run.id)
    assert (summary.model_name, summary.judged, summary.score) == ("Broken-Q2_K", 0, None)


def test_compare_runs_shows_each_changed_verdict(store: EvalStore) -> None:
    set_id, old = _record_all(store)
    cases = store.get_set(set_id).cases
    new = store.start_run(set_id, [A, B], GenerationParams()).id
    store.record_result(new, cases[0].id, A, "Rome", Score(False, "'Paris' not found"))
    store.record_result(new, cases[1].id, A, "42", Score(True, "ok"))
    store.record_result(new, cases[1].id, B, "42", Score(True, "ok"))
    diffs = store.compare_runs(old, new)
    assert diffs == [
        CaseDiff(cases[0].id, 0, "Capital of France?", A, True, False),
        CaseDiff(cases[1].id, 1, "17 + 25?", A, False, True),
        CaseDiff(cases[1].id, 1, "17 + 25?", B, True, True),
    ]
    assert [d.changed for d in diffs] == [True, True, False]


def test_compare_runs_of_two_sets_matches_cases_by_prompt(store: EvalStore) -> None:
    _set_id, old = _record_all(store)
    copy = store.create_set("copy", [CASES[1], CASES[0]])
    new = store.start_run(copy.id, [A], GenerationParams()).id
    store.record_result(new, copy.cases[1].id, A, "Lyon", Score(False, "no"))
    [diff] = store.compare_runs(old, new)
    assert (diff.prompt, diff.was, diff.now, diff.position) == (
        "Capital of France?",
        True,
        False,
        1,
    )


def test_csv_export_reads_back_as_the_same_rows(store: EvalStore, tmp_path: Path) -> None:
    _set_id, run_id = _record_all(store)
    path = tmp_path / "run.csv"
    store.export_csv(run_id, path)
    rows = read_csv(path)
    assert rows == export_rows(store, run_id)
    assert [(r.case, r.model, r.passed) for r in rows] == [
        (1, A, True), (1, B, False), (2, A, False), (2, B, True), (3, A, None),
    ]  # fmt: skip
    assert rows[0].peak_memory_bytes == 100
    assert rows[1].error == "server down"


def test_json_export_reads_back_as_the_same_report(store: EvalStore, tmp_path: Path) -> None:
    _set_id, run_id = _record_all(store)
    path = tmp_path / "run.json"
    store.export_json(run_id, path)
    report = store.load_exported_json(path)
    assert report == store.report(run_id)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert set(raw) == {"set", "run_id", "status", "models", "cases"}
    assert {"model", "model_name", "passed", "total", "score", "decode_tokens_per_second",
            "peak_memory_bytes"} <= set(raw["models"][0])  # fmt: skip
    first = raw["cases"][0]
    assert (first["prompt"], first["expected"], first["scorer"]) == (
        "Capital of France?",
        "Paris",
        "contains",
    )
    assert first["results"][A] == {
        "passed": True,
        "reply": "Paris.",
        "detail": "contains 'Paris'",
        "error": "",
    }
    assert raw["cases"][2]["results"] == {
        A: {"passed": None, "reply": "Leaves fall", "detail": "waiting for a judgment", "error": ""}
    }


def test_a_file_that_is_not_an_export_is_refused(store: EvalStore, tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(UserFacingError, match="not an LLM Workbench eval export"):
        store.load_exported_json(path)
