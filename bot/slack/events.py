"""Events API listeners: mentions in channels (and their threads), and direct messages.

Each is acknowledged at once, in the request's own thread, and handed to the answer pool (`ctx.later`): no event
waits for a busy worker or for Slack's Web API to be acknowledged. Under `serve --http` the front has acknowledged
the event already (bot/slack/front.py), and the work runs in the pool thread that took it in from the inbox.
"""

from __future__ import annotations

import logging

from slack_bolt import App

from .answering import answer_in_thread, clean_question, enabled_in, post
from .blocks import USAGE, notice

log = logging.getLogger("dealbot.slack")

# Message subtypes that are not a person asking something new: edits, deletions, joins, bot posts...
_NEW_HUMAN_MESSAGE = {None, "file_share", "thread_broadcast"}


def register(app: App, ctx) -> None:
    @app.event("app_mention")
    def on_mention(ack, event, body):
        ack()
        ctx.later(_handle, ctx, event, False, body.get("event_id"))

    @app.event("message")
    def on_message(ack, event, body):
        ack()
        if event.get("channel_type") == "im":
            ctx.later(_handle, ctx, event, True, body.get("event_id"))


def _handle(ctx, event: dict, in_dm: bool, event_id=None) -> None:
    if event.get("bot_id") or event.get("subtype") not in _NEW_HUMAN_MESSAGE:
        return
    channel, ts, user, thread = (event.get(k) for k in ("channel", "ts", "user", "thread_ts"))
    if not all(isinstance(v, str) and v for v in (channel, ts, user)) or not isinstance(thread, (str, type(None))):
        return  # not a message a person wrote, as Slack describes one
    # The message's identity, not the retry header: a retry may be the only delivery, and a DM mention may
    # arrive both as app_mention and as message.im.
    key = f"question:{channel}:{ts}"
    thread_ts = thread or (None if in_dm else ts)
    if not enabled_in(ctx, channel, in_dm):
        if ctx.store.take(key):
            post(ctx, f"not-enabled:{channel}", channel, notice("I'm not enabled in this channel."), thread_ts,
                 taken=f"not-enabled:{channel}")
        return
    question, note = clean_question(str(event.get("text") or ""), ctx.settings.slack_question_chars)
    if not question:
        post(ctx, key, channel, notice(USAGE), thread_ts, taken=key)
        return
    taken = answer_in_thread(ctx, key, channel, thread_ts, ts, question, user, note, history=bool(thread))
    log.info("question taken" if taken else "question already taken: not answered again",
             extra={"event_id": str(event_id), "delivery": key, "channel": channel, "surface": "dm" if in_dm else "mention"})
