"""`/dealbot timeline [since]`: the story's articles in date order, oldest first, grouped by month, as an
ephemeral reply. Past Slack's limits (50 blocks, 3,000 characters a section) the list is cut, with a note on how to
narrow it."""

from __future__ import annotations

import logging
import re
import uuid

from ..dates import MONTHS, parse_date
from ..story import StoryArticle, by_month, timeline
from .answering import enabled_in
from .answering import reply as send_reply
from .articles import MAX_BLOCKS, article_text, context, section
from .blocks import SECTION_LIMIT, escape, notice

log = logging.getLogger("dealbot.slack")

_COMMAND = re.compile(r"\s*timeline\b\s*(?:(?:since|from|after)\s+)?(?P<since>.*)", re.I | re.S)
_DATE_LIKE = re.compile(rf"\d|({'|'.join(m[:3] for m in MONTHS)})[a-z]*\.?(\s|$)", re.I)
MESSAGE_CHARS = 40_000  # Slack cuts longer messages


def parse(text: str) -> tuple[bool, str | None, str]:
    """Whether `text` asks for the timeline; if so its `since` date (ISO) and an error to show ("" when fine).

    "timeline", "timeline 2025-10", "timeline since October 2025" ask for it; "timeline of the talks?" is a
    question like any other.
    """
    m = _COMMAND.fullmatch(text or "")
    if not m:
        return False, None, ""
    since = m["since"].strip()
    if not since:
        return True, None, ""
    try:
        return True, parse_date(since), ""
    except ValueError as exc:
        if _DATE_LIKE.match(since):
            return True, None, f"{exc}. For example: `/dealbot timeline 2025-10`."
        return False, None, ""


def reply(ctx, command: dict) -> None:
    """Answer privately with the timeline (or what went wrong), through the command's response URL; called on the
    answer pool after the command was acknowledged."""
    url = command.get("response_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return
    _, since, error = parse(command.get("text", ""))
    channel = command.get("channel_id")
    if not enabled_in(ctx, channel, in_dm=str(channel).startswith("D")):
        message = notice("I'm not enabled in this channel.")
    elif error:
        message = notice(escape(error))
    else:
        try:
            message = timeline_message(timeline(ctx.pipeline.index, since), since)
        except Exception as exc:  # the user hears of it; the log gets the details
            log.exception("building the timeline failed")
            message = notice(f"Sorry, I could not read the articles ({type(exc).__name__}). Please try again later.")
    key = f"timeline:{command.get('trigger_id') or uuid.uuid4().hex}"
    send_reply(ctx, key, url, message, response_type="ephemeral")


def timeline_message(articles: list[StoryArticle], since: str | None = None) -> dict:
    """The timeline as one message: a line per article under its month, cut with a note past Slack's limits."""
    n = len(articles)
    if not n:
        return notice(f"No articles published since {since}." if since else "No articles yet: run `dealbot ingest`.")
    head = f"*The story in {n} article{'s' if n != 1 else ''}*, oldest first" + (f", since {since}" if since else "")
    blocks, shown, size = [section(head)], 0, len(head)
    parts = _sections(articles)
    for i, (text, count) in enumerate(parts):
        spare = 0 if i == len(parts) - 1 else 1  # a block kept for the note, in case a later part does not fit
        if len(blocks) + 1 + spare > MAX_BLOCKS or size + len(text) > MESSAGE_CHARS:
            return _cut(blocks, articles, shown)
        blocks.append(section(text))
        size += len(text)
        shown += count
    return {"text": f"The story in {n} article{'s' if n != 1 else ''}", "blocks": blocks}


def _sections(articles: list[StoryArticle]) -> list[tuple[str, int]]:
    """Section texts (each within Slack's 3,000 characters) and how many articles each holds: a month's header,
    then its articles, continued in another section when one is full."""
    parts = []
    for month, items in by_month(articles):
        text, count = f"*{month}*", 0
        for a in items:
            entry = article_text(a, date_first=True)
            if count and len(text) + 2 + len(entry) > SECTION_LIMIT:
                parts.append((text, count))
                text, count = f"*{month}* (continued)", 0
            text, count = text + "\n\n" + entry, count + 1
        parts.append((text, count))
    return parts


def _cut(blocks: list[dict], articles: list[StoryArticle], shown: int) -> dict:
    """The message so far, with a note on how to narrow the list to what was left out."""
    rest = articles[shown]
    hint = (f"Narrow it: `/dealbot timeline {rest.published[:7]}` shows the articles from that month on."
            if rest.published else "The rest are undated: `dealbot timeline` on the command line lists them all.")
    blocks.append(context(f"Showing the first {shown} of {len(articles)} articles. {hint}"))
    return {"text": f"The story in {len(articles)} articles (the first {shown} shown)", "blocks": blocks}
