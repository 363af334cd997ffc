"""Storage at scale: filterable metadata, sentence vectors in the sidecar, per-document ingest state queried by
source, the persisted near-duplicate LSH, and the automatic migration of an index written by the previous schema."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import zlib

import numpy as np
import pytest

from conftest import EVAL_ARTICLES, SAMPLE, make_settings, write_article
from test_crash import body
from ingest.dedupe import bands
from ingest.index import SCHEMA, Index, outlet_key, published_ymd
from ingest.sync import run_ingest

QUESTIONS = ("When was the deal signed?", "What did China agree to on rare earths?", "What happened in Geneva?")


def index_of(settings, embedder) -> Index:
    return Index(settings, embedder.name, embedder.dimensions)


def test_every_passage_has_filterable_date_and_outlet_keys(sample_pipeline):
    index = sample_pipeline.index
    rows = index.rows()
    assert rows
    for row in rows:
        assert row.meta["published_ymd"] == published_ymd(row.meta["published"]) == 20250627
        assert row.meta["outlet_key"] == outlet_key(row.meta["outlet"]) == "the hill"
        assert "svec" not in row.meta, "sentence vectors are not in Chroma's metadata"
    collection = index.collection
    assert len(collection.get(where={"published_ymd": {"$gte": 20250601}})["ids"]) == len(rows)
    assert collection.get(where={"published_ymd": {"$gt": 20250627}})["ids"] == []
    assert len(collection.get(where={"outlet_key": {"$in": ["the hill", "other"]}})["ids"]) == len(rows)


def test_filter_keys_of_odd_values():
    assert published_ymd("2024-02-29") == 20240229 and published_ymd("") == 0 and published_ymd("2025-02-30") == 0
    assert outlet_key("  Test  Wire (Fixture) ") == "test wire (fixture)" and outlet_key(None) == ""


def test_sentence_vectors_are_read_from_the_sidecar_for_the_passages_asked_only(sample_pipeline, embedder):
    index = sample_pipeline.index
    rows = index.passages(with_vectors=False)
    some = [rows[0].id, rows[-1].id]
    got = index.sentence_vectors([*some, "no-such-passage"])
    assert sorted(got) == sorted(some)
    for row in rows[:1] + rows[-1:]:
        vectors = got[row.id]
        assert vectors.dtype == np.float32 and vectors.shape == (len(row.sentences), embedder.dimensions)
        # The sentences' own vectors, in order: each sentence, embedded alone, is nearest its own vector.
        for i, span in enumerate(row.sentences):
            assert int(np.argmax(vectors @ embedder.encode_query(row.text[slice(*span)]))) == i
    attached = {r.id: r.sentence_vectors for r in index.passages()}
    assert all(np.array_equal(attached[pid], got[pid]) for pid in some)
    assert (sample_pipeline.settings.data_dir / "sentences.sqlite").exists()


def test_a_run_reads_only_its_own_sources_documents(tmp_path, embedder, monkeypatch):
    settings = make_settings(tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    write_article(one, "a.md", "Fixture A", body(1))
    write_article(two, "b.md", "Fixture B", body(2))
    run_ingest(settings, [str(one), str(two)], embedder=embedder)
    index = index_of(settings, embedder)
    assert [s.doc_id for s in index.doc_states(str(one.resolve()))] == ["a.md"]
    assert [s.doc_id for s in index.doc_states(str(two.resolve()))] == ["b.md"]

    def no_scan(self, where=None, with_text=True):
        raise AssertionError(f"the run read passages from Chroma: {where}")

    monkeypatch.setattr(Index, "rows", no_scan)
    write_article(one, "c.md", "Fixture C", body(3))
    report = run_ingest(settings, [str(one)], embedder=embedder)
    assert (report.added, report.unchanged, report.failed) == (1, 1, 0)
    monkeypatch.undo()
    states = index_of(settings, embedder).doc_states(str(one.resolve()))
    assert sorted(s.doc_id for s in states) == ["a.md", "c.md"] and all(s.complete for s in states)


def test_near_duplicates_are_found_through_the_persisted_lsh(tmp_path, embedder):
    settings = make_settings(tmp_path / "data")
    folder = tmp_path / "articles"
    write_article(folder, "original.md", "Fixture original", body(7, 20))
    run_ingest(settings, [str(folder)], embedder=embedder)
    index = index_of(settings, embedder)
    (original,) = index.doc_states()
    assert index.documents_near(bands(original.minhash)) == [original], "its LSH buckets are stored"
    with sqlite3.connect(settings.state_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM document_bands").fetchone()[0] == len(bands(original.minhash)) > 1

    # A later run: a syndicated copy (another headline, a line added, the end trimmed) becomes an alternate.
    write_article(folder, "copy.md", "Fixture copy under another headline", "Syndicated. " + body(7, 17), outlet="Other Wire")
    report = run_ingest(settings, [str(folder)], embedder=embedder)
    assert (report.duplicates, report.added, report.passages_embedded) == (1, 0, 0)
    (state,) = index_of(settings, embedder).doc_states()
    assert state.alternates == (str(folder.resolve() / "copy.md"),)
    assert index_of(settings, embedder).is_alternate(str(folder.resolve() / "copy.md"))

    # Removing the original takes its buckets out too: the copy, changed, is stored as a document of its own.
    (folder / "original.md").unlink()
    write_article(folder, "copy.md", "Fixture copy under another headline", "Syndicated again. " + body(7, 17))
    report = run_ingest(settings, [str(folder)], embedder=embedder)
    assert (report.removed, report.added, report.duplicates) == (1, 1, 0)
    with sqlite3.connect(settings.state_db) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT doc) FROM document_bands").fetchone()[0] == 1


def test_a_lost_state_sqlite_is_rebuilt_from_the_index_without_embedding(tmp_path, embedder, caplog):
    settings = make_settings(tmp_path / "data")
    run_ingest(settings, [str(SAMPLE)], embedder=embedder)
    before = index_of(settings, embedder).doc_states()
    settings.state_db.unlink()
    with caplog.at_level(logging.WARNING, logger="dealbot.index"):
        report = run_ingest(settings, [str(SAMPLE)], embedder=embedder)
    assert "building the document state" in caplog.text
    assert (report.unchanged, report.passages_embedded) == (1, 0)
    assert index_of(settings, embedder).doc_states() == before


def test_a_malformed_document_state_is_skipped_and_logged(tmp_path, embedder, caplog):
    settings = make_settings(tmp_path / "data")
    run_ingest(settings, [str(SAMPLE)], embedder=embedder)
    with sqlite3.connect(settings.state_db) as conn:
        conn.execute("UPDATE documents SET alternates = '{not json', passages = 'many'")
    assert index_of(settings, embedder).doc_states() == []
    assert "malformed document state" in caplog.text
    report = run_ingest(settings, [str(SAMPLE)], embedder=embedder)  # taken for new: written again, not a crash
    assert report.failed == 0 and report.added == 1


# ------------------------------------------------------------------------------------------------------ migration

def downgrade_to_schema_1(settings) -> None:
    """Rewrite an index into the format the previous code wrote (schema 1): each passage's sentence vectors as
    base64 float16 in its metadata ('svec'), its text as the collection's document, no filter keys, no store id, no
    sidecar, no document state."""
    import base64

    import chromadb
    from chromadb.config import Settings as ChromaSettings

    with sqlite3.connect(settings.data_dir / "sentences.sqlite") as conn:
        blobs = dict(conn.execute(f"SELECT id, vectors FROM sv_{settings.collection}"))
        texts = {i: zlib.decompress(t).decode() for i, t in conn.execute(f"SELECT id, text FROM sv_{settings.collection}")}
    client = chromadb.PersistentClient(path=str(settings.chroma_path), settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_collection(settings.collection, embedding_function=None)
    res = collection.get(include=["metadatas", "embeddings"])
    metas = []
    for pid, meta in zip(res["ids"], res["metadatas"]):
        meta = {k: v for k, v in meta.items() if k not in ("published_ymd", "outlet_key")}
        metas.append({**meta, "svec": base64.b64encode(blobs[pid]).decode("ascii"),
                      "published_ymd": None, "outlet_key": None})
    collection.update(ids=res["ids"], metadatas=metas, documents=[texts[i] for i in res["ids"]],  # texts in Chroma
                      embeddings=res["embeddings"])
    old = {k: v for k, v in collection.metadata.items() if k not in ("dealbot_store",) and not k.startswith("hnsw:")}
    collection.modify(metadata={**old, "dealbot_schema": 1})
    del client
    (settings.data_dir / "sentences.sqlite").unlink()
    settings.state_db.unlink()


def answers(pipeline) -> list:
    return [json.dumps([a.text, [c.title for c in a.citations]]) for a in map(pipeline.ask, QUESTIONS)]


def test_an_index_of_the_previous_schema_is_read_then_migrated_without_embedding(tmp_path, embedder, caplog):
    from bot.pipeline import Pipeline

    settings = make_settings(tmp_path / "data")
    first = run_ingest(settings, [str(SAMPLE), str(EVAL_ARTICLES)], embedder=embedder)
    today = answers(Pipeline(settings, embedder=embedder))
    downgrade_to_schema_1(settings)
    old = index_of(settings, embedder)
    assert old.schema == 1 and all("svec" in r.meta and "outlet_key" not in r.meta for r in old.rows())

    # Read as it is (no writer needed): the same answers.
    assert answers(Pipeline(settings, embedder=embedder)) == today

    # The first ingest migrates it in place: nothing embedded, nothing changed for readers.
    with caplog.at_level(logging.WARNING, logger="dealbot.index"):
        report = run_ingest(settings, [str(SAMPLE), str(EVAL_ARTICLES)], embedder=embedder)
    assert "migrating the index" in caplog.text and "migrated" in caplog.text
    assert (report.passages_embedded, report.added, report.updated, report.failed) == (0, 0, 0, 0)
    assert report.unchanged == first.added
    index = index_of(settings, embedder)
    assert index.schema == SCHEMA and index.store_id
    rows = index.rows()
    assert all("svec" not in r.meta and isinstance(r.meta["published_ymd"], int) for r in rows)
    assert len(index.sentence_vectors([r.id for r in rows])) == len(rows)
    assert len(index.doc_states()) == first.added
    assert answers(Pipeline(settings, embedder=embedder)) == today


# ---------------------------------------------------------------------------------------------------- server mode

@pytest.mark.server
def test_server_mode_keeps_vectors_and_document_state_on_the_server(tmp_path, chroma_server, embedder):
    """Everything the ingest and the bot need lives on the Chroma server: a process on another host (another data
    dir, nothing shared but the server) reads the sentence vectors and the document state."""
    folder = tmp_path / "articles"
    write_article(folder, "a.md", "Fixture A", body(11))
    write_article(folder, "b.md", "Fixture B", body(12))
    ingest_host = make_settings(tmp_path / "ingest-host", chroma_url=chroma_server, collection="store-test")
    first = run_ingest(ingest_host, [str(folder)], embedder=embedder)
    assert first.added == 2
    assert not (ingest_host.data_dir / "sentences.sqlite").exists() and not (ingest_host.data_dir / "chroma").exists()

    bot_host = make_settings(tmp_path / "bot-host", chroma_url=chroma_server, collection="store-test")
    index = index_of(bot_host, embedder)
    rows = index.passages()
    assert rows and all(r.sentence_vectors.shape == (len(r.sentences), embedder.dimensions) for r in rows)
    assert sorted(index.sentence_vectors([r.id for r in rows[:2]])) == sorted(r.id for r in rows[:2])
    states = index.doc_states(str(folder.resolve()))
    assert sorted(s.doc_id for s in states) == ["a.md", "b.md"] and all(s.complete for s in states)
    names = {c.name if hasattr(c, "name") else c for c in index.client.list_collections()}
    assert {"store-test__sentences", "store-test__documents"} <= names

    # Another host's ingest: the state is found on the server, nothing embedded again; a copy is an alternate.
    other_ingest = make_settings(tmp_path / "other-ingest-host", chroma_url=chroma_server, collection="store-test")
    write_article(folder, "c.md", "Fixture copy", "Syndicated. " + body(11, 14))
    report = run_ingest(other_ingest, [str(folder)], embedder=embedder)
    assert (report.unchanged, report.duplicates, report.passages_embedded) == (2, 1, 0)
    (folder / "b.md").unlink()
    report = run_ingest(other_ingest, [str(folder)], embedder=embedder)
    assert report.removed == 1
    index = index_of(bot_host, embedder)
    assert [s.doc_id for s in index.doc_states()] == ["a.md"]
    assert index.vectors.count() == len(index.rows()), "the removed document's vectors went with it"
    shutil.rmtree(tmp_path / "other-ingest-host", ignore_errors=True)
