"""The question-answering core: settings in, cited Answers out. The CLI, the eval and the Slack bot all use it."""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

from ingest.embed import Embedder
from ingest.index import Index
from ingest.settings import Settings

from .answer import compose
from .followup import contextualize
from .retrieve import Retriever
from .types import Answer


class Pipeline:
    """Opens the index and loads the model once; then answers any number of questions."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.embedder = embedder or Embedder(settings.embedding.batch_size, cache_dir=settings.data_dir / "models")
        self.index = Index(settings, self.embedder.name, self.embedder.dimensions)
        self.index.require()
        self.retriever = Retriever(self.index, self.embedder, settings.retrieval.k)
        self.embedder.encode_query("warm up")  # load the model now, not on the first question

    def refresh(self) -> None:
        """Read the index again: after an ingest run in this process, the next question sees the new articles."""
        self.retriever.reload()

    def ask(self, question: str, history: Sequence[str] = (), min_score: float | None = None) -> Answer:
        """Answer `question`; `history` holds the earlier questions of the conversation, oldest first."""
        threshold = self.settings.retrieval.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        asked = self.retriever.stats.correct_spelling(contextualize(question, history))
        hits = self.retriever.retrieve(asked)
        t1 = time.perf_counter()
        answer = dataclasses.replace(compose(asked, hits, self.retriever.stats, threshold), question=question)
        t2 = time.perf_counter()
        timings = {
            "retrieve": round((t1 - t0) * 1000, 2),
            "compose": round((t2 - t1) * 1000, 2),
            "total": round((t2 - t0) * 1000, 2),
        }
        return dataclasses.replace(answer, timings_ms=timings)
