"""The timeline: `dealbot timeline` as a user runs it, `/dealbot timeline` through the real app over HTTP (signed
requests, the fake Web API), and the Block Kit limits and escaping of article lists on hostile articles."""

from __future__ import annotations

import json
import re
import shutil
import threading

import pytest

from bot.slack.app import SlackSecrets, create_app
from bot.slack.articles import MAX_BLOCKS
from bot.slack.digest import digest_message
from bot.slack.server import make_http_server
from bot.slack.timeline import parse, timeline_message
from bot.story import LEAD_CHARS, StoryArticle, cut
from conftest import SAMPLE, make_settings, run_cli
from ingest.sync import run_ingest
from news_site import MAGNETS, SIGNED, NewsSite, article_page, rss
from slack_fakes import FakeSlackAPI, post_form, slash_command

SECRET = "0123456789abcdef0123456789abcdef"
FORBIDDEN = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C999>")
HOSTILE_TITLE = "<!channel> Ping <@U123> & <#C999> | a > b " + "long " * 300
HOSTILE_URL = "https://evil.test/a|b>c?x=1&y=<2>"
# A first sentence longer than 220 characters (test fixture text).
LONG_FIRST = ("The fixture ministry said on Tuesday that it would review every export licence issued since the spring, "
              "publish the names of the companies that received them, and ask the customs service to check each "
              "shipment of magnets against the licence that covered it before the end of the year.")


def _fixture_files(folder):
    shutil.copytree(SAMPLE, folder)
    (folder / "undated-fixture.txt").write_text(
        "Review meeting planned\nThis test fixture article has no date. A review meeting was planned for the autumn.\n")
    (folder / "hostile-fixture.md").write_text(
        f"---\ntitle: '{HOSTILE_TITLE}'\noutlet: '<!here> Outlet & Co'\npublished: 2025-09-01\nurl: '{HOSTILE_URL}'\n---\n"
        "This test fixture says <!everyone> should look at <@U123> now. It was written to test escaping.\n")
    (folder / "long-lead-fixture.md").write_text(
        f"---\ntitle: Licence review fixture\noutlet: Test Wire\npublished: 2025-09-02\n---\n{LONG_FIRST} "
        "A second sentence of this test fixture follows.\n")


@pytest.fixture(scope="module")
def story(tmp_path_factory, embedder):
    """An index of: the sample article (2025-06-27), a page and its syndicated copy on the news site (06-28 and
    06-29), a later page (07-15), a hostile and a long-lead fixture (September), an undated fixture."""
    root = tmp_path_factory.mktemp("timeline")
    _fixture_files(root / "articles")
    with NewsSite() as site:
        b = site.base
        site.put("/news/deal-signed", article_page("Rare earth export arrangement completed", SIGNED, published="2025-06-28",
                                                   author="Ada Fixture", canonical=f"{b}/news/deal-signed"))
        site.put("/partner/deal-done", article_page("US and China finish rare earth pact", SIGNED[:5], published="2025-06-29",
                                                    author="Ada Fixture", canonical=None, site="Partner Daily"))
        site.put("/news/magnets", article_page("Magnet shipments recover after the arrangement", MAGNETS,
                                               published="2025-07-15", author=None, canonical=f"{b}/news/magnets"))
        site.put("/feeds/trade", rss(b, [("a", "/news/deal-signed", "Sat, 28 Jun 2025 09:00:00 GMT"),
                                         ("b", "/partner/deal-done", "Sun, 29 Jun 2025 09:00:00 GMT"),
                                         ("c", "/news/magnets", "Tue, 15 Jul 2025 09:00:00 GMT")]), content_type="application/xml")
        settings = make_settings(root / "data", sources=[root / "articles", site.url("/feeds/trade")])
        report = run_ingest(settings, embedder=embedder)
        assert (report.added, report.duplicates, report.failed) == (6, 1, 0), report.failures
        yield settings, site.base


def test_timeline_orders_by_date_collapses_syndicated_copies_and_honours_since(story):
    settings, base = story
    env = {"DEALBOT_DATA_DIR": str(settings.data_dir)}
    r = run_cli("timeline", "--json", env=env)
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    assert [e["published"] for e in entries] == ["2025-06-27", "2025-06-28", "2025-07-15", "2025-09-01", "2025-09-02", None]
    assert set(entries[0]) == {"published", "title", "outlet", "url", "source", "doc_id", "lead", "alternates"}
    signed = entries[1]
    assert signed["title"] == "Rare earth export arrangement completed" and signed["outlet"] == "Fixture Gazette"
    assert signed["url"] == signed["doc_id"] == f"{base}/news/deal-signed" and signed["lead"] == SIGNED[0]
    assert signed["alternates"] == [f"{base}/partner/deal-done"]  # the copy, once, as an alternate
    assert not any(e["title"] == "US and China finish rare earth pact" for e in entries)
    assert entries[4]["lead"] == cut(LONG_FIRST, LEAD_CHARS) and entries[4]["lead"].endswith("…")
    assert len(entries[4]["lead"]) <= LEAD_CHARS + 1 and LONG_FIRST.startswith(entries[4]["lead"][:-1])
    assert entries[-1]["title"] == "Review meeting planned"

    since = json.loads(run_cli("timeline", "--since", "2025-07", "--json", env=env).stdout)
    assert [e["published"] for e in since] == ["2025-07-15", "2025-09-01", "2025-09-02"]  # undated left out
    until = json.loads(run_cli("timeline", "--since", "June 2025", "--until", "2025-06-28", "--json", env=env).stdout)
    assert [e["published"] for e in until] == ["2025-06-27", "2025-06-28"]

    text = run_cli("timeline", env=env).stdout
    months = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert months == ["June 2025", "July 2025", "September 2025", "Undated"]
    assert "  2025-06-28  Rare earth export arrangement completed — Fixture Gazette" in text
    assert "also in: Partner Daily" in text and "  undated     Review meeting planned" in text
    bad = run_cli("timeline", "--since", "someday", env=env)
    assert bad.returncode == 2 and "not a date" in bad.stderr


@pytest.fixture(scope="module")
def slack_app(story, embedder):
    from bot.pipeline import Pipeline

    settings, _ = story
    with FakeSlackAPI() as fake:
        import dataclasses

        slack = make_settings(settings.data_dir, slack_api_url=fake.base_url).slack
        settings = dataclasses.replace(settings, slack=slack)
        app = create_app(settings, Pipeline(settings, embedder), SlackSecrets("xoxb-test-token", signing_secret=SECRET))
        server = make_http_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.run, daemon=True).start()
        yield f"http://127.0.0.1:{server.effective_port}/slack/events", fake
        server.close()


def ask_timeline(url, fake, text):
    fake.reset()
    status, body = post_form(url, slash_command(text, response_url=fake.response_url("t")), SECRET)
    assert status == 200
    return fake.wait_for("response_url", timeout=30)[0].args


def test_slash_timeline_replies_privately_in_date_order_grouped_by_month(slack_app):
    url, fake = slack_app
    reply = ask_timeline(url, fake, "timeline")
    assert reply["response_type"] == "ephemeral"
    body = json.dumps(reply["blocks"], ensure_ascii=False)
    order = [body.index(s) for s in ("*June 2025*", "`2025-06-27`", "`2025-06-28`", "*July 2025*", "`2025-07-15`",
                                     "*September 2025*", "*Undated*", "`undated`")]
    assert order == sorted(order)
    assert "Rare earth export arrangement completed" in body and "also in: Partner Daily" in body
    assert "US and China finish rare earth pact" not in body
    assert f"“{SIGNED[0]}”" in body
    for forbidden in FORBIDDEN:
        assert forbidden not in body
    assert "&lt;!channel&gt;" in body and "https://evil.test/a%7Cb%3Ec?x=1&amp;y=%3C2%3E|" in body

    since = json.dumps(ask_timeline(url, fake, "timeline 2025-07")["blocks"], ensure_ascii=False)
    assert "2025-07-15" in since and "2025-06-28" not in since and "*Undated*" not in since
    assert "since 2025-07-01" in since
    wrong = ask_timeline(url, fake, "timeline octobr 2025")
    assert "not a date" in wrong["text"] and "/dealbot timeline 2025-10" in wrong["text"]


def test_the_timeline_command_is_told_from_a_question():
    assert parse("timeline") == (True, None, "")
    assert parse("Timeline since October 2025") == (True, "2025-10-01", "")
    assert parse("timeline 2025-10-05")[1] == "2025-10-05"
    assert parse("timeline 2025-13")[0] and parse("timeline 2025-13")[2]
    assert parse("timeline of the talks in Geneva?")[0] is False
    assert parse("When was the deal signed?")[0] is False


def hostile(i: int, day: str | None) -> StoryArticle:
    return StoryArticle(
        doc_id=f"d{i}", doc_key=f"k{i}", title=HOSTILE_TITLE + str(i), source=f"/x/{i}.md",
        lead=cut("<!everyone> & <@U123> " * 40, LEAD_CHARS), url=HOSTILE_URL + "&" * 2000 if i % 7 == 0 else HOSTILE_URL,
        outlet="<!here> Outlet & " * 20, published=day,
        alternates=tuple(f"https://copy{j}.test/" for j in range(9)), alternate_outlets=tuple("<!channel>&" * 30 + str(j) for j in range(9)),
    )


def sections(message: dict) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"] + [
        e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"]]


def test_article_lists_stay_within_block_kit_limits_and_escape_hostile_articles():
    days = [f"2025-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 26)][:300]
    many = [hostile(i, day) for i, day in enumerate(days)] + [hostile(999, None)]
    message = timeline_message(many)
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert all(len(t) <= 3000 for t in sections(message))
    note = message["blocks"][-1]["elements"][0]["text"]
    shown = int(re.search(r"Showing the first (\d+) of 301 articles", note)[1])
    assert 0 < shown < 301
    assert f"`/dealbot timeline {many[shown].published[:7]}`" in note  # narrowing to where the list was cut

    digest = digest_message(many[:40], 40)
    assert len(digest["blocks"]) <= MAX_BLOCKS and len(digest["text"]) <= 3000
    assert all(len(t) <= 3000 for t in sections(digest))
    for sent in (json.dumps(message, ensure_ascii=False), json.dumps(digest, ensure_ascii=False)):
        for forbidden in FORBIDDEN:
            assert forbidden not in sent
    # Each link's label is the (escaped) title: the URL's `|` and `>` cannot change it. An overlong URL is not linked.
    first, second = sections(digest)[1:3]
    labels = re.findall(r"<https://evil\.test/([^|>]*)\|([^>]*)>", second)
    assert len(labels) == 1 and labels[0][0] == "a%7Cb%3Ec?x=1&amp;y=%3C2%3E"
    assert labels[0][1].startswith("&lt;!channel&gt; Ping &lt;@U123&gt; &amp; &lt;#C999&gt; | a &gt; b long")
    assert labels[0][1].endswith("…") and len(labels[0][1]) <= 300
    assert "<https://" not in first and first.startswith("&lt;!channel&gt; Ping")  # article 0's URL is too long to link

    # One short article a month for ten years: the 50-block limit, not the length, cuts this one.
    monthly = [StoryArticle(f"m{i}", f"m{i}", f"Report {i}", f"/m/{i}.md", "A sentence.", published=f"{2016 + i // 12}-{i % 12 + 1:02d}-15")
               for i in range(120)] + [StoryArticle("u", "u", "Undated report", "/u.md", "A sentence.")]
    cut_monthly = timeline_message(monthly)
    assert len(cut_monthly["blocks"]) == MAX_BLOCKS
    assert cut_monthly["blocks"][-1]["elements"][0]["text"] == (
        "Showing the first 48 of 121 articles. Narrow it: `/dealbot timeline 2020-01` shows the articles from that month on.")
    assert timeline_message(monthly[72:])["blocks"][-1]["type"] == "section"  # 1 + 48 + undated: just fits
    undated_cut = timeline_message(many[:24] + [hostile(500 + i, None) for i in range(10)])
    assert "The rest are undated: `dealbot timeline`" in undated_cut["blocks"][-1]["elements"][0]["text"]

    few = timeline_message(many[:3])
    assert all(b["type"] == "section" for b in few["blocks"])  # nothing cut, no note
