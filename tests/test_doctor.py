"""`dealbot doctor` as a user runs it: a real process against the fake Slack Web API, the fake news site and the fake
LLM on 127.0.0.1, and a real index."""

from __future__ import annotations

import json

import pytest

from bot.doctor import Check, render
from conftest import OPENAI_KEY, SAMPLE, run_cli
from news_site import NewsSite, article_page
from slack_fakes import FakeSlackAPI

BOT_TOKEN = "xoxb-doctor-0123456789"
APP_TOKEN = "xapp-1-doctor-0123456789"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture(scope="module")
def fake():
    with FakeSlackAPI() as api:
        yield api


@pytest.fixture(scope="module")
def site():
    with NewsSite() as s:
        s.put("/trade/deal.html", article_page("A fixture page for the doctor", ["Test fixture text."] * 3,
                                               published="2025-06-27", author="Fixture", canonical=None))
        yield s


def doctor(env: dict, *args: str):
    r = run_cli("doctor", *args, env=env, timeout=120)
    return r, r.stdout + r.stderr


def test_every_check_passes_on_a_working_deployment(sample_pipeline, fake, site, fake_llm):
    env = {
        "DEALBOT_DATA_DIR": str(sample_pipeline.settings.data_dir),  # a reader beside the session's reader
        "DEALBOT_SOURCES": f"{SAMPLE},{site.url('/trade/deal.html')}",
        "DEALBOT_SLACK_API_URL": fake.base_url,
        "DEALBOT_LLM_MODEL": "openai:cooperative", "DEALBOT_LLM_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_SIGNING_SECRET": SECRET,
    }
    r, out = doctor(env)
    assert r.returncode == 0, out
    lines = r.stdout.splitlines()
    assert all(line.startswith("✓") for line in lines), out
    names = [line[2:].split(": ", 1)[0] for line in lines]
    assert names == ["configuration", "slack bot token", "slack app token", "slack signing secret", "state database",
                     "chroma", "index", f"source {SAMPLE}", f"source {site.url('/trade/deal.html')}", "llm"]
    assert "passages; last ingest" in r.stdout
    assert [c.method for c in fake.calls_to("auth.test")] and fake.calls_to("apps.connections.open")
    assert fake.calls_to("auth.test")[-1].headers.get("authorization") == f"Bearer {BOT_TOKEN}"
    assert fake_llm.requests  # the tiny prompt reached the model
    for secret in (BOT_TOKEN, APP_TOKEN, SECRET, OPENAI_KEY):
        assert secret not in out


def test_each_failure_is_a_cross_with_its_fix_and_exit_1(tmp_path, fake, site, fake_llm):
    fake.set_response("auth.test", {"ok": False, "error": "invalid_auth"})
    try:
        env = {
            "DEALBOT_DATA_DIR": str(tmp_path / "empty"),
            "DEALBOT_SOURCES": f"{tmp_path / 'missing'},{site.url('/gone.html')}",
            "DEALBOT_SLACK_API_URL": fake.base_url,
            "DEALBOT_FETCH_RETRIES": "0",
            "DEALBOT_LLM_MODEL": "openai:error", "DEALBOT_LLM_BASE_URL": fake_llm.base_url,
            "DEALBOT_LLM_MAX_RETRIES": "0", "OPENAI_API_KEY": OPENAI_KEY,
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "not a secret!",
        }
        r, out = doctor(env, "--json")
    finally:
        fake.set_response("auth.test", None)
    assert r.returncode == 1, out
    report = json.loads(r.stdout)
    assert report["ok"] is False and all(set(c) == {"name", "ok", "detail", "fix"} for c in report["checks"])
    checks = {c["name"]: c for c in report["checks"]}
    failed = {name for name, c in checks.items() if c["ok"] is False}
    assert failed == {"slack bot token", "slack signing secret", "index", f"source {tmp_path / 'missing'}",
                      f"source {site.url('/gone.html')}", "llm"}
    assert "invalid_auth" in checks["slack bot token"]["detail"]
    assert "HTTP 404" in checks[f"source {site.url('/gone.html')}"]["detail"]
    assert checks["index"]["detail"] == "empty" and "dealbot ingest" in checks["index"]["fix"]
    assert checks["slack app token"]["ok"] is None  # HTTP mode: not a failure
    assert all(c["fix"] for c in checks.values() if c["ok"] is False)
    for secret in (BOT_TOKEN, "not a secret!", OPENAI_KEY):  # the fake LLM's error echoes the key it was sent
        assert secret not in out

    crosses = [line for line in render([Check(**c) for c in report["checks"]]).splitlines() if line.startswith("✗")]
    assert len(crosses) == 6 and all(" → " in line for line in crosses)  # the text form: each with its fix


def test_an_invalid_configuration_is_the_first_failed_check(tmp_path):
    r, out = doctor({"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_STATE_URL": "mysql://db/dealbot"})
    assert r.returncode == 1
    assert r.stdout.startswith("✗ configuration: setting 'state_url' must be empty")
