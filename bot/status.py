"""The facts `dealbot status` shows, and the App Home too: where the index is, what it holds, the schedule, the
last ingest run, and each source's last run and errors."""

from __future__ import annotations

from collections import Counter

from ingest import runlog
from ingest.embed import DIMENSIONS, MODEL_NAME
from ingest.index import Index
from ingest.lock import LockHeld, ReadAccess
from ingest.settings import Settings


def status_info(settings: Settings, index: Index | None = None) -> dict:
    """The status as one JSON-ready dict (the contract of `dealbot status --json`).

    Without `index`, the embedded store is opened for reading; while another process writes to it, what
    state.sqlite says is still shown, with `documents`/`passages` null and `busy` naming the writer."""
    if index is not None or settings.server_mode:
        return _status(settings, index or Index(settings, MODEL_NAME, DIMENSIONS), None)
    try:
        access = ReadAccess(settings.data_dir)
    except LockHeld as exc:
        return _status(settings, None, str(exc))
    try:
        return _status(settings, Index(settings, MODEL_NAME, DIMENSIONS), None)
    finally:
        access.release()


def _status(settings: Settings, index: Index | None, busy: str | None) -> dict:
    states = [s for s in index.doc_states() if s.complete] if index else []
    documents = Counter(s.source for s in {(s.source, s.location): s for s in states}.values())
    runs = runlog.last_source_runs(settings.state_db)
    configured = {s.location for s in settings.sources}
    locations = [s.location for s in settings.sources] + sorted((set(documents) | set(runs)) - configured)
    sources = []
    for location in locations:
        spec, run = settings.source(location), runs.get(location)
        sources.append({
            "location": location,
            "name": spec.label,
            "configured": location in configured,
            "kind": run["kind"] if run else ("web" if spec.is_url else "folder"),
            "documents": documents.get(location, 0) if index else None,
            "last_run": run,
        })
    return {
        "index": index.where if index else f"{settings.chroma_path}, collection '{settings.collection}'",
        "model": MODEL_NAME,
        "documents": len({(s.source, s.location) for s in states}) if index else None,
        "passages": index.count() if index else None,
        "busy": busy,  # why the index could not be read now (another process writes to the embedded store)
        "schedule": settings.ingest.schedule or None,
        "sources": sources,
        "last_run": runlog.last_run(settings.state_db),
        "llm_model": settings.llm.model or None,
        **_slack_deliveries(settings),
    }


def _slack_deliveries(settings: Settings) -> dict:
    """Replies the Slack bot still has to deliver (retried while Slack fails), and those it gave up on."""
    from .state import slack_state

    if not slack_state(settings).exists():
        return {"slack_pending": 0, "slack_undelivered": 0}
    from .slack.store import SlackStore

    counts = SlackStore.of(settings).delivery_counts()
    return {"slack_pending": counts["pending"], "slack_undelivered": counts["failed"]}


def source_counts(run: dict) -> str:
    """A source's last run in words: "2 added, 14 unchanged", or "nothing to do"."""
    keys = ("added", "updated", "unchanged", "removed", "duplicates", "failed", "not_modified")
    return ", ".join(f"{run[k]} {k.replace('_', ' ')}" for k in keys if run.get(k)) or "nothing to do"
