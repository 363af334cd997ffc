"""`dealbot doctor`: every check a deployment needs before it serves, one line each, with the fix when it fails.

Checks: the configuration; the Slack tokens (present, well-formed, accepted: `auth.test` for the bot token,
`apps.connections.open` for the app token, both against `slack.api_url`); the signing secret's shape; the state
database; Chroma (reachable, the collection built with this model); the index (not empty, how fresh); each source
(a folder readable, a URL answering a GET within the fetch limits); the LLM answering one tiny prompt when one is
configured. A check that does not apply (no LLM configured, no app token in HTTP mode) is skipped, not failed.

No secret is ever part of a result: Slack's and the LLM's errors are reduced to their error code or first line,
and every text is passed through the log masking (bot/logs.py) besides.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping

from ingest.report import LoggedRun
from ingest.settings import Settings, SettingsError

from .logs import mask, secrets_in_env

SIGNING_SECRET = re.compile(r"[0-9A-Za-z]{8,}")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped (does not apply here)
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name, None, detail)


def run_checks(settings: Settings | SettingsError, env: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in order; a check that raises is a failed check naming the exception, never a crash."""
    env = os.environ if env is None else env
    if isinstance(settings, SettingsError):
        return [failed("configuration", str(settings), "fix the setting named above (see config/dealbot.toml)")]
    results = [passed("configuration", "valid")]
    secrets = secrets_in_env(env)
    for check in _checks(settings, env):
        try:
            results.extend(check())
        except Exception as exc:  # a broken check is reported, the others still run
            results.append(failed(getattr(check, "__name__", "check").strip("_"), f"{type(exc).__name__}: {exc}",
                                  "see the error above"))
    return [Check(c.name, c.ok, mask(c.detail, secrets), mask(c.fix, secrets)) for c in results]


def _checks(settings: Settings, env: Mapping[str, str]) -> list[Callable[[], Iterator[Check]]]:
    return [
        lambda: _slack_bot_token(settings, env),
        lambda: _slack_app_token(settings, env),
        lambda: _signing_secret(env),
        lambda: _state(settings),
        lambda: _index(settings),
        lambda: _sources(settings),
        lambda: _llm(settings),
    ]


# ---------------------------------------------------------------------------------------------------- Slack

def _slack_call(settings: Settings, token: str, method: str) -> tuple[bool, str]:
    """(accepted, Slack's error code or why no answer came)."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(token=token, base_url=settings.slack.api_url, timeout=int(settings.slack.api_timeout_seconds) or 1)
    try:
        client.api_call(method)
    except SlackApiError as exc:
        return False, str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    except Exception as exc:  # no answer at all: a URL, a network, a proxy
        return False, f"no answer from {settings.slack.api_url} ({type(exc).__name__})"
    return True, ""


def _slack_bot_token(settings: Settings, env: Mapping[str, str]) -> Iterator[Check]:
    token = env.get("SLACK_BOT_TOKEN", "").strip()
    name = "slack bot token"
    if not token:
        yield failed(name, "SLACK_BOT_TOKEN is not set",
                     "export SLACK_BOT_TOKEN=xoxb-... (the Bot User OAuth Token; README, Connect to Slack)")
        return
    if not token.startswith("xoxb-") or len(token) <= 5:
        yield failed(name, "SLACK_BOT_TOKEN does not start with xoxb-", "use the Bot User OAuth Token (xoxb-...)")
        return
    ok, error = _slack_call(settings, token, "auth.test")
    if ok:
        yield passed(name, f"accepted by {settings.slack.api_url} (auth.test)")
    else:
        yield failed(name, f"auth.test failed: {error}",
                     "reinstall the app to the workspace and copy its Bot User OAuth Token again; check slack.api_url")


def _slack_app_token(settings: Settings, env: Mapping[str, str]) -> Iterator[Check]:
    token = env.get("SLACK_APP_TOKEN", "").strip()
    name = "slack app token"
    if not token:
        yield skipped(name, "SLACK_APP_TOKEN not set: HTTP mode (`serve --http`), no Socket Mode")
        return
    if not token.startswith("xapp-") or len(token) <= 5:
        yield failed(name, "SLACK_APP_TOKEN does not start with xapp-",
                     "create an App-Level Token with the connections:write scope (xapp-...)")
        return
    ok, error = _slack_call(settings, token, "apps.connections.open")
    if ok:
        yield passed(name, "accepted (apps.connections.open)")
    else:
        yield failed(name, f"apps.connections.open failed: {error}",
                     "create a new App-Level Token with the connections:write scope; turn Socket Mode on")


def _signing_secret(env: Mapping[str, str]) -> Iterator[Check]:
    secret = env.get("SLACK_SIGNING_SECRET", "").strip()
    name = "slack signing secret"
    if not secret:
        if env.get("SLACK_APP_TOKEN"):
            yield skipped(name, "not set: Socket Mode needs none")
        else:
            yield failed(name, "SLACK_SIGNING_SECRET is not set (HTTP mode needs it)",
                         "export SLACK_SIGNING_SECRET=... (Basic Information, App Credentials)")
        return
    if SIGNING_SECRET.fullmatch(secret):
        yield passed(name, f"well-formed ({len(secret)} characters)")
    else:
        yield failed(name, "SLACK_SIGNING_SECRET is malformed (letters and digits expected, 8 or more)",
                     "copy the Signing Secret again from the app's Basic Information page")


# ---------------------------------------------------------------------------------------------------- state, index

def _state(settings: Settings) -> Iterator[Check]:
    from .slack.store import SlackStore
    from .state import StateError, slack_state

    db = slack_state(settings)
    try:
        SlackStore(db).delivery_counts()
    except StateError as exc:
        yield failed("state database", str(exc), "fix state_url (DEALBOT_STATE_URL) or start the database")
        return
    yield passed("state database", f"{db.where} reachable")


def _index(settings: Settings) -> Iterator[Check]:
    from ingest import runlog
    from ingest.embed import DIMENSIONS, MODEL_NAME
    from ingest.index import Index, IndexAccessError
    from ingest.lock import LockHeld, ReadAccess

    access = None
    if not settings.server_mode:
        try:
            access = ReadAccess(settings.data_dir)
        except LockHeld as exc:
            yield skipped("chroma", f"not opened: {exc}")
            return
    try:
        index = Index(settings, MODEL_NAME, DIMENSIONS)
    except IndexAccessError as exc:
        yield failed("chroma", str(exc), "see above")
        return
    except Exception as exc:  # an unreachable server surfaces as the client's own error
        yield failed("chroma", f"cannot open {settings.chroma_url or settings.chroma_path}: {type(exc).__name__}",
                     "start the Chroma server (chroma run) or fix chroma_url (DEALBOT_CHROMA_URL)")
        return
    try:
        yield passed("chroma", f"{index.where} reachable, model {MODEL_NAME}")
        yield _index_content(index.count(), runlog.last_run(settings.state_db), settings.ingest.schedule)
    finally:
        if access is not None:
            access.release()


def _index_content(passages: int, last: LoggedRun | None, schedule: str) -> Check:
    if not passages:
        return failed("index", "empty", "run `dealbot ingest` (or set ingest.schedule and start `dealbot serve`)")
    if not last:
        return passed("index", f"{passages} passages; no ingest run recorded in this data directory")
    age = _age(last.finished)
    detail = f"{passages} passages; last ingest {last.finished} ({age})"
    if schedule:
        from .metrics import schedule_interval

        limit = 3 * schedule_interval(schedule, time.time())
        seconds = _seconds_since(last.finished)
        if seconds is not None and seconds > limit:
            return failed("index", detail + f", more than three schedule intervals ({int(limit)} s)",
                          "check the ingest schedule's log: is it running, are its runs failing?")
    return passed("index", detail)


def _seconds_since(iso: str) -> float | None:
    try:
        return time.time() - datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return None


def _age(iso: str) -> str:
    seconds = _seconds_since(iso)
    if seconds is None:
        return "age unknown"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


# ---------------------------------------------------------------------------------------------------- sources, LLM

def _sources(settings: Settings) -> Iterator[Check]:
    from ingest.fetch import Fetcher, FetchError

    if not settings.sources:
        yield failed("sources", "none configured", "set `sources` in the configuration (or DEALBOT_SOURCES)")
        return
    fetcher = Fetcher(settings.fetch)
    try:
        for spec in settings.sources:
            name = f"source {spec.label}"
            if spec.is_url:
                try:
                    response = fetcher.get(spec.location)
                except FetchError as exc:
                    yield failed(name, str(exc), "check the URL, or that this host may reach it (fetch.* limits)")
                    continue
                yield passed(name, f"HTTP {response.status}, {len(response.data)} bytes, {response.content_type or '?'}")
            else:
                yield _folder(name, Path(spec.location))
    finally:
        fetcher.close()


def _folder(name: str, path: Path) -> Check:
    if not path.exists():
        return failed(name, f"{path} does not exist", "create it, or fix the path in `sources`")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        return failed(name, f"{path} is not readable by this user", "fix its permissions")
    return passed(name, f"{'folder' if path.is_dir() else 'file'} {path} readable")


def _llm(settings: Settings) -> Iterator[Check]:
    if not settings.llm.model:
        yield skipped("llm", "not configured: answers are offline (extractive)")
        return
    from .llm import LLMConfigError, build_model, scrub

    try:
        model = build_model(settings.llm)
    except LLMConfigError as exc:
        yield failed("llm", str(exc), "see above (README, LLM answers)")
        return
    started = time.perf_counter()
    try:
        reply = model.invoke("Reply with the single word: ready")
    except Exception as exc:  # the provider's own exception: its first line, secrets scrubbed
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        yield failed("llm", f"{settings.llm.model} did not answer: {scrub(first)[:200]}",
                     "check the API key variable, llm.base_url and the model name")
        return
    text = str(getattr(reply, "content", "") or "").strip()
    if not text:
        yield failed("llm", f"{settings.llm.model} answered with nothing", "check the model name and llm.max_tokens")
        return
    yield passed("llm", f"{settings.llm.model} answered in {time.perf_counter() - started:.1f} s")


def all_passed(checks: list[Check]) -> bool:
    return all(c.ok is not False for c in checks)


def render(checks: list[Check]) -> str:
    """One line per check: ✓, ✗ (with the fix) or – (skipped)."""
    lines = []
    for c in checks:
        mark = {True: "✓", False: "✗", None: "–"}[c.ok]
        lines.append(f"{mark} {c.name}: {c.detail}" + (f"  → {c.fix}" if c.fix else ""))
    return "\n".join(lines)


def report(checks: list[Check]) -> dict:
    return {"ok": all_passed(checks), "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checks": [c.to_dict() for c in checks]}
