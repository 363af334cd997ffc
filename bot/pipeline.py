"""The question-answering core: settings in, cited Answers out. The CLI, the eval and the Slack bot all use it."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Callable, Sequence

from ingest.embed import Embedder
from ingest.settings import Settings
from ingest.store import open_embedder, open_index, read_access

from .answer import compose, uncovered
from .dates import question_window
from .followup import contextualize
from .related import with_related
from .question import prepare
from .retrieve import Filters, Retriever
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
        self.retriever = Retriever(self.index, self.embedder, settings.retrieval.k)
        self.embedder.encode_query("warm up")  # load the model now, not on the first question

    def close(self) -> None:
        """Let go of the embedded store, so that another process may write to it; the Pipeline is done with."""
        if self._access is not None:
            self._access.release()

    def refresh(self) -> None:
        """Rebuild everything derived from the index (passages, corpus statistics, BM25): call after an ingest run
        in this process, and the next question sees the new articles. Other processes' writes are picked up by the
        retriever itself."""
        self.retriever.reload()

    def answer(self, question: str, history: Sequence[str | Answer] = (), **options) -> Answer:
        """Answer `question` in a conversation: `history` holds the earlier turns, oldest first, as questions or
        the Answers given to them; a follow-up ("and when was it signed?") is read in their light."""
        return self.ask(question, history, **options)

    def retrieve(
        self, question: str, history: Sequence[str | Answer] = (), filters: Filters | None = None, k: int | None = None
    ) -> tuple[str, Filters, list[Hit]]:
        """The passages `question` is answered from: the question as read (a follow-up completed from `history`,
        acronyms, spelling and capitals put right, an outlet it names taken out as a filter), the filters applied
        (the caller's, else those the question names: "since October", "according to The Hill") and the hits."""
        # Every caller's question is cleaned and capped here too, so none costs more than the cap's worth of work.
        cap = self.settings.ask.max_question_chars
        question = prepare(question, cap).text
        history = [prepare(h, cap).text if isinstance(h, str) else h for h in history]
        stats = self.retriever.stats
        asked = stats.truecase(stats.correct_spelling(stats.expand_acronyms(contextualize(question, history))))
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
        hits = self.retriever.retrieve(asked, combined, k, prefer=window.prefer)
        if not hits and named and combined != filters:  # the question's own filters ruled everything out: drop them
            combined = filters or Filters()
            hits = self.retriever.retrieve(asked, combined, k, prefer=window.prefer)
        return asked, combined, hits

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
        question = prepare(question, self.settings.ask.max_question_chars).text  # the LLM is given it too
        threshold = self.settings.retrieval.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        asked, combined, hits = self.retrieve(question, history, filters)
        t1 = time.perf_counter()
        answer = dataclasses.replace(compose(asked, hits, self.retriever.stats, threshold, explain=explain), question=question)
        t2 = time.perf_counter()
        timings = {"retrieve": round((t1 - t0) * 1000, 2), "compose": round((t2 - t1) * 1000, 2)}
        if self.llm is not None and use_llm:
            if reason := uncovered(asked, hits, self.retriever.stats):
                answer = dataclasses.replace(answer, fallback_reason=f"{NOT_ASKED}: {reason}")
            else:
                earlier = [h if isinstance(h, str) else (h.asked or h.question) for h in history]
                answer = self.llm.answer(question, earlier, hits, answer, on_text=on_text)
            t3 = time.perf_counter()
            timings["generate"] = round((t3 - t2) * 1000, 2)
            t2 = t3
        # Where else the answer may be: from the same retrieval, whoever wrote the answer.
        answer = with_related(asked, answer, hits, self.retriever.stats, explain=explain)
        timings["total"] = round((time.perf_counter() - t0) * 1000, 2)
        return dataclasses.replace(answer, timings_ms=timings, asked=asked, filters=combined.describe())
