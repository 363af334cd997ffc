"""The JSON contracts of the `dealbot` commands, key for key: every key (and the keys of every nested object) that
`ask --json` (with and without --explain), `ingest --json`, `status --json`, `eval --json`, `feedback --json`,
`timeline --json` and `digest --json` print on the sample corpus.

Everything runs as a user runs it: real processes, one data directory ingested once. The corpus is the sample
article, then one fixture article added while `dealbot serve` runs its schedule (so the digest announces it), and a
file that cannot be read (so the failure lists are not empty). Feedback is given the way Slack gives it: a signed
mention to the real `dealbot serve --http`, then a click on 👍.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from conftest import DEALBOT, FIXTURES, ROOT, SAMPLE, free_port, run_cli, write_article
from slack_fakes import FakeSlackAPI, app_mention, block_actions, event_callback, post_action, post_event

SECRET = "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
CHANNELS = ("C0FAILS", "C0POSTS")  # the first channel's digest post is refused by Slack: it stays pending

# ------------------------------------------------------------------------------------------------- the contracts

ANSWER = {"question", "answered", "answer", "citations", "related", "evidence", "reason", "composer",
          "fallback_reason", "timings_ms", "note"}
EXPLAINED = ANSWER | {"asked", "filters", "passages", "sentences", "related_passages"}
CITATION = {"n", "doc_id", "title", "outlet", "source", "url", "published", "quote", "quotes", "alternates"}
RELATED = CITATION  # a related passage has the keys of a citation, `n` null
TIMINGS = {"retrieve", "compose", "total"}  # offline; an LLM adds "generate"
PASSAGE = {"rank", "id", "title", "published", "dense", "lexical", "fused", "via"}
SENTENCE = {"text", "passage_id", "score", "signals", "why"}
RELATED_PASSAGE = {"passage_id", "doc_id", "title", "fused", "match", "shown", "why"}

COUNTS = {"added", "updated", "unchanged", "removed", "duplicates", "failed", "fetched", "not_modified"}
RUN_REPORT = {"sources", "passages_embedded", "seconds", "stopped", "failures", "per_source"} | COUNTS
FAILURE = {"location", "reason", "source"}
PER_SOURCE = {"name", "kind", "error", "failures"} | COUNTS
SOURCE_FAILURE = {"location", "reason"}

STATUS = {"index", "model", "documents", "passages", "busy", "schedule", "sources", "last_run", "llm_model",
          "slack_pending", "slack_undelivered"}
STATUS_SOURCE = {"location", "name", "configured", "kind", "documents", "last_run"}
SOURCE_RUN = {"finished"} | PER_SOURCE  # a source's last run: when, and its counts
LAST_RUN = {"finished"} | RUN_REPORT

RATIOS = {"hit_at_k", "accuracy", "citation_accuracy", "abstention", "on_screen", "confident_and_wrong",
          "off_topic_with_passages"}
SCORE = {"questions", "answerable", "unanswerable", "counts", "ci95", "misses", "unseen", "answer_chars_median",
         "visible_chars_median", "llm_answers", "fallbacks", "latency_ms_p50", "latency_ms_p95"} | RATIOS
MISSES = {"not_retrieved", "other_sentence", "abstained_retrieved", "answered_unanswerable"}
UNSEEN = {"in_cited_article", "retrieved_not_shown", "not_retrieved"}
SPLITS = {"overall", "dev", "heldout"}
EVAL = SPLITS | {"min_score", "llm_model"}
CALIBRATED_MIN_SCORE = {"value", "dev_questions", "balanced_score"}
CALIBRATED_OFF_TOPIC = {"value", "dev_questions", "off_topic", "wrong_side"}

FEEDBACK = {"id", "vote", "user", "channel", "question", "answer", "at", "citations"}
FEEDBACK_CITATION = {"n", "doc_id", "title", "source", "quotes", "url", "outlet", "published"}
TIMELINE_ARTICLE = {"published", "title", "outlet", "url", "source", "doc_id", "lead", "alternates"}
ANNOUNCEMENT = {"channel", "doc_id", "status", "queued_at", "posted_at", "message_ts", "digest_id", "title", "url",
                "outlet", "published"}
PREVIEW = {"channel", "count", "articles", "more", "note"}

EVAL_QUESTIONS = [
    {"question": "When was the deal signed?", "answer_any": ["earlier this week", "two days ago"],
     "source_any": ["the-hill-2025-06-27"], "answerable": True, "split": "dev"},
    {"question": "What share of rare earths comes from China?", "answer_any": ["Sixty percent"],
     "source_any": ["the-hill-2025-06-27"], "answerable": True, "split": "heldout"},
    {"question": "Who is the commerce secretary?", "answer_any": ["Lutnick"], "source_any": ["the-hill-2025-06-27"],
     "answerable": True, "split": "dev"},
    {"question": "What did the European Parliament vote on rare earths?", "answerable": False, "split": "dev"},
    {"question": "What is the capital of Australia?", "answerable": False, "split": "dev", "off_topic": True},
    {"question": "How many licences has the EU granted?", "answerable": False, "split": "heldout"},
]


# ------------------------------------------------------------------------------------------------- one corpus

def _fixture_article(folder) -> None:
    write_article(
        folder, "test-wire-2025-07-10-licences.md",
        "Rare earth magnet shipments resume under export licences (test fixture)",
        "This article is a test fixture written for dealbot's tests. Chinese exporters of rare earth magnets "
        "received the first export licences under the London framework on Tuesday, officials said. The Ministry "
        "of Commerce said it had approved eligible applications for controlled items in accordance with the law. "
        "Carmakers in Detroit said the first shipments of magnets reached their plants within days.",
        published="2025-07-10", outlet="Test Wire (fixture)",
    )


def _serve(env: dict, port: int) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}
    return subprocess.Popen([str(DEALBOT), "serve", "--http", "--port", str(port)], env={**environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _healthy(port: int, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, proc.stderr.read()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _give_feedback(fake: FakeSlackAPI, url: str) -> None:
    """A mention answered in its thread, then a 👍 on the answer."""
    post_event(url, event_callback(app_mention("When was the deal signed?", channel="C0ASK")), SECRET)
    update = _wait_until(lambda: [c for c in fake.calls_to("chat.update") if "feedback_up" in json.dumps(c.args)],
                         60, "the answer")[-1]
    blocks = update.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    up = next(e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "feedback_up")
    status, _ = post_action(url, block_actions("feedback_up", up["value"], user="U0VOTER", channel="C0ASK",
                                               response_url=fake.response_url("fb")), SECRET)
    assert status == 200
    fake.wait_for("response_url", timeout=30)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The data directory and environment every command of this module runs with, after: an ingest of the sample
    corpus and an unreadable file; `dealbot serve` running its schedule, which ingests a fixture article and posts
    the digest of it (refused by Slack in one channel); a mention answered in Slack and a 👍 on it."""
    root = tmp_path_factory.mktemp("contracts")
    articles = root / "articles"
    shutil.copytree(SAMPLE, articles)
    shutil.copy(FIXTURES / "empty.md", articles / "empty.md")  # fails: the failure lists are not empty
    with FakeSlackAPI() as fake:
        env = {"DEALBOT_DATA_DIR": str(root / "data"), "DEALBOT_SOURCES": str(articles),
               "DEALBOT_SLACK_API_URL": fake.base_url, "DEALBOT_DIGEST_CHANNELS": ",".join(CHANNELS)}
        first = run_cli("ingest", "--json", "--source", str(articles), "--source", str(root / "missing"), env=env)
        assert first.returncode == 0, first.stderr
        _fixture_article(articles)
        fake.fail_next("chat.postMessage", status=400, error="channel_not_found")
        port = free_port()
        proc = _serve({**env, "DEALBOT_INGEST_SCHEDULE": "0 0 1 1 *", "SLACK_BOT_TOKEN": "xoxb-test-token",
                       "SLACK_SIGNING_SECRET": SECRET}, port)
        try:
            _wait_until(lambda: _healthy(port, proc), 120, "dealbot serve")
            fake.wait_for("chat.postMessage", count=2, timeout=60)  # the digest: refused in one channel, posted in one
            _give_feedback(fake, f"http://127.0.0.1:{port}/slack/events")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {"env": env, "first_ingest": json.loads(first.stdout.splitlines()[-1]), "root": root}


def _json(corpus, *args, input: str | None = None, lines: bool = False):
    r = run_cli(*args, env=corpus["env"], input=input)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()] if lines else json.loads(r.stdout)


def _keys(items, expected: set, what: str) -> None:
    assert items, f"no {what} to check the keys of"
    for item in items:
        assert set(item) == expected, (what, set(item) ^ expected)


# ------------------------------------------------------------------------------------------------- the tests

def test_ingest_json_keys(corpus):
    report = corpus["first_ingest"]
    _keys([report], RUN_REPORT, "run report")
    _keys(report["failures"], FAILURE, "failure")
    _keys(report["per_source"].values(), PER_SOURCE, "per-source counts")
    _keys([f for s in report["per_source"].values() for f in s["failures"]], SOURCE_FAILURE, "per-source failure")
    assert any(s["error"] for s in report["per_source"].values()), "a source that failed as a whole"


ASKED = ["When was the deal signed?", "", "What is the capital of Australia?",
         "When did rare earth magnet shipments reach Detroit plants?", "What did China agree to? " * 60]


def test_ask_json_keys(corpus):
    answers = _json(corpus, "ask", "--json", input="\n".join(ASKED) + "\n", lines=True)
    assert len(answers) == len(ASKED)
    _keys(answers, ANSWER, "answer")
    _keys([c for a in answers for c in a["citations"]], CITATION, "citation")
    _keys([r for a in answers for r in a["related"]], RELATED, "related passage")
    _keys([a["timings_ms"] for a in answers if a["question"]], TIMINGS, "timings")
    assert answers[1]["reason"] and answers[-1]["note"], "a blank question's reason, a long question's note"
    assert answers[0]["answered"] and not answers[2]["answered"]


def test_ask_explain_json_keys(corpus):
    answers = _json(corpus, "ask", "--json", "--explain", input="\n".join(ASKED[:4]) + "\n", lines=True)
    _keys([a for a in answers if a["question"]], EXPLAINED, "explained answer")
    _keys([answers[1]], ANSWER, "blank line")  # nothing was retrieved for a blank line: nothing to explain
    _keys([p for a in answers for p in a.get("passages", ())], PASSAGE, "passage")
    _keys([s for a in answers for s in a.get("sentences", ())], SENTENCE, "sentence")
    _keys([r for a in answers for r in a.get("related_passages", ())], RELATED_PASSAGE, "related-passage choice")
    _keys([c for a in answers for c in a["citations"]], CITATION, "citation")
    _keys([r for a in answers for r in a["related"]], RELATED, "related passage")
    signals = [s["signals"] for a in answers for s in a.get("sentences", ())]
    assert all(isinstance(k, str) and isinstance(v, (int, float)) for s in signals for k, v in s.items())


def test_status_json_keys(corpus):
    info = _json(corpus, "status", "--json")
    _keys([info], STATUS, "status")
    _keys(info["sources"], STATUS_SOURCE, "status source")
    _keys([s["last_run"] for s in info["sources"]], SOURCE_RUN, "a source's last run")
    _keys([f for s in info["sources"] for f in s["last_run"]["failures"]], SOURCE_FAILURE, "a source's failure")
    _keys([info["last_run"]], LAST_RUN, "last run")
    assert info["documents"] == 2 and info["busy"] is None


def test_eval_json_keys(corpus):
    questions = corpus["root"] / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in EVAL_QUESTIONS), encoding="utf-8")
    plain = _json(corpus, "eval", str(questions), "--json")
    _keys([plain], EVAL, "eval report")
    full = _json(corpus, "eval", str(questions), "--json", "--compare", "baseline", "--calibrate")
    _keys([full], EVAL | {"baseline", "calibrated_min_score", "calibrated_off_topic_match"}, "eval report, all options")
    _keys([full["baseline"]], EVAL, "the baseline's report")
    _keys([full["calibrated_min_score"]], CALIBRATED_MIN_SCORE, "calibrated min_score")
    _keys([full["calibrated_off_topic_match"]], CALIBRATED_OFF_TOPIC, "calibrated off-topic cut")
    parts = [r[s] for r in (plain, full, full["baseline"]) for s in SPLITS]
    _keys(parts, SCORE, "split score")
    _keys([p["counts"] for p in parts], RATIOS, "counts")
    _keys([p["ci95"] for p in parts], RATIOS, "intervals")
    _keys([p["misses"] for p in parts], MISSES, "misses")
    _keys([p["unseen"] for p in parts], UNSEEN, "unseen")


def test_feedback_json_keys(corpus):
    records = _json(corpus, "feedback", "--json")
    _keys(records, FEEDBACK, "feedback record")
    _keys([c for r in records for c in r["citations"]], FEEDBACK_CITATION, "feedback citation")
    assert records[0]["vote"] == "up" and records[0]["user"] == "U0VOTER"


def test_timeline_json_keys(corpus):
    articles = _json(corpus, "timeline", "--json")
    _keys(articles, TIMELINE_ARTICLE, "timeline article")
    assert len(articles) == 2


def test_digest_json_keys(corpus):
    rows = _json(corpus, "digest", "--json")
    _keys(rows, ANNOUNCEMENT, "announcement")
    assert sorted(r["status"] for r in rows) == ["pending", "posted"]
    previews = _json(corpus, "digest", "--dry-run", "--json")
    _keys(previews, PREVIEW, "digest preview")
    _keys([a for p in previews for a in p["articles"]], TIMELINE_ARTICLE, "a preview's article")
