"""Related passages: beneath every answer, where else in the articles the answer may be.

The composer chooses one to three sentences, and on questions nobody tuned it on it often chooses the wrong ones
although retrieval found the right passage. So every reply also shows up to RELATED_MAX passages of the same
retrieval from articles the answer does not cite, each by one sentence of it; an abstention shows them too, so a
miss still points somewhere. Nothing here changes the answer itself.

- One passage per article: the one holding the article's best sentence for the question. A sentence is rated the
  way the composer rates it (bot/answer.py `rank`: similarity, the question's terms, whether it holds the kind of
  answer asked for, what it adds beyond the question) blended with its plain match to the question
  and with how much closer to the question it is than the rest of its passage (PICK_ANSWER_WEIGHT,
  PICK_SIMILARITY_WEIGHT, PICK_DISTINCT_WEIGHT): an article's lead restates the topic, the sentence that answers
  is often the next one.
- The RELATED_MAX articles whose sentences rate best are shown, ranked by the retrieval's fused score of their
  passages (reciprocal rank fusion of the dense and BM25 ranks).
- None from a cited article or from a syndicated copy of one (the same story under another URL: the citation's
  alternates), and none whose sentence repeats one already on screen.
- A passage "far below the answer's evidence" is not shown: its sentence must match the question at least
  FAR_BELOW times as well as the answer's own evidence does (the match being the composer's evidence measure: the
  mean of the sentence's similarity to the question and its share of the question's terms). For an abstention the
  reference is the best related sentence's match.
- An off-topic question ("what's the capital of Australia?") gets none: when no retrieved sentence matches it as
  well as OFF_TOPIC_MATCH, nothing retrieved is related to it.

The PICK_ weights, FAR_BELOW and OFF_TOPIC_MATCH were chosen on the dev split of
tests/eval (see its README and bench/related.py); `dealbot eval --calibrate` recomputes OFF_TOPIC_MATCH.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Sequence

from .answer import Candidate, rank
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
# Which sentence of an article is shown: the best blend of the composer's score (relative to the best sentence's)
# and a weighted sum of the same two (similarity, question terms), plus how much closer to the question the
# sentence is than its passage's sentences on average. Sentence vectors are read in their passage's context, so
# every sentence of a passage about the topic is similar to the question; what sets one apart is the difference.
PICK_ANSWER_WEIGHT = 0.4
PICK_SIMILARITY_WEIGHT = 0.3
PICK_DISTINCT_WEIGHT = 0.4


@dataclasses.dataclass(frozen=True)
class _Candidate:
    hit: Hit
    sentence: str
    match: float
    pick: float = 0.0  # how the sentence rates for the question; the best RELATED_MAX articles are shown


def with_related(
    reading: Reading, answer: Answer, hits: Sequence[Hit], stats: CorpusStats, explain: bool = False,
    ranked: Sequence[Candidate] = (),
) -> Answer:
    """`answer` with its related passages (and, with `explain`, why each retrieved article's was shown or not).
    `ranked`: the composer's ranking of the sentences of `hits`, when it has one (else it is computed here)."""
    related, choices = choose(reading, answer, hits, stats, ranked)
    return dataclasses.replace(answer, related=related, related_choices=choices if explain else ())


def choose(
    reading: Reading, answer: Answer, hits: Sequence[Hit], stats: CorpusStats, ranked: Sequence[Candidate] = ()
) -> tuple[tuple[Related, ...], tuple[RelatedChoice, ...]]:
    """The related passages for `answer`, in fused order, and a choice (shown or why not) for every retrieved
    article, best rated first."""
    candidates, topical = _rated(reading, hits, stats, ranked)
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
        choices.append(_choice(c, not why, why or f"shown: its sentence matches {c.match:.3f}, rated {c.pick:.3f}"))
    return tuple(sorted(shown, key=lambda r: r.score, reverse=True)), tuple(choices)


def question_topicality(reading: Reading, hits: Sequence[Hit], stats: CorpusStats) -> float:
    """How related the question is to anything retrieved: the best match of any retrieved sentence (0 for none).
    The off-topic cut applies to it (and its calibration reads it)."""
    return _rated(reading, hits, stats)[1]


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


def _rated(
    reading: Reading, hits: Sequence[Hit], stats: CorpusStats, ranked: Sequence[Candidate] = ()
) -> tuple[list[_Candidate], float]:
    """For each article retrieved, its best-rated sentence for the question and the passage it is in, best rated
    first; and the best match of any retrieved sentence (how related the question is to what was retrieved)."""
    weight = {t: stats.idf(t) for t in reading.terms}
    wanted = weight.keys()
    total = sum(weight.values()) or 1.0
    ranked = ranked or rank(reading, list(hits), stats)
    top = (ranked[0].score if ranked else 0.0) or 1.0  # `rank` gives the best first
    usual = {h.id: sum(h.sentence_scores) / len(h.sentence_scores) for h in hits if h.sentence_scores}
    best: dict[str, _Candidate] = {}
    topical = 0.0
    for c in ranked:
        share = sum(weight[t] for t in wanted & _terms(c.text)) / total
        similarity = c.signals["sentence"]
        match = MATCH_SIMILARITY_WEIGHT * similarity + (1 - MATCH_SIMILARITY_WEIGHT) * share
        plain = PICK_SIMILARITY_WEIGHT * similarity + (1 - PICK_SIMILARITY_WEIGHT) * share
        distinct = similarity - usual.get(c.hit.id, similarity)
        pick = PICK_ANSWER_WEIGHT * c.score / top + (1 - PICK_ANSWER_WEIGHT) * plain + PICK_DISTINCT_WEIGHT * distinct
        topical = max(topical, match)
        if c.hit.doc_id not in best or pick > best[c.hit.doc_id].pick:
            best[c.hit.doc_id] = _Candidate(c.hit, c.text, match, pick)
    return sorted(best.values(), key=lambda c: c.pick, reverse=True), topical


@lru_cache(maxsize=100_000)
def _terms(text: str) -> frozenset[str]:
    return frozenset(terms(text))


def _plain(text: str) -> str:
    return " ".join(text.split()).lower()


def _choice(c: _Candidate, shown: bool, why: str) -> RelatedChoice:
    return RelatedChoice(c.hit.id, c.hit.doc_id, c.hit.title, round(c.hit.fused, 5), round(c.match, 4), shown, why)
