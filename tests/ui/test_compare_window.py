"""The Compare window with a fake session opener: streaming panes, failures, stop, memory
plans, votes, win rates, reopening past runs and multi-turn histories."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.compare import CompareService
from app.compare_plan import PaneNeed
from app.errors import RuntimeCrashed
from app.eval_store import EvalStore
from app.hardware import CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.memory import GIB
from app.model_session import RunFigures
from app.store import open_database
from app.store.database import Database
from runtimes.base import CancelToken, ChatMessage, ChatRequest, LoadOptions
from ui.compare_window import CompareServices, CompareWindow

ALPHA, BETA, GAMMA = "/models/alpha.gguf", "/models/beta.gguf", "ollama::gamma"
CHOICES = [("Alpha · Q4_1 · llama.cpp", ALPHA), ("Beta · Q8_0 · llama.cpp", BETA),
           ("Gamma · Ollama", GAMMA)]  # fmt: skip


@dataclass
class FakeOpener:
    """Opens fake sessions that stream `pieces` with a small sleep each; `behaviour` per
    choice: "ok", "fail" (a worker crash mid-reply), "bug" (an unexpected exception)."""

    pieces: int = 6
    delay: float = 0.01
    behaviour: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)
    requests: dict[str, list[ChatRequest]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    live: int = 0
    most_live: int = 0

    def open(
        self, choice: str, load: LoadOptions | None = None, cancel: CancelToken | None = None
    ) -> FakeSession:
        with self.lock:
            self.log.append(("open", choice))
            self.live += 1
            self.most_live = max(self.most_live, self.live)
        return FakeSession(self, choice)


class FakeSession:
    def __init__(self, opener: FakeOpener, choice: str) -> None:
        self.opener = opener
        self.choice = choice
        self.name = choice.rsplit("/", 1)[-1]
        self.runtime = "llamacpp"
        self.load_seconds = 0.01
        self.closed = False

    def generate(
        self,
        request: ChatRequest,
        cancel: CancelToken,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[str, RunFigures]:
        with self.opener.lock:
            self.opener.requests.setdefault(self.choice, []).append(request)
        behaviour = self.opener.behaviour.get(self.choice, "ok")
        tag = self.name.split(".")[0]
        text = []
        for i in range(self.opener.pieces):
            if cancel.cancelled:
                break
            if i == 2 and behaviour == "fail":
                raise RuntimeCrashed(-9, "killed")
            if i == 2 and behaviour == "bug":
                raise RuntimeError("fake bug")
            piece = f"{tag}{i} "
            text.append(piece)
            if on_text is not None:
                on_text(piece)
            time.sleep(self.opener.delay)
        size = {"alpha": 100, "beta": 300}.get(tag, 200) * 2**20
        figures = RunFigures(0.01, 5.0, 100.0 if tag == "alpha" else 50.0, 900.0, 12,
                             len(text), 0.1, size)  # fmt: skip
        return "".join(text), figures

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self.opener.lock:
                self.opener.log.append(("close", self.choice))
                self.opener.live -= 1


@dataclass
class Needs:
    """Pane needs by choice (bytes); unknown choices need 1 MiB."""

    sizes: dict[str, int] = field(default_factory=dict)

    def __call__(self, choices: Sequence[tuple[str, LoadOptions | None]]) -> tuple[PaneNeed, ...]:
        return tuple(
            PaneNeed(c, c, None if c.startswith("ollama::") else self.sizes.get(c, 2**20))
            for c, _load in choices
        )


@pytest.fixture()
def hardware() -> list[HardwareProfile | None]:
    return [None]  # None: the memory available now


@pytest.fixture()
def opener() -> FakeOpener:
    return FakeOpener()


@pytest.fixture()
def needs() -> Needs:
    return Needs()


@pytest.fixture()
def database(tmp_path: Path) -> Database:
    return open_database(tmp_path / "h.sqlite3")


@pytest.fixture()
def service(database: Database) -> CompareService:
    return CompareService(database)


@pytest.fixture()
def window(
    qtbot: QtBot,
    opener: FakeOpener,
    needs: Needs,
    service: CompareService,
    database: Database,
    hardware: list[HardwareProfile | None],
) -> Iterator[CompareWindow]:
    services = CompareServices(
        compare=service,
        opener=opener,
        choices=lambda: list(CHOICES),
        hardware=lambda: hardware[0],
        pane_needs=needs,
        eval_store=EvalStore(database),
        database=database,
    )
    win = CompareWindow(services)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def _send(qtbot: QtBot, window: CompareWindow, prompt: str, wait: bool = True) -> None:
    page = window.compare
    page.input.setPlainText(prompt)
    page.send()
    if wait:
        qtbot.waitUntil(lambda: not page.busy, timeout=10_000)


def test_window_has_compare_and_eval_tabs(window: CompareWindow) -> None:
    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert tabs == ["Compare", "Eval"]
    page = window.compare
    assert len(page.panes) == 2
    assert [p.choice() for p in page.panes] == [ALPHA, BETA]  # a different model each
    assert page.seed.value() == 42 and page.requested_mode() == "auto"


def test_panes_stream_independently_and_in_parallel(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener, service: CompareService
) -> None:
    opener.pieces, opener.delay = 40, 0.02
    page = window.compare
    _send(qtbot, window, "Say hi", wait=False)
    assert page.busy
    assert "share the machine" in page.banner.message.text()
    qtbot.waitUntil(
        lambda: "alpha1" in page.panes[0].reply_text() and "beta1" in page.panes[1].reply_text(),
        timeout=5000,
    )
    assert page.busy  # both show text while the turn is still running
    assert "beta" not in page.panes[0].reply_text() and "alpha" not in page.panes[1].reply_text()
    qtbot.waitUntil(lambda: not page.busy, timeout=10_000)
    assert opener.most_live == 2
    assert [p.state for p in page.panes] == ["done", "done"]
    assert "alpha39" in page.panes[0].reply_text()
    run = service.run(page.run_id or 0)
    replies = run.turns[0].replies
    assert [r.status for r in replies] == ["complete", "complete"]
    assert replies[0].text.startswith("alpha0 alpha1") and replies[1].text.startswith("beta0")
    assert replies[0].figures is not None and replies[0].figures.decode_tps == 100.0


def test_one_pane_failing_leaves_the_other_running(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener, service: CompareService
) -> None:
    opener.behaviour[BETA] = "fail"
    opener.pieces = 10
    page = window.compare
    page.set_pane_count(3)
    page.panes[2].set_choice(GAMMA)
    opener.behaviour[GAMMA] = "bug"
    _send(qtbot, window, "Go")
    assert [p.state for p in page.panes] == ["done", "failed", "failed"]
    assert "alpha9" in page.panes[0].reply_text()
    assert "worker process stopped unexpectedly" in page.panes[1].reply_text()
    assert "beta1" in page.panes[1].reply_text()  # the partial reply stays
    assert "Internal error" in page.panes[2].reply_text()
    replies = service.run(page.run_id or 0).turns[0].replies
    assert [r.status for r in replies] == ["complete", "error", "error"]
    assert "stopped unexpectedly" in replies[1].error


def test_stop_cancels_every_pane(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener, service: CompareService
) -> None:
    opener.pieces, opener.delay = 500, 0.01
    page = window.compare
    _send(qtbot, window, "Count", wait=False)
    qtbot.waitUntil(lambda: all("1 " in p.reply_text() for p in page.panes), timeout=5000)
    started = time.monotonic()
    page.stop()
    qtbot.waitUntil(lambda: not page.busy, timeout=5000)
    assert time.monotonic() - started < 2
    assert [p.state for p in page.panes] == ["stopped", "stopped"]
    assert all("Stopped" in p.reply_text() for p in page.panes)
    replies = service.run(page.run_id or 0).turns[0].replies
    assert [r.status for r in replies] == ["interrupted", "interrupted"]
    assert all(r.text and len(r.text.split()) < 500 for r in replies)


def test_sequential_runs_one_model_after_the_other(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener
) -> None:
    opener.pieces, opener.delay = 20, 0.02
    page = window.compare
    page.mode.setCurrentIndex(page.mode.findData("sequential"))
    _send(qtbot, window, "One at a time", wait=False)
    assert page.banner.message.text().startswith("Running one model at a time.")
    qtbot.waitUntil(lambda: "alpha1" in page.panes[0].reply_text(), timeout=5000)
    assert page.panes[1].state == "waiting"
    assert "beta" not in page.panes[1].reply_text()
    qtbot.waitUntil(lambda: not page.busy, timeout=10_000)
    assert opener.log == [("open", ALPHA), ("close", ALPHA), ("open", BETA), ("close", BETA)]
    assert opener.most_live == 1
    assert "fair" in page.summary.note.text()


def test_a_plan_that_does_not_fit_starts_nothing(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener, needs: Needs, service: CompareService
) -> None:
    needs.sizes[BETA] = 2**60  # an exabyte: fits nowhere, even alone
    page = window.compare
    _send(qtbot, window, "Too big")
    assert not page.busy and opener.log == []
    assert page.banner.message.text().startswith("Cannot run")
    assert service.runs() == []
    assert page.input.toPlainText() == "Too big"  # nothing lost
    assert "Needs ~" in page.panes[1].fit.text()


def test_votes_are_stored_and_win_rates_shown(
    qtbot: QtBot, window: CompareWindow, service: CompareService
) -> None:
    page = window.compare
    assert not page.votes.buttons[0].isEnabled()  # nothing to judge yet
    _send(qtbot, window, "Which is better?")
    assert page.votes.buttons[1].isEnabled()
    page.votes.buttons[1].click()
    turn = service.run(page.run_id or 0).turns[0]
    assert turn.voted and turn.winner_pane_id == page.pane_ids[1]
    _send(qtbot, window, "And now?")
    page.votes.tie.click()
    last = service.run(page.run_id or 0).turns[1]
    assert last.voted and last.winner_pane_id is None
    page.show_win_rates()
    dialog = page.win_rates_dialog
    assert dialog is not None
    rows = {
        dialog.table.item(r, 0).text(): [dialog.table.item(r, c).text() for c in range(1, 6)]
        for r in range(dialog.table.rowCount())
    }
    beta = page.panes[1].model_name()
    alpha = page.panes[0].model_name()
    assert rows[beta] == ["1", "0", "1", "2", "75%"]
    assert rows[alpha] == ["0", "1", "1", "2", "25%"]
    dialog.close()


def test_metrics_table_marks_fastest_and_smallest(qtbot: QtBot, window: CompareWindow) -> None:
    page = window.compare
    _send(qtbot, window, "Figures")
    table = page.summary.table
    assert table.rowCount() == 2
    alpha, beta = table.item(0, 0).text(), table.item(1, 0).text()
    assert "fastest" in alpha and "smallest" in alpha and "fastest" not in beta
    assert table.item(0, 3).text() == "100.0" and table.item(1, 3).text() == "50.0"
    assert table.item(1, 7).text() == "300 MiB"
    speeds = page.summary.speed_chart.chart_layout()
    assert [bar.value for bar in speeds.bars] == [100.0, 50.0]
    assert "shared the machine" in page.summary.note.text()


def test_reopening_a_past_run_shows_its_replies_and_continues_it(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener, service: CompareService
) -> None:
    page = window.compare
    _send(qtbot, window, "First question")
    page.votes.buttons[0].click()
    run_id = page.run_id
    page.new_comparison()
    assert page.run_id is None and "alpha0" not in page.panes[0].reply_text()
    index = page.history.findData(run_id)
    assert index > 0 and "First question" in page.history.itemText(index)
    page.history.setCurrentIndex(index)
    page.history.activated.emit(index)
    assert page.run_id == run_id
    assert "First question" in page.panes[0].reply_text()
    assert "alpha5" in page.panes[0].reply_text() and "beta5" in page.panes[1].reply_text()
    assert page.summary.table.rowCount() == 2
    assert page.votes.buttons[0].isChecked()
    _send(qtbot, window, "Second question")
    assert page.run_id == run_id
    assert len(service.run(run_id or 0).turns) == 2


def test_multi_turn_gives_each_pane_its_own_history(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener
) -> None:
    page = window.compare
    page.system_prompt.setText("Be brief.")
    _send(qtbot, window, "Hello")
    _send(qtbot, window, "Again")
    second_alpha = opener.requests[ALPHA][1].messages
    second_beta = opener.requests[BETA][1].messages
    assert [m.role for m in second_alpha] == ["system", "user", "assistant", "user"]
    assert second_alpha[0].content == "Be brief."
    assert second_alpha[2].content.startswith("alpha0") and second_alpha[3].content == "Again"
    assert second_beta[2].content.startswith("beta0")
    assert opener.requests[ALPHA][1].params.seed == 42  # the same seed for every pane
    assert opener.requests[BETA][1].params.seed == 42


def test_pane_options_override_one_pane(
    qtbot: QtBot, window: CompareWindow, opener: FakeOpener
) -> None:
    from ui.compare_pane import PaneOverrides

    page = window.compare
    page.panes[1].overrides = PaneOverrides(temperature=0.0, system_prompt="Answer in French.")
    _send(qtbot, window, "Bonjour?")
    alpha, beta = opener.requests[ALPHA][0], opener.requests[BETA][0]
    assert alpha.params.temperature == 0.7 and beta.params.temperature == 0.0
    assert beta.messages[0].content == "Answer in French."
    assert alpha.messages[0].role == "user"


def test_adding_and_removing_panes_stays_between_two_and_four(window: CompareWindow) -> None:
    page = window.compare
    page.add_button.click()
    page.add_button.click()
    assert len(page.panes) == 4 and not page.add_button.isEnabled()
    assert [p.choice() for p in page.panes][:3] == [ALPHA, BETA, GAMMA]
    assert len(page.votes.buttons) == 4
    page.panes[0].remove.click()
    assert len(page.panes) == 3 and [p.index for p in page.panes] == [0, 1, 2]
    page.panes[0].remove.click()
    assert len(page.panes) == 2 and not page.panes[0].remove.isEnabled()


def test_compare_with_starts_from_a_conversation(window: CompareWindow) -> None:
    messages = [ChatMessage("system", "Be kind."), ChatMessage("user", "Why is the sky blue?")]
    window.start_from_conversation("Sky", messages, BETA)
    page = window.compare
    assert page.panes[0].choice() == BETA and page.panes[1].choice() != BETA
    assert page.system_prompt.text() == "Be kind."
    assert page.input.toPlainText() == "Why is the sky blue?"


def test_auto_runs_sequentially_when_the_panes_do_not_fit_together(
    qtbot: QtBot,
    window: CompareWindow,
    opener: FakeOpener,
    needs: Needs,
    hardware: list[HardwareProfile | None],
) -> None:
    cpu = CPUInfo("AMD EPYC", 2, 2, 0, 2, ("AVX2",))
    memory = MemoryInfo(32 * GIB, 8 * GIB, 0, 0)
    hardware[0] = HardwareProfile(OSInfo("Linux", "6.1", "x86_64"), cpu, memory)
    needs.sizes.update({ALPHA: 5 * GIB, BETA: 5 * GIB})  # each fits alone, not both
    page = window.compare
    _send(qtbot, window, "Too big together", wait=False)
    notice = page.banner.message.text()
    assert notice.startswith("Running one model at a time.") and "do not fit together" in notice
    qtbot.waitUntil(lambda: not page.busy, timeout=10_000)
    assert opener.most_live == 1
    assert page.panes[0].fit.text() == "Needs ~5.0 GiB"
    page.mode.setCurrentIndex(page.mode.findData("parallel"))
    _send(qtbot, window, "Force it")  # forcing parallel: never started
    assert page.banner.message.text().startswith("Cannot run in parallel")
    assert len(opener.log) == 4


def test_summary_marks_need_two_figures() -> None:
    from ui.compare_summary import SummaryRow, summary_marks

    def row(tps: float, memory: int | None) -> SummaryRow:
        return SummaryRow("m", RunFigures(1.0, 10.0, tps, None, 5, 10, 1.0, memory))

    assert summary_marks([row(30, 2), row(40, 1)]) == [[], ["fastest", "smallest"]]
    assert summary_marks([row(30, None), row(40, None)]) == [[], ["fastest"]]
    assert summary_marks([row(30, 5), SummaryRow("x", None, "error", "boom")]) == [[], []]


def test_pane_options_dialog_round_trips(qtbot: QtBot) -> None:
    from ui.compare_pane import PaneOptionsDialog, PaneOverrides

    start = PaneOverrides(temperature=0.3, seed=7, n_ctx=2048)
    dialog = PaneOptionsDialog(start)
    qtbot.addWidget(dialog)
    assert dialog.overrides() == start
    dialog.temperature.setValue(dialog.temperature.minimum())  # back to "Shared"
    dialog.max_tokens.setValue(128)
    dialog.system_prompt.setPlainText("Be terse.")
    changed = dialog.overrides()
    assert changed.temperature is None and changed.max_tokens == 128 and changed.seed == 7
    assert changed.system_prompt == "Be terse." and changed.load() is not None
    assert changed.summary() == "max 128, seed 7, ctx 2048, own system prompt"


def test_synced_scrolling_moves_every_pane(qtbot: QtBot, window: CompareWindow) -> None:
    page = window.compare
    long_reply = "\n\n".join(f"Paragraph {i}." for i in range(80))
    for pane in page.panes:
        pane.show_history([("Q", long_reply, "", False)])
    bars = [p.transcript.verticalScrollBar() for p in page.panes]
    qtbot.waitUntil(lambda: all(bar.maximum() > 0 for bar in bars))
    bars[1].setValue(bars[1].maximum() // 2)  # unsynced: the first stays where it was
    bars[0].setValue(0)
    page.sync.setChecked(True)
    bars[0].setValue(bars[0].maximum())
    assert bars[1].value() == bars[1].maximum()
    bars[1].setValue(0)
    assert bars[0].value() == 0
