"""dealbot's retrieval as a LangChain retriever, for teams composing the index into chains of their own.

    from bot.langchain_retriever import DealbotRetriever
    from bot.pipeline import Pipeline
    from ingest.settings import load_settings

    retriever = DealbotRetriever(pipeline=Pipeline(load_settings()))
    docs = retriever.invoke("what did China agree to in London?")

It retrieves exactly as `dealbot ask` does: the question read the same way (acronyms, spelling, capitals; dates and
outlets it names become filters), hybrid dense and BM25 retrieval fused, syndicated copies dropped, articles
diversified. Each Document is one passage; its metadata carries what a citation needs (title, outlet, published,
url, source) and the retrieval scores.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from .retrieve import Filters
from .types import Hit


class DealbotRetriever(BaseRetriever):
    """Passages of the dealbot index for a question, best first."""

    pipeline: Any
    """A `bot.pipeline.Pipeline`: the index, model and corpus statistics, loaded once."""
    k: int | None = None
    """Passages per question (retrieval.k when None); the neighbours of the best passages may come on top."""
    since: str | None = None
    """Only articles published on or after this ISO date."""
    until: str | None = None
    """Only articles published on or before this ISO date."""
    sources: tuple[str, ...] = ()
    """Only articles from these outlets."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        filters = Filters(self.since, self.until, tuple(self.sources)) or None
        reading, applied, hits = self.pipeline.retrieve(query, filters=filters, k=self.k)
        return [_document(hit, reading.text, applied.describe()) for hit in hits]


def _document(hit: Hit, asked: str, filters: str) -> Document:
    return Document(
        id=hit.id,
        page_content=hit.text,
        metadata={
            "doc_id": hit.doc_id,
            "title": hit.title,
            "outlet": hit.outlet,
            "published": hit.published,
            "url": hit.url,
            "source": hit.source,
            "start": hit.start,
            "rank": hit.rank,
            "via": hit.via,
            "dense": round(hit.score, 4),
            "lexical": round(hit.lexical, 4),
            "fused": round(hit.fused, 6),
            "asked": asked,
            "filters": filters,
        },
    )
