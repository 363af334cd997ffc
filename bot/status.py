"""The facts `dealbot status` shows, and the App Home too: the index's status (ingest.status) and what only the bot
knows, the Slack replies still to be delivered."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ingest.index import Index
from ingest.settings import Settings
from ingest.status import IndexStatus, index_status


@dataclass(frozen=True)
class Status(IndexStatus):
    slack_pending: int = 0  # replies the Slack bot is still retrying
    slack_undelivered: int = 0  # replies it gave up on

    def to_dict(self) -> dict:
        """The contract of `dealbot status --json`."""
        return {**super().to_dict(), "slack_pending": self.slack_pending, "slack_undelivered": self.slack_undelivered}


def read_status(settings: Settings, index: Index | None = None) -> Status:
    """The status; without `index`, the embedded store is opened for reading (see ingest.status.index_status)."""
    base = index_status(settings, index)
    pending, undelivered = _slack_deliveries(settings)
    return Status(**{f.name: getattr(base, f.name) for f in fields(base)}, slack_pending=pending,
                  slack_undelivered=undelivered)


def _slack_deliveries(settings: Settings) -> tuple[int, int]:
    """Replies the Slack bot still has to deliver (retried while Slack fails), and those it gave up on."""
    from .state import slack_state

    if not slack_state(settings).exists():
        return 0, 0
    from .slack.store import SlackStore

    counts = SlackStore.of(settings).delivery_counts()
    return counts["pending"], counts["failed"]
