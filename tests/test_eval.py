"""The quality gate: the pipeline on the question sets in tests/eval, with the real model and Chroma."""

from pathlib import Path

import pytest

from bot.evaluate import calibrate, evaluate, load_cases, stem_of
from ingest.settings import load_settings

EVAL = Path(__file__).resolve().parent / "eval"


@pytest.fixture(scope="module")
def pipeline(sample_pipeline):
    return sample_pipeline


def test_question_set_meets_the_bar(pipeline):
    cases = load_cases(str(EVAL / "deal.jsonl"))
    assert len(cases) >= 25 and sum(not c.answerable for c in cases) >= 6
    report, outcomes = evaluate(pipeline, cases)
    overall = report["overall"]
    failures = [o.case.question for o in outcomes if (o.correct if o.case.answerable else not o.answer.answered) is False]
    print(report)
    assert overall["accuracy"] >= 0.9, failures
    assert overall["citation_accuracy"] >= 0.9, failures
    assert overall["abstention"] >= 0.9, failures
    assert overall["hit_at_k"] >= 0.9


def test_paraphrase_set_does_not_regress(pipeline):
    report, _ = evaluate(pipeline, load_cases(str(EVAL / "paraphrase.jsonl")))
    print(report["overall"])
    assert report["overall"]["accuracy"] >= 0.25


def test_configured_threshold_is_the_calibrated_one(pipeline):
    threshold, detail = calibrate(pipeline, load_cases(str(EVAL / "deal.jsonl")))
    assert detail["balanced_score"] >= 0.9
    assert abs(load_settings(env={}).retrieval.min_score - threshold) <= 0.02, (
        f"retrieval.min_score in config/dealbot.toml should be the calibrated {threshold}"
    )


def test_source_stems_match_paths_and_urls():
    assert stem_of("/x/data/articles/the-hill-2025-06-27.md") == "the-hill-2025-06-27"
    assert stem_of("https://example.com/news/the-hill-2025-06-27.html?x=1") == "the-hill-2025-06-27"
