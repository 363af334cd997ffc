"""The bot's side of the process that owns the store (ingest.service): after each scheduled ingest run, the bot
answers from the new articles and the digest announces them.

`serving` gives `dealbot serve` its Pipeline with the schedule running beside it; `ingest_on_schedule` is
`dealbot ingest --schedule`. Both describe each run in one log line, the digest's outcome appended.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from ingest.report import RunReport
from ingest.service import StoreOwner
from ingest.settings import Settings
from ingest.store import open_embedder

from .digest import Digest, announce_new_articles
from .render import report_line

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger("dealbot.schedule")


def start_digest(settings: Settings, token: str | None, fresh_index: bool) -> Digest | None:
    """The digest of new articles for this process's scheduled runs, or None when it is off (no digest channels,
    or no Slack token to post with)."""
    if not settings.digest.channels:
        return None
    digest_log = logging.getLogger("dealbot.digest")
    if not token:
        digest_log.info("digest.channels is set but SLACK_BOT_TOKEN is not: no digest of new articles is posted")
        return None
    from .slack.digest import SlackDigestPoster

    digest = Digest(settings, SlackDigestPoster(token, settings))
    digest.start(fresh_index)
    digest_log.info("after each run, new articles are posted to %s", ", ".join(settings.digest.channels))
    return digest


@contextmanager
def serving(settings: Settings, bot_token: str | None = None) -> Iterator[Pipeline]:
    """The Pipeline that `serve` answers from, with the configured ingest schedule running beside it.

    With the embedded store this process owns it for as long as it runs (the writer lock: a stand-alone
    `dealbot ingest` is refused) and runs the schedule in a background thread; on an empty index the first run
    comes before serving; after each run the bot answers from the new articles, and posts the digest of them
    (with `bot_token`). With a Chroma server, ingest runs elsewhere and the bot notices changes by itself.
    """
    from .pipeline import Pipeline

    expression = settings.ingest.schedule
    if settings.server_mode:
        if expression:
            log.info("ingest.schedule is not run by `serve` with a Chroma server: run `dealbot ingest --schedule` "
                     "or a cron job against the server")
        yield Pipeline(settings)
        return
    with StoreOwner(settings, embedder=open_embedder(settings, questions=True)) as owner:
        digest = start_digest(settings, bot_token, owner.fresh) if expression else None
        answering: list[Pipeline] = []  # the Pipeline, once there is one: a run before serving has none to refresh

        def after_run(report: RunReport) -> str:
            if report.changed and answering:
                answering[0].refresh()
            return report_line(report) + announce_new_articles(digest)

        if expression:
            owner.prime(after_run)
        answering.append(Pipeline(settings, owner.embedder))
        if expression:
            owner.start_schedule(expression, after_run)
        yield answering[0]


def ingest_on_schedule(settings: Settings, sources: list[str] | None, expression: str, token: str | None,
                       stop: threading.Event) -> None:
    """Own the store and sync `sources` (default: the configured ones) now and at each time `expression` matches,
    until `stop` is set; with digest channels and `token`, post the digest of new articles after each run."""
    with StoreOwner(settings, sources, stop=stop) as owner:
        digest = start_digest(settings, token, owner.fresh) if settings.digest.channels else None
        owner.run_schedule(expression, lambda report: report_line(report) + announce_new_articles(digest))
