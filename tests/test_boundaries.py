"""The typed objects that cross the layers, and the rules of the layers: the run report read back from the run log,
an Answer kept by the Slack bot read back (also in the form kept before one serialiser served JSON and Slack alike),
readers of the embedded store taking read access, and ingest never importing bot."""

from __future__ import annotations

import json

from bot.serialise import answer_dict, answer_from_record, answer_record, feedback_citation
from bot.types import Answer, Citation, Related, Sentence
from conftest import modules_loaded_by, run_cli
from ingest.lock import WriterLock
from ingest.report import Failure, LoggedRun, RunReport, SourceReport


def _report() -> RunReport:
    report = RunReport(sources=["/a", "https://example.com/feed"])
    report.begin("/a", "/a", "folder")
    report.begin("https://example.com/feed", "Trade feed", "feed")
    report.tally("/a", "added", 2)
    report.fail("/a", "/a/bad.md", "empty file")
    report.fail("https://example.com/feed", "https://example.com/feed", "HTTP 404 Not Found")
    return report


def test_a_run_report_reads_back_from_its_json_as_it_was():
    report = _report()
    assert (report.added, report.failed, report.per_source["/a"].added, report.all_sources_failed) == (2, 2, 2, False)
    assert report.per_source["https://example.com/feed"].error == "HTTP 404 Not Found"
    data = json.loads(json.dumps(report.to_dict()))
    assert data["failures"][0] == {"location": "/a/bad.md", "reason": "empty file", "source": "/a"}
    assert data["per_source"]["/a"]["failures"] == [{"location": "/a/bad.md", "reason": "empty file"}]
    assert RunReport.from_dict(data) == report
    logged = LoggedRun("2026-11-27T10:00:00+00:00", SourceReport.from_dict(data["per_source"]["/a"]))
    assert logged.to_dict() == {"finished": "2026-11-27T10:00:00+00:00", **data["per_source"]["/a"]}


def test_a_report_logged_before_a_count_existed_reads_with_that_count_at_zero():
    older = {"sources": ["/a"], "added": 1, "updated": 0, "unchanged": 0, "removed": 0, "failed": 0,
             "passages_embedded": 3, "seconds": 1.5, "failures": [{"location": "/a/x", "reason": "why"}],
             "per_source": {"/a": {"name": "/a", "kind": "folder", "added": 1, "error": None, "failures": []}}}
    report = RunReport.from_dict(older)
    assert (report.added, report.duplicates, report.fetched, report.stopped) == (1, 0, 0, False)
    assert report.failures == [Failure("/a/x", "why")] and report.per_source["/a"].not_modified == 0


def _answer() -> Answer:
    citation = Citation(1, "d1", "Deal signed", "/a/hill.md", ("It was signed.",), None, "The Hill", "2025-06-27",
                        ("https://copy.example/1",))
    related = Related("d2", "Talks", "/a/wire.md", "Talks ended.", "https://wire.example/2", "Wire", "2025-06-11",
                      ("https://copy.example/2",))
    return Answer("When?", True, (Sentence("It was signed.", 1, (2,)),), (citation,), related=(related,),
                  evidence=0.5)


def test_an_answer_kept_by_the_slack_bot_is_its_json_and_reads_back_whole():
    answer = _answer()
    record = json.loads(json.dumps(answer_record(answer)))
    assert {k: v for k, v in record.items() if k != "sentences"} == json.loads(json.dumps(answer_dict(answer)))
    restored = answer_from_record(record)
    assert (restored.question, restored.answered, restored.sentences) == (answer.question, True, answer.sentences)
    assert restored.citations == answer.citations  # alternates too
    assert restored.related == answer.related


def test_an_answer_kept_in_the_earlier_form_still_reads_and_exports_its_feedback():
    earlier = {  # what the Slack bot kept of an answer before the one serialiser
        "question": "When?", "answered": True, "sentences": [["It was signed.", 1, []]],
        "citations": [{"n": 1, "doc_id": "d1", "title": "Deal signed", "source": "/a/hill.md",
                       "quotes": ["It was signed."], "url": None, "outlet": "The Hill", "published": "2025-06-27"}],
        "related": [{"doc_id": "d2", "title": "Talks", "source": "/a/wire.md", "quote": "Talks ended.",
                     "url": "https://wire.example/2", "outlet": "Wire", "published": "2025-06-11"}],
    }
    restored = answer_from_record(earlier)
    assert restored.text == "It was signed. [1]" and restored.related[0].quote == "Talks ended."
    assert [feedback_citation(c) for c in restored.citations] == earlier["citations"]
    assert answer_from_record({k: v for k, v in earlier.items() if k != "related"}).related == ()


def test_timeline_and_the_digest_preview_are_refused_beside_a_writer_as_ask_is(tmp_path):
    env = {"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_DIGEST_CHANNELS": "C0DIGEST"}
    readers = (("ask", "When was the deal signed?"), ("timeline",), ("digest", "--dry-run"))
    with WriterLock(tmp_path):
        refused = {args: run_cli(*args, env=env) for args in readers}
    for args, r in refused.items():
        assert r.returncode == 1 and r.stdout == "", (args, r.stdout)
        assert "is writing to the index" in r.stderr and "ask again when it has finished" in r.stderr, (args, r.stderr)
    assert len({r.stderr for r in refused.values()}) == 1  # one refusal, word for word, whoever reads
    assert run_cli("timeline", env=env).stdout.strip() == "no articles"  # the writer gone, the reader reads


def test_ingest_never_imports_bot():
    loaded = modules_loaded_by("ingest.service, ingest.status, ingest.store, ingest.sync")
    assert "ingest.service" in loaded and {m for m in loaded if m == "bot" or m.startswith("bot.")} == set()
