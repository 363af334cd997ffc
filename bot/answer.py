"""The extractive answer: choose the sentences of the retrieved passages that answer the question, and cite them.

Each candidate sentence gets one score, a weighted sum of signals that each lie in 0..1:

- dense:    cosine similarity of the question to the passage the sentence is in (weight 0 for now: it chose the
            passages, and within them it cannot tell sentences apart; kept for tuning);
- sentence: cosine similarity of the question to the sentence itself, read in its passage's context;
- lexical:  the share of the question's terms (weighted by rarity in the corpus) the sentence contains;
- phrase:   the share of the question's word pairs found in the sentence as they stand ("since the London meeting");
- shape:    whether the sentence holds the kind of answer asked for (a date for "when", a name for "who", ...);
- lead:     whether the sentence opens its article, where news reports say what the story is about;
- previous: the lexical share of the sentence before it, for quotations whose attribution precedes them.

The weights were tuned by hand and grid search on the dev split of the question set. The best sentence's score,
with the question's terms that no article contains counted against it, is the evidence. The composer abstains
instead of guessing when the evidence is below the calibrated threshold (retrieval.min_score), when no sentence has
the shape of the answer asked for, when the question names something no article mentions, or when most of what it
asks about appears in no article.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .retrieve import CorpusStats
from .text import STOPWORDS, Expectation, expectation, named_entities, question_terms, stem, terms, words
from .types import Answer, Citation, Hit, Sentence

WEIGHTS = {"dense": 0.0, "sentence": 0.25, "lexical": 0.3, "phrase": 0.1, "shape": 0.2, "lead": 0.05, "previous": 0.1}
MAX_SENTENCES = 3
MAX_CHARS = 600
# Further sentences join the best one only when they score nearly as well and add something it lacks.
FOLLOW_RATIO = 0.85
_OPENS_QUOTE = ("“", '"')
# Below this share of the question's (rarity-weighted) terms known to the corpus, the question is about something
# the articles do not cover ("how did the stock market react?"), whatever sentence happens to score well.
MIN_KNOWN_SHARE = 0.25


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    text: str
    start: int  # offsets in the article; `start` identifies the sentence across overlapping passages
    end: int
    terms: frozenset[str]
    signals: dict[str, float]
    lexical_all: float  # the lexical share counting every question term, known to the corpus or not

    @property
    def score(self) -> float:
        return sum(WEIGHTS[k] * v for k, v in self.signals.items())

    @property
    def evidence(self) -> float:
        return self.score - WEIGHTS["lexical"] * (self.signals["lexical"] - self.lexical_all)


def compose(question: str, hits: list[Hit], stats: CorpusStats, min_score: float) -> Answer:
    """An Answer of 1-3 cited sentences from `hits`, or an abstention when the evidence is weak."""
    if reason := uncovered(question, hits, stats):
        return Answer(question, False, hits=tuple(hits), reason=reason)
    expects = expectation(question)
    candidates = rank(question, hits, expects, stats)
    if not candidates:
        return Answer(question, False, hits=tuple(hits), reason="nothing retrieved")
    best = candidates[0]
    if best.evidence < min_score:
        return Answer(question, False, hits=tuple(hits), evidence=best.evidence, reason="evidence below threshold")
    if not best.signals["shape"]:
        return Answer(question, False, hits=tuple(hits), evidence=best.evidence, reason=f"no sentence gives a {expects.kind}")
    chosen = _choose(candidates, expects.question_terms)
    return _cite(question, chosen, hits, best.evidence)


def uncovered(question: str, hits: list[Hit], stats: CorpusStats) -> str:
    """Why no article can answer the question whatever its passages say ("" when one might): it names something
    no article mentions, most of what it asks about is in no article, or nothing was retrieved. The LLM composer
    is not asked such questions either."""
    missing = [n for n in named_entities(question) if n.lower() not in stats.vocabulary]
    if missing:
        return f"no article mentions {', '.join(missing)}"
    if stats.known_share(expectation(question).question_terms) < MIN_KNOWN_SHARE:
        return "most of what the question asks about is in no article"
    if not hits:
        return "nothing retrieved"
    return ""


def rank(question: str, hits: list[Hit], expects: Expectation, stats: CorpusStats) -> list[Candidate]:
    """Every sentence of `hits` once, best first."""
    # Terms no article contains cannot tell sentences apart, so they are left out of the lexical share that ranks
    # sentences; but they do count against the evidence: a question mostly about unknown things is not answered.
    q_terms = question_terms(question)
    weight = {t: stats.idf(t) for t in q_terms if t in stats.df}
    total = sum(weight.values()) or 1.0
    known_share = stats.known_share(q_terms)
    q_pairs = _pairs(question)
    seen: dict[tuple[str, int], Candidate] = {}
    for hit in hits:
        previous = 0.0
        for (s, e), sentence_score in zip(hit.sentences, hit.sentence_scores):
            text = hit.text[s:e]
            sentence_terms, sentence_pairs = _analyse(text)
            lexical = sum(w for t, w in weight.items() if t in sentence_terms) / total
            key = (hit.doc_id, hit.start + s)
            if key not in seen or seen[key].hit.score < hit.score:
                lead = hit.start + s == 0
                signals = {
                    "dense": max(0.0, hit.score),
                    "sentence": max(0.0, sentence_score),
                    "lexical": lexical,
                    "phrase": len(q_pairs & sentence_pairs) / len(q_pairs) if q_pairs else 0.0,
                    "shape": 1.0 if expects.met_by(text, sentence_terms, lead) else 0.0,
                    "lead": 1.0 if lead else 0.0,
                    "previous": previous,
                }
                seen[key] = Candidate(
                    hit, text, hit.start + s, hit.start + e, sentence_terms, signals, lexical * known_share
                )
            previous = lexical
    return sorted(seen.values(), key=lambda c: c.score, reverse=True)


def _pairs(text: str) -> frozenset[tuple[str, str]]:
    """Adjacent word pairs (stemmed), skipping pairs of two stop words."""
    ws = [w.lower() for w in words(text)]
    return frozenset((stem(a), stem(b)) for a, b in zip(ws, ws[1:]) if not (a in STOPWORDS and b in STOPWORDS))


@lru_cache(maxsize=100_000)
def _analyse(sentence: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """A sentence's terms and word pairs; sentences recur across questions, so this is computed once each."""
    return frozenset(terms(sentence)), _pairs(sentence)


def _choose(candidates: list[Candidate], q_terms: frozenset[str]) -> list[Candidate]:
    """The best sentence, and up to two more that score nearly as well and either cover question terms the
    chosen ones miss or continue one of them (a quotation after its attribution)."""
    best = candidates[0]
    chosen = [best]
    covered = set(best.terms & q_terms)
    length = len(best.text)
    texts = {" ".join(best.text.split()).lower()}
    for c in candidates[1:]:
        if len(chosen) >= MAX_SENTENCES or c.score < FOLLOW_RATIO * best.score:
            break
        normalized = " ".join(c.text.split()).lower()
        adds = (c.terms & q_terms) - covered
        continues = any(_follows(c, o) for o in chosen)
        if normalized in texts or not (adds or continues) or length + len(c.text) > MAX_CHARS:
            continue
        chosen.append(c)
        covered |= adds
        texts.add(normalized)
        length += len(c.text)
    # What a chosen sentence announces ("the spokesperson said in a statement ...") is often the quotation after it.
    for o in list(chosen):
        quote = next((c for c in candidates if _follows(c, o) and c.text.startswith(_OPENS_QUOTE)), None)
        if quote and quote not in chosen and len(chosen) < MAX_SENTENCES and length + len(quote.text) <= MAX_CHARS:
            chosen.append(quote)
            length += len(quote.text)
    # Read in article order within each article, best article first.
    order = {c.hit.doc_id: i for i, c in reversed(list(enumerate(chosen)))}
    return sorted(chosen, key=lambda c: (order[c.hit.doc_id], c.start))


def _follows(c: Candidate, other: Candidate) -> bool:
    return c.hit.doc_id == other.hit.doc_id and 0 <= c.start - other.end <= 3


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
