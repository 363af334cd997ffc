"""Syncing sources into the index: the ingest job.

Idempotent by construction: a file whose bytes are unchanged is skipped without parsing or embedding; a changed
document's new version is written whole before its old one is deleted; a document that vanished from a source is
removed, and only documents of the sources being synced are ever pruned. Text already stored under another
location is not stored twice. A file that cannot be read is reported and skipped, and its old version is kept.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from tqdm import tqdm

from . import runlog
from .chunking import chunk
from .embed import Embedder
from .index import DocState, Index, version_of
from .lock import WriterLock
from .records import Article, Passage
from .settings import Settings
from .sources import ReadError, SourceError, list_files, parse, read_raw


@dataclass(frozen=True)
class Failure:
    location: str
    reason: str


@dataclass
class RunReport:
    sources: list[str]
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    duplicates: int = 0
    passages_embedded: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    def fail(self, location: str, reason: str) -> None:
        self.failed += 1
        self.failures.append(Failure(location, reason))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Change:
    article: Article
    old: list[DocState]


def run_ingest(
    settings: Settings,
    sources: list[str] | None = None,
    embedder: Embedder | None = None,
    progress: bool = False,
) -> RunReport:
    """Sync `sources` (default: the configured ones) into the index and log the run. What `dealbot ingest` calls."""
    sources = list(settings.sources if sources is None else sources)
    embedder = embedder or Embedder(batch_size=settings.embedding.batch_size)
    lock = nullcontext() if settings.server_mode else WriterLock(settings.data_dir)
    with lock:
        index = Index(settings, embedder.name, embedder.dimensions, create=True)
        report = sync(index, sources, embedder, settings, progress=progress)
    runlog.record_run(settings.state_db, datetime.now(timezone.utc).isoformat(timespec="seconds"), report.to_dict())
    return report


def sync(index: Index, sources: list[str], embedder: Embedder, settings: Settings, progress: bool = False) -> RunReport:
    started = time.perf_counter()
    report = RunReport(sources=list(sources))
    listed: dict[str, list] = {}
    stored: dict[str, dict[str, list[DocState]]] = {}
    for source in sources:
        try:
            listed[source] = list_files(source)
        except SourceError as exc:
            report.fail(source, str(exc))  # nothing of this source is pruned when it cannot be listed
            continue
        stored[source] = _by_location(index.doc_states(source))
        present = {str(path) for path, _ in listed[source]}
        for location, states in stored[source].items():
            if location not in present:
                for state in states:
                    index.delete_version(state)
                report.removed += 1

    changes = _changed_articles(index, listed, stored, report)
    _write(index, changes, embedder, settings, report, progress)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _by_location(states: list[DocState]) -> dict[str, list[DocState]]:
    out: dict[str, list[DocState]] = defaultdict(list)
    for state in states:
        out[state.location].append(state)
    return out


def _changed_articles(index: Index, listed: dict, stored: dict, report: RunReport) -> list[_Change]:
    candidates: list[_Change] = []
    for source, files in listed.items():
        for path, relpath in files:
            old = stored[source].get(str(path), [])
            try:
                raw = read_raw(source, path, relpath)
                current = next((s for s in old if s.complete and s.raw_hash == raw.raw_hash), None)
                if current is not None:
                    report.unchanged += 1
                    for leftover in old:  # versions left behind by an interrupted run
                        if leftover is not current:
                            index.delete_version(leftover)
                    continue
                candidates.append(_Change(parse(raw), old))
            except ReadError as exc:
                report.fail(str(path), str(exc))
    return _without_duplicates(index, candidates, report)


def _without_duplicates(index: Index, candidates: list[_Change], report: RunReport) -> list[_Change]:
    """Drop documents whose exact text is already stored under another location, or comes twice in this run."""
    stored_at = index.locations_of_texts({c.article.text_hash for c in candidates})
    changes: list[_Change] = []
    seen: set[str] = set()
    for change in candidates:
        text_hash = change.article.text_hash
        if text_hash in seen or stored_at.get(text_hash, {change.article.location}) - {change.article.location}:
            report.duplicates += 1
            for state in change.old:
                index.delete_version(state)
            continue
        seen.add(text_hash)
        changes.append(change)
    return changes


# Documents are embedded and written in groups of about this many passages, which bounds memory on a big first
# ingest. Writes are not overlapped with embedding: on two cores the model's threads already use every core, and a
# concurrent writer only makes them wait for each other.
GROUP_PASSAGES = 1024


def _write(index, changes: list[_Change], embedder: Embedder, settings: Settings, report: RunReport, progress: bool):
    if not changes:
        return
    chunked = [
        (c, chunk(c.article, embedder.count_tokens, settings.chunking.max_tokens, settings.chunking.overlap_sentences))
        for c in changes
    ]
    total = sum(len(passages) for _, passages in chunked)
    with tqdm(total=total, desc="embedding", unit="passage", disable=not progress, leave=False) as bar:
        for group in _groups(chunked, GROUP_PASSAGES):
            flat = [p for _, passages in group for p in passages]
            vectors, sentence_vectors = embedder.encode_passages(
                [p.embed_text for p in flat], [p.embed_spans for p in flat], on_batch=bar.update
            )
            _store(index, group, flat, vectors, sentence_vectors, report)
    report.passages_embedded = total


def _groups(chunked: list, size: int):
    group, count = [], 0
    for item in chunked:
        group.append(item)
        count += len(item[1])
        if count >= size:
            yield group
            group, count = [], 0
    if group:
        yield group


def _store(index: Index, group: list, flat: list[Passage], vectors, sentence_vectors, report: RunReport) -> None:
    """Write a group's new versions whole, then delete the versions they replace."""
    index.write(flat, vectors, sentence_vectors)
    for change, passages in group:
        new_version = version_of(passages[0])
        for state in change.old:
            if state.version != new_version:
                index.delete_version(state)
        if change.old:
            report.updated += 1
        else:
            report.added += 1
