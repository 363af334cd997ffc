"""A fake news site on 127.0.0.1 for the web-ingest tests: feeds, article pages buried in boilerplate, a syndicated
copy, a dead link, a slow page, a binary file, an oversized page, a flaky server, with ETag / Last-Modified.

Every article here is an invented test fixture written for these tests, not real reporting.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

# --- fixture article bodies (test fixtures, facts only) -------------------------------------------------------

SIGNED = [
    "Officials in Washington and Beijing completed the rare earth export arrangement in the last week of June 2025.",
    "Under the arrangement, Chinese authorities agreed to approve export licences for rare earth magnets more quickly.",
    "In return, the United States said it would ease several restrictions it had placed on exports to China.",
    "The text built on a framework the two delegations had settled at talks in London earlier that month.",
    "Industry groups representing carmakers said supply delays had already forced some assembly lines to slow down.",
    "Analysts cautioned that the licence process could still be tightened again if relations worsened.",
]

MAGNETS = [
    "Manufacturers of electric motors depend on neodymium magnets, most of which are processed in China.",
    "Shipments of those magnets fell sharply in the spring of 2025 after Beijing added new licence requirements.",
    "Exporters reported that approvals began to arrive faster in July 2025, once the new arrangement took effect.",
    "Several buyers said they were building larger stockpiles so that a future disruption would hurt them less.",
]

UNDATED = [
    "A review of the export arrangement was scheduled for the autumn, according to people familiar with the plan.",
    "Negotiators were expected to discuss how licences for medium and heavy rare earths would be handled.",
    "Neither government published a date for the review meeting at the time this fixture article was written.",
]

BOILERPLATE = [
    "Subscribe to our newsletter for the morning briefing",
    "We use cookies to improve your experience",
    "Related stories you may have missed",
    "All rights reserved by the fixture publisher",
    "Advertisement: compare business credit cards today",
]


def article_page(title: str, paragraphs: list[str], *, published: str | None, author: str | None,
                 canonical: str | None, site: str = "Fixture Gazette", lead: str | None = None) -> str:
    meta = []
    if published:
        meta.append(f'<meta property="article:published_time" content="{published}T09:00:00Z">')
    if author:
        meta.append(f'<meta name="author" content="{author}">')
    if canonical:
        meta.append(f'<link rel="canonical" href="{canonical}">')
    body = "\n".join(f"<p>{p}</p>" for p in ([lead] if lead else []) + paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | {site}</title>
<meta property="og:site_name" content="{site}">
{''.join(meta)}
</head><body>
<div class="cookie-banner">{BOILERPLATE[1]}. <button>Accept</button></div>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/business">Business</a></li>
<li><a href="/world">World</a></li><li><a href="/opinion">Opinion</a></li></ul></nav></header>
<div class="promo"><a href="/subscribe">{BOILERPLATE[0]}</a></div>
<main><article>
<h1>{title}</h1>
<div class="byline">By {author or "Staff"}</div>
{body}
</article>
<aside class="related"><h2>{BOILERPLATE[2]}</h2><ul>
<li><a href="/x1">Stocks slide as traders weigh rates</a></li><li><a href="/x2">Ten gadgets for summer</a></li>
</ul></aside>
<div class="ad">{BOILERPLATE[4]}</div>
</main>
<footer><p>Copyright 2025. {BOILERPLATE[3]}.</p><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>
</body></html>"""


def rss(base: str, items: list[tuple[str, str, str]]) -> str:
    entries = "".join(
        f"<item><title>{t}</title><link>{base}{path}</link><pubDate>{d}</pubDate><guid>{base}{path}</guid></item>"
        for t, path, d in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Fixture Gazette: trade</title>'
        f"<link>{base}/</link><description>Test fixture feed</description>{entries}</channel></rss>"
    )


def atom(base: str, items: list[tuple[str, str, str]]) -> str:
    entries = "".join(
        f'<entry><title>{t}</title><link href="{base}{path}"/><id>{base}{path}</id><updated>{d}</updated></entry>'
        for t, path, d in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Fixture Wire</title><id>{base}/atom</id><updated>2025-07-02T00:00:00Z</updated>{entries}</feed>"
    )


@dataclass
class Resource:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    delay: float = 0.0
    fail_first: int = 0  # answer 503 to this many requests first
    validators: bool = True
    send_etag: bool = True  # False: Last-Modified only
    modified: float = field(default_factory=lambda: 1751000000.0)
    headers: dict = field(default_factory=dict)  # sent as well, or instead: Location, Content-Encoding, a lying Content-Length
    raw: Callable | None = None  # raw(handler, site) answers the request itself, byte by byte if it likes

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


class NewsSite:
    """The site: `resources` by path (change them between runs), `log` of (path, status, request headers)."""

    def __init__(self):
        self.resources: dict[str, Resource] = {}
        self.log: list[tuple[str, int, dict]] = []
        self.closing = threading.Event()  # set on exit: hostile handlers that stall stop stalling
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                site._serve(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "NewsSite":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    def put(self, path: str, body: str | bytes, **kw) -> None:
        data = body.encode() if isinstance(body, str) else body
        old = self.resources.get(path)
        self.resources[path] = Resource(data, modified=(old.modified + 60) if old else 1751000000.0, **kw)

    def requests_for(self, path: str) -> list[tuple[int, dict]]:
        return [(status, headers) for p, status, headers in self.log if p == path]

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        res = self.resources.get(path)
        headers = {k: v for k, v in h.headers.items()}
        if res is not None and res.raw is not None:
            with self._lock:
                self.log.append((path, 0, headers))
            try:
                res.raw(h, self)
            except OSError:  # the client gave up: that is what these handlers test
                pass
            return
        status = 404 if res is None else res.status
        if res is not None and res.fail_first > 0:
            res.fail_first -= 1
            status = 503
        elif res is not None and res.validators and status == 200:
            if (res.send_etag and h.headers.get("If-None-Match") == res.etag) or (
                h.headers.get("If-Modified-Since") == formatdate(res.modified, usegmt=True)
                and "If-None-Match" not in h.headers
            ):
                status = 304
        with self._lock:
            self.log.append((path, status, headers))
        if res is not None and res.delay:
            time.sleep(res.delay)
        try:
            h.send_response(status)
            if status == 200:
                sent = {"Content-Type": res.content_type, "Content-Length": str(len(res.body))}
                if res.validators:
                    if res.send_etag:
                        sent["ETag"] = res.etag
                    sent["Last-Modified"] = formatdate(res.modified, usegmt=True)
                for name, value in {**sent, **res.headers}.items():
                    h.send_header(name, value)
                h.end_headers()
                h.wfile.write(res.body)
            else:
                for name, value in {"Content-Length": "0", **(res.headers if res else {})}.items():
                    h.send_header(name, value)
                h.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass


def build_site(site: NewsSite) -> None:
    """The default fixture site used by the web-ingest tests."""
    b = site.base
    site.put("/news/deal-signed", article_page(
        "Rare earth export arrangement completed", SIGNED, published="2025-06-28", author="Ada Fixture",
        canonical=f"{b}/news/deal-signed"))
    site.put("/news/magnets", article_page(
        "Magnet shipments recover after the arrangement", MAGNETS, published="2025-07-15", author="Ben Fixture",
        canonical=f"{b}/news/magnets"))
    site.put("/news/review-planned", article_page(
        "Review of the export arrangement planned", UNDATED, published=None, author=None, canonical=None))
    # The same story as /news/deal-signed on a partner site: another headline, a credit line, a trimmed ending.
    site.put("/partner/rare-earth-deal-done", article_page(
        "US and China finish rare earth pact", SIGNED[:5], published="2025-06-29", author="Ada Fixture",
        canonical=None, site="Partner Daily", lead="This article was distributed by the Fixture Wire service."))
    site.put("/news/slow", article_page("A slow page", MAGNETS, published="2025-07-01", author=None,
                                        canonical=None), delay=3.0)
    site.put("/files/report.bin", bytes(range(256)) * 64, content_type="application/octet-stream")
    site.put("/news/huge", "<html><body><p>" + "word " * 400_000 + "</p></body></html>")
    items = [
        ("Rare earth export arrangement completed", "/news/deal-signed", "Sat, 28 Jun 2025 09:00:00 GMT"),
        ("US and China finish rare earth pact", "/partner/rare-earth-deal-done", "Sun, 29 Jun 2025 09:00:00 GMT"),
        ("Magnet shipments recover", "/news/magnets", "Tue, 15 Jul 2025 09:00:00 GMT"),
        ("Review of the export arrangement planned", "/news/review-planned", "Wed, 20 Aug 2025 09:00:00 GMT"),
        ("This link is dead", "/news/gone", "Thu, 21 Aug 2025 09:00:00 GMT"),
        ("A slow page", "/news/slow", "Fri, 22 Aug 2025 09:00:00 GMT"),
        ("A report as a binary file", "/files/report.bin", "Sat, 23 Aug 2025 09:00:00 GMT"),
        ("A page too big to fetch", "/news/huge", "Sun, 24 Aug 2025 09:00:00 GMT"),
    ]
    site.put("/feeds/trade", rss(b, items), content_type="application/xml")
    site.put("/atom", atom(b, [("Magnet shipments recover", "/news/magnets", "2025-07-15T09:00:00Z")]),
             content_type="text/plain")
    site.put("/feeds/broken", '<?xml version="1.0"?><rss version="2.0"><channel><title>Broken<item>',
             content_type="application/rss+xml")


# --- hostile servers: each answers one request in a way a broken or malicious site might -------------------------


def trickle(body: bytes, every: float = 1.0, declared: int | None = None, chunked: bool = False):
    """Headers at once, then the body one byte every `every` seconds (a Content-Length of `declared`, or chunked)."""

    def answer(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(declared or len(body)))))
        h.end_headers()
        for byte in body:
            if site.closing.wait(every):
                return
            h.wfile.write(b"1\r\n" + bytes([byte]) + b"\r\n" if chunked else bytes([byte]))
            h.wfile.flush()

    return answer


def silence(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
    """Accept the request and never answer."""
    site.closing.wait(120)


def header_trickle(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
    """A status line, then header bytes one every half second, never ending."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    h.wfile.flush()
    while not site.closing.wait(0.5):
        h.wfile.write(b"X")
        h.wfile.flush()


def stall_after(body: bytes, declared: int):
    """A Content-Length larger than the body: the body, then silence with the connection left open."""

    def answer(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(declared))
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
        site.closing.wait(120)

    return answer


def cut_short(body: bytes, declared: int):
    """A Content-Length larger than the body: the body, then the connection closed."""

    def answer(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(declared))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True

    return answer


def raw_bytes(data: bytes):
    """Whatever bytes, as the whole answer, then the connection closed."""

    def answer(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
        h.wfile.write(data)
        h.close_connection = True

    return answer


def endless_chunks(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
    """A chunked body that never ends, as fast as the client reads it."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html; charset=utf-8")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b"<p>" + b"more " * 3000 + b"</p>"
    while not site.closing.is_set():
        h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


def held(body: bytes, release: threading.Event):
    """The page, sent only once `release` is set: keeps a client (an ingest) busy for as long as a test needs."""

    def answer(h: BaseHTTPRequestHandler, site: NewsSite) -> None:
        while not (release.wait(0.1) or site.closing.is_set()):
            pass
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return answer
