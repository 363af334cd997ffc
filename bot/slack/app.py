"""The Slack app: a bolt App wired to the pipeline, with its listeners registered by surface.

Nothing waits before an acknowledgement: bolt runs every listener in the request's own thread
(process_before_response), where it acks and hands the work to the answer pool (`slack.workers` threads,
`BotContext.later`); and authorization needs no call to Slack (bolt would otherwise call auth.test on the first
request, in the request's thread). Handing over the parsed payload, rather than bolt's lazy listeners (which deep-copy
the whole request in the request's thread), keeps an ack under a millisecond of work. Construction never calls Slack either. The Web API client is built here with the base URL from settings
(DEALBOT_SLACK_API_URL) and a timeout per call (`slack.api_timeout_seconds`); replies go through the courier
(delivery.py), which retries what Slack did not take.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Mapping

from urllib.error import URLError

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from ingest.settings import Settings

from ..pipeline import Pipeline
from .blocks import BlockLimits
from .delivery import Courier
from .metering import CountedConnectionErrorRetryHandler, MeteredWebClient
from .store import SlackStore

log = logging.getLogger("dealbot.slack")


class SlackConfigError(ValueError):
    """A Slack token or secret is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class SlackSecrets:
    bot_token: str
    signing_secret: str | None = None
    app_token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], http: bool) -> "SlackSecrets":
        bot = _required(env, "SLACK_BOT_TOKEN", "xoxb-")
        if http:
            secret = env.get("SLACK_SIGNING_SECRET", "").strip()
            if not re.fullmatch(r"[0-9A-Za-z]{8,}", secret):
                raise SlackConfigError(
                    "SLACK_SIGNING_SECRET is missing or malformed: copy the Signing Secret from the app's Basic Information page"
                )
            return cls(bot, signing_secret=secret)
        return cls(bot, app_token=_required(env, "SLACK_APP_TOKEN", "xapp-"))


def _required(env: Mapping[str, str], name: str, prefix: str) -> str:
    value = env.get(name, "").strip()
    if not value.startswith(prefix) or len(value) <= len(prefix):
        raise SlackConfigError(f"{name} is missing or malformed: it should start with {prefix} (see the README, Connect to Slack)")
    return value


@dataclass
class BotContext:
    """What every listener needs: the core, the store, the settings, the courier that delivers replies."""

    pipeline: Pipeline
    store: SlackStore
    settings: Settings
    courier: Courier | None = None
    limits: BlockLimits = BlockLimits()
    signing_secret: str | None = None
    pool: ThreadPoolExecutor | None = None

    def later(self, work, *args) -> None:
        """Run `work(*args)` on the answer pool, after the ack; a failure is logged, never lost silently. Inside
        `inline_work()` (an event taken in from the inbox, already on the pool) it runs at once, in this thread."""
        if getattr(_inline, "on", False):
            _logged(work, *args)
        else:
            self.pool.submit(_logged, work, *args)


_inline = threading.local()


@contextmanager
def inline_work():
    """Within the block, `BotContext.later` work runs in the calling thread before the listener returns."""
    _inline.on = True
    try:
        yield
    finally:
        _inline.on = False


def _logged(work, *args) -> None:
    try:
        work(*args)
    except Exception:
        log.exception("handling a Slack request failed")


def web_client(token: str | None, settings: Settings) -> WebClient:
    """The Web API client: each call bounded by `slack.api_timeout_seconds`. Only a connection that could not be
    made is retried here (nothing was sent); anything else that fails is the courier's to retry."""
    return MeteredWebClient(
        token=token,
        base_url=settings.slack.api_url,
        timeout=settings.slack.api_timeout_seconds,  # type: ignore[arg-type]  # urllib takes any number
        retry_handlers=[CountedConnectionErrorRetryHandler(max_retry_count=1, error_types=[URLError])],
    )


ANSWER_NICE = 10  # how much lower the answer pool's threads run than the rest, when answers are background work


def create_app(settings: Settings, pipeline: Pipeline, secrets: SlackSecrets, verify: bool = True,
               background: bool = False) -> App:
    """The bolt App; `context_of(app)` is its BotContext, whose courier is already delivering (and resuming what
    an earlier run left undelivered). `verify=False`: bolt does not check signatures again (the HTTP front,
    bot/slack/front.py, checked every request it relays, and an event taken in from the inbox may be older than
    the 5 minutes a signature is good for). `background`: the answer pool's threads (and the threads torch starts
    from them) run at a lower CPU priority (ANSWER_NICE), so that on a busy machine the processes that acknowledge
    Slack come first."""
    from . import actions, commands, events, home
    from .answering import composer

    pool = ThreadPoolExecutor(max_workers=settings.slack.workers, thread_name_prefix="dealbot-answer",
                              initializer=_lower_priority if background else None)
    app = App(
        client=web_client(None, settings),  # the token comes with each request's authorization (below)
        authorize=_authorize(secrets.bot_token),
        signing_secret=secrets.signing_secret or "socket-mode-does-not-sign",
        request_verification_enabled=verify and secrets.signing_secret is not None,
        process_before_response=True,  # listeners run in the request's thread: they ack, then hand over the work
        listener_executor=pool,
        logger=log,
    )
    store = SlackStore.of(settings)
    ctx = BotContext(pipeline, store, settings, limits=BlockLimits.of(settings.slack),
                     signing_secret=secrets.signing_secret, pool=pool)
    ctx.courier = Courier(store, web_client(secrets.bot_token, settings), settings.slack, composer(ctx), pool)
    events.register(app, ctx)
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)
    app._dealbot = ctx  # type: ignore[attr-defined]  # see context_of
    ctx.courier.start()
    return app


def _lower_priority() -> None:
    """Lower this thread's CPU priority (Linux keeps one per thread; threads it starts inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + ANSWER_NICE))
    except OSError:  # not permitted here: answers run at the process's priority
        pass


def context_of(app: App) -> BotContext:
    """The BotContext `create_app` built for `app` (for the HTTP server's request check and for shutting down)."""
    return app._dealbot  # type: ignore[attr-defined]


def _authorize(token: str):
    """Authorization from the bot token alone, without calling Slack: whatever the Web API does, a request is
    acknowledged."""

    def authorize(enterprise_id, team_id, user_id):
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token)

    return authorize


def secrets_from_env(http: bool) -> SlackSecrets:
    return SlackSecrets.from_env(os.environ, http)
