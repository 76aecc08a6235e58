"""The resource strip samples while visible, shows the text and grows its sparkline."""

from __future__ import annotations

from collections.abc import Iterable

from app.resources import ResourceSample
from ui.resource_strip import ResourceStrip

GIB = 1 << 30


def test_it_samples_only_while_visible(qtbot) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[int, ...]] = []

    def sampler(pids: Iterable[int]) -> ResourceSample:
        calls.append(tuple(pids))
        return ResourceSample(4 * GIB, 16 * GIB, None, None, GIB // 2)

    strip = ResourceStrip(lambda: [41, 42], sampler)
    qtbot.addWidget(strip)
    assert calls == [] and not strip.timer.isActive()
    strip.show()
    assert calls == [(41, 42)]
    assert strip.timer.isActive()
    assert strip.label.text() == "RAM 4.0 / 16.0 GB · models 0.5 GB"
    assert list(strip.sparkline.values) == [0.25]
    strip.refresh()
    assert len(strip.sparkline.values) == 2
    strip.grab()  # paints the line without warnings
    strip.hide()
    assert not strip.timer.isActive()
