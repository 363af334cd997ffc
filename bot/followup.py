"""Follow-up questions: "and when was it signed?" read in the light of the conversation so far."""

from __future__ import annotations

import re
from typing import Sequence

from .text import STOPWORDS, terms, words

_ELLIPTIC = re.compile(r"^\s*(and|also|so|but|what about|how about)\b|\b(it|its|they|them|their|that|this|those|he|she|there)\b", re.I)


def contextualize(question: str, history: Sequence[str]) -> str:
    """The question, followed by the content words of the last earlier question when it leans on it.

    A follow-up that starts with "and", "what about", uses a pronoun, or has fewer than two content words is
    taken to continue the previous question; anything else stands on its own. The follow-up stays first, so what
    kind of answer it asks for ("when", "who") is still read from it.
    """
    earlier = [h for h in history if h.strip()]
    if not earlier or not (_ELLIPTIC.search(question) or len(terms(question)) < 2):
        return question
    context = [w for w in words(earlier[-1]) if w.lower() not in STOPWORDS]
    return f"{question.rstrip()} ({' '.join(context)})" if context else question
