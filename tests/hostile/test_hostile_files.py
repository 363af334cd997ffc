"""Hostile files in an article folder, all through ONE real `dealbot ingest` run (then a second), each asserted on
its own: the run goes on, each file is reported with its reason or stored as it should be, the index stays
consistent with `dealbot status`, and nothing from outside the folder reaches the index or an answer.

The run drops root's power to ignore file permissions (when the tests run as root), so that unreadable files and
unlistable folders are what they would be for any user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ingest_inputs import GOOD, SECRET, build_folder, drop_file_privileges, file_cases, fixture_text, location_of  # noqa: E402

from conftest import DEALBOT, ROOT, make_settings  # noqa: E402

CASES = [c for c in file_cases() if not c.needs_root or os.geteuid() == 0]
FAILING = [c for c in CASES if c.expect in ("fail", "collides")]


@dataclass
class HostileRun:
    root: Path
    data: Path
    report: dict
    second: dict
    stderr: str
    status: dict
    answer: str
    rows: list  # every passage row in the collection
    stored: dict  # location -> metadata of its passages (with "_text")


def _env(data: Path) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    return {**environ, "DEALBOT_DATA_DIR": str(data)}


def _dealbot(*args: str, data: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEALBOT), *args], env=_env(data), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, preexec_fn=drop_file_privileges)


@pytest.fixture(scope="module")
def run(tmp_path_factory, embedder) -> HostileRun:
    base = tmp_path_factory.mktemp("hostile-files")
    root, data = base / "articles", base / "data"
    build_folder(root, CASES, base / "outside")
    try:
        first = _dealbot("ingest", "--json", "--source", str(root), data=data)
        second = _dealbot("ingest", "--json", "--source", str(root), data=data)
        status = _dealbot("status", "--json", data=data)
    finally:
        for path in (root / "locked.md", root / "closed"):
            if path.exists():
                path.chmod(0o700)
    assert first.returncode == 0, first.stderr[-3000:]
    from bot.pipeline import Pipeline
    from bot.render import answer_json
    from ingest.index import Index

    settings = make_settings(data)
    pipeline = Pipeline(settings, embedder=embedder)
    answers = [answer_json(pipeline.ask(q)) for q in ("What is the launch code that nobody may read?",
                                                      "What does the password file list for root?")]
    pipeline.close()
    rows = Index(settings, embedder.name, embedder.dimensions).rows(with_vectors=True)
    stored: dict[str, list[dict]] = {}
    for row in rows:
        stored.setdefault(row.meta["location"], []).append({**row.meta, "_text": row.text})
    return HostileRun(root, data, json.loads(first.stdout.splitlines()[-1]), json.loads(second.stdout.splitlines()[-1]),
                      first.stderr, json.loads(status.stdout), "\n".join(answers), rows, stored)


def _failures(report: dict) -> dict[str, str]:
    return {f["location"]: f["reason"] for f in report["failures"]}


def test_the_run_goes_on_and_stores_the_good_articles(run):
    assert "Traceback" not in run.stderr
    assert run.report["stopped"] is False
    for relpath, title in GOOD.items():
        metas = run.stored[str(run.root / relpath)]
        assert metas[0]["title"] == title
    assert run.report["failed"] == len(FAILING) + sum(len(c.also_failed) for c in CASES), sorted(_failures(run.report))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_hostile_file_is_reported_or_stored_as_it_should_be(run, case):
    location = location_of(run.root, case.name)
    failures = _failures(run.report)
    if case.expect == "fail":
        assert location in failures, f"{case.id} not reported: {sorted(failures)[:5]}..."
        assert case.reason in failures[location], failures[location]
        assert location not in run.stored
    elif case.expect == "stored":
        assert location not in failures, failures.get(location)
        metas = run.stored[location]
        assert len({m["version"] for m in metas}) == 1
        if case.check:
            case.check(metas)
    elif case.expect == "copy":
        assert location not in failures and location not in run.stored
        assert any(location in json.loads(m["alts"]) for metas in run.stored.values() for m in metas)
    elif case.expect == "collides":
        assert location in run.stored and case.reason in failures[location]
    else:
        assert case.expect == "ignored"
        assert location not in failures and location not in run.stored
    for relpath in case.also_stored:
        assert str(run.root / relpath) in run.stored
    for relpath in case.also_failed:
        assert case.reason in failures[str(run.root / relpath)]


def test_status_counts_match_the_collection_and_every_stored_passage_is_well_formed(run, embedder):
    from ingest.chunking import MAX_CHARS_PER_TOKEN
    from ingest.index import Row
    from ingest.settings import ChunkingSettings

    expected = {str(run.root / p) for p in GOOD} | {location_of(run.root, c.name) for c in CASES if c.expect in ("stored", "collides")}
    expected |= {str(run.root / p) for c in CASES for p in c.also_stored}
    assert set(run.stored) == expected
    assert (run.status["documents"], run.status["passages"]) == (len(expected), len(run.rows))
    assert run.status["busy"] is None
    max_tokens = ChunkingSettings().max_tokens
    for row in run.rows:
        assert Row(row.id, row.text, row.meta, row.vectors).problem() is None, row.id
        assert len(row.text) <= max_tokens * MAX_CHARS_PER_TOKEN, row.meta["location"]
    embed_texts = [f"{r.meta['title']}\n{r.text}" for r in run.rows]
    assert max(embedder.count_tokens(embed_texts)) <= max_tokens + 1


def test_nothing_from_outside_the_folder_is_stored_or_answered(run):
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    for row in run.rows:
        blob = row.text + json.dumps(row.meta)
        assert SECRET not in blob and passwd not in blob, row.meta["location"]
    assert SECRET not in run.answer and passwd not in run.answer
    assert SECRET not in json.dumps(run.report)


def test_a_second_run_changes_nothing_and_reports_the_same_files(run):
    assert (run.second["added"], run.second["updated"], run.second["removed"]) == (0, 0, 0)
    assert (run.second["unchanged"], run.second["duplicates"]) == (len(run.stored), run.report["duplicates"])
    assert _failures(run.second) == _failures(run.report)


# --- targeted: what one big run cannot show ----------------------------------------------------------------------


def test_a_file_that_vanishes_between_listing_and_reading_is_reported(tmp_path, settings, embedder, monkeypatch):
    import ingest.sync
    from ingest.sources import scan
    from ingest.sync import run_ingest

    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "stays.md").write_text(f"---\ntitle: Stays\n---\n{fixture_text('stays')}\n")
    goes = folder / "goes.md"
    goes.write_text(f"---\ntitle: Goes\n---\n{fixture_text('goes')}\n")

    def listed_then_deleted(source):
        listing = scan(source)
        goes.unlink()
        return listing

    monkeypatch.setattr(ingest.sync, "scan", listed_then_deleted)
    report = run_ingest(settings, [str(folder)], embedder=embedder)
    assert (report.added, report.failed) == (1, 1)
    assert report.failures[0].location == str(goes) and "vanished during the run" in report.failures[0].reason


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path):
    from ingest.sources import ReadError, read_raw, scan

    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(30_000_000)  # sparse: 30 MB that cost nothing to make
    [listed] = scan(str(tmp_path)).files
    tracemalloc.start()
    try:
        with pytest.raises(ReadError, match=r"too large: 30,000,000 bytes \(limit 10,000,000"):
            read_raw(str(tmp_path), listed.path, listed.relpath, 10_000_000, listed=listed)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak:,} bytes allocated: the file was read"


def test_a_yaml_alias_bomb_is_refused_with_bounded_memory(tmp_path):
    from _ingest_inputs import _laughs, md

    from ingest.sources import RawDocument, ReadError, parse

    bomb = md(_laughs().replace("title: laughs", "title: *j"), fixture_text("bomb"))
    tracemalloc.start()
    try:
        with pytest.raises(ReadError, match="anchors are not allowed"):
            parse(RawDocument("s", "bomb.md", "bomb.md", bomb))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"{peak:,} bytes: the aliases were expanded"


def test_five_megabytes_without_a_break_give_passages_within_the_budget(embedder):
    from ingest.chunking import MAX_CHARS_PER_TOKEN, chunk
    from ingest.records import Article

    text = " ".join(f"licence{i % 9973}" for i in range(650_000))[:5_000_000]
    assert len(text) == 5_000_000 and "\n" not in text and "." not in text
    article = Article("x", "s", "x.txt", "Unbroken fixture", text, "h")
    longest = []

    def counting(texts):
        longest.append(max(map(len, texts)))
        return embedder.count_tokens(texts)

    passages = chunk(article, counting, 200, 1)
    budget_chars = 200 * MAX_CHARS_PER_TOKEN
    assert max(longest) <= budget_chars, "the tokenizer was given more than one window at a time"
    assert len(passages) > 2000 and all(p.end - p.start <= budget_chars for p in passages)
    sample = passages[:: max(1, len(passages) // 300)]
    assert max(embedder.count_tokens([p.embed_text for p in sample])) <= 201
    gaps = [text[a.end : b.start] for a, b in zip(passages, passages[1:]) if b.start > a.end]
    assert passages[0].start == 0 and passages[-1].end == len(text.rstrip())
    assert not any(gap.strip() for gap in gaps), "no word is lost between passages"
