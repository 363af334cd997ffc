"""Concurrency on one embedded data directory, with real processes: two ingests, `ask` during an ingest, an ingest
while `ask` reads, `serve` beside a separate ingest. Each is either correct or refused at once with a message naming
the process that holds the store; nothing waits, nothing is damaged (the index answers afterwards)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ingest_inputs import fixture_text, wait_for_healthz  # noqa: E402

from conftest import DEALBOT, ROOT, SAMPLE, free_port  # noqa: E402
from news_site import NewsSite, article_page, held  # noqa: E402

QUESTION = "When was the deal signed?"
SLACK = {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef",
         "DEALBOT_SLACK_API_URL": "http://127.0.0.1:9/api/"}


def _env(data: Path) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    return {**environ, "DEALBOT_DATA_DIR": str(data), **SLACK}


def dealbot(data: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEALBOT), *args], env=_env(data), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def start(data: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(DEALBOT), *args], env=_env(data), cwd=ROOT, text=True, **kw)


@pytest.fixture
def site():
    """A page that is sent only when the test says so (`site.release.set()`): the ingest fetching it holds the
    store until then, however long the processes refused meanwhile take to start."""
    with NewsSite() as s:
        s.release = threading.Event()
        body = article_page("A slow fixture page", [fixture_text("slow", 4)], published="2025-07-02", author=None,
                            canonical=None).encode()
        s.put("/slow", b"", raw=held(body, s.release))
        yield s


def _wait_for_request(site: NewsSite, path: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `proc` (an ingest) has asked for `path`: from then on it holds the store, until the page is sent."""
    deadline = time.monotonic() + timeout
    while not site.requests_for(path):
        assert proc.poll() is None, "the ingest ended early"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_second_ingest_an_ask_and_serve_during_an_ingest_are_refused_naming_it(tmp_path, site):
    data = tmp_path / "data"
    writer = subprocess.Popen(
        [str(DEALBOT), "ingest", "--json", "--source", str(SAMPLE), "--source", site.url("/slow")],
        env={**_env(data), "DEALBOT_FETCH_READ_TIMEOUT": "600", "DEALBOT_FETCH_DEADLINE_SECONDS": "900"},
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_request(site, "/slow", writer)
        holder = f"pid {writer.pid}: dealbot ingest"
        started = time.monotonic()
        second = dealbot(data, "ingest", "--source", str(SAMPLE))
        assert second.returncode == 1 and holder in second.stderr and "is writing to the index" in second.stderr
        ask = dealbot(data, "ask", QUESTION)
        assert ask.returncode == 1 and holder in ask.stderr and "ask again when it has finished" in ask.stderr
        status = dealbot(data, "status", "--json")
        info = json.loads(status.stdout)
        assert status.returncode == 0 and holder in info["busy"] and info["documents"] is None
        serve = dealbot(data, "serve", "--http", "--port", str(free_port()))
        assert serve.returncode == 1 and holder in serve.stderr
        assert time.monotonic() - started < 120, "each was refused at once, none waited"
        assert writer.poll() is None, "refusals came while the ingest still held the store"
        site.release.set()
        out, err = writer.communicate(timeout=300)
    finally:
        writer.kill()
    assert writer.returncode == 0, err[-2000:]
    assert json.loads(out.splitlines()[-1])["added"] == 2
    status = json.loads(dealbot(data, "status", "--json").stdout)
    assert (status["documents"], status["busy"]) == (2, None), "the refused ones damaged nothing"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    data = tmp_path_factory.mktemp("concurrency") / "data"
    assert dealbot(data, "ingest", "--source", str(SAMPLE)).returncode == 0
    return data


def test_an_ingest_while_ask_reads_is_refused_naming_the_reader_and_readers_share(ingested):
    reader = start(ingested, "ask", "--json", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        reader.stdin.write(QUESTION + "\n")
        reader.stdin.flush()
        assert json.loads(reader.stdout.readline())["answered"], "the reader has the index open"
        refused = dealbot(ingested, "ingest", "--source", str(SAMPLE))
        assert refused.returncode == 1
        assert "reading the index" in refused.stderr and f"pid {reader.pid}: dealbot ask" in refused.stderr
        other = dealbot(ingested, "ask", "--json", QUESTION)
        assert other.returncode == 0 and json.loads(other.stdout)["answered"], "two readers share the store"
        reader.stdin.write(QUESTION + "\n")
        reader.stdin.flush()
        assert json.loads(reader.stdout.readline())["answered"], "the first reader is undisturbed"
        reader.stdin.close()
        assert reader.wait(timeout=60) == 0
    finally:
        reader.kill()
    assert dealbot(ingested, "ingest", "--source", str(SAMPLE)).returncode == 0, "the store is free again"


def test_serve_owns_the_store_an_ingest_and_an_ask_beside_it_are_refused_naming_it(ingested):
    port = free_port()
    server = start(ingested, "serve", "--http", "--port", str(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_healthz(server, port)
        holder = f"pid {server.pid}: dealbot serve"
        ingest = dealbot(ingested, "ingest", "--source", str(SAMPLE))
        assert ingest.returncode == 1 and holder in ingest.stderr
        ask = dealbot(ingested, "ask", QUESTION)
        assert ask.returncode == 1 and holder in ask.stderr
        status = json.loads(dealbot(ingested, "status", "--json").stdout)
        last = status["last_run"]
        assert holder in status["busy"] and last["added"] + last["unchanged"] == 1, "state.sqlite is still shown"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert "Traceback" not in err
    assert dealbot(ingested, "ingest", "--source", str(SAMPLE)).returncode == 0, "the store is free again"
