"""Prometheus metrics of the ingest: runs by result, documents by change, run duration, passages in the index and
the time of the last successful run. Registered in prometheus_client's default registry, which bot/metrics.py
serves (GET /metrics, --metrics-port); the bot's own metrics live there.

A run's result: "ok" (it completed, nothing failed), "partial" (it completed with documents or sources that failed,
or was stopped early), "failed" (every source failed, or the run raised). Only "failed" is not a success.
"""

from __future__ import annotations

import functools
import time

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter("dealbot_ingest_runs", "Ingest runs by result (ok, partial, failed).", ["result"])
DOCUMENTS = Counter("dealbot_ingest_documents", "Documents by what an ingest run did with them.", ["change"])
RUN_SECONDS = Histogram("dealbot_ingest_run_seconds", "How long an ingest run took.",
                        buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
PASSAGES = Gauge("dealbot_index_passages", "Passages in the index, as last counted by this process.")
LAST_SUCCESS = Gauge("dealbot_ingest_last_success_timestamp_seconds",
                     "When the last successful ingest run ended (Unix time); 0 when none is known.")

CHANGES = ("added", "updated", "removed", "failed")


def result_of(report) -> str:
    if report.all_sources_failed:
        return "failed"
    return "partial" if report.failed or report.stopped else "ok"


def observed(run):
    """Decorates `run_ingest`: counts the run, its documents and its time, and sets the passages in the index."""

    @functools.wraps(run)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            report = run(*args, **kwargs)
        except BaseException:
            RUNS.labels("failed").inc()
            RUN_SECONDS.observe(time.perf_counter() - started)
            raise
        observe_run(report, time.perf_counter() - started)
        return report

    return wrapper


def observe_run(report, seconds: float) -> None:
    result = result_of(report)
    RUNS.labels(result).inc()
    RUN_SECONDS.observe(seconds)
    for change in CHANGES:
        DOCUMENTS.labels(change).inc(getattr(report, change))
    if result != "failed":
        record_success(time.time())


_last_success = [0.0]  # the value behind LAST_SUCCESS, for readiness (bot/metrics.py)


def record_success(at: float) -> None:
    """A successful run ended at `at` (Unix time); an older one than already known changes nothing."""
    if at > _last_success[0]:
        _last_success[0] = at
        LAST_SUCCESS.set(at)


def last_success() -> float:
    """When the last successful run known to this process ended (Unix time), 0.0 if none."""
    return _last_success[0]


def count_passages(index) -> None:
    """Set the passages gauge from the index (a count, not a scan)."""
    if index.collection is not None:
        PASSAGES.set(index.count())


for _result in ("ok", "partial", "failed"):  # every series exists from the start, at 0
    RUNS.labels(_result)
for _change in CHANGES:
    DOCUMENTS.labels(_change)
