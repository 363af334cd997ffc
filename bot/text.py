"""Word-level text analysis shared by retrieval and answering: terms, stems, and what kind of answer a question wants."""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)*%?")
_stemmer = snowballstemmer.stemmer("english")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom whose why will with would you your yours yourself yourselves s t don't
    tell say said says know anything something thing things get got give given us u please exactly really
    """.split()
)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return _stemmer.stemWord(word.lower().replace("’", "'").removesuffix("'s"))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def terms(text: str) -> list[str]:
    """Stems of the content words of `text`, in order (stop words dropped)."""
    return [stem(w) for w in words(text) if w.lower() not in STOPWORDS]


# What kind of answer a question asks for, and how to recognise one in a sentence.

DATE, PERSON, NUMBER, PLACE, OTHER = "date", "person", "number", "place", "other"

_QUESTION_TYPES = [
    (DATE, re.compile(r"^(when|since when|until when|by when)\b|\bwhat (date|day|month|year|time)\b|\bhow long ago\b", re.I)),
    (PERSON, re.compile(r"^(who|whom|whose)\b|\b(which|what) (official|person|people|secretary|minister|leader|president)\b", re.I)),
    (NUMBER, re.compile(r"\bhow (much|many|high|large|big|steep)\b|\bwhat (percent|percentage|share|rate|proportion|fraction|number|amount)\b|\b(tariff|rate) (was|is|were)\b", re.I)),
    (PLACE, re.compile(r"^where\b|\b(which|what) (city|country|countries|place|capital|venue|location)\b", re.I)),
]

_MONTHS = r"January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec"
_DAYS = r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_ANSWER_SHAPES = {
    DATE: re.compile(
        rf"\b({_MONTHS}|{_DAYS})\b|\b(1[89]|20)\d\d\b|\b\d{{4}}-\d\d-\d\d\b|"
        r"\b(yesterday|today|tonight|tomorrow|ago|the other day|earlier this|later this|last (week|month|year)|"
        r"this (week|month|year)|next (week|month|year))\b",
        re.I,
    ),
    NUMBER: re.compile(
        r"\d|\b(percent|per cent|half|dozen|hundred|thousand|million|billion|trillion|one|two|three|four|five|six|"
        r"seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b",
        re.I,
    ),
    PERSON: re.compile(
        r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)+\b|\b(President|Secretary|Minister|spokes(?:person|man|woman)|official|"
        r"Premier|Chairman|Ambassador|Representative|Senator)\b"
    ),
    PLACE: re.compile(r"\b(in|at|from|to|near) (?:the )?[A-Z][a-z]+"),
}


def question_type(question: str) -> str:
    q = question.strip()
    for kind, pattern in _QUESTION_TYPES:
        if pattern.search(q):
            return kind
    return OTHER


def has_answer_shape(kind: str, sentence: str) -> bool:
    """Whether `sentence` contains the kind of thing the question asks for (always true for OTHER)."""
    pattern = _ANSWER_SHAPES.get(kind)
    return True if pattern is None else bool(pattern.search(sentence))


_NAME = re.compile(r"\b(?:[A-Z]{2,}|[A-Z][a-z]+(?:[A-Z][a-z]+)*)\b")


def named_entities(question: str) -> list[str]:
    """Capitalised words after the first word and acronyms: the names a question is about (EU, Japan, Xi)."""
    found = _NAME.findall(question)
    first = words(question)[:1]
    return [w for w in found if not (first and w == first[0] and not w.isupper())]
