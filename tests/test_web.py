"""Ingest from the web: feeds and pages from a fake news site on 127.0.0.1, the real model and embedded Chroma."""

from __future__ import annotations

import json

import pytest

from conftest import make_settings, run_cli, run_on_terminal
from ingest.index import Index
from ingest.sync import run_ingest
from news_site import BOILERPLATE, MAGNETS, SIGNED, UNDATED, NewsSite, article_page, build_site

FAST = dict(fetch_read_timeout=1, fetch_retries=1, fetch_backoff_seconds=0.01, fetch_max_bytes=1_000_000)


@pytest.fixture
def site():
    with NewsSite() as s:
        build_site(s)
        yield s


@pytest.fixture
def web_settings(tmp_path):
    return make_settings(tmp_path / "data", **FAST)


def stored(settings, embedder) -> dict[str, list]:
    """location -> the rows readers see for it."""
    out: dict[str, list] = {}
    for row in Index(settings, embedder.name, embedder.dimensions).passages():
        out.setdefault(row.meta["location"], []).append(row)
    return out


def test_feed_ingest_keeps_articles_drops_boilerplate_collapses_copies_and_reports_failures(site, web_settings, embedder):
    feed = site.url("/feeds/trade")
    report = run_ingest(web_settings, [feed], embedder=embedder)

    docs = stored(web_settings, embedder)
    assert sorted(docs) == [site.url(p) for p in ("/news/deal-signed", "/news/magnets", "/news/review-planned")]
    text = " ".join(r.text for rows in docs.values() for r in rows)
    assert SIGNED[1] in text and MAGNETS[2] in text
    for junk in BOILERPLATE + ["Home", "Privacy", "Stocks slide", "Accept"]:
        assert junk not in text, f"boilerplate {junk!r} was indexed"

    signed = docs[site.url("/news/deal-signed")][0].meta
    assert (signed["title"], signed["author"], signed["published"], signed["outlet"]) == (
        "Rare earth export arrangement completed", "Ada Fixture", "2025-06-28", "Fixture Gazette")
    assert signed["url"] == site.url("/news/deal-signed")
    assert json.loads(signed["alts"]) == [site.url("/partner/rare-earth-deal-done")], "the syndicated copy is an alternate"
    undated = docs[site.url("/news/review-planned")][0].meta
    assert undated["published"] == "2025-08-20", "a page without a date takes its feed entry's date"

    assert (report.added, report.duplicates, report.failed) == (3, 1, 4)
    reasons = {f.location.removeprefix(site.base): f.reason for f in report.failures}
    assert reasons["/news/gone"] == "HTTP 404 Not Found"
    assert reasons["/news/slow"].startswith("timed out")
    assert reasons["/files/report.bin"].startswith("not an HTML page or a feed (application/octet-stream)")
    assert reasons["/news/huge"].startswith("too large")
    per = report.per_source[feed]
    assert (per.kind, per.added, per.duplicates, per.failed, per.error) == ("feed", 3, 1, 4, None)
    assert len(per.failures) == 4
    assert all(h.get("User-Agent", "").startswith("dealbot/") for _, _, h in site.log)


def test_second_run_asks_conditionally_downloads_nothing_and_embeds_nothing(site, web_settings, embedder):
    feed = site.url("/feeds/trade")
    run_ingest(web_settings, [feed], embedder=embedder)
    first = len(site.log)
    second = run_ingest(web_settings, [feed], embedder=embedder)

    later = site.log[first:]
    kept = ["/feeds/trade", "/news/deal-signed", "/partner/rare-earth-deal-done", "/news/magnets", "/news/review-planned"]
    for path in kept:
        [(status, headers)] = [(s, h) for p, s, h in later if p == path]
        assert status == 304 and headers.get("If-None-Match") == site.resources[path].etag, path
    assert (second.passages_embedded, second.added, second.updated, second.fetched) == (0, 0, 0, 0)
    assert (second.not_modified, second.unchanged) == (4, 4)
    assert second.failed == 4, "the broken links are tried again, and reported again"


def test_last_modified_alone_also_makes_a_conditional_request(site, web_settings, embedder):
    site.resources["/news/magnets"].send_etag = False
    page = site.url("/news/magnets")
    run_ingest(web_settings, [page], embedder=embedder)
    second = run_ingest(web_settings, [page], embedder=embedder)
    (_, first_headers), (status, headers) = site.requests_for("/news/magnets")
    assert "If-Modified-Since" not in first_headers
    assert status == 304 and headers["If-Modified-Since"] == "Fri, 27 Jun 2025 04:53:20 GMT"
    assert "If-None-Match" not in headers
    assert (second.not_modified, second.passages_embedded) == (1, 0)


def test_changed_page_is_downloaded_and_replaced_and_new_entries_are_added(site, web_settings, embedder):
    feed = site.url("/feeds/trade")
    run_ingest(web_settings, [feed], embedder=embedder)
    site.put("/news/magnets", article_page(
        "Magnet shipments recover after the arrangement", MAGNETS + ["A correction was added to this fixture later."],
        published="2025-07-15", author="Ben Fixture", canonical=site.url("/news/magnets")))
    report = run_ingest(web_settings, [feed], embedder=embedder)
    assert (report.updated, report.added, report.not_modified) == (1, 0, 3)
    rows = stored(web_settings, embedder)[site.url("/news/magnets")]
    assert any("A correction was added" in r.text for r in rows)
    assert len({r.meta["version"] for r in rows}) == 1


def test_a_single_page_url_and_an_atom_feed_recognised_by_content(site, web_settings, embedder):
    page = site.url("/news/deal-signed")
    atom = site.url("/atom")  # served as text/plain, no extension: only its content says it is a feed
    xhtml = site.url("/news/review.xhtml")  # XML, but a page, not a feed
    html = article_page("Review of the export arrangement planned", UNDATED, published="2025-08-20", author=None,
                        canonical=None).replace("<!DOCTYPE html>", '<?xml version="1.0" encoding="utf-8"?>')
    site.put("/news/review.xhtml", html, content_type="application/xhtml+xml")
    report = run_ingest(web_settings, [page, atom, xhtml], embedder=embedder)
    kinds = [report.per_source[s].kind for s in (page, atom, xhtml)]
    assert kinds == ["page", "feed", "page"] and report.failed == 0
    assert sorted(stored(web_settings, embedder)) == sorted([page, site.url("/news/magnets"), xhtml])


def test_retries_a_server_error_then_succeeds(site, web_settings, embedder):
    site.resources["/news/magnets"].fail_first = 1
    report = run_ingest(web_settings, [site.url("/news/magnets")], embedder=embedder)
    assert report.added == 1
    assert [s for s, _ in site.requests_for("/news/magnets")] == [503, 200]


def test_feed_options_filter_and_cap_entries(site, tmp_path, embedder):
    config = tmp_path / "dealbot.toml"
    config.write_text(
        f"data_dir = 'data'\n[fetch]\nread_timeout = 1.0\nretries = 0\n"
        f"[[sources]]\nlocation = '{site.url('/feeds/trade')}'\nname = 'Fixture trade feed'\nmax_entries = 2\n"
        f"include = ['*/news/*']\nexclude = ['*/news/magnets']\n"
    )
    from ingest.settings import load_settings

    settings = load_settings(config, env={})
    report = run_ingest(settings, embedder=embedder)
    # include keeps /news/*; exclude drops magnets; max_entries keeps the first two that remain.
    assert sorted(stored(settings, embedder)) == [site.url("/news/deal-signed"), site.url("/news/review-planned")]
    assert report.per_source[site.url("/feeds/trade")].name == "Fixture trade feed"
    assert not site.requests_for("/partner/rare-earth-deal-done") and not site.requests_for("/news/magnets")


def test_cli_exit_status_and_report(site, tmp_path):
    env = {"DEALBOT_DATA_DIR": str(tmp_path / "data"), **{f"DEALBOT_{k.upper()}": str(v) for k, v in FAST.items()}}
    dead = run_cli("ingest", "--json", "--source", site.url("/news/gone"), env=env)
    assert dead.returncode == 1, "every source failed"
    assert json.loads(dead.stdout.splitlines()[-1])["failures"][0]["reason"] == "HTTP 404 Not Found"

    broken = run_cli("ingest", "--json", "--source", site.url("/feeds/broken"), env=env)
    assert broken.returncode == 1
    assert "malformed feed" in json.loads(broken.stdout.splitlines()[-1])["failures"][0]["reason"]

    mixed = run_cli("ingest", "--json", "--source", site.url("/feeds/broken"), "--source", site.url("/news/magnets"), env=env)
    assert mixed.returncode == 0, "a run that completed exits 0 and lists its failures"
    report = json.loads(mixed.stdout.splitlines()[-1])
    assert report["added"] == 1 and report["failed"] == 1
    assert set(report["per_source"]) == {site.url("/feeds/broken"), site.url("/news/magnets")}

    bad = run_cli("ingest", "--source", "ftp://127.0.0.1/feed", env=env)
    assert bad.returncode == 1 and "only http and https" in bad.stderr

    status = run_cli("status", "--json", env={**env, "DEALBOT_SOURCES": site.url("/news/magnets")})
    info = json.loads(status.stdout)
    by_location = {s["location"]: s for s in info["sources"]}
    assert by_location[site.url("/news/magnets")]["documents"] == 1
    assert by_location[site.url("/news/magnets")]["configured"] is True
    broken_run = by_location[site.url("/feeds/broken")]["last_run"]
    assert "malformed feed" in broken_run["error"] and by_location[site.url("/feeds/broken")]["configured"] is False
    text = run_cli("status", env={**env, "DEALBOT_SOURCES": site.url("/news/magnets")}).stdout
    assert "malformed feed" in text and "1 added" in text


def test_answers_cite_a_syndicated_story_once_and_name_its_copies(site, web_settings, embedder):
    from bot.pipeline import Pipeline
    from bot.render import answer_dict, answer_text

    run_ingest(web_settings, [site.url("/feeds/trade")], embedder=embedder)
    answer = Pipeline(web_settings, embedder=embedder).ask("Which industry groups said supply delays slowed assembly lines?")
    assert answer.answered, answer.reason
    [citation] = answer_dict(answer)["citations"]
    assert citation["url"] == site.url("/news/deal-signed")
    assert citation["alternates"] == [site.url("/partner/rare-earth-deal-done")]
    assert "also published at: " + site.url("/partner/rare-earth-deal-done") in answer_text(answer)


def test_progress_bars_on_a_terminal_and_quiet_elsewhere(site, tmp_path):
    env = {"DEALBOT_DATA_DIR": str(tmp_path / "tty"), **{f"DEALBOT_{k.upper()}": str(v) for k, v in FAST.items()}}
    code, reads, _ = run_on_terminal(["ingest", "--source", site.url("/feeds/trade")], env, terminal="stderr")
    stderr = b"".join(data for _, data in reads).decode("utf-8", "replace")
    assert code == 0
    assert f"fetching {site.url('/feeds/trade')}:" in stderr and "page" in stderr, stderr
    assert "embedding:" in stderr and "passage" in stderr, stderr

    quiet = run_cli("ingest", "--source", site.url("/feeds/trade"), env={**env, "DEALBOT_DATA_DIR": str(tmp_path / "pipe")})
    assert quiet.returncode == 0
    assert "fetching" not in quiet.stderr and "embedding" not in quiet.stderr
