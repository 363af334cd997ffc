"""The question-answering core: settings in, cited Answers out. The CLI, the eval and the Slack bot all use it."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Sequence

from ingest.embed import Embedder
from ingest.index import Index
from ingest.settings import Settings

from .answer import compose
from .dates import question_window
from .followup import contextualize
from .retrieve import Filters, Retriever
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
        """Rebuild everything derived from the index (passages, corpus statistics, BM25): call after an ingest run
        in this process. Other processes' writes are picked up by the retriever itself."""
        self.retriever.reload()

    def answer(self, question: str, history: Sequence[str | Answer] = (), **options) -> Answer:
        """Answer `question` in a conversation: `history` holds the earlier turns, oldest first, as questions or
        the Answers given to them; a follow-up ("and when was it signed?") is read in their light."""
        return self.ask(question, history, **options)

    def ask(
        self,
        question: str,
        history: Sequence[str | Answer] = (),
        min_score: float | None = None,
        filters: Filters | None = None,
        explain: bool = False,
    ) -> Answer:
        """Answer `question`; `history` holds the earlier turns of the conversation, oldest first (questions or
        Answers); `filters` restrict the articles it may be answered from; `explain` adds the composer's
        reasoning to the Answer."""
        threshold = self.settings.retrieval.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        asked = self.retriever.stats.correct_spelling(contextualize(question, history))
        window = question_window(question, self.retriever.newest)
        named = Filters(window.since, window.until, self.retriever.outlets_named(question))
        combined = Filters(
            (filters.since if filters else None) or named.since,
            (filters.until if filters else None) or named.until,
            (filters.sources if filters else ()) or named.sources,
        )
        if named.sources:  # the outlet is a filter now, not words the answer must contain
            outlets = "|".join(re.escape(n) for n, o in self.retriever.outlets.items() if o in named.sources)
            asked = re.sub(rf"\s*\b(?:according to|in|from|by)?\s*(?:{outlets})(?!\w)", "", asked, flags=re.I).strip(" ,;:")
        hits = self.retriever.retrieve(asked, combined, prefer=window.prefer)
        if not hits and named and combined != filters:  # the question's own filters ruled everything out: drop them
            combined = filters or Filters()
            hits = self.retriever.retrieve(asked, combined, prefer=window.prefer)
        t1 = time.perf_counter()
        answer = dataclasses.replace(compose(asked, hits, self.retriever.stats, threshold, explain=explain), question=question)
        t2 = time.perf_counter()
        timings = {
            "retrieve": round((t1 - t0) * 1000, 2),
            "compose": round((t2 - t1) * 1000, 2),
            "total": round((t2 - t0) * 1000, 2),
        }
        return dataclasses.replace(answer, timings_ms=timings, asked=asked, filters=combined.describe())
