"""Cutting articles into passages of whole sentences, sized in the embedding model's own tokens.

Sentence boundaries come from sentencex (fast, keeps a quotation with its attribution); token counts from the
model's tokenizer, so a passage never runs past what the model reads. Offsets always point into the article text.
"""

from __future__ import annotations

from typing import Callable, Sequence

import sentencex

from .records import Article, Passage

# Given texts, returns how many model tokens each one is (special tokens not counted).
TokenCounter = Callable[[Sequence[str]], list[int]]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, trimmed of surrounding white space."""
    spans = []
    for b in sentencex.get_sentence_boundaries("en", text):
        if b["is_paragraph_break"]:
            continue
        start, end = b["start_index"], b["end_index"]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


# A passage is bounded in characters too: text the tokenizer reads as few tokens (a 10,000-character "word" is one
# unknown token) must not become a passage too long to show. English runs at about 4-5 characters a token.
MAX_CHARS_PER_TOKEN = 8
# Token counts are asked for in slices of this many texts, which bounds the tokenizer's memory on a huge article.
COUNT_SLICE = 512


def chunk(
    article: Article,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_sentences: int = 1,
) -> list[Passage]:
    """Group consecutive sentences into passages of at most `max_tokens` tokens (title included).

    Consecutive passages share `overlap_sentences` sentences. A sentence longer than the budget (or text with no
    sentence boundary at all) is cut into pieces that fit, at white space where there is some, so that every
    passage stays within the budget, in tokens and in characters.
    """
    title_tokens = count_tokens([article.title])[0] + 1
    budget = max(32, max_tokens - title_tokens)
    max_chars = budget * MAX_CHARS_PER_TOKEN
    pieces, lengths = _pieces(article.text, count_tokens, budget, max_chars)
    if not pieces:
        return []

    groups: list[tuple[tuple[int, int], ...]] = []
    first = 0
    while first < len(pieces):
        last, used = first, lengths[first]
        while (
            last + 1 < len(pieces)
            and used + lengths[last + 1] <= budget
            and pieces[last + 1][1] - pieces[first][0] <= max_chars
        ):
            last += 1
            used += lengths[last]
        groups.append(tuple(pieces[first : last + 1]))
        if last + 1 >= len(pieces):
            break
        first = max(first + 1, last + 1 - overlap_sentences)
    return [Passage(article, n, len(groups), g[0][0], g[-1][1], g) for n, g in enumerate(groups)]


def _pieces(text: str, count_tokens: TokenCounter, budget: int, max_chars: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The sentences of `text`, long ones cut, each within `budget` tokens and `max_chars` characters, with their
    token counts. Nothing longer than `max_chars` is ever given to the tokenizer."""
    spans = [w for s, e in split_sentences(text) for w in _windows(text, s, e, max_chars)]
    lengths = _count(text, spans, count_tokens)
    pieces: list[tuple[int, int]] = []
    counts: list[int] = []
    for span, n in zip(spans, lengths):
        if n <= budget:
            pieces.append(span)
            counts.append(n)
            continue
        for part in _halves(text, span, n, budget, count_tokens):
            pieces.append(part[0])
            counts.append(part[1])
    return pieces, counts


def _count(text: str, spans: list[tuple[int, int]], count_tokens: TokenCounter) -> list[int]:
    counts: list[int] = []
    for lo in range(0, len(spans), COUNT_SLICE):
        counts += count_tokens([text[s:e] for s, e in spans[lo : lo + COUNT_SLICE]])
    return counts


def _windows(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """(start, end) runs of at most `max_chars` characters covering text[start:end], cut at white space when there
    is some in the second half of a run."""
    out = []
    while end - start > max_chars:
        cut = _cut_at_space(text, start, start + max_chars)
        out.append(_trimmed(text, start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append(_trimmed(text, start, end))
    return [span for span in out if span[1] > span[0]]


def _halves(text: str, span: tuple[int, int], n: int, budget: int, count_tokens: TokenCounter):
    """Cut a span of `n` tokens in two (at white space near the middle) until each part fits the budget."""
    start, end = span
    if n <= budget or end - start < 2:
        return [(span, n)]
    middle = _cut_at_space(text, start, start + (end - start) // 2)
    left, right = _trimmed(text, start, middle), _trimmed(text, middle, end)
    parts = [p for p in (left, right) if p[1] > p[0]]
    if len(parts) < 2:  # white space only on one side: cut at the middle character
        middle = start + (end - start) // 2
        parts = [(start, middle), (middle, end)]
    out = []
    for part, count in zip(parts, count_tokens([text[s:e] for s, e in parts])):
        out += _halves(text, part, count, budget, count_tokens)
    return out


def _cut_at_space(text: str, start: int, limit: int) -> int:
    """The last white space in text[start:limit] past its middle, else `limit`."""
    space = max(text.rfind(" ", start, limit), text.rfind("\n", start, limit))
    return space if space > start + (limit - start) // 2 else limit


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
