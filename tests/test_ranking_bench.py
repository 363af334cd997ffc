"""bench/ranking.py's learned ranker: the gradient is right, and it finds a ranking that is there to be found."""

import importlib.util
from pathlib import Path

import numpy as np
from scipy.optimize import check_grad

_SPEC = importlib.util.spec_from_file_location("ranking", Path(__file__).resolve().parent.parent / "bench" / "ranking.py")
ranking = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ranking)


def _questions(n: int, seed: int = 7):
    """Questions of 6 sentences with 4 signals each, the answer-holding sentence the one a hidden weighting ranks
    first; spread over 4 'files'."""
    rng = np.random.default_rng(seed)
    hidden = np.array([1.0, -2.0, 0.5, 3.0])
    out = []
    for i in range(n):
        x = rng.random((6, 4))
        y = np.zeros(6, dtype=bool)
        y[np.argmax(x @ hidden)] = True
        out.append((f"file{i % 4}", x, y))
    return out


def test_loss_gradient_matches_finite_differences():
    data = _questions(20)
    w = np.array([0.3, -0.1, 0.2, 0.4])
    error = check_grad(lambda v: ranking._loss(v, data, 0.1)[0], lambda v: ranking._loss(v, data, 0.1)[1], w)
    assert error < 1e-4


def test_learned_weights_find_a_planted_ranking_on_files_they_did_not_see():
    data = _questions(200)
    assert ranking.first_right(np.zeros(4), data) < 80  # with no weights the first sentence is a guess
    assert ranking.cross_validated(data, 0.01) >= 180
