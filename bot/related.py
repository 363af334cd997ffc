"""Related passages: beneath every answer, where else in the articles the answer may be.

The composer chooses one to three sentences, and on questions nobody tuned it on it often chooses the wrong ones
although retrieval found the right passage. So every reply also shows up to RELATED_MAX passages of the same
retrieval from articles the answer does not cite, each by the sentence of it that best matches the question; an
abstention shows them too, so a miss still points somewhere. Nothing here changes the answer itself.

- One passage per article: the one holding the article's sentence that matches the question best (PICK_SIMILARITY_WEIGHT).
- Ranked by the retrieval's fused score of that passage (reciprocal rank fusion of the dense and BM25 ranks).
- None from a cited article or from a syndicated copy of one (the same story under another URL: the citation's
  alternates), and none whose sentence repeats one already on screen.
- A passage "far below the answer's evidence" is not shown: its best sentence must match the question at least
  FAR_BELOW times as well as the answer's own evidence does (the match being the composer's evidence measure: the
  mean of the sentence's similarity to the question and its share of the question's terms). For an abstention the
  reference is the best related sentence's match.
- An off-topic question ("what's the capital of Australia?") gets none: when no retrieved sentence matches it as
  well as OFF_TOPIC_MATCH, nothing retrieved is related to it.

PICK_SIMILARITY_WEIGHT, FAR_BELOW and OFF_TOPIC_MATCH were chosen on the dev split of tests/eval (see its README);
`dealbot eval --calibrate` recomputes OFF_TOPIC_MATCH.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Sequence

from .question import Reading
from .retrieve import CorpusStats
from .text import terms
from .types import Answer, Hit, Related, RelatedChoice

RELATED_MAX = 3
# Below this share of the answer's evidence, a passage is too far from the question to be worth showing.
FAR_BELOW = 0.4
# When no retrieved sentence matches the question this well, the question is about nothing the articles cover and
# no passage is shown.
OFF_TOPIC_MATCH = 0.233
# How well a sentence matches the question: the composer's evidence measure (bot/answer.py), the mean of its
# similarity to the question and its rarity-weighted share of the question's terms (terms no article has count).
MATCH_SIMILARITY_WEIGHT = 0.5
# Which sentence of an article is shown: the one with the best weighted sum of the same two.
PICK_SIMILARITY_WEIGHT = 0.3


@dataclasses.dataclass(frozen=True)
class _Candidate:
    hit: Hit
    sentence: str
    match: float


def with_related(reading: Reading, answer: Answer, hits: Sequence[Hit], stats: CorpusStats, explain: bool = False) -> Answer:
    """`answer` with its related passages (and, with `explain`, why each retrieved article's was shown or not)."""
    related, choices = choose(reading, answer, hits, stats)
    return dataclasses.replace(answer, related=related, related_choices=choices if explain else ())


def choose(
    reading: Reading, answer: Answer, hits: Sequence[Hit], stats: CorpusStats
) -> tuple[tuple[Related, ...], tuple[RelatedChoice, ...]]:
    """The related passages for `answer`, best first, and a choice (shown or why not) for every retrieved article."""
    candidates = _candidates(reading, hits, stats)
    topical = topicality(candidates)
    if topical < OFF_TOPIC_MATCH:
        why = f"not shown: the question is off-topic (best match {topical:.3f} < {OFF_TOPIC_MATCH:g})"
        return (), tuple(_choice(c, False, why) for c in candidates)
    cited_docs = {c.doc_id for c in answer.citations}
    copies = {a for c in answer.citations for a in (c.url, c.source, *c.alternates) if a}
    on_screen = {_plain(q) for c in answer.citations for q in c.quotes}
    reference = answer.evidence if answer.answered else max((c.match for c in candidates), default=0.0)
    shown: list[Related] = []
    choices = []
    for c in candidates:
        why = _why_not(c, cited_docs, copies, on_screen, reference, len(shown))
        if not why:
            shown.append(Related.of(c.hit, c.sentence))
            on_screen.add(_plain(c.sentence))
        choices.append(_choice(c, not why, why or f"shown: best sentence matches {c.match:.3f}"))
    return tuple(shown), tuple(choices)


def topicality(candidates: Sequence[_Candidate]) -> float:
    """How related the question is to anything retrieved: the best match of a candidate sentence (0 for none)."""
    return max((c.match for c in candidates), default=0.0)


def question_topicality(reading: Reading, hits: Sequence[Hit], stats: CorpusStats) -> float:
    """`topicality` of the question's retrieved passages (what the off-topic cut applies to; for calibration)."""
    return topicality(_candidates(reading, hits, stats))


def _why_not(c: _Candidate, cited_docs, copies, on_screen, reference: float, count: int) -> str:
    hit = c.hit
    if hit.doc_id in cited_docs:
        return "not shown: the answer cites its article"
    if copies & {x for x in (hit.url, hit.source, *hit.alternates) if x}:
        return "not shown: a syndicated copy of a cited article"
    if _plain(c.sentence) in on_screen:
        return "not shown: its sentence is already on screen"
    if c.match < FAR_BELOW * reference:
        return f"not shown: far below the answer's evidence ({c.match:.3f} < {FAR_BELOW:g} x {reference:.3f})"
    if count >= RELATED_MAX:
        return f"not shown: {RELATED_MAX} related passages already shown"
    return ""


def _candidates(reading: Reading, hits: Sequence[Hit], stats: CorpusStats) -> list[_Candidate]:
    """For each article retrieved, its sentence that best matches the question and the passage it is in, in the
    fused-score order of those passages."""
    weight = {t: stats.idf(t) for t in reading.terms}
    wanted = weight.keys()
    total = sum(weight.values()) or 1.0
    best: dict[str, tuple[float, float, Hit, str]] = {}  # doc_id -> (pick, match, hit, sentence)
    for hit in hits:
        for (s, e), similarity in zip(hit.sentences, hit.sentence_scores):
            text = hit.text[s:e]
            share = sum(weight[t] for t in wanted & _terms(text)) / total
            similarity = max(0.0, similarity)
            pick = PICK_SIMILARITY_WEIGHT * similarity + (1 - PICK_SIMILARITY_WEIGHT) * share
            if hit.doc_id not in best or pick > best[hit.doc_id][0]:
                match = MATCH_SIMILARITY_WEIGHT * similarity + (1 - MATCH_SIMILARITY_WEIGHT) * share
                best[hit.doc_id] = (pick, match, hit, text)
    found = [_Candidate(hit, text, match) for _, match, hit, text in best.values()]
    return sorted(found, key=lambda c: c.hit.fused, reverse=True)


@lru_cache(maxsize=100_000)
def _terms(text: str) -> frozenset[str]:
    return frozenset(terms(text))


def _plain(text: str) -> str:
    return " ".join(text.split()).lower()


def _choice(c: _Candidate, shown: bool, why: str) -> RelatedChoice:
    return RelatedChoice(c.hit.id, c.hit.doc_id, c.hit.title, round(c.hit.fused, 5), round(c.match, 4), shown, why)
