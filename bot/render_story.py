"""Rendering the story's articles for the terminal: the timeline, the digest's dry run, the digest's record."""

from __future__ import annotations

from .digest import Preview
from .render import display_source
from .story import StoryArticle, by_month

INDENT = " " * 14


def article_lines(a: StoryArticle, date: bool = True) -> list[str]:
    """An article in a few lines: date, title and outlet; its link (or file); its lead; where copies appeared."""
    head = f"{(a.published or 'undated'):<10}  " if date else ""
    lines = [f"  {head}{a.title}" + (f" — {a.outlet}" if a.outlet else "")]
    pad = INDENT if date else "    "
    lines.append(pad + (a.url or display_source(a.source)))
    if a.lead:
        lines.append(f"{pad}“{a.lead}”")
    if a.alternate_outlets:
        lines.append(f"{pad}also in: {', '.join(a.alternate_outlets)}")
    return lines


def timeline_text(articles: list[StoryArticle]) -> str:
    """The timeline grouped by month, oldest first, undated last."""
    if not articles:
        return "no articles"
    out: list[str] = []
    for month, items in by_month(articles):
        out += ([""] if out else []) + [month]
        for a in items:
            out += article_lines(a)
    return "\n".join(out)


def preview_text(previews: list[Preview]) -> str:
    """What the next digest would post to each channel."""
    out: list[str] = []
    for p in previews:
        n = len(p.articles)
        out += ([""] if out else []) + [f"channel {p.channel}: " + (p.note or (
            f"{n} new article{'s' if n != 1 else ''} on the story" if n else "nothing new to post"))]
        for a in p.articles[: p.max_items]:
            out += article_lines(a)
        if n > p.max_items:
            out.append(f"  and {n - p.max_items} more")
    return "\n".join(out)


def announcements_text(rows: list[dict]) -> str:
    """What was announced where and when, and what waits for the next digest."""
    if not rows:
        return "nothing announced yet"
    out = []
    for r in rows:
        when = f"posted {r['posted_at']}" if r["status"] == "posted" else (
            "left the index before it was announced" if r["status"] == "gone" else f"pending since {r['queued_at']}")
        out.append(f"{r['channel']}  {when}  {r['title'] or r['doc_id']}")
    return "\n".join(out)
