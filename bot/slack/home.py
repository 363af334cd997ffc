"""The App Home tab: what the bot has read (the `dealbot status` facts), the digest of new articles and the schedule,
how to ask (with example questions made from the newest articles' titles), and the feedback of the last 30 days.

Published with views.publish when a user opens the tab (`app_home_opened`). The event is acknowledged first and the
view built on the answer pool, so building it never delays the ack; the status facts, which read every document's metadata,
are computed again only when the index or the run log changed.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from slack_sdk.errors import SlackApiError

from ingest import runlog
from ingest.settings import Settings
from ingest.status import SourceStatus

from ..render import display_source, report_line, source_counts
from ..status import Status, read_status
from ..story import StoryArticle, articles, cut, newest
from .articles import context, escaped, section

log = logging.getLogger("dealbot.slack")

FEEDBACK_DAYS = 30
SOURCES_SHOWN = 15
FAILURES_SHOWN = 3  # per source
EXAMPLES = 3
MAX_VIEW_BLOCKS = 100  # Slack's limit for a Home tab view


def register(app, ctx) -> None:
    facts = HomeFacts(ctx)

    @app.event("app_home_opened")
    def on_home_opened(ack, event, client):
        ack()
        user = event.get("user")
        if event.get("tab", "home") != "home" or not isinstance(user, str):  # the Messages tab: nothing to publish
            return
        ctx.later(publish_home, client, user, facts)


def publish_home(client, user: str, facts: "HomeFacts") -> None:
    """Build and publish the user's Home tab; a failure is logged (the next opening tries again)."""
    try:
        view = home_view(facts.ctx.settings, *facts.get(), facts.votes())
        client.views_publish(user_id=user, view=view)
    except SlackApiError as exc:
        log.warning("publishing the Home tab for %s failed: HTTP %s %s", user, exc.response.status_code,
                    exc.response.get("error", ""))
    except Exception as exc:  # the Home tab is a courtesy: log it, keep serving
        log.warning("publishing the Home tab for %s failed: %s", user, type(exc).__name__, exc_info=True)


class HomeFacts:
    """The status facts and the newest articles, kept until the index's size or the last run changes."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._value: tuple[Status, list[StoryArticle]] | None = None

    def get(self) -> tuple[Status, list[StoryArticle]]:
        index = self.ctx.pipeline.index
        last = runlog.last_run(self.ctx.settings.state_db)
        key = (index.count(), last and last.finished, last and last.report.seconds)
        with self._lock:
            if key != self._key or self._value is None:
                self._value = (read_status(self.ctx.settings, index), newest(articles(index), EXAMPLES))
                self._key = key
            return self._value

    def votes(self) -> dict[str, int]:
        return self.ctx.store.votes_since(time.time() - FEEDBACK_DAYS * 86400)


def example_question(article: StoryArticle) -> str:
    """A question about an article, made from its title: asks for the gist of the story it tells."""
    return f"What's the gist of “{cut(article.title, 90)}”?"


def home_view(settings: Settings, status: Status, recent: list[StoryArticle], votes: dict[str, int]) -> dict:
    """The Home tab's view (views.publish), within Slack's limits: 100 blocks, 3,000 characters a section."""
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "dealbot"}},
        section("I answer questions about the story from the articles I have read. Every sentence of an answer is "
                "quoted from an article and cited, with its title, outlet, date and link."),
        {"type": "divider"},
        section(_read_text(status)),
        *_source_blocks(status.sources),
        {"type": "divider"},
        section(_digest_text(settings)),
        {"type": "divider"},
        section(_how_to_ask(recent)),
        context(f"Feedback in the last {FEEDBACK_DAYS} days: 👍 {votes.get('up', 0)}   👎 {votes.get('down', 0)}"),
    ]
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}


def _read_text(status: Status) -> str:
    run = status.last_run
    last = f"{escaped(run.finished, 40)}: {escaped(report_line(run.report), 600)}" if run else "never"
    return (f"*What I have read*\n{status.documents} articles in {status.passages} passages.\n"
            f"Last ingest run: {last}")


def _source_blocks(sources: tuple[SourceStatus, ...]) -> list[dict]:
    shown = [section(_source_text(s)) for s in sources[:SOURCES_SHOWN]]
    if len(sources) > SOURCES_SHOWN:
        shown.append(context(f"and {len(sources) - SOURCES_SHOWN} more sources: `dealbot status` lists them all"))
    return shown


def _source_text(src: SourceStatus) -> str:
    name = src.name if src.name != src.location else display_source(src.location)
    note = "" if src.configured else ", not configured any more"
    lines = [f"*{escaped(name, 200)}* ({escaped(src.kind, 20)}{note}): {src.documents} documents"]
    last = src.last_run
    if not last:
        return "\n".join(lines + ["never run"])
    lines.append(f"last run {escaped(last.finished, 40)}: {source_counts(last.report)}")
    if last.report.error:
        lines.append(f"error: {escaped(last.report.error, 400)}")
    failures = [f for f in last.report.failures if f.location != src.location]
    for f in failures[:FAILURES_SHOWN]:
        lines.append(f"failed: {escaped(f.location, 300)}: {escaped(f.reason, 300)}")
    if len(failures) > FAILURES_SHOWN:
        lines.append(f"and {len(failures) - FAILURES_SHOWN} more failures")
    return "\n".join(lines)


def _digest_text(settings: Settings) -> str:
    schedule = settings.ingest.schedule
    if schedule:
        from ingest.schedule import next_time

        upcoming = next_time(schedule, datetime.now().astimezone()).isoformat(timespec="minutes")
        when = f"Ingest schedule: `{escaped(schedule, 100)}` (next run {upcoming})."
    else:
        when = "No ingest schedule: the articles change when someone runs `dealbot ingest`."
    channels = settings.digest.channels
    if not channels:
        return f"*Digest of new articles*\nOff: set `digest.channels` to have new articles posted.\n{when}"
    where = ", ".join(f"<#{escaped(c, 30)}>" for c in channels)
    return (f"*Digest of new articles*\nAfter each scheduled ingest run that adds articles I post them to "
            f"{where}.\n{when}")


def _how_to_ask(recent: list[StoryArticle]) -> str:
    lines = [
        "*How to ask*",
        "• Mention me in a channel: `@dealbot When was the deal signed?` (I answer in the thread)",
        "• Send me a direct message",
        "• `/dealbot your question`: only you see the answer, with a button to share it",
        "• `/dealbot timeline [since]`: the story's articles in date order, e.g. `/dealbot timeline 2025-10`",
    ]
    if recent:
        lines += ["", "*Try asking*"] + [f"• {escaped(example_question(a), 200)}" for a in recent]
    return "\n".join(lines)
