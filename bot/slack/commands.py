"""The /dealbot slash command: acknowledged at once (before any work, in the request's own thread), answered
privately through its response URL, with a button to share the answer."""

from __future__ import annotations

import uuid

from slack_bolt import App

from .answering import clean_question, enabled_in, reply
from .blocks import USAGE, WORKING, notice


def register(app: App, ctx) -> None:
    def acknowledge(ack, command):
        question, _ = clean_question(command.get("text", ""), ctx.settings.slack_question_chars)
        ack(text=WORKING if question else USAGE)

    def answer(command):
        question, note = clean_question(command.get("text", ""), ctx.settings.slack_question_chars)
        url = command.get("response_url")
        if not question or not url:
            return
        channel, user = command.get("channel_id"), command.get("user_id")
        key = f"command:{command.get('trigger_id') or uuid.uuid4().hex}"
        if not enabled_in(ctx, channel, in_dm=str(channel).startswith("D")):
            reply(ctx, key, url, notice("I'm not enabled in this channel."), response_type="ephemeral")
            return
        reply(ctx, key, url, question=question, note=note, user=user, channel=channel, response_type="ephemeral",
              replace_original=True)

    app.command("/dealbot")(ack=acknowledge, lazy=[answer])
