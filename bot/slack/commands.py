"""The /dealbot slash command: acknowledged at once, answered privately, with a button to share the answer;
`/dealbot timeline [since]` lists the story's articles instead (bot/slack/timeline.py)."""

from __future__ import annotations

from slack_bolt import App

from . import timeline
from .answering import clean_question, compose_message, enabled_in
from .blocks import USAGE, notice


def register(app: App, ctx) -> None:
    @app.command("/dealbot")
    def on_command(ack, command, respond):
        if timeline.parse(command.get("text", ""))[0]:
            timeline.reply(ctx, ack, command, respond)
            return
        question, note = clean_question(command.get("text", ""), ctx.settings.slack.max_question_chars)
        if not question:
            ack(text=USAGE)
            return
        ack(text="Looking through the articles…")
        channel, user = command.get("channel_id"), command.get("user_id")
        if not enabled_in(ctx, channel, in_dm=str(channel).startswith("D")):
            respond(response_type="ephemeral", **notice("I'm not enabled in this channel."))
            return
        message = compose_message(ctx, question, channel, user, note=note, share=True)
        respond(response_type="ephemeral", replace_original=True, **message)
