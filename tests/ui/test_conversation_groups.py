"""Sections of the conversation list: pinned first, then days, months and years in local time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.chat import ConversationSummary
from ui.conversation_groups import group_conversations

NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"
"""US Eastern time as a POSIX rule: needs no tz database. UTC-4 in October."""


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", NEW_YORK)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def summary(conv_id: int, updated_at: datetime, *, pinned: bool = False) -> ConversationSummary:
    return ConversationSummary(
        id=conv_id,
        title=f"chat {conv_id}",
        created_at=updated_at,
        updated_at=updated_at,
        model_name="",
        message_count=0,
        pinned=pinned,
    )


def labels(groups: list[tuple[str, list[ConversationSummary]]]) -> list[tuple[str, list[int]]]:
    return [(label, [c.id for c in members]) for label, members in groups]


# Noon on Thursday 15 October 2026 in New York.
NOW = datetime(2026, 10, 15, 16, 0, tzinfo=UTC)


def test_the_day_changes_at_local_midnight_not_utc_midnight(new_york: None) -> None:
    before_midnight = summary(1, datetime(2026, 10, 15, 3, 59, tzinfo=UTC))  # 23:59 on the 14th
    after_midnight = summary(2, datetime(2026, 10, 15, 4, 0, tzinfo=UTC))  # 00:00 on the 15th
    groups = group_conversations([after_midnight, before_midnight], NOW)
    assert labels(groups) == [("Today", [2]), ("Yesterday", [1])]


def test_a_utc_evening_is_still_today_west_of_greenwich(new_york: None) -> None:
    # 01:00 UTC on the 16th is 21:00 on the 15th in New York.
    late = summary(1, datetime(2026, 10, 16, 1, 0, tzinfo=UTC))
    now = datetime(2026, 10, 16, 2, 0, tzinfo=UTC)
    assert labels(group_conversations([late], now)) == [("Today", [1])]


def test_sections_run_from_last_week_to_months_to_years(new_york: None) -> None:
    local_noon = datetime(2026, 10, 15, 12, 0).astimezone()
    ago = [2, 7, 8, 30, 31, 320, 366, 1000]
    convs = [summary(i, local_noon - timedelta(days=days)) for i, days in enumerate(ago)]
    assert labels(group_conversations(convs, NOW)) == [
        ("Previous 7 days", [0, 1]),
        ("Previous 30 days", [2, 3]),
        ("September 2026", [4]),
        ("November 2025", [5]),  # 11 months back: still a month of its own
        ("2025", [6]),  # October 2025, twelve months back: grouped by year
        ("2024", [7]),
    ]


def test_sections_are_ordered_by_age_whatever_the_input_order(new_york: None) -> None:
    old = summary(1, datetime(2023, 5, 1, tzinfo=UTC))
    today = summary(2, NOW - timedelta(hours=1))
    older_today = summary(3, NOW - timedelta(hours=2))
    groups = group_conversations([old, today, older_today], NOW)
    assert labels(groups) == [("Today", [2, 3]), ("2023", [1])]


def test_a_time_after_now_counts_as_today(new_york: None) -> None:
    ahead = summary(1, NOW + timedelta(days=2))
    assert labels(group_conversations([ahead], NOW)) == [("Today", [1])]


def test_pinned_conversations_come_first_and_only_under_pinned(new_york: None) -> None:
    recent = summary(1, NOW - timedelta(minutes=5))
    pinned_old = summary(2, datetime(2024, 1, 1, tzinfo=UTC), pinned=True)
    pinned_today = summary(3, NOW - timedelta(minutes=1), pinned=True)
    groups = group_conversations([pinned_today, recent, pinned_old], NOW)
    assert labels(groups) == [("Pinned", [3, 2]), ("Today", [1])]


def test_no_conversations_make_no_sections() -> None:
    assert group_conversations([], NOW) == []
