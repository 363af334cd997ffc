"""The extractive answer: choose the sentences of the retrieved passages that answer the question, and cite them.

Each candidate sentence gets one score, a weighted sum of signals that each lie in 0..1 (WEIGHTS, tuned on the dev
split of tests/eval); one of them, `shape`, says whether the sentence holds the kind of answer asked for (the checks
of `fits`). The best sentence with that shape leads the answer (for a summary, the lead of the article whose headline
and passage match best, and the sentence after it); the evidence of the sentences scoring within TIE_RATIO of it is
what the calibrated threshold (retrieval.min_score) applies to. The composer abstains instead of guessing when that
evidence is below the threshold, when no sentence has the shape asked for, when the question names something no
article mentions, or when most of what it asks about appears in no article. docs/composer.md names every signal and
check, with what each is worth on the dev split.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from .dates import DAYS, MONTH_PATTERN, MONTHS
from .question import DURATION, NUMBER, ORGANISATION, PERSON, PLACE, SUMMARY, Reading
from .retrieve import CorpusStats
from .text import QUOTED, STOPWORDS, Lexicon, on, stem, terms, words
from .types import Answer, Citations, Considered, Hit, Sentence

WEIGHTS = {"sentence": 0.45, "lexical": 0.3, "shape": 0.2, "fused": 0.05, "novel": 0.35, "agree": 0.05, "recent": 0.1}
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
# For "now" questions: an article a month older than the newest retrieved one counts half as recent.
RECENCY_HALF_LIFE_DAYS = 30
EXPLAIN_SENTENCES = 8


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


def compose(reading: Reading, hits: list[Hit], stats: CorpusStats, min_score: float, explain: bool = False) -> Answer:
    """An Answer of 1-3 cited sentences from `hits`, or an abstention when the evidence is weak. With `explain`,
    the Answer also lists the best candidate sentences with their signals and why each was chosen or not."""
    return compose_ranked(reading, hits, stats, min_score, explain)[0]


def compose_ranked(
    reading: Reading, hits: list[Hit], stats: CorpusStats, min_score: float, explain: bool = False
) -> tuple[Answer, list[Candidate]]:
    """`compose`, and the ranking of every sentence it was chosen from (`rank`; empty when the question was not
    ranked at all), for the related passages to reuse."""
    answer, candidates, chosen = _compose(reading, hits, stats, min_score)
    if explain:
        answer = dataclasses.replace(answer, considered=_considered(answer, candidates, chosen))
    return answer, candidates


def _compose(reading: Reading, hits: list[Hit], stats: CorpusStats, min_score: float):
    if reason := uncovered(reading, hits, stats):
        return _abstain(reading, hits, reason), [], []
    expects = reading.expects
    candidates = rank(reading, hits, stats)
    if not candidates:
        return _abstain(reading, hits, "nothing retrieved"), [], []
    # The answer is led by the best sentence that holds the kind of answer asked for; when none does, the articles
    # do not say.
    shaped = [c for c in candidates if c.signals["shape"]]
    if not shaped:
        wanted = "statement by " + "/".join(sorted(expects.speaker)) if expects.speaker else f"{expects.kind}"
        reason = f"no sentence gives a {wanted}"
        if expects.roles:
            reason += f" (naming the role {'/'.join(sorted(expects.roles))})"
        return _abstain(reading, hits, reason, candidates[0].evidence), candidates, []
    # Sentences scoring within TIE_RATIO of the best are as good as it: the best evidence among them is the answer's.
    best = shaped[0]
    evidence = max(c.evidence for c in shaped if c.score >= TIE_RATIO * best.score) if on("tie") else best.evidence
    if expects.kind == SUMMARY:
        # "What is the deal mainly about?" is answered by the lead of the article it is about, and a lead need not
        # repeat the question's words: the article's headline and its passage's similarity to the question count.
        headline = _headline_match(reading, hits, stats)
        if on("summary_pick"):
            best = max(shaped, key=lambda c: (headline[c.hit.doc_id] + max(0.0, c.hit.score), c.score))
        if on("summary_evidence"):
            matched = headline[best.hit.doc_id] * stats.known_share(reading.terms)
            evidence = max(evidence, EVIDENCE_WEIGHT * max(0.0, best.hit.score) + (1 - EVIDENCE_WEIGHT) * matched)
    if evidence < min_score:
        return _abstain(reading, hits, f"evidence {evidence:.3f} below threshold {min_score}", evidence), candidates, []
    chosen = _choose(candidates[candidates.index(best):], reading.terms)
    if expects.kind == SUMMARY and on("summary_second"):
        # A summary is the story's first two sentences: a lead often sets the scene ("Trump and Xi met in Busan")
        # and the next one says what came of it.
        second = next((c for c in candidates if _follows(c, best)), None)
        if second and second not in chosen and not second.text.startswith(_OPENS_QUOTE) and (
            len(best.text) + len(second.text) <= SUMMARY_CHARS
        ):
            chosen = [best, second]
    cited = Citations()
    sentences = tuple(Sentence(c.text, cited.cite(c.hit, c.text)) for c in chosen)
    return Answer(reading.asked, True, sentences, cited.all(), tuple(hits), evidence), candidates, chosen


def _abstain(reading: Reading, hits: list[Hit], reason: str, evidence: float = 0.0) -> Answer:
    return Answer(reading.asked, False, hits=tuple(hits), evidence=evidence, reason=reason)


def uncovered(reading: Reading, hits: list[Hit], stats: CorpusStats) -> str:
    """Why no article can answer the question whatever its passages say ("" when one might): it names something
    no article mentions, most of what it asks about is in no article, or nothing was retrieved. The LLM composer
    is not asked such questions either."""
    missing = [n for n in reading.names if not _mentioned(n, stats, reading.lexicon)] if on("unknown_name") else []
    if missing:
        return f"no article mentions {', '.join(missing)}"
    if on("known_share") and stats.known_share(reading.terms) < MIN_KNOWN_SHARE:
        return "most of what the question asks about is in no article"
    if not hits:
        return "nothing retrieved"
    return ""


def rank(reading: Reading, hits: list[Hit], stats: CorpusStats) -> list[Candidate]:
    """Every sentence of `hits` once, best first."""
    # Terms no article contains cannot tell sentences apart, so they are left out of the lexical share that ranks
    # sentences; but they do count against the evidence: a question mostly about unknown things is not answered.
    weight = {t: stats.idf(t) for t in reading.terms if t in stats.df}
    total = sum(weight.values()) or 1.0
    known_share = stats.known_share(reading.terms)
    top_fused = max((h.fused for h in hits), default=0.0) or 1.0
    recency = _recency(hits) if reading.expects.present else {}
    # Figures and dates each article gives, about what the question asks about, for agreement between sources.
    figures_by_doc: dict[str, set[str]] = {}
    for hit in hits:
        for s, e in hit.sentences:
            if _terms(hit.text[s:e]) & weight.keys():
                figures_by_doc.setdefault(hit.doc_id, set()).update(_figures(hit.text[s:e]))
    covers = _covers(reading, hits, stats)
    others_by_doc: dict[str, set[str]] = {}
    seen: dict[tuple[str, int], Candidate] = {}
    for hit in hits:
        before = ""
        for (s, e), sentence_score in zip(hit.sentences, hit.sentence_scores):
            text = hit.text[s:e]
            sentence_terms = _terms(text)
            lexical = sum(w for t, w in weight.items() if t in sentence_terms) / total
            key = (hit.doc_id, hit.start + s)
            if key not in seen or seen[key].hit.score < hit.score:
                figures = _figures(text)
                if figures and hit.doc_id not in others_by_doc:
                    others_by_doc[hit.doc_id] = set().union(*(f for d, f in figures_by_doc.items() if d != hit.doc_id))
                covered = covers.get(hit.doc_id, True)
                signals = {
                    "sentence": max(0.0, sentence_score),
                    "lexical": lexical,
                    "shape": 1.0 if covered and fits(reading, text, sentence_terms, hit.start + s == 0, before) else 0.0,
                    "fused": hit.fused / top_fused,
                    "novel": len(sentence_terms - reading.stems) / len(sentence_terms) if sentence_terms else 0.0,
                    "agree": 1.0 if figures & others_by_doc.get(hit.doc_id, set()) else 0.0,
                    "recent": recency.get(hit.published, 0.0),
                }
                seen[key] = Candidate(
                    hit, text, hit.start + s, hit.start + e, sentence_terms, signals, lexical * known_share, covered
                )
            before = text
    return sorted(seen.values(), key=lambda c: c.score, reverse=True)


def _covers(reading: Reading, hits: list[Hit], stats: CorpusStats) -> dict[str, bool]:
    """Whether each retrieved article mentions every name the question is about ("the EU" and an article about the
    U.S. deal: its sentences do not have the answer's shape), one of the names it offers as alternatives ("the rate
    after Geneva or the one after Busan?": an article may answer for either) and what it says it is about ("what
    did the Commission say about rare earths?" and an article on car duties)."""
    if not stats.documents:
        return {}
    lex = reading.lexicon
    names = [n for n in reading.names if n.isupper() or n.lower() not in STOPWORDS] if on("covers_names") else []
    either = set(reading.alternatives) & set(names) if on("alternatives") else set()
    names = [n for n in names if n not in either]
    topic = reading.topic if on("covers_topic") else frozenset()

    def covered(doc: str) -> bool:
        text, doc_terms = stats.documents.get(doc, ""), stats.document_terms.get(doc, frozenset())
        return (
            all(lex.name_pattern(n).search(text) for n in names)
            and (not either or any(lex.name_pattern(n).search(text) for n in either))
            and all(t in doc_terms or (on("alias_topic") and _alias_in(t, text, lex)) for t in topic)
        )

    return {d: covered(d) for d in {h.doc_id for h in hits}}


# The shapes of an answer in a sentence, by the kind asked for. Small number words ("the two nations") are too
# common to count as a figure; digits and larger ones do.
_NUMBER_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen"
_SHAPES = {
    NUMBER: re.compile(
        r"\d|\b(percent|per cent|half|dozen|hundreds?|thousands?|millions?|billions?|trillions?|twenty|thirty|forty|"
        r"fifty|sixty|seventy|eighty|ninety)\b",
        re.I,
    ),
    # "two days of talks", "for 90 days", "until November 10", "for one year"
    DURATION: re.compile(
        rf"\b(\d+|{_NUMBER_WORDS}|a|several|a few)[- ](days?|weeks?|months?|years?|hours?)\b(?! ago)|\buntil\b|\bthrough\b", re.I
    ),
}
_PLACE = re.compile(rf"\b(in|at|from|to|near|on) (?:the )?(?!(?:{MONTH_PATTERN}|{'|'.join(DAYS)})\b)([A-Z][a-z]+)")
_SMALL_NUMBER = re.compile(rf"\b({_NUMBER_WORDS})\b", re.I)
_PERCENT = re.compile(r"\d\s*(?:%|percent|per cent)|\bpercentage points?\b", re.I)
_COUNT = re.compile(rf"(\d[\d,.]*|{_NUMBER_WORDS}|half|dozens?|hundreds?|thousands?|millions?|billions?)\b", re.I)
# How far (in words) a number may stand before the thing it counts: "five more rare earth elements".
COUNT_SPAN = 4


def fits(reading: Reading, sentence: str, sentence_terms: frozenset[str], lead: bool = False, before: str = "") -> bool:
    """Whether `sentence` holds the kind of answer `reading` asks for; `before` is the sentence before it, where a
    quotation's attribution often is. Each check is named (docs/composer.md) and can be turned off (text.OFF)."""
    e, lex = reading.expects, reading.lexicon
    if on("reacting") and e.reacting and not all(lex.acts(n, sentence) for n in e.reacting):
        return False  # "how did BYD react": "BYD faces 17 percent" is no reaction
    if on("venue") and e.venue and _elsewhere(sentence, e.venue, lex):
        return False  # "talks in London ... the Geneva truce" is not about the Geneva talks
    if on("agreed") and e.agreed and not lex.pattern(r"\b(?:<agreement>)\b").search(sentence):
        return False
    if on("decided") and e.decided and not lex.pattern(r"\b(?:<decision>)\b").search(sentence):
        return False
    if on("speaker") and e.speaker and not _reports(e.speaker, sentence, before, lex):
        return False
    if e.kind == SUMMARY and on("summary_lead"):  # a news report says what it is about in its first sentence
        return lead
    if e.kind == PERSON:
        return _names_someone(reading, sentence, sentence_terms)
    if e.kind == ORGANISATION:  # "which carmakers": a company's name the question does not give
        return bool(lex.organisation_names(sentence) - reading.terms)
    if e.kind == PLACE:  # "where are the makers based": a place the question does not name itself
        return any(not (lex.alias_stems(m[2]) & reading.terms) or not on("place_own") for m in _PLACE.finditer(sentence))
    shape = _SHAPES.get(e.kind)
    if shape is not None and not shape.search(sentence):
        # "five more rare earth elements": a small number counts when it counts the thing asked about
        if not (on("small_number") and e.kind == NUMBER and e.unit in sentence_terms and _SMALL_NUMBER.search(sentence)):
            return False
    if on("unit") and e.unit and e.unit not in sentence_terms:
        return False
    if on("percent") and e.percent and not _PERCENT.search(sentence):
        return False
    if on("counted") and e.counted and not _counts(sentence, e.unit):
        return False  # "how many licences": a number must count licences, not the elements named beside them
    return not (on("money") and e.money and not lex.pattern(r"[$€£¥]|\b(?:<currencies>)\b").search(sentence))


def _names_someone(reading: Reading, sentence: str, sentence_terms: frozenset[str]) -> bool:
    """Whether `sentence` names who a "who" question asks for: a person the question does not name (of the role it
    names), else a country acting or an institution, else whoever it reports as saying something."""
    e, lex, plain = reading.expects, reading.lexicon, QUOTED.sub(" ", sentence)
    if on("roles") and e.roles and not e.roles & sentence_terms:
        return False
    if on("person_name") and any(set(terms(name)) - reading.terms for name in lex.person_names(sentence)):
        return True
    # "who is the biggest buyer", "who put out the statement": a country or a ministry can be the answer
    if on("agent") and e.agent and lex.agents(sentence) - reading.terms:
        return True
    # "who said approvals were lagging": whoever the sentence says said it ("Industry groups said ...")
    return on("attributed") and e.attributed and bool(lex.pattern(r"\b(?:<speech>|according to)\b").search(plain))


def _reports(speaker: frozenset[str], sentence: str, before: str, lex: Lexicon) -> bool:
    """Whether `sentence` reports what `speaker` said, the speaker named in the attribution (here or in the sentence
    before), not inside the quotation ("'The China deal ...,' Lutnick said" is not something China said)."""
    around = QUOTED.sub(" ", f"{before} {sentence}")
    said = set(terms(around))
    return bool(lex.pattern(r"\b(?:<speech>|according)\b|[“\"]").search(sentence)) and all(
        stem(w) in said or lex.name_pattern(w).search(around) for w in speaker
    )


def _elsewhere(sentence: str, venue: str, lex: Lexicon) -> bool:
    """Whether `sentence` places its talks somewhere other than `venue`, and never at it."""
    places = {p.lower() for p in lex.venues(sentence)}
    return bool(places) and venue not in places


def _counts(sentence: str, unit: str) -> bool:
    """Whether a number in `sentence` counts `unit` (a stem): it stands at most COUNT_SPAN words before it."""
    ws = words(sentence)
    stems = [stem(w) for w in ws]
    return any(
        s == unit and any(_COUNT.fullmatch(w) for w in ws[max(0, i - COUNT_SPAN - 1):i]) for i, s in enumerate(stems)
    )


def _mentioned(name: str, stats: CorpusStats, lex: Lexicon) -> bool:
    """Whether some article has `name`, or a name that stands for it ("Brussels" for the EU)."""
    if name.lower() in stats.vocabulary:
        return True
    return lex.has_aliases(name) and stats.mentions(lex.name_pattern(name), lex.alias_forms_of(name))


def _alias_in(term: str, text: str, lex: Lexicon) -> bool:
    """Whether `term` is a name one of whose aliases `text` has ("washington" and "the United States")."""
    return lex.has_aliases(term) and bool(lex.name_pattern(term).search(text))


def _headline_match(reading: Reading, hits: list[Hit], stats: CorpusStats) -> dict[str, float]:
    """The share of the question's terms (weighted by rarity) in the title of each retrieved article: a headline
    says which event the article is about ("after Geneva talks")."""
    weight = {t: stats.idf(t) for t in reading.terms if t in stats.df}
    total = sum(weight.values()) or 1.0
    return {h.doc_id: sum(w for t, w in weight.items() if t in _terms(h.title)) / total for h in hits}


def _recency(hits: list[Hit]) -> dict[str, float]:
    dates = {h.published for h in hits if h.published}
    if not dates:
        return {}
    newest = date.fromisoformat(max(dates))
    return {d: 0.5 ** ((newest - date.fromisoformat(d)).days / RECENCY_HALF_LIFE_DAYS) for d in dates}


# Figures worth agreeing on: percentages, sums of money, and dates (a bare "10" agrees with everything).
_FIGURE = re.compile(
    r"\b\d+(?:[.,]\d+)*\s*(?:percent|per cent|%)|[$€£¥]\s?\d+(?:[.,]\d+)*(?:\s*(?:million|billion|trillion))?|"
    rf"\b(?:{'|'.join(MONTHS)})\s+\d{{1,2}}\b"
)


@lru_cache(maxsize=100_000)
def _figures(text: str) -> frozenset[str]:
    """The figures in a text, normalised ("47 percent" and "47%" alike)."""
    return frozenset(re.sub(r"\s*(percent|per cent|%)", "%", m[0]) for m in _FIGURE.finditer(text))


@lru_cache(maxsize=100_000)
def _terms(sentence: str) -> frozenset[str]:
    """A sentence's terms; sentences recur across questions, so this is computed once each."""
    return frozenset(terms(sentence))


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
        if normalized in texts or (on("choose_adds") and not (adds or continues)) or length + len(c.text) > MAX_CHARS:
            continue
        chosen.append(c)
        covered |= adds
        texts.add(normalized)
        length += len(c.text)
    # Read in article order within each article, best article first.
    order = {c.hit.doc_id: i for i, c in reversed(list(enumerate(chosen)))}
    return sorted(chosen, key=lambda c: (order[c.hit.doc_id], c.start))


def _follows(c: Candidate, other: Candidate) -> bool:
    return c.hit.doc_id == other.hit.doc_id and 0 <= c.start - other.end <= 3


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
