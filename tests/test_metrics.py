"""Prometheus metrics and readiness, scraped over real HTTP: the bot on waitress after real signed Slack requests
(the fake Web API on 127.0.0.1), and `dealbot ingest --schedule --metrics-port` as a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Readiness
from conftest import DEALBOT, ROOT, SAMPLE, free_port, make_settings, write_article
from slack_fakes import app_mention, event_callback, message_im, post_event, post_form, slash_command
from test_slack import SECRET, SECRETS, fake, start_bot  # noqa: F401  (fake: the module's fake Web API fixture)

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, timeout: float = 5.0) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, error statuses included."""
    try:
        with OPENER.open(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample of GET base/metrics, parsed by prometheus_client's own parser: {(name, labels): value}."""
    status, content_type, body = get(f"{base}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def bot(sample_pipeline, fake, tmp_path_factory):
    server, url, _ = start_bot(sample_pipeline, fake, tmp_path_factory.mktemp("metrics-bot"))
    yield url
    server.close()


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_questions_latency_and_web_api_calls_are_counted_after_signed_requests(bot, fake):
    fake.reset()
    before = scrape(bot)
    events = bot + "/slack/events"
    question = "When was the deal signed by the negotiators?"
    assert post_event(events, event_callback(app_mention(question, channel="C31", user="U31")), SECRET)[0] == 200
    assert post_event(events, event_callback(message_im("Who is the commerce secretary?", channel="D31")), SECRET)[0] == 200
    assert post_form(events, slash_command("What is the capital of Australia?", response_url=fake.response_url("m1")),
                     SECRET)[0] == 200
    fake.fail_next("chat.update", status=429, retry_after=1)  # one answer waits out a 429, then goes
    after = wait_until(lambda: (s := scrape(bot)) and sum(
        value(s, "dealbot_questions_total", surface=f, outcome=o) - value(before, "dealbot_questions_total", surface=f, outcome=o)
        for f in ("mention", "dm", "slash") for o in ("answered", "abstained", "failed")) >= 3 and s, 60, "3 questions")

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("dealbot_questions_total", surface="mention", outcome="answered") == 1
    assert moved("dealbot_questions_total", surface="dm", outcome="answered") == 1
    assert moved("dealbot_questions_total", surface="slash", outcome="abstained") == 1
    assert moved("dealbot_answer_seconds_count", composer="extractive") == 3
    assert moved("dealbot_answer_seconds_sum", composer="extractive") > 0
    assert moved("dealbot_slack_api_calls_total", method="chat.postMessage", status="200") >= 2  # the placeholders
    wait_until(lambda: len([c for c in fake.calls_to("chat.update") if c.status == 200]) >= 2, 30, "the answers")
    final = scrape(bot)
    assert value(final, "dealbot_slack_api_calls_total", method="chat.update", status="429") - value(
        before, "dealbot_slack_api_calls_total", method="chat.update", status="429") == 1
    assert value(final, "dealbot_slack_api_rate_limited_total", method="chat.update") - value(
        before, "dealbot_slack_api_rate_limited_total", method="chat.update") == 1
    assert value(final, "dealbot_slack_delivery_retries_total") - value(before, "dealbot_slack_delivery_retries_total") >= 1
    # Labels are bounded sets: no question text, user or channel id anywhere in the exposition.
    body = get(bot + "/metrics")[2]
    for leak in (question, "U31", "C31", "D31", SECRETS.bot_token, SECRET):
        assert leak not in body


def test_an_ingest_run_is_counted_and_sets_the_index_gauges(bot, tmp_path, embedder):
    from ingest.sync import run_ingest

    folder = tmp_path / "articles"
    write_article(folder, "a.md", "Metrics fixture one", "A fixture article for the metrics test. It says little.")
    write_article(folder, "b.md", "Metrics fixture two", "Another fixture article for the metrics test, also short.")
    settings = make_settings(tmp_path / "data")
    before = scrape(bot)
    started = time.time()
    run_ingest(settings, [str(folder)], embedder=embedder)
    (folder / "b.md").unlink()
    (folder / "bad.md").write_bytes(b"\x00binary")
    report = run_ingest(settings, [str(folder)], embedder=embedder)
    after = scrape(bot)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("dealbot_ingest_runs_total", result="ok") == 1
    assert moved("dealbot_ingest_runs_total", result="partial") == 1  # the binary file failed
    assert moved("dealbot_ingest_documents_total", change="added") == 2
    assert moved("dealbot_ingest_documents_total", change="removed") == 1
    assert moved("dealbot_ingest_documents_total", change="failed") == report.failed == 1
    assert moved("dealbot_ingest_run_seconds_count") == 2
    from ingest.embed import DIMENSIONS, MODEL_NAME
    from ingest.index import Index

    assert value(after, "dealbot_index_passages") == Index(settings, MODEL_NAME, DIMENSIONS).count() > 0
    assert value(after, "dealbot_ingest_last_success_timestamp_seconds") >= started


def test_readyz_is_200_when_the_index_is_open_and_the_model_loaded(bot):
    status, content_type, body = get(bot + "/readyz")
    assert status == 200 and content_type == "application/json"
    assert json.loads(body) == {"ready": True, "reason": "ready"}
    assert get(bot + "/healthz")[:1] == (200,)


def test_readiness_needs_a_recent_successful_run_when_a_schedule_is_set(sample_pipeline):
    readiness = Readiness(sample_pipeline, "*/30 * * * *")
    from ingest.metrics import last_success, record_success

    record_success(time.time())
    assert readiness.check() == (True, "ready")
    ready, reason = readiness.check(now=last_success() + 3 * 1800 + 60)
    assert not ready and "more than three schedule intervals (5400 s)" in reason
    assert Readiness(sample_pipeline).check(now=last_success() + 10**6) == (True, "ready")  # no schedule: not judged


def _environ(**extra) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}
    return {**environ, **extra}


def test_ingest_schedule_serves_metrics_and_readiness_on_its_metrics_port(tmp_path, embedder):
    """A schedule whose every run fails is not ready (503, with the reason); one whose runs succeed is (200), and
    its metrics count the run. (The working one's articles are ingested beforehand, in this process: its own run
    then finds them unchanged and loads no model.)"""
    from ingest.sync import run_ingest

    run_ingest(make_settings(tmp_path / "working"), [str(SAMPLE)], embedder=embedder)
    port = free_port()
    failing = subprocess.Popen(
        [str(DEALBOT), "ingest", "--schedule", "*/5 * * * *", "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
         "--source", str(tmp_path / "missing")],
        env=_environ(DEALBOT_DATA_DIR=str(tmp_path / "failing")), cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        samples = wait_until(lambda: _scrape_or_none(base, "dealbot_ingest_runs_total", result="failed"), 90, "a failed run")
        status, _, body = get(base + "/readyz")
        assert status == 503 and json.loads(body) == {"ready": False, "reason": "no successful ingest run yet"}
        assert value(samples, "dealbot_ingest_runs_total", result="ok") == 0
    finally:
        failing.terminate()
        failing.wait(timeout=30)

    port = free_port()
    working = subprocess.Popen(
        [str(DEALBOT), "ingest", "--schedule", "*/5 * * * *", "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
         "--source", str(SAMPLE)],
        env=_environ(DEALBOT_DATA_DIR=str(tmp_path / "working")), cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        samples = wait_until(lambda: _scrape_or_none(base, "dealbot_ingest_runs_total", result="ok"), 120, "an ok run")
        assert value(samples, "dealbot_ingest_documents_total", change="added") == 0  # unchanged since
        assert value(samples, "dealbot_index_passages") > 0
        status, _, body = get(base + "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
    finally:
        working.terminate()
        assert working.wait(timeout=30) == 0, working.stderr.read()


def _scrape_or_none(base: str, name: str, **labels):
    try:
        samples = scrape(base)
    except OSError:
        return None
    return samples if value(samples, name, **labels) >= 1 else None


def test_digest_posts_are_counted_by_result(bot, fake, tmp_path, embedder):
    from bot.digest import Digest
    from bot.slack.digest import SlackDigestPoster
    from ingest.sync import run_ingest

    folder = tmp_path / "articles"
    write_article(folder, "a.md", "Digest metrics fixture one", "The back catalogue: never announced.")
    settings = make_settings(tmp_path / "data", slack_api_url=fake.base_url, digest_channels="CDIGEST09")
    run_ingest(settings, [str(folder)], embedder=embedder)
    digest = Digest(settings, SlackDigestPoster(SECRETS.bot_token, settings))
    digest.start(fresh_index=False)
    before = scrape(bot)
    write_article(folder, "b.md", "Digest metrics fixture two", "A new fixture article, announced once.")
    run_ingest(settings, [str(folder)], embedder=embedder)
    assert digest.after_run() == "CDIGEST09: 1 new article posted"
    write_article(folder, "c.md", "Digest metrics fixture three", "Another new fixture article; its post fails.")
    run_ingest(settings, [str(folder)], embedder=embedder)
    fake.fail_next("chat.postMessage", status=400, error="channel_not_found")
    assert "not posted" in digest.after_run()
    after = scrape(bot)
    assert value(after, "dealbot_digest_posts_total", result="posted") - value(before, "dealbot_digest_posts_total", result="posted") == 1
    assert value(after, "dealbot_digest_posts_total", result="failed") - value(before, "dealbot_digest_posts_total", result="failed") == 1
