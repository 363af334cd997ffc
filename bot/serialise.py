"""An Answer as JSON, and back: the one serialisation of an answer.

`dealbot ask --json` prints `answer_dict`; the Slack bot keeps `answer_record` (the same, with the sentences and
their markers) so that an answer can be shown again ("Share in channel") and its citations exported with its
feedback (`dealbot feedback --json`, whose citations keep the keys they have always had).
"""

from __future__ import annotations

from .types import Answer, Citation, Related, Sentence


def citation_dict(c: Citation) -> dict:
    return {"n": c.n, "doc_id": c.doc_id, "title": c.title, "outlet": c.outlet, "source": c.source, "url": c.url,
            "published": c.published, "quote": c.quote, "quotes": list(c.quotes), "alternates": list(c.alternates)}


def related_dict(r: Related) -> dict:
    """A related passage with the keys of a citation: `n` is null (nothing in the answer points to it) and `quote`
    is the sentence exactly as in the article (the surfaces cut it past QUOTE_CHARS)."""
    return {"n": None, "doc_id": r.doc_id, "title": r.title, "outlet": r.outlet, "source": r.source, "url": r.url,
            "published": r.published, "quote": r.quote, "quotes": [r.quote], "alternates": list(r.alternates)}


def answer_dict(answer: Answer, explain: bool = False) -> dict:
    """The answer as `dealbot ask --json` prints it; with `explain`, also what the composer saw."""
    out = {
        "question": answer.question,
        "answered": answer.answered,
        "answer": answer.text,
        "citations": [citation_dict(c) for c in answer.citations],
        "related": [related_dict(r) for r in answer.related],
        "evidence": round(answer.evidence, 4),
        "reason": answer.reason or None,
        "composer": answer.composer,
        "fallback_reason": answer.fallback_reason or None,
        "timings_ms": answer.timings_ms,
    }
    return (out | _explanation(answer)) if explain else out


def _explanation(answer: Answer) -> dict:
    return {
        "asked": answer.asked,
        "filters": answer.filters or None,
        "passages": [
            {"rank": h.rank, "id": h.id, "title": h.title, "published": h.published, "dense": round(h.score, 4),
             "lexical": round(h.lexical, 4), "fused": round(h.fused, 5), "via": h.via}
            for h in answer.hits
        ],
        "sentences": [
            {"text": c.text, "passage_id": c.passage_id, "score": c.score, "signals": c.signals, "why": c.why}
            for c in answer.considered
        ],
        "related_passages": [
            {"passage_id": r.passage_id, "doc_id": r.doc_id, "title": r.title, "fused": r.score, "match": r.match,
             "shown": r.shown, "why": r.why}
            for r in answer.related_choices
        ],
    }


def answer_record(answer: Answer) -> dict:
    """What is kept of an answer to show it again: its JSON and its sentences with their markers."""
    return {**answer_dict(answer), "sentences": [[s.text, s.n, list(s.more)] for s in answer.sentences]}


def answer_from_record(record: dict) -> Answer:
    """The Answer kept by `answer_record`, or in the form kept before it (citations without `quote` and
    `alternates`, related passages without `n`, `quotes` and `alternates`, or none at all)."""
    return Answer(
        question=record.get("question", ""),
        answered=bool(record.get("answered")),
        sentences=tuple(Sentence(s[0], s[1], tuple(s[2]) if len(s) > 2 else ()) for s in record.get("sentences", ())),
        citations=tuple(_citation(c) for c in record.get("citations", ())),
        related=tuple(_related(r) for r in record.get("related", ())),
    )


def _citation(c: dict) -> Citation:
    return Citation(c["n"], c["doc_id"], c["title"], c["source"], tuple(c["quotes"]), c.get("url"), c.get("outlet"),
                    c.get("published"), tuple(c.get("alternates", ())))


def _related(r: dict) -> Related:
    return Related(r["doc_id"], r["title"], r["source"], r["quote"], r.get("url"), r.get("outlet"), r.get("published"),
                   tuple(r.get("alternates", ())))


def feedback_citation(c: Citation) -> dict:
    """A citation as `dealbot feedback --json` exports it."""
    return {"n": c.n, "doc_id": c.doc_id, "title": c.title, "source": c.source, "quotes": list(c.quotes),
            "url": c.url, "outlet": c.outlet, "published": c.published}
