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


def test_with_a_server_writers_need_no_lock_and_a_running_bot_sees_new_articles(tmp_path, chroma_server, embedder):
    """Ingest jobs and bots are separate processes sharing the server: no lock, and no restart to see new articles."""
    from ingest.lock import WriterLock

    settings = make_settings(tmp_path / "d", chroma_url=chroma_server, collection="no-lock-test")
    folder = tmp_path / "articles"
    write_article(folder, "first.md", "Fixture first", "The first fixture article says a customs audit began in May.")
    run_ingest(settings, [str(folder)], embedder=embedder)
    bot = Pipeline(settings, embedder=embedder)
    question = "Which depot received the first cobalt cargo?"
    assert not bot.ask(question).answered

    with WriterLock(settings.data_dir):  # as if an embedded writer held the data dir: irrelevant with a server
        env = {"DEALBOT_DATA_DIR": str(settings.data_dir), "DEALBOT_CHROMA_URL": chroma_server,
               "DEALBOT_COLLECTION": "no-lock-test"}
        write_article(folder, "second.md", "Fixture cobalt", "The first cobalt cargo was received at the Tianjin depot in June.")
        r = run_cli("ingest", "--json", "--source", str(folder), env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.splitlines()[-1])["added"] == 1

    assert bot.retriever.caught_up(60)  # the background refresh, never a question, brings the new article in
    answer = bot.ask(question)
    assert answer.answered and "Tianjin" in answer.text

    # Another process replaces an article by a new version of the same size: the passage count ends where it was,
    # and the bot still takes the change in (the ingest marks each run that changed something).
    before = bot.index.count()
    write_article(folder, "first.md", "Fixture first", "The first fixture article says a customs audit began in August.")
    r = run_cli("ingest", "--json", "--source", str(folder), env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["updated"] == 1 and bot.index.count() == before
    assert bot.retriever.caught_up(60)
    hits = bot.retrieve("When did the customs audit begin?")[2]
    assert any("August" in h.text for h in hits) and not any("began in May" in h.text for h in hits)
