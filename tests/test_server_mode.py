"""The same ingest and ask against a real Chroma server (`chroma run` on loopback)."""

import json

from bot.pipeline import Pipeline
from conftest import SAMPLE, make_settings, run_cli, write_article
from ingest.sync import run_ingest


def test_cli_ingest_and_ask_against_a_chroma_server(tmp_path, chroma_server):
    env = {"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_CHROMA_URL": chroma_server, "DEALBOT_COLLECTION": "cli-test"}
    r = run_cli("ingest", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["added"] == 1
    assert not (tmp_path / "chroma").exists(), "server mode must not create an embedded store"
    r = run_cli("ask", "--json", "When was the deal signed?", env=env)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["answered"] and answer["citations"][0]["outlet"] == "The Hill"


def test_sync_semantics_hold_on_the_server(tmp_path, chroma_server, embedder):
    settings = make_settings(tmp_path / "d", chroma_url=chroma_server, collection="sync-test")
    other = tmp_path / "other"
    note = write_article(other, "note.md", "Fixture note", "A fixture article kept in a second source about freight rates.")
    first = run_ingest(settings, [str(SAMPLE), str(other)], embedder=embedder)
    assert first.added == 2
    note.unlink()
    again = run_ingest(settings, [str(SAMPLE)], embedder=embedder)
    assert (again.unchanged, again.removed, again.passages_embedded) == (1, 0, 0)
    pipeline = Pipeline(settings, embedder=embedder)
    assert len(pipeline.index.doc_states()) == 2
    assert pipeline.ask("What share of rare earth elements come from China?").answered
