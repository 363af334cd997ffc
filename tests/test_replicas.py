"""Two `dealbot serve --http` replicas sharing a real PostgreSQL (state_url) and a real Chroma server, as behind a
load balancer: Slack's events and their retries reach either replica, and every question is answered exactly once.
The same session checks the JSON logs (`--log-format json`): one object per line with its fields, and no token,
secret or key in any line; and the metrics each replica serves on its own port."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import DEALBOT, OPENAI_KEY, ROOT, SAMPLE, free_port, make_settings, run_cli
from slack_fakes import (
    FakeSlackAPI,
    app_mention,
    block_actions,
    event_callback,
    message_im,
    post_action,
    post_event,
    post_form,
    slash_command,
)
from test_metrics import scrape, value

BOT_TOKEN = "xoxb-replica-0123456789abcdef"
APP_TOKEN = "xapp-1-replica-0123456789abcdef"
SECRET = "5c0ffee5ecret0123456789abcdef0123"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SECRETS = (BOT_TOKEN, APP_TOKEN, SECRET, OPENAI_KEY)


@pytest.fixture(scope="module")
def fake():
    with FakeSlackAPI() as api:
        yield api


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, chroma_server, embedder, postgres, fake, fake_llm):
    """Two replicas (ports, log files, env) over one Postgres database and one Chroma collection."""
    from ingest.sync import run_ingest

    root = tmp_path_factory.mktemp("replicas")
    index_settings = make_settings(root / "ingest", chroma_url=chroma_server, collection="replicas")
    run_ingest(index_settings, [str(SAMPLE)], embedder=embedder)
    url = postgres.database("replicas")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}
    env = {**base, "DEALBOT_CHROMA_URL": chroma_server, "DEALBOT_COLLECTION": "replicas", "DEALBOT_STATE_URL": url,
           "DEALBOT_SLACK_API_URL": fake.base_url, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
           "SLACK_SIGNING_SECRET": SECRET, "DEALBOT_LLM_MODEL": "openai:cooperative",
           "DEALBOT_LLM_BASE_URL": fake_llm.base_url, "DEALBOT_LLM_MAX_RETRIES": "0", "OPENAI_API_KEY": OPENAI_KEY,
           "DEALBOT_SLACK_STREAM_INTERVAL_SECONDS": "0.2"}
    procs, ports, logs = [], [], []
    metrics_port = free_port()  # replica b also serves its probes on a port of their own, as Socket Mode would
    for name in ("a", "b"):
        port, log = free_port(), root / f"{name}.log"
        handle = log.open("w")
        extra = ["--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1"] if name == "b" else []
        procs.append(subprocess.Popen(
            [str(DEALBOT), "--log-format", "json", "serve", "--http", "--port", str(port), *extra],
            env={**env, "DEALBOT_DATA_DIR": str(root / name)}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=handle))
        ports.append(port)
        logs.append(log)
    try:
        for proc, port, log in zip(procs, ports, logs):
            _wait_ready(proc, port, log)
        yield [f"http://127.0.0.1:{p}" for p in ports], logs, env, f"http://127.0.0.1:{metrics_port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _wait_ready(proc, port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with OPENER.open(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"replica on {port} not ready: {log.read_text()[-2000:]}")


QUESTIONS = ["When was the deal signed?", "Who is the commerce secretary?", "Where was the deal struck?",
             "What did China agree to?", "What share of rare earths comes from China?"]


def test_one_event_sent_to_both_replicas_with_retries_is_answered_exactly_once(replicas, fake):
    urls, _, _, metrics_b = replicas
    before = [scrape(u) for u in urls]
    payloads = [event_callback(app_mention(q, channel=f"C7{i}")) for i, q in enumerate(QUESTIONS)]
    sends = [(urls[(i + retry) % 2], payload, retry or None) for i, payload in enumerate(payloads) for retry in range(4)]
    results: list[int] = []
    threads = [threading.Thread(target=lambda s=s: results.append(post_event(s[0] + "/slack/events", s[1], SECRET,
                                                                               retry_num=s[2])[0])) for s in sends]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * len(sends)

    def done():
        return all(_answer_shown(fake, f"C7{i}", p["event"]["ts"]) for i, p in enumerate(payloads))

    _wait(done, 90, "every question answered")
    time.sleep(1.5)  # time for a doubled answer to show, if there were one
    for i, payload in enumerate(payloads):
        posted = fake.posted(f"C7{i}", payload["event"]["ts"])
        assert len(posted) == 1, posted  # one placeholder, replaced by the one answer; nothing posted twice
        assert "Looking through" not in posted[0]["text"] and not posted[0].get("deleted")
    after = [scrape(u) for u in urls]
    counted = sum(value(a, "dealbot_questions_total", surface="mention", outcome=o)
                  - value(b, "dealbot_questions_total", surface="mention", outcome=o)
                  for a, b in zip(after, before) for o in ("answered", "abstained", "failed"))
    assert counted == len(QUESTIONS)  # the two replicas between them composed each answer once
    assert sum(value(a, "dealbot_answer_seconds_count", composer="llm") for a in after) >= len(QUESTIONS)
    on_its_own_port = scrape(metrics_b)  # the same process's registry, served on --metrics-port
    assert value(on_its_own_port, "dealbot_questions_total", surface="mention", outcome="answered") == value(
        scrape(urls[1]), "dealbot_questions_total", surface="mention", outcome="answered")
    assert OPENER.open(metrics_b + "/readyz", timeout=5).status == 200


def _answer_shown(fake, channel: str, ts: str) -> bool:
    shown = fake.thread(channel, ts)
    return len(shown) >= 1 and all("Looking through" not in m["text"] for m in shown)


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.2)


def test_feedback_on_one_replica_finds_the_answer_the_other_composed(replicas, fake):
    urls, _, env, _ = replicas
    payload = event_callback(app_mention("Who is the commerce secretary?", channel="C80"))
    post_event(urls[0] + "/slack/events", payload, SECRET)
    _wait(lambda: _answer_shown(fake, "C80", payload["event"]["ts"]), 60, "the answer")
    message = fake.thread("C80", payload["event"]["ts"])[0]
    up = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "feedback_up")
    status, _ = post_action(urls[1] + "/slack/events", block_actions("feedback_up", up["value"], user="U80", channel="C80",
                                                                   response_url=fake.response_url("fb80")), SECRET)
    assert status == 200
    _wait(lambda: fake.ephemeral("fb80") or [c for c in fake.calls_to("response_url") if c.path.endswith("fb80")], 30,
          "the thanks")
    exported = run_cli("feedback", "--json", env={k: env[k] for k in ("DEALBOT_STATE_URL",)} | {"DEALBOT_DATA_DIR": "/nonexistent-dealbot"})
    assert exported.returncode == 0, exported.stderr
    votes = [(r["vote"], r["user"], r["channel"]) for r in json.loads(exported.stdout)]
    assert ("up", "U80", "C80") in votes


def test_json_logs_of_the_whole_session_carry_fields_and_no_secret(replicas, fake):
    urls, logs, _, _ = replicas
    secret_question = "What did the negotiators say about magnets in the private annex?"
    post_event(urls[1] + "/slack/events", event_callback(message_im(secret_question, channel="D81")), SECRET)
    post_form(urls[0] + "/slack/events", slash_command("When was the deal signed?", response_url=fake.response_url("s81")), SECRET)
    post_event(urls[0] + "/slack/events", event_callback(app_mention("forged", channel="C81")), "wrong-secret-0000")
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    _wait(lambda: fake.thread("D81", None) and all("Looking through" not in m["text"] for m in fake.thread("D81", None))
          and fake.ephemeral("s81"), 60, "the DM and the slash command answered")
    time.sleep(0.5)
    lines = [line for log in logs for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records and all({"time", "level", "event"} <= set(r) for r in records)
    answered = [r for r in records if r["event"] == "answered"]
    assert {r["surface"] for r in answered} >= {"mention", "dm", "slash"}
    assert all({"channel", "latency_ms", "outcome", "delivery", "composer"} <= set(r) for r in answered)
    assert all("question" not in r and r["question_chars"] > 0 for r in answered)  # log_questions is off
    taken = [r for r in records if r["event"] == "question taken"]
    assert taken and all(r["event_id"].startswith("Ev") and r["channel"] for r in taken)
    assert any("refused a request" in r["event"] for r in records)
    text = "\n".join(lines)
    for secret in SECRETS:
        assert secret not in text
    assert secret_question not in text
