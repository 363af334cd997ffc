"""What each check of the composer is worth: the dev split scored with each check (and each signal) turned off.

The checks are the rows of the inventory in docs/composer.md; each is turned off through `bot.text.OFF`, each
signal by setting its weight to 0. For every one the script prints how many dev questions each eval figure loses
(accuracy, citations, abstention, on screen; confident and wrong, off-topic with passages gained) and `lost`, the
most any figure loses. A check whose removal loses no question on any figure is not worth its code. Only the dev
split is read: held-out questions are never asked here. Run it against an index of the eval corpus:

    DEALBOT_DATA_DIR=/tmp/eval dealbot ingest --source data/articles --source tests/eval/articles
    DEALBOT_DATA_DIR=/tmp/eval .venv/bin/python bench/ablation.py tests/eval

`--only NAME ...` scores just those checks (several names joined by "+" are turned off together).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import answer, text  # noqa: E402
from bot.evaluate import Outcome, load_cases, score  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from ingest.settings import load_settings  # noqa: E402

INVENTORY = ROOT / "docs" / "composer.md"
# The figures of the eval, and whether more is better; `lost` counts questions each one loses.
FIGURES = {"accuracy": 1, "citation_accuracy": 1, "abstention": 1, "on_screen": 1, "confident_and_wrong": -1,
           "off_topic_with_passages": -1}


def inventory() -> tuple[list[str], list[str]]:
    """The checks and the signals named in the tables of docs/composer.md (first column, in backticks)."""
    checks, signals, table = [], [], None
    for line in INVENTORY.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):  # "## Checks", "## Signals"; other sections (checks removed) are not scored
            heading = line.lower()
            table = "signals" if "signal" in heading else "checks" if heading.endswith("checks") else None
        elif table and (m := re.match(r"\|\s*`([a-z_]+)`\s*\|", line)):
            (signals if table == "signals" else checks).append(m[1])
    return checks, signals


def dev_counts(pipeline: Pipeline, cases) -> dict[str, int]:
    """The good count of each figure on `cases` (dev questions only), and `right`: questions right in the gate's
    sense (an answerable one answered correctly and cited, an unanswerable one not answered)."""
    assert all(c.split == "dev" for c in cases), "the ablation reads the dev split only"
    outcomes = [Outcome(c, pipeline.ask(c.question)) for c in cases]
    report = score(outcomes)
    counts = {key: report["counts"][key][0] for key in FIGURES}
    counts["right"] = sum((o.correct and o.cited) if o.case.answerable else not o.answer.answered for o in outcomes)
    return counts


def without(pipeline: Pipeline, cases, name: str) -> dict[str, int]:
    """The dev counts with the checks of `name` ("a+b" for several) turned off, or a signal's weight set to 0."""
    saved = dict(answer.WEIGHTS)
    parts = name.split("+")
    for part in parts:
        if part in answer.WEIGHTS:
            answer.WEIGHTS[part] = 0.0
        else:
            text.OFF.add(part)
    try:
        return dev_counts(pipeline, cases)
    finally:
        text.OFF.clear()
        answer.WEIGHTS.update(saved)


def lost(base: dict[str, int], off: dict[str, int]) -> dict[str, int]:
    """Questions each figure loses with a check off (negative: it gains), and the most any figure loses."""
    delta = {key: (base[key] - off[key]) * sign for key, sign in FIGURES.items()}
    return {**delta, "net": base["right"] - off["right"], "lost": max(delta.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="the question sets (tests/eval)")
    parser.add_argument("--only", nargs="*", help="checks or signals to score (default: every one in docs/composer.md)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    cases = [c for c in load_cases(args.folder) if c.split == "dev"]
    pipeline = Pipeline(load_settings())
    checks, signals = inventory()
    names = args.only or checks + signals
    base = dev_counts(pipeline, cases)
    rows = {name: lost(base, without(pipeline, cases, name)) for name in names}
    if args.json:
        print(json.dumps({"dev_questions": len(cases), "base": base, "without": rows}))
        return
    print(f"dev split, {len(cases)} questions: " + ", ".join(f"{k} {v}" for k, v in base.items()))
    print(f"{'check':20} {'lost':>4} {'net':>4}  " + " ".join(f"{k[:10]:>10}" for k in FIGURES) + "  verdict")
    for name, row in rows.items():
        verdict = "worth keeping" if row["lost"] >= 1 else "costs nothing when removed"
        print(f"{name:20} {row['lost']:>4} {row['net']:>4}  " + " ".join(f"{row[k]:>10}" for k in FIGURES) + f"  {verdict}")


if __name__ == "__main__":
    main()
