"""Ingest against a real embedded Chroma and the real model."""

import shutil

import pytest

from conftest import FIXTURES, make_settings, write_article
from ingest.embed import Embedder
from ingest.index import Index, IndexAccessError
from ingest.sync import run_ingest


def index_of(settings, embedder):
    return Index(settings, embedder.name, embedder.dimensions)


def docs(settings, embedder):
    return sorted(s.doc_id for s in index_of(settings, embedder).doc_states())


def test_first_run_adds_then_unchanged_run_embeds_nothing_and_never_loads_the_model(settings, articles, embedder):
    first = run_ingest(settings, [str(articles)], embedder=embedder)
    assert (first.added, first.unchanged, first.failed) == (1, 0, 0)
    assert first.passages_embedded == index_of(settings, embedder).count() > 0

    fresh = Embedder()
    second = run_ingest(settings, [str(articles)], embedder=fresh)
    assert (second.added, second.updated, second.unchanged, second.passages_embedded) == (0, 0, 1, 0)
    assert "model" not in fresh.__dict__, "an unchanged run must not load the model"


def test_changed_document_replaces_its_passages(settings, articles, embedder):
    path = write_article(articles, "note.md", "Fixture note", "This fixture says the first version of a fact. It has two sentences.")
    run_ingest(settings, [str(articles)], embedder=embedder)
    index = index_of(settings, embedder)
    before = {r.id for r in index.rows({"location": str(path)})}

    write_article(articles, "note.md", "Fixture note", "This fixture now says a second version. Nothing else remains of the first.")
    report = run_ingest(settings, [str(articles)], embedder=embedder)
    assert (report.updated, report.unchanged, report.added) == (1, 1, 0)
    rows = index.rows({"location": str(path)})
    assert rows and not ({r.id for r in rows} & before)
    assert all("second version" in r.text or "Nothing else" in r.text for r in rows)
    assert len(index.doc_states()) == 2


def test_vanished_document_is_removed_but_only_from_its_own_source(tmp_path, settings, embedder):
    a, b = tmp_path / "a", tmp_path / "b"
    write_article(a, "one.md", "Fixture A one", "Source A holds this first fixture article about tariffs.")
    gone = write_article(a, "two.md", "Fixture A two", "Source A also holds this second fixture article about ports.")
    write_article(b, "three.md", "Fixture B three", "Source B holds a third fixture article about shipping.")
    run_ingest(settings, [str(a), str(b)], embedder=embedder)
    assert len(docs(settings, embedder)) == 3

    gone.unlink()
    only_b = run_ingest(settings, [str(b)], embedder=embedder)
    assert (only_b.removed, only_b.unchanged) == (0, 1)
    assert len(docs(settings, embedder)) == 3, "--source B must not prune what came from A"

    only_a = run_ingest(settings, [str(a)], embedder=embedder)
    assert (only_a.removed, only_a.unchanged) == (1, 1)
    assert docs(settings, embedder) == ["one.md", "three.md"]


def test_missing_source_is_reported_and_prunes_nothing(tmp_path, settings, articles, embedder):
    run_ingest(settings, [str(articles)], embedder=embedder)
    moved = tmp_path / "moved"
    articles.rename(moved)
    report = run_ingest(settings, [str(articles)], embedder=embedder)
    assert report.failed == 1 and "no such file or folder" in report.failures[0].reason
    assert report.removed == 0 and len(docs(settings, embedder)) == 1


def test_exact_duplicates_are_stored_once(tmp_path, settings, embedder):
    body = "Identical fixture text published twice. It describes a rare earth licence process."
    write_article(tmp_path / "src", "copy-1.md", "Copy one", body)
    write_article(tmp_path / "src", "copy-2.md", "Copy two", body)
    report = run_ingest(settings, [str(tmp_path / "src")], embedder=embedder)
    assert (report.added, report.duplicates) == (1, 1)
    assert len(docs(settings, embedder)) == 1


def test_bad_files_are_reported_and_the_run_goes_on(settings, articles, embedder):
    for name in ("binary.txt", "latin1.txt", "empty.md", "plain-note.txt"):
        shutil.copy(FIXTURES / name, articles / name)
    report = run_ingest(settings, [str(articles)], embedder=embedder)
    assert (report.added, report.failed) == (2, 3)
    reasons = {f.location.rsplit("/", 1)[1]: f.reason for f in report.failures}
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "empty" in reasons["empty.md"]


def test_a_file_that_breaks_keeps_its_previous_version(settings, articles, embedder):
    path = articles / "the-hill-2025-06-27.md"
    run_ingest(settings, [str(articles)], embedder=embedder)
    count = index_of(settings, embedder).count()
    path.write_bytes(b"\xff\xfe broken bytes \x00\x00")
    report = run_ingest(settings, [str(articles)], embedder=embedder)
    assert report.failed == 1 and report.removed == 0
    assert index_of(settings, embedder).count() == count


def test_writes_respect_chromas_max_batch_size(settings, articles, embedder, monkeypatch):
    from chromadb.api.models.Collection import Collection

    sizes = []
    real_upsert = Collection.upsert

    def recording_upsert(self, ids, **kwargs):
        sizes.append(len(ids))
        return real_upsert(self, ids, **kwargs)

    monkeypatch.setattr(Collection, "upsert", recording_upsert)
    monkeypatch.setattr(Index, "max_batch_size", property(lambda self: 2))
    report = run_ingest(settings, [str(articles)], embedder=embedder)
    assert report.passages_embedded > 2
    assert sizes and max(sizes) <= 2 and sum(sizes) == report.passages_embedded


def test_an_interrupted_write_is_cleaned_up_by_the_next_run(settings, articles, embedder):
    """A version left half-written (rows without the rest) is replaced whole on the next run."""
    run_ingest(settings, [str(articles)], embedder=embedder)
    index = index_of(settings, embedder)
    rows = index.rows()
    # Simulate a crash mid-write of the current version: its document state entered as incomplete (as the write
    # does first) and only some of its rows made it.
    state = index.doc_states()[0]
    index.documents.mark(state.key, state.version, False)
    index.collection.delete(ids=[r.id for r in rows[1:]])
    assert not index.doc_states()[0].complete

    report = run_ingest(settings, [str(articles)], embedder=embedder)
    assert report.updated == 1 and report.passages_embedded == len(rows)
    assert sorted(r.id for r in index.rows()) == sorted(r.id for r in rows)
    assert all(s.complete for s in index.doc_states())


def test_index_built_with_another_model_is_a_clear_error(settings, articles, embedder):
    run_ingest(settings, [str(articles)], embedder=embedder)
    with pytest.raises(IndexAccessError, match="built with embedding model .* not 'other-model'"):
        Index(settings, "other-model", 384)


def test_embedded_and_unreachable_server_modes(tmp_path, embedder):
    s = make_settings(tmp_path, chroma_url="http://127.0.0.1:9")
    with pytest.raises(IndexAccessError, match="cannot reach the Chroma server at http://127.0.0.1:9"):
        Index(s, embedder.name, embedder.dimensions)
    s = make_settings(tmp_path, chroma_url="localhost:8000")
    with pytest.raises(IndexAccessError, match="is not a URL"):
        Index(s, embedder.name, embedder.dimensions)
