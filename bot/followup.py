"""Follow-up questions: "and when was it signed?" read in the light of the conversation so far. No LLM: the
earlier turns' names stand in for the follow-up's pronouns, and their content words are appended."""

from __future__ import annotations

import re
from typing import Sequence

from .text import STOPWORDS, named_entities, terms, words

_ELLIPTIC = re.compile(
    r"^\s*(and|also|so|but|what about|how about|then)\b|\b(it|its|they|them|their|that|this|those|these|he|she|his|her|there|the same)\b",
    re.I,
)
# Pronouns that stand for the people or bodies an earlier question named ("what did they say about magnets?").
_PERSONAL = re.compile(r"\b(he|she|they)\b", re.I)
# "there": the place the previous answer named ("Where did they meet?" ... "and what did China agree to there?")
_THERE = re.compile(r"\bthere\b", re.I)
_PLACE = re.compile(r"\b(?:in|at) ([A-Z][a-z]+(?:,? [A-Z][a-z]+)*)")


def _question(turn) -> str:
    """A turn of the history as text: a question, or an Answer (the question as it was answered)."""
    if isinstance(turn, str):
        return turn
    return getattr(turn, "asked", "") or getattr(turn, "question", "")


def leans_on_context(question: str) -> bool:
    return bool(_ELLIPTIC.search(question)) or len(terms(question)) < 2


def contextualize(question: str, history: Sequence) -> str:
    """The question made to stand on its own, using the conversation so far (oldest turn first).

    A follow-up that starts with "and", "what about", uses a pronoun, or has fewer than two content words is taken
    to continue the conversation: a "he/she/they" is replaced by the names the previous question was about, and
    the content words of the previous question (itself resolved the same way) are appended in brackets. The
    follow-up's own words stay first, so what kind of answer it asks for ("when", "who") is still read from it.
    Anything else stands on its own.
    """
    earlier = [q for q in (_question(t) for t in history) if q.strip()]
    if not earlier or not leans_on_context(question):
        return question
    previous = earlier[-1]
    if not (getattr(history[-1], "asked", "") if not isinstance(history[-1], str) else ""):
        previous = contextualize(previous, history[:-1])  # a follow-up to a follow-up keeps the first topic
    names = [n for n in named_entities(previous) if n.lower() not in STOPWORDS]
    resolved = question
    used: set[str] = set()
    if names and _PERSONAL.search(question):
        resolved = _PERSONAL.sub(lambda m: " and ".join(names), question, count=1)
        used = {n.lower() for n in names}
    last = history[-1]
    if _THERE.search(resolved) and not isinstance(last, str) and getattr(last, "answered", False):
        if place := _PLACE.search(" ".join(s.text for s in last.sentences)):
            resolved = _THERE.sub(f"in {place[1]}", resolved, count=1)
    own = {w.lower() for w in words(resolved)}
    context = []
    for w in words(previous.replace("(", " ").replace(")", " ")):
        lw = w.lower()
        if lw in STOPWORDS or lw in own or lw in used or lw in {c.lower() for c in context}:
            continue
        context.append(w)
    return f"{resolved.rstrip()} ({' '.join(context)})" if context else resolved
