"""Word-level text analysis shared by the reading of questions, retrieval and answering: words, stems, names, the
calendar, and the story's vocabulary (config/story.toml) compiled for matching sentences (Lexicon)."""

from __future__ import annotations

import re
from functools import lru_cache

from ingest.settings import PACKAGE_STORY, Vocabulary, load_vocabulary
from ingest.words import STOPWORDS, _plain, alias_forms, stem, terms, words  # noqa: F401 -- re-exported

from .dates import DAYS, MONTH_PATTERN

# The composer's checks turned off, by name (docs/composer.md lists them): bench/ablation.py scores the dev split
# with each one off in turn. Always empty in use.
OFF: set[str] = set()


def on(check: str) -> bool:
    return check not in OFF


_DAYS = "|".join(DAYS)
CALENDAR = re.compile(rf"^({MONTH_PATTERN}|{_DAYS})$")
# Stems of month and day names and years: a question's "in August" is a date range the articles' dates answer, and
# their text need not say "August".
CALENDAR_TERMS = frozenset(stem(w) for w in (MONTH_PATTERN + "|" + _DAYS).split("|"))


def is_calendar(term: str) -> bool:
    return term in CALENDAR_TERMS or bool(re.fullmatch(r"(19|20)\d\d", term))


NAME = re.compile(r"\b(?:[A-Z][A-Z0-9]+|[A-Z][a-z]+(?:[A-Z][a-z]+)*)\b")
_SENTENCE_END = re.compile(r"[.?!]\s+")
QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")


def named_entities(question: str) -> list[str]:
    """Capitalised words after the first word, and acronyms: the names a question is about (EU, Japan, Xi, G20).
    Month and day names are dates, not names."""
    # a sentence's first word is capitalised anyway ("... London talks? Did the framework ...")
    return [name for _, name, first in names(question.strip()) if name.isupper() or not first]


def names(text: str) -> list[tuple[int, str, bool]]:
    """Every capitalised word or acronym that is not a month or a day, with its offset and whether it opens a
    sentence. Sentence starts are found in one pass, not by searching the text before every word, so a long
    question costs linear time."""
    starts = {0} | {m.end() for m in _SENTENCE_END.finditer(text)}
    return [(m.start(), m[0], m.start() in starts) for m in NAME.finditer(text) if not CALENDAR.match(m[0])]


# Two or more capitalised words in a row, not at the start of the sentence: a person's name, most of the time.
_PERSON_NAME = re.compile(r"(?<![.!?“\"] )(?<!^)\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")
_NEVER = "(?!)"  # what an empty word list matches: nothing


class Lexicon:
    """The story's vocabulary compiled for matching: its word lists as patterns, and its names with their aliases.

    Patterns are written with <list> standing for any word of that vocabulary list ("\\b(?:<speech>)\\b") and
    <names> for any name of the aliases; each is compiled once.
    """

    def __init__(self, vocabulary: Vocabulary):
        self.words = vocabulary
        self.alias_forms = alias_forms(vocabulary)
        self.roles = frozenset(stem(w) for w in vocabulary.roles)
        phrases = [f for f in self.alias_forms if " " in f]  # "the European Union": its words are no other name
        self._phrases = re.compile("|".join(rf"\b{re.escape(f)}\b" for f in phrases), re.I) if phrases else None
        self._patterns: dict[tuple[str, int], re.Pattern] = {}
        self._names: dict[str, re.Pattern] = {}
        self._stems: dict[str, frozenset[str]] = {}

    @staticmethod
    @lru_cache(maxsize=1)
    def default() -> "Lexicon":
        """The lexicon of the vocabulary shipped in config/story.toml."""
        return Lexicon(load_vocabulary(PACKAGE_STORY))

    def any(self, key: str) -> str:
        """A regular expression matching any word of vocabulary list `key` ("*" at a word's end: any ending)."""
        found = self.alias_forms if key == "names" else getattr(self.words, key)
        alternatives = [re.escape(w.removesuffix("*")) + (r"\w*" if w.endswith("*") else "") for w in found]
        return "|".join(sorted(alternatives, key=len, reverse=True)) or _NEVER

    def pattern(self, template: str, flags: int = re.I) -> re.Pattern:
        """`template` compiled, each <list> in it standing for any word of that vocabulary list."""
        key = (template, flags)
        if key not in self._patterns:
            self._patterns[key] = re.compile(re.sub(r"<(\w+)>", lambda m: f"(?:{self.any(m[1])})", template), flags)
        return self._patterns[key]

    def alias_forms_of(self, name: str) -> set[str]:
        """`name` (plain, lower case) and every name that stands for it."""
        forms = {_plain(name)}
        for group in self.words.aliases:
            if forms & set(group):
                forms |= set(group)
        return forms

    def alias_stems(self, word: str) -> frozenset[str]:
        """The stems of `word` and of every name that stands for it ("Chinese": china, chines, beij, prc)."""
        if word not in self._stems:
            self._stems[word] = frozenset(t for f in self.alias_forms_of(word) for t in terms(f))
        return self._stems[word]

    def name_pattern(self, name: str) -> re.Pattern:
        """A pattern matching `name` or any of its aliases as whole words, case-insensitively."""
        if name not in self._names:
            forms = sorted(self.alias_forms_of(name), key=len, reverse=True)
            self._names[name] = re.compile("|".join(rf"(?<![\w.]){re.escape(f)}(?![\w])" for f in forms), re.I)
        return self._names[name]

    def has_aliases(self, name: str) -> bool:
        return len(self.alias_forms_of(name)) > 1

    def person_names(self, sentence: str) -> list[str]:
        """Runs of capitalised words that name a person ("Howard Lutnick"), not a country ("United States")."""
        return [n for n in _PERSON_NAME.findall(sentence) if n.lower() not in self.alias_forms]

    def agents(self, sentence: str) -> frozenset[str]:
        """Stems of what in `sentence`, outside quotations, could answer "who" when no person is named: an
        institution ("the Ministry of Commerce") or a country acting ("China is ...", "Beijing said"), not a country
        named as an adjective ("U.S. and Chinese negotiators")."""
        plain = QUOTED.sub(" ", sentence)
        institution = self.pattern(r"\b(?:[A-Z][a-z]+ )*(?:<institutions>)(?: of(?: the)?(?: [A-Z][a-z]+)+)?\b", 0)
        acting = self.pattern(r"(?<![\w.])(<names>)(?:'s|’s)? (?:is|was|are|were|has|had|have|will|would|said|says|\w+ed)\b")
        found = {t for m in institution.finditer(plain) for t in terms(m[0])} if on("institution") else set()
        found |= {stem(m[1].replace(".", "")) for m in acting.finditer(plain)} if on("country_acts") else set()
        return frozenset(found)

    def organisation_names(self, sentence: str) -> frozenset[str]:
        """Stems of the names in `sentence` that could be a company's: capitalised words within the sentence and
        acronyms anywhere ("BYD", "Geely"), less countries, nationalities, months and days."""
        plain = QUOTED.sub(" ", sentence)
        if self._phrases:  # "the European Union" is no company
            plain = self._phrases.sub(" ", plain)
        found = set()
        for m in re.finditer(r"\b(?:[A-Z]{2,}|[A-Z][a-z]+)\b", plain):
            word = m[0]
            if (m.start() == 0 and not word.isupper()) or CALENDAR.match(word) or (
                    word.lower() in self.alias_forms and on("org_not_alias")):
                continue
            found.add(stem(word))
        return frozenset(found)

    def acts(self, name: str, sentence: str) -> bool:
        """Whether `name` (or an alias) is the subject of a verb in `sentence`, outside quotations ("China has
        challenged", "Beijing said", "BYD cut prices"), not only named ("BYD faces 17 percent" does not count)."""
        plain = QUOTED.sub(" ", sentence)
        verb = self.pattern(r"(?:'s|’s)?\s+(?:(?:has|had|have|will|would|also|then|quickly)\s+)?(?:\w+ed|<acts>)\b", 0)
        return any(verb.match(plain, m.end()) for m in self.name_pattern(name).finditer(plain))

    def venues(self, text: str) -> list[str]:
        """The places `text` names as where a round of talks was held, in order ("the Geneva talks", "talks in
        London")."""
        venue = self.pattern(r"(?i:\b<events>\s+(?:in|at)\s+)([A-Z][a-z]+)\b|(?<![-\w])([A-Z][a-z]+)\s+(?i:<events>)\b", 0)
        return [
            place for m in venue.finditer(text)
            if (place := m[1] or m[2]) and not CALENDAR.match(place) and place.lower() not in STOPWORDS
            and place.lower() not in self.alias_forms
        ]
