"""The Web API client, counted: every call by method and HTTP status, 429s, and the retries slack_sdk's retry
handlers make (bot/metrics.py). Nothing of a call's arguments (text, channel, user) becomes a label."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from .. import metrics


class MeteredWebClient(WebClient):
    """A WebClient whose every call is counted once, with the status of its last attempt ('error': no answer)."""

    def api_call(self, api_method: str, **kwargs):  # type: ignore[override]
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            metrics.observe_slack_call(api_method, getattr(exc.response, "status_code", "error") or "error")
            raise
        except Exception:
            metrics.observe_slack_call(api_method, "error")
            raise
        metrics.observe_slack_call(api_method, response.status_code)
        return response


class _CountsRetries:
    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        metrics.SLACK_RETRIES.labels(_method(request.url)).inc()
        super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)  # type: ignore[misc]


class CountedConnectionErrorRetryHandler(_CountsRetries, ConnectionErrorRetryHandler):
    """slack_sdk's retry of a connection that could not be made, counted."""


class CountedRateLimitErrorRetryHandler(_CountsRetries, RateLimitErrorRetryHandler):
    """slack_sdk's retry after a 429 (past its Retry-After), counted."""


def _method(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "unknown"
