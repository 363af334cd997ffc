"""Button clicks: feedback on an answer, and sharing a private answer in the channel."""

from __future__ import annotations

import json

from slack_bolt import App

from .answering import answer_from_payload
from .blocks import FEEDBACK_DOWN, FEEDBACK_UP, SHARE, answer_message, notice


def register(app: App, ctx) -> None:
    @app.action(FEEDBACK_UP)
    @app.action(FEEDBACK_DOWN)
    def on_feedback(ack, body, action, respond):
        ack()
        answer_id = json.loads(action["value"])["answer_id"]
        vote = "up" if action["action_id"] == FEEDBACK_UP else "down"
        channel = (body.get("channel") or {}).get("id")
        ctx.store.record_feedback(answer_id, body["user"]["id"], channel, vote)
        respond(response_type="ephemeral", replace_original=False, **notice("Thanks, your feedback is recorded."))

    @app.action(SHARE)
    def on_share(ack, body, action, client, respond):
        ack()
        answer_id = json.loads(action["value"])["answer_id"]
        payload = ctx.store.answer_payload(answer_id)
        channel = (body.get("channel") or {}).get("id")
        if payload is None or channel is None:
            respond(response_type="ephemeral", replace_original=False, **notice("That answer can no longer be shared."))
            return
        answer = answer_from_payload(payload)
        message = answer_message(answer, answer_id, note=f"Shared from /dealbot. The question: {answer.question}")
        client.chat_postMessage(channel=channel, unfurl_links=False, unfurl_media=False, **message)
        respond(delete_original=True)
