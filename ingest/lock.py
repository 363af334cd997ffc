"""The single-writer lock of the embedded store.

Chroma's embedded store is not safe for two writing processes, so a writer holds an exclusive `flock` on
`<data_dir>/writer.lock` for as long as it writes. The kernel drops the lock when its holder dies, even by
`kill -9`, so a lock left behind by a dead process is taken over (with a warning naming it); the file records the
holder's pid and command so that a refusal can name the process that holds it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path


class LockHeld(Exception):
    """Another live process is writing to the same embedded store."""


class WriterLock:
    def __init__(self, data_dir: Path):
        self.path = data_dir / "writer.lock"
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise LockHeld(
                f"another dealbot process ({holder}) is writing to the index in {self.path.parent}; "
                "wait for it to finish, or use a Chroma server (DEALBOT_CHROMA_URL) to run writers side by side"
            ) from None
        left = os.read(fd, 512).decode("utf-8", "replace").strip()
        if left:  # written by a holder that never released it: it was killed
            logging.getLogger("dealbot.lock").warning(
                "taking over the writer lock left by a process that is gone (%s); the index is consistent and this "
                "run completes what it left unfinished", left)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()}: {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
