"""The work behind every Slack surface: clean the question, answer it with the core, post it, never go silent."""

from __future__ import annotations

import html
import logging
import re
import threading
import time

from slack_sdk import WebClient

from ..types import Answer, Citation, Related, Sentence
from .blocks import WORKING, answer_message, notice, partial_message

log = logging.getLogger("dealbot.slack")

FAILED = "Sorry, something went wrong while I was answering ({reason}). Please try again in a minute."

_USER_MENTION = re.compile(r"<[@#][A-Z0-9]+(?:\|[^>]*)?>")
_SPECIAL_MENTION = re.compile(r"<!(?:channel|here|everyone|subteam\^[A-Z0-9]+)[^>]*>")
_LABELLED_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)\|([^>]+)>")
_BARE_LINK = re.compile(r"<((?:https?|mailto):[^>]+)>")


def clean_question(text: str, limit: int) -> tuple[str, str]:
    """The question without mentions or Slack markup, cut to `limit` characters; and a note when it was cut."""
    text = _SPECIAL_MENTION.sub("", _USER_MENTION.sub("", text or ""))
    text = _BARE_LINK.sub(r"\1", _LABELLED_LINK.sub(r"\2", text))
    text = " ".join(html.unescape(text).split())
    if len(text) <= limit:
        return text, ""
    return text[:limit].rsplit(" ", 1)[0], f"Your question was longer than {limit} characters; I answered its beginning."


def thread_history(client: WebClient, channel: str, thread_ts: str, before_ts: str, limit: int) -> list[str]:
    """The earlier human questions of a thread, oldest first."""
    replies = client.conversations_replies(channel=channel, ts=thread_ts, limit=50)
    questions = []
    for message in replies.get("messages", []):
        if message.get("bot_id") or message.get("subtype") or float(message.get("ts", 0)) >= float(before_ts):
            continue
        question, _ = clean_question(message.get("text", ""), limit)
        if question:
            questions.append(question)
    return questions


def enabled_in(ctx, channel: str | None, in_dm: bool) -> bool:
    """DMs always; channels when `slack.allowed_channels` is empty or lists them."""
    allowed = ctx.settings.slack.allowed_channels
    return in_dm or not allowed or channel in allowed


def compose_message(ctx, question: str, channel: str | None, user: str | None, history=(), note="", share=False,
                    on_text=None) -> dict:
    """The message for an answer (recorded for feedback), or a plain account of what went wrong."""
    try:
        answer = ctx.pipeline.ask(question, history=history, on_text=on_text)
        answer_id = ctx.store.record_answer(answer, channel, user, payload=answer_payload(answer))
        if answer.model_failed:
            note = " ".join(filter(None, [note, f"Offline answer: {answer.fallback_reason}."]))
        return answer_message(answer, answer_id, note, share=share and answer.answered)
    except Exception as exc:  # the user must hear about any failure; the log gets the details
        log.exception("answering %r failed", question)
        return notice(FAILED.format(reason=type(exc).__name__))


class StreamingUpdates:
    """Shows an answer in its message while the model writes it: at most one chat.update per `interval` seconds
    (Slack allows about one update per second per channel), the last one (with sources and buttons) included."""

    def __init__(self, client: WebClient, channel: str, ts: str, interval: float):
        self.client, self.channel, self.ts, self.interval = client, channel, ts, interval
        self.last = time.monotonic()  # posting the placeholder counts as the first write
        self.shown = ""
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        """Called with the answer so far; updates the message when the interval has passed and the text grew."""
        with self._lock:
            if not text.strip() or text == self.shown or time.monotonic() - self.last < self.interval:
                return
            self.shown, self.last = text, time.monotonic()
        try:
            self.client.chat_update(channel=self.channel, ts=self.ts, **partial_message(text))
        except Exception:  # progress is a courtesy: the final update still comes
            log.warning("updating the partial answer in %s failed", self.channel, exc_info=True)

    def finish(self, message: dict) -> None:
        if self.shown:  # keep the pace for the final update too
            time.sleep(max(0.0, self.interval - (time.monotonic() - self.last)))
        self.client.chat_update(channel=self.channel, ts=self.ts, **message)


def answer_in_thread(ctx, client: WebClient, channel: str, thread_ts: str | None, question: str, user: str, history=(), note=""):
    """Post a placeholder at once, stream the answer into it as it is written, then replace it with the answer and
    its sources, or with what went wrong."""
    placeholder = client.chat_postMessage(
        channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, **notice(WORKING)
    )
    updates = StreamingUpdates(client, channel, placeholder["ts"], ctx.settings.slack.stream_interval_seconds)
    updates.finish(compose_message(ctx, question, channel, user, history, note, on_text=updates))


def answer_payload(answer: Answer) -> dict:
    """What is kept of an answer so it can be shown again (the "Share in channel" button)."""
    return {
        "question": answer.question,
        "answered": answer.answered,
        "sentences": [[s.text, s.n, list(s.more)] for s in answer.sentences],
        "citations": [
            {"n": c.n, "doc_id": c.doc_id, "title": c.title, "source": c.source, "quotes": list(c.quotes),
             "url": c.url, "outlet": c.outlet, "published": c.published}
            for c in answer.citations
        ],
        "related": [
            {"doc_id": r.doc_id, "title": r.title, "source": r.source, "quote": r.quote, "url": r.url,
             "outlet": r.outlet, "published": r.published}
            for r in answer.related
        ],
    }


def answer_from_payload(payload: dict) -> Answer:
    return Answer(
        question=payload["question"],
        answered=payload["answered"],
        sentences=tuple(Sentence(s[0], s[1], tuple(s[2]) if len(s) > 2 else ()) for s in payload["sentences"]),
        citations=tuple(Citation(**{**c, "quotes": tuple(c["quotes"])}) for c in payload["citations"]),
        related=tuple(Related(**r) for r in payload.get("related", ())),  # answers kept before related passages have none
    )
