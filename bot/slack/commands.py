"""The /dealbot slash command: acknowledged at once, answered privately, with a button to share the answer."""

from __future__ import annotations

import logging

from slack_bolt import App

from .answering import FAILED, answer_payload, clean_question
from .blocks import USAGE, answer_message, notice

log = logging.getLogger("dealbot.slack")


def register(app: App, ctx) -> None:
    @app.command("/dealbot")
    def on_command(ack, command, respond):
        question, note = clean_question(command.get("text", ""), ctx.settings.slack.max_question_chars)
        if not question:
            ack(text=USAGE)
            return
        ack(text="Looking through the articles…")
        channel, user = command.get("channel_id"), command.get("user_id")
        if ctx.settings.slack.allowed_channels and channel not in ctx.settings.slack.allowed_channels and not str(channel).startswith("D"):
            respond(response_type="ephemeral", **notice("I'm not enabled in this channel."))
            return
        try:
            answer = ctx.pipeline.ask(question)
            answer_id = ctx.store.record_answer(answer, channel, user, payload=answer_payload(answer))
            message = answer_message(answer, answer_id, note, share=answer.answered)
        except Exception as exc:
            log.exception("answering %r failed", question)
            message = notice(FAILED.format(reason=type(exc).__name__))
        respond(response_type="ephemeral", replace_original=True, **message)
