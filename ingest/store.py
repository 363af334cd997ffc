"""Opening the index and the embedding model from the settings: the one place either is built, for the ingest
(which writes) and the bot (which reads) alike.

A reader of the embedded store holds shared access to it (ingest.lock.ReadAccess) for as long as it reads, so that
no writer changes the store under it; while another process writes, reading is refused at once (LockHeld, naming
that process). A process that holds the writer lock reads without asking. With a Chroma server there is no lock.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .embed import DIMENSIONS, MODEL_NAME, Embedder
from .index import Index
from .lock import ReadAccess
from .settings import Settings


def open_embedder(settings: Settings, questions: bool = False) -> Embedder:
    """The embedding model, loaded on first use. `questions`: it will encode questions too, through the ONNX export
    cached in the data directory (what answering needs; the ingest encodes passages only)."""
    return Embedder(settings.embedding.batch_size, cache_dir=settings.data_dir / "models" if questions else None)


def open_index(settings: Settings, create: bool = False) -> Index:
    """The index, checked to be built with the model in use; `create` makes the collection when there is none.
    Readers of the embedded store: hold `read_access` while using it (or use `reading`)."""
    return Index(settings, MODEL_NAME, DIMENSIONS, create=create)


def read_access(settings: Settings) -> ReadAccess | None:
    """Shared access to the embedded store (None with a Chroma server); LockHeld while another process writes."""
    return None if settings.server_mode else ReadAccess(settings.data_dir)


@contextmanager
def reading(settings: Settings) -> Iterator[Index]:
    """The index opened for reading, with shared access to the embedded store held until the block ends."""
    access = read_access(settings)
    try:
        yield open_index(settings)
    finally:
        if access is not None:
            access.release()
