"""The Slack app: a bolt App wired to the pipeline, with its listeners registered by surface.

Construction never calls Slack: the Web API client is built here with the base URL from settings
(DEALBOT_SLACK_API_URL) and retry handlers for HTTP 429 (after Retry-After) and connection errors, and bolt's
token check at start-up is off. Listeners ack at once; the answer is composed afterwards on bolt's listener pool,
which is bounded by `slack.workers`.
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from ingest.settings import Settings

from ..pipeline import Pipeline
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
    """What every listener needs: the core, the store, the settings."""

    pipeline: Pipeline
    store: SlackStore
    settings: Settings


def web_client(token: str, settings: Settings) -> WebClient:
    return WebClient(
        token=token,
        base_url=settings.slack.api_url,
        timeout=30,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3), ConnectionErrorRetryHandler(max_retry_count=2)],
    )


def create_app(settings: Settings, pipeline: Pipeline, secrets: SlackSecrets) -> App:
    from . import actions, commands, events, home

    app = App(
        client=web_client(secrets.bot_token, settings),
        signing_secret=secrets.signing_secret or "socket-mode-does-not-sign",
        request_verification_enabled=secrets.signing_secret is not None,
        token_verification_enabled=False,
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(max_workers=settings.slack.workers, thread_name_prefix="dealbot-answer"),
        logger=log,
    )
    ctx = BotContext(pipeline, SlackStore(settings.slack_db), settings)
    events.register(app, ctx)
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)
    return app


def secrets_from_env(http: bool) -> SlackSecrets:
    return SlackSecrets.from_env(os.environ, http)
