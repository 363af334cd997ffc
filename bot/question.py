"""The question, read once: what a user typed made safe to answer, then read into one Reading that retrieval, both
composers, --explain, the related passages and the LangChain retriever all take.

Every surface (the CLI, Slack, the library) passes what a user typed through `prepare` before anything reads it.

Control characters, NUL bytes, line and paragraph separators become spaces; invisible format characters (zero-width
spaces, bidi overrides, byte-order marks) and undecodable bytes (lone surrogates, as Python keeps invalid UTF-8 read
with "surrogateescape") are dropped or replaced; whitespace is collapsed. A question longer than the cap is cut at a
word, and a note says so, so no question costs more than the cap's worth of work.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Mapping, Sequence

from .dates import Window, question_window
from .followup import resolve
from .text import NAME, STOPWORDS, Lexicon, _plain, named_entities, names, on, stem, terms, words

if TYPE_CHECKING:
    from .retrieve import CorpusStats

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACE_LIKE = frozenset({"Cc", "Zl", "Zp", "Zs"})  # control characters, separators: a space
_DROPPED = frozenset({"Cf"})  # zero-width and direction marks, BOMs: nothing


@dataclass(frozen=True)
class Question:
    text: str  # what is answered: clean, at most the cap
    note: str = ""  # for the user, when the question was cut
    empty_reason: str = ""  # why there is nothing to answer, when `text` is empty


def clean(text: str) -> str:
    """`text` with control and format characters removed, undecodable bytes replaced, whitespace collapsed."""
    text = _SURROGATE.sub(REPLACEMENT, text)
    if not text.isascii() or not text.isprintable():
        text = "".join(_clean_char(c) for c in text)
    return " ".join(text.split())


def _clean_char(c: str) -> str:
    if c.isprintable():
        return c
    category = unicodedata.category(c)
    if category in _SPACE_LIKE:
        return " "
    return "" if category in _DROPPED else c


def cut_note(limit: int) -> str:
    return f"Your question was longer than {limit} characters; I answered its beginning."


def prepare(text: str, limit: int) -> Question:
    """The question to answer from what was typed, cut to `limit` characters at a word boundary."""
    text = clean(text)
    if not text:
        return Question("", empty_reason="the question is empty")
    if limit <= 0 or len(text) <= limit:
        return Question(text)
    head = text[:limit]
    if not text[limit].isspace() and " " in head:
        head = head.rsplit(" ", 1)[0]
    return Question(head.rstrip(), note=cut_note(limit))


# What kind of answer a question asks for (Expectation.kind).
PERSON, NUMBER, PLACE, SUMMARY, ORGANISATION, DURATION, OTHER = (
    "person", "number", "place", "summary", "organisation", "duration", "other")
_AUX = r"(?:has|have|had|did|does|do|will|would|are|were|is|was|can|could|should)"
# Question words and the nouns after "which"/"what" that say what kind of answer is wanted; <list> stands for a list
# of the story's vocabulary (config/story.toml).
_KINDS = [
    (SUMMARY, r"\b(what(?:'s|’s| is| was)\b.{0,40}\b(mainly|mostly|all|really) about|<summary>)\b"),
    (DURATION, r"\bhow long\b(?! ago)|\bfor how long\b"),
    # "which US officials", "what Chinese minister": a word or two may qualify the role asked about
    (PERSON, r"^(who|whom|whose)\b|\b(which|what) (?:(?!(?:did|does|do|is|are|was|were|has|have|had|will|would|can|could)\b)[\w.'’]+ ){0,2}?(<person_nouns>)\b|\bnames? of\b"),
    (ORGANISATION, r"\b(which|what) (?:[\w.'’-]+ ){0,3}?(<organisation_nouns>)\b"),
    (NUMBER, r"\bhow (much|many|high|large|big|steep)\b|\bwhat (\w+ )?(<number_nouns>)\b|\b(<figure_nouns>) (was|is|were)\b|"
             r"\bwhat(?:'s|’s| is| was| are)? (?:the )?(?:(?!(?:to|of|for|about|against|on|with|from|in|instead)\b)\w+ ){0,3}(<figure_nouns>)\b(?! did)"),
    (PLACE, r"^where\b|\b(which|what) (<place_nouns>)\b"),
]
# A follow-up's opening word ("and who signed it?") says nothing of what it asks for.
_OPENING = re.compile(r"^\s*(?:and|so|but|also|then|ok|okay)\b[\s,]*", re.I)
_UNIT = re.compile(r"\bhow (?:many|much) ([a-z]+)", re.I)
# "how many rare earth licences has ...": the counted thing is the last word before the verb ("tons of ..." before "of")
_UNIT_PHRASE = re.compile(rf"\bhow (?:many|much) (?:more )?((?:[a-z]+ ){{0,3}}?)([a-z]+)(?: of\b| {_AUX}\b)", re.I)
# "how much did rare earth prices rise": the thing that rose
_UNIT_CHANGE = rf"\bhow (?:much|far) {_AUX} (?:the )?((?:[a-z]+ ){{0,3}}?)([a-z]+) (?:<changes>)\b"
_NOT_UNITS = {"of", "is", "are", "was", "were", "did", "does", "do", "has", "have", "will", "would", "can", "the", "a", "more"}
_PERCENT_UNITS = frozenset(stem(w) for w in ("point", "points", "percentage"))
# "What did Bessent say ...", "..., according to Lutnick?", "per Bessent, ...": whose words the answer reports.
_SAY_QUESTION = r"\b(?:did|does|do|has|have)\s+(.{1,60}?)\s+(?:<saying>)\b"
_ACCORDING_TO = re.compile(r"(?:\baccording to|(?:^|[,;]\s*)per)\s+([^,;?]{1,60}?)\s*(?:[,;?]|$)", re.I)
# "what did they say about magnets?", "anything about the soybean purchases": the topic the answer must be about.
_ABOUT = re.compile(r"\babout\s+(.+?)\s*(?:\b(?:in|since|after|before|during|from|according|at)\b|[?.!,;]|$)", re.I)


@dataclass(frozen=True)
class Expectation:
    """What kind of answer a question asks for, and what a sentence must hold to give it (the composer's checks,
    docs/composer.md, read these)."""

    kind: str = OTHER
    unit: str | None = None  # "how many tons": the stem of the unit the answer must name
    money: bool = False  # "what is it worth": a sum of money
    present: bool = False  # asks how things stand now: the newest report wins
    speaker: frozenset[str] = frozenset()  # "what did X say", "according to X": X's words (lower case)
    roles: frozenset[str] = frozenset()  # "who is the commerce secretary": the role's terms
    agreed: bool = False  # "what did X agree": the answer reports an agreement
    counted: bool = False  # "how many licences": a number must stand just before the unit
    agent: bool = False  # "who ...?": a country acting or an institution may answer it, not only a person's name
    percent: bool = False  # "by how many points": the answer is a percentage
    decided: bool = False  # "what did the WTO rule": the answer reports a decision
    venue: str = ""  # "the Geneva talks": the place that tells this round of talks from the others (lower case)
    attributed: bool = False  # "who said ...": a sentence reporting what someone said answers it
    reacting: frozenset[str] = frozenset()  # "how did BYD react": names that must act in the answer (lower case)


@dataclass(frozen=True)
class Reading:
    """A question as dealbot reads it, once: retrieval, both composers, --explain, the related passages and the
    LangChain retriever all take this, and nothing of it travels inside the question's text."""

    asked: str  # as typed, cleaned and capped
    understood: str  # acronyms expanded, spelling corrected, names capitalised, pronouns resolved, outlets taken out
    context: tuple[str, ...] = ()  # the earlier turn's words a follow-up leans on ("Busan", "meeting")
    earlier: tuple[str, ...] = ()  # the earlier questions of the conversation, oldest first
    window: Window = Window()  # the dates it names ("since October")
    outlets: tuple[str, ...] = ()  # the outlets it names ("according to The Hill"): a filter, not words to match
    expects: Expectation = Expectation()
    terms: frozenset[str] = frozenset()  # its content terms and its context's ("mainly" left out of a summary's)
    names: tuple[str, ...] = ()  # the names it is about (EU, Japan, Busan), its context left out
    alternatives: tuple[str, ...] = ()  # names it offers as alternatives ("Geneva or Busan"), any one may answer
    topic: frozenset[str] = frozenset()  # the terms of what it says it is "about"
    lexicon: Lexicon = field(default_factory=Lexicon.default, compare=False, repr=False)

    @property
    def text(self) -> str:
        """What retrieval searches for, and `Answer.asked`: the question as understood, its context in brackets."""
        return f"{self.understood} ({' '.join(self.context)})" if self.context else self.understood

    def describe(self) -> str:
        """The reading in a line, for --explain: the kind of answer expected and what else the question brought."""
        e = self.expects
        parts = [f"expects {e.kind}" + (f" ({e.unit})" if e.unit else "")]
        for label, value in (("speaker", e.speaker), ("role", e.roles), ("venue", e.venue), ("acting", e.reacting)):
            if value:
                parts.append(f"{label} {value if isinstance(value, str) else '/'.join(sorted(value))}")
        parts += [label for label, on_ in (("agreement", e.agreed), ("decision", e.decided), ("money", e.money),
                                            ("percentage", e.percent), ("newest first", e.present)) if on_]
        if self.context:
            parts.append("context from earlier: " + " ".join(self.context))
        if self.outlets:
            parts.append("outlets named: " + ", ".join(self.outlets))
        return "; ".join(parts)

    @cached_property
    def stems(self) -> frozenset[str]:
        """The terms of every word of the question and its context (the answer's kind included)."""
        return frozenset(terms(self.understood)) | frozenset(terms(" ".join(self.context)))


def read(
    question: str, history: Sequence = (), stats: CorpusStats | None = None, lexicon: Lexicon | None = None,
    newest: str | None = None, outlets: Mapping[str, str] | None = None,
) -> Reading:
    """`question` (prepared) read in the light of `history` (the earlier turns, oldest first: questions or the
    Answers given to them) and of the corpus: its statistics, the newest article's date (for "since October") and
    its outlets by the name a question would use ("The Hill")."""
    lexicon = lexicon or Lexicon.default()
    resolved, context = resolve(question, history)
    named = outlets_named(question, outlets or {}) if on("outlets") else ()
    fix = (lambda text: _without_outlets(_corrected(text, stats, lexicon), named, outlets or {})) if stats else (lambda t: t)
    understood, context = fix(resolved), tuple(fix(" ".join(context)).split())
    kind = question_kind(understood, lexicon)
    unwanted = set()
    if kind == SUMMARY and on("summary_words"):  # "what is it mainly about": no sentence need say "mainly"
        unwanted = {t for w in lexicon.words.summary + ("mainly", "mostly") for t in terms(w)}
    q_terms = (frozenset(terms(understood)) - unwanted) | frozenset(terms(" ".join(context)))
    earlier = tuple(h if isinstance(h, str) else (h.asked or h.question) for h in history)
    return Reading(
        asked=question, understood=understood, context=context, earlier=earlier,
        window=question_window(question if on("dates") else "", newest), outlets=named, expects=_expectation(understood, kind, q_terms, lexicon),
        terms=q_terms, names=tuple(named_entities(understood)), alternatives=tuple(alternatives(understood)),
        topic=about_terms(understood), lexicon=lexicon,
    )


def question_kind(question: str, lexicon: Lexicon) -> str:
    q = _OPENING.sub("", question.strip())
    for kind, pattern in _KINDS:
        if on(f"kind_{kind}") and lexicon.pattern(pattern).search(q):
            return kind
    return OTHER


def _expectation(question: str, kind: str, q_terms: frozenset[str], lex: Lexicon) -> Expectation:
    unit = None
    if on("unit_change") and (m := lex.pattern(_UNIT_CHANGE).search(question)):
        unit = stem(m[2])
    elif on("unit_phrase") and (m := _UNIT_PHRASE.search(question)) and m[2].lower() not in _NOT_UNITS:
        unit = stem(m[2])
    elif m := _UNIT.search(question):
        unit = None if m[1].lower() in _NOT_UNITS else stem(m[1])
    percent = unit in _PERCENT_UNITS and on("percent")
    if percent:  # "how many points": the articles give percentages, not "points"
        unit = None
    speaker: frozenset[str] = frozenset()
    if m := lex.pattern(_SAY_QUESTION).search(question) or _ACCORDING_TO.search(question):
        speaker = frozenset(_plain(w) for w in words(m[1]) if _plain(w) not in STOPWORDS)
    person = kind == PERSON
    react = r"\b(?:how\s+)?" + _AUX + r"\s+(.{1,60}?)\s+(?:<reactions>)\b"
    return Expectation(
        kind=kind,
        unit=unit,
        money=bool(lex.pattern(r"\b(?:<money_questions>)\b").search(question)),
        present=bool(lex.pattern(r"\b(?:<present>)\b").search(question)),
        speaker=speaker,
        roles=frozenset(q_terms & lex.roles) if person else frozenset(),
        agreed=kind in (OTHER, SUMMARY) and bool(lex.pattern(r"\b(?:<agreeing>)\b").search(question)),
        counted=unit is not None and bool(re.search(r"\bhow many\b", question, re.I)),
        agent=person and bool(re.match(r"(?:who|whom)\b", _OPENING.sub("", question.strip()), re.I)),
        percent=percent,
        decided=kind == OTHER and bool(lex.pattern(rf"\b{_AUX}\s+.{{1,60}}?\s+(?:<deciding>)\b").search(question)),
        venue=next((_plain(p) for p in lex.venues(question)), ""),
        attributed=person and bool(lex.pattern(r"^\s*who\s+(?:has\s+|had\s+)?(?:<saying>)\b").search(question)),
        reacting=frozenset(_plain(n[0]) for m in lex.pattern(react).finditer(question) for n in NAME.finditer(m[1])),
    )


def outlets_named(question: str, outlets: Mapping[str, str]) -> tuple[str, ...]:
    """The outlets of the corpus (by the name a question would use: "The Hill") that `question` names."""
    return tuple(
        outlet for name, outlet in outlets.items()
        if len(name) > 2 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", question, re.I)
    )


def _without_outlets(text: str, named: tuple[str, ...], outlets: Mapping[str, str]) -> str:
    """`text` without the outlets it names ("according to The Hill"): they filter the articles instead."""
    if not named:
        return text
    names_ = "|".join(re.escape(n) for n, o in outlets.items() if o in named)
    return re.sub(rf"\s*\b(?:according to|in|from|by)?\s*(?:{names_})(?!\w)", "", text, flags=re.I).strip(" ,;:")


def _corrected(text: str, stats: CorpusStats, lexicon: Lexicon) -> str:
    if on("acronyms"):
        text = expand_acronyms(text, stats)
    if on("spelling"):
        text = correct_spelling(text, stats, lexicon)
    return truecase(text, stats) if on("truecase") else text


def truecase(question: str, stats: CorpusStats) -> str:
    """The question with the names it writes in lower case capitalised as the articles write them ("what did
    lutnick say about geneva" -> "what did Lutnick say about Geneva"), so they count as names."""
    return re.sub(r"[A-Za-z][A-Za-z'’]*", lambda m: stats.names.get(m[0], m[0]) if m[0].islower() else m[0], question)


def correct_spelling(question: str, stats: CorpusStats, lexicon: Lexicon) -> str:
    """The question with words no article contains replaced by a close match that one does ("comerce")."""
    from rapidfuzz import fuzz, process

    def fix(m: re.Match) -> str:
        word, suffix = m[1], m[2] or ""
        if suffix.lower() in ("'t", "’t"):  # a contraction ("weren't") is no misspelling
            return m[0]
        # Role words ("minister") are left alone: corrected to a word the articles have ("ministry"), a question
        # about a role no article names would be answered about something else.
        lower = word.lower()
        if len(word) < 5 or lower in stats.vocabulary or lower in STOPWORDS or stem(word) in stats.df or stem(word) in lexicon.roles:
            return m[0]
        match = process.extractOne(lower, stats.spellable, scorer=fuzz.ratio, score_cutoff=85)
        if not match or match[0][0] != lower[0]:  # a typo seldom hits the first letter: "member" is no misspelt
            return m[0]  # "remember"
        return (match[0].capitalize() if word[0].isupper() else match[0]) + suffix

    return re.sub(r"([A-Za-z]+)(['’][A-Za-z]+)?", fix, question)


def expand_acronyms(question: str, stats: CorpusStats) -> str:
    """The question with acronyms no article uses replaced by the words they stand for in the articles ("EDA" by
    "electronic design automation", "EVs" by "electric vehicles")."""

    def expand(m: re.Match) -> str:
        return m[0] if m[1].lower() in stats.vocabulary else stats.expansion(m[1]) or m[0]

    return re.sub(r"\b([A-Z]{2,5})s?\b", expand, question)


def about_terms(question: str) -> frozenset[str]:
    """The content terms of what a question says it is "about" (empty when it names no such topic)."""
    m = _ABOUT.search(question)
    return frozenset(terms(m[1])) if m else frozenset()


def alternatives(question: str) -> list[str]:
    """Names the question offers as alternatives, which different articles may answer for: the last name before each
    "or" ("vs") and the first after it, within the clause ("the rate after Geneva or the one after Busan?"); the two
    of "both X and Y"; and every name either side of "how does X compare with Y"."""
    found = []
    # "at both the Geneva and the London rounds": each article may answer for one of them
    for m in re.finditer(r"\bboth\b([^,;?]{1,40}?)\band\b([^,;?]{1,40})", question, re.I):
        first, second = named_entities("x " + m[1]), named_entities("x " + m[2])
        if first and second:
            found += [first[0], second[0]]
    clauses = _Clauses(question)
    spans = []  # "how does X compare with Y": every name of either side, read once at the end
    for m in re.finditer(r"\b(?:or|vs\.?|versus|(compared?) (?:with|to))(?!\w)", question):
        start, end = clauses.around(m.start(), m.end())
        # A clause's first word is capitalised anyway; the first word after "vs." is a name all the same.
        before, after = clauses.last(start, m.start()), clauses.first(m.end(), end)
        if before and after:
            if m[1]:
                spans += [(start, m.start(), start, False), (m.end(), end, m.end(), True)]
            else:
                found += [before, after]
    return found + clauses.spanned(spans)


class _Clauses:
    """The clauses of a question (split at , ; : ?) and its names with their offsets, found once: alternatives()
    reads the names either side of every "or" from them, without rescanning the question, in linear time."""

    def __init__(self, question: str):
        self.text = question
        self.breaks = [m.start() for m in re.finditer(r"[,;:?]", question)]
        self.found = names(question)
        self.offsets = [offset for offset, _, _ in self.found]
        # A name is one unless it opens a sentence (acronyms always are); the nearest one at or before / after
        # each position, for the name just before an "or" and the one just after it.
        named = [name.isupper() or not first for _, name, first in self.found]
        self.previous, self.next = [], [len(named)] * len(named)
        for i, ok in enumerate(named):
            self.previous.append(i if ok else (self.previous[-1] if i else -1))
        for i in range(len(named) - 1, -1, -1):
            self.next[i] = i if named[i] else (self.next[i + 1] if i + 1 < len(named) else len(named))

    def around(self, start: int, end: int) -> tuple[int, int]:
        """The clause holding text[start:end]: from after the break before it to the break after it."""
        i = bisect.bisect_left(self.breaks, start)
        j = bisect.bisect_left(self.breaks, end)
        return (self.breaks[i - 1] + 1 if i else 0), (self.breaks[j] if j < len(self.breaks) else len(self.text))

    def _opening(self, lead: int) -> int:
        return _SPACES.match(self.text, lead).end()

    def last(self, start: int, end: int) -> str | None:
        """The last name in text[start:end], a clause's opening word only if an acronym."""
        hi = bisect.bisect_left(self.offsets, end) - 1
        i = self.previous[hi] if hi >= 0 else -1
        if i < 0 or self.offsets[i] < start:
            return None
        offset, name, _ = self.found[i]
        return None if offset == self._opening(start) and not name.isupper() else name

    def first(self, start: int, end: int) -> str | None:
        """The first name in text[start:end], its first word counting as one even after "vs." (a full stop)."""
        lo = bisect.bisect_left(self.offsets, start)
        if lo < len(self.found) and self.offsets[lo] == self._opening(start) and self.offsets[lo] < end:
            return self.found[lo][1]
        i = self.next[lo] if lo < len(self.found) else len(self.found)
        return self.found[i][1] if i < len(self.found) and self.offsets[i] < end else None

    def spanned(self, spans: list[tuple[int, int, int, bool]]) -> list[str]:
        """The names of all `spans` (start, end, lead, whether the word after lead is a name), each once. Spans that
        overlap are read from where the last one ended; the words each span opens are settled first."""
        openings = {self._opening(lead): lead_is_name for _, _, lead, lead_is_name in spans}
        out: dict[str, None] = {}
        reach = -1
        for start, end, _, _ in sorted(spans):
            lo, hi = bisect.bisect_left(self.offsets, max(start, reach)), bisect.bisect_left(self.offsets, end)
            for offset, name, first in self.found[lo:hi]:
                if name.isupper() or openings.get(offset, not first):
                    out[name] = None
            reach = max(reach, end)
        return list(out)


_SPACES = re.compile(r"\s*")
