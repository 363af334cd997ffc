"""Hostile questions get exactly one well-formed answer, on every surface: the library, `dealbot ask --json` (one
JSON line per input line, whatever the bytes), and the text mode. Questions are built in _slack_inputs.py."""

from __future__ import annotations

import json
import os
import subprocess
import time
import unicodedata

import pytest

from _slack_inputs import ONE_LINE, QUESTIONS
from bot.question import clean, prepare
from bot.render import answer_json
from bot.question import alternatives
from bot.text import named_entities
from conftest import DEALBOT, ROOT, SAMPLE, make_settings

CAP = 1000


def _unsafe(text: str) -> set[str]:
    """Characters that break a line or a terminal, or hide text: controls, separators, format characters, surrogates
    (private-use and unassigned code points are a user's own business)."""
    return {c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")}
KEYS = {"question", "answered", "answer", "citations", "related", "evidence", "reason", "composer", "fallback_reason",
        "timings_ms", "note"}


@pytest.mark.parametrize("name, text", QUESTIONS, ids=[n for n, _ in QUESTIONS])
def test_a_hostile_question_gets_one_well_formed_answer(sample_pipeline, name, text):
    question = prepare(text, CAP)
    assert len(question.text) <= CAP and question.text == clean(question.text)
    assert not _unsafe(question.text)
    assert (question.note != "") == (len(clean(text)) > CAP)
    answer = sample_pipeline.ask(text)  # the library cleans and caps by itself too
    assert len(answer.question) <= CAP
    line = answer_json(answer, note=question.note)
    assert len(line.splitlines()) == 1 and not _unsafe(line)
    record = json.loads(line)
    assert set(record) == KEYS and isinstance(record["answered"], bool)
    assert record["answered"] == bool(record["citations"])


def test_names_and_alternatives_are_linear_in_the_question(sample_pipeline):
    """A hang guard, not a speed target: these took 11-48 s on 100 KB before sentence starts and clauses were found
    in one pass; linear, each of these (450-720 KB) takes about a second here."""
    for text in (" or ".join(["China"] * 80_000), "How does " + " compared with ".join(["EU Japan"] * 30_000),
                 "x, " + "EU. compared with. Japan " * 20_000, "When " + "Geneva. or. London " * 30_000):
        started = time.perf_counter()
        names, either = named_entities(text), alternatives(text)
        assert names and either
        assert time.perf_counter() - started < 30


# Raw lines as a pipe may carry them: not UTF-8, overlong, surrogates, beyond U+10FFFF, and blank.
RAW_LINES = [b"When \xff signed?", b"\xc3\x28 When was it signed?", b"\xc0\xaf overlong", b"\xf4\x90\x80\x80",
             b"\xed\xa0\x80 surrogate", b"", b"   ", b"\t", b"When was it signed?\r"]


def _as_bytes(text: str) -> bytes:
    """What a pipe would carry for `text`: lone surrogates become the invalid bytes they stand for."""
    return b"".join(c.encode("utf-8", "surrogateescape" if "\udc80" <= c <= "\udcff" else "surrogatepass")
                    for c in text)


def _ask(lines: list[bytes], *args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    env["DEALBOT_DATA_DIR"] = str(tmp_path)
    return subprocess.run([str(DEALBOT), "ask", *args], input=b"".join(line + b"\n" for line in lines), env=env,
                          capture_output=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, embedder):
    from ingest.sync import run_ingest

    data = tmp_path_factory.mktemp("hostile-ask") / "data"
    run_ingest(make_settings(data), [str(SAMPLE)], embedder=embedder)
    return data


def test_ask_json_answers_every_input_line_with_one_json_line(ingested):
    """The issue's case first (`printf 'When \\xff signed?\\nWhen was it signed?\\n' | dealbot ask --json`), then every
    one-line hostile question and raw byte line, in one process."""
    lines = [b"When \xff signed?", b"When was it signed?"] + [_as_bytes(t) for _, t in ONE_LINE] + RAW_LINES
    run = _ask(lines, "--json", tmp_path=ingested)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    out = run.stdout.decode("utf-8").split("\n")  # strictly UTF-8, and only \n ends a line
    assert out[-1] == "" and len(out) - 1 == len(lines)
    records = [json.loads(line) for line in out[:-1]]
    assert all(set(r) == KEYS for r in records)
    assert records[0]["question"] == "When \ufffd signed?"
    assert records[1]["answered"] and "signed" in records[1]["answer"]
    for line, record in zip(lines, records):
        text = clean(line.decode("utf-8", "replace"))
        if not text:  # a blank line still gets its line, so answers pair with questions
            assert record == record | {"answered": False, "reason": "the question is empty", "citations": []}
        assert (record["note"] is not None) == (len(text) > CAP)
        assert len(record["question"]) <= CAP
    assert sum(r["note"] is not None for r in records) >= 20


def test_ask_text_mode_stays_friendly(ingested):
    run = _ask([b"", b"When \xff was the deal signed?", b"   ", ("When was the deal signed? " * 200).encode()],
               tmp_path=ingested)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    out = run.stdout.decode("utf-8")
    assert out.count("[1] White House announces") == 2  # two answers, the blank lines skipped
    assert "(Your question was longer than 1000 characters; I answered its beginning.)" in out
    assert not run.stderr.strip()


def test_a_question_argument_with_invalid_bytes_is_answered(ingested):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    env["DEALBOT_DATA_DIR"] = str(ingested)
    run = subprocess.run([os.fsencode(DEALBOT), b"ask", b"--json", b"When was the \xff\xfe deal signed?\x07"], env=env,
                         capture_output=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    record = json.loads(run.stdout.decode("utf-8"))
    assert record["question"] == "When was the \ufffd\ufffd deal signed?" and record["answered"]
