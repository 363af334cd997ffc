"""The extractive answer: choose the sentences of the retrieved passages that answer the question, and cite them.

Each candidate sentence gets one score, a weighted sum of signals that each lie in 0..1:

- dense:    cosine similarity of the question to the passage the sentence is in (weight 0 for now: it chose the
            passages, and within them it cannot tell sentences apart; kept for tuning);
- sentence: cosine similarity of the question to the sentence itself, read in its passage's context;
- lexical:  the share of the question's terms (weighted by rarity in the corpus) the sentence contains;
- phrase:   the share of the question's word pairs found in the sentence as they stand ("since the London meeting");
- shape:    whether the sentence holds the kind of answer asked for (a date for "when", a name for "who", ...);
- lead:     whether the sentence opens its article, where news reports say what the story is about;
- previous: the lexical share of the sentence before it, for quotations whose attribution precedes them;
- fused:    the passage's hybrid retrieval score (reciprocal rank fusion of dense and BM25 ranks), relative to the
            best passage's: evidence about the passage as a whole, title included;
- title:    the share of the question's terms (weighted by rarity) in the title of the sentence's article: a
            headline says which event the article is about ("after Geneva talks");
- novel:    the share of the sentence's terms that are not the question's: a sentence that only repeats the
            question's words is weak evidence of an answer;
- agree:    whether the figure or date the sentence gives also appears in another article (sources agreeing);
- recent:   for questions about now ("current", "latest", "now"), how recent the sentence's article is among the
            retrieved ones (1 for the newest): the news changes, and the newest report wins.

The weights were tuned by a random local search on the dev split of the question sets (tests/eval); phrase,
lead, previous and title came out at 0 there and are kept (and shown by --explain) for tuning on other corpora.
The best sentence that holds the kind of answer asked for leads the answer (for a summary, the lead of the article
whose headline and passage match best, and the sentence after it). The evidence of the sentences scoring within
TIE_RATIO of it (their similarity to the question and their share of the question's terms, those no article contains
counted against them; the best of them counts) is what the calibrated threshold applies to. The composer abstains
instead of guessing when the evidence is below the calibrated threshold (retrieval.min_score), when no sentence has
the shape of the answer asked for, when the question names something no article mentions, or when most of what it
asks about appears in no article.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache

from .retrieve import CorpusStats
from .text import STOPWORDS, SUMMARY, Expectation, about_terms, alternatives, expectation, name_pattern, named_entities, question_terms, stem, terms, words
from .types import Answer, Citation, Considered, Hit, Sentence

WEIGHTS = {
    "dense": 0.0, "sentence": 0.45, "lexical": 0.3, "phrase": 0.0, "shape": 0.2, "lead": 0.0, "previous": 0.0,
    "fused": 0.05, "title": 0.0, "novel": 0.35, "agree": 0.05, "recent": 0.1,
}
EVIDENCE_WEIGHT = 0.5
MAX_SENTENCES = 3
MAX_CHARS = 600
# Further sentences join the best one only when they score nearly as well and add something it lacks.
FOLLOW_RATIO = 0.85
# A summary's two sentences stay within this length; a long quotation is no summary.
SUMMARY_CHARS = 450
# Shaped sentences within this ratio of the best score count as tied with it: the best evidence among them counts.
TIE_RATIO = 0.95
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
    covers: bool = True  # its article mentions every name and topic the question is about

    @property
    def score(self) -> float:
        return sum(WEIGHTS[k] * v for k, v in self.signals.items())

    @property
    def evidence(self) -> float:
        """How well the sentence matches the question, for the abstention threshold: the mean of its similarity
        to the question and the share of the question's terms it contains, counting terms no article has. The
        preferences among sentences that match (novel, recent, fused, ...) rank; they do not make an answer."""
        return EVIDENCE_WEIGHT * self.signals["sentence"] + (1 - EVIDENCE_WEIGHT) * self.lexical_all


def compose(question: str, hits: list[Hit], stats: CorpusStats, min_score: float, explain: bool = False) -> Answer:
    """An Answer of 1-3 cited sentences from `hits`, or an abstention when the evidence is weak. With `explain`,
    the Answer also lists the best candidate sentences with their signals and why each was chosen or not."""
    answer, candidates, chosen = _compose(question, hits, stats, min_score)
    if not explain:
        return answer
    return dataclasses.replace(answer, considered=_considered(answer, candidates, chosen))


def _compose(question: str, hits: list[Hit], stats: CorpusStats, min_score: float):
    if reason := uncovered(question, hits, stats):
        return Answer(question, False, hits=tuple(hits), reason=reason), [], []
    expects = expectation(question)
    if expects.venue and len({n.lower() for n in named_entities(question)} & stats.venues) > 1:
        # "at both the Geneva and the London rounds": no one venue tells the talks asked about apart
        expects = dataclasses.replace(expects, venue="")
    candidates = rank(question, hits, expects, stats)
    if not candidates:
        return Answer(question, False, hits=tuple(hits), reason="nothing retrieved"), [], []
    # The answer is led by the best sentence that holds the kind of answer asked for; when none does, the articles
    # do not say.
    shaped = [c for c in candidates if c.signals["shape"]]
    if not shaped:
        wanted = "statement by " + "/".join(sorted(expects.speaker)) if expects.speaker else f"{expects.kind}"
        reason = f"no sentence gives a {wanted}"
        if expects.roles:
            reason += f" (naming the role {'/'.join(sorted(expects.roles))})"
        return Answer(question, False, hits=tuple(hits), evidence=candidates[0].evidence, reason=reason), candidates, []
    # Sentences scoring within TIE_RATIO of the best are as good as it: the best evidence among them is the answer's.
    best = shaped[0]
    evidence = max(c.evidence for c in shaped if c.score >= TIE_RATIO * shaped[0].score)
    if expects.kind == SUMMARY:
        # "What is the deal mainly about?" is answered by the lead of the article it is about, and a lead need not
        # repeat the question's words: the article's headline and its passage's similarity to the question count.
        best = max(shaped, key=lambda c: (c.signals["title"] + c.signals["dense"], c.score))
        known = stats.known_share(expects.question_terms)
        evidence = max(evidence, EVIDENCE_WEIGHT * best.signals["dense"] + (1 - EVIDENCE_WEIGHT) * best.signals["title"] * known)
    if evidence < min_score:
        reason = f"evidence {evidence:.3f} below threshold {min_score}"
        return Answer(question, False, hits=tuple(hits), evidence=evidence, reason=reason), candidates, []
    chosen = _choose(candidates[candidates.index(best):], expects)
    if expects.kind == SUMMARY:
        # A summary is the story's first two sentences: a lead often sets the scene ("Trump and Xi met in Busan")
        # and the next one says what came of it.
        second = next((c for c in candidates if _follows(c, best)), None)
        if second and second not in chosen and not second.text.startswith(_OPENS_QUOTE) and (
            len(best.text) + len(second.text) <= SUMMARY_CHARS
        ):
            chosen = [best, second]
    return _cite(question, chosen, hits, evidence), candidates, chosen


def uncovered(question: str, hits: list[Hit], stats: CorpusStats) -> str:
    """Why no article can answer the question whatever its passages say ("" when one might): it names something
    no article mentions, most of what it asks about is in no article, or nothing was retrieved. The LLM composer
    is not asked such questions either."""
    missing = [n for n in named_entities(question) if not stats.mentions(n)]
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
    q_stems = frozenset(terms(question))
    top_fused = max((h.fused for h in hits), default=0.0) or 1.0
    recency = _recency(hits) if expects.present else {}
    # Figures and dates each article gives, for agreement between sources.
    figures_by_doc: dict[str, set[str]] = {}
    for hit in hits:
        for s, e in hit.sentences:  # only figures said about what the question asks about
            if set(_analyse(hit.text[s:e])[0]) & set(weight):
                figures_by_doc.setdefault(hit.doc_id, set()).update(_figures(hit.text[s:e]))
    # An article that does not mention every name the question is about cannot answer it ("the EU" and an article
    # about the U.S. deal): its sentences do not have the answer's shape.
    own = re.sub(r" \([^()]*\)$", "", question)  # a follow-up's context in brackets names earlier things too
    names = [n for n in named_entities(own) if n.isupper() or n.lower() not in STOPWORDS]
    # "Which was lower, the rate after Geneva or the one after Busan?": an article may answer for either one.
    either = set(alternatives(own)) & set(names)
    names = [n for n in names if n not in either]
    # Nor can one that never mentions what the question says it is about ("what did the Commission say about
    # rare earths?" and an article on car duties).
    topic = about_terms(own)
    covers = {
        d: all(name_pattern(n).search(stats.documents.get(d, "")) for n in names)
        and (not either or any(name_pattern(n).search(stats.documents.get(d, "")) for n in either))
        and all(t in stats.document_terms.get(d, frozenset()) or _alias_in(t, stats.documents.get(d, "")) for t in topic)
        for d in {h.doc_id for h in hits}
    } if stats.documents else {}
    others_by_doc: dict[str, set[str]] = {}
    titled = {h.doc_id: sum(w for t, w in weight.items() if t in _analyse(h.title)[0]) / total for h in hits}
    seen: dict[tuple[str, int], Candidate] = {}
    for hit in hits:
        previous, before = 0.0, ""
        for (s, e), sentence_score in zip(hit.sentences, hit.sentence_scores):
            text = hit.text[s:e]
            sentence_terms, sentence_pairs = _analyse(text)
            lexical = sum(w for t, w in weight.items() if t in sentence_terms) / total
            key = (hit.doc_id, hit.start + s)
            if key not in seen or seen[key].hit.score < hit.score:
                lead = hit.start + s == 0
                figures = _figures(text)
                if figures and hit.doc_id not in others_by_doc:
                    others_by_doc[hit.doc_id] = set().union(*(f for d, f in figures_by_doc.items() if d != hit.doc_id))
                others = others_by_doc.get(hit.doc_id, set()) if figures else set()
                signals = {
                    "dense": max(0.0, hit.score),
                    "sentence": max(0.0, sentence_score),
                    "lexical": lexical,
                    "phrase": len(q_pairs & sentence_pairs) / len(q_pairs) if q_pairs else 0.0,
                    "shape": 1.0 if covers.get(hit.doc_id, True) and expects.met_by(text, sentence_terms, lead, before) else 0.0,
                    "lead": 1.0 if lead else 0.0,
                    "previous": previous,
                    "fused": hit.fused / top_fused,
                    "title": titled[hit.doc_id],
                    "novel": len(sentence_terms - q_stems) / len(sentence_terms) if sentence_terms else 0.0,
                    "agree": 1.0 if figures & others else 0.0,
                    "recent": recency.get(hit.published, 0.0),
                }
                seen[key] = Candidate(
                    hit, text, hit.start + s, hit.start + e, sentence_terms, signals, lexical * known_share,
                    covers.get(hit.doc_id, True),
                )
            previous, before = lexical, text
    return sorted(seen.values(), key=lambda c: c.score, reverse=True)


# For "now" questions: an article a month older than the newest retrieved one counts half as recent.
RECENCY_HALF_LIFE_DAYS = 30


def _alias_in(term: str, text: str) -> bool:
    """Whether `term` is a name one of whose aliases `text` has ("washington" and "the United States")."""
    return name_pattern(term).pattern.count("|") > 0 and bool(name_pattern(term).search(text))


def _recency(hits: list[Hit]) -> dict[str, float]:
    from datetime import date

    dates = {h.published for h in hits if h.published}
    if not dates:
        return {}
    newest = date.fromisoformat(max(dates))
    return {d: 0.5 ** ((newest - date.fromisoformat(d)).days / RECENCY_HALF_LIFE_DAYS) for d in dates}


# Figures worth agreeing on: percentages, sums of money, and dates (a bare "10" agrees with everything).
_FIGURE = re.compile(
    r"\b\d+(?:[.,]\d+)*\s*(?:percent|per cent|%)|[$€£¥]\s?\d+(?:[.,]\d+)*(?:\s*(?:million|billion|trillion))?|"
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\s+\d{1,2}\b"
)


@lru_cache(maxsize=100_000)
def _figures(text: str) -> frozenset[str]:
    """The figures in a text, normalised ("47 percent" and "47%" alike)."""
    return frozenset(re.sub(r"\s*(percent|per cent|%)", "%", m[0]) for m in _FIGURE.finditer(text))


def _pairs(text: str) -> frozenset[tuple[str, str]]:
    """Adjacent word pairs (stemmed), skipping pairs of two stop words."""
    ws = [w.lower() for w in words(text)]
    return frozenset((stem(a), stem(b)) for a, b in zip(ws, ws[1:]) if not (a in STOPWORDS and b in STOPWORDS))


@lru_cache(maxsize=100_000)
def _analyse(sentence: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """A sentence's terms and word pairs; sentences recur across questions, so this is computed once each."""
    return frozenset(terms(sentence)), _pairs(sentence)


def _choose(candidates: list[Candidate], expects: Expectation) -> list[Candidate]:
    """The best sentence, and up to two more that score nearly as well and either cover question terms the
    chosen ones miss or continue one of them (a quotation after its attribution)."""
    q_terms = expects.question_terms
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
        if normalized in texts or not (adds or continues) or not c.covers or length + len(c.text) > MAX_CHARS:
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
    if expects.change:  # how something developed: oldest report first
        return sorted(chosen, key=lambda c: (c.hit.published or "", c.hit.doc_id, c.start))
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
    citations = tuple(Citation.of(n, first_hit[doc_id], quotes[doc_id]) for doc_id, n in numbers.items())
    return Answer(question, True, tuple(sentences), citations, tuple(hits), evidence)


EXPLAIN_SENTENCES = 8


def _considered(answer: Answer, candidates: list[Candidate], chosen: list[Candidate]) -> tuple[Considered, ...]:
    """The best candidate sentences, with their signals and why each was chosen or not."""
    if not candidates:
        return ()
    best = candidates[0]
    picked = {(c.hit.doc_id, c.start) for c in chosen}
    out = []
    for i, c in enumerate(candidates[:EXPLAIN_SENTENCES]):
        if (c.hit.doc_id, c.start) in picked:
            why = "chosen: best score" if i == 0 else "chosen: scores nearly as well and adds to the answer"
        elif not answer.answered:
            why = f"not used: abstained ({answer.reason})"
        elif c.score < FOLLOW_RATIO * best.score:
            why = f"not used: below {FOLLOW_RATIO:.0%} of the best score"
        elif not c.covers:
            why = "not used: its article does not mention everything the question names"
        elif not c.signals["shape"]:
            why = "not used: does not give the kind of answer asked for"
        elif len(chosen) >= MAX_SENTENCES or sum(len(x.text) for x in chosen) + len(c.text) > MAX_CHARS:
            why = f"not used: the answer is full ({MAX_SENTENCES} sentences or {MAX_CHARS} characters)"
        else:
            why = "not used: adds no question term the chosen sentences lack, nor continues one"
        out.append(Considered(c.text, c.hit.doc_id, c.hit.id, round(c.score, 4), {k: round(v, 3) for k, v in c.signals.items()}, why))
    return tuple(out)
