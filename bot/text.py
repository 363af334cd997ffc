"""Word-level text analysis shared by retrieval and answering: terms, stems, and what kind of answer a question wants."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)*%?")
_stemmer = snowballstemmer.stemmer("english")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom whose why will with would you your yours yourself yourselves s t don't
    tell say said says report reported reports reporting write wrote written know anything something thing things get got give given us u please exactly really
    many much happen happened
    wait sorry hey hi ok okay actually ever just basically anyway quick question dumb someone anyone pls thanks btw
    go goes going gone went
    """.split()
)


def _plain(word: str) -> str:
    return word.lower().replace("’", "'").removesuffix("'s").removesuffix("'")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return _stemmer.stemWord(_plain(word))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def terms(text: str) -> list[str]:
    """Stems of the content words of `text`, in order (stop words dropped)."""
    return [stem(w) for w in words(text) if _plain(w) not in STOPWORDS]


# Nouns that name the kind of answer wanted ("which city", "what rate"): the answer won't contain them.
_TYPE_NOUN = re.compile(
    r"\b(?:which|what|whose)\s+(?:\w+\s+)?(city|cities|country|countries|place|network|outlet|channel|name|names|"
    r"person|people|date|day|time|year|month|number|amount|rate|percentage|share|kind|type|sequence)\b",
    re.I,
)


# Words that ask for a summary ("what is it mainly about", "the gist"): no article's sentence need contain them.
_SUMMARY_WORDS = frozenset(stem(w) for w in "mainly mostly gist summary summarize summarise nutshell main point tl dr tldr recap rundown upshot outcome".split())


# Phrases whose words say nothing about the answer's subject ("when did the talks take place", "who took part"): the
# answer says "held", "joined", "met", and a sentence with "part of the agreement" is no better for "part".
_IDIOMS = re.compile(r"\b(?:take|takes|took|taken|taking)\s+(?:place|part)\b|\bright now\b|\bat the moment\b", re.I)


def question_terms(question: str) -> frozenset[str]:
    """The question's content terms, less the nouns that only say what kind of answer is wanted (and, in a question
    asking for a summary, the words asking for it)."""
    type_nouns = {stem(m[1]) for m in _TYPE_NOUN.finditer(question)}
    if question_type(question) == SUMMARY:
        type_nouns |= _SUMMARY_WORDS
    return frozenset(terms(_IDIOMS.sub(" ", question))) - type_nouns


# What kind of answer a question asks for, and how to recognise one in a sentence.

DATE, PERSON, NUMBER, PLACE, SUMMARY, OTHER = "date", "person", "number", "place", "summary", "other"
ORGANISATION, DURATION = "organisation", "duration"

_QUESTION_TYPES = [
    (SUMMARY, re.compile(r"\b(what(?:'s|’s| is| was)\b.{0,40}\b(mainly|mostly|all|really) about|gist|summary|summari[sz]e|in a nutshell|main point|tl;? ?dr|recap|rundown|the upshot|outcome)\b", re.I)),
    (DURATION, re.compile(r"\bhow long\b(?! ago)|\bfor how long\b", re.I)),
    (DATE, re.compile(r"^(when|since when|until when|by when)\b|\bwhat (date|day|month|year|time)\b|\bhow long ago\b", re.I)),
    # "which US officials", "what Chinese minister": a word or two may qualify the role asked about
    (PERSON, re.compile(r"^(who|whom|whose)\b|\b(which|what) (?:(?!(?:did|does|do|is|are|was|were|has|have|had|will|would|can|could)\b)[\w.'’]+ ){0,2}?(officials?|persons?|people|secretar(?:y|ies)|ministers?|leaders?|presidents?|negotiators?|executives?|spokes(?:person|man|woman))\b|\bnames? of\b", re.I)),
    (ORGANISATION, re.compile(r"\b(which|what) (?:[\w.'’-]+ ){0,3}?(compan(?:y|ies)|firms?|(?:car|auto)?makers?|manufacturers?|brands?|banks?|businesses)\b", re.I)),
    (NUMBER, re.compile(r"\bhow (much|many|high|large|big|steep)\b|\bwhat (\w+ )?(percent|percentage|share|rate|proportion|fraction|number|amount)\b|\b(tariff|rate) (was|is|were)\b|\bwhat(?:'s|’s| is| was| are)? (?:the )?(?:(?!(?:to|of|for|about|against|on|with|from|in|instead)\b)\w+ ){0,3}(tariff|rate|duty|duties)\b(?! did)", re.I)),
    (PLACE, re.compile(r"^where\b|\b(which|what) (city|country|countries|place|capital|venue|location)\b", re.I)),
]

_MONTHS = r"January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec"
_DAYS = r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_NUMBER_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen"
_ANSWER_SHAPES = {
    DATE: re.compile(
        rf"\b({_MONTHS}|{_DAYS})\b|\b(1[89]|20)\d\d\b|\b\d{{4}}-\d\d-\d\d\b|"
        r"\b(yesterday|today|tonight|tomorrow|ago|the other day|(over|at) the weekend|earlier this|later this|last (week|month|year)|"
        r"(in|this|last|next|early|late|mid-?) ?(the )?(spring|summer|autumn|fall|winter)|"
        r"this (week|month|year)|next (week|month|year))\b",
        re.I,
    ),
    # Small number words ("the two nations") are too common to count as a figure; digits and larger ones do.
    NUMBER: re.compile(
        r"\d|\b(percent|per cent|half|dozen|hundreds?|thousands?|millions?|billions?|trillions?|twenty|thirty|forty|"
        r"fifty|sixty|seventy|eighty|ninety)\b",
        re.I,
    ),
    # "two days of talks", "for 90 days", "until November 10", "for one year"
    DURATION: re.compile(
        rf"\b(\d+|{_NUMBER_WORDS}|a|several|a few)[- ](days?|weeks?|months?|years?|hours?)\b(?! ago)|\buntil\b|\bthrough\b", re.I
    ),
    PLACE: re.compile(rf"\b(in|at|from|to|near|on) (?:the )?(?!(?:{_MONTHS}|{_DAYS})\b)([A-Z][a-z]+)"),
}
# Two or more capitalised words in a row, not at the start of the sentence: a person's name, most of the time.
_PERSON_NAME = re.compile(r"(?<![.!?“\"] )(?<!^)\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")
# The last word of a name that is an institution or a place, not a person ("United States", "White House").
_NOT_PERSON = frozenset(
    """house department ministry commission union states kingdom republic council office agency bank party street
    news tv times post journal court senate congress parliament committee administration representative
    university institute association group company corporation""".split()
)


_PERCENT = re.compile(r"\d\s*(?:%|percent|per cent)|\bpercentage points?\b", re.I)
# An institution's name ("China's Ministry of Commerce", "the World Trade Organization", "the White House").
_INSTITUTION = re.compile(
    r"\b(?:[A-Z][a-z]+ )*(?:Ministry|Department|Commission|Organi[sz]ation|House|Council|Office|Agency|Bank|Union|Court)"
    r"(?: of(?: the)?(?: [A-Z][a-z]+)+)?\b"
)
_COUNTRY_NOUNS = "china|beijing|u\\.s\\.|us|united states|washington|america|eu|european union|brussels|uk|britain"
# A country acting ("China is the largest buyer", "Beijing said"), not a country named as an adjective ("U.S. and
# Chinese negotiators").
_COUNTRY_ACTS = re.compile(
    rf"(?<![\w.])({_COUNTRY_NOUNS})(?:'s|’s)? (?:is|was|are|were|has|had|have|will|would|said|says|\w+ed)\b", re.I
)


def agents(sentence: str) -> frozenset[str]:
    """Stems of what in `sentence`, outside quotations, could answer "who" when no person is named: an institution
    ("the Ministry of Commerce") or a country acting ("China is ...", "Beijing said")."""
    plain = _QUOTED.sub(" ", sentence)
    found = {t for m in _INSTITUTION.finditer(plain) for t in terms(m[0])}
    found |= {stem(m[1].replace(".", "")) for m in _COUNTRY_ACTS.finditer(plain)}
    return frozenset(found)


def organisation_names(sentence: str) -> frozenset[str]:
    """Stems of the names in `sentence` that could be a company's: capitalised words within the sentence and
    acronyms anywhere ("BYD", "Geely"), less countries, nationalities, months and days."""
    found = set()
    plain = _ALIAS_PHRASES.sub(" ", _QUOTED.sub(" ", sentence))  # "the European Union" is no company
    for m in re.finditer(r"\b(?:[A-Z]{2,}|[A-Z][a-z]+)\b", plain):
        word = m[0]
        if (m.start() == 0 and not word.isupper()) or _CALENDAR.match(word) or word.lower() in _ALIAS_FORMS:
            continue
        found.add(stem(word))
    return frozenset(found)


def person_names(sentence: str) -> list[str]:
    """Runs of capitalised words that name a person ("Howard Lutnick"), not an institution or a country."""
    return [
        n for n in _PERSON_NAME.findall(sentence)
        if n.split()[-1].lower() not in _NOT_PERSON and n.lower() not in _ALIAS_FORMS
    ]


_SMALL_NUMBER = re.compile(rf"\b({_NUMBER_WORDS})\b", re.I)
_UNIT = re.compile(r"\bhow (?:many|much) ([a-z]+)", re.I)
_AUX = r"(?:has|have|had|did|does|do|will|would|are|were|is|was|can|could|should)"
# "how many rare earth licences has ...": the counted thing is the last word before the verb ("tons of ..." before "of")
_UNIT_PHRASE = re.compile(rf"\bhow (?:many|much) (?:more )?((?:[a-z]+ ){{0,3}}?)([a-z]+)(?: of\b| {_AUX}\b)", re.I)
# "how much did rare earth prices rise": the thing that rose
_UNIT_CHANGE = re.compile(
    rf"\bhow (?:much|far) {_AUX} (?:the )?((?:[a-z]+ ){{0,3}}?)([a-z]+) (?:rise|fall|increase|drop|grow|climb|jump|decline|go up|go down)\b",
    re.I,
)
# "what did X agree": the answer must be something agreed
_AGREE_QUESTION = re.compile(r"\b(agree|agreed|sign|signed)\b", re.I)
# "What did China agree to ...": the party whose agreement is asked about, named outside any quotation.
_AGREE_PARTY = re.compile(
    rf"\b{_AUX}\s+(.{{1,60}}?)\s+(?:agree|sign|promise|pledge|commit|offer)\b", re.I
)
# "Which US officials", "the Chinese negotiators": people of one side.
_SIDE = re.compile(
    r"(?<![\w.])(US|U\.S\.|American|Chinese|China's|China’s|EU|European|British)\s+"
    r"(?:officials?|negotiators?|ministers?|leaders?|delegat(?:es?|ion)|side|team|officers?|representatives?)\b"
)
# "Who said ...", "who warned ...": the answer is whoever a sentence reports as saying it.
_WHO_SAID = re.compile(r"^\s*who\s+(?:has\s+|had\s+)?(?:said|says|say|told|warned|complained|claimed|noted|stated)\b", re.I)
_SAID = re.compile(r"\b(said|says|told|warned|complained|claimed|noted|stated|according to)\b", re.I)
# "How did BYD react to the duties?": what the named party did or said.
_REACT_QUESTION = re.compile(
    rf"\b(?:how\s+)?{_AUX}\s+(.{{1,60}}?)\s+(?:react|respond|reply|answer|retaliate|pushed back|push back|hit back|"
    r"fought back|fight back|challenged?|appealed?)\b",
    re.I,
)


def _acts(name: str, sentence: str) -> bool:
    """Whether `name` (or an alias) is the subject of a verb in `sentence`, outside quotations ("China has
    challenged", "Beijing said", "BYD cut prices"), not only named ("BYD faces 17 percent" does not count)."""
    plain = _QUOTED.sub(" ", sentence)
    for m in name_pattern(name).finditer(plain):
        if re.match(r"(?:'s|’s)?\s+(?:(?:has|had|have|will|would|also|then|quickly)\s+)?(?:\w+ed|said|says|told|cut|hit|sued)\b", plain[m.end():]):
            return True
    return False


# Rounds of talks are told apart by where they were held: "the Geneva talks", "talks in London", "the Busan meeting".
_EVENT = r"(?:talks|negotiations|meetings?|summit|round|rounds|visit)"
_VENUE = re.compile(
    rf"(?i:\b{_EVENT}\s+(?:in|at)\s+)([A-Z][a-z]+)\b|(?<![-\w])([A-Z][a-z]+)\s+(?i:{_EVENT})\b"
)


def venues(text: str) -> list[str]:
    """The places `text` names as where a round of talks was held, in order."""
    return [
        place for m in _VENUE.finditer(text)
        if (place := m[1] or m[2]) and not _CALENDAR.match(place) and place.lower() not in STOPWORDS
        and place.lower() not in _ALIAS_FORMS
    ]


def _elsewhere(sentence: str, venue: str) -> bool:
    """Whether `sentence` places its talks somewhere other than `venue`, and never at it."""
    places = {p.lower() for p in venues(sentence)}
    return bool(places) and venue not in places


# "What did the WTO rule ...": the answer reports a decision, not merely the body's name.
_DECIDE_QUESTION = re.compile(rf"\b{_AUX}\s+.{{1,60}}?\s+(?:decide|rule|conclude|find)\b", re.I)
_DECISION = re.compile(r"\b(decid\w*|decision|ruled|ruling|conclu\w*|found|finding|verdict)\b", re.I)
_AGREEMENT = re.compile(r"\b(agree|agreed|agrees|agreement|deal|accord|pact|truce|framework|understanding|signed|consensus)\b", re.I)
_PERCENT_UNITS = frozenset(stem(w) for w in ("point", "points", "percentage"))
_NOT_UNITS = {"of", "is", "are", "was", "were", "did", "does", "do", "has", "have", "will", "would", "can", "the", "a", "more"}
_PRESENT = re.compile(r"\b(now|currently|current|today|at present|these days|still|latest|most recent|newest|nowadays)\b", re.I)
# "What did Bessent say ...": the answer is something the named speaker said, so a sentence must report speech.
_SAY_QUESTION = re.compile(r"\b(?:did|does|do|has|have)\s+(.{1,60}?)\s+(?:say|said|tell|told|announce|claim|state)\b", re.I)
# Words of a speaker that articles often leave out of the attribution ("China said", for China's ministry).
_UNNAMED_SPEAKERS = frozenset(stem(w) for w in ("ministry", "spokesperson", "official", "officials"))
# "..., according to Lutnick?": the answer is what Lutnick said
_ACCORDING_TO = re.compile(r"(?:\baccording to|(?:^|[,;]\s*)per)\s+([^,;?]{1,60}?)\s*(?:[,;?]|$)", re.I)
_SPEECH = re.compile(r"\b(said|says|saying|told|tells|announced|stated|statement|described|alluded|added|according)\b|[“\"]", re.I)
# Roles a "who" question may name ("who is the commerce secretary"): the sentence naming the person must name the role.
ROLES = _ROLES = frozenset(stem(w) for w in """minister secretary ambassador spokesperson spokesman spokeswoman representative
    governor chairman chair ceo chief head envoy negotiator mayor senator""".split())
# Questions about how something developed want the sentences in time order.
_CHANGE = re.compile(r"\b(change[sd]?|changing|evolve[sd]?|over time|over the year|timeline|history|since then|so far|over 20\d\d)\b", re.I)
_PAST_ANCHOR = re.compile(rf"\b(in|since|during|last|until) ({_MONTHS}|\d{{4}}|(last )?(week|month|year))\b")
_MONEY = re.compile(r"[$€£¥]|\b(dollars?|euros?|yuan|pounds?|billion|million|trillion)\b", re.I)


@dataclass(frozen=True)
class Expectation:
    """What a question asks for: a kind of answer, and for "how many tons" the unit the answer must name."""

    kind: str
    unit: str | None = None
    money: bool = False
    present: bool = False  # asks how things stand now
    question_terms: frozenset[str] = frozenset()
    speaker: frozenset[str] = frozenset()  # "what did X say", "according to X": X's words (lower case)
    roles: frozenset[str] = frozenset()  # "who is the commerce secretary": the role's terms
    change: bool = False  # asks how something developed over time
    agreed: bool = False  # "what did X agree": the answer reports an agreement
    counted: bool = False  # "how many licences": a number must stand just before the unit
    party: frozenset[str] = frozenset()  # "what did China agree to": the names of who agreed (lower case)
    agent: bool = False  # "who ...?": a country acting or an institution may answer it, not only a person's name
    percent: bool = False  # "by how many points": the answer is a percentage
    decided: bool = False  # "what did the WTO rule": the answer reports a decision
    side: str = ""  # "which US officials": the country whose people are asked about, named outside quotations
    venue: str = ""  # "the Geneva talks": the place that tells this round of talks from the others (lower case)
    attributed: bool = False  # "who said ...": a sentence reporting what someone said answers it
    reacting: frozenset[str] = frozenset()  # "how did BYD react": names that must act in the answer (lower case)

    def met_by(self, sentence: str, sentence_terms: frozenset[str], lead: bool = False, context: str = "") -> bool:
        """Whether `sentence` holds the kind of answer asked for; `context` is the sentence before it, where a
        quotation's attribution often is."""
        if self.present and _PAST_ANCHOR.search(sentence):
            return False  # "what is the rate now?" is not answered by what the rate was in April
        if self.reacting and not all(_acts(n, sentence) for n in self.reacting):
            return False  # "how did BYD react": "BYD faces 17 percent" is no reaction
        if self.venue and _elsewhere(sentence, self.venue):
            return False  # "talks in London ... the Geneva truce" is not about the Geneva talks
        if self.agreed and not _AGREEMENT.search(sentence):
            return False
        if self.decided and not _DECISION.search(sentence):
            return False
        if self.party and not all(name_pattern(n).search(_QUOTED.sub(" ", sentence)) for n in self.party):
            return False  # "we inked the deal," Lutnick said: not something China agreed to
        if self.speaker:
            # The speaker is named in the attribution, not inside the quotation ("'The China deal ...,' Lutnick
            # said" is not something China said).
            around = _QUOTED.sub(" ", f"{context} {sentence}")
            said = set(terms(around))
            if not (_SPEECH.search(sentence) and all(stem(w) in said or name_pattern(w).search(around) for w in self.speaker)):
                return False
        if self.kind == SUMMARY:  # a news report says what it is about in its first sentence
            return lead
        if self.kind == PERSON:
            if self.roles and not self.roles & sentence_terms:
                return False
            if self.side and not name_pattern(self.side).search(_QUOTED.sub(" ", sentence)):
                return False  # "which US officials": Bessent's quotation about London names no American side
            if any(set(terms(name)) - self.question_terms for name in person_names(sentence)):
                return True
            # "who is the biggest buyer", "who put out the statement": a country or a ministry can be the answer
            if self.agent and agents(sentence) - self.question_terms:
                return True
            # "who said approvals were lagging": whoever the sentence says said it ("Industry groups said ...")
            return self.attributed and bool(_SAID.search(_QUOTED.sub(" ", sentence)))
        if self.kind == ORGANISATION:  # "which carmakers": a company's name the question does not give
            return bool(organisation_names(sentence) - self.question_terms)
        if self.kind == PLACE:  # "where are the makers based": a place the question does not name itself
            return any(
                not (_alias_stems(m[2]) & self.question_terms) for m in _ANSWER_SHAPES[PLACE].finditer(sentence)
            )
        pattern = _ANSWER_SHAPES.get(self.kind)
        if pattern is not None and not pattern.search(sentence):
            # "five more rare earth elements": a small number counts when it counts the thing asked about
            if not (self.kind == NUMBER and self.unit and self.unit in sentence_terms and _SMALL_NUMBER.search(sentence)):
                return False
        if self.unit and self.unit not in sentence_terms:
            return False
        if self.percent and not _PERCENT.search(sentence):
            return False
        if self.counted and not _counts(sentence, self.unit):
            return False  # "how many licences": a number must count licences, not the elements named beside them
        return not self.money or bool(_MONEY.search(sentence))


_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")
_COUNT = re.compile(rf"(\d[\d,.]*|{_NUMBER_WORDS}|half|dozens?|hundreds?|thousands?|millions?|billions?)\b", re.I)
# How far (in words) a number may stand before the thing it counts: "five more rare earth elements".
COUNT_SPAN = 4


def _counts(sentence: str, unit: str) -> bool:
    """Whether a number in `sentence` counts `unit` (a stem): it stands at most COUNT_SPAN words before it."""
    ws = words(sentence)
    stems = [stem(w) for w in ws]
    for i, s in enumerate(stems):
        if s == unit and any(_COUNT.fullmatch(w) for w in ws[max(0, i - COUNT_SPAN - 1):i]):
            return True
    return False


def question_type(question: str) -> str:
    q = re.sub(r"^(and|so|but|also|then|ok|okay)\b[\s,]*", "", question.strip(), flags=re.I)
    for kind, pattern in _QUESTION_TYPES:
        if pattern.search(q):
            return kind
    return OTHER


@lru_cache(maxsize=4096)  # uncovered() and the composer both ask, for the same question
def expectation(question: str) -> Expectation:
    kind = question_type(question)
    unit = None
    if m := _UNIT_CHANGE.search(question):
        unit = stem(m[2])
    elif (m := _UNIT_PHRASE.search(question)) and m[2].lower() not in _NOT_UNITS:
        unit = stem(m[2])
    elif m := _UNIT.search(question):
        unit = None if m[1].lower() in _NOT_UNITS else stem(m[1])
    money = bool(re.search(r"\b(worth|cost|costs|price|in dollars)\b", question, re.I))
    present = bool(_PRESENT.search(question))
    speaker: frozenset[str] = frozenset()
    if m := _SAY_QUESTION.search(question) or _ACCORDING_TO.search(question):
        speaker = frozenset(
            _plain(w) for w in words(m[1]) if _plain(w) not in STOPWORDS and stem(w) not in _UNNAMED_SPEAKERS
        )
    q_terms = question_terms(question)
    roles = frozenset(q_terms & _ROLES) if kind == PERSON else frozenset()
    agreed = bool(_AGREE_QUESTION.search(question)) and kind in (OTHER, SUMMARY)
    percent = unit in _PERCENT_UNITS
    if percent:  # "how many points": the articles give percentages, not "points"
        unit = None
    counted = unit is not None and bool(re.search(r"\bhow many\b", question, re.I))
    party = frozenset(_plain(n[0]) for n in _NAME.finditer(m[1])) if agreed and (m := _AGREE_PARTY.search(question)) else frozenset()
    agent = kind == PERSON and bool(re.match(r"\s*(?:(?:and|so|but|also|then|ok|okay)\b[\s,]*)?(?:who|whom)\b", question, re.I))
    side = (m := _SIDE.search(question)) and kind == PERSON and _plain(m[1]) or ""
    venue = next((_plain(p) for p in venues(question)), "")
    attributed = kind == PERSON and bool(_WHO_SAID.search(question))
    reacting = frozenset(
        _plain(n[0]) for m in _REACT_QUESTION.finditer(question) for n in _NAME.finditer(m[1])
    )
    return Expectation(
        kind, unit, money, present, q_terms, speaker, roles, bool(_CHANGE.search(question)), agreed, counted, party,
        agent, percent, bool(_DECIDE_QUESTION.search(question)) and kind == OTHER, side, venue,
        attributed, reacting,
    )


# Names that one article writes as another ("U.S." for "US", "Beijing" for "China"): any of a group stands for all.
_ALIASES = [
    ("us", "u.s.", "usa", "united states", "american", "americans", "america", "washington"),
    ("china", "chinese", "beijing", "prc"),
    ("eu", "european union", "european commission", "brussels", "europe", "european"),
    ("uk", "britain", "british", "united kingdom"),
]
# The names of more than one word among them ("European Union"), whose words are no other name.
_ALIAS_PHRASES = re.compile(
    "|".join(rf"\b{re.escape(f)}\b" for group in _ALIASES for f in group if " " in f), re.I
)


# Every form of every name in the table, for "is this word a country or a bloc?"
_ALIAS_FORMS = frozenset(f for group in _ALIASES for f in group)


def _alias_forms(name: str) -> set[str]:
    """`name` (plain, lower case) and every name that stands for it."""
    forms = {_plain(name)}
    for group in _ALIASES:
        if forms & set(group):
            forms |= set(group)
    return forms


@lru_cache(maxsize=4096)
def _alias_stems(word: str) -> frozenset[str]:
    """The stems of `word` and of every name that stands for it ("Chinese": china, chines, beij, prc)."""
    return frozenset(t for f in _alias_forms(word) for t in terms(f))


@lru_cache(maxsize=4096)
def name_pattern(name: str) -> re.Pattern:
    """A pattern matching `name` or any of its aliases as whole words, case-insensitively."""
    forms = _alias_forms(name)
    return re.compile("|".join(rf"(?<![\w.]){re.escape(f)}(?![\w])" for f in sorted(forms, key=len, reverse=True)), re.I)


_NAME = re.compile(r"\b(?:[A-Z][A-Z0-9]+|[A-Z][a-z]+(?:[A-Z][a-z]+)*)\b")
_CALENDAR = re.compile(rf"^({_MONTHS}|{_DAYS})$")
# Stems of month and day names and years: a question's "in August" is a date range the articles' dates answer, and
# their text need not say "August".
CALENDAR_TERMS = frozenset(stem(w) for w in (_MONTHS + "|" + _DAYS).split("|"))


def is_calendar(term: str) -> bool:
    return term in CALENDAR_TERMS or bool(re.fullmatch(r"(19|20)\d\d", term))


# "what did they say about magnets?", "anything about the soybean purchases": the topic the answer must be about.
_ABOUT = re.compile(r"\babout\s+(.+?)\s*(?:\b(?:in|since|after|before|during|from|according|at)\b|[?.!,;]|$)", re.I)


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
        self.found = _names(question)
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


def named_entities(question: str) -> list[str]:
    """Capitalised words after the first word, and acronyms: the names a question is about (EU, Japan, Xi, G20).
    Month and day names are dates, not names."""
    # a sentence's first word is capitalised anyway ("... London talks? Did the framework ...")
    return [name for _, name, first in _names(question.strip()) if name.isupper() or not first]


_SENTENCE_END = re.compile(r"[.?!]\s+")


def _names(question: str) -> list[tuple[int, str, bool]]:
    """Every capitalised word or acronym that is not a month or a day, with its offset and whether it opens a
    sentence. Sentence starts are found in one pass, not by searching the text before every word, so a long
    question costs linear time."""
    starts = {0} | {m.end() for m in _SENTENCE_END.finditer(question)}
    return [(m.start(), m[0], m.start() in starts) for m in _NAME.finditer(question) if not _CALENDAR.match(m[0])]
