"""The chat settings panel: presets, Custom, user presets, debounced changes, the meter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.conversation_settings import ConversationSettings
from app.presets import BUILTIN_PRESETS, PresetStore
from app.store import Database, open_database
from runtimes.base import GenerationParams
from ui.chat_settings_panel import CUSTOM, ChatSettingsPanel, new_chat_settings, short_tokens


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[PresetStore]:
    database: Database = open_database(tmp_path / "history.sqlite3")
    yield PresetStore(database)
    database.close()


@pytest.fixture()
def panel(qtbot, store: PresetStore) -> ChatSettingsPanel:
    widget = ChatSettingsPanel(store)
    qtbot.addWidget(widget)
    return widget


def _choose(panel: ChatSettingsPanel, name: str) -> None:
    index = panel.preset.findText(name)
    assert index >= 0, name
    panel.preset.setCurrentIndex(index)
    panel.preset.activated.emit(index)


def test_builtin_presets_are_offered_first_then_custom(panel: ChatSettingsPanel) -> None:
    items = [panel.preset.itemText(i) for i in range(panel.preset.count())]
    assert items == ["Precise", "Balanced", "Creative", CUSTOM]


def test_choosing_a_preset_sets_its_sampling_and_keeps_the_chats_own_fields(
    panel: ChatSettingsPanel,
) -> None:
    own = GenerationParams(max_tokens=77, seed=5, stop=("###",))
    panel.set_settings(ConversationSettings(params=own))
    _choose(panel, "Creative")
    params = panel.params()
    creative = BUILTIN_PRESETS["Creative"]
    assert (params.temperature, params.top_p, params.top_k) == (
        creative.temperature,
        creative.top_p,
        creative.top_k,
    )
    assert (params.max_tokens, params.seed, params.stop) == (77, 5, ("###",))
    assert panel.settings().preset == "Creative"


def test_editing_a_value_turns_the_preset_into_custom_and_back(panel: ChatSettingsPanel) -> None:
    panel.set_settings(ConversationSettings(preset="Balanced"))
    assert panel.preset.currentText() == "Balanced"
    panel.temperature.setValue(1.33)
    assert panel.preset.currentText() == CUSTOM
    panel.temperature.setValue(GenerationParams().temperature)
    assert panel.preset.currentText() == "Balanced"


def test_changes_are_reported_once_after_a_pause(qtbot, panel: ChatSettingsPanel) -> None:
    seen: list[ConversationSettings] = []
    panel.settings_changed.connect(seen.append)
    panel.temperature.setValue(0.3)
    panel.temperature.setValue(0.4)
    panel.system_prompt.setPlainText("Be brief.")
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=2000)
    qtbot.wait(400)
    assert len(seen) == 1
    assert seen[0].params.temperature == pytest.approx(0.4)
    assert seen[0].system_prompt == "Be brief."


def test_set_settings_reports_nothing(qtbot, panel: ChatSettingsPanel) -> None:
    seen: list[object] = []
    panel.settings_changed.connect(seen.append)
    panel.set_settings(ConversationSettings(system_prompt="x", n_ctx=8192))
    qtbot.wait(450)
    assert seen == []
    assert panel.settings().n_ctx == 8192


def test_flush_reports_a_pending_edit_at_once(panel: ChatSettingsPanel) -> None:
    seen: list[ConversationSettings] = []
    panel.settings_changed.connect(seen.append)
    panel.max_tokens.setValue(99)
    panel.flush()
    assert [s.params.max_tokens for s in seen] == [99]


def test_seed_random_and_stop_strings_round_trip(panel: ChatSettingsPanel) -> None:
    panel.set_settings(ConversationSettings(params=GenerationParams(seed=None, stop=("a", "b"))))
    assert panel.seed.text() == "random"
    assert panel.params().seed is None
    assert panel.params().stop == ("a", "b")
    panel.seed.setValue(42)
    assert panel.params().seed == 42


def test_an_unlisted_context_length_is_added_and_kept(panel: ChatSettingsPanel) -> None:
    panel.set_settings(ConversationSettings(n_ctx=12_000))
    assert panel.settings().n_ctx == 12_000
    panel.set_settings(ConversationSettings(n_ctx=None))
    assert panel.settings().n_ctx is None


def test_saving_a_user_preset_lists_and_selects_it(
    panel: ChatSettingsPanel, store: PresetStore
) -> None:
    panel.temperature.setValue(0.55)
    assert panel.save_preset("Mine")
    assert "Mine" in store.names()
    assert panel.preset.currentText() == "Mine"
    assert panel.delete_preset_button.isEnabled()
    assert store.get("Mine").temperature == pytest.approx(0.55)


def test_a_builtin_name_cannot_be_saved_over_and_says_why(panel: ChatSettingsPanel) -> None:
    assert not panel.save_preset("Precise")
    assert "built in" in panel.meter_label.text()


def test_deleting_a_user_preset(panel: ChatSettingsPanel, store: PresetStore) -> None:
    panel.temperature.setValue(0.65)
    panel.save_preset("Scratch")
    panel.delete_preset_button.click()
    assert "Scratch" not in store.names()
    assert panel.preset.currentText() == CUSTOM
    _choose(panel, "Precise")
    assert not panel.delete_preset_button.isEnabled()


def test_meter_shows_exact_and_estimated_use(panel: ChatSettingsPanel) -> None:
    panel.set_context_usage(3100, 8192, exact=True)
    assert panel.meter.maximum() == 8192 and panel.meter.value() == 3100
    assert panel.meter_label.text().startswith("3.1k / 8.2k tokens (38%)")
    panel.set_context_usage(8000, 8192, exact=False)
    assert panel.meter_label.text().startswith("≈ 8k / 8.2k")
    assert "nearly full" in panel.meter_label.text()
    panel.set_context_usage(9000, 8192, exact=True)
    assert "over the context" in panel.meter_label.text()
    assert panel.meter.value() == 8192


def test_short_tokens() -> None:
    assert [short_tokens(n) for n in (900, 1000, 1234, 131072)] == ["900", "1k", "1.2k", "131k"]


def test_new_chat_settings_take_the_default_preset(store: PresetStore) -> None:
    settings = new_chat_settings(store, "Precise", "Be terse.")
    assert settings.params.temperature == BUILTIN_PRESETS["Precise"].temperature
    assert (settings.preset, settings.system_prompt) == ("Precise", "Be terse.")
    unknown = new_chat_settings(store, "Gone", "")
    assert unknown.params == GenerationParams() and unknown.preset == "Custom"
