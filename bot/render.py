"""Rendering for the terminal and as JSON: answers (their JSON is bot.serialise's), run reports, the status and
the eval report. Composing never happens here."""

from __future__ import annotations

import json
import os
import textwrap

from typing import TYPE_CHECKING

from ingest.report import LoggedRun, RunReport, SourceReport

from .serialise import answer_dict
from .types import Answer, Citation, Related

if TYPE_CHECKING:
    from .evaluate import EvalReport, Outcome, Score
    from .status import Status


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
            "\nrelated passages (the best-rated sentence of each article, best rated first; shown ones are listed "
            "in fused order; match = the sentence's similarity and share of the question's terms):"
        )
        for r in answer.related_choices:
            lines.append(f"  {r.score:6.4f} {r.match:5.3f}  {r.title[:50]}: {r.why}")
    return "\n".join(lines)


def answer_json(answer: Answer, explain: bool = False, note: str = "") -> str:
    """One line of JSON: `note` says what the user should know about their question (it was cut), else null."""
    return json_line({**answer_dict(answer, explain), "note": note or None})


# Characters JSON may carry raw that some readers take for a line break (str.splitlines, editors): escaped, so every
# answer stays one line whatever an article or a question holds.
_LINE_BREAKERS = {c: f"\\u{c:04x}" for c in [*range(0x7F, 0xA0), 0x2028, 0x2029]}


def json_line(value) -> str:
    return json.dumps(value, ensure_ascii=False).translate(_LINE_BREAKERS)


def ask_text(answer: Answer, explain: bool = False, note: str = "", read_as: bool = False) -> str:
    """An answer as `dealbot ask` prints it: what to know about the question (it was cut; how a follow-up was
    read, with `read_as`), the answer with its sources and related passages, and with `explain` what the composer
    saw."""
    text = answer_text(answer)
    if read_as and answer.asked and answer.asked != answer.question:
        text = f"(read as: {answer.asked})\n{text}"
    if note:
        text = f"({note})\n{text}"
    return text + ("\n\n" + explain_text(answer) if explain else "")


def feedback_text(records: list[dict]) -> str:
    """`dealbot feedback`: each vote with who gave it where, the question, and the answer with its sources."""
    if not records:
        return "no feedback yet"
    lines = []
    for r in records:
        sources = ", ".join(c["title"] for c in r["citations"]) or "no sources"
        lines.append(f"{r['at']}  {'+1' if r['vote'] == 'up' else '-1'}  {r['user']} in {r['channel']}: {r['question']}")
        lines.append(f"    {r['answer'][:200]}  [{sources}]")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ run reports

def report_line(report: RunReport) -> str:
    """A run report in one line: what the schedule logs per run."""
    line = (
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.removed} removed, {report.duplicates} duplicates, {report.failed} failed; "
        f"{report.passages_embedded} passages embedded in {report.seconds:.1f}s"
    )
    if report.fetched or report.not_modified:
        line += f"; {report.fetched} pages downloaded, {report.not_modified} not modified"
    return line + ("; stopped early" if report.stopped else "")


def report_text(report: RunReport) -> str:
    lines = [report_line(report)]
    lines += [f"  failed: {f.location}: {f.reason}" for f in report.failures]
    return "\n".join(lines)


def source_counts(run: SourceReport) -> str:
    """A source's run in words: "2 added, 14 unchanged", or "nothing to do"."""
    keys = ("added", "updated", "unchanged", "removed", "duplicates", "failed", "not_modified")
    return ", ".join(f"{getattr(run, k)} {k.replace('_', ' ')}" for k in keys if getattr(run, k)) or "nothing to do"


# ------------------------------------------------------------------------------------------------ status

def status_text(status: Status) -> str:
    """`dealbot status`: the index, the model, who answers, the schedule, Slack's waiting replies, the last run,
    then each source's last run and errors."""
    lines = [f"index:     {status.index}", f"model:     {status.model}",
             f"answers:   {'written by ' + status.llm_model if status.llm_model else 'offline (extractive)'}"]
    if status.busy:
        lines.append(f"documents: not counted now: {status.busy}")
    else:
        lines += [f"documents: {status.documents}", f"passages:  {status.passages}"]
    lines.append(f"schedule:  {status.schedule or 'none (run `dealbot ingest` yourself)'}")
    lines.append(f"slack:     {status.slack_pending} replies waiting to be delivered"
                 + (f", {status.slack_undelivered} given up" if status.slack_undelivered else ""))
    run = status.last_run
    lines.append(f"last run:  {run.finished}: {report_line(run.report)}" if run else "last run:  never")
    for src in status.sources:
        lines += ["", *_source_lines(src)]
    return "\n".join(lines)


def _source_lines(src) -> list[str]:
    name = src.name if src.name != src.location else display_source(src.location)
    note = "" if src.configured else ", not configured any more"
    counted = "" if src.documents is None else f": {src.documents} documents"
    lines = [f"{name} ({src.kind}{note}){counted}"]
    last: LoggedRun | None = src.last_run
    if not last:
        return lines + ["  never run"]
    lines.append(f"  last run {last.finished}: {source_counts(last.report)}")
    if last.report.error:
        lines.append(f"  error: {last.report.error}")
    lines += [f"  failed: {f.location}: {f.reason}" for f in last.report.failures if f.location != src.location]
    return lines


# ------------------------------------------------------------------------------------------------ the eval report

PARTS = ("dev", "heldout", "overall")


def eval_text(report: EvalReport, outcomes: list[Outcome] = (), verbose: bool = False) -> str:
    """`dealbot eval`: with `verbose` every question's outcome, then per split the answer's figures (and a
    compared system's, with the margin), what the reader sees, where facts went unseen and questions were lost,
    the held-out intervals, and the calibrations asked for."""
    lines = [_outcome_line(o) for o in outcomes] if verbose else []
    for system, rep in [("dealbot", report), *report.compared.items()]:
        lines += [_answer_line(system, part, score, bool(rep.llm_model)) for part, score in _parts(rep, PARTS)]
    lines += [_reader_line(part, score) for part, score in _parts(report, PARTS)]
    lines += [_unseen_line(part, score) for part, score in _parts(report, PARTS[:2])]
    lines += [_misses_line(part, score) for part, score in _parts(report, PARTS[:2])]
    for system, theirs in report.compared.items():
        lines += [_margin_line(system, part, score, theirs.parts[part]) for part, score in _parts(report, PARTS)]
    if "heldout" in report.parts:
        lines.append(_intervals_line(report.parts["heldout"]))
    lines.append(f"min_score={report.min_score}" + (f"  llm.model={report.llm_model}" if report.llm_model else ""))
    return "\n".join(lines + _calibration_lines(report))


def _parts(report: EvalReport, names) -> list[tuple[str, Score]]:
    return [(name, report.parts[name]) for name in names if name in report.parts]


def _outcome_line(o: Outcome) -> str:
    mark = ("ok " if o.correct else "MISS") if o.case.answerable else ("ok " if not o.answer.answered else "FALSE")
    shown = f"; {len(o.answer.related)} related" + (", on screen" if o.case.answerable and o.on_screen else "")
    return f"{mark} [{o.case.split}] {o.case.question} -> {o.answer.text[:140]} ({o.answer.evidence:.3f}{shown})"


def _answer_line(system: str, part: str, r: Score, llm: bool) -> str:
    return (
        f"{system:8} {part:8} n={r.questions:3}  hit@k={_f(r.hit_at_k)}  "
        f"accuracy={_f(r.accuracy)} ({_n(r, 'accuracy')})  citations={_f(r.citation_accuracy)} "
        f"({_n(r, 'citation_accuracy')})  abstention={_f(r.abstention)} ({_n(r, 'abstention')})  "
        f"p50={r.latency_ms_p50}ms p95={r.latency_ms_p95}ms  median answer={r.answer_chars_median} chars"
        + (f"  llm answers={r.llm_answers} fallbacks={r.fallbacks}" if llm else "")
    )


def _reader_line(part: str, r: Score) -> str:
    return (
        f"reader   {part:8} on screen={_f(r.on_screen)} ({_n(r, 'on_screen')})  confident and wrong="
        f"{_f(r.confident_and_wrong)} ({_n(r, 'confident_and_wrong')})  off-topic with passages="
        f"{_f(r.off_topic_with_passages)} ({_n(r, 'off_topic_with_passages')})  "
        f"visible median={r.visible_chars_median} chars"
    )


def _unseen_line(part: str, r: Score) -> str:
    u = r.unseen
    return (f"unseen   {part:8} only in a cited article={u['in_cited_article']}  retrieved, not shown="
            f"{u['retrieved_not_shown']}  not retrieved={u['not_retrieved']}")


def _misses_line(part: str, r: Score) -> str:
    m = r.misses
    return (f"misses   {part:8} not retrieved={m['not_retrieved']}  retrieved, other sentences chosen="
            f"{m['other_sentence']}  retrieved, abstained={m['abstained_retrieved']}  "
            f"unanswerable answered={m['answered_unanswerable']}")


def _margin_line(system: str, part: str, ours: Score, theirs: Score) -> str:
    margins = "  ".join(
        f"{name}={_margin(getattr(ours, key), getattr(theirs, key))}"
        for name, key in (("accuracy", "accuracy"), ("citations", "citation_accuracy"), ("abstention", "abstention"))
    )
    return f"margin   {part:8} dealbot - {system}: {margins}"


def _intervals_line(r: Score) -> str:
    names = (("accuracy", "accuracy"), ("citations", "citation_accuracy"), ("abstention", "abstention"),
             ("on screen", "on_screen"))
    return "95% intervals, dealbot heldout: " + "  ".join(f"{name}={_interval(r.ci95[key])}" for name, key in names)


def _calibration_lines(report: EvalReport) -> list[str]:
    lines = []
    if (t := report.calibrated_min_score) is not None:
        lines.append(f"calibrated min_score={t.value} (dev balanced score {t.balanced_score})")
    if (off := report.calibrated_off_topic_match) is not None:
        lines.append(f"calibrated off-topic cut={off.value} ({off.wrong_side} of {off.dev_questions} dev "
                     f"questions on the wrong side, {off.off_topic} of them off-topic)")
    return lines


def _f(x: float | None) -> str:
    return "n/a " if x is None else f"{x:.2f}"


def _n(part: Score, key: str) -> str:
    good, total = part.counts[key]
    return f"{good}/{total}"


def _interval(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"


def _margin(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a - b:+.2f}"
