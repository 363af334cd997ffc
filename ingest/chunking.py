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


def chunk(
    article: Article,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_sentences: int = 1,
) -> list[Passage]:
    """Group consecutive sentences into passages of at most `max_tokens` tokens (title included).

    Consecutive passages share `overlap_sentences` sentences. A single sentence longer than the budget becomes a
    passage on its own: the model reads its beginning, and the citation still quotes it whole.
    """
    sentences = split_sentences(article.text)
    if not sentences:
        return []
    title_tokens = count_tokens([article.title])[0] + 1
    budget = max(32, max_tokens - title_tokens)
    lengths = count_tokens([article.text[s:e] for s, e in sentences])

    groups: list[tuple[tuple[int, int], ...]] = []
    first = 0
    while first < len(sentences):
        last, used = first, lengths[first]
        while last + 1 < len(sentences) and used + lengths[last + 1] <= budget:
            last += 1
            used += lengths[last]
        groups.append(tuple(sentences[first : last + 1]))
        if last + 1 >= len(sentences):
            break
        first = max(first + 1, last + 1 - overlap_sentences)
    return [Passage(article, n, len(groups), g[0][0], g[-1][1], g) for n, g in enumerate(groups)]
