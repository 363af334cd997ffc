"""Near-duplicate detection: the same story published at several places (a wire story syndicated on many sites).

Texts are compared by the Jaccard similarity of their word 5-shingles, estimated with MinHash signatures
(datasketch) and looked up through LSH, so a new document is checked against the whole index without reading
any stored text. A copy with another headline, a different first line or a trimmed end is still the same story;
two articles on the same topic in their own words share almost no 5-word runs.
"""

from __future__ import annotations

import base64
import hashlib
import re

import numpy as np

# datasketch (and the scipy it pulls in) is imported only when there is something to compare: an unchanged run
# never pays for it.

NUM_PERM = 128
SCHEME = "affine32"  # 32-bit hash values: stored signatures stay comparable across datasketch versions
SHINGLE = 5
# Estimated Jaccard similarity at and above which two texts are the same story.
NEAR_DUPLICATE = 0.5
# Below this many shingles a text is too short to call a near-duplicate; only identical text counts.
MIN_SHINGLES = 20


def shingles(text: str) -> set[bytes]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(max(0, len(words) - SHINGLE + 1))}


def signature(text: str) -> str:
    """The text's MinHash as compact base64 (empty when the text is too short to compare)."""
    grams = shingles(text)
    if len(grams) < MIN_SHINGLES:
        return ""
    from datasketch import MinHash

    m = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME)
    m.update_batch(list(grams))
    return base64.b64encode(m.hashvalues.astype(np.uint32).tobytes()).decode("ascii")


def _band_ranges() -> list[tuple[int, int]]:
    """The (start, end) of each LSH band: datasketch picks the band count and width that best separate texts
    above NEAR_DUPLICATE from those below for NUM_PERM hash values."""
    from datasketch import MinHashLSH

    return list(MinHashLSH(threshold=NEAR_DUPLICATE, num_perm=NUM_PERM).hashranges)


_BANDS: list[tuple[int, int]] = []


def bands(encoded: str) -> list[int]:
    """The signature's LSH bucket keys, one per band (a 64-bit hash of the band's number and values): two texts
    that share a key are candidates, compared then by their signatures. Stored beside each document, so a new
    document's candidates are found by looking its keys up (a persisted, incrementally updated LSH)."""
    if not encoded:
        return []
    if not _BANDS:
        _BANDS.extend(_band_ranges())
    values = _values(encoded)
    return [
        int.from_bytes(hashlib.sha1(bytes([i]) + values[lo:hi].tobytes()).digest()[:8], "big", signed=True)
        for i, (lo, hi) in enumerate(_BANDS)
    ]


def _values(encoded: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), dtype=np.uint32)


def jaccard(a: str, b: str) -> float:
    """Estimated Jaccard similarity of two signatures (the share of equal hash values, as datasketch computes it)."""
    va, vb = _values(a), _values(b)
    return float(np.count_nonzero(va == vb)) / NUM_PERM if len(va) == len(vb) == NUM_PERM else 0.0


class NearDuplicates:
    """Finds a near-duplicate of a new text among stored documents (through `lookup`: their LSH bucket keys ->
    (key, signature) of the documents sharing one) and the texts added to it during this run."""

    def __init__(self, lookup=lambda buckets: []):
        self._lookup = lookup
        self._buckets: dict[int, list[str]] = {}
        self._sigs: dict[str, str] = {}

    def add(self, key: str, encoded: str) -> None:
        if encoded and key not in self._sigs:
            self._sigs[key] = encoded
            for b in bands(encoded):
                self._buckets.setdefault(b, []).append(key)

    def match(self, encoded: str, exclude=lambda key: False) -> str | None:
        if not encoded:
            return None
        keys = bands(encoded)
        candidates = dict(self._lookup(keys))
        candidates.update((k, self._sigs[k]) for b in keys for k in self._buckets.get(b, ()))
        scored = [(jaccard(sig, encoded), k) for k, sig in candidates.items() if sig and not exclude(k)]
        scored = [(j, k) for j, k in scored if j >= NEAR_DUPLICATE]
        return max(scored)[1] if scored else None
