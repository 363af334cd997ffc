"""What the index holds and how the ingest went: where the index is, its documents and passages, the schedule, the
last run, and each source's last run and errors. `dealbot status` and the App Home show it (the bot adds what only
it knows: the Slack replies waiting to be delivered)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from . import runlog
from .embed import MODEL_NAME
from .index import Index
from .lock import LockHeld
from .report import LoggedRun
from .settings import Settings
from .store import open_index, read_access


@dataclass(frozen=True)
class SourceStatus:
    """A source (configured, or still holding documents): its kind, its documents, its last run."""

    location: str
    name: str
    configured: bool
    kind: str
    documents: int | None  # None when the index could not be read now
    last_run: LoggedRun | None

    def to_dict(self) -> dict:
        return {"location": self.location, "name": self.name, "configured": self.configured, "kind": self.kind,
                "documents": self.documents, "last_run": self.last_run.to_dict() if self.last_run else None}


@dataclass(frozen=True)
class IndexStatus:
    index: str  # where the index is
    model: str
    documents: int | None  # None while another process writes to the embedded store (see `busy`)
    passages: int | None
    busy: str | None  # why the index could not be read now: the process writing to the embedded store
    schedule: str | None
    sources: tuple[SourceStatus, ...]
    last_run: LoggedRun | None
    llm_model: str | None

    def to_dict(self) -> dict:
        return {"index": self.index, "model": self.model, "documents": self.documents, "passages": self.passages,
                "busy": self.busy, "schedule": self.schedule, "sources": [s.to_dict() for s in self.sources],
                "last_run": self.last_run.to_dict() if self.last_run else None, "llm_model": self.llm_model}


def index_status(settings: Settings, index: Index | None = None) -> IndexStatus:
    """The status, read from `index` (already open, as the running bot's) or, without it, from the index opened
    for reading. While another process writes to the embedded store, what state.sqlite says is still given, with
    `documents` and `passages` None and `busy` naming the writer."""
    if index is not None or settings.server_mode:
        return _status(settings, index or open_index(settings), None)
    try:
        access = read_access(settings)
    except LockHeld as exc:
        return _status(settings, None, str(exc))
    try:
        return _status(settings, open_index(settings), None)
    finally:
        access.release()


def _status(settings: Settings, index: Index | None, busy: str | None) -> IndexStatus:
    states = [s for s in index.doc_states() if s.complete] if index else []
    documents = Counter(s.source for s in {(s.source, s.location): s for s in states}.values())
    return IndexStatus(
        index=index.where if index else f"{settings.chroma_path}, collection '{settings.collection}'",
        model=MODEL_NAME,
        documents=len({(s.source, s.location) for s in states}) if index else None,
        passages=index.count() if index else None,
        busy=busy,
        schedule=settings.ingest.schedule or None,
        sources=_sources(settings, documents if index else None),
        last_run=runlog.last_run(settings.state_db),
        llm_model=settings.llm.model or None,
    )


def _sources(settings: Settings, documents: Counter | None) -> tuple[SourceStatus, ...]:
    runs = runlog.last_source_runs(settings.state_db)
    configured = {s.location for s in settings.sources}
    known = set(documents or ()) | set(runs)
    locations = [s.location for s in settings.sources] + sorted(known - configured)
    statuses = []
    for location in locations:
        spec, run = settings.source(location), runs.get(location)
        kind = run.report.kind if run else ("web" if spec.is_url else "folder")
        count = documents.get(location, 0) if documents is not None else None
        statuses.append(SourceStatus(location, spec.label, location in configured, kind, count, run))
    return tuple(statuses)
