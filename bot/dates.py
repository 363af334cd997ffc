"""Date ranges named in a question ("since October", "before July 2025", "in June") or by the caller.

Months without a year are read as the most recent such month up to the newest article: in a corpus whose newest
article is from November 2025, "since October" is since 2025-10-01 and "in December" is December 2024.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

# The calendar's names, written once for every module (not the locale's: the articles are in English).
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NUMBERS = {m.lower(): i for i, m in enumerate(MONTHS, 1)} | {m[:3].lower(): i for i, m in enumerate(MONTHS, 1)}
_MONTH_NUMBERS["sept"] = 9
# A month as written: its name or an abbreviation ("Sept", "Oct"), capitalised.
MONTH_PATTERN = "|".join(dict.fromkeys([*MONTHS, *(m[:3] for m in MONTHS), "Sept"]))
_MONTH = f"({MONTH_PATTERN})"
_WHEN = re.compile(rf"\b(since|after|from|before|until|till|by|in|during)\s+(?:early\s+|late\s+|mid-?)?{_MONTH}\b(?:\s+(20\d\d))?|\b(since|after|before|until|in|during)\s+(20\d\d)\b", re.I)


@dataclass(frozen=True)
class Window:
    """What a question says about when: a hard range ("since", "before") and a soft one ("in June")."""

    since: str | None = None
    until: str | None = None
    prefer: tuple[str, str] | None = None  # articles published in this range are preferred, not required


def _month_start(year: int, month: int) -> date:
    return date(year, month, 1)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def question_window(question: str, newest: str | None) -> Window:
    """The date range a question names, resolved against the newest article's date (ISO) for months without a year."""
    today = date.fromisoformat(newest) if newest else date.today()
    since = until = None
    prefer = None
    for m in _WHEN.finditer(question):
        word = (m[1] or m[4]).lower()
        if m[5]:  # a bare year
            year = int(m[5])
            start, end = date(year, 1, 1), date(year, 12, 31)
        else:
            month = _MONTH_NUMBERS[m[2].lower().rstrip(".")]
            year = int(m[3]) if m[3] else (today.year if month <= today.month else today.year - 1)
            start, end = _month_start(year, month), _month_end(year, month)
        if word in ("since", "after", "from"):
            since = (end if word == "after" else start).isoformat()
        elif word in ("before", "until", "till", "by"):
            until = (start.fromordinal(start.toordinal() - 1) if word == "before" else end).isoformat()
        else:  # "in June": reports about June come out in June and the weeks after
            follow = _month_end(end.year + (end.month == 12), end.month % 12 + 1)
            prefer = (start.isoformat(), follow.isoformat())
    return Window(since, until, prefer)


def parse_date(text: str, end: bool = False) -> str:
    """An ISO date from "2025-06-27", "2025-06" or "June 2025" (the month's first day, or last with `end`)."""
    text = text.strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
    if m:
        year, month = int(m[1]), int(m[2])
    else:
        m = re.fullmatch(rf"{_MONTH}\.?\s+(\d{{4}})", text, re.I)
        if not m:
            raise ValueError(f"not a date: {text!r} (use 2025-06-27, 2025-06 or 'June 2025')")
        year, month = int(m[2]), _MONTH_NUMBERS[m[1].lower()]
    if not 1 <= month <= 12:
        raise ValueError(f"not a date: {text!r}")
    return (_month_end(year, month) if end else _month_start(year, month)).isoformat()
