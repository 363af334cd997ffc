"""Running the ingest on a cron schedule: `dealbot ingest --schedule` and the schedule inside `dealbot serve`.

The expression is parsed by croniter, in the machine's local time like cron itself. The first run starts at once,
so a freshly started process has a current index; after that, one run at each time the expression matches. A run
that is still going when the next time comes makes that time be skipped, never doubled. `stop` ends the loop: while
waiting at once, during a run at the next step (see ingest.sync).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from croniter import croniter

from .settings import SettingsError

log = logging.getLogger("dealbot.schedule")


def check_expression(expression: str, what: str = "--schedule") -> None:
    """SettingsError unless `expression` is a cron expression."""
    if not croniter.is_valid(expression):
        raise SettingsError(f"{what} {expression!r} is not a cron expression (e.g. '*/30 * * * *')")


def next_time(expression: str, after: datetime) -> datetime:
    return croniter(expression, after).get_next(datetime)


def run_on_schedule(expression: str, run: Callable[[], str], stop: threading.Event, at_once: bool = True) -> None:
    """Call `run` now (unless not `at_once`) and then at every time `expression` matches, until `stop` is set.

    `run` returns the line to log for its run; an exception in it is logged and the schedule goes on.
    """
    if not at_once:
        upcoming = next_time(expression, datetime.now().astimezone())
        stop.wait(max(0.0, (upcoming - datetime.now().astimezone()).total_seconds()))
    while not stop.is_set():
        started = datetime.now().astimezone()
        try:
            line = run()
        except Exception as exc:  # one failed run must not end the schedule
            line = f"run failed: {type(exc).__name__}: {exc}"
        if stop.is_set():
            log.info("ingest %s; stopped", line)
            return
        upcoming = next_time(expression, max(started, datetime.now().astimezone()))
        log.info("ingest %s; next run %s", line, upcoming.isoformat(timespec="seconds"))
        stop.wait(max(0.0, (upcoming - datetime.now().astimezone()).total_seconds()))
