"""The `dealbot` command as a user runs it: real processes, real model, real embedded Chroma in a temp dir."""

import json
import os

import pytest

from conftest import SAMPLE, run_cli
from ingest.lock import WriterLock

CITATION_KEYS = {"n", "doc_id", "title", "outlet", "source", "url", "published", "quote"}


@pytest.fixture(scope="module")
def data_env(tmp_path_factory):
    data = tmp_path_factory.mktemp("cli") / "data"
    return {"DEALBOT_DATA_DIR": str(data)}


@pytest.fixture(scope="module")
def ingested(data_env):
    r = run_cli("ingest", "--json", env=data_env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_ingest_json_report_has_the_contract_keys(ingested):
    for key in ("added", "updated", "unchanged", "removed", "failed", "passages_embedded", "seconds", "failures"):
        assert key in ingested
    assert ingested["added"] == 1 and ingested["failed"] == 0 and ingested["passages_embedded"] > 0
    assert ingested["sources"] == [str(SAMPLE)]


def test_ask_prints_answer_then_sources(ingested, data_env):
    r = run_cli("ask", "When was the deal signed?", env=data_env)
    assert r.returncode == 0, r.stderr
    body, sources = r.stdout.split("\n\n", 1)
    assert body.rstrip().endswith("[1]")
    assert "signed" in body
    assert sources.startswith("[1] White House announces trade deal with China on rare earth exports — The Hill, 2025-06-27")
    assert "data/articles/the-hill-2025-06-27.md" in sources


def test_ask_from_stdin_answers_each_line_as_json(ingested, data_env):
    questions = "When was the deal signed?\n\nWhat is the capital of Australia?\nWhat share of rare earths comes from China?\n"
    r = run_cli("ask", "--json", env=data_env, input=questions)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["question"] for x in lines] == [  # one line per input line, the blank one too
        "When was the deal signed?",
        "",
        "What is the capital of Australia?",
        "What share of rare earths comes from China?",
    ]
    signed, blank, capital, share = lines
    assert not blank["answered"] and blank["reason"] == "the question is empty"
    assert signed["answered"] and "[1]" in signed["answer"]
    assert CITATION_KEYS <= set(signed["citations"][0])
    assert signed["citations"][0]["quote"] in signed["answer"]
    assert signed["citations"][0]["published"] == "2025-06-27"
    assert set(signed["timings_ms"]) >= {"retrieve", "compose", "total"}
    assert not capital["answered"] and capital["citations"] == []
    assert capital["answer"] == "I couldn't find a direct answer in the articles." and capital["related"] == []
    assert "Sixty percent" in share["answer"]


def test_status_reports_the_index(ingested, data_env):
    r = run_cli("status", "--json", env=data_env)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["documents"] == 1
    assert info["passages"] == ingested["passages_embedded"]
    assert info["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    [source] = info["sources"]
    assert (source["location"], source["kind"], source["documents"], source["configured"]) == (str(SAMPLE), "folder", 1, True)
    assert source["last_run"]["added"] == 1 and source["last_run"]["error"] is None
    assert info["last_run"]["added"] == 1
    assert info["llm_model"] is None


def test_bad_setting_is_a_one_line_error(tmp_path):
    r = run_cli("status", env={"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_RETRIEVAL_K": "lots"})
    assert r.returncode == 1
    assert r.stderr.strip() == "Error: environment variable DEALBOT_RETRIEVAL_K = 'lots' is invalid: expected a int"


def test_unreachable_chroma_server_is_a_one_line_error(tmp_path):
    r = run_cli("ingest", env={"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_CHROMA_URL": "http://127.0.0.1:9"})
    assert r.returncode == 1
    assert "cannot reach the Chroma server at http://127.0.0.1:9" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_every_source_failing_exits_non_zero(tmp_path):
    r = run_cli("ingest", "--json", "--source", str(tmp_path / "missing"), env={"DEALBOT_DATA_DIR": str(tmp_path / "d")})
    assert r.returncode == 1
    report = json.loads(r.stdout.splitlines()[-1])
    assert report["failed"] == 1 and "no such file or folder" in report["failures"][0]["reason"]


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with WriterLock(tmp_path):
        r = run_cli("ingest", env={"DEALBOT_DATA_DIR": str(tmp_path)})
    assert r.returncode == 1
    assert f"pid {os.getpid()}" in r.stderr and "writing to the index" in r.stderr


def test_ask_before_ingest_says_what_to_do(tmp_path):
    r = run_cli("ask", "When was the deal signed?", env={"DEALBOT_DATA_DIR": str(tmp_path)})
    assert r.returncode == 1 and "run `dealbot ingest` first" in r.stderr


def test_config_option_points_at_another_file(tmp_path):
    config = tmp_path / "other.toml"
    config.write_text('data_dir = "state"\nsources = ["nowhere"]\n')
    r = run_cli("--config", str(config), "ingest", "--json")
    assert r.returncode == 1, "its only source is missing"
    report = json.loads(r.stdout.splitlines()[-1])
    assert report["sources"] == [str(tmp_path / "nowhere")]
    assert (tmp_path / "state" / "state.sqlite").exists(), "relative paths resolve against the config file's folder"
    bad = run_cli("--config", str(tmp_path / "missing.toml"), "status")
    assert bad.returncode == 1 and "not found" in bad.stderr
