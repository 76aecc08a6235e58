"""Sorting conversations into the list's sections: Pinned, Today, Yesterday, months, years.

Pure Python (no Qt), so the day arithmetic can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from app.chat import ConversationSummary

PINNED = "Pinned"
TODAY = "Today"
YESTERDAY = "Yesterday"
PREVIOUS_7_DAYS = "Previous 7 days"
PREVIOUS_30_DAYS = "Previous 30 days"
MONTHS_SHOWN = 12
"""Months (counting the current one) that get a header each; older ones group by year."""

# Fixed English names: Qt sets the C locale from the environment, and `calendar` would follow it.
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

Group = tuple[str, list[ConversationSummary]]


def group_conversations(summaries: Sequence[ConversationSummary], now: datetime) -> list[Group]:
    """Split `summaries` into titled sections, in the order the list shows them.

    Days are counted in local time: `updated_at` (aware, UTC) and `now` are converted to the
    machine's time zone first (a naive `now` is taken as local already). Pinned conversations
    appear only under "Pinned", which comes first. Then "Today", "Yesterday", "Previous 7 days",
    "Previous 30 days", one section per month for the last twelve months ("October 2026"), and
    one per year before that ("2024"). Within a section the input order is kept; empty sections
    are left out. A time after `now` (a skewed clock) counts as today.
    """
    today = _local_date(now)
    ranked: dict[tuple[int, str], list[ConversationSummary]] = {}
    for summary in summaries:
        key = (0, PINNED) if summary.pinned else _section(_local_date(summary.updated_at), today)
        ranked.setdefault(key, []).append(summary)
    return [(label, members) for (_rank, label), members in sorted(ranked.items())]


def _local_date(moment: datetime) -> date:
    return moment.astimezone().date() if moment.tzinfo is not None else moment.date()


def _section(day: date, today: date) -> tuple[int, str]:
    """The (rank, label) of the section for a conversation last updated on `day`."""
    days_ago = (today - day).days
    if days_ago <= 0:
        return (1, TODAY)
    if days_ago == 1:
        return (2, YESTERDAY)
    if days_ago <= 7:
        return (3, PREVIOUS_7_DAYS)
    if days_ago <= 30:
        return (4, PREVIOUS_30_DAYS)
    months_ago = (today.year - day.year) * 12 + today.month - day.month
    if months_ago < MONTHS_SHOWN:
        return (10 + months_ago, f"{_MONTH_NAMES[day.month - 1]} {day.year}")
    return (100 + today.year - day.year, str(day.year))
