"""Crash safety: `kill -9` an ingest at chosen points, check what readers see, then check that the next run ends
with exactly the index a clean ingest of the same sources builds.

The ingest runs as a real `dealbot ingest` process. A `sitecustomize` module put on its PYTHONPATH (only there)
counts calls at one point (an embedding batch, a Chroma upsert, delete or metadata update) and sends the process
SIGKILL right after the N-th one, so each kill lands exactly where the test means it to.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import textwrap

import numpy as np
import pytest

from conftest import DEALBOT, ROOT, make_settings, write_article
from ingest.index import Index
from ingest.sync import run_ingest

HOOK = textwrap.dedent('''
    import os, signal
    point, _, nth = os.environ["CRASH_AT"].partition(":")
    nth, seen = int(nth or 1), [0]

    def hit():
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    import ingest.sync
    ingest.sync.GROUP_PASSAGES = 6  # several groups, so a run writes in several steps
    if point == "embed":
        from ingest.embed import Embedder
        original = Embedder.encode_passages
        def encode_passages(self, texts, spans, on_batch=None):
            def counted(n):
                on_batch and on_batch(n)
                hit()
            return original(self, texts, spans, on_batch=counted)
        Embedder.encode_passages = encode_passages
    else:
        import ingest.index
        ingest.index.Index.max_batch_size = property(lambda self: 4)  # several upserts per group
        from chromadb.api.models.Collection import Collection
        original = getattr(Collection, point)
        def wrapped(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            hit()
            return result
        setattr(Collection, point, wrapped)
''')

WORDS = ("cargo tariff quota licence magnet smelter port ledger freight permit yttrium dysprosium terbium "
         "customs broker vessel refinery contract audit shipment tonnage invoice depot corridor clause "
         "review summit envoy memo draft ruling waiver exemption filing").split()


def body(seed: int, sentences: int = 16) -> str:
    """Fixture text: seeded word salad, different for every seed, so no two fixture articles are near-duplicates."""
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(9, 16))).capitalize() + f" item {seed}-{i}."
        for i in range(sentences)
    )


def initial(folder):
    for i in range(10):
        write_article(folder, f"doc-{i:02}.md", f"Fixture document {i}", body(i))


def change(folder):
    """Four documents rewritten, one deleted, four added, and a syndicated copy of doc 5 under another name."""
    for i in range(4):
        write_article(folder, f"doc-{i:02}.md", f"Fixture document {i}", body(100 + i))
    (folder / "doc-09.md").unlink()
    for i in range(10, 14):
        write_article(folder, f"doc-{i:02}.md", f"Fixture document {i}", body(i))
    write_article(folder, "doc-14-copy.md", "Copy of fixture document 5", "Syndicated copy. " + body(5, 14))


def snapshot(settings, embedder, visible_only=False):
    """Every stored row (or only what readers see) by (file, version, n): its text and metadata, with the folder's
    path taken out so that two data dirs built from two folders compare; minus the write time and the doc key
    (derived from the path)."""
    index = Index(settings, embedder.name, embedder.dimensions)
    rows = index.passages() if visible_only else index.rows()
    root = str(settings.data_dir.parent / "articles")
    ignore = {"written", "svec", "doc_key"}

    def plain(value):
        return value.replace(root, "<articles>") if isinstance(value, str) else value

    return {
        (plain(r.meta["location"]), r.meta["version"], r.meta["n"]): (
            r.text, {k: plain(v) for k, v in r.meta.items() if k not in ignore})
        for r in rows
    }


def side_stores(settings, embedder) -> tuple[dict, dict]:
    """The sidecar's sentence vectors and the document state, keyed like `vectors` (file:version:n / file:version);
    checks that the sidecar holds nothing but the stored passages' vectors."""
    index = Index(settings, embedder.name, embedder.dimensions)
    rows = index.rows()
    by_id = index.sentence_vectors([r.id for r in rows])
    assert index.vectors.count() == len(rows) == len(by_id), "sentence vectors left behind, or missing"
    sentence = {f"{os.path.basename(r.meta['location'])}:{r.meta['version']}:{r.meta['n']}": by_id[r.id] for r in rows}
    states = {
        f"{os.path.basename(s.location)}:{s.version}": (s.complete, s.passages, s.text_hash, s.minhash,
                                                        sorted(os.path.basename(a) for a in s.alternates))
        for s in index.doc_states()
    }
    return sentence, states


def vectors(settings, embedder) -> dict[str, np.ndarray]:
    res = Index(settings, embedder.name, embedder.dimensions).collection.get(include=["embeddings", "metadatas"])
    return {
        f"{os.path.basename(m['location'])}:{m['version']}:{m['n']}": np.asarray(e)
        for m, e in zip(res["metadatas"], res["embeddings"])
    }


@pytest.fixture(scope="module")
def clean(tmp_path_factory, embedder):
    """The index a clean ingest of the changed folder builds, and the texts each document may show."""
    base = tmp_path_factory.mktemp("crash-reference")
    folder = base / "articles"
    initial(folder)
    old_texts = {p.name: p.read_text() for p in folder.iterdir()}
    change(folder)
    new_texts = {p.name: p.read_text() for p in folder.iterdir()}
    settings = make_settings(base / "data", embedding_batch_size=4)
    run_ingest(settings, [str(folder)], embedder=embedder)
    return settings, snapshot(settings, embedder), old_texts, new_texts


@pytest.mark.parametrize("point", ["embed:2", "embed:5", "upsert:2", "upsert:4", "delete:1", "delete:3", "update:1"])
def test_kill_9_leaves_each_document_whole_and_the_next_run_completes_it(point, tmp_path, embedder, clean):
    reference_settings, reference, old_texts, new_texts = clean
    folder = tmp_path / "articles"
    initial(folder)
    settings = make_settings(tmp_path / "data", embedding_batch_size=4)
    run_ingest(settings, [str(folder)], embedder=embedder)
    change(folder)

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    environ.update(CRASH_AT=point, PYTHONPATH=str(hook), DEALBOT_DATA_DIR=str(tmp_path / "data"),
                   DEALBOT_EMBEDDING_BATCH_SIZE="4")
    killed = subprocess.run([str(DEALBOT), "ingest", "--source", str(folder)], env=environ, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, f"the kill point {point} was not reached: {killed.stderr[-2000:]}"

    # What readers see right after the kill: each document wholly its old or wholly its new version, every
    # passage with its sentence vectors.
    index = Index(settings, embedder.name, embedder.dimensions)
    assert len(index.passages()) == len(index.passages(with_vectors=False))
    seen: dict[str, list[tuple[int, str]]] = {}
    for (location, _, n), (text, meta) in snapshot(settings, embedder, visible_only=True).items():
        seen.setdefault(location, []).append((n, text, meta["n_total"], meta["version"]))
    for location, parts in seen.items():
        name = os.path.basename(location)
        assert len({v for *_, v in parts}) == 1, f"{name}: two versions visible"
        assert sorted(n for n, *_ in parts) == list(range(parts[0][2])), f"{name}: incomplete version visible"
        shown = " ".join(t for _, t, *_ in sorted(parts))
        candidates = [texts[name] for texts in (old_texts, new_texts) if name in texts]
        assert any(_covers(c, shown) for c in candidates), f"{name}: neither its old nor its new text"

    # The next run completes the work: the same index as a clean ingest, nothing left behind.
    report = run_ingest(settings, [str(folder)], embedder=embedder)
    assert report.failed == 0
    after = snapshot(settings, embedder)
    assert sorted(after) == sorted(reference)
    assert after == reference
    ref_vectors, our_vectors = vectors(reference_settings, embedder), vectors(settings, embedder)
    assert ref_vectors.keys() == our_vectors.keys()
    assert all(np.allclose(ref_vectors[k], our_vectors[k], atol=1e-4) for k in ref_vectors)
    (ref_sentences, ref_states), (our_sentences, our_states) = side_stores(reference_settings, embedder), side_stores(settings, embedder)
    assert ref_sentences.keys() == our_sentences.keys()
    assert all(np.allclose(ref_sentences[k], our_sentences[k], atol=1e-2) for k in ref_sentences)
    assert our_states == ref_states


def _covers(file_text: str, shown: str) -> bool:
    """Whether every passage sentence shown comes from this file's text (passages overlap by a sentence)."""
    return all(part in file_text for part in shown.split(". ") if part.strip())
