"""Who may use the embedded store: one writer, or any number of readers, never both at once.

Chroma's embedded store is not safe for two processes at once: each process that opens it keeps its own copy of
the vector index and compacts the store's log into the files itself, so a reader beside a writer may see stale
vectors or damage the files. So a process takes `<data_dir>/writer.lock` before it opens the store: exclusively
to write (`dealbot ingest`, `dealbot serve`), shared to read (`dealbot ask`, `eval`, `status`). A request that
conflicts is refused at once with a message naming the process in the way.

The lock is an `flock`, which the kernel drops when its holder dies, even by `kill -9`: a lock left behind by a
dead process is taken over (with a warning naming it). The lock file records the writer's pid and command, and
each reader leaves a note under `<data_dir>/readers/`, so that a refusal can say who holds the store.

Within one process, readers and a writer share one lock: a process that reads (a Pipeline) may also write (an
ingest run in the same process), and a writer may read what it wrote.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("dealbot.lock")


class LockHeld(Exception):
    """Another live process is using the same embedded store in a way that excludes this use."""


@dataclass
class _Hold:
    """This process's hold on one store's lock file: one file descriptor, any number of readers, one writer."""

    fd: int
    readers: int = 0
    writing: bool = False


_holds: dict[Path, _Hold] = {}
_guard = threading.Lock()


def _command() -> str:
    return " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))


class WriterLock:
    """Exclusive use of the store in `data_dir` for as long as it is held (a context manager)."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / "writer.lock"
        self._held = False

    def acquire(self) -> "WriterLock":
        with _guard:
            hold = _holds.get(self.path)
            if hold is not None and hold.writing:
                raise LockHeld(f"this process is already writing to the index in {self.path.parent}")
            fd = hold.fd if hold is not None else _open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if hold is not None:  # a refused upgrade drops the shared lock: take it back for the readers
                    _relock_shared(fd)
                else:
                    os.close(fd)
                raise LockHeld(_refusal(self.path)) from None
            left = _read(fd)
            if left and hold is None:  # written by a writer that never released it: it was killed
                log.warning(
                    "taking over the writer lock left by a process that is gone (%s); the index is consistent and "
                    "this run completes what it left unfinished", left)
            _write(fd, f"pid {os.getpid()}: {_command()}")
            if hold is None:
                hold = _holds[self.path] = _Hold(fd)
            hold.writing = True
            self._held = True
        return self

    def release(self) -> None:
        with _guard:
            if not self._held:
                return
            self._held = False
            hold = _holds[self.path]
            hold.writing = False
            _write(hold.fd, "")
            if hold.readers:  # readers in this process keep a shared hold
                _relock_shared(hold.fd)
            else:
                _drop(self.path, hold)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class ReadAccess:
    """Shared use of the store in `data_dir`: refused while another process writes to it. Released by
    `release()`, or when the object is garbage-collected."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / "writer.lock"
        with _guard:
            hold = _holds.get(self.path)
            if hold is None:
                fd = _open(self.path)
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise LockHeld(_refusal(self.path, reading=True)) from None
                hold = _holds[self.path] = _Hold(fd)
                _note_reader(self.path.parent)
            hold.readers += 1
        self._finalizer = weakref.finalize(self, _release_reader, self.path)

    def release(self) -> None:
        self._finalizer()

    def __enter__(self) -> "ReadAccess":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _release_reader(path: Path) -> None:
    with _guard:
        hold = _holds.get(path)
        if hold is None:
            return
        hold.readers -= 1
        if hold.readers <= 0 and not hold.writing:
            _drop(path, hold)


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


def _relock_shared(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("lost the shared hold on the index to another process; readers here may see stale passages")


def _drop(path: Path, hold: _Hold) -> None:
    fcntl.flock(hold.fd, fcntl.LOCK_UN)
    os.close(hold.fd)
    del _holds[path]
    try:
        (path.parent / "readers" / str(os.getpid())).unlink()
    except FileNotFoundError:
        pass


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 512).decode("utf-8", "replace").strip()


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode("utf-8", "replace"))


def _note_reader(data_dir: Path) -> None:
    """Leave a note saying which process reads, for a writer's refusal to name it."""
    folder = data_dir / "readers"
    try:
        folder.mkdir(exist_ok=True)
        (folder / str(os.getpid())).write_text(f"pid {os.getpid()}: {_command()}", encoding="utf-8", errors="replace")
    except OSError:  # the note only helps a message; reading goes on without it
        pass


def _refusal(path: Path, reading: bool = False) -> str:
    """Why the store cannot be had, naming the live processes that hold it."""
    writer, readers = _holders(path)
    if writer or not readers:
        holder = f"another dealbot process ({writer})" if writer else "another dealbot process"
        then = "ask again when it has finished" if reading else "wait for it to finish"
        return (f"{holder} is writing to the index in {path.parent}; {then}, or use a Chroma server "
                "(DEALBOT_CHROMA_URL) to run writers and readers side by side")
    return (f"dealbot processes are reading the index in {path.parent} ({'; '.join(readers)}); the embedded store "
            "takes a writer only when nobody reads it: wait for them to end, or use a Chroma server (DEALBOT_CHROMA_URL)")


def _holders(path: Path) -> tuple[str | None, list[str]]:
    """The writer and the readers holding the store, from the notes of live processes."""
    writer = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            note = f.read(512).strip()
        writer = note if note and _alive(note) else None
    except OSError:
        pass
    readers = []
    for note in sorted((path.parent / "readers").glob("*")):
        if not note.name.isdigit() or note.name == str(os.getpid()):
            continue
        if _alive(f"pid {note.name}"):
            readers.append(note.read_text(encoding="utf-8", errors="replace").strip() or f"pid {note.name}")
        else:
            note.unlink(missing_ok=True)  # that reader is gone
    return writer, readers


def _alive(note: str) -> bool:
    try:
        pid = int(note.split(":", 1)[0].removeprefix("pid").strip())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
