"""Near-duplicate detection: the same story published at several places (a wire story syndicated on many sites).

Texts are compared by the Jaccard similarity of their word 5-shingles, estimated with MinHash signatures
(datasketch) and looked up through LSH, so a new document is checked against the whole index without reading
any stored text. A copy with another headline, a different first line or a trimmed end is still the same story;
two articles on the same topic in their own words share almost no 5-word runs.
"""

from __future__ import annotations

import base64
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


def _minhash(encoded: str):
    from datasketch import MinHash

    values = np.frombuffer(base64.b64decode(encoded), dtype=np.uint32)
    return MinHash(num_perm=NUM_PERM, seed=1, hashvalues=values, scheme=SCHEME)


class NearDuplicates:
    """Signatures seen so far, each under a key; `match` finds the key of a near-duplicate of a new text."""

    def __init__(self):
        from datasketch import MinHashLSH

        self._lsh = MinHashLSH(threshold=NEAR_DUPLICATE, num_perm=NUM_PERM)
        self._sigs: dict = {}

    def add(self, key: str, encoded: str) -> None:
        if encoded and key not in self._sigs:
            self._sigs[key] = _minhash(encoded)
            self._lsh.insert(key, self._sigs[key])

    def match(self, encoded: str, exclude=lambda key: False) -> str | None:
        if not encoded:
            return None
        m = _minhash(encoded)
        scored = [(self._sigs[k].jaccard(m), k) for k in self._lsh.query(m) if not exclude(k)]
        scored = [(j, k) for j, k in scored if j >= NEAR_DUPLICATE]
        return max(scored)[1] if scored else None
