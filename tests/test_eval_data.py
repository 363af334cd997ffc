"""The question sets themselves: big enough, split, and every expected answer really in an article it names."""

import json
from pathlib import Path

import frontmatter

from conftest import EVAL_ARTICLES, SAMPLE

EVAL = Path(__file__).resolve().parent / "eval"


def _cases():
    return [json.loads(line) for f in sorted(EVAL.glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]


def _articles():
    paths = list(SAMPLE.glob("*.md")) + list(EVAL_ARTICLES.glob("*.md"))
    return {p.stem: frontmatter.load(p) for p in paths}


def test_question_sets_are_large_enough_and_split():
    cases = _cases()
    assert len(cases) >= 60
    assert sum(not c["answerable"] for c in cases) >= 12
    assert {c["split"] for c in cases} == {"dev", "heldout"}
    heldout = [c for c in cases if c["split"] == "heldout"]
    assert len(heldout) >= 20 and sum(not c["answerable"] for c in heldout) >= 5


def test_corpus_has_fixture_articles_with_dates():
    articles = _articles()
    assert len(articles) >= 8
    for stem, post in articles.items():
        assert post["title"] and post["published"], stem
        if stem.startswith("test-wire-"):
            assert "fixture" in post["outlet"]


def test_every_expected_answer_is_in_a_named_article():
    articles = _articles()
    for c in _cases():
        if not c["answerable"]:
            assert not c["answer_any"] and not c["source_any"], c["question"]
            continue
        assert c["source_any"] and all(s in articles for s in c["source_any"]), c["question"]
        assert any(a in articles[s].content for a in c["answer_any"] for s in c["source_any"]), c["question"]


def test_the_eval_corpus_ingests(eval_pipeline):
    docs = {h.doc_id for h in (s.hit for s in eval_pipeline.retriever.passages.values())}
    assert len(docs) == len(_articles())
