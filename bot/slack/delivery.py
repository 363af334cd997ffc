"""Delivering replies to Slack: none lost when the Web API fails, none sent twice, no placeholder left behind.

Every reply is a row in slack.sqlite (the store's `deliveries`) from the moment its question is taken until Slack has
it. A reply Slack did not take (HTTP 429, a 5xx, a timeout, a refused connection) stays there and is retried with
back-off (Retry-After honoured) for `slack.delivery_window_seconds`; after that the user is told, for as long
again, that the answer could not be delivered. Rows survive a restart and are resumed, and whoever works on one
holds its lease, so replicas sharing the file never both send it.

Never twice: a thread's answer replaces its placeholder (chat.update, which can be repeated safely); when updating
keeps failing, the answer is posted as a new message and the placeholder deleted. Every message the bot posts
carries message metadata naming its delivery, so after a post whose outcome is unknown (a timeout, a 5xx: Slack may
have taken it) the thread is searched for it before anything is posted again.

While Slack fails, one delivery at a time probes it (the others wait, and answer workers do not call it); on the
first success every waiting delivery is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from ingest.settings import SlackSettings

from .. import metrics
from .blocks import WORKING, notice
from .store import Delivery, SlackStore, new_owner

log = logging.getLogger("dealbot.slack")

EVENT_TYPE = "dealbot_reply"
UNDELIVERED = ("Sorry, I couldn't deliver my answer to your question: Slack did not accept it for {minutes} minutes. "
               "Please ask again.")
MAX_BACKOFF = 60.0
UPDATE_TRIES = 2  # failed chat.updates of a placeholder before the answer is posted as a new message instead
# Slack errors that say "try again later", not "this cannot be done".
_TRANSIENT = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited", "rate_limited"}
# Errors after which a placeholder cannot be updated or deleted any more: post anew / nothing to clean.
_GONE = {"message_not_found", "cant_update_message", "edit_window_closed", "cant_delete_message", "channel_not_found"}


@dataclass
class Job:
    """What a delivery sends where, and how far it got. Stored as JSON in the delivery's row."""

    kind: str  # "thread": an answer in a thread or DM (placeholder, then answer); "respond": a response URL; "post"
    channel: str | None = None
    thread_ts: str | None = None  # the thread replied in (None: a DM answered at its top level)
    question_ts: str | None = None  # the question's own ts: the bot's replies come after it
    response_url: str | None = None
    response: dict = field(default_factory=dict)  # response URL fields besides the message (response_type, ...)
    message: dict | None = None  # chat.postMessage/chat.update arguments; None until the question is answered
    question: str = ""
    note: str = ""
    user: str | None = None
    history: bool = False  # read the thread's earlier questions before answering
    share: bool = False  # offer "Share in channel" (a private answer)
    placeholder_ts: str | None = None
    answer_ts: str | None = None  # the answer posted as its own message (when the placeholder could not be updated)
    cleanup_ts: str | None = None  # a placeholder to delete, its answer having been posted anew
    unsure_since: float | None = None  # when a post whose outcome is unknown was made: look before posting again
    unsure_part: str = ""
    update_failures: int = 0
    apology: bool = False  # the window passed: the message says the answer could not be delivered

    @classmethod
    def of(cls, data: dict) -> "Job":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Outcome:
    """The result of one call to Slack."""

    ok: bool
    data: dict = field(default_factory=dict)
    maybe_sent: bool = False  # failed in a way that Slack may still have done it (timeout, 5xx, reset)
    permanent: bool = False  # Slack refused it for good: trying again cannot help
    retry_after: float | None = None
    error: str = ""


class Retry(Exception):
    """Slack failed transiently during a step; the delivery waits and tries again."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.error)
        self.outcome = outcome


def call(method: Callable[..., Any], **kwargs) -> Outcome:
    """One Web API call, its failure classified instead of raised."""
    try:
        return Outcome(True, dict(method(**kwargs).data))
    except SlackApiError as exc:
        return _api_error(exc)
    except URLError as exc:
        refused = isinstance(exc.reason, ConnectionRefusedError)
        return Outcome(False, maybe_sent=not refused, error=f"connection failed ({exc.reason})")
    except (OSError, ValueError) as exc:  # a timeout, a reset connection, a body that is not JSON
        return Outcome(False, maybe_sent=True, error=f"{type(exc).__name__}: {exc}"[:200])


def _api_error(exc: SlackApiError) -> Outcome:
    response = exc.response
    status = getattr(response, "status_code", 200) or 200
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or f"HTTP {status}")
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return Outcome(False, error=error, retry_after=_retry_after(response.headers))
    if status >= 500 or error in _TRANSIENT:
        return Outcome(False, maybe_sent=True, error=error)
    return Outcome(False, permanent=True, error=error)


def _retry_after(headers) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def respond(url: str, body: dict, timeout: float) -> Outcome:
    """POST to a slash command's or a button's response URL."""
    try:
        response = WebhookClient(url, timeout=timeout).send_dict(body)  # type: ignore[arg-type]  # urllib takes floats
    except URLError as exc:
        return Outcome(False, maybe_sent=not isinstance(exc.reason, ConnectionRefusedError), error=str(exc.reason))
    except (OSError, ValueError) as exc:
        return Outcome(False, maybe_sent=True, error=f"{type(exc).__name__}: {exc}"[:200])
    if response.status_code == 200:
        return Outcome(True)
    error = f"HTTP {response.status_code} {str(response.body)[:80]}".strip()
    if response.status_code == 429:
        return Outcome(False, error=error, retry_after=_retry_after(response.headers))
    return Outcome(False, maybe_sent=response.status_code >= 500, permanent=response.status_code < 500, error=error)


def marker(key: str, part: str) -> dict:
    """Message metadata naming the delivery a message belongs to (found again with include_all_metadata)."""
    return {"event_type": EVENT_TYPE, "event_payload": {"delivery": key, "part": part}}


Composer = Callable[[Delivery, "Courier"], dict]


class Courier:
    """Sends replies and keeps retrying the ones Slack did not take. One per app; `start()` runs its thread."""

    def __init__(self, store: SlackStore, client: WebClient, settings: SlackSettings, compose: Composer,
                 executor: Executor):
        self.store, self.client, self.settings = store, client, settings
        self.compose, self.executor = compose, executor
        self.owner = new_owner()
        # Long enough for one step (answering included); a holder that dies is noticed sooner on this host.
        self.lease = max(120.0, 6 * settings.api_timeout_seconds)
        self._down_until = 0.0
        self._was_down = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._active: set[str] = set()  # deliveries being worked on in this process

    # ------------------------------------------------------------------ the entry points

    def submit(self, key: str, job: Job, taken: str | None = None) -> Delivery | None:
        """Queue a reply, held by this process; with `taken`, only if that question was never taken (None if so)."""
        if not self.store.enqueue(key, asdict(job), self.settings.delivery_window_seconds, self.owner, self.lease, taken):
            return None
        return Delivery(key, asdict(job), time.time() + self.settings.delivery_window_seconds)

    def send(self, key: str, job: Job, taken: str | None = None) -> bool:
        """Queue a reply and work on it at once (from an answer worker); False if `taken` was taken before."""
        delivery = self.submit(key, job, taken)
        if delivery is not None:
            self.work(delivery, first=True)
        return delivery is not None

    def start(self) -> "Courier":
        if self._thread is None:
            self.store.prune_deliveries(older_than=7 * 86400)
            self._thread = threading.Thread(target=self._run, name="dealbot-delivery", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop retrying; what is still pending stays in the store for the next start (or another replica)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.store.release_all(self.owner)

    def read(self, method, **kwargs) -> dict:
        """A Web API read for a step (a thread's earlier messages): its data; {} when Slack refuses it for good;
        Retry when Slack fails for now."""
        outcome = self._call(method, **kwargs)
        if not outcome.ok and not outcome.permanent:
            raise Retry(outcome)
        return outcome.data

    def update_quietly(self, channel: str, ts: str, message: dict) -> None:
        """A courtesy update (an answer still being written): skipped while Slack fails, never retried."""
        if self.api_up():
            self._call(self.client.chat_update, channel=channel, ts=ts, **message)

    def api_up(self) -> bool:
        return time.monotonic() >= self._down_until

    def pending(self) -> int:
        return self.store.delivery_counts()["pending"]

    # ------------------------------------------------------------------ one delivery

    def work(self, delivery: Delivery, first: bool = False) -> None:
        """Take a delivery as far as it goes now: answer its question if needed, then send it. A transient
        failure leaves it queued with its back-off; a permanent one closes it. Skipped if it is being worked on
        here already, or its lease ran out while it waited for a worker and someone else holds it now."""
        with self._lock:
            if delivery.key in self._active:
                return
            self._active.add(delivery.key)
        try:
            if first or self.store.renew(delivery.key, self.owner, self.lease):
                self._work(delivery, first)
        finally:
            with self._lock:
                self._active.discard(delivery.key)

    def _work(self, delivery: Delivery, first: bool) -> None:
        job = Job.of(delivery.job)
        try:
            if self._expired(delivery, job):
                return
            if job.message is None:
                if first and job.kind == "thread" and not job.placeholder_ts:
                    self._placeholder(delivery, job)
                job.message = self.compose(Delivery(delivery.key, asdict(job), delivery.deadline, delivery.attempts), self)
                self._save(delivery, job)
            outcome = self._deliver(delivery, job)
        except Retry as retry:
            self._postpone(delivery, job, retry.outcome)
            return
        except Exception as exc:  # a bug must not lose the reply: it is retried like a failure, and logged
            log.exception("delivering %s failed", delivery.key)
            self._postpone(delivery, job, Outcome(False, error=f"{type(exc).__name__}: {exc}"))
            return
        if outcome.ok:
            self._succeeded()
            if job.apology:  # the user knows; the answer itself never got there
                self.store.close_delivery(self._with(delivery, job), self.owner, "failed", "the user was told")
            else:
                self.store.close_delivery(self._with(delivery, job), self.owner, "delivered")
        else:
            log.warning("Slack refused reply %s for good: %s", delivery.key, outcome.error)
            self.store.close_delivery(self._with(delivery, job), self.owner, "failed", outcome.error)

    def _expired(self, delivery: Delivery, job: Job) -> bool:
        """Past its window a reply becomes a short apology (where one can be sent), tried for as long again."""
        now, window = time.time(), self.settings.delivery_window_seconds
        if now > delivery.deadline + window or (now > delivery.deadline and job.kind == "post"):
            log.warning("gave up delivering %s after %.0f s", delivery.key, now - delivery.deadline + window)
            self.store.close_delivery(self._with(delivery, job), self.owner, "failed", "delivery window passed")
            return True
        if now > delivery.deadline and not job.apology:
            job.apology = True
            job.message = notice(UNDELIVERED.format(minutes=max(1, round(window / 60))))
            job.update_failures = 0
        return False

    def _placeholder(self, delivery: Delivery, job: Job) -> None:
        """"Looking through the articles…" in the thread at once; a failure here only costs the placeholder."""
        if not self.api_up():
            return
        outcome = self._call(self.client.chat_postMessage, channel=job.channel, thread_ts=job.thread_ts,
                             unfurl_links=False, unfurl_media=False, metadata=marker(delivery.key, "placeholder"),
                             **notice(WORKING))
        if outcome.ok:
            job.placeholder_ts = outcome.data.get("ts")
        elif outcome.maybe_sent:
            job.unsure_since, job.unsure_part = time.time(), "placeholder"
        self._save(delivery, job)

    def _deliver(self, delivery: Delivery, job: Job) -> Outcome:
        if job.kind == "respond":
            return self._respond(job)
        self._settle(delivery, job)
        if job.kind == "thread" and job.placeholder_ts and not job.answer_ts and job.update_failures < UPDATE_TRIES:
            outcome = self._call(self.client.chat_update, channel=job.channel, ts=job.placeholder_ts, **job.message)
            if outcome.ok:
                return outcome
            if not outcome.permanent:
                job.update_failures += 1
                raise Retry(outcome)
            job.update_failures = UPDATE_TRIES  # the placeholder is gone or frozen: post the answer anew
        if not job.answer_ts:
            outcome = self._call(self.client.chat_postMessage, channel=job.channel, thread_ts=job.thread_ts,
                                 unfurl_links=False, unfurl_media=False, metadata=marker(delivery.key, "answer"),
                                 **job.message)
            if not outcome.ok:
                if outcome.maybe_sent:
                    job.unsure_since, job.unsure_part = time.time(), "answer"
                if outcome.permanent:
                    return outcome
                raise Retry(outcome)
            job.answer_ts, job.cleanup_ts = outcome.data.get("ts"), job.placeholder_ts
            self._save(delivery, job)
        return self._clean_up(job)

    def _settle(self, delivery: Delivery, job: Job) -> None:
        """After a post whose outcome is unknown: wait until it must have landed, then look for it in the
        conversation before posting again."""
        if job.unsure_since is None:
            return
        wait = job.unsure_since + self.settings.api_timeout_seconds - time.time()
        if wait > 0:
            raise Retry(Outcome(False, error="waiting to see whether an earlier post arrived", retry_after=wait))
        found = self._find(delivery.key, job)
        if job.unsure_part == "placeholder" and found:
            job.placeholder_ts = found
        elif job.unsure_part == "answer" and found:
            job.answer_ts, job.cleanup_ts = found, job.placeholder_ts
        job.unsure_since, job.unsure_part = None, ""
        self._save(delivery, job)

    def _find(self, key: str, job: Job) -> str | None:
        """The ts of this delivery's message `job.unsure_part` in the conversation, if Slack has it."""
        if job.thread_ts:
            outcome = self._call(self.client.conversations_replies, channel=job.channel, ts=job.thread_ts,
                                 include_all_metadata=True, limit=200)
        else:
            outcome = self._call(self.client.conversations_history, channel=job.channel, oldest=job.question_ts or "0",
                                 include_all_metadata=True, limit=200)
        if not outcome.ok:
            if outcome.permanent:
                return None
            raise Retry(outcome)
        for message in outcome.data.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("delivery") == key and payload.get("part") == job.unsure_part:
                return message.get("ts")
        return None

    def _clean_up(self, job: Job) -> Outcome:
        """Delete the placeholder an answer posted anew replaces. The answer is out either way: a failure here is
        retried, but never holds the answer back."""
        if job.cleanup_ts:
            outcome = self._call(self.client.chat_delete, channel=job.channel, ts=job.cleanup_ts)
            if not outcome.ok and not (outcome.permanent and outcome.error in _GONE):
                raise Retry(outcome)
            job.cleanup_ts = None
        return Outcome(True)

    def _respond(self, job: Job) -> Outcome:
        """A response URL is its own endpoint: its failures are this delivery's, not a sign the Web API is down."""
        outcome = respond(job.response_url, {**job.response, **job.message}, self.settings.api_timeout_seconds)
        if outcome.ok or outcome.permanent:
            return outcome
        raise Retry(outcome)

    def _call(self, method, **kwargs) -> Outcome:
        """A Web API call unless Slack is known to be failing (then: wait with the others)."""
        if not self.api_up():
            raise Retry(Outcome(False, error="Slack is failing", retry_after=self._down_until - time.monotonic()))
        outcome = call(method, **kwargs)
        if outcome.ok:
            self._succeeded()
        elif not outcome.permanent:
            self._failed(outcome)
        return outcome

    # ------------------------------------------------------------------ back-off and the health of the Web API

    def _wait(self, attempts: int, outcome: Outcome) -> float:
        if outcome.retry_after is not None:
            return max(0.05, outcome.retry_after)
        return min(MAX_BACKOFF, self.settings.delivery_backoff_seconds * 2 ** attempts)

    def _failed(self, outcome: Outcome) -> None:
        """Slack failed transiently: until the back-off passes, only the courier's probe calls it."""
        wait = outcome.retry_after if outcome.retry_after is not None else self.settings.delivery_backoff_seconds
        self._down_until = max(self._down_until, time.monotonic() + wait)
        self._was_down = True

    def _succeeded(self) -> None:
        if self._was_down:  # Slack is back: everything waiting goes now
            self._was_down = False
            self._down_until = 0.0
            self.store.hurry()
            self._wake.set()

    def _postpone(self, delivery: Delivery, job: Job, outcome: Outcome) -> None:
        # However long the back-off has grown, one more try comes just before the window (or the apology's) ends.
        end = delivery.deadline + (self.settings.delivery_window_seconds if job.apology else 0.0)
        wait = self._wait(delivery.attempts, outcome)
        if end - time.time() > 0.1:
            wait = min(wait, end - time.time() - 0.05)
        self.store.postpone(self._with(delivery, job), self.owner, wait, outcome.error)
        metrics.SLACK_DELIVERY_RETRIES.inc()
        self._wake.set()

    def _save(self, delivery: Delivery, job: Job) -> None:
        self.store.save(self._with(delivery, job), self.owner, self.lease)

    @staticmethod
    def _with(delivery: Delivery, job: Job) -> Delivery:
        delivery.job = asdict(job)
        return delivery

    # ------------------------------------------------------------------ the courier's thread

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._round()
            except Exception:  # the thread must outlive a bad row or a locked database
                log.exception("the delivery queue failed; trying again")
                self._stopping.wait(1.0)

    def _round(self) -> None:
        self._wake.clear()
        pause = self._down_until - time.monotonic()
        if pause > 0:
            self._wake.wait(min(pause, 1.0))
            return
        due = self.store.claim_due(self.owner, self.lease)
        if not due:
            upcoming = self.store.next_due()
            self._wake.wait(1.0 if upcoming is None else min(1.0, max(0.01, upcoming - time.time())))
            return
        for i, delivery in enumerate(due):
            if self._stopping.is_set() or not self.api_up():
                for rest in due[i:]:
                    self.store.release(rest, self.owner)
                return
            if Job.of(delivery.job).message is None:
                self.executor.submit(self.work, delivery)  # answering is the pool's work, not this thread's
            else:
                self.work(delivery)
