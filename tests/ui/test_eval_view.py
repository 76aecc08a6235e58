"""The Compare window's Eval tab: sets, case editing, runs across fake models, results."""

from __future__ import annotations

import csv
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.eval_report import read_csv, read_json
from app.eval_store import EvalStore
from app.model_session import RunFigures
from app.store import open_database
from runtimes.base import CancelToken, ChatRequest, LoadOptions
from ui.eval_editor import EXPECTED, OPTIONS, PROMPT, SCORER
from ui.eval_view import EvalView, eta_text, make_eval_tab

GOOD = "/models/good-Q8_0.gguf"
WEAK = "/models/weak-Q2_K.gguf"
CASES = [
    {"prompt": "What is 2+2?", "expected": "4", "scorer": "numeric"},
    {"prompt": "Capital of France?", "expected": "Paris", "scorer": "contains"},
    {"prompt": "Give a JSON object", "scorer": "json_valid"},
    {"prompt": "Write a haiku", "scorer": "manual"},
]
REPLIES = {
    GOOD: {
        "What is 2+2?": "4",
        "Capital of France?": "It is Paris.",
        "Give a JSON object": '{"a": 1}',
        "Write a haiku": "leaves fall",
    },
    WEAK: {
        "What is 2+2?": "5",
        "Capital of France?": "London",
        "Give a JSON object": "not json",
        "Write a haiku": "haiku?",
    },
}
SPEED = {GOOD: 40.0, WEAK: 90.0}
MEMORY = {GOOD: 300 * 2**20, WEAK: 120 * 2**20}


@dataclass
class FakeOpener:
    """Opens fake sessions that answer from `REPLIES` after a tiny delay.

    `hold` names a (model, prompt) whose reply waits for the cancel token (a reply
    cancelled midway); `held` is set when it starts waiting.
    """

    calls: list[tuple[str, str]] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    hold: tuple[str, str] | None = None
    held: threading.Event = field(default_factory=threading.Event)

    def open(
        self, choice: str, load: LoadOptions | None = None, cancel: CancelToken | None = None
    ) -> FakeSession:
        self.opened.append(choice)
        return FakeSession(choice, self)


class FakeSession:
    def __init__(self, choice: str, opener: FakeOpener) -> None:
        self.choice = choice
        self.name = f"Fake {Path(choice).stem}"
        self.runtime = "llamacpp"
        self.load_seconds = 0.01
        self._opener = opener

    def generate(
        self,
        request: ChatRequest,
        cancel: CancelToken,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[str, RunFigures]:
        prompt = request.messages[-1].content
        self._opener.calls.append((self.choice, prompt))
        figures = RunFigures(None, 12.0, SPEED[self.choice], None, 8, 4, 0.1, MEMORY[self.choice])
        if self._opener.hold == (self.choice, prompt):
            self._opener.held.set()
            cancel.wait(10)
            return "", figures
        time.sleep(0.005)
        return REPLIES[self.choice][prompt], figures

    def count_tokens(self, messages: object) -> int | None:
        return None

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class FakeServices:
    opener: FakeOpener
    choices: Callable[[], list[tuple[str, str]]]
    eval_store: EvalStore | None


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[EvalStore]:
    db = open_database(tmp_path / "h.sqlite3")
    yield EvalStore(db)
    db.close()


@pytest.fixture()
def set_file(tmp_path: Path) -> Path:
    path = tmp_path / "basics.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")
    return path


@pytest.fixture()
def make_view(qtbot, store: EvalStore):
    views: list[EvalView] = []

    def make(opener: FakeOpener | None = None) -> EvalView:
        services = FakeServices(
            opener or FakeOpener(),
            lambda: [("Good · Q8_0", GOOD), ("Weak · Q2_K", WEAK)],
            store,
        )
        view = EvalView(services)
        qtbot.addWidget(view)
        view.resize(1200, 800)
        view.show()
        views.append(view)
        return view

    yield make
    for view in views:
        assert view.shutdown()


def _import(view: EvalView, path: Path) -> int:
    view.editor.ask_import_path = lambda: path  # type: ignore[method-assign]
    view.editor.import_button.click()
    set_id = view.editor.current_set_id
    assert set_id is not None
    return set_id


def _run(qtbot, view: EvalView) -> int:
    view.set_checked_models([GOOD, WEAK])
    with qtbot.waitSignal(view.run_finished, timeout=20_000):
        run_id = view.start_run()
    assert run_id is not None
    return run_id


def _grid(view: EvalView) -> list[list[str]]:
    grid = view.results.grid
    assert grid.data is not None
    rows = len(grid.data.cases)
    return [[grid.item(r, c).text() for c in range(grid.columnCount())] for r in range(rows)]


def test_import_fills_the_set_list_and_the_case_table(make_view, set_file: Path, store) -> None:
    view = make_view()
    assert view.editor.current_set_id is None
    assert "Import an eval set" in view.editor.message.text()
    set_id = _import(view, set_file)
    assert store.get_set(set_id).name == "basics"
    assert view.editor.sets.currentItem().text() == "basics  (4)"
    table = view.editor.table
    assert table.rowCount() == 4
    assert table.item(0, PROMPT).text() == "What is 2+2?"
    assert table.item(0, SCORER).text() == "numeric"
    assert "Imported 4 cases" in view.editor.message.text()


def test_a_bad_import_says_which_line_and_adds_no_set(make_view, tmp_path: Path, store) -> None:
    view = make_view()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "x", "scorer": "regex", "expected": "("}\n')
    view.editor.ask_import_path = lambda: bad  # type: ignore[method-assign]
    view.editor.import_button.click()
    assert "line 2" in view.editor.message.text()
    assert store.sets() == []


def test_editing_a_cell_saves_the_case(make_view, set_file: Path, store) -> None:
    view = make_view()
    set_id = _import(view, set_file)
    view.editor.table.item(1, EXPECTED).setText("Paris, France")
    assert store.get_set(set_id).cases[1].expected == "Paris, France"
    assert view.editor.message.text() == "Case 2 saved."


def test_an_invalid_regex_is_refused_inline_and_not_saved(make_view, set_file, store) -> None:
    view = make_view()
    set_id = _import(view, set_file)
    table = view.editor.table
    table.item(1, SCORER).setText("regex")  # "Paris" is a fine pattern: saved
    assert store.get_set(set_id).cases[1].scorer == "regex"
    table.item(1, EXPECTED).setText("(Paris")
    message = view.editor.message.text()
    assert message.startswith("Case 2 not saved:")
    assert "regular expression" in message.lower() or "regex" in message.lower()
    assert table.item(1, EXPECTED).toolTip() != ""
    assert table.item(1, EXPECTED).text() == "(Paris"  # the text stays to be fixed
    assert store.get_set(set_id).cases[1].expected == "Paris"
    table.item(1, EXPECTED).setText("(Paris)")
    assert store.get_set(set_id).cases[1].expected == "(Paris)"
    assert table.item(1, EXPECTED).toolTip() == ""


def test_bad_json_options_are_refused_inline(make_view, set_file, store) -> None:
    view = make_view()
    set_id = _import(view, set_file)
    view.editor.table.item(1, OPTIONS).setText("{case_sensitive: true")
    assert "not valid JSON" in view.editor.message.text()
    assert store.get_set(set_id).cases[1].options == {}


def test_add_remove_and_reorder_cases(make_view, set_file, store) -> None:
    view = make_view()
    set_id = _import(view, set_file)
    editor = view.editor
    editor.add_button.click()
    assert editor.table.rowCount() == 5
    assert len(store.get_set(set_id).cases) == 4  # an empty prompt is not saved yet
    editor.table.item(4, PROMPT).setText("Name a colour")
    assert [c.prompt for c in store.get_set(set_id).cases][-1] == "Name a colour"
    editor.table.setCurrentCell(4, PROMPT)
    editor.up_button.click()
    prompts = [c.prompt for c in store.get_set(set_id).cases]
    assert prompts[3:] == ["Name a colour", "Write a haiku"]
    editor.table.setCurrentCell(0, PROMPT)
    editor.remove_button.click()
    prompts = [c.prompt for c in store.get_set(set_id).cases]
    assert prompts == ["Capital of France?", "Give a JSON object", "Name a colour", "Write a haiku"]


def test_new_rename_export_and_delete_a_set(make_view, set_file, tmp_path, store) -> None:
    view = make_view()
    editor = view.editor
    set_id = _import(view, set_file)
    editor.ask_name = lambda title, current: "Renamed"  # type: ignore[method-assign]
    editor.rename_button.click()
    assert store.get_set(set_id).name == "Renamed"
    out = tmp_path / "out.csv"
    editor.ask_export_path = lambda name: out  # type: ignore[method-assign]
    editor.export_button.click()
    with out.open(encoding="utf-8") as f:
        assert [row["prompt"] for row in csv.DictReader(f)] == [c["prompt"] for c in CASES]
    editor.ask_name = lambda title, current: "Empty set"  # type: ignore[method-assign]
    editor.new_button.click()
    assert editor.sets.currentItem().text() == "Empty set  (0)"
    assert editor.table.rowCount() == 0
    editor.confirm_delete = lambda name: True  # type: ignore[method-assign]
    editor.delete_button.click()
    assert [s.name for s in store.sets()] == ["Renamed"]


def test_a_run_across_two_models_fills_grid_scores_and_scatter(qtbot, make_view, set_file) -> None:
    view = make_view()
    _import(view, set_file)
    assert view.params().temperature == 0.0
    assert view.params().seed == 42
    _run(qtbot, view)
    assert _grid(view) == [["✓", "✗"], ["✓", "✗"], ["✓", "✗"], ["?", "?"]]
    grid = view.results.grid
    assert grid.horizontalHeaderItem(0).text() == "Good · Q8_0"
    assert grid.summary_texts(0) == ["3/4 · 100 % · 1 open", "40.0", "300 MiB"]
    assert grid.summary_texts(1) == ["0/4 · 0 % · 1 open", "90.0", "120 MiB"]
    points = view.results.scatter_points()
    assert [(p.label, p.x, p.y) for p in points] == [
        ("Good · Q8_0", 40.0, 100.0),
        ("Weak · Q2_K", 90.0, 0.0),
    ]
    view.results.axis.setCurrentIndex(1)
    assert [p.x for p in view.results.scatter_points()] == [300.0, 120.0]
    assert view.progress_label.text() == "Done."
    assert view.resume_button.isEnabled() is False
    assert view.run_button.isEnabled()
    view.set_checked_models([])
    assert view.run_button.isEnabled() is False
    view.models.item(1).setCheckState(Qt.CheckState.Checked)
    assert view.run_button.isEnabled()


def test_results_are_written_on_the_gui_thread(qtbot, make_view, set_file, store) -> None:
    writers: set[str] = set()
    record = store.record_result

    def recording(*args, **kwargs):
        writers.add(threading.current_thread().name)
        return record(*args, **kwargs)

    store.record_result = recording
    view = make_view()
    _import(view, set_file)
    _run(qtbot, view)
    assert writers == {threading.main_thread().name}
    assert len(store.results(view.run_id)) == 8


def test_clicking_a_cell_shows_reply_expected_and_detail(qtbot, make_view, set_file) -> None:
    view = make_view()
    _import(view, set_file)
    _run(qtbot, view)
    view.results.grid.setCurrentCell(1, 1)
    text = view.results.detail.toPlainText()
    assert "Capital of France?" in text
    assert "Paris" in text
    assert "London" in text
    assert view.results.pass_button.isEnabled() is False


def test_judging_a_manual_case_updates_the_score(qtbot, make_view, set_file) -> None:
    view = make_view()
    _import(view, set_file)
    _run(qtbot, view)
    view.results.grid.setCurrentCell(3, 0)
    assert view.results.pass_button.isEnabled()
    view.results.pass_button.click()
    assert _grid(view)[3] == ["✓", "?"]
    assert view.results.grid.summary_texts(0)[0] == "4/4 · 100 %"
    view.results.grid.setCurrentCell(3, 1)
    view.results.fail_button.click()
    assert view.results.grid.summary_texts(1)[0] == "0/4 · 0 %"


def test_cancel_mid_run_then_resume_does_not_redo_recorded_cases(
    qtbot, make_view, set_file, store
) -> None:
    opener = FakeOpener(hold=(WEAK, "Capital of France?"))
    view = make_view(opener)
    _import(view, set_file)
    view.set_checked_models([GOOD, WEAK])
    run_id = view.start_run()
    assert run_id is not None
    qtbot.waitUntil(opener.held.is_set, timeout=10_000)
    qtbot.waitUntil(lambda: "model 2/2" in view.progress_label.text(), timeout=5_000)
    assert re.fullmatch(r"case 1/4 · model 2/2 · ETA \d+ s", view.progress_label.text())
    assert view.progress.value() == 5
    assert view.progress.maximum() == 8
    with qtbot.waitSignal(view.run_finished, timeout=10_000):
        view.cancel_button.click()
    assert store.run(run_id).status == "cancelled"
    assert len(store.results(run_id)) == 5  # four on GOOD, one on WEAK
    assert view.resume_button.isEnabled()
    before = list(opener.calls)
    opener.hold = None
    with qtbot.waitSignal(view.run_finished, timeout=20_000):
        view.resume_button.click()
    redone = opener.calls[len(before) :]
    assert redone == [
        (WEAK, "Capital of France?"),
        (WEAK, "Give a JSON object"),
        (WEAK, "Write a haiku"),
    ]
    assert store.run(run_id).status == "complete"
    assert _grid(view) == [["✓", "✗"], ["✓", "✗"], ["✓", "✗"], ["?", "?"]]


def test_shutdown_cancels_a_running_eval_and_waits(qtbot, make_view, set_file, store) -> None:
    opener = FakeOpener(hold=(GOOD, "Capital of France?"))
    view = make_view(opener)
    _import(view, set_file)
    view.set_checked_models([GOOD])
    run_id = view.start_run()
    qtbot.waitUntil(opener.held.is_set, timeout=10_000)
    assert view.running()
    assert view.shutdown(5_000)
    assert not view.running()
    assert store.run(run_id).status == "cancelled"


def test_export_csv_and_json_then_read_them_back(
    qtbot, make_view, set_file, tmp_path: Path
) -> None:
    view = make_view()
    _import(view, set_file)
    run_id = _run(qtbot, view)
    target = tmp_path / "results.csv"
    view.ask_results_path = lambda kind: target  # type: ignore[method-assign]
    view.results.export_csv_button.click()
    rows = read_csv(target)
    assert len(rows) == 8
    assert {(r.model, r.prompt, r.passed) for r in rows if r.prompt == "What is 2+2?"} == {
        (GOOD, "What is 2+2?", True),
        (WEAK, "What is 2+2?", False),
    }
    assert f"Exported run {run_id}" in view.progress_label.text()
    target = tmp_path / "results.json"
    view.results.export_json_button.click()
    report = read_json(target)
    assert [m.passed for m in report.models] == [3, 0]


def test_reopening_a_past_run_and_comparing_with_it(qtbot, make_view, set_file, store) -> None:
    view = make_view()
    _import(view, set_file)
    first = _run(qtbot, view)
    view.results.grid.setCurrentCell(3, 0)
    view.results.pass_button.click()
    second = _run(qtbot, view)
    assert view.run_id == second
    history = view.results.history
    assert [history.itemData(i) for i in range(history.count())] == [second, first]
    assert _grid(view)[3] == ["?", "?"]
    history.setCurrentIndex(1)
    history.activated.emit(1)
    assert view.run_id == first
    assert _grid(view)[3] == ["✓", "?"]
    history.setCurrentIndex(0)
    history.activated.emit(0)
    compare = view.results.compare_with
    index = compare.findData(first)
    compare.setCurrentIndex(index)
    compare.activated.emit(index)
    assert _grid(view)[3][0] == "?  (was ✓)"
    assert view.results.changes_label.text() == (
        f"1 results changed since run {first}: 0 now pass, 1 no longer pass."
    )


def test_without_a_database_the_tab_says_why(qtbot) -> None:
    services = FakeServices(FakeOpener(), lambda: [], None)
    tab = make_eval_tab(services)
    qtbot.addWidget(tab)
    assert not isinstance(tab, EvalView)
    assert "history database" in tab.text()


def test_eta_reads_in_minutes_and_seconds() -> None:
    assert eta_text(80) == "ETA 1 min 20 s"
    assert eta_text(9.4) == "ETA 9 s"
    assert eta_text(None) == ""
    assert eta_text(3720) == "ETA 1 h 2 min"
