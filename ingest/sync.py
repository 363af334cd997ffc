"""Syncing sources into the index: the ingest job.

Idempotent by construction: a document whose bytes are unchanged (or that its server says is unchanged, with a
304) is skipped without parsing or embedding; a changed document's new version is written whole before its old
one is deleted; a file that vanished from a folder is removed, and only documents of the sources being synced are
ever pruned (a feed's old entries stay when they drop off the feed). A story already stored under another
location, word for word or nearly, is not stored again: the other location is kept as an alternate. A document
that cannot be read is reported and skipped, and its old version is kept.

Safe to kill at any moment: readers see only each document's newest complete version (see ingest.index), and an
HTTP validator is recorded only once its document is in the index, so the next run redoes whatever was cut short.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from . import metrics, runlog
from .chunking import chunk
from .dedupe import NearDuplicates, signature
from .embed import Embedder
from .fetch import Fetcher
from .index import Index, doc_key, version_of
from .lexical import LexicalStore
from .lexical import path_for as lexical_path
from .words import alias_forms
from .lock import WriterLock
from .records import Article, DocState, Passage
from .report import RunReport
from .runlog import HttpState
from .settings import Settings, SourceSpec
from .sources import RawDocument, ReadError, SourceError, parse, read_raw, scan
from .store import open_embedder, open_index
from .web import read_web_source

log = logging.getLogger("dealbot.ingest")

@dataclass
class _Item:
    """A document found in a source, before reading: `load` gives its bytes, or None for an HTTP 304."""

    spec: SourceSpec
    location: str
    load: Callable[[], RawDocument | None]
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class _Change:
    article: Article
    old: list[DocState]
    item: _Item
    minhash: str = ""
    alternates: list[_Item] = field(default_factory=list)
    alternate_outlets: dict[str, str] = field(default_factory=dict)  # location of a copy -> its outlet


@metrics.observed
def run_ingest(
    settings: Settings,
    sources: list[str] | None = None,
    embedder: Embedder | None = None,
    progress: bool = False,
    stop: threading.Event | None = None,
    lock_held: bool = False,
) -> RunReport:
    """Sync `sources` (default: the configured ones) into the index and log the run. What `dealbot ingest` calls.

    Takes the writer lock of the embedded store, unless `lock_held` (the caller holds it, as `dealbot serve`
    does). Setting `stop` ends the run early, between two steps.
    """
    specs = list(settings.sources) if sources is None else [settings.source(s) for s in sources]
    embedder = embedder or open_embedder(settings)
    lock = nullcontext() if settings.server_mode or lock_held else WriterLock(settings.data_dir)
    with lock:
        index = open_index(settings, create=True)
        state, fetcher = HttpState(settings.state_db), Fetcher(settings.fetch)
        try:
            report = sync(index, specs, embedder, settings, state, fetcher, progress=progress, stop=stop)
            metrics.count_passages(index)
        finally:
            state.close()
            fetcher.close()
            index.close()
    runlog.record_run(settings.state_db, datetime.now(timezone.utc).isoformat(timespec="seconds"), report)
    return report


def sync(
    index: Index,
    specs: list[SourceSpec],
    embedder: Embedder,
    settings: Settings,
    state: HttpState,
    fetcher: Fetcher,
    progress: bool = False,
    stop: threading.Event | None = None,
) -> RunReport:
    started = time.perf_counter()
    stop = stop or threading.Event()
    report = RunReport(sources=[s.location for s in specs])
    # Only the documents of the sources being synced are read (the document state is queried by source).
    stored: dict[str, dict[str, list[DocState]]] = defaultdict(lambda: defaultdict(list))
    for spec in specs:
        for st in index.doc_states(spec.location):
            stored[st.source][st.location].append(st)
    items: list[_Item] = []
    for spec in specs:
        if stop.is_set():
            report.stopped = True
            break
        items += _list(spec, index, stored, state, fetcher, report, progress, settings)

    changes = _changed_articles(index, items, stored, state, report, settings)
    changes = _without_duplicates(index, changes, state, report)
    _write(index, changes, embedder, settings, state, report, progress, stop)
    if report.changed:
        index.mark_changed()  # bot replicas watching a server take the change in
    _update_lexical(index, settings)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _update_lexical(index: Index, settings: Settings) -> None:
    """Bring the lexical index beside the data (ingest.lexical) up to date, so that a bot opens it ready. In server
    mode each bot replica keeps its own copy, brought up to date from the server."""
    if settings.server_mode or index.collection is None:
        return
    store = LexicalStore(lexical_path(settings.data_dir, settings.collection), index.store_id)
    try:
        store.sync(index, alias_forms(settings.vocabulary))
    finally:
        store.close()


def _list(spec, index, stored, state, fetcher, report, progress, settings) -> list[_Item]:
    """The documents of one source; prunes what vanished from a folder. A source that fails yields nothing."""
    own = stored[spec.location]
    if spec.is_url:

        def known(url: str) -> bool:
            """Stored, or stored as a copy of another document: a 304 for it is trustworthy."""
            return any(st.complete for st in own.get(url, ())) or index.is_alternate(url)

        report.begin(spec.location, spec.label, "web")
        try:
            kind, pages = read_web_source(
                spec, fetcher, state, known, lambda loc, why: report.fail(spec.location, loc, why), progress
            )
        except SourceError as exc:
            report.fail(spec.location, spec.location, _reason(exc, spec.location))
            return []
        report.per_source[spec.location].kind = kind
        report.tally(spec.location, "not_modified", sum(p.raw is None for p in pages))
        report.tally(spec.location, "fetched", sum(p.raw is not None for p in pages))
        return [_Item(spec, p.location, lambda p=p: p.raw, p.etag, p.last_modified) for p in pages]

    report.begin(spec.location, spec.label, "file" if Path(spec.location).is_file() else "folder")
    try:
        listing = scan(spec.location)
    except SourceError as exc:
        report.fail(spec.location, spec.location, _reason(exc, spec.location))  # nothing of it is pruned
        return []
    files = [f for f in listing.files if spec.wants(f.location)]
    for location, reason in listing.problems:
        if spec.wants(location):
            report.fail(spec.location, location, reason)
    # What could not be looked at (an unlistable folder, a file gone odd) is not taken for deleted.
    present = {f.location for f in files} | {location for location, _ in listing.problems}
    unlisted = [location for location, reason in listing.problems if reason.startswith("cannot list")]
    for location, versions in list(own.items()):
        if location not in present and not any(location.startswith(folder + "/") for folder in unlisted):
            for st in versions:
                index.delete_version(st)
            del own[location]
            report.tally(spec.location, "removed")
    cap = settings.ingest.max_file_bytes
    return [_Item(spec, f.location, lambda f=f: read_raw(spec.location, f.path, f.relpath, cap, listed=f)) for f in files]


def _reason(exc: Exception, location: str) -> str:
    text = str(exc)
    return text[len(location) + 2 :] if text.startswith(location + ": ") else text


def _changed_articles(
    index: Index, items: list[_Item], stored, state: HttpState, report: RunReport, settings: Settings
) -> list[_Change]:
    changes: list[_Change] = []
    for item in items:
        source = item.spec.location
        old = stored[source].get(item.location, [])
        try:
            raw = item.load()
            matching = [s for s in old if s.complete and (raw is None or s.raw_hash == raw.raw_hash)]
            current = max(matching, key=lambda s: s.written) if matching else None
            if raw is None or current is not None:
                report.tally(source, "unchanged")
                for leftover in old:  # versions left behind by an interrupted run
                    if leftover is not current:
                        index.delete_version(leftover)
                if raw is not None and "://" in item.location:
                    state.remember(item.location, item.etag, item.last_modified)
                continue
            article = parse(raw, settings.ingest)
            changes.append(_Change(article, old, item, minhash=signature(article.text)))
        except ReadError as exc:
            report.fail(source, item.location, str(exc))
        except Exception as exc:  # a parser's own bug on a hostile file: that file fails, the run goes on
            log.exception("reading %s", item.location)
            report.fail(source, item.location, f"could not be read: {type(exc).__name__}: {str(exc)[:200]}")
    return changes


def _without_duplicates(index: Index, candidates: list[_Change], state: HttpState, report: RunReport) -> list[_Change]:
    """Keep one copy of each story: a document whose text is already stored under another location, word for word
    or nearly, or comes earlier in this run, becomes an alternate of that first copy.

    Stored documents are looked up in the document state (by text hash; by LSH bucket for near-duplicates), so
    the cost follows the candidates, not the corpus. A shared canonical URL alone is not taken as proof: some
    sites declare their home page canonical everywhere.
    """
    if not candidates:
        return []
    stored: dict[str, DocState] = {}

    def remember(states: list[DocState]) -> list[str]:
        keys = []
        for st in states:
            key = f"s:{st.key}:{st.version}"
            stored.setdefault(key, st)
            keys.append(key)
        return keys

    by_text: dict[str, str] = {}
    for key in remember(index.documents_with_texts([c.article.text_hash for c in candidates])):
        by_text.setdefault(stored[key].text_hash, key)
    near = NearDuplicates(lambda buckets: [(k, stored[k].minhash) for k in remember(index.documents_near(buckets))])
    accepted: dict[str, _Change] = {}
    changes: list[_Change] = []
    for i, change in enumerate(candidates):
        a = change.article
        elsewhere = lambda key: _location_of(key, stored, accepted) == a.location  # noqa: E731
        same = by_text.get(a.text_hash)
        first = same if same is not None and not elsewhere(same) else near.match(change.minhash, exclude=elsewhere)
        if first is None:
            key = f"c{i}"
            accepted[key] = change
            by_text.setdefault(a.text_hash, key)
            near.add(key, change.minhash)
            changes.append(change)
            continue
        report.tally(a.source, "duplicates")
        for st in change.old:  # this location used to hold a story of its own
            index.delete_version(st)
        if first in accepted:
            accepted[first].alternates.append(change.item)
            if a.outlet:
                accepted[first].alternate_outlets[change.item.location] = a.outlet
        else:
            primary = stored[first]
            index.add_alternate(primary, change.item.location, a.outlet or "")
            stored[first] = dataclasses.replace(primary, alternates=(*primary.alternates, change.item.location))
            _remember(state, change.item)
    return changes


def _location_of(key: str, stored: dict, accepted: dict) -> str:
    return stored[key].location if key in stored else accepted[key].article.location


def _remember(state: HttpState, item: _Item) -> None:
    """Record a page's validators, now that what it holds is safely in the index."""
    if "://" in item.location and (item.etag or item.last_modified):
        state.remember(item.location, item.etag, item.last_modified)


# Documents are embedded and written in groups of about this many passages, which bounds memory on a big first
# ingest. Writes are not overlapped with embedding: on two cores the model's threads already use every core, and a
# concurrent writer only makes them wait for each other.
GROUP_PASSAGES = 1024


def _write(index, changes: list[_Change], embedder: Embedder, settings: Settings, state, report, progress, stop):
    if not changes:
        return
    chunked = [(c, passages) for c in changes if (passages := _chunked(c, embedder, settings, report))]
    total = sum(len(passages) for _, passages in chunked)
    with tqdm(total=total, desc="embedding", unit="passage", disable=not progress, leave=False) as bar:
        for group in _groups(chunked, GROUP_PASSAGES):
            flat = [p for _, passages in group for p in passages]

            def step(n: int) -> None:
                bar.update(n)
                if stop.is_set():  # between two batches: abandon this group before anything of it is written
                    raise _Stopped

            try:
                if stop.is_set():
                    raise _Stopped
                vectors, sentence_vectors = embedder.encode_passages(
                    [p.embed_text for p in flat], [p.embed_spans for p in flat], on_batch=step
                )
            except _Stopped:
                report.stopped = True
                return
            _store(index, group, flat, vectors, sentence_vectors, state, report)
            report.passages_embedded += len(flat)


def _chunked(change: _Change, embedder: Embedder, settings: Settings, report: RunReport) -> list[Passage]:
    try:
        return chunk(change.article, embedder.count_tokens, settings.chunking.max_tokens, settings.chunking.overlap_sentences)
    except Exception as exc:  # one article the chunker cannot cut fails alone
        log.exception("cutting %s into passages", change.article.location)
        report.fail(change.article.source, change.article.location, f"could not be cut into passages: {type(exc).__name__}")
        return []


class _Stopped(Exception):
    pass


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


def _store(index: Index, group: list, flat: list[Passage], vectors, sentence_vectors, state, report) -> None:
    """Write a group's new versions whole, then delete the versions they replace, then record validators.

    Documents new to readers (no complete version stored before) are journaled first: a run killed after the
    journal entry but before the write leaves an entry the digest skips until the next run writes the document.
    """
    extra = {
        c.article.location: {
            "alternates": [alt.location for alt in c.alternates],
            "alternate_outlets": c.alternate_outlets,
            "minhash": c.minhash,
        }
        for c, _ in group
    }
    state.record_added([
        (doc_key(c.article.source, c.article.location), version_of(passages[0]), c.article.doc_id)
        for c, passages in group
        if not any(old.complete for old in c.old)
    ])
    index.write(flat, vectors, sentence_vectors, extra)
    for change, passages in group:
        new_version = version_of(passages[0])
        for old in change.old:
            if old.version != new_version:
                index.delete_version(old)
        report.tally(change.article.source, "updated" if change.old else "added")
        for item in (change.item, *change.alternates):
            _remember(state, item)
