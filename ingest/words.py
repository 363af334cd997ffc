"""Words, stems and stop words: the tokenisation the lexical index is built with (ingest.lexical) and questions are
read with (bot.text re-exports it), written once so that both sides always agree."""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

from .settings import Vocabulary

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)*%?")
_stemmer = snowballstemmer.stemmer("english")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom whose why will with would you your yours yourself yourselves s t don't
    tell say said says report reported reports reporting write wrote written know anything something thing things get got give given us u please exactly really
    many much happen happened
    wait sorry hey hi ok okay actually ever just basically anyway quick question dumb someone anyone pls thanks btw
    go goes going gone went
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


def alias_forms(vocabulary: Vocabulary) -> frozenset[str]:
    """Every name of the story's alias groups (config/story.toml), as written there."""
    return frozenset(f for group in vocabulary.aliases for f in group)
