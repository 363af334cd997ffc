"""The question-answering core: settings in, cited Answers out. The CLI, the eval and the Slack bot all use it."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

from ingest.embed import Embedder
from ingest.settings import Settings
from ingest.store import open_embedder, open_index, read_access

from .answer import compose_ranked, uncovered
from .question import Reading, prepare, read
from .related import with_related
from .retrieve import Filters, Retriever
from .text import Lexicon
from .types import NOT_ASKED, Answer, Hit


class Pipeline:
    """Opens the index and loads the model once; then answers any number of questions.

    With `llm.model` set, answers are written by that chat model (bot/llm.py), the offline answer standing by.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.llm = None
        if settings.llm.model:  # first: a bad LLM setting fails before the model and index are loaded
            from .llm import LLMComposer

            self.llm = LLMComposer(settings.llm)
        # The embedded store takes no reader while another process writes (ingest/lock.py): refused here, at once.
        self._access = read_access(settings)
        self.embedder = embedder or open_embedder(settings, questions=True)
        self.index = open_index(settings)
        self.index.require()
        self.lexicon = Lexicon(settings.vocabulary)
        self.retriever = Retriever(self.index, self.embedder, settings.retrieval.k, watch=settings.server_mode,
                                   alias_forms=self.lexicon.alias_forms)
        self.embedder.encode_query("warm up")  # load the model now, not on the first question

    def close(self) -> None:
        """Let go of the embedded store, so that another process may write to it; the Pipeline is done with."""
        self.retriever.close()
        if self._access is not None:
            self._access.release()

    def refresh(self) -> None:
        """Bring the lexical index up to date with the index (what changed only) and swap in the new snapshot: call
        after an ingest run in this process, and the next question sees the new articles. Other processes' writes
        are picked up by the retriever's background refresh (server mode)."""
        self.retriever.reload()

    def answer(self, question: str, history: Sequence[str | Answer] = (), **options) -> Answer:
        """Answer `question` in a conversation: `history` holds the earlier turns, oldest first, as questions or
        the Answers given to them; a follow-up ("and when was it signed?") is read in their light."""
        return self.ask(question, history, **options)

    def read(self, question: str, history: Sequence[str | Answer] = ()) -> Reading:
        """How `question` is read: a follow-up completed from `history` (the earlier turns, oldest first), acronyms,
        spelling and capitals put right as the articles write them, the dates and outlets it names."""
        # Every caller's question is cleaned and capped here too, so none costs more than the cap's worth of work.
        cap = self.settings.ask.max_question_chars
        history = [prepare(h, cap).text if isinstance(h, str) else h for h in history]
        r = self.retriever
        return read(prepare(question, cap).text, history, r.stats, self.lexicon, r.newest, r.outlets)

    def retrieve(
        self, question: str, history: Sequence[str | Answer] = (), filters: Filters | None = None, k: int | None = None
    ) -> tuple[Reading, Filters, list[Hit]]:
        """The passages `question` is answered from: the question as read (see `read`), the filters applied (the
        caller's, else those the question names: "since October", "according to The Hill") and the hits."""
        reading = self.read(question, history)
        named = Filters(reading.window.since, reading.window.until, reading.outlets)
        combined = Filters(
            (filters.since if filters else None) or named.since,
            (filters.until if filters else None) or named.until,
            (filters.sources if filters else ()) or named.sources,
        )
        hits = self.retriever.retrieve(reading, combined, k)
        if not hits and named and combined != filters:  # the question's own filters ruled everything out: drop them
            combined = filters or Filters()
            hits = self.retriever.retrieve(reading, combined, k)
        return reading, combined, hits

    def ask(
        self,
        question: str,
        history: Sequence[str | Answer] = (),
        min_score: float | None = None,
        on_text: Callable[[str], None] | None = None,
        use_llm: bool = True,
        filters: Filters | None = None,
        explain: bool = False,
    ) -> Answer:
        """Answer `question`; `history` holds the earlier turns of the conversation, oldest first (questions or
        Answers); `filters` restrict the articles it may be answered from; `explain` adds the composer's
        reasoning to the Answer.

        With an LLM configured (and `use_llm`), `on_text` is called with the answer so far as the model writes it
        (citation markers already renumbered); the Answer returned is final and may differ (checked citations, or
        the offline answer when the model failed).
        """
        threshold = self.settings.retrieval.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        reading, combined, hits = self.retrieve(question, history, filters)
        stats = self.retriever.stats
        t1 = time.perf_counter()
        answer, ranked = compose_ranked(reading, hits, stats, threshold, explain=explain)
        t2 = time.perf_counter()
        timings = {"retrieve": round((t1 - t0) * 1000, 2), "compose": round((t2 - t1) * 1000, 2)}
        if self.llm is not None and use_llm:
            if reason := uncovered(reading, hits, stats):
                answer = dataclasses.replace(answer, fallback_reason=f"{NOT_ASKED}: {reason}")
            else:
                answer = self.llm.answer(reading, hits, answer, on_text=on_text)
            t3 = time.perf_counter()
            timings["generate"] = round((t3 - t2) * 1000, 2)
            t2 = t3
        # Where else the answer may be: from the same retrieval, whoever wrote the answer.
        answer = with_related(reading, answer, hits, stats, explain=explain, ranked=ranked)
        timings["total"] = round((time.perf_counter() - t0) * 1000, 2)
        return dataclasses.replace(answer, timings_ms=timings, asked=reading.text, filters=combined.describe(), reading=reading)
