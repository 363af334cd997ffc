"""A question as typed, made safe to answer: every surface (the CLI, Slack, the library) passes what a user typed
through here before anything reads it.

Control characters, NUL bytes, line and paragraph separators become spaces; invisible format characters (zero-width
spaces, bidi overrides, byte-order marks) and undecodable bytes (lone surrogates, as Python keeps invalid UTF-8 read
with "surrogateescape") are dropped or replaced; whitespace is collapsed. A question longer than the cap is cut at a
word, and a note says so, so no question costs more than the cap's worth of work.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACE_LIKE = frozenset({"Cc", "Zl", "Zp", "Zs"})  # control characters, separators: a space
_DROPPED = frozenset({"Cf"})  # zero-width and direction marks, BOMs: nothing


@dataclass(frozen=True)
class Question:
    text: str  # what is answered: clean, at most the cap
    note: str = ""  # for the user, when the question was cut
    empty_reason: str = ""  # why there is nothing to answer, when `text` is empty


def clean(text: str) -> str:
    """`text` with control and format characters removed, undecodable bytes replaced, whitespace collapsed."""
    text = _SURROGATE.sub(REPLACEMENT, text)
    if not text.isascii() or not text.isprintable():
        text = "".join(_clean_char(c) for c in text)
    return " ".join(text.split())


def _clean_char(c: str) -> str:
    if c.isprintable():
        return c
    category = unicodedata.category(c)
    if category in _SPACE_LIKE:
        return " "
    return "" if category in _DROPPED else c


def cut_note(limit: int) -> str:
    return f"Your question was longer than {limit} characters; I answered its beginning."


def prepare(text: str, limit: int) -> Question:
    """The question to answer from what was typed, cut to `limit` characters at a word boundary."""
    text = clean(text)
    if not text:
        return Question("", empty_reason="the question is empty")
    if limit <= 0 or len(text) <= limit:
        return Question(text)
    head = text[:limit]
    if not text[limit].isspace() and " " in head:
        head = head.rsplit(" ", 1)[0]
    return Question(head.rstrip(), note=cut_note(limit))
