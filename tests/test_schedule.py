"""The schedule and the single writer: real `dealbot` processes, real signals, the real lock."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
import urllib.request

from conftest import DEALBOT, ROOT, free_port, run_cli, write_article
from slack_fakes import FakeSlackAPI, app_mention, event_callback, post_event

EVERY_2_SECONDS = "* * * * * */2"  # croniter's optional sixth field: seconds
SECRET = "0123456789abcdef0123456789abcdef"  # the shape of a Slack signing secret


class Process:
    """A dealbot process whose stderr lines are collected as they come."""

    def __init__(self, *args: str, env: dict):
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}
        self.proc = subprocess.Popen([str(DEALBOT), *args], env={**environ, **env}, cwd=ROOT, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None or not self.lines.empty(), f"exited {self.proc.returncode}: {self.seen}"
                continue
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} within {timeout}s: {self.seen}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def test_ingest_schedule_runs_repeatedly_refuses_a_second_writer_and_stops_on_sigterm(tmp_path):
    folder = tmp_path / "articles"
    write_article(folder, "first.md", "First fixture", "The first fixture article says that licences were approved in July.")
    env = {"DEALBOT_DATA_DIR": str(tmp_path / "data"), "DEALBOT_SOURCES": str(folder)}
    p = Process("ingest", "--schedule", EVERY_2_SECONDS, env=env)
    try:
        first = p.wait_for("ingest ")
        assert "1 added" in first and "next run" in first

        # While the schedule owns the embedded store, a second writer exits at once, naming the holder.
        t0 = time.monotonic()
        other = run_cli("ingest", env=env)
        assert other.returncode == 1 and time.monotonic() - t0 < 30
        assert f"pid {p.proc.pid}" in other.stderr and "ingest --schedule" in other.stderr

        write_article(folder, "second.md", "Second fixture", "The second fixture article says shipments resumed in August.")
        line = p.wait_for(" added")
        while "1 added" not in line:
            line = p.wait_for(" added")
        assert "0 removed" in line
        assert p.stop(signal.SIGTERM) == 0
        assert not any("Traceback" in s for s in p.seen)
    finally:
        p.proc.kill()
    status = run_cli("status", "--json", env=env)
    assert '"documents": 2' in status.stdout


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, articles):
    env = {"DEALBOT_DATA_DIR": str(tmp_path / "data"), "DEALBOT_SOURCES": str(articles)}
    p = Process("ingest", "--schedule", "0 0 1 1 *", env=env)
    p.wait_for("ingest ")
    assert (tmp_path / "data" / "writer.lock").read_text().startswith(f"pid {p.proc.pid}")
    p.stop(signal.SIGKILL)

    after = run_cli("ingest", "--json", env=env)
    assert after.returncode == 0, after.stderr
    assert f"taking over the writer lock left by a process that is gone (pid {p.proc.pid}" in after.stderr
    assert '"unchanged": 1' in after.stdout


def test_bad_schedule_is_a_clear_error(tmp_path):
    r = run_cli("ingest", "--schedule", "every hour", env={"DEALBOT_DATA_DIR": str(tmp_path)})
    assert r.returncode == 1 and "'every hour' is not a cron expression" in r.stderr
    r = run_cli("status", env={"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_INGEST_SCHEDULE": "61 * * * *"})
    assert r.returncode == 1 and "ingest.schedule" in r.stderr


def test_serve_runs_the_schedule_and_answers_from_new_articles_without_restart(tmp_path, articles):
    with FakeSlackAPI() as fake:
        env = {
            "DEALBOT_DATA_DIR": str(tmp_path / "data"),
            "DEALBOT_SOURCES": str(articles),
            "DEALBOT_INGEST_SCHEDULE": EVERY_2_SECONDS,
            "DEALBOT_SLACK_API_URL": fake.base_url,
            "DEALBOT_DIGEST_CHANNELS": "CDIGEST01",
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": SECRET,
        }
        port = free_port()
        p = Process("serve", "--http", "--port", str(port), env=env)
        try:
            p.wait_for("index is empty: ingesting before serving")
            p.wait_for("serving Slack at")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert r.status == 200

            refused = run_cli("ingest", env=env)
            assert refused.returncode == 1 and "dealbot serve" in refused.stderr

            question = "Which port city handled the first licensed gallium shipment?"
            write_article(articles, "gallium.md", "Gallium fixture",
                          "The first licensed gallium shipment left from the port city of Ningbo on 3 September 2025.")
            line = p.wait_for(" added")
            while "1 added" not in line:
                line = p.wait_for(" added")
            # the run that added the article posted the digest; the first ingest into the empty index did not
            assert "digest: CDIGEST01: 1 new article posted" in line, line
            [digest] = [c for c in fake.calls_to("chat.postMessage") if c.args["channel"] == "CDIGEST01"]
            assert "Gallium fixture" in str(digest.args["blocks"]) and "1 new article on the story" in digest.args["text"]

            status, _ = post_event(f"http://127.0.0.1:{port}/slack/events",
                                   event_callback(app_mention(question, channel="C12")), SECRET)
            assert status == 200
            update = fake.wait_for("chat.update", timeout=30)[-1]
            assert "Ningbo" in update.args["text"], update.args["text"]
            assert "Gallium fixture" in str(update.args.get("blocks"))
            assert p.stop(signal.SIGTERM) == 0
        finally:
            p.proc.kill()
