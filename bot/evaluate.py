"""Scoring the pipeline on a question set (JSONL), and calibrating the abstention threshold on it.

Each line: {"question", "answer_any": [...], "source_any": [...], "answerable": bool, "split": "dev"|"heldout"}, and
`"off_topic": true` on an unanswerable question about nothing the articles cover ("what's the capital of
Australia?"). Sources are matched on the file stem of the cited document's source (a path or URL).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urlparse

from .pipeline import Pipeline
from .types import Answer, Citation, Sentence


class EvalFileError(ValueError):
    pass


@dataclass(frozen=True)
class Case:
    question: str
    answer_any: tuple[str, ...]
    source_any: tuple[str, ...]
    answerable: bool
    split: str = "dev"
    off_topic: bool = False  # unanswerable, and about nothing the articles cover: no passage should be shown


def load_cases(path: str) -> list[Case]:
    """The questions of a JSONL file, or of every *.jsonl file in a folder (in name order)."""
    from pathlib import Path

    if Path(path).is_dir():
        files = sorted(Path(path).glob("*.jsonl"))
        if not files:
            raise EvalFileError(f"{path}: no *.jsonl question files")
        return [c for f in files for c in load_cases(str(f))]
    cases = []
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as exc:
        raise EvalFileError(f"cannot read question set {path}: {exc.strerror}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            cases.append(
                Case(
                    question=raw["question"],
                    answer_any=tuple(raw.get("answer_any", [])),
                    source_any=tuple(raw.get("source_any", [])),
                    answerable=bool(raw["answerable"]),
                    split=raw.get("split", "dev"),
                    off_topic=bool(raw.get("off_topic", False)),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EvalFileError(f"{path}:{lineno}: not a question line ({type(exc).__name__}: {exc})") from None
    if not cases:
        raise EvalFileError(f"{path}: no questions")
    return cases


def stem_of(source: str) -> str:
    path = urlparse(source).path if "://" in source else source
    return PurePosixPath(path.rstrip("/")).stem


@dataclass(frozen=True)
class Outcome:
    case: Case
    answer: Answer

    @property
    def retrieved(self) -> bool:
        return any(stem_of(h.source) in self.case.source_any for h in self.answer.hits)

    @property
    def correct(self) -> bool:
        text = self.answer.text.lower()
        return self.answer.answered and any(a.lower() in text for a in self.case.answer_any)

    @property
    def cited(self) -> bool:
        return any(stem_of(c.source) in self.case.source_any for c in self.answer.citations)

    @property
    def on_screen(self) -> bool:
        """Whether an accepted answer appears in what the reader sees: the answer, or a related passage as shown."""
        shown = " ".join(([self.answer.text] if self.answer.answered else []) + [r.shown for r in self.answer.related])
        return any(a.lower() in shown.lower() for a in self.case.answer_any)

    @property
    def confident_and_wrong(self) -> bool:
        """An answerable question answered, its fact nowhere on screen: the reader is misled, not pointed further."""
        return self.case.answerable and self.answer.answered and not self.on_screen

    @property
    def unseen(self) -> str | None:
        """Why an answerable question's fact is not on screen (see UNSEEN), or None when it is (or the question is
        unanswerable)."""
        if not self.case.answerable or self.on_screen:
            return None
        cited = {c.doc_id for c in self.answer.citations}
        holding = {h.doc_id for h in self.answer.hits if any(a.lower() in h.text.lower() for a in self.case.answer_any)}
        if not holding:
            return "not_retrieved"
        return "retrieved_not_shown" if holding - cited else "in_cited_article"

    @property
    def visible_chars(self) -> int:
        """What the reader reads: the answer (or the not-found sentence) and each related passage as shown."""
        return len(self.answer.text) + sum(len(r.shown) for r in self.answer.related)

    @property
    def answer_retrieved(self) -> bool:
        """Whether one of the accepted answers stands in a retrieved passage: the composer could have found it."""
        return any(a.lower() in h.text.lower() for h in self.answer.hits for a in self.case.answer_any)

    @property
    def miss(self) -> str | None:
        """Where the pipeline went wrong on this question, or None when it did not (see MISSES)."""
        if not self.case.answerable:
            return "answered_unanswerable" if self.answer.answered else None
        if self.correct:
            return None
        if not self.answer_retrieved:
            return "not_retrieved"
        return "other_sentence" if self.answer.answered else "abstained_retrieved"


# Where a question is lost, stage by stage: retrieval never brought the answer's passage; the answer was retrieved
# but the composer chose other sentences; it was retrieved but the composer abstained; an unanswerable question
# was answered. The first says retrieval needs work; the next two, the reading of the passages.
MISSES = ("not_retrieved", "other_sentence", "abstained_retrieved", "answered_unanswerable")
# Why a fact is not on screen: only a cited article holds it (the answer quotes other sentences of it, and related
# passages come from other articles); an article not cited holds it but its passage or sentence was not shown
# (another sentence of it was chosen, cut off, far below the answer's evidence, or three others came first); no
# retrieved passage holds it.
UNSEEN = ("in_cited_article", "retrieved_not_shown", "not_retrieved")


@dataclass(frozen=True)
class Score:
    """The figures of one split (or of all questions). Each ratio is None when no question counts for it."""

    questions: int
    answerable: int
    unanswerable: int
    hit_at_k: float | None
    accuracy: float | None
    citation_accuracy: float | None
    abstention: float | None
    on_screen: float | None  # what the reader sees: the answer and the related passages beneath it
    confident_and_wrong: float | None
    off_topic_with_passages: float | None
    # How many questions each ratio counts (good, total), and the 95% (Wilson) interval it pins down: on 40
    # questions one question is 2.5 points, and the interval is some 20 points wide.
    counts: dict[str, tuple[int, int]]
    ci95: dict[str, list[float] | None]
    misses: dict[str, int]  # by MISSES
    unseen: dict[str, int]  # by UNSEEN
    answer_chars_median: float | None
    visible_chars_median: float | None
    llm_answers: int
    fallbacks: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None

    def to_dict(self) -> dict:
        return {**asdict(self), "counts": {key: list(pair) for key, pair in self.counts.items()}}


@dataclass(frozen=True)
class ThresholdCalibration:
    """The abstention threshold that fits the dev split best (`calibrate`)."""

    value: float
    dev_questions: int
    balanced_score: float


@dataclass(frozen=True)
class OffTopicCalibration:
    """The off-topic cut that separates the dev split's off-topic questions best (`calibrate_off_topic`)."""

    value: float
    dev_questions: int
    off_topic: int
    wrong_side: int


@dataclass(frozen=True)
class EvalReport:
    """What `dealbot eval` reports: the figures of all questions ("overall") and of each split, with the
    threshold and model they were answered with; other systems scored on the same questions; the calibrations."""

    parts: dict[str, Score]  # "overall", then each split ("dev", "heldout") in name order
    min_score: float
    llm_model: str | None
    compared: dict[str, "EvalReport"] = field(default_factory=dict)  # by system ("baseline")
    calibrated_min_score: ThresholdCalibration | None = None
    calibrated_off_topic_match: OffTopicCalibration | None = None

    def to_dict(self) -> dict:
        """The contract of `dealbot eval --json`."""
        out: dict = {name: part.to_dict() for name, part in self.parts.items()}
        out |= {"min_score": self.min_score, "llm_model": self.llm_model}
        out |= {system: report.to_dict() for system, report in self.compared.items()}
        for key in ("calibrated_min_score", "calibrated_off_topic_match"):
            if (calibration := getattr(self, key)) is not None:
                out[key] = asdict(calibration)
        return out


def score(outcomes: list[Outcome]) -> Score:
    answerable = [o for o in outcomes if o.case.answerable]
    unanswerable = [o for o in outcomes if not o.case.answerable]
    answered = [o for o in answerable if o.answer.answered]
    off_topic = [o for o in unanswerable if o.case.off_topic]
    latencies = sorted(o.answer.timings_ms.get("total", 0.0) for o in outcomes)
    lengths = [len(" ".join(s.text for s in o.answer.sentences)) for o in outcomes if o.answer.answered]

    def ratio(good: int, total: int) -> float | None:
        return round(good / total, 4) if total else None

    counts = {
        "hit_at_k": (sum(o.retrieved for o in answerable), len(answerable)),
        "accuracy": (sum(o.correct for o in answerable), len(answerable)),
        "citation_accuracy": (sum(o.cited for o in answered), len(answered)),
        "abstention": (sum(not o.answer.answered for o in unanswerable), len(unanswerable)),
        "on_screen": (sum(o.on_screen for o in answerable), len(answerable)),
        "confident_and_wrong": (sum(o.confident_and_wrong for o in answered), len(answered)),
        "off_topic_with_passages": (sum(bool(o.answer.related) for o in off_topic), len(off_topic)),
    }
    return Score(
        questions=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        **{key: ratio(good, total) for key, (good, total) in counts.items()},
        counts=counts,
        ci95={key: wilson_interval(good, total) for key, (good, total) in counts.items()},
        misses={kind: sum(o.miss == kind for o in outcomes) for kind in MISSES},
        unseen={kind: sum(o.unseen == kind for o in outcomes) for kind in UNSEEN},
        answer_chars_median=statistics.median(lengths) if lengths else None,
        visible_chars_median=statistics.median(o.visible_chars for o in outcomes) if outcomes else None,
        llm_answers=sum(o.answer.composer == "llm" for o in outcomes),
        fallbacks=sum(o.answer.model_failed for o in outcomes),
        latency_ms_p50=_percentile(latencies, 0.50),
        latency_ms_p95=_percentile(latencies, 0.95),
    )


def wilson_interval(good: int, total: int) -> list[float] | None:
    """The 95% Wilson score interval of the proportion good/total (None for no questions)."""
    if not total:
        return None
    from scipy.stats import binomtest

    ci = binomtest(good, total).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


def baseline_answer(pipeline: Pipeline, question: str) -> Answer:
    """The naive baseline: the passage nearest to the question (dense retrieval alone) as the answer, cited; it
    never abstains."""
    t0 = time.perf_counter()
    retriever = pipeline.retriever
    found = [(pid, s) for pid, s in retriever.index.nearest(retriever.embedder.encode_query(question), 1) if pid in retriever.passages]
    if not found:
        return Answer(question, False, reason="nothing retrieved")
    hit = dataclasses.replace(retriever.passages[found[0][0]].hit, score=found[0][1])
    citation = Citation.of(1, hit, (hit.text,))
    timings = {"total": round((time.perf_counter() - t0) * 1000, 2)}
    return Answer(question, True, (Sentence(hit.text, 1),), (citation,), (hit,), hit.score, timings_ms=timings)


SYSTEMS = ("baseline",)


def evaluate(
    pipeline: Pipeline, cases: list[Case], min_score: float | None = None, system: str = "dealbot"
) -> tuple[EvalReport, list[Outcome]]:
    """Answer every case with `system` ("dealbot", or "baseline" for the naive one); report overall and per split
    (dev, heldout)."""
    if system == "baseline":
        outcomes = [Outcome(c, baseline_answer(pipeline, c.question)) for c in cases]
    else:
        outcomes = [Outcome(c, pipeline.ask(c.question, min_score=min_score)) for c in cases]
    parts = {"overall": score(outcomes)}
    for split in sorted({c.split for c in cases}):
        parts[split] = score([o for o in outcomes if o.case.split == split])
    return EvalReport(
        parts,
        min_score=pipeline.settings.retrieval.min_score if min_score is None else min_score,
        llm_model=pipeline.settings.llm.model if pipeline.llm is not None else None,
    ), outcomes


def full_report(
    pipeline: Pipeline, cases: list[Case], compare: str | None = None, calibrated: bool = False
) -> tuple[EvalReport, list[Outcome]]:
    """`evaluate`, and with `compare` the same questions scored by that system too; with `calibrated`, the
    abstention threshold and the off-topic cut computed on the dev split."""
    report, outcomes = evaluate(pipeline, cases)
    if compare:
        report = dataclasses.replace(report, compared={compare: evaluate(pipeline, cases, system=compare)[0]})
    if calibrated:
        threshold, detail = calibrate(pipeline, cases)
        cut, off_topic = calibrate_off_topic(pipeline, cases)
        report = dataclasses.replace(report, calibrated_min_score=ThresholdCalibration(threshold, **detail),
                                     calibrated_off_topic_match=OffTopicCalibration(cut, **off_topic))
    return report, outcomes


def calibrate_off_topic(pipeline: Pipeline, cases: list[Case]) -> tuple[float, dict]:
    """The off-topic cut (bot.related.OFF_TOPIC_MATCH) that best separates the dev questions marked off_topic from
    the others: the middle of the interval with the fewest questions on the wrong side (an off-topic question at or
    above it, any other question below it)."""
    from .related import question_topicality

    dev = [c for c in cases if c.split == "dev"] or cases
    scored = []
    for c in dev:
        reading, _, hits = pipeline.retrieve(c.question)
        scored.append((question_topicality(reading, hits, pipeline.retriever.stats), c.off_topic))
    points = sorted({t for t, _ in scored} | {0.0, 1.0})
    wrong = [sum(((lo + hi) / 2 >= t) != off for t, off in scored) for lo, hi in zip(points, points[1:])]
    fewest = min(wrong)
    # The widest run of neighbouring intervals with the fewest errors; its middle is the cut.
    runs, start = [], None
    for i, w in enumerate(wrong + [None]):
        if w == fewest and start is None:
            start = i
        elif w != fewest and start is not None:
            runs.append((points[i] - points[start], points[start], points[i]))
            start = None
    _, lo, hi = max(runs)
    cut = round((lo + hi) / 2, 3)
    return cut, {"dev_questions": len(dev), "off_topic": sum(off for _, off in scored), "wrong_side": fewest}


def calibrate(pipeline: Pipeline, cases: list[Case]) -> tuple[float, dict]:
    """The abstention threshold that best separates answers from non-answers on the dev split.

    Each answerable question contributes its evidence when the composer's answer is correct at threshold 0; each
    unanswerable one its evidence. The threshold applies to the offline answer, so the LLM is not asked here. The threshold maximises the mean of accuracy and abstention, taking the middle
    of the best interval so it is not on the edge of one question. Questions marked off_topic are left out: they
    calibrate the off-topic cut (calibrate_off_topic), and the threshold is about questions near the topic.
    """
    dev = [c for c in cases if c.split == "dev" and not c.off_topic] or cases
    outcomes = [Outcome(c, pipeline.ask(c.question, min_score=0.0, use_llm=False)) for c in dev]
    good = [o.answer.evidence for o in outcomes if o.case.answerable and o.correct]
    bad = [o.answer.evidence for o in outcomes if not o.case.answerable and o.answer.answered]
    n_ans = sum(o.case.answerable for o in outcomes) or 1
    n_un = sum(not o.case.answerable for o in outcomes) or 1
    already_abstained = sum(not o.case.answerable and not o.answer.answered for o in outcomes)
    points = sorted(set(good + bad + [0.0, 1.0]))
    scores = []
    for lo, hi in zip(points, points[1:]):
        t = (lo + hi) / 2
        acc = sum(g >= t for g in good) / n_ans
        abst = (already_abstained + sum(b < t for b in bad)) / n_un
        scores.append((round((acc + abst) / 2, 4), t))
    top = max(s for s, _ in scores)
    winners = [t for s, t in scores if s == top]
    threshold = round(winners[len(winners) // 2], 3)
    return threshold, {"dev_questions": len(dev), "balanced_score": top}
