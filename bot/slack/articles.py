"""Block Kit for lists of articles (the digest of new articles, the timeline): each article's title, outlet, date,
lead sentence and copies, capped and escaped; links whose URL cannot change their label; sections packed within
Slack's limits.

Article metadata comes from the web and is untrusted: a title may be huge or carry `<!channel>`, a URL may hold `|`
or `>`. Text goes through blocks.escape, so it never becomes a mention or a link; a URL is linked only when it is
http(s), free of spaces and short enough, with `|`, `<` and `>` percent-encoded.
"""

from __future__ import annotations

from urllib.parse import urlparse

from ..story import StoryArticle, cut
from .blocks import SECTION_LIMIT, escape

MAX_BLOCKS = 50  # Slack's limit for a message
# Budgets in characters as sent (escaped): an article's text stays well within a 3,000-character section.
TITLE_CHARS = 300
OUTLET_CHARS = 100
LEAD_CHARS = 400  # the lead sentence is at most 221 characters; escaping may lengthen it
URL_CHARS = 1200
ALSO_IN = 5  # copies' outlets named, then "and N more"


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def escaped(text: str, limit: int) -> str:
    """`text` on one line and escaped, cut at a word boundary (with "…") so that it takes at most `limit`
    characters as sent."""
    n = limit
    out = escape(cut(text, n))
    while len(out) > limit and n > 1:
        n = max(1, n * limit // len(out) - 1)
        out = escape(cut(text, n))
    return out


def safe_url(url: str | None) -> str | None:
    """`url` as it may stand in `<url|label>`, or None when it should not be linked."""
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    parsed = urlparse(url)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
        return None
    target = url.replace("&", "&amp;").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return target if len(target) <= URL_CHARS else None


def link(url: str | None, label: str) -> str:
    """A link labelled `label` (given escaped), or the label alone when the URL is unfit."""
    target = safe_url(url)
    return f"<{target}|{label}>" if target else label


def article_text(a: StoryArticle, date_first: bool = False) -> str:
    """One article in mrkdwn: linked title, outlet and date (the date first, for the timeline), its lead sentence
    quoted, and the outlets of its copies."""
    title = link(a.url, escaped(a.title, TITLE_CHARS) or "(untitled)")
    outlet = escaped(a.outlet, OUTLET_CHARS) if a.outlet else ""
    date = a.published or "undated"
    if date_first:
        head = f"`{date}` {title}" + (f" — {outlet}" if outlet else "")
    else:
        head = f"{title} — " + ", ".join(x for x in (outlet, date) if x)
    lines = [head]
    if a.lead:
        lines.append(f">“{escaped(a.lead, LEAD_CHARS)}”")
    if a.alternate_outlets:
        named = ", ".join(escaped(o, OUTLET_CHARS) for o in a.alternate_outlets[:ALSO_IN])
        more = len(a.alternate_outlets) - ALSO_IN
        lines.append(f"also in: {named}" + (f" and {more} more" if more > 0 else ""))
    return "\n".join(lines)


def plain_title(a: StoryArticle, limit: int = 100) -> str:
    """A title for a notification's plain text: escaped, cut."""
    return escaped(a.title, limit)
