"""How far the composer's signals can rank sentences: the tuned weights against weights learned from the dev split.

For every answerable dev question of a question set, the sentences the composer ranks that have the answer's shape
are labelled by whether they hold an accepted answer. The script prints

- where the first such sentence ranks under the tuned weights (`bot/answer.py` WEIGHTS), and how often it comes
  first (the composer's leading sentence);
- how often it comes first when the weights are learned instead: a conditional logit (softmax over a question's
  sentences) fitted on all question files but one and scored on the one left out, for each file in turn;
- the same for the tuned score plus a learned reweighting of the MiniLM vectors, dimension by dimension (the
  products of the question's vector and the sentence's): whether the embeddings hold more than the cosine gives.

When the learned weights, scored on files they never saw, do no better than the tuned ones, the signals are what
limits the ranking, not their weights. Only the dev split is read. Run it against an index of the eval corpus:

    DEALBOT_DATA_DIR=/tmp/eval dealbot ingest --source data/articles --source tests/eval/articles
    DEALBOT_DATA_DIR=/tmp/eval .venv/bin/python bench/ranking.py tests/eval
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.answer import WEIGHTS, rank  # noqa: E402
from bot.evaluate import load_cases  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from ingest.settings import load_settings  # noqa: E402

SIGNALS = [k for k in WEIGHTS if k != "shape"]  # every sentence compared here has the shape


def questions(pipeline: Pipeline, folder: Path) -> tuple[list, list]:
    """Per answerable dev question whose answer some shaped sentence holds: (file, signals of each shaped sentence,
    whether it holds an accepted answer), and (file, tuned score of each, question vector * sentence vector, the
    same labels)."""
    out, vectors = [], []
    retriever = pipeline.retriever
    for path in sorted(folder.glob("*.jsonl")):
        for case in load_cases(str(path)):
            if case.split != "dev" or not case.answerable:
                continue
            reading, _, hits = pipeline.retrieve(case.question)  # what `ask` composes from, without composing
            shaped = [c for c in rank(reading, hits, retriever.stats) if c.signals["shape"]]
            labels = np.array([any(a.lower() in c.text.lower() for a in case.answer_any) for c in shaped])
            if labels.any():
                out.append((path.stem, np.array([[c.signals[k] for k in SIGNALS] for c in shaped]), labels))
                question = pipeline.embedder.encode_query(reading.text)
                products = np.array([question * _sentence_vector(retriever, c) for c in shaped])
                vectors.append((path.stem, np.array([c.score for c in shaped]), products, labels))
    return out, vectors


def _sentence_vector(retriever, candidate) -> np.ndarray:
    hit = candidate.hit
    i = next(i for i, (s, _) in enumerate(hit.sentences) if hit.start + s == candidate.start)
    return retriever.passages[hit.id].sentence_vectors[i].astype(np.float32)


def _loss(w: np.ndarray, data, l2: float, offset=lambda d: 0.0):
    """Negative log-likelihood that a question's answer-holding sentences come first, and its gradient."""
    total, grad = l2 * w @ w, 2 * l2 * w
    for d in data:
        x, y = d[-2], d[-1]
        z = x @ w + offset(d)
        p = np.exp(z - z.max())
        p /= p.sum()
        good = p[y].sum()
        total -= np.log(good + 1e-12)
        grad -= x.T @ (p * y / (good + 1e-12) - p)
    return total, grad


def first_right(w: np.ndarray, data, offset=lambda d: 0.0) -> int:
    return sum(int(d[-1][np.argmax(d[-2] @ w + offset(d))]) for d in data)


def cross_validated(data, l2: float, offset=lambda d: 0.0) -> int:
    """How often learned weights put an answer-holding sentence first on question files they were not fitted on."""
    right = 0
    for held in sorted({d[0] for d in data}):
        fit = minimize(_loss, np.zeros(data[0][-2].shape[1]), args=([d for d in data if d[0] != held], l2, offset), jac=True)
        right += first_right(fit.x, [d for d in data if d[0] == held], offset)
    return right


# The tuned score's scale against the learned term's: a softmax over scores that lie within about 0.3 of each other.
TEMPERATURE = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path, help="folder of JSONL question files (tests/eval)")
    parser.add_argument("--l2", type=float, default=0.1, help="L2 penalty on the learned weights")
    args = parser.parse_args()
    data, vectors = questions(Pipeline(load_settings()), args.questions)
    tuned = np.array([WEIGHTS[k] for k in SIGNALS])
    places = Counter(int(np.argmax(y[np.argsort(-(x @ tuned), kind="stable")])) for _, x, y in data)
    learned = cross_validated(data, args.l2)
    reweighted = cross_validated(vectors, args.l2, offset=lambda d: TEMPERATURE * d[1])
    print(f"dev questions whose answer a shaped sentence holds: {len(data)}")
    print("rank of the first such sentence, tuned weights: " + "  ".join(f"{r + 1}:{n}" for r, n in sorted(places.items())))
    print(f"first_tuned={first_right(tuned, data)} first_learned_cv={learned} first_tuned_plus_vectors_cv={reweighted} of {len(data)}")


if __name__ == "__main__":
    main()
