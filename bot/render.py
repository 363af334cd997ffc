"""Rendering Answers and run reports for the terminal and as JSON. Composing never happens here."""

from __future__ import annotations

import json
import os
import textwrap

from .types import Answer, Citation, Related


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
    line = f"{head}\n    {c.url or display_source(c.source)}"
    if c.alternates:
        line += "\n    also published at: " + ", ".join(display_source(a) for a in c.alternates)
    return line


def related_lines(r: Related, width: int = 100) -> str:
    """A related passage: its sentence as shown, then its article (title, outlet, date) and where it is."""
    parts = [p for p in (r.outlet, r.published) if p]
    quote = textwrap.fill(r.shown, width, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False)
    head = f"  {r.title}" + (f" — {', '.join(parts)}" if parts else "")
    return f"{quote}\n{head}\n  {r.url or display_source(r.source)}"


def related_heading(answer: Answer) -> str:
    return "Related, in other articles:" if answer.answered else "Closest passages:"


def answer_text(answer: Answer, width: int = 100) -> str:
    """The answer, its sources, and beneath them, apart, the related passages."""
    out = textwrap.fill(answer.text, width=width)
    if answer.answered:
        out += "\n\n" + "\n".join(citation_line(c) for c in answer.citations)
    if answer.related:
        out += f"\n\n{related_heading(answer)}\n" + "\n".join(related_lines(r, width) for r in answer.related)
    return out


def explain_text(answer: Answer, width: int = 100) -> str:
    """What the composer saw: the retrieved passages with their scores, and the best candidate sentences with
    their signals and why each was chosen or not."""
    lines = [f"question as answered: {answer.asked or answer.question}"]
    if answer.reading is not None:
        lines.append(f"read as: {answer.reading.describe()}")
    if answer.filters:
        lines.append(f"filters: {answer.filters}")
    lines.append(f"evidence {answer.evidence:.3f}" + (f"; abstained: {answer.reason}" if not answer.answered else ""))
    lines.append("\npassages (fused = reciprocal rank fusion of the dense and lexical ranks):")
    lines.append(f"  {'#':>2} {'dense':>6} {'lexical':>7} {'fused':>6}  {'via':9} article")
    for h in answer.hits:
        where = f"{h.title[:50]} ({', '.join(x for x in (h.outlet, h.published) if x)})"
        lines.append(f"  {h.rank:>2} {h.score:6.3f} {h.lexical:7.3f} {h.fused:6.4f}  {h.via:9} {where}")
    if answer.considered:
        lines.append("\nsentences (score = weighted sum of the signals):")
        for c in answer.considered:
            signals = " ".join(f"{k}={v:g}" for k, v in c.signals.items() if k != "dense")
            lines.append(textwrap.fill(f"{c.score:.3f} {c.text}", width, initial_indent="  ", subsequent_indent="        "))
            lines.append(f"        {signals}")
            lines.append(f"        {c.why}")
    if answer.related_choices:
        lines.append(
            "\nrelated passages (best sentence of each article not cited, in fused order; match = the sentence's "
            "similarity and share of the question's terms):"
        )
        for r in answer.related_choices:
            lines.append(f"  {r.score:6.4f} {r.match:5.3f}  {r.title[:50]}: {r.why}")
    return "\n".join(lines)


def answer_dict(answer: Answer, explain: bool = False) -> dict:
    out = _answer_dict(answer)
    if explain:
        out["asked"] = answer.asked
        out["filters"] = answer.filters or None
        out["passages"] = [
            {"rank": h.rank, "id": h.id, "title": h.title, "published": h.published, "dense": round(h.score, 4),
             "lexical": round(h.lexical, 4), "fused": round(h.fused, 5), "via": h.via}
            for h in answer.hits
        ]
        out["sentences"] = [
            {"text": c.text, "passage_id": c.passage_id, "score": c.score, "signals": c.signals, "why": c.why}
            for c in answer.considered
        ]
        out["related_passages"] = [
            {"passage_id": r.passage_id, "doc_id": r.doc_id, "title": r.title, "fused": r.score, "match": r.match,
             "shown": r.shown, "why": r.why}
            for r in answer.related_choices
        ]
    return out


def _answer_dict(answer: Answer) -> dict:
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
                "alternates": list(c.alternates),
            }
            for c in answer.citations
        ],
        # The keys of a citation; `n` is null (nothing in the answer points to them) and `quote` is the sentence
        # exactly as in the article (the surfaces cut it past QUOTE_CHARS).
        "related": [
            {
                "n": None,
                "doc_id": r.doc_id,
                "title": r.title,
                "outlet": r.outlet,
                "source": r.source,
                "url": r.url,
                "published": r.published,
                "quote": r.quote,
                "quotes": [r.quote],
                "alternates": list(r.alternates),
            }
            for r in answer.related
        ],
        "evidence": round(answer.evidence, 4),
        "reason": answer.reason or None,
        "composer": answer.composer,
        "fallback_reason": answer.fallback_reason or None,
        "timings_ms": answer.timings_ms,
    }


def answer_json(answer: Answer, explain: bool = False, note: str = "") -> str:
    """One line of JSON: `note` says what the user should know about their question (it was cut), else null."""
    return json_line({**answer_dict(answer, explain), "note": note or None})


# Characters JSON may carry raw that some readers take for a line break (str.splitlines, editors): escaped, so every
# answer stays one line whatever an article or a question holds.
_LINE_BREAKERS = {c: f"\\u{c:04x}" for c in [*range(0x7F, 0xA0), 0x2028, 0x2029]}


def json_line(value) -> str:
    return json.dumps(value, ensure_ascii=False).translate(_LINE_BREAKERS)


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
