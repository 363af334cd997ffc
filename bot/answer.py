"""The extractive answer: choose the sentences of the retrieved passages that answer the question, and cite them.

Each candidate sentence gets one score from four signals, each in 0..1:

- dense:   cosine similarity of the question to the passage the sentence is in;
- lexical: the share of the question's informative terms (weighted by rarity in the corpus) the sentence contains;
- shape:   whether the sentence holds the kind of answer asked for (a date for "when", a name for "who", ...);
- novelty: whether the sentence says more than the question's own words (an echo of the question is weak evidence).

The best sentence's score is the evidence; below the calibrated threshold, or when the question names something
no article mentions, the composer abstains instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .retrieve import CorpusStats
from .text import OTHER, has_answer_shape, named_entities, question_type, terms
from .types import Answer, Citation, Hit, Sentence

WEIGHTS = {"dense": 0.15, "sentence": 0.35, "lexical": 0.25, "shape": 0.15, "novelty": 0.10}
MAX_SENTENCES = 3
MAX_CHARS = 600
# Further sentences join the best one only when they score nearly as well and add something it lacks.
FOLLOW_RATIO = 0.9


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    text: str
    start: int  # offset in the article, identifies the sentence across overlapping passages
    terms: frozenset[str]
    signals: dict[str, float]

    @property
    def score(self) -> float:
        return sum(WEIGHTS[k] * v for k, v in self.signals.items())


def compose(question: str, hits: list[Hit], stats: CorpusStats, min_score: float) -> Answer:
    """An Answer of 1-3 cited sentences from `hits`, or an abstention when the evidence is weak."""
    q_terms = _question_terms(question)
    missing = [n for n in named_entities(question) if n.lower() not in stats.vocabulary]
    if missing:
        return Answer(question, False, hits=tuple(hits), reason=f"no article mentions {', '.join(missing)}")
    kind = question_type(question)
    candidates = _candidates(hits, q_terms, kind, stats)
    if not candidates:
        return Answer(question, False, hits=tuple(hits), reason="nothing retrieved")
    best = candidates[0]
    if best.score < min_score:
        return Answer(question, False, hits=tuple(hits), evidence=best.score, reason="evidence below threshold")
    if kind != OTHER and not best.signals["shape"]:
        return Answer(question, False, hits=tuple(hits), evidence=best.score, reason=f"no sentence gives a {kind}")
    chosen = _choose(candidates, q_terms)
    return _cite(question, chosen, hits, best.score)


def _question_terms(question: str) -> dict[str, int]:
    return {t: 1 for t in terms(question)}


def _candidates(hits: list[Hit], q_terms: dict[str, int], kind: str, stats: CorpusStats) -> list[Candidate]:
    weight = {t: stats.idf(t) for t in q_terms}
    total = sum(weight.values()) or 1.0
    seen: dict[tuple[str, int], Candidate] = {}
    for hit in hits:
        for (s, e), sentence_score in zip(hit.sentences, hit.sentence_scores):
            key = (hit.doc_id, hit.start + s)
            if key in seen and seen[key].hit.score >= hit.score:
                continue
            text = hit.text[s:e]
            sentence_terms = frozenset(terms(text))
            new_terms = len(sentence_terms - q_terms.keys())
            signals = {
                "dense": max(0.0, hit.score),
                "sentence": max(0.0, sentence_score),
                "lexical": sum(w for t, w in weight.items() if t in sentence_terms) / total,
                "shape": 1.0 if has_answer_shape(kind, text) else 0.0,
                "novelty": min(1.0, new_terms / 4),
            }
            seen[key] = Candidate(hit, text, hit.start + s, sentence_terms, signals)
    return sorted(seen.values(), key=lambda c: c.score, reverse=True)


def _choose(candidates: list[Candidate], q_terms: dict[str, int]) -> list[Candidate]:
    best = candidates[0]
    chosen = [best]
    covered = set(best.terms & q_terms.keys())
    length = len(best.text)
    texts = {" ".join(best.text.split()).lower()}
    for c in candidates[1:]:
        if len(chosen) >= MAX_SENTENCES or c.score < FOLLOW_RATIO * best.score:
            break
        normalized = " ".join(c.text.split()).lower()
        adds = (c.terms & q_terms.keys()) - covered
        if normalized in texts or not adds or length + len(c.text) > MAX_CHARS:
            continue
        chosen.append(c)
        covered |= adds
        texts.add(normalized)
        length += len(c.text)
    # Read in article order within each article, best article first.
    order = {c.hit.doc_id: i for i, c in reversed(list(enumerate(chosen)))}
    return sorted(chosen, key=lambda c: (order[c.hit.doc_id], c.start))


def _cite(question: str, chosen: list[Candidate], hits: list[Hit], evidence: float) -> Answer:
    numbers: dict[str, int] = {}
    quotes: dict[str, list[str]] = {}
    first_hit: dict[str, Hit] = {}
    sentences = []
    for c in chosen:
        n = numbers.setdefault(c.hit.doc_id, len(numbers) + 1)
        quotes.setdefault(c.hit.doc_id, []).append(c.text)
        first_hit.setdefault(c.hit.doc_id, c.hit)
        sentences.append(Sentence(c.text, n))
    citations = tuple(
        Citation(
            n=n,
            doc_id=doc_id,
            title=first_hit[doc_id].title,
            source=first_hit[doc_id].source,
            quotes=tuple(quotes[doc_id]),
            url=first_hit[doc_id].url,
            outlet=first_hit[doc_id].outlet,
            published=first_hit[doc_id].published,
        )
        for doc_id, n in numbers.items()
    )
    return Answer(question, True, tuple(sentences), citations, tuple(hits), evidence)
