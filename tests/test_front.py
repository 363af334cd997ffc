"""`dealbot serve --http` as two processes: the HTTP front (bot/slack/front.py) acknowledges, the bot's process
(bot/slack/relay.py) answers. Real processes, real HTTP, the fake Web API on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import DEALBOT, ROOT, SAMPLE, free_port
from slack_fakes import FakeSlackAPI, app_mention, event_callback, post_event, post_form, slash_command

SECRET = "frontsigningsecret0123456789abcd"
WORKING = "Looking through the articles…"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def fake():
    with FakeSlackAPI() as api:
        yield api


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, fake):
    data = tmp_path_factory.mktemp("front")
    done = subprocess.run([str(DEALBOT), "ingest", "--source", str(SAMPLE)], env=_env(data, fake), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return data


def _env(data: Path, fake: FakeSlackAPI) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}
    return {**base, "DEALBOT_DATA_DIR": str(data), "DEALBOT_SLACK_API_URL": fake.base_url,
            "SLACK_BOT_TOKEN": "xoxb-front-token", "SLACK_SIGNING_SECRET": SECRET}


class Serve:
    def __init__(self, data: Path, fake: FakeSlackAPI):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data / f"serve-{self.port}.log"
        self.proc = subprocess.Popen([str(DEALBOT), "serve", "--http", "--port", str(self.port)], env=_env(data, fake),
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log.open("w"))
        _until(lambda: self.get("/readyz")[0] == 200, 180, lambda: self.log.read_text()[-3000:],
               alive=lambda: self.proc.poll() is None)

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        try:
            with OPENER.open(self.url + path, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def front_pids(self) -> list[int]:
        """The serve process's children that run the front (not multiprocessing's resource tracker)."""
        pids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(p) for p in pids if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        return self.log.read_text()


def _until(check, timeout: float, describe=lambda: "", alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert alive(), describe()
        assert time.monotonic() < deadline, describe()
        time.sleep(0.2)


def _answered_once(fake: FakeSlackAPI, channel: str, ts: str) -> bool:
    shown = fake.thread(channel, ts)
    return len(shown) == 1 and shown[0]["text"] != WORKING and not shown[0].get("deleted")


def _counted(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("dealbot_questions_total{") and 'surface="mention"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_events_acked_while_the_bot_is_frozen_are_answered_once_when_it_runs_again(ingested, fake):
    """The front acknowledges on its own: with the bot's process stopped (SIGSTOP) every event and every retry of
    it gets its 200; /readyz says the bot does not answer; once the bot runs again each is answered exactly once,
    and /metrics (the bot's registry, through the front) counts each once."""
    serve = Serve(ingested, fake)
    try:
        before = _counted(serve.get("/metrics")[1])
        events = [app_mention(q, channel=f"CF{i}") for i, q in enumerate(["When was the deal signed?",
                                                                          "Who is the commerce secretary?"])]
        os.kill(serve.proc.pid, signal.SIGSTOP)
        try:
            for retry in (None, 1, 2):
                for event in events:
                    payload = event_callback(event)
                    assert post_event(serve.url + "/slack/events", payload, SECRET, retry_num=retry, timeout=5)[0] == 200
            status, body = serve.get("/readyz", timeout=15)
            assert status == 503 and "does not answer" in json.loads(body)["reason"]
            assert not fake.calls_to("chat.postMessage") or all(
                c.args.get("channel") not in ("CF0", "CF1") for c in fake.calls_to("chat.postMessage"))
        finally:
            os.kill(serve.proc.pid, signal.SIGCONT)
        _until(lambda: all(_answered_once(fake, e["channel"], e["ts"]) for e in events), 90,
               lambda: str([fake.thread(e["channel"], e["ts"]) for e in events]))
        time.sleep(1.5)  # time for a doubled answer to show, if there were one
        for e in events:
            assert len(fake.posted(e["channel"], e["ts"])) == 1
        assert _counted(serve.get("/metrics")[1]) - before == len(events)
        assert serve.get("/readyz")[0] == 200
    finally:
        log = serve.stop()
    assert "Traceback" not in log


def test_a_front_that_dies_is_restarted_and_the_port_keeps_working(ingested, fake):
    serve = Serve(ingested, fake)
    try:
        [front] = serve.front_pids()
        os.kill(front, signal.SIGKILL)
        event = app_mention("Who signed the deal?", channel="CF-restart")
        # Sent while no front runs: the bot holds the port, so the request waits for the next front.
        assert post_event(serve.url + "/slack/events", event_callback(event), SECRET, timeout=30)[0] == 200
        _until(lambda: _answered_once(fake, event["channel"], event["ts"]), 60)
        assert serve.front_pids() != [front] and serve.get("/readyz")[0] == 200
        assert serve.proc.poll() is None
    finally:
        log = serve.stop()
    assert "the HTTP front exited" in log


def test_an_event_kept_by_a_bot_killed_before_taking_it_in_is_answered_at_the_next_start(ingested, fake):
    """Acknowledged means kept: the bot's process is killed (SIGKILL) after the front kept an event but before the
    bot took it in; the front then stops by itself, and the next `serve` answers the event once."""
    serve = Serve(ingested, fake)
    event = app_mention("What did China agree to?", channel="CF-kept")
    os.kill(serve.proc.pid, signal.SIGSTOP)
    fronts = serve.front_pids()
    assert post_event(serve.url + "/slack/events", event_callback(event), SECRET, timeout=5)[0] == 200
    os.kill(serve.proc.pid, signal.SIGKILL)
    serve.proc.wait(timeout=30)
    _until(lambda: not any(Path(f"/proc/{p}").exists() for p in fronts), 30, lambda: "the front outlived the bot")
    assert fake.thread("CF-kept", event["ts"]) == []
    again = Serve(ingested, fake)
    try:
        _until(lambda: _answered_once(fake, "CF-kept", event["ts"]), 90)
        time.sleep(1.0)
        assert len(fake.posted("CF-kept", event["ts"])) == 1
    finally:
        again.stop()


def test_the_front_refuses_what_is_not_slacks_and_relays_commands_to_the_bot(ingested, fake):
    serve = Serve(ingested, fake)
    events = serve.url + "/slack/events"
    try:
        payload = event_callback(app_mention("When was the deal signed?", channel="CF-bad"))
        assert post_event(events, payload, SECRET, signature_override="v0=" + "0" * 64)[0] == 401
        assert post_event(events, payload, SECRET, timestamp=int(time.time()) - 3600)[0] == 401
        with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as sock:  # refused before it is read
            sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: 2000000\r\nX-Slack-Request-Timestamp: {int(time.time())}\r\n"
                         f"X-Slack-Signature: v0={'0' * 64}\r\n\r\n".encode() + b"x" * 1000)
            assert sock.recv(64).startswith(b"HTTP/1.1 413")
        assert post_form(events, {"payload": "[1, 2]"}, SECRET)[0] == 400
        assert serve.get("/nowhere")[0] == 404
        status, text = post_form(events, slash_command("When was the deal signed?",
                                                       response_url=fake.response_url("front")), SECRET)
        assert status == 200 and WORKING in text  # the bot's own acknowledgement, relayed
        _until(lambda: fake.ephemeral("front"), 60)
        assert "signed" in fake.ephemeral("front")[-1]["text"]
        assert serve.get("/healthz") == (200, "ok\n")
        assert fake.thread("CF-bad", payload["event"]["ts"]) == []
    finally:
        log = serve.stop()
    assert log.count("refused a request") >= 4 and SECRET not in log


def test_an_event_that_keeps_failing_is_dropped_after_a_few_attempts_and_the_others_are_taken_in(tmp_path, caplog):
    import threading

    from bot.slack.inbox import Inbox
    from bot.slack.relay import MAX_ATTEMPTS, Front

    class App:
        def __init__(self):
            self.seen = []

        def dispatch(self, request):
            self.seen.append(request.body.get("event"))
            if request.body.get("event") == "poison":
                raise RuntimeError("this event always fails")

    inbox = Inbox(tmp_path / "slack-inbox.sqlite")
    inbox.keep([('{"event": "poison"}', {}), ('{"event": "fine"}', {})])
    front = Front.__new__(Front)  # the inbox rounds alone: no port, no front process
    front.app, front.inbox, front._lock, front._taken, front._taking = App(), inbox, threading.Lock(), [], set()
    for _ in range(MAX_ATTEMPTS + 2):
        front._forget_taken()
        for row in inbox.oldest():
            front._handle(*row)
    front._forget_taken()
    assert inbox.count() == 0
    assert front.app.seen.count("fine") == 1
    assert front.app.seen.count("poison") == MAX_ATTEMPTS
    assert any("dropped" in r.getMessage() for r in caplog.records)
