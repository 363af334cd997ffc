"""Shared fixtures: the real model (loaded once per session), settings in temp dirs, article files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.embed import Embedder
from ingest.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = ROOT / "data" / "articles"
DEALBOT = Path(sys.executable).parent / "dealbot"


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("DEALBOT_")]:
        monkeypatch.delenv(name)
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"):  # no prompt leaves the machine
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory) -> Embedder:
    e = Embedder(cache_dir=tmp_path_factory.mktemp("models"))
    e.encode_query("load the model once for the whole session")
    return e


def make_settings(data_dir: Path, sources=(), **env) -> Settings:
    environ = {"DEALBOT_DATA_DIR": str(data_dir), **{f"DEALBOT_{k.upper()}": str(v) for k, v in env.items()}}
    if sources:
        environ["DEALBOT_SOURCES"] = ",".join(str(s) for s in sources)
    return load_settings(env=environ)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def articles(tmp_path) -> Path:
    """A folder holding a copy of the sample article, free to change."""
    folder = tmp_path / "articles"
    shutil.copytree(SAMPLE, folder)
    return folder


def write_article(folder: Path, name: str, title: str, body: str, published: str = "2025-07-01", outlet: str = "Test Wire") -> Path:
    """Write a fixture article atomically (a hidden temp file, then a rename): a running ingest never sees half."""
    folder.mkdir(parents=True, exist_ok=True)
    path, temp = folder / name, folder / f".{name}.tmp"
    temp.write_text(f"---\ntitle: {title}\noutlet: {outlet}\npublished: {published}\n---\n{body}\n", encoding="utf-8")
    temp.replace(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    environ.update(env or {})
    return subprocess.run(
        [str(DEALBOT), *args], env=environ, input=input, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def modules_loaded_by(imports: str) -> set[str]:
    """The modules a fresh interpreter has loaded after `import {imports}` (run from the repo root)."""
    code = f"import json, sys, {imports}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout))


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real Chroma server (`chroma run`) on loopback, for server-mode tests."""
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("chroma run did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def sample_pipeline(tmp_path_factory, embedder):
    """The pipeline over the sample corpus, ingested once for the session into an embedded index."""
    from bot.pipeline import Pipeline
    from ingest.sync import run_ingest

    settings = make_settings(tmp_path_factory.mktemp("sample") / "data")
    run_ingest(settings, [str(SAMPLE)], embedder=embedder)
    return Pipeline(settings, embedder=embedder)


EVAL_ARTICLES = Path(__file__).resolve().parent / "eval" / "articles"


@pytest.fixture(scope="session")
def eval_pipeline(tmp_path_factory, embedder):
    """The pipeline over the eval corpus: the sample article plus the invented fixture articles in tests/eval/articles."""
    from bot.pipeline import Pipeline
    from ingest.sync import run_ingest

    settings = make_settings(tmp_path_factory.mktemp("eval") / "data")
    run_ingest(settings, [str(SAMPLE), str(EVAL_ARTICLES)], embedder=embedder)
    return Pipeline(settings, embedder=embedder)
# ---------------------------------------------------------------- LLM mode: the real langchain-openai client, a fake API

OPENAI_KEY = "sk-test-dealbot-0123456789abcdef"  # what the tests put in OPENAI_API_KEY; it must never be shown


@pytest.fixture(scope="session")
def fake_llm():
    """A fake OpenAI-compatible API on 127.0.0.1 (tests/llm_fakes.py), reset before each test that uses it."""
    from llm_fakes import FakeLLM

    with FakeLLM() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_fake_llm(request):
    if "fake_llm" in request.fixturenames:
        request.getfixturevalue("fake_llm").reset()


def llm_pipeline(base, fake, model: str = "cooperative", **llm):
    """A Pipeline over `base`'s index and embedder that answers with `openai:MODEL` from the fake API.

    `llm` overrides [llm] settings (timeout_seconds, max_retries, ...); the client never retries unless asked, so
    a failure shows at once.
    """
    import dataclasses

    from bot.pipeline import Pipeline

    values = {"model": f"openai:{model}", "base_url": fake.base_url, "max_retries": 0, "timeout_seconds": 10.0, **llm}
    settings = dataclasses.replace(base.settings, llm=dataclasses.replace(base.settings.llm, **values))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", OPENAI_KEY)  # the provider's usual variable, read when the model is built
        return Pipeline(settings, embedder=base.embedder)


def run_on_terminal(args: list[str], env: dict, terminal: str = "stdout", timeout: float = 180):
    """Run dealbot with its `terminal` stream ("stdout" or "stderr") on a pseudo-terminal 120 columns wide.

    Returns the exit code, what arrived on the terminal as (time, bytes) reads, and the other stream's text.
    """
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    streams = {"stdout": slave, "stderr": subprocess.PIPE} if terminal == "stdout" else {"stdout": subprocess.PIPE, "stderr": slave}
    proc = subprocess.Popen([str(DEALBOT), *args], env={**environ, **env}, cwd=ROOT, stdin=subprocess.DEVNULL, **streams)
    os.close(slave)
    reads: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                reads.append((time.monotonic(), data))
            elif proc.poll() is not None:
                break
    finally:
        other = (proc.stderr if terminal == "stdout" else proc.stdout).read().decode("utf-8", "replace")
        proc.wait(timeout=60)
        os.close(master)
    return proc.returncode, reads, other


# ---------------------------------------------------------------- shared state: a real PostgreSQL on loopback

PG_USER = "dealbot-pg"  # PostgreSQL refuses to run as root: the server runs as this unprivileged user then


class Postgres:
    """A PostgreSQL server on 127.0.0.1 (pgserver's PostgreSQL 16 binaries, from the test extra)."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def database(self, name: str) -> str:
        """A fresh database `name` (dropped first if it exists); its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def _gid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _unprivileged_user() -> str | None:
    """None when not root; else PG_USER, created (a system user without a home) if missing."""
    import pwd

    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.fail(f"cannot create the user {PG_USER} to run PostgreSQL as (it refuses root): {made.stderr}")
    return PG_USER


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the whole session, on 127.0.0.1 at a free port, trust authentication on loopback
    only; fsync off (test data). Fails, never skips, with the server's own log when it cannot start."""
    import tempfile

    import importlib.util

    spec = importlib.util.find_spec("pgserver")  # its binaries only: the package's own server wants a Unix socket
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("pgserver (the test extra) is not installed: run scripts/setup --test")
    POSTGRES_BIN_PATH = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    user = _unprivileged_user()
    home = Path(tempfile.mkdtemp(prefix="dealbot-pg-"))
    data, log = home / "data", home / "server.log"
    if user:
        shutil.chown(home, user)
    as_user = {"user": user, "group": _gid(user), "extra_groups": []} if user else {}
    init = subprocess.run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                           "--encoding=UTF8", "--no-sync"], capture_output=True, text=True, cwd=home, **as_user)
    if init.returncode != 0:
        pytest.fail(f"initdb failed: {init.stderr[-2000:]}")
    port = free_port()
    with open(log, "w") as out:
        if user:
            shutil.chown(log, user)
        server = subprocess.Popen(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(home),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=out, stderr=subprocess.STDOUT, cwd=home, **as_user)
    pg = Postgres(port)
    try:
        _wait_for_postgres(pg, server, log)
        yield pg
    finally:
        from bot.state import close_pools

        close_pools()
        server.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_postgres(pg: Postgres, server: subprocess.Popen, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(pg.url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"PostgreSQL did not start on 127.0.0.1:{pg.port}: {log.read_text()[-2000:]}")
            time.sleep(0.1)
