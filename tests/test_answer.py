"""Answers from the real pipeline over the sample corpus (real model, real embedded Chroma)."""

import pytest

from bot.pipeline import Pipeline
from bot.types import NOT_FOUND
from conftest import SAMPLE, make_settings

ARTICLE_TEXT = (SAMPLE / "the-hill-2025-06-27.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pipeline(sample_pipeline):
    return sample_pipeline


def test_signing_question_gets_the_cited_sentence(pipeline):
    a = pipeline.ask("When was the deal signed?")
    assert a.answered
    assert "signed earlier this week" in a.text or "signed and sealed two days ago" in a.text
    c = a.citations[0]
    assert (c.title, c.outlet, c.published) == (
        "White House announces trade deal with China on rare earth exports",
        "The Hill",
        "2025-06-27",
    )
    assert c.source.endswith("data/articles/the-hill-2025-06-27.md")


@pytest.mark.parametrize(
    "question",
    [
        "What did China agree to?",
        "What tariff did Trump impose on China in April?",
        "Where were the trade talks held?",
        "who is the treasury secretary",
        "How much of the world's rare earths come from China?",
    ],
)
def test_every_sentence_is_cited_exact_and_not_repeated(pipeline, question):
    a = pipeline.ask(question)
    assert a.answered, a.reason
    assert 1 <= len(a.sentences) <= 3
    assert sum(len(s.text) for s in a.sentences) <= 600
    assert len({s.text for s in a.sentences}) == len(a.sentences)
    numbers = {c.n for c in a.citations}
    for s in a.sentences:
        assert s.n in numbers
        assert s.text in ARTICLE_TEXT, "quotes must be exact"
        assert f"{s.text} [{s.n}]" in a.text
    for c in a.citations:
        assert all(q in ARTICLE_TEXT for q in c.quotes)


@pytest.mark.parametrize(
    "question",
    ["What is the capital of Australia?", "What did the EU agree with China?", "How do I bake sourdough bread?"],
)
def test_questions_the_articles_do_not_answer_get_the_honest_reply(pipeline, question):
    a = pipeline.ask(question)
    assert not a.answered and a.text == NOT_FOUND and a.citations == ()


def test_threshold_decides_abstention(pipeline):
    q = "When was the deal signed?"
    assert pipeline.ask(q, min_score=0.0).answered
    assert not pipeline.ask(q, min_score=0.99).answered


def test_timings_are_reported(pipeline):
    t = pipeline.ask("When was the deal signed?").timings_ms
    assert set(t) == {"retrieve", "compose", "total"}
    assert t["total"] >= t["retrieve"] > 0


def test_asking_an_empty_index_says_to_ingest_first(tmp_path, embedder):
    from ingest.index import IndexAccessError

    with pytest.raises(IndexAccessError, match="run `dealbot ingest` first"):
        Pipeline(make_settings(tmp_path), embedder=embedder)
