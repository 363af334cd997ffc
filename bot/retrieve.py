"""Retrieval: from a question to the passages most likely to answer it, as Hits."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ingest.embed import Embedder
from ingest.index import Index, Row

from .text import terms, words
from .types import Hit


@dataclass(frozen=True)
class CorpusStats:
    """Document frequencies over all stored passages: how rare (informative) each term is, and which words exist."""

    passages: int
    df: dict[str, int]
    vocabulary: frozenset[str]

    @classmethod
    def from_texts(cls, texts: list[str]) -> "CorpusStats":
        df: Counter[str] = Counter()
        vocabulary: set[str] = set()
        for text in texts:
            df.update(set(terms(text)))
            vocabulary.update(w.lower() for w in words(text))
        return cls(len(texts), dict(df), frozenset(vocabulary))

    def idf(self, term: str) -> float:
        n = self.passages
        return math.log(1 + (n + 1) / (self.df.get(term, 0) + 0.5))


def hit_from_row(row: Row, query_vector: np.ndarray) -> Hit:
    m = row.meta
    return Hit(
        id=row.id,
        doc_id=m["doc_id"],
        title=m["title"],
        source=m["location"],
        text=row.text,
        start=m["start"],
        sentences=tuple(row.sentences),
        score=row.score,
        sentence_scores=tuple(float(x) for x in row.sentence_vectors @ query_vector),
        url=m["url"] or None,
        outlet=m["outlet"] or None,
        published=m["published"] or None,
    )


class Retriever:
    """Dense retrieval over the index, with corpus statistics for the answer composer."""

    def __init__(self, index: Index, embedder: Embedder, k: int):
        self.index = index
        self.embedder = embedder
        self.k = k
        self.stats = CorpusStats.from_texts([row.text for row in index.rows()])

    def retrieve(self, question: str) -> list[Hit]:
        vector = self.embedder.encode_query(question)
        return [hit_from_row(row, vector) for row in self.index.query(vector, self.k)]
