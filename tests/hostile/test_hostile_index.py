"""The index cannot be poisoned: malformed passages written straight into the Chroma collection (wrong types,
missing keys, bad sentence offsets, list-valued fields) or with bad sentence vectors in the sidecar are logged and
skipped, and `dealbot ask`, `dealbot ingest`, `dealbot status` and `dealbot serve` still start and answer from the
good passages."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ingest_inputs import wait_for_healthz  # noqa: E402

from conftest import DEALBOT, ROOT, SAMPLE, free_port, make_settings  # noqa: E402

QUESTION = "When was the deal signed?"


def _svec(n: int, value: float = 0.05) -> bytes:
    return np.full((n, 384), value, dtype=np.float16).tobytes()


def _without(key: str):
    return lambda m: {k: v for k, v in m.items() if k != key}


def _with(**changes):
    return lambda m: {**m, **changes}


# Each takes a well-formed passage's metadata and returns a malformed one (None: no metadata at all).
MALFORMED = {
    "no-metadata": lambda m: None,
    "missing-doc-id": _without("doc_id"),
    "missing-title": _without("title"),
    "missing-n-total": _without("n_total"),
    "title-list": _with(title=["Rare", "earths"]),
    "url-list": _with(url=["https://example.com/a"]),
    "doc-id-list": _with(doc_id=["a", "b"]),
    "outlet-number": _with(outlet=5),
    "title-bool": _with(title=True),
    "doc-key-list": _with(doc_key=["k"]),
    "version-float": _with(version=1.5),
    "doc-id-empty": _with(doc_id=""),
    "n-text": _with(n="0"),
    "n-bool": _with(n=True),
    "n-float": _with(n=0.5),
    "n-negative": _with(n=-1),
    "n-total-zero": _with(n_total=0),
    "start-after-end": _with(start=50, end=10),
    "sents-garbage": _with(sents="abc,def"),
    "sents-outside-text": lambda m: {**m, "sents": m["sents"].rsplit("-", 1)[0] + "-999999"},
    "sents-reversed": _with(sents="40-10"),
    "sents-list": _with(sents=[0, 10]),
    "published-ymd-text": _with(published_ymd="20250627"),
    "outlet-key-number": _with(outlet_key=3),
    "published-impossible": _with(published="2025-02-30"),
    "published-list": _with(published=["2025-06-27"]),
    "alts-not-json": _with(alts="{not json"),
    "alts-mapping": _with(alts='{"a": 1}'),
    "alts-numbers": _with(alts="[1, 2]"),
    "written-text": _with(written="yesterday"),
    "minhash-number": _with(minhash=5),
}
# Well-formed metadata, malformed sentence vectors in the sidecar (None: none stored): from the sentence count.
BAD_VECTORS = {
    "vectors-missing": lambda n: None,
    "vectors-wrong-length": lambda n: b"0123456789",
    "vectors-count-mismatch": lambda n: _svec(n + 2),
    "vectors-nan": lambda n: _svec(n, float("nan")),
    "vectors-not-bytes": lambda n: "text, not a blob",
}
NO_DOCUMENT = "no-document"  # a well-formed metadata with no text at all: its offsets point past the empty text


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, embedder):
    from ingest.sync import run_ingest

    settings = make_settings(tmp_path_factory.mktemp("poison") / "data")
    run_ingest(settings, [str(SAMPLE)], embedder=embedder)
    return settings


def _collection(settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=str(settings.chroma_path), settings=ChromaSettings(anonymized_telemetry=False))
    return client.get_collection(settings.collection, embedding_function=None)


def _poison(collection, name: str, data_dir) -> str:
    """Write one malformed passage, built from a real one, under its own id and document key, with its sentence
    vectors in the sidecar (the real one's, or malformed ones)."""
    real = collection.get(limit=1, include=["metadatas", "embeddings"])
    meta = {**real["metadatas"][0], "doc_key": f"poison-{name}", "doc_id": f"poison-{name}.md",
            "location": f"/poison/{name}.md", "version": "p0", "n": 0, "n_total": 1}
    pid = f"poison-{name}:p0:0"
    with sqlite3.connect(Path(data_dir) / "sentences.sqlite") as conn:  # the sidecar: sentence vectors and text
        table = "sv_" + collection.name
        blob, text = conn.execute(f"SELECT vectors, text FROM {table} WHERE id = ?", (real["ids"][0],)).fetchone()
        if name in BAD_VECTORS:
            blob = BAD_VECTORS[name](len(meta["sents"].split(",")))
        if name == NO_DOCUMENT:
            text = None
        if blob is not None:
            conn.execute(f"INSERT OR REPLACE INTO {table} (id, vectors, text) VALUES (?, ?, ?)", (pid, blob, text))
    if name in BAD_VECTORS or name == NO_DOCUMENT:
        collection.upsert(ids=[pid], embeddings=[real["embeddings"][0]], metadatas=[meta])
        return pid
    meta = MALFORMED[name](meta)
    collection.upsert(ids=[pid], embeddings=[real["embeddings"][0]], metadatas=[meta] if meta is not None else None)
    return pid


@pytest.mark.parametrize("name", [*MALFORMED, *BAD_VECTORS, NO_DOCUMENT])
def test_one_malformed_passage_is_skipped_and_the_bot_still_answers(index_dir, embedder, name, caplog):
    from bot.pipeline import Pipeline
    from ingest.index import Index

    collection = _collection(index_dir)
    pid = _poison(collection, name, index_dir.data_dir)
    try:
        pipeline = Pipeline(index_dir, embedder=embedder)
        assert pid not in pipeline.retriever.passages
        # It has the embedding of a real passage: Chroma returns it for the question, and it is logged and hidden.
        answer = pipeline.ask(QUESTION)
        assert answer.answered and answer.citations[0].title.startswith("White House announces")
        assert pid not in {h.id for h in pipeline.retrieve(QUESTION)[2]}
        assert pid in pipeline.index._hidden, "Chroma's nearest passages leave it out once seen"
        assert "malformed passage" in caplog.text and pid in caplog.text
        pipeline.refresh()  # a reload after an ingest: looked at again, and still not shown
        assert pid not in pipeline.retriever.passages and pid not in {h.id for h in pipeline.retrieve(QUESTION)[2]}
        assert pid in pipeline.index._hidden
        index = Index(index_dir, embedder.name, embedder.dimensions)
        # The ingest reads its own document state, never rows another program wrote into the collection.
        assert {s.doc_id for s in index.doc_states()} == {"the-hill-2025-06-27.md"}
        if name in BAD_VECTORS and name != "vectors-count-mismatch":  # the count is checked against the row's
            assert pid not in index.sentence_vectors([pid])
    finally:
        collection.delete(ids=[pid])


def poison_all(chroma_path: str, name: str, data_dir: str) -> None:
    """Every malformed passage at once (run in a process of its own: the embedded store is one process's)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=chroma_path, settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_collection(name, embedding_function=None)
    for case in [*MALFORMED, *BAD_VECTORS, NO_DOCUMENT]:
        _poison(collection, case, data_dir)


def test_with_every_malformed_passage_at_once_ask_ingest_status_and_serve_still_work(tmp_path):
    settings = make_settings(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    env.update({"DEALBOT_DATA_DIR": str(settings.data_dir), "SLACK_BOT_TOKEN": "xoxb-test-token",
                "SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef", "DEALBOT_SLACK_API_URL": "http://127.0.0.1:9/api/"})

    def dealbot(*args):
        return subprocess.run([str(DEALBOT), *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert dealbot("ingest", "--source", str(SAMPLE)).returncode == 0
    code = (f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(ROOT / 'tests')!r}]\n"
            f"import test_hostile_index as t; t.poison_all({str(settings.chroma_path)!r}, {settings.collection!r}, "
            f"{str(settings.data_dir)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)

    ask = dealbot("ask", "--json", QUESTION)
    assert ask.returncode == 0, ask.stderr[-2000:]
    answer = json.loads(ask.stdout.splitlines()[-1])
    assert answer["answered"] and answer["citations"][0]["doc_id"] == "the-hill-2025-06-27.md"
    # Chroma returns them for the question (each has a real passage's embedding); they are logged and left out.
    assert "malformed passage(s)" in ask.stderr and "Traceback" not in ask.stderr

    again = dealbot("ingest", "--json", "--source", str(SAMPLE))
    assert again.returncode == 0, again.stderr[-2000:]
    report = json.loads(again.stdout.splitlines()[-1])
    # Rows another program wrote are no documents of the ingest's: neither counted nor pruned, and still skipped.
    assert (report["unchanged"], report["removed"], report["failed"]) == (1, 0, 0)

    status = json.loads(dealbot("status", "--json").stdout)
    assert status["documents"] == 1
    code = (f"import chromadb; c = chromadb.PersistentClient({str(settings.chroma_path)!r}); "
            f"print(c.get_collection({settings.collection!r}).count())")
    count = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert status["passages"] == int(count.stdout.split()[-1])

    port = free_port()
    serve = subprocess.Popen([str(DEALBOT), "serve", "--http", "--port", str(port)], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_healthz(serve, port)
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=60)
    # The bot opens the lexical index of the listed documents only: the strays are never read at start.
    assert "Traceback" not in err


@pytest.mark.parametrize("blob", [b"not zlib at all", b"\x78\x9c" + b"\xff" * 40, "text, not a blob"])
def test_an_unreadable_passage_text_in_the_sidecar_is_logged_and_the_bot_still_answers(tmp_path, embedder, blob, caplog):
    from bot.pipeline import Pipeline
    from ingest.sync import run_ingest

    settings = make_settings(tmp_path / "data")
    run_ingest(settings, [str(SAMPLE)], embedder=embedder)
    with sqlite3.connect(settings.data_dir / "sentences.sqlite") as conn:
        table = f"sv_{settings.collection}"
        ids = [i for (i,) in conn.execute(f"SELECT id FROM {table} ORDER BY id")]
        conn.execute(f"UPDATE {table} SET text = ? WHERE id = ?", (blob, ids[0]))
    pipeline = Pipeline(settings, embedder=embedder)
    answer = pipeline.ask(QUESTION)
    assert answer.answered and answer.citations
    hits = pipeline.retrieve(QUESTION)[2]
    assert ids[0] not in {h.id for h in hits} and all(h.text for h in hits)
    assert ids[0] in caplog.text and "unreadable" in caplog.text
    pipeline.close()
