"""Word-level text analysis shared by retrieval and answering: terms, stems, and what kind of answer a question wants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)*%?")
_stemmer = snowballstemmer.stemmer("english")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom whose why will with would you your yours yourself yourselves s t don't
    tell say said says know anything something thing things get got give given us u please exactly really
    many much happen happened
    """.split()
)


def _plain(word: str) -> str:
    return word.lower().replace("’", "'").removesuffix("'s").removesuffix("'")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return _stemmer.stemWord(_plain(word))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def terms(text: str) -> list[str]:
    """Stems of the content words of `text`, in order (stop words dropped)."""
    return [stem(w) for w in words(text) if _plain(w) not in STOPWORDS]


# Nouns that name the kind of answer wanted ("which city", "what rate"): the answer won't contain them.
_TYPE_NOUN = re.compile(
    r"\b(?:which|what|whose)\s+(?:\w+\s+)?(city|cities|country|countries|place|network|outlet|channel|name|names|"
    r"person|people|date|day|time|year|month|number|amount|rate|percentage|share|kind|type|sequence)\b",
    re.I,
)


def question_terms(question: str) -> frozenset[str]:
    """The question's content terms, less the nouns that only say what kind of answer is wanted."""
    type_nouns = {stem(m[1]) for m in _TYPE_NOUN.finditer(question)}
    return frozenset(terms(question)) - type_nouns


# What kind of answer a question asks for, and how to recognise one in a sentence.

DATE, PERSON, NUMBER, PLACE, SUMMARY, OTHER = "date", "person", "number", "place", "summary", "other"

_QUESTION_TYPES = [
    (SUMMARY, re.compile(r"\b(what(?:'s|’s| is| was)\b.{0,40}\b(mainly|mostly|all|really) about|gist|summary|summari[sz]e|in a nutshell|main point)\b", re.I)),
    (DATE, re.compile(r"^(when|since when|until when|by when)\b|\bwhat (date|day|month|year|time)\b|\bhow long ago\b", re.I)),
    (PERSON, re.compile(r"^(who|whom|whose)\b|\b(which|what) (official|person|people|secretary|minister|leader|president)\b|\bnames? of\b", re.I)),
    (NUMBER, re.compile(r"\bhow (much|many|high|large|big|steep)\b|\bwhat (\w+ )?(percent|percentage|share|rate|proportion|fraction|number|amount)\b|\b(tariff|rate) (was|is|were)\b", re.I)),
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
    # Small number words ("the two nations") are too common to count as a figure; digits and larger ones do.
    NUMBER: re.compile(
        r"\d|\b(percent|per cent|half|dozen|hundreds?|thousands?|millions?|billions?|trillions?|twenty|thirty|forty|"
        r"fifty|sixty|seventy|eighty|ninety)\b",
        re.I,
    ),
    PLACE: re.compile(r"\b(in|at|from|to|near|on) (?:the )?[A-Z][a-z]+"),
}
# Two or more capitalised words in a row, not at the start of the sentence: a person's name, most of the time.
_PERSON_NAME = re.compile(r"(?<![.!?“\"] )(?<!^)\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")
_UNIT = re.compile(r"\bhow (?:many|much) ([a-z]+)", re.I)
_NOT_UNITS = {"of", "is", "are", "was", "were", "did", "does", "do", "has", "have", "will", "would", "can", "the", "a", "more"}
_PRESENT = re.compile(r"\b(now|currently|current|today|at present|these days|still)\b", re.I)
_PAST_ANCHOR = re.compile(rf"\b(in|since|during|last|until) ({_MONTHS}|\d{{4}}|(last )?(week|month|year))\b")
_MONEY = re.compile(r"[$€£¥]|\b(dollars?|euros?|yuan|pounds?|billion|million|trillion)\b", re.I)


@dataclass(frozen=True)
class Expectation:
    """What a question asks for: a kind of answer, and for "how many tons" the unit the answer must name."""

    kind: str
    unit: str | None = None
    money: bool = False
    present: bool = False  # asks how things stand now
    question_terms: frozenset[str] = frozenset()

    def met_by(self, sentence: str, sentence_terms: frozenset[str], lead: bool = False) -> bool:
        if self.present and _PAST_ANCHOR.search(sentence):
            return False  # "what is the rate now?" is not answered by what the rate was in April
        if self.kind == SUMMARY:  # a news report says what it is about in its first sentence
            return lead
        if self.kind == PERSON:
            return any(set(terms(name)) - self.question_terms for name in _PERSON_NAME.findall(sentence))
        pattern = _ANSWER_SHAPES.get(self.kind)
        if pattern is not None and not pattern.search(sentence):
            return False
        if self.unit and self.unit not in sentence_terms:
            return False
        return not self.money or bool(_MONEY.search(sentence))


def question_type(question: str) -> str:
    q = re.sub(r"^(and|so|but|also|then|ok|okay)\b[\s,]*", "", question.strip(), flags=re.I)
    for kind, pattern in _QUESTION_TYPES:
        if pattern.search(q):
            return kind
    return OTHER


def expectation(question: str) -> Expectation:
    kind = question_type(question)
    unit = None
    if m := _UNIT.search(question):
        unit = None if m[1].lower() in _NOT_UNITS else stem(m[1])
    money = bool(re.search(r"\b(worth|cost|costs|price|in dollars)\b", question, re.I))
    present = bool(_PRESENT.search(question))
    return Expectation(kind, unit, money, present, question_terms(question))


_NAME = re.compile(r"\b(?:[A-Z]{2,}|[A-Z][a-z]+(?:[A-Z][a-z]+)*)\b")


def named_entities(question: str) -> list[str]:
    """Capitalised words after the first word, and acronyms: the names a question is about (EU, Japan, Xi)."""
    return [m[0] for m in _NAME.finditer(question.strip()) if m.start() > 0 or m[0].isupper()]
