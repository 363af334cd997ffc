"""The process that owns the store and runs the ingest on its schedule: `dealbot serve` (the schedule in a thread
beside the bot) and `dealbot ingest --schedule` (the schedule in the foreground).

With the embedded store the owner holds the writer lock for as long as it runs (a second writer, or a reader, is
refused at once); with a Chroma server there is no lock. What follows each run is the caller's: a callback is given
the run's report and returns the run's log line, after doing whatever else the run calls for (the bot answers from
the new articles, the digest announces them). ingest never imports bot.
"""

from __future__ import annotations

import logging
import signal
import threading
from functools import cached_property
from typing import Callable

from .embed import Embedder
from .lock import WriterLock
from .report import RunReport
from .schedule import run_on_schedule
from .settings import Settings
from .store import open_embedder, open_index
from .sync import run_ingest

log = logging.getLogger("dealbot.schedule")

AfterRun = Callable[[RunReport], str]  # what follows a run; returns the run's log line


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, so a run stops between two steps; asked twice, the process exits at once
    (the index stays consistent either way)."""
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            raise SystemExit(130)
        log.info("stopping after the current step (again to stop at once)")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


class StoreOwner:
    """This process's ownership of the store (a context manager): the writer lock of the embedded store, the
    model, and the ingest schedule. Leaving it stops the schedule between two steps and releases the lock."""

    def __init__(self, settings: Settings, sources: list[str] | None = None, embedder: Embedder | None = None,
                 stop: threading.Event | None = None):
        self.settings = settings
        self.sources = sources
        self.embedder = embedder or open_embedder(settings)
        self.stop = stop or threading.Event()
        self._lock: WriterLock | None = None
        self._thread: threading.Thread | None = None
        self._primed = False

    def __enter__(self) -> "StoreOwner":
        if not self.settings.server_mode:
            self._lock = WriterLock(self.settings.data_dir).acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        if self._lock is not None:
            self._lock.release()

    @cached_property
    def fresh(self) -> bool:
        """Whether the index was empty (no collection yet) when first asked: its first ingest is the back catalogue."""
        return open_index(self.settings).collection is None

    def ingest(self) -> RunReport:
        """One run now, under this owner's lock."""
        return run_ingest(self.settings, self.sources, embedder=self.embedder, stop=self.stop, lock_held=True)

    def prime(self, after_run: AfterRun) -> None:
        """On an empty index, the first run now, before anything reads it; the schedule then waits for its next
        time."""
        if self.fresh:
            log.info("the index is empty: ingesting before serving")
            log.info("ingest %s", after_run(self.ingest()))
            self._primed = True

    def run_schedule(self, expression: str, after_run: AfterRun) -> None:
        """Run on `expression` in this thread until stopped: at once (unless primed), then at each time it matches."""
        run_on_schedule(expression, lambda: after_run(self.ingest()), self.stop, not self._primed)

    def start_schedule(self, expression: str, after_run: AfterRun) -> None:
        """Run on `expression` in a background thread, until this owner is left."""
        self._thread = threading.Thread(target=self.run_schedule, args=(expression, after_run), name="dealbot-ingest",
                                        daemon=True)
        self._thread.start()
        log.info("ingest schedule %r running in this process", expression)
