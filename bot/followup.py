"""Follow-up questions: "and when was it signed?" read in the light of the conversation so far. No LLM: the
earlier turns' names stand in for the follow-up's pronouns, and their content words become its context."""

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


def leans_on_context(question: str) -> bool:
    return bool(_ELLIPTIC.search(question)) or len(terms(question)) < 2


def _turn(turn, before: Sequence) -> tuple[str, tuple[str, ...]]:
    """An earlier turn as it was understood: its question and the context words it leaned on. A turn is a question
    as typed (read here in the light of the turns `before` it) or the Answer given to it."""
    reading = getattr(turn, "reading", None)
    if reading is not None:
        return reading.understood, reading.context
    if not isinstance(turn, str) and getattr(turn, "asked", ""):  # an Answer rebuilt without its reading
        return turn.asked, ()
    return resolve(turn if isinstance(turn, str) else getattr(turn, "question", ""), before)


def resolve(question: str, history: Sequence) -> tuple[str, tuple[str, ...]]:
    """The question made to stand on its own, using the conversation so far (oldest turn first), and the words of
    the earlier turn it leans on.

    A follow-up that starts with "and", "what about", uses a pronoun, or has fewer than two content words is taken
    to continue the conversation: a "he/she/they" is replaced by the names the previous question was about, a
    "there" by the place the previous answer named, and the content words of the previous question (itself read the
    same way, so a follow-up to a follow-up keeps the first topic) become its context. The follow-up's own words
    stay as they are, so what kind of answer it asks for ("when", "who") is still read from them. Anything else
    stands on its own.
    """
    turns = [i for i, t in enumerate(history) if (t if isinstance(t, str) else _turn(t, ())[0]).strip()]
    if not turns or not leans_on_context(question):
        return question, ()
    last = turns[-1]
    understood, context = _turn(history[last], history[:last])
    previous = f"{understood} ({' '.join(context)})" if context else understood
    names = [n for n in named_entities(previous) if n.lower() not in STOPWORDS]
    resolved, used = question, set()
    if names and _PERSONAL.search(question):
        resolved = _PERSONAL.sub(lambda m: " and ".join(names), question, count=1)
        used = {n.lower() for n in names}
    answer = history[-1]
    if _THERE.search(resolved) and not isinstance(answer, str) and getattr(answer, "answered", False):
        if place := _PLACE.search(" ".join(s.text for s in answer.sentences)):
            resolved = _THERE.sub(f"in {place[1]}", resolved, count=1)
    own = {w.lower() for w in words(resolved)}
    found: dict[str, str] = {}
    skip = STOPWORDS | own | used
    for w in words(understood) + list(context):
        if w.lower() not in skip:
            found.setdefault(w.lower(), w)
    return resolved.rstrip(), tuple(found.values())
