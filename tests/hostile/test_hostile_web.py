"""Hostile web sources on the fake news site (tests/news_site.py, 127.0.0.1): pages that trickle, hang, lie about
their length, explode when decompressed, redirect in circles or to other schemes, and feeds that declare entities,
list thousands of entries or answer 304 to a first request. Most go through ONE ingest run (each asserted on its
own); the ones about time and memory are also measured alone. Every article text is an invented test fixture.
"""

from __future__ import annotations

import functools
import gzip
import json
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ingest_inputs import SECRET, fixture_text  # noqa: E402

from conftest import free_port, make_settings  # noqa: E402
from news_site import (  # noqa: E402
    NewsSite,
    article_page,
    cut_short,
    endless_chunks,
    header_trickle,
    raw_bytes,
    rss,
    silence,
    stall_after,
    trickle,
)

# Small limits, so that the slow cases end quickly: what matters is that each ends at its limit.
LIMITS = dict(fetch_read_timeout=1.0, fetch_retries=2, fetch_backoff_seconds=0.01, fetch_deadline_seconds=3.0,
              fetch_max_bytes=1_000_000)


def page(seed: str, title: str | None = None, **kw) -> bytes:
    paragraphs = [fixture_text(seed, 3), fixture_text(seed + "-2", 3)]
    return article_page(title or f"Fixture page {seed}", paragraphs, published="2025-07-01", author=None,
                        canonical=kw.pop("canonical", None), **kw).encode()


@functools.cache
def gzip_bomb(gigabytes: float = 1.0) -> bytes:
    """Concatenated gzip members of zeros: about 1 KB sent per MB it decompresses to."""
    return gzip.compress(b"\0" * (1 << 20), 9) * int(1024 * gigabytes)


@functools.cache
def deflate_bomb(megabytes: int = 100) -> bytes:
    c = zlib.compressobj(9)
    return b"".join([c.compress(b"\0" * (1 << 20)) for _ in range(megabytes)] + [c.flush()])


def entity_feed(doctype: str, base: str) -> str:
    return rss(base, [("Entity &e;", "/ok/entity", "Tue, 01 Jul 2025 09:00:00 GMT")]).replace(
        '<?xml version="1.0" encoding="UTF-8"?>', f'<?xml version="1.0" encoding="UTF-8"?>{doctype}')


@dataclass(frozen=True)
class WebCase:
    """A hostile URL: an entry of the hostile feed ("entry"), or a source of its own ("source"); what it must come to:
    "fail" with `reason` in the report, or "stored"."""

    id: str
    path: str
    put: dict
    expect: str
    reason: str = ""
    role: str = "entry"
    link: str = ""  # what the feed lists, when it is not the site's URL of `path`
    reported_as: str = ""  # the link as the report names it (feedparser tidies some)
    also: tuple = ()  # (path, put) of other resources the case needs


def web_cases(secret_file: Path) -> list[WebCase]:
    big_title = "Headline words " * 200
    xxe = f'<!DOCTYPE rss [<!ENTITY e SYSTEM "file://{secret_file}">]>'
    laughs = '<!DOCTYPE rss [<!ENTITY e0 "lol">' + "".join(
        f'<!ENTITY e{i} "{("&e%d;" % (i - 1)) * 10}">' for i in range(1, 10)) + '<!ENTITY e "&e9;">]>'
    return [
        WebCase("trickle-content-length", "/h/trickle", dict(body=b"", raw=trickle(page("trickle"), every=1.0)), "fail", "too slow: the page did not arrive within 1s"),
        WebCase("trickle-chunked", "/h/trickle-chunked", dict(body=b"", raw=trickle(page("trickle2"), every=0.3, chunked=True)), "fail", "too slow"),
        WebCase("length-larger-then-silence", "/h/stall", dict(body=b"", raw=stall_after(page("stall")[:200], 100_000)), "fail", "too slow"),
        WebCase("length-larger-then-close", "/h/cut", dict(body=b"", raw=cut_short(page("cut")[:200], 100_000)), "fail", "cut short: IncompleteRead(200 bytes read"),
        WebCase("length-smaller", "/h/smaller", dict(body=page("smaller"), headers={"Content-Length": "10"}), "fail", "no article text found"),
        WebCase("length-negative", "/h/negative", dict(body=page("negative"), headers={"Content-Length": "-5"}), "stored"),
        WebCase("length-not-a-number", "/h/nan", dict(body=page("nan"), headers={"Content-Length": "abc"}), "stored"),
        WebCase("length-conflicting", "/h/conflict", dict(body=page("conflict"), headers={"Content-Length": "1814, 20"}), "fail", "Content-Length contained multiple unmatching values"),
        WebCase("length-huge", "/h/huge-length", dict(body=page("hugelen"), headers={"Content-Length": str(10**12)}), "fail", "too large: 1,000,000,000,000 bytes"),
        WebCase("gzip-bomb", "/h/gzip-bomb", dict(body=gzip_bomb(0.25), headers={"Content-Encoding": "gzip"}), "fail", "once decompressed"),
        WebCase("deflate-bomb", "/h/deflate-bomb", dict(body=deflate_bomb(50), headers={"Content-Encoding": "deflate"}), "fail", "once decompressed"),
        WebCase("gzip-invalid", "/h/gzip-invalid", dict(body=b"this is not gzip at all", headers={"Content-Encoding": "gzip"}), "fail", "the body was broken or cut short"),
        WebCase("gzip-valid", "/h/gzip-valid", dict(body=gzip.compress(page("gzipped")), headers={"Content-Encoding": "gzip"}), "stored"),
        WebCase("endless-chunks", "/h/endless", dict(body=b"", raw=endless_chunks), "fail", "too large: over 1,000,000 bytes"),
        WebCase("big-until-close", "/h/big-close", dict(body=b"", raw=raw_bytes(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + b"<p>x</p>" * 300_000)), "fail", "too large: over"),
        WebCase("redirect-loop", "/h/loop", dict(body=b"", status=302, headers={"Location": "/h/loop"}), "fail", "too many redirects (more than 10)"),
        WebCase("redirect-ping-pong", "/h/ping", dict(body=b"", status=301, headers={"Location": "/h/pong"}), "fail", "too many redirects",
                also=(("/h/pong", dict(body=b"", status=302, headers={"Location": "/h/ping"})),)),
        WebCase("redirect-file", "/h/to-file", dict(body=b"", status=302, headers={"Location": "file:///etc/passwd"}), "fail", "redirected to a non-http URL: file:///etc/passwd"),
        WebCase("redirect-file-secret", "/h/to-secret", dict(body=b"", status=307, headers={"Location": f"file://{secret_file}"}), "fail", "redirected to a non-http URL: file://"),
        WebCase("redirect-ftp", "/h/to-ftp", dict(body=b"", status=301, headers={"Location": "ftp://127.0.0.1/pub/x"}), "fail", "redirected to a non-http URL: ftp://"),
        WebCase("redirect-javascript", "/h/to-js", dict(body=b"", status=302, headers={"Location": "javascript:alert(1)"}), "fail", "redirected to a non-http URL: javascript:"),
        WebCase("redirect-data", "/h/to-data", dict(body=b"", status=302, headers={"Location": "data:text/html,<p>hi</p>"}), "fail", "redirected to a non-http URL: data:"),
        WebCase("redirect-no-location", "/h/no-location", dict(body=b"", status=302), "fail", "HTTP 302 Found"),
        WebCase("redirect-to-page", "/h/moved", dict(body=b"", status=301, headers={"Location": "/ok/moved-here"}), "stored"),
        WebCase("not-modified-unasked", "/h/304", dict(body=b"", status=304), "fail", "HTTP 304 Not Modified to a request that was not conditional"),
        WebCase("server-error", "/h/500", dict(body=b"", status=500), "fail", "HTTP 500"),
        WebCase("retry-after-an-hour", "/h/503", dict(body=b"", status=503, headers={"Retry-After": "3600"}), "fail", "HTTP 503"),
        WebCase("not-found", "/h/404", dict(body=b"", status=404), "fail", "HTTP 404"),
        WebCase("garbage-status-line", "/h/garbage", dict(body=b"", raw=raw_bytes(b"NOT HTTP AT ALL\r\n\r\n")), "fail", "cannot connect"),
        WebCase("closed-at-once", "/h/closed", dict(body=b"", raw=raw_bytes(b"")), "fail", "Remote end closed connection without response"),
        WebCase("never-answers", "/h/silence", dict(body=b"", raw=silence), "fail", "gave up after 3s (fetch.deadline_seconds)"),
        WebCase("headers-trickle", "/h/header-trickle", dict(body=b"", raw=header_trickle), "fail", "fetch.deadline_seconds"),
        WebCase("binary-as-html", "/h/binary", dict(body=bytes(range(256)) * 40), "fail", "not an HTML page or a feed"),
        WebCase("nul-after-4kb", "/h/late-nul", dict(body=page("latenul").replace(b"<body>", b"<body><!--" + b" " * 8000 + b"-->").replace(b"</body>", b"\x00</body>")), "fail", "binary file, not text"),
        WebCase("pdf", "/h/pdf", dict(body=b"%PDF-1.7\n" + bytes(range(256)) * 8, content_type="application/pdf"), "fail", "not an HTML page or a feed (application/pdf)"),
        WebCase("empty-body", "/h/empty", dict(body=b""), "fail", "empty file"),
        WebCase("title-3kb", "/h/long-title", dict(body=page("longtitle", title=big_title)), "stored"),
        WebCase("canonical-javascript", "/h/js-canonical", dict(body=page("jscanon", canonical="javascript:alert(1)")), "stored"),
        WebCase("canonical-file", "/h/file-canonical", dict(body=page("filecanon", canonical="file:///etc/passwd")), "stored"),
        WebCase("xhtml-xxe", "/h/xxe-page", dict(body=page("xxepage").replace(b"<!DOCTYPE html>", f'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY x SYSTEM "file://{secret_file}">]>'.encode()).replace(b"</article>", b"<p>&x;</p></article>")), "stored"),
        WebCase("entry-file-link", "", {}, "fail", "does not link to an http(s) page", link="file:///etc/passwd", reported_as="file://etc/passwd"),
        WebCase("entry-javascript-link", "", {}, "fail", "does not link to an http(s) page", link="javascript:alert(document.cookie)"),
        WebCase("entry-refused-port", "", {}, "fail", "cannot connect: Connection refused", link=f"http://127.0.0.1:{free_port()}/gone"),
        # sources of their own
        WebCase("feed-xxe", "/f/xxe", dict(body=xxe, content_type="application/rss+xml"), "fail", "declares XML entities", role="source"),
        WebCase("feed-billion-laughs", "/f/laughs", dict(body=laughs, content_type="application/rss+xml"), "fail", "declares XML entities", role="source"),
        WebCase("feed-parameter-entity", "/f/param", dict(body=f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "file://{secret_file}"> %p;]>', content_type="application/rss+xml"), "fail", "declares XML entities", role="source"),
        WebCase("feed-external-dtd", "/f/dtd", dict(body='<!DOCTYPE rss SYSTEM "file:///etc/passwd">', content_type="application/rss+xml"), "stored", role="source"),
        WebCase("feed-malformed", "/f/malformed", dict(body=b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken<item>', content_type="application/rss+xml"), "fail", "malformed feed", role="source"),
        WebCase("feed-too-large", "/f/too-large", dict(body=b"", headers={"Content-Length": "5000000"}, raw=raw_bytes(b"HTTP/1.0 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 5000000\r\n\r\n<rss>")), "fail", "too large: 5,000,000 bytes", role="source"),
        WebCase("feed-gzip-bomb", "/f/bomb", dict(body=gzip_bomb(0.25), content_type="application/rss+xml", headers={"Content-Encoding": "gzip"}), "fail", "once decompressed", role="source"),
        WebCase("feed-duplicate-entries", "/f/dupes", dict(body="dupes", content_type="application/rss+xml"), "stored", role="source"),
        WebCase("page-304-first", "/p/304", dict(body=b"", status=304), "fail", "HTTP 304 Not Modified to a request that was not conditional", role="source"),
        WebCase("page-redirect-to-file", "/p/to-file", dict(body=b"", status=302, headers={"Location": "file:///etc/passwd"}), "fail", "redirected to a non-http URL", role="source"),
    ]


def install(site: NewsSite, cases: list[WebCase]) -> tuple[list[str], list[str]]:
    """Put every case on the site; the hostile feed lists the entries. Returns (sources, entry links)."""
    b = site.base
    for case in cases:
        if not case.path:
            continue
        put = dict(case.put)
        body = put.pop("body")
        if isinstance(body, str) and case.role == "source" and "DOCTYPE" in body:
            body = entity_feed(body, b)
        elif body == "dupes":
            link = ("Duplicated entry", "/ok/duplicated", "Tue, 01 Jul 2025 09:00:00 GMT")
            body = rss(b, [link, link, link])
        site.put(case.path, body, **put)
        for path, more in case.also:
            site.put(path, **more)
    for path in ("/ok/moved-here", "/ok/entity", "/ok/duplicated"):
        site.put(path, page(path.rsplit("/", 1)[-1]))
    entries = [c for c in cases if c.role == "entry"]
    links = [c.link or b + c.path for c in entries]
    feed = rss(b, [(f"Entry {c.id}", c.path or "/", "Tue, 01 Jul 2025 09:00:00 GMT") for c in entries])
    for c, link in zip(entries, links):
        if c.link:
            feed = feed.replace(f"<link>{b}/</link><pubDate>Tue, 01 Jul 2025 09:00:00 GMT</pubDate><guid>{b}/</guid>",
                                f"<link>{link.replace('&', '&amp;')}</link><pubDate>Tue, 01 Jul 2025 09:00:00 GMT</pubDate>"
                                f"<guid>{c.id}</guid>", 1)
    site.put("/feeds/hostile", feed, content_type="application/rss+xml")
    return [b + "/feeds/hostile"] + [b + c.path for c in cases if c.role == "source"], links


@dataclass
class WebRun:
    site: NewsSite
    cases: list[WebCase]
    report: object
    seconds: float
    stored: dict  # location -> metadata of its first passage (with "_text": all its text)
    links: dict  # case id -> the URL the run saw for it
    secret: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory, embedder):
    from ingest.index import Index
    from ingest.sync import run_ingest

    base = tmp_path_factory.mktemp("hostile-web")
    secret = base / "secret.txt"
    secret.write_text(f"Secret fixture: the launch code is {SECRET}.\n")
    settings = make_settings(base / "data", **LIMITS)
    cases = web_cases(secret)
    with NewsSite() as site:
        sources, links = install(site, cases)
        started = time.monotonic()
        report = run_ingest(settings, sources, embedder=embedder)
        seconds = time.monotonic() - started
        stored: dict[str, dict] = {}
        for row in Index(settings, embedder.name, embedder.dimensions).passages():
            meta = stored.setdefault(row.meta["location"], {**row.meta, "_text": ""})
            meta["_text"] += row.text + "\n"
        entry_links = dict(zip([c.id for c in cases if c.role == "entry"], links))
        yield WebRun(site, cases, report, seconds, stored,
                     {c.id: c.reported_as or entry_links.get(c.id) or site.base + c.path for c in cases}, secret)


CASE_IDS = [c.id for c in web_cases(Path("/nonexistent"))]


def _case(run: WebRun, case_id: str) -> WebCase:
    return next(c for c in run.cases if c.id == case_id)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_each_hostile_url_is_reported_or_stored_as_it_should_be(run, case_id):
    case, url = _case(run, case_id), run.links[case_id]
    if case.role == "source":
        per = run.report.per_source[url]
        if case.expect == "fail":
            assert per.error and case.reason in per.error, per.error
        else:
            assert per.error is None and per.added >= 1, per
        return
    reasons = {f.location: f.reason for f in run.report.failures}
    if case.expect == "fail":
        assert url in reasons, f"{url} not reported"
        assert case.reason in reasons[url], reasons[url]
        assert url not in run.stored
    else:
        assert url not in reasons, reasons.get(url)
        assert any(url == loc or url in m["url"] for loc, m in run.stored.items()), sorted(run.stored)


def test_the_run_goes_on_stores_what_is_good_and_keeps_to_its_limits(run):
    stored = run.stored
    assert "'moved-here'" in stored[run.site.url("/h/moved")]["_text"], "a redirect to a page is still followed"
    long_title = stored[run.site.url("/h/long-title")]["title"]
    assert len(long_title) <= 300 and long_title.endswith("…")
    for path in ("/h/js-canonical", "/h/file-canonical"):
        assert stored[run.site.url(path)]["url"] == run.site.url(path), "an odd canonical link is not the citation"
    assert [s for p, s, _ in run.site.log if p == "/ok/duplicated"] == [200], "an entry listed three times is fetched once"
    hostile = run.report.per_source[run.site.url("/feeds/hostile")]
    assert hostile.error is None and hostile.failed == sum(
        1 for c in run.cases if c.role == "entry" and c.expect == "fail")
    # Each slow case ends at its limit: at most 3 s each (fetch.deadline_seconds), whatever the server does.
    slow = sum(1 for c in run.cases if c.id in ("trickle-content-length", "trickle-chunked", "length-larger-then-silence",
                                                  "never-answers", "headers-trickle"))
    assert run.seconds < slow * 3 + 60, run.seconds


def test_no_local_file_reaches_the_index_or_the_report(run):
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    blob = json.dumps(run.report.to_dict()) + json.dumps(run.stored)
    assert SECRET not in blob and passwd not in blob


# --- targeted: time and memory, measured alone --------------------------------------------------------------------


@pytest.fixture
def site():
    with NewsSite() as s:
        yield s


def _fetcher(**limits):
    from ingest.fetch import Fetcher
    from ingest.settings import FetchSettings

    return Fetcher(FetchSettings(**{"retries": 0, "backoff_seconds": 0.01, **limits}))


def _timed_failure(fetcher, url: str) -> tuple[float, str]:
    from ingest.fetch import FetchError

    started = time.monotonic()
    with pytest.raises(FetchError) as failure:
        fetcher.get(url)
    return time.monotonic() - started, str(failure.value)


def test_a_one_byte_per_second_trickle_with_a_large_content_length_ends_at_the_body_deadline(site):
    site.put("/trickle", b"", raw=trickle(page("slowest"), every=1.0, declared=900_000))
    seconds, reason = _timed_failure(_fetcher(read_timeout=2.0, deadline_seconds=30.0), site.url("/trickle"))
    assert "too slow: the page did not arrive within 2s (fetch.read_timeout)" in reason
    assert seconds < 4.0, f"{seconds:.1f}s for a body declared as 900,000 bytes at 1 B/s (about 10 days)"


def test_a_server_that_never_sends_headers_is_given_up_on_by_the_clock_not_the_attempt_count(site):
    site.put("/silence", b"", raw=silence)
    fetcher = _fetcher(read_timeout=1.0, retries=10, deadline_seconds=2.5)
    seconds, reason = _timed_failure(fetcher, site.url("/silence"))
    assert "gave up after 2.5s (fetch.deadline_seconds)" in reason
    assert seconds < 4.5, f"{seconds:.1f}s; 11 attempts of 1s would be 11s"
    assert len(site.requests_for("/silence")) <= 3


def test_retries_after_errors_stop_when_the_time_is_up(site):
    site.put("/down", b"", status=503)
    fetcher = _fetcher(retries=10, backoff_seconds=0.5, deadline_seconds=2.0)
    seconds, reason = _timed_failure(fetcher, site.url("/down"))
    assert reason.startswith("HTTP 503") and seconds < 3.5, (seconds, reason)
    assert 2 <= len(site.requests_for("/down")) <= 4, "back-offs 0.5, 1, 2 s: the third would end past 2 s"


def test_a_page_with_headers_trickling_forever_ends_at_the_deadline(site):
    site.put("/headers", b"", raw=header_trickle)
    seconds, reason = _timed_failure(_fetcher(read_timeout=5.0, deadline_seconds=2.0), site.url("/headers"))
    assert "fetch.deadline_seconds" in reason and seconds < 4.0, (seconds, reason)


def test_a_gzip_bomb_is_cut_at_the_size_cap_with_bounded_memory(site):
    """1 GB of zeros in about 1 MB of gzip members, fetched by a fresh process whose peak memory is measured."""
    site.put("/bomb", gzip_bomb(1.0), headers={"Content-Encoding": "gzip"})
    code = (
        "import resource, sys\n"
        "from ingest.fetch import Fetcher, FetchError\n"
        "from ingest.settings import FetchSettings\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    Fetcher(FetchSettings(max_bytes=5_000_000)).get({site.url('/bomb')!r})\n"
        "except FetchError as exc:\n"
        "    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2]).stdout.splitlines()
    assert "too large: over 5,000,000 bytes once decompressed" in out[0], out
    assert int(out[1]) < 100_000, f"peak memory grew by {int(out[1]) // 1024} MB for a 1 GB bomb"


def test_a_feed_of_5000_entries_ends_within_the_source_deadline_and_says_what_is_left(site, tmp_path, embedder):
    from ingest.sync import run_ingest

    items = [(f"Entry {i}", f"/many/{i}", "Tue, 01 Jul 2025 09:00:00 GMT") for i in range(5000)]
    site.put("/feeds/many", rss(site.base, items), content_type="application/rss+xml")
    for i in range(3):
        site.put(f"/many/{i}", page(f"many-{i}"))
    for i in range(3, 5000):
        site.put(f"/many/{i}", page(f"many-{i}"), delay=0.5)
    settings = make_settings(tmp_path / "data", fetch_source_deadline_seconds=8.0, fetch_read_timeout=1.0)
    started = time.monotonic()
    report = run_ingest(settings, [site.url("/feeds/many")], embedder=embedder)
    assert time.monotonic() - started < 40
    per = report.per_source[site.url("/feeds/many")]
    assert per.error is None and per.added >= 3
    [left] = [f for f in per.failures if f.reason.startswith("not fetched")]
    assert "fetch.source_deadline_seconds" in left.reason and "are tried next run" in left.reason
    fetched = int(left.location.rsplit("/", 1)[-1])
    assert 3 <= fetched < 100 and f"{4999 - fetched:,} after it" in left.reason
