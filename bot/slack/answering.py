"""The work behind every Slack surface: clean the question, answer it with the core, hand the reply to the courier
(bot/slack/delivery.py), never go silent."""

from __future__ import annotations

import html
import logging
import re
import threading
import time

from .. import metrics
from ..logs import question_fields
from ..question import prepare
from .blocks import BlockLimits, answer_message, notice, partial_message
from .delivery import Courier, Job
from .store import Delivery

log = logging.getLogger("dealbot.slack")

FAILED = "Sorry, something went wrong while I was answering ({reason}). Please try again in a minute."

# Slack's markup in a message: <@U123>, <#C123|general>, <!here>, <https://...|label>. None of these spans a "<"
# (Slack sends a typed one as &lt;), which also keeps the patterns linear on a message of unclosed "<http:".
_USER_MENTION = re.compile(r"<[@#][A-Z0-9]+(?:\|[^<>]*)?>")
_SPECIAL_MENTION = re.compile(r"<!(?:channel|here|everyone|subteam\^[A-Z0-9]+)[^<>]*>")
_LABELLED_LINK = re.compile(r"<((?:https?|mailto):[^|<>]+)\|([^<>]+)>")
_BARE_LINK = re.compile(r"<((?:https?|mailto):[^<>]+)>")


def clean_question(text: str, limit: int) -> tuple[str, str]:
    """The question without mentions or Slack markup, cleaned and cut to `limit` characters (bot/question.py);
    and a note when it was cut."""
    text = _SPECIAL_MENTION.sub("", _USER_MENTION.sub("", text or ""))
    text = _BARE_LINK.sub(r"\1", _LABELLED_LINK.sub(r"\2", text))
    question = prepare(html.unescape(text), limit)
    return question.text, question.note


def thread_history(courier: Courier, channel: str, thread_ts: str, before_ts: str, limit: int) -> list[str]:
    """The earlier human questions of a thread, oldest first (Retry when Slack fails for now)."""
    replies = courier.read(courier.client.conversations_replies, channel=channel, ts=thread_ts, limit=50)
    questions = []
    for message in replies.get("messages", []):
        if message.get("bot_id") or message.get("subtype") or _ts(message.get("ts")) >= _ts(before_ts):
            continue
        question, _ = clean_question(message.get("text", ""), limit)
        if question:
            questions.append(question)
    return questions


def _ts(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def enabled_in(ctx, channel: str | None, in_dm: bool) -> bool:
    """DMs always; channels when `slack.allowed_channels` is empty or lists them."""
    allowed = ctx.settings.slack.allowed_channels
    return in_dm or not allowed or channel in allowed


def compose_message(ctx, question: str, channel: str | None, user: str | None, history=(), note="", share=False,
                    on_text=None, surface: str = "mention", key: str = "") -> dict:
    """The message for an answer (recorded for feedback), or a plain account of what went wrong; counted and logged
    (bot/metrics.py, bot/logs.py) as a question of `surface`."""
    started = time.perf_counter()
    fields = {"delivery": key, "channel": channel, "surface": surface, **question_fields(ctx.settings, question)}
    try:
        answer = ctx.pipeline.ask(question, history=history, on_text=on_text)
        answer_id = ctx.store.record_answer(answer, channel, user)
        if answer.model_failed:
            note = " ".join(filter(None, [note, f"Offline answer: {answer.fallback_reason}."]))
        message = answer_message(answer, answer_id, note, share=share and answer.answered, limits=ctx.limits)
    except Exception as exc:  # the user must hear about any failure; the log gets the details
        metrics.observe_failure(surface)
        log.exception("answering failed", extra={**fields, "outcome": "failed", "error": type(exc).__name__})
        return notice(FAILED.format(reason=type(exc).__name__))
    seconds = time.perf_counter() - started
    metrics.observe_answer(surface, answer, seconds)
    log.info("answered", extra={**fields, "outcome": metrics.outcome_of(answer), "composer": answer.composer,
                                "latency_ms": round(seconds * 1000, 1),
                                "fallback": metrics.fallback_class(answer.fallback_reason) if answer.fallback_reason else None})
    return message


class StreamingUpdates:
    """Shows an answer in its placeholder while the model writes it: at most one chat.update per `interval`
    seconds (Slack allows about one update per second per channel); the final one is the delivery's."""

    def __init__(self, courier: Courier, channel: str, ts: str, interval: float, limits: BlockLimits):
        self.courier, self.channel, self.ts, self.interval, self.limits = courier, channel, ts, interval, limits
        self.last = time.monotonic()  # posting the placeholder counts as the first write
        self.shown = ""
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        """Called with the answer so far; updates the message when the interval has passed and the text grew."""
        with self._lock:
            if not text.strip() or text == self.shown or time.monotonic() - self.last < self.interval:
                return
            self.shown, self.last = text, time.monotonic()
        self.courier.update_quietly(self.channel, self.ts, partial_message(text, self.limits))

    def pace(self) -> None:
        """Wait until the final update may follow the last partial one."""
        if self.shown:
            time.sleep(max(0.0, self.interval - (time.monotonic() - self.last)))


def composer(ctx):
    """How a delivery's question is answered (bot/slack/delivery.py calls it, on the answer pool): the thread's
    earlier questions read first, the answer streamed into the placeholder when an LLM writes it."""

    def compose(delivery: Delivery, courier: Courier) -> dict:
        job = Job.of(delivery.job)
        limit = ctx.settings.slack_question_chars
        history = thread_history(courier, job.channel, job.thread_ts, job.question_ts, limit) if job.history else []
        stream = None
        if job.placeholder_ts and ctx.pipeline.llm is not None:
            stream = StreamingUpdates(courier, job.channel, job.placeholder_ts,
                                      ctx.settings.slack.stream_interval_seconds, ctx.limits)
        message = compose_message(ctx, job.question, job.channel, job.user, history, job.note, job.share, stream,
                                  surface=_surface(job), key=delivery.key)
        if stream is not None:
            stream.pace()
        return message

    return compose


def _surface(job: Job) -> str:
    """Where a question was asked, for the metrics: a slash command (answered through its response URL), a DM (its
    channel id starts with D) or a mention."""
    if job.kind == "respond":
        return "slash"
    return "dm" if (job.channel or "").startswith("D") else "mention"


def answer_in_thread(ctx, key: str, channel: str, thread_ts: str | None, question_ts: str, question: str, user: str,
                     note: str = "", history: bool = False) -> bool:
    """Answer a question in its thread (or DM): the question is taken and its reply queued in one step, so a
    retried event is answered once; then a placeholder at once, the answer composed, and the placeholder replaced
    by it. False if the question was taken before."""
    job = Job("thread", channel=channel, thread_ts=thread_ts, question_ts=question_ts, question=question, note=note,
              user=user, history=history)
    return ctx.courier.send(key, job, taken=key)


def post(ctx, key: str, channel: str, message: dict, thread_ts: str | None = None, taken: str | None = None) -> bool:
    """A message that is not an answer (help, "not enabled here", a shared answer), delivered like one."""
    return ctx.courier.send(key, Job("post", channel=channel, thread_ts=thread_ts, message=message), taken=taken)


def reply(ctx, key: str, response_url: str, message: dict | None = None, question: str = "", note: str = "",
          user: str | None = None, channel: str | None = None, **response) -> bool:
    """A reply through a response URL (slash commands, buttons): `message`, or the answer to `question`."""
    job = Job("respond", channel=channel, response_url=response_url, response=response, message=message,
              question=question, note=note, user=user, share=bool(question))
    return ctx.courier.send(key, job)
