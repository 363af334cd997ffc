"""The run report of an ingest: what a run did, in total and per source. `dealbot ingest --json` prints it, the
run log (ingest.runlog) keeps it, `dealbot status` and the Home tab show the last one.

`to_dict` is the JSON contract; `from_dict` reads a logged report back, also one logged before a count existed
(it is 0 then).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class Failure:
    """A document (or a whole source, when `location` is the source) that could not be synced, and why."""

    location: str
    reason: str
    source: str = ""


@dataclass
class SourceReport:
    """One source's part of a run: its counts, its failures, and `error` when the source failed as a whole."""

    name: str
    kind: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: int = 0
    failed: int = 0
    fetched: int = 0
    not_modified: int = 0
    error: str | None = None
    failures: list[Failure] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["failures"] = [{"location": f.location, "reason": f.reason} for f in self.failures]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SourceReport":
        values = _known(cls, data)
        values["failures"] = [Failure(f["location"], f["reason"]) for f in data.get("failures", ())]
        return cls(**{"name": "", "kind": "", **values})


@dataclass
class RunReport:
    sources: list[str]
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    duplicates: int = 0
    fetched: int = 0  # pages downloaded (HTTP 200)
    not_modified: int = 0  # pages the server said are unchanged (HTTP 304): nothing downloaded
    passages_embedded: int = 0
    seconds: float = 0.0
    stopped: bool = False  # a stop was asked for: the run ended early, between two steps
    failures: list[Failure] = field(default_factory=list)
    per_source: dict[str, SourceReport] = field(default_factory=dict)

    def begin(self, location: str, name: str, kind: str) -> None:
        self.per_source[location] = SourceReport(name, kind)

    def tally(self, source: str, what: str, n: int = 1) -> None:
        setattr(self, what, getattr(self, what) + n)
        part = self.per_source[source]
        setattr(part, what, getattr(part, what) + n)

    def fail(self, source: str, location: str, reason: str) -> None:
        self.tally(source, "failed")
        self.failures.append(Failure(location, reason, source))
        self.per_source[source].failures.append(Failure(location, reason))
        if location == source:
            self.per_source[source].error = reason

    @property
    def all_sources_failed(self) -> bool:
        return bool(self.per_source) and all(s.error for s in self.per_source.values())

    @property
    def changed(self) -> bool:
        """Whether readers see anything new: documents added, updated, removed, or copies recorded."""
        return bool(self.added or self.updated or self.removed or self.duplicates)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["per_source"] = {location: s.to_dict() for location, s in self.per_source.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "RunReport":
        values = _known(cls, data)
        values["failures"] = [Failure(f["location"], f["reason"], f.get("source", "")) for f in data.get("failures", ())]
        values["per_source"] = {loc: SourceReport.from_dict(s) for loc, s in data.get("per_source", {}).items()}
        return cls(**{"sources": [], **values})


@dataclass(frozen=True)
class LoggedRun:
    """A report as the run log keeps it: when the run finished, and what it did (a whole run, or one source's part)."""

    finished: str
    report: RunReport | SourceReport

    def to_dict(self) -> dict:
        return {"finished": self.finished, **self.report.to_dict()}


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)} - {"failures", "per_source"}
    return {k: v for k, v in data.items() if k in names}
