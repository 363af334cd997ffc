"""Rendering Answers and run reports for the terminal and as JSON. Composing never happens here."""

from __future__ import annotations

import json
import os
import textwrap

from .types import Answer, Citation


def display_source(source: str) -> str:
    """A file path relative to the working directory when it is under it; URLs and other paths as they are."""
    if "://" in source:
        return source
    try:
        rel = os.path.relpath(source)
    except ValueError:
        return source
    return source if rel.startswith("..") else rel


def citation_line(c: Citation) -> str:
    parts = [p for p in (c.outlet, c.published) if p]
    head = f"[{c.n}] {c.title}" + (f" — {', '.join(parts)}" if parts else "")
    return f"{head}\n    {c.url or display_source(c.source)}"


def answer_text(answer: Answer, width: int = 100) -> str:
    body = textwrap.fill(answer.text, width=width)
    if not answer.answered:
        return body
    return body + "\n\n" + "\n".join(citation_line(c) for c in answer.citations)


def answer_dict(answer: Answer) -> dict:
    return {
        "question": answer.question,
        "answered": answer.answered,
        "answer": answer.text,
        "citations": [
            {
                "n": c.n,
                "doc_id": c.doc_id,
                "title": c.title,
                "outlet": c.outlet,
                "source": c.source,
                "url": c.url,
                "published": c.published,
                "quote": c.quote,
                "quotes": list(c.quotes),
            }
            for c in answer.citations
        ],
        "evidence": round(answer.evidence, 4),
        "reason": answer.reason or None,
        "composer": answer.composer,
        "fallback_reason": answer.fallback_reason or None,
        "timings_ms": answer.timings_ms,
    }


def answer_json(answer: Answer) -> str:
    return json.dumps(answer_dict(answer), ensure_ascii=False)


def report_line(report: dict) -> str:
    """A run report in one line: what the schedule logs per run."""
    line = (
        f"{report['added']} added, {report['updated']} updated, {report['unchanged']} unchanged, "
        f"{report['removed']} removed, {report['duplicates']} duplicates, {report['failed']} failed; "
        f"{report['passages_embedded']} passages embedded in {report['seconds']:.1f}s"
    )
    if report.get("fetched") or report.get("not_modified"):
        line += f"; {report['fetched']} pages downloaded, {report['not_modified']} not modified"
    return line + ("; stopped early" if report.get("stopped") else "")


def report_text(report: dict) -> str:
    lines = [report_line(report)]
    lines += [f"  failed: {f['location']}: {f['reason']}" for f in report["failures"]]
    return "\n".join(lines)
