"""The /dealbot slash command: acknowledged at once (in the request's own thread, before any work), answered
privately through its response URL on the answer pool, with a button to share the answer; `/dealbot timeline
[since]` lists the story's articles instead (bot/slack/timeline.py)."""

from __future__ import annotations

import uuid

from slack_bolt import App

from . import timeline
from .answering import clean_question, enabled_in, reply
from .blocks import USAGE, WORKING, notice


def register(app: App, ctx) -> None:
    @app.command("/dealbot")
    def on_command(ack, command):
        if timeline.parse(command.get("text", ""))[0]:
            ack()
            ctx.later(timeline.reply, ctx, command)
            return
        question, note = clean_question(command.get("text", ""), ctx.settings.slack_question_chars)
        ack(text=WORKING if question else USAGE)
        if question:
            ctx.later(_answer, ctx, command, question, note)


def _answer(ctx, command: dict, question: str, note: str) -> None:
    url = command.get("response_url")
    if not url:
        return
    channel, user = command.get("channel_id"), command.get("user_id")
    key = f"command:{command.get('trigger_id') or uuid.uuid4().hex}"
    if not enabled_in(ctx, channel, in_dm=str(channel).startswith("D")):
        reply(ctx, key, url, notice("I'm not enabled in this channel."), response_type="ephemeral")
        return
    reply(ctx, key, url, question=question, note=note, user=user, channel=channel, response_type="ephemeral",
          replace_original=True)
