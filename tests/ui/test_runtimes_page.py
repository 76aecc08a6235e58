"""The Runtimes page edits saved OpenAI-compatible endpoints: add, edit, remove, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox

from app.runtimes import RuntimeRegistry, registry_for
from app.secrets import SERVICE
from app.settings import Settings
from tests.servers.fixtures_openai import MemoryKeyring
from ui.endpoint_editor import EndpointEditor
from ui.runtimes_page import RuntimesPage

# Nothing listens on the discard port: status checks fail at once, as for a box that is off.
DOWN_URL = "http://127.0.0.1:9/v1"
KEY = "sk-test-123"


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # No Ollama here either: its row must say so quickly, not wait on a real one.
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    return Settings.load(tmp_path / "settings.json")


@pytest.fixture()
def page(qtbot, settings: Settings) -> Iterator[RuntimesPage]:
    page = RuntimesPage(registry_for(settings), settings)
    qtbot.addWidget(page)
    page.show()
    yield page
    page.wait_for_checks()


@pytest.fixture()
def registries(page: RuntimesPage) -> list[RuntimeRegistry]:
    seen: list[RuntimeRegistry] = []
    page.registry_changed.connect(seen.append)
    return seen


def _fill(editor: EndpointEditor, name: str | None, url: str | None, key: str = "") -> None:
    if name is not None:
        editor.name_edit.setText(name)
    if url is not None:
        editor.url_edit.setText(url)
    editor.key_edit.setText(key)


def _save(editor: EndpointEditor) -> None:
    editor.buttons.button(QDialogButtonBox.StandardButton.Save).click()


def _answer(monkeypatch: pytest.MonkeyPatch, answer: QMessageBox.StandardButton) -> None:
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *_args, **_kw: answer))


def test_adding_an_endpoint_adds_its_row_and_a_new_registry(
    qtbot, page: RuntimesPage, registries, settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    page.add_button.click()
    assert page.editor is not None and page.editor.isVisible()
    assert page.editor.key_edit.echoMode() == page.editor.key_edit.EchoMode.Password
    _fill(page.editor, "gpu box", DOWN_URL, KEY)
    _save(page.editor)

    assert not page.editor.isVisible()
    assert list(page.rows) == ["llamacpp", "ollama", "openai:gpu box"]
    assert set(page.endpoint_buttons) == {"gpu box"}
    assert len(registries) == 1 and registries[0] is page.registry
    assert registries[0].runtime_keys() == ["llamacpp", "ollama", "openai:gpu box"]
    assert settings.saved_endpoints == [{"name": "gpu box", "base_url": DOWN_URL, "has_key": True}]
    assert memory_keyring.passwords == {(SERVICE, "endpoint:gpu box"): KEY}
    # The new row is checked against the (absent) server: a state, not a hang or a crash.
    qtbot.waitUntil(page.rows["openai:gpu box"][2].isEnabled, timeout=10_000)
    assert "gpu box" in page.rows["openai:gpu box"][1].text()


def test_editing_renames_the_row_and_moves_the_key(
    page: RuntimesPage, registries, settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    editor = page.add_endpoint()
    _fill(editor, "gpu box", DOWN_URL, KEY)
    _save(editor)
    page.endpoint_buttons["gpu box"][0].click()  # Edit
    editor = page.editor
    assert editor is not None
    assert editor.name_edit.text() == "gpu box"
    assert editor.url_edit.text() == DOWN_URL
    assert editor.key_edit.text() == ""  # the key is never shown again
    _fill(editor, "big box", "http://127.0.0.1:9/api/")
    _save(editor)

    assert list(page.rows) == ["llamacpp", "ollama", "openai:big box"]
    assert registries[-1].runtime_keys() == ["llamacpp", "ollama", "openai:big box"]
    assert settings.saved_endpoints == [
        {"name": "big box", "base_url": "http://127.0.0.1:9/api", "has_key": True}
    ]
    assert memory_keyring.passwords == {(SERVICE, "endpoint:big box"): KEY}


def test_remove_asks_first_and_then_forgets_the_endpoint(
    page: RuntimesPage,
    registries,
    settings: Settings,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    editor = page.add_endpoint()
    _fill(editor, "gpu box", DOWN_URL, KEY)
    _save(editor)

    _answer(monkeypatch, QMessageBox.StandardButton.No)
    page.endpoint_buttons["gpu box"][1].click()
    assert "openai:gpu box" in page.rows
    assert len(registries) == 1

    _answer(monkeypatch, QMessageBox.StandardButton.Yes)
    page.endpoint_buttons["gpu box"][1].click()
    assert list(page.rows) == ["llamacpp", "ollama"]
    assert page.endpoint_buttons == {}
    assert registries[-1].runtime_keys() == ["llamacpp", "ollama"]
    assert settings.saved_endpoints == []
    assert memory_keyring.passwords == {}


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("box", "ftp://gpu-box/v1", "http"),
        ("box", "", "URL"),
        ("  ", DOWN_URL, "Give the endpoint a name"),
    ],
)
def test_bad_input_shows_inline_and_keeps_the_dialog_open(
    page: RuntimesPage,
    registries,
    settings: Settings,
    memory_keyring: MemoryKeyring,
    name: str,
    url: str,
    message: str,
) -> None:
    editor = page.add_endpoint()
    _fill(editor, name, url, KEY)
    _save(editor)

    assert editor.isVisible()
    assert editor.error_label.isVisible()
    assert message in editor.error_label.text()
    assert editor.url_edit.text() == url  # nothing typed is lost
    assert list(page.rows) == ["llamacpp", "ollama"]
    assert registries == []
    assert settings.saved_endpoints == []


def test_a_taken_name_is_refused_inline(page: RuntimesPage, memory_keyring: MemoryKeyring) -> None:
    _first = page.add_endpoint()
    _fill(_first, "gpu box", DOWN_URL)
    _save(_first)
    editor = page.add_endpoint()
    _fill(editor, "GPU Box", DOWN_URL)
    _save(editor)
    assert editor.isVisible()
    assert "exists already" in editor.error_label.text()


def test_without_a_keyring_the_endpoint_is_saved_and_the_page_says_so(
    page: RuntimesPage, registries, settings: Settings, no_keyring: None
) -> None:
    editor = page.add_endpoint()
    _fill(editor, "gpu box", DOWN_URL, KEY)
    _save(editor)

    assert not editor.isVisible()
    assert page.notice.isVisible()
    assert "cannot be stored on this system" in page.notice.text()
    assert "this session only" in page.notice.text()
    assert list(page.rows) == ["llamacpp", "ollama", "openai:gpu box"]
    assert settings.saved_endpoints == [{"name": "gpu box", "base_url": DOWN_URL, "has_key": False}]
    # The key lives on for this session, in the page's store that built the new registry.
    assert page.store is not None and page.store.get("gpu box").has_key
    assert registries[-1].runtime_keys()[-1] == "openai:gpu box"


def test_the_ollama_panel_says_what_to_do_when_ollama_is_not_running(
    qtbot, page: RuntimesPage
) -> None:
    page.check_all()
    qtbot.waitUntil(lambda: "not available" in page.ollama_panel.message.text(), timeout=10_000)
    assert page.ollama_panel.isVisible()
    assert "Start it with `ollama serve`" in page.ollama_panel.message.text()
    assert not page.ollama_panel.pull_button.isEnabled()
