"""What the related passages show on the dev split, three ways, and how that moves with their weights.

The dev split's answers were tuned on those very questions, so most of their facts are on screen whatever the related
passages do. Two further views show how the related passages would fare beneath a composer that had not seen them:
`alone`, every question as if the composer had abstained (the related passages are all the reader gets), and
`checks off`, the answers the composer gives with every answer check of docs/composer.md turned off (it cites the
right article less often, and chooses other sentences). For each the script prints on screen, confident and wrong,
off-topic with passages and the visible median. Only the dev split is read: held-out questions are never asked here.

    DEALBOT_DATA_DIR=/tmp/eval dealbot ingest --source data/articles --source tests/eval/articles
    DEALBOT_DATA_DIR=/tmp/eval .venv/bin/python bench/related.py tests/eval [--grid]

`--grid` scores the sentence pick's weights (bot/related.py PICK_ANSWER_WEIGHT, PICK_DISTINCT_WEIGHT) and FAR_BELOW
on a grid; the last line is the figures of the code as it stands.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ablation import inventory  # noqa: E402
from bot import related, text  # noqa: E402
from bot.answer import compose  # noqa: E402
from bot.evaluate import Outcome, load_cases, score  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from ingest.settings import load_settings  # noqa: E402

COMPOSER_CHECKS_FROM = "unknown_name"  # the first row of the composer's checks in docs/composer.md


def answers(pipeline: Pipeline, cases, checks_off=()) -> list:
    """(case, reading, hits, answer without related passages) for each dev case, with `checks_off` turned off."""
    text.OFF.update(checks_off)
    try:
        rows = []
        for case in cases:
            reading, _, hits = pipeline.retrieve(case.question)
            answer = compose(reading, hits, pipeline.retriever.stats, pipeline.settings.retrieval.min_score)
            rows.append((case, reading, hits, answer))
        return rows
    finally:
        text.OFF.clear()


def figures(pipeline: Pipeline, rows, abstain: bool = False) -> str:
    """The reader's figures of `rows` with their related passages (`abstain`: as if no question were answered)."""
    outcomes = []
    for case, reading, hits, answer in rows:
        if abstain:
            answer = dataclasses.replace(answer, answered=False, sentences=(), citations=(), evidence=0.0)
        outcomes.append(Outcome(case, related.with_related(reading, answer, hits, pipeline.retriever.stats)))
    k, s = score(outcomes).counts, score(outcomes)
    return (f"on screen {k['on_screen'][0]}/{k['on_screen'][1]}, confident and wrong {k['confident_and_wrong'][0]}/"
            f"{k['confident_and_wrong'][1]}, off-topic with passages {k['off_topic_with_passages'][0]}/"
            f"{k['off_topic_with_passages'][1]}, visible median {s.visible_chars_median}")


def report(pipeline: Pipeline, tuned, checks_off) -> str:
    return (f"tuned: {figures(pipeline, tuned)} | alone: {figures(pipeline, tuned, abstain=True)} | checks off: "
            f"{figures(pipeline, checks_off)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="the question sets (tests/eval)")
    parser.add_argument("--grid", action="store_true", help="score the pick's weights and FAR_BELOW on a grid")
    args = parser.parse_args()
    cases = [c for c in load_cases(args.folder) if c.split == "dev"]
    pipeline = Pipeline(load_settings())
    checks, _ = inventory()
    tuned = answers(pipeline, cases)
    checks_off = answers(pipeline, cases, checks[checks.index(COMPOSER_CHECKS_FROM):])
    if args.grid:
        saved = (related.PICK_ANSWER_WEIGHT, related.PICK_DISTINCT_WEIGHT, related.FAR_BELOW)
        for answer_w, distinct_w, far in itertools.product((0, 0.25, 0.4, 0.5, 0.65, 1), (0, 0.25, 0.4, 0.5, 1), (0.3, 0.4, 0.5)):
            related.PICK_ANSWER_WEIGHT, related.PICK_DISTINCT_WEIGHT, related.FAR_BELOW = answer_w, distinct_w, far
            print(f"answer {answer_w} distinct {distinct_w} far below {far}: {report(pipeline, tuned, checks_off)}", flush=True)
        related.PICK_ANSWER_WEIGHT, related.PICK_DISTINCT_WEIGHT, related.FAR_BELOW = saved
    print(f"dev split, {len(cases)} questions, {report(pipeline, tuned, checks_off)}")


if __name__ == "__main__":
    main()
