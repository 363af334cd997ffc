"""Events API listeners: mentions in channels (and their threads), and direct messages."""

from __future__ import annotations

from slack_bolt import App

from .answering import answer_in_thread, clean_question, enabled_in, thread_history
from .blocks import USAGE, notice

# Message subtypes that are not a person asking something new: edits, deletions, joins, bot posts...
_NEW_HUMAN_MESSAGE = {None, "file_share", "thread_broadcast"}


def register(app: App, ctx) -> None:
    @app.event("app_mention")
    def on_mention(event, client):
        _handle(ctx, client, event, in_dm=False)

    @app.event("message")
    def on_message(event, client):
        if event.get("channel_type") == "im":
            _handle(ctx, client, event, in_dm=True)


def _handle(ctx, client, event: dict, in_dm: bool) -> None:
    if event.get("bot_id") or event.get("subtype") not in _NEW_HUMAN_MESSAGE or not event.get("user"):
        return
    channel, ts = event["channel"], event["ts"]
    # The message's identity, not the retry header: a retry may be the only delivery, and a DM mention may
    # arrive both as app_mention and as message.im.
    if not ctx.store.take(f"question:{channel}:{ts}"):
        return
    thread_ts = event.get("thread_ts") or (None if in_dm else ts)
    if not enabled_in(ctx, channel, in_dm):
        if ctx.store.take(f"not-enabled:{channel}"):
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, **notice("I'm not enabled in this channel."))
        return
    limit = ctx.settings.slack.max_question_chars
    question, note = clean_question(event.get("text", ""), limit)
    if not question:
        client.chat_postMessage(channel=channel, thread_ts=thread_ts, **notice(USAGE))
        return
    history = thread_history(client, channel, event["thread_ts"], ts, limit) if event.get("thread_ts") else []
    answer_in_thread(ctx, client, channel, thread_ts, question, event["user"], history, note)
