"""Retrieval: from a question to the passages most likely to answer it, as Hits."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ingest.embed import Embedder
from ingest.index import Index, Row

from .text import stem, terms, words
from .types import Hit


@dataclass(frozen=True)
class CorpusStats:
    """Sentence frequencies over the whole index: how rare (informative) each term is, and which words exist.

    Counted per sentence rather than per passage, so that rarity means something even in a corpus of one article.
    """

    sentences: int
    df: dict[str, int]
    vocabulary: frozenset[str]

    @classmethod
    def from_rows(cls, rows: list[Row]) -> "CorpusStats":
        df: Counter[str] = Counter()
        vocabulary: set[str] = set()
        seen: set[tuple[str, int]] = set()
        for row in rows:
            for s, e in row.sentences:
                key = (row.meta["doc_key"], row.meta["start"] + s)
                if key in seen:  # passages overlap: count each sentence once
                    continue
                seen.add(key)
                text = row.text[s:e]
                df.update(set(terms(text)))
                vocabulary.update(w.lower() for w in words(text))
        return cls(len(seen), dict(df), frozenset(vocabulary))

    def correct_spelling(self, question: str) -> str:
        """The question with words no article contains replaced by a close match that one does ("comerce")."""
        from rapidfuzz import fuzz, process

        def fix(m: re.Match) -> str:
            word = m[0]
            if len(word) < 5 or word.lower() in self.vocabulary or stem(word) in self.df:
                return word
            match = process.extractOne(word.lower(), self._spellable, scorer=fuzz.ratio, score_cutoff=85)
            if not match:
                return word
            return match[0].capitalize() if word[0].isupper() else match[0]

        return re.sub(r"[A-Za-z]+", fix, question)

    @cached_property
    def _spellable(self) -> list[str]:
        return sorted(w for w in self.vocabulary if len(w) >= 4 and w.isalpha())

    def known_share(self, terms: frozenset[str]) -> float:
        """The rarity-weighted share of `terms` that occur in the corpus at all (1.0 for no terms)."""
        total = sum(self.idf(t) for t in terms)
        return sum(self.idf(t) for t in terms if t in self.df) / total if total else 1.0

    def idf(self, term: str) -> float:
        return math.log(1 + (self.sentences + 1) / (self.df.get(term, 0) + 0.5))


@dataclass(frozen=True)
class _Stored:
    """A passage as held in memory: what a Hit needs, with its sentence vectors ready for scoring."""

    hit: Hit
    sentence_vectors: np.ndarray


def _stored(row: Row) -> _Stored:
    m = row.meta
    hit = Hit(
        id=row.id,
        doc_id=m["doc_id"],
        title=m["title"],
        source=m["location"],
        text=row.text,
        start=m["start"],
        sentences=tuple(row.sentences),
        score=0.0,
        sentence_scores=(),
        url=m["url"] or None,
        outlet=m["outlet"] or None,
        published=m["published"] or None,
    )
    return _Stored(hit, row.sentence_vectors)


class Retriever:
    """Dense retrieval over the index, with corpus statistics for the answer composer.

    The passages' texts, metadata and sentence vectors are held in memory (they are needed for the corpus
    statistics anyway), so a query asks Chroma only for ids and distances. When Chroma returns an id the
    snapshot does not know, the index changed underneath (another writer): the snapshot is reloaded.
    """

    def __init__(self, index: Index, embedder: Embedder, k: int):
        self.index = index
        self.embedder = embedder
        self.k = k
        self.reload()

    def reload(self) -> None:
        rows = self.index.passages()
        self.passages = {row.id: _stored(row) for row in rows}
        self.stats = CorpusStats.from_rows(rows)

    def retrieve(self, question: str) -> list[Hit]:
        vector = self.embedder.encode_query(question)
        found = self.index.nearest(vector, self.k)
        if any(pid not in self.passages for pid, _ in found):
            self.reload()
        return [self._hit(pid, score, vector) for pid, score in found if pid in self.passages]

    def _hit(self, pid: str, score: float, vector: np.ndarray) -> Hit:
        stored = self.passages[pid]
        scores = tuple((stored.sentence_vectors @ vector).tolist())
        return dataclasses.replace(stored.hit, score=score, sentence_scores=scores)
