"""The rule inventory (docs/composer.md) and the code name the same checks and signals, so the ablation
(bench/ablation.py) scores every check the composer has and no check it lost."""

import re
import sys
from pathlib import Path

from bot import answer, question

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from ablation import inventory  # noqa: E402


def _checks_in_code() -> set[str]:
    names = set()
    for path in (ROOT / "bot").glob("*.py"):
        names |= set(re.findall(r'\bon\("([a-z_]+)"\)', path.read_text(encoding="utf-8")))
    return names | {f"kind_{kind}" for kind, _ in question._KINDS}


def test_every_check_in_the_code_is_in_the_inventory_and_back():
    checks, signals = inventory()
    assert len(checks) == len(set(checks))
    assert set(checks) == _checks_in_code()
    assert signals == list(answer.WEIGHTS)


def test_no_signal_weighs_nothing():
    assert all(weight > 0 for weight in answer.WEIGHTS.values())
