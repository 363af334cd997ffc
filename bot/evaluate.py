"""Scoring the pipeline on a question set (JSONL), and calibrating the abstention threshold on it.

Each line: {"question", "answer_any": [...], "source_any": [...], "answerable": bool, "split": "dev"|"heldout"}.
Sources are matched on the file stem of the cited document's source (a path or URL).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
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


def score(outcomes: list[Outcome]) -> dict:
    answerable = [o for o in outcomes if o.case.answerable]
    unanswerable = [o for o in outcomes if not o.case.answerable]
    answered = [o for o in answerable if o.answer.answered]
    latencies = sorted(o.answer.timings_ms.get("total", 0.0) for o in outcomes)
    lengths = [len(" ".join(s.text for s in o.answer.sentences)) for o in outcomes if o.answer.answered]

    def ratio(good: int, total: int) -> float | None:
        return round(good / total, 4) if total else None

    counts = {
        "hit_at_k": (sum(o.retrieved for o in answerable), len(answerable)),
        "accuracy": (sum(o.correct for o in answerable), len(answerable)),
        "citation_accuracy": (sum(o.cited for o in answered), len(answered)),
        "abstention": (sum(not o.answer.answered for o in unanswerable), len(unanswerable)),
    }
    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        **{key: ratio(good, total) for key, (good, total) in counts.items()},
        # How many questions each ratio counts, and the 95% (Wilson) interval it pins down: on 40 questions one
        # question is 2.5 points, and the interval is some 20 points wide.
        "counts": {key: [good, total] for key, (good, total) in counts.items()},
        "ci95": {key: wilson_interval(good, total) for key, (good, total) in counts.items()},
        "misses": {kind: sum(o.miss == kind for o in outcomes) for kind in MISSES},
        "answer_chars_median": statistics.median(lengths) if lengths else None,
        "llm_answers": sum(o.answer.composer == "llm" for o in outcomes),
        "fallbacks": sum(o.answer.model_failed for o in outcomes),
        "latency_ms_p50": _percentile(latencies, 0.50),
        "latency_ms_p95": _percentile(latencies, 0.95),
    }


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
) -> tuple[dict, list[Outcome]]:
    """Answer every case with `system` ("dealbot", or "baseline" for the naive one); report overall and per split
    (dev, heldout)."""
    if system == "baseline":
        outcomes = [Outcome(c, baseline_answer(pipeline, c.question)) for c in cases]
    else:
        outcomes = [Outcome(c, pipeline.ask(c.question, min_score=min_score)) for c in cases]
    report = {"overall": score(outcomes)}
    for split in sorted({c.split for c in cases}):
        report[split] = score([o for o in outcomes if o.case.split == split])
    report["min_score"] = pipeline.settings.retrieval.min_score if min_score is None else min_score
    report["llm_model"] = pipeline.settings.llm.model if pipeline.llm is not None else None
    return report, outcomes


def calibrate(pipeline: Pipeline, cases: list[Case]) -> tuple[float, dict]:
    """The abstention threshold that best separates answers from non-answers on the dev split.

    Each answerable question contributes its evidence when the composer's answer is correct at threshold 0; each
    unanswerable one its evidence. The threshold applies to the offline answer, so the LLM is not asked here. The threshold maximises the mean of accuracy and abstention, taking the middle
    of the best interval so it is not on the edge of one question.
    """
    dev = [c for c in cases if c.split == "dev"] or cases
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
