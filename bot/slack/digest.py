"""The digest of new articles in Slack: the message (Block Kit) and its delivery through the Web API.

The core (bot.digest) decides what to post and records it; this module posts a digest with its id in the message's
metadata, and finds a digest in a channel's history by that id (for a post whose outcome was unknown). Its client
retries only after HTTP 429, when Slack certainly did not take the message: retrying a timeout or a dropped
connection could post twice, so those are left to the next run's history check.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from slack_sdk.errors import SlackApiError

from ingest.settings import Settings

from ..digest import DeliveryError
from ..story import StoryArticle
from .articles import article_text, context, plain_title, section
from .metering import CountedRateLimitErrorRetryHandler, MeteredWebClient

EVENT_TYPE = "dealbot_digest"  # the Slack message metadata type of a digest; its payload carries the digest id
HISTORY_PAGES = 5  # pages of 200 messages searched for an earlier digest


def bot_token(env: Mapping[str, str] | None = None) -> str | None:
    """SLACK_BOT_TOKEN when set (None when not); a malformed one is an error naming the variable."""
    from .app import _required

    env = os.environ if env is None else env
    return _required(env, "SLACK_BOT_TOKEN", "xoxb-") if env.get("SLACK_BOT_TOKEN", "").strip() else None


def digest_message(articles: Sequence[StoryArticle], max_items: int) -> dict:
    """chat.postMessage arguments: "N new articles on the story", then each of the first `max_items` articles,
    then "and N more"."""
    n = len(articles)
    head = f"{n} new article{'s' if n != 1 else ''} on the story"
    listed = articles[:max_items]
    blocks = [section(f"*{head}*")] + [section(article_text(a)) for a in listed]
    if n > len(listed):
        blocks.append(context(f"and {n - len(listed)} more: `/dealbot timeline` lists every article"))
    text = f"{head}: " + "; ".join(plain_title(a) for a in listed) + (f"; and {n - len(listed)} more" if n > len(listed) else "")
    return {"text": text[:3000], "blocks": blocks}


class SlackDigestPoster:
    """Posts digests to Slack channels (bot.digest.Poster)."""

    def __init__(self, token: str, settings: Settings):
        self.client = MeteredWebClient(
            token=token,
            base_url=settings.slack.api_url,
            timeout=30,
            retry_handlers=[CountedRateLimitErrorRetryHandler(max_retry_count=2)],
        )

    def post(self, channel: str, digest_id: str, articles: Sequence[StoryArticle], max_items: int) -> str:
        message = digest_message(articles, max_items)
        metadata = {"event_type": EVENT_TYPE, "event_payload": {"digest_id": digest_id}}
        try:
            response = self.client.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, metadata=metadata, **message
            )
        except SlackApiError as exc:  # Slack answered: only a 5xx leaves it unknown whether the message was taken
            status = exc.response.status_code
            raise DeliveryError(f"HTTP {status} {exc.response.get('error', '')}".strip(), uncertain=status >= 500) from None
        except Exception as exc:  # no answer (timeout, dropped connection): the message may have been taken
            raise DeliveryError(f"no answer from the Web API: {type(exc).__name__}", uncertain=True) from None
        return response["ts"]

    def find(self, channel: str, digest_id: str, since: float) -> str | None:
        cursor = None
        try:
            for _ in range(HISTORY_PAGES):
                page = self.client.conversations_history(
                    channel=channel, oldest=f"{since:.6f}", limit=200, include_all_metadata=True, cursor=cursor
                )
                for message in page.get("messages") or []:
                    meta = message.get("metadata") or {}
                    if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("digest_id") == digest_id:
                        return message.get("ts")
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return None
        except SlackApiError as exc:
            raise DeliveryError(f"conversations.history: HTTP {exc.response.status_code} "
                                f"{exc.response.get('error', '')}".strip(), uncertain=True) from None
        except Exception as exc:
            raise DeliveryError(f"conversations.history: {type(exc).__name__}", uncertain=True) from None
        return None
