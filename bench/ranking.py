"""How far the composer's signals can rank sentences: the tuned weights against weights learned from the dev split.

For every answerable dev question of a question set, the sentences the composer ranks that have the answer's shape
are labelled by whether they hold an accepted answer. The script prints

- where the first such sentence ranks under the tuned weights (`bot/answer.py` WEIGHTS), and how often it comes
  first (the composer's leading sentence);
- how often it comes first when the weights are learned instead: a conditional logit (softmax over a question's
  sentences) fitted on all question files but one and scored on the one left out, for each file in turn.

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
from bot.text import expectation  # noqa: E402
from ingest.settings import load_settings  # noqa: E402

SIGNALS = [k for k in WEIGHTS if k != "shape"]  # every sentence compared here has the shape


def questions(pipeline: Pipeline, folder: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(file, signals of each shaped sentence, whether it holds an accepted answer) per answerable dev question
    whose answer some shaped sentence holds."""
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        for case in load_cases(str(path)):
            if case.split != "dev" or not case.answerable:
                continue
            answer = pipeline.ask(case.question)
            asked = answer.asked or case.question
            shaped = [c for c in rank(asked, list(answer.hits), expectation(asked), pipeline.retriever.stats) if c.signals["shape"]]
            labels = np.array([any(a.lower() in c.text.lower() for a in case.answer_any) for c in shaped])
            if labels.any():
                out.append((path.stem, np.array([[c.signals[k] for k in SIGNALS] for c in shaped]), labels))
    return out


def _loss(w: np.ndarray, data, l2: float):
    """Negative log-likelihood that a question's answer-holding sentences come first, and its gradient."""
    total, grad = l2 * w @ w, 2 * l2 * w
    for _, x, y in data:
        z = x @ w
        p = np.exp(z - z.max())
        p /= p.sum()
        good = p[y].sum()
        total -= np.log(good + 1e-12)
        grad -= x.T @ (p * y / (good + 1e-12) - p)
    return total, grad


def first_right(w: np.ndarray, data) -> int:
    return sum(int(y[np.argmax(x @ w)]) for _, x, y in data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path, help="folder of JSONL question files (tests/eval)")
    parser.add_argument("--l2", type=float, default=0.1, help="L2 penalty on the learned weights")
    args = parser.parse_args()
    data = questions(Pipeline(load_settings()), args.questions)
    tuned = np.array([WEIGHTS[k] for k in SIGNALS])
    places = Counter(int(np.argmax(y[np.argsort(-(x @ tuned), kind="stable")])) for _, x, y in data)
    learned = 0
    for held in sorted({f for f, _, _ in data}):
        fit = minimize(_loss, np.zeros(len(SIGNALS)), args=([d for d in data if d[0] != held], args.l2), jac=True)
        learned += first_right(fit.x, [d for d in data if d[0] == held])
    print(f"dev questions whose answer a shaped sentence holds: {len(data)}")
    print("rank of the first such sentence, tuned weights: " + "  ".join(f"{r + 1}:{n}" for r, n in sorted(places.items())))
    print(f"first_tuned={first_right(tuned, data)} first_learned_cv={learned} of {len(data)}")


if __name__ == "__main__":
    main()
