"""Load on the Slack bot: bursts of signed events with Slack's retries, a long run for memory, and the Web API
failing for 10 s in the middle of a burst.

The real `dealbot serve --http` runs as its own process over the sample corpus; the fake Slack Web API
(tests/slack_fakes.py) runs in this one on 127.0.0.1 and keeps what users would see, so every event's thread is
checked: answered exactly once, no placeholder left.

- bursts of 20, 50 and 100 concurrent distinct events, each then re-sent 3 times (X-Slack-Retry-Num 1-3), every
  round of sends concurrent; the ack latency is each request's round trip as the sender sees it;
- 1,000 more events (100 at a time) for memory: the server's RSS (its processes together) before and after;
- 100 events with the Web API answering HTTP 500 to everything for 10 s from the 30th on.

The last line is machine-readable:
events=N answers=N duplicates=0 ack_p50_ms=X ack_p99_ms=Y rss_growth_mb=Z lost=0 stuck=0
(ack figures over the 100-concurrent burst and its retries; lost: events never answered; stuck: threads still
showing the placeholder).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import ProxyHandler, build_opener

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from slack_fakes import FakeSlackAPI, app_mention, event_callback, sign  # noqa: E402

SECRET = "benchsigningsecret0123456789abcdef"
WORKING = "Looking through the articles…"
QUESTIONS = ["When was the deal signed?", "What did China agree to?", "Who is the commerce secretary?",
             "Where were the talks held?", "What share of rare earths comes from China?",
             "What tariff did Trump impose on China in April?", "What did Lutnick say?", "Who signed the deal?"]
DEALBOT = Path(sys.executable).parent / "dealbot"


def _env(data: Path, fake: FakeSlackAPI) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}
    return {**env, "DEALBOT_DATA_DIR": str(data), "DEALBOT_SLACK_API_URL": fake.base_url,
            "SLACK_BOT_TOKEN": "xoxb-bench-token", "SLACK_SIGNING_SECRET": SECRET}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, fake: FakeSlackAPI) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([str(DEALBOT), "serve", "--http", "--port", str(port)], env=_env(data, fake), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(data / "serve.log", "w"))
    opener = build_opener(ProxyHandler({}))
    deadline = time.monotonic() + 180
    while True:
        try:
            with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, f"http://127.0.0.1:{port}/slack/events"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dealbot serve did not start; see {data / 'serve.log'}")
            time.sleep(0.2)


def rss_mb(pid: int) -> float:
    """The resident memory of the process and its children (the HTTP front of `serve --http`)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        try:
            total += rss_mb(int(child))
        except OSError:  # it ended meanwhile
            pass
    return total


def send_round(host: str, port: int, requests: list[bytes]) -> list[tuple[float, bytes]]:
    """Send all `requests` at once, each on its own connection made beforehand; per request, the milliseconds from
    writing it to reading the answer's status line, and the status."""
    sockets = [socket.create_connection((host, port), timeout=60) for _ in requests]
    barrier = threading.Barrier(len(requests))
    results: list[tuple[float, bytes]] = [(0.0, b"")] * len(requests)

    def send(i: int) -> None:
        sock = sockets[i]
        barrier.wait()
        started = time.perf_counter()
        sock.sendall(requests[i])
        first = sock.recv(64)
        results[i] = ((time.perf_counter() - started) * 1000, first[9:12])
        while sock.recv(65536):
            pass
        sock.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class Sender:
    """Sends rounds of signed requests from a process of its own (as Slack would: not sharing this process, where the
    fake Web API runs), all of a round at once, and times each one's acknowledgement."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.pool = multiprocessing.get_context("spawn").Pool(1)

    def _request(self, payload: dict, retry: int | None) -> bytes:
        body = json.dumps(payload).encode()
        headers = {"Host": f"{self.host}:{self.port}", "Content-Type": "application/json",
                   "Content-Length": str(len(body)), "Connection": "close", **sign(body.decode(), SECRET)}
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"POST {self.path} HTTP/1.1\r\n{head}\r\n".encode() + body

    def round(self, payloads: list[tuple[dict, int | None]]) -> list[float]:
        requests = [self._request(p, r) for p, r in payloads]
        results = self.pool.apply(send_round, (self.host, self.port, requests))
        bad = [status for _, status in results if status != b"200"]
        if bad:
            raise SystemExit(f"{len(bad)} requests were not acknowledged with 200: {sorted(set(bad))}")
        return [ms for ms, _ in results]

    def close(self) -> None:
        self.pool.terminate()


def events_for(phase: str, count: int) -> list[dict]:
    return [app_mention(QUESTIONS[i % len(QUESTIONS)], channel=f"C-{phase}-{i}") for i in range(count)]


def burst(sender: Sender, events: list[dict], retries: int) -> list[float]:
    """All events at once, then each retry round at once."""
    payloads = [event_callback(e) for e in events]
    times = sender.round([(p, None) for p in payloads])
    if os.environ.get("LOAD_DEBUG"):
        print(f"  round 0: p50 {pct(times, .5):.1f} p99 {pct(times, .99):.1f}", flush=True)
    for retry in range(1, retries + 1):
        more = sender.round([(p, retry) for p in payloads])
        if os.environ.get("LOAD_DEBUG"):
            print(f"  round {retry}: p50 {pct(more, .5):.1f} p99 {pct(more, .99):.1f}", flush=True)
        times += more
    return times


def outcome(fake: FakeSlackAPI, events: list[dict]) -> dict[str, int]:
    """Per event: answered once, answered more than once, never answered, or still showing the placeholder."""
    counts = {"answers": 0, "duplicates": 0, "lost": 0, "stuck": 0}
    for e in events:
        shown = fake.thread(e["channel"], e["ts"])
        answers = [m for m in fake.posted(e["channel"], e["ts"]) if m["text"] != WORKING and not m.get("deleted")]
        if any(m["text"] == WORKING for m in shown):
            counts["stuck"] += 1
        if len(answers) > 1 or len(shown) > 1:
            counts["duplicates"] += 1
        elif len(answers) == 1:
            counts["answers"] += 1
        else:
            counts["lost"] += 1
    return counts


def wait_answered(fake: FakeSlackAPI, events: list[dict], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(fake.thread(e["channel"], e["ts"]) and all(m["text"] != WORKING for m in fake.thread(e["channel"], e["ts"]))
               for e in events):
            break
        time.sleep(0.2)
    return time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory-events", type=int, default=1000, help="events of the memory run (default 1000)")
    parser.add_argument("--outage-seconds", type=float, default=10.0, help="how long the Web API fails (default 10)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dealbot-load-"))
    with FakeSlackAPI() as fake:
        env = _env(work, fake)
        subprocess.run([str(DEALBOT), "ingest", "--source", str(ROOT / "data" / "articles")], env=env, cwd=ROOT,
                       check=True, capture_output=True)
        proc, url = start_server(work, fake)
        sender = Sender(url)
        try:
            every: list[dict] = []
            warm = events_for("warm", 10)
            burst(sender, warm, 0)
            wait_answered(fake, warm, 60)
            every += warm
            ack_100: list[float] = []
            for size in (20, 50, 100):
                events = events_for(f"burst{size}", size)
                times = burst(sender, events, 3)
                took = wait_answered(fake, events, 300)
                every += events
                if size == 100:
                    ack_100 = times
                print(f"burst {size:3} x4 sends: ack p50 {pct(times, .5):.1f} ms, p99 {pct(times, .99):.1f} ms, "
                      f"max {max(times):.1f} ms; all answered {took:.1f} s after the last send; {outcome(fake, events)}",
                      flush=True)

            before = rss_mb(proc.pid)
            memory = events_for("memory", args.memory_events)
            for i in range(0, len(memory), 100):
                burst(sender, memory[i:i + 100], 0)
                wait_answered(fake, memory[i:i + 100], 300)
            time.sleep(2)
            after = rss_mb(proc.pid)
            every += memory
            print(f"memory: {len(memory)} events, RSS {before:.1f} -> {after:.1f} MB; {outcome(fake, memory)}", flush=True)

            failing = events_for("outage", 100)
            payloads = [event_callback(e) for e in failing]
            sender.round([(p, None) for p in payloads[:30]])
            fake.outage("*", seconds=args.outage_seconds, status=500)
            sender.round([(p, None) for p in payloads[30:]])
            sender.round([(p, 1) for p in payloads])  # Slack's retries arrive while the Web API still fails
            took = wait_answered(fake, failing, 600)
            every += failing
            print(f"outage {args.outage_seconds:.0f} s from the 30th of 100 events: all answered {took:.1f} s after the "
                  f"last send; {outcome(fake, failing)}", flush=True)

            total = outcome(fake, every)
            status = subprocess.run([str(DEALBOT), "status", "--json"], env=env, cwd=ROOT, capture_output=True, text=True)
            pending = json.loads(status.stdout).get("slack_pending") if status.returncode == 0 else "?"
            print(f"slack replies pending at the end: {pending}", flush=True)
            print(f"events={len(every)} answers={total['answers']} duplicates={total['duplicates']} "
                  f"ack_p50_ms={statistics.median(ack_100):.1f} ack_p99_ms={pct(ack_100, .99):.1f} "
                  f"rss_growth_mb={after - before:.1f} lost={total['lost']} stuck={total['stuck']}")
        finally:
            sender.close()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
