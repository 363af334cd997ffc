"""Button clicks: feedback on an answer, and sharing a private answer in the channel. Acknowledged at once; the
vote is recorded and the replies sent afterwards, on the answer pool."""

from __future__ import annotations

import json
import uuid

from slack_bolt import App

from .answering import post, reply
from .blocks import FEEDBACK_DOWN, FEEDBACK_UP, SHARE, answer_message, notice


def _id(value) -> str | None:
    """The id of a payload's user or channel ({"id": ...}), if it is one."""
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _answer_id(action: dict) -> int | None:
    try:
        value = json.loads(action.get("value") or "")
        return int(value["answer_id"])
    except (ValueError, TypeError, KeyError):
        return None


def _url(body: dict) -> str | None:
    url = body.get("response_url")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def register(app: App, ctx) -> None:
    @app.action(FEEDBACK_UP)
    @app.action(FEEDBACK_DOWN)
    def on_feedback_click(ack, body, action):
        ack()
        ctx.later(on_feedback, body, action)

    @app.action(SHARE)
    def on_share_click(ack, body, action):
        ack()
        ctx.later(on_share, body, action)

    def on_feedback(body, action):
        answer_id, url = _answer_id(action), _url(body)
        if answer_id is None or ctx.store.answer(answer_id) is None:
            if url:
                reply(ctx, f"feedback:{uuid.uuid4().hex}", url, notice("Sorry, I can't find that answer any more."),
                      response_type="ephemeral", replace_original=False)
            return
        vote = "up" if action["action_id"] == FEEDBACK_UP else "down"
        ctx.store.record_feedback(answer_id, _id(body.get("user")), _id(body.get("channel")), vote)
        if url:
            reply(ctx, f"feedback:{uuid.uuid4().hex}", url, notice("Thanks, your feedback is recorded."),
                  response_type="ephemeral", replace_original=False)

    def on_share(body, action):
        answer_id, url = _answer_id(action), _url(body)
        answer = ctx.store.answer(answer_id) if answer_id is not None else None
        channel = _id(body.get("channel"))
        key = f"share:{uuid.uuid4().hex}"
        if answer is None or channel is None:
            if url:
                reply(ctx, key, url, notice("That answer can no longer be shared."), response_type="ephemeral",
                      replace_original=False)
            return
        message = answer_message(answer, answer_id, note=f"Shared from /dealbot. The question: {answer.question}",
                                 limits=ctx.limits)
        post(ctx, key, channel, message)
        if url:
            reply(ctx, f"{key}:delete", url, {}, delete_original=True)
