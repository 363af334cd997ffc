"""Prometheus metrics of the bot, readiness, and the small HTTP answers that expose them.

The metrics live in prometheus_client's default registry beside the ingest's (ingest/metrics.py); `GET /metrics`
serves them all in the text format. Labels are bounded sets (a surface, an outcome, a composer, a reason class, a
Web API method and an HTTP status): never question text, user or channel ids.

Readiness (`GET /readyz`) is 200 only when the index is open and the model loaded and, when this process runs an
ingest schedule, the last successful run ended less than three schedule intervals ago; otherwise 503 with the
reason as JSON. `/healthz` stays a liveness check: the process answers.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

import ingest.metrics as ingest_metrics

QUESTIONS = Counter("dealbot_questions", "Questions by surface (mention, dm, slash, cli) and outcome "
                    "(answered, abstained, failed).", ["surface", "outcome"])
ANSWER_SECONDS = Histogram("dealbot_answer_seconds", "Time to compose an answer, by composer (extractive, llm).",
                           ["composer"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
LLM_FALLBACKS = Counter("dealbot_llm_fallbacks", "Offline answers given instead of the LLM's, by reason (error, "
                        "timeout, empty, uncited, not_asked, other).", ["reason"])
SLACK_CALLS = Counter("dealbot_slack_api_calls", "Slack Web API calls by method and HTTP status ('error': no "
                      "response).", ["method", "status"])
SLACK_RETRIES = Counter("dealbot_slack_api_retries", "Web API calls retried by the client (a connection that "
                        "failed, a 429 of the digest), by method.", ["method"])
SLACK_RATE_LIMITED = Counter("dealbot_slack_api_rate_limited", "Web API calls answered with HTTP 429, by method.",
                             ["method"])
SLACK_DELIVERY_RETRIES = Counter("dealbot_slack_delivery_retries", "Replies put back to be tried again because "
                                 "Slack did not take them.")
DIGEST_POSTS = Counter("dealbot_digest_posts", "Digest messages by result (posted, failed).", ["result"])

SURFACES = ("mention", "dm", "slash", "cli")
OUTCOMES = ("answered", "abstained", "failed")
_FALLBACKS = (  # how bot/llm.py words each reason (see the README, LLM answers) -> its class
    ("the model was not asked", "not_asked"),
    ("the model did not answer within", "timeout"),
    ("the model's reply was empty", "empty"),
    ("the model's reply cited no", "uncited"),
    ("the model failed", "error"),
)


def fallback_class(reason: str) -> str:
    return next((label for prefix, label in _FALLBACKS if reason.startswith(prefix)), "other")


def outcome_of(answer) -> str:
    return "answered" if answer.answered else "abstained"


def observe_answer(surface: str, answer, seconds: float | None = None) -> None:
    """Count one question answered (or abstained on) at `surface`, with its time and any LLM fallback."""
    QUESTIONS.labels(surface, outcome_of(answer)).inc()
    total = (answer.timings_ms or {}).get("total")
    ANSWER_SECONDS.labels(answer.composer).observe(seconds if seconds is not None else (total or 0.0) / 1000)
    if answer.fallback_reason:
        LLM_FALLBACKS.labels(fallback_class(answer.fallback_reason)).inc()


def observe_failure(surface: str) -> None:
    QUESTIONS.labels(surface, "failed").inc()


def observe_slack_call(method: str, status: int | str) -> None:
    SLACK_CALLS.labels(method, str(status)).inc()
    if str(status) == "429":
        SLACK_RATE_LIMITED.labels(method).inc()


def exposition() -> tuple[bytes, str]:
    """Every metric of this process in Prometheus' text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


for _surface in SURFACES:  # every series a dashboard plots exists from the start, at 0
    for _outcome in OUTCOMES:
        QUESTIONS.labels(_surface, _outcome)
for _result in ("posted", "failed"):
    DIGEST_POSTS.labels(_result)


# ---------------------------------------------------------------------------------------------------- readiness

@dataclass
class Readiness:
    """Whether this process should get traffic. `pipeline`: the bot's (None for an ingest-only process);
    `schedule`: the cron expression of the ingest this process runs (empty: none, freshness is not judged);
    `state_db`: the run log, read once for the last successful run before this process started."""

    pipeline: object | None = None
    schedule: str = ""
    state_db: Path | None = None

    def __post_init__(self):
        if self.state_db is not None:
            seed_last_success(self.state_db)

    def check(self, now: float | None = None) -> tuple[bool, str]:
        """(ready, reason): the reason says what is missing, or "ready"."""
        if self.pipeline is not None:
            index = getattr(self.pipeline, "index", None)
            if index is None or index.collection is None:
                return False, "the index is not open: run `dealbot ingest` (or check chroma_url)"
            if not getattr(getattr(self.pipeline, "embedder", None), "loaded", False):
                return False, "the embedding model is not loaded yet"
        if self.schedule:
            return self._fresh(time.time() if now is None else now)
        return True, "ready"

    def _fresh(self, now: float) -> tuple[bool, str]:
        last = ingest_metrics.last_success()
        limit = 3 * schedule_interval(self.schedule, now)
        if not last:
            return False, "no successful ingest run yet"
        if now - last > limit:
            return False, (f"the last successful ingest ended {int(now - last)} s ago, more than three schedule "
                           f"intervals ({int(limit)} s)")
        return True, "ready"


def schedule_interval(expression: str, now: float) -> float:
    """Seconds between the next two times `expression` matches after `now`."""
    from croniter import croniter

    it = croniter(expression, datetime.fromtimestamp(now).astimezone())
    first = it.get_next(float)
    return it.get_next(float) - first


def seed_last_success(state_db: Path) -> None:
    """Take the last run in the run log as the last success, if it was one and nothing newer is known."""
    from ingest import runlog

    last = runlog.last_run(state_db)
    if last is None or last.report.all_sources_failed:
        return
    try:
        finished = datetime.fromisoformat(last.finished).timestamp()
    except (TypeError, ValueError):
        return
    ingest_metrics.record_success(finished)


# ---------------------------------------------------------------------------------------------------- HTTP answers

def probe(path: str, method: str, readiness: Readiness) -> tuple[str, str, bytes] | None:
    """The answer to GET /metrics, /readyz or /healthz as (status, content type, body); None for any other
    request."""
    if method not in ("GET", "HEAD"):
        return None
    if path == "/metrics":
        body, content_type = exposition()
        return "200 OK", content_type, body
    if path == "/readyz":
        ready, reason = readiness.check()
        status = "200 OK" if ready else "503 Service Unavailable"
        return status, "application/json", json.dumps({"ready": ready, "reason": reason}).encode() + b"\n"
    if path == "/healthz":
        return "200 OK", "text/plain", b"ok\n"
    return None


def probe_app(readiness: Readiness):
    """A WSGI app serving only the probes (the --metrics-port of Socket Mode and of `ingest --schedule`)."""

    def application(environ, start_response):
        answer = probe(environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", ""), readiness)
        if answer is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        status, content_type, body = answer
        start_response(status, [("Content-Type", content_type)])
        return [body]

    return application


def serve_probes(host: str, port: int, readiness: Readiness):
    """Serve /metrics, /readyz and /healthz on host:port from a background thread; returns the server (.close())."""
    from waitress.server import create_server

    server = create_server(probe_app(readiness), host=host, port=port, threads=2, ident="dealbot-metrics")
    threading.Thread(target=server.run, name="dealbot-metrics", daemon=True).start()
    return server
