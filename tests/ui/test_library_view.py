"""The Library tab's rows: source labels, last use, and delete rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.library import LocalModel
from ui.library_view import COLUMNS, LibraryView


def _model(name: str, source: str, owned: bool) -> LocalModel:
    return LocalModel(
        name=name, path=Path(f"/m/{name}.gguf"), size_bytes=4_700_000_000, source=source,  # type: ignore[arg-type]
        quant="Q4_K_M", context_length=32768, repo="org/repo", owned=owned,
    )  # fmt: skip


def test_rows_show_source_and_last_use(qtbot) -> None:  # type: ignore[no-untyped-def]
    view = LibraryView()
    qtbot.addWidget(view)
    used = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    view.set_models(
        [_model("mine", "huggingface", True), _model("theirs", "ollama", False)],
        {"/m/mine.gguf": used},
    )
    column = COLUMNS.index("Last used")
    assert view.table.item(0, 1).text() == "Hugging Face cache"
    assert view.table.item(1, 1).text() == "Ollama"
    assert view.table.item(0, column).text() == used.astimezone().strftime("%Y-%m-%d %H:%M")
    assert view.table.item(1, column).text() == "never"
    assert view.status.text() == "2 models · from Hugging Face cache, Ollama"


def test_delete_asks_only_for_owned_models(qtbot) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []
    view = LibraryView(confirm=lambda q: asked.append(q) or True)
    qtbot.addWidget(view)
    view.set_models([_model("mine", "huggingface", True), _model("theirs", "ollama", False)])
    requested: list[LocalModel] = []
    view.delete_requested.connect(requested.append)
    view.table.selectRow(1)
    view.delete_button.click()  # not ours: straight to the library, which says who owns it
    view.table.selectRow(0)
    view.delete_button.click()
    assert [m.name for m in requested] == ["theirs", "mine"]
    assert asked == ["Delete mine (4.7 GB) from disk?"]
