"""Running the Slack app: HTTP mode on waitress (a production WSGI server) through bolt's WSGI adapter, or Socket
Mode through slack_sdk's built-in client. Both answer from the same Pipeline, loaded before the first request."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger("dealbot.slack")

EVENTS_PATH = "/slack/events"


def wsgi_app(app: App):
    """The WSGI application: Slack's requests at /slack/events, a health check at /healthz, 404 elsewhere."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def application(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == EVENTS_PATH:
            return slack(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return application


def make_http_server(app: App, host: str, port: int, threads: int = 8):
    """A waitress server bound to host:port (not yet serving): call .run(), and .close() to stop."""
    from waitress.server import create_server

    return create_server(wsgi_app(app), host=host, port=port, threads=threads, ident="dealbot")


def serve_socket_mode(app: App, app_token: str) -> None:
    SocketModeHandler(app, app_token=app_token, web_client=app.client).start()
