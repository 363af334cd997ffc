import pytest

from ingest.settings import PACKAGE_CONFIG, SettingsError, load_settings

ROOT = PACKAGE_CONFIG.parent.parent


def test_defaults_resolve_against_the_config_file_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.data_dir == ROOT / ".dealbot"
    assert s.sources == (str(ROOT / "data" / "articles"),)
    assert s.chroma_url == "" and not s.server_mode
    assert s.retrieval.k >= 1 and 0 < s.retrieval.min_score < 1


def test_environment_overrides_top_level_and_section_keys(tmp_path):
    s = load_settings(
        env={
            "DEALBOT_DATA_DIR": str(tmp_path),
            "DEALBOT_CHROMA_URL": "http://127.0.0.1:9",
            "DEALBOT_RETRIEVAL_K": "3",
            "DEALBOT_RETRIEVAL_MIN_SCORE": "0.5",
            "DEALBOT_SOURCES": f"{tmp_path}/a,{tmp_path}/b",
        }
    )
    assert s.data_dir == tmp_path and s.chroma_path == tmp_path / "chroma"
    assert s.server_mode
    assert s.retrieval.k == 3 and s.retrieval.min_score == 0.5
    assert s.sources == (f"{tmp_path}/a", f"{tmp_path}/b")


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("colection = 'x'\n", "unknown setting 'colection'"),
        ("[retrieval]\nkk = 3\n", "unknown setting 'retrieval.kk'"),
        ("[retrieval]\nk = 'many'\n", "setting 'retrieval.k' = 'many' is invalid"),
        ("sources = 'data'\n", "setting 'sources' = 'data' is invalid: expected a list of strings"),
        ("retrieval = 3\n", "setting 'retrieval' must be a [retrieval] table"),
        ("k = [\n", "not valid TOML"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_key(tmp_path, toml, needle):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError) as err:
        load_settings(config, env={})
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(SettingsError, match="environment variable DEALBOT_RETRIEVAL_K = 'x' is invalid"):
        load_settings(env={"DEALBOT_RETRIEVAL_K": "x"})


def test_missing_config_file_says_how_to_fix(tmp_path):
    with pytest.raises(SettingsError, match="--config FILE or set DEALBOT_CONFIG"):
        load_settings(tmp_path / "nope.toml", env={})


def test_every_key_of_the_default_config_is_documented():
    lines = PACKAGE_CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), f"undocumented key: {line}"


def test_llm_settings_come_from_the_llm_section_and_its_environment_variables():
    s = load_settings(env={})
    assert s.llm.model == "" and s.llm.base_url == "" and s.llm.timeout_seconds > 0
    s = load_settings(env={"DEALBOT_LLM_MODEL": "ollama:llama3.2", "DEALBOT_LLM_BASE_URL": "http://127.0.0.1:11434",
                           "DEALBOT_LLM_TIMEOUT_SECONDS": "7.5", "DEALBOT_LLM_MAX_TOKENS": "300",
                           "DEALBOT_SLACK_STREAM_INTERVAL_SECONDS": "2"})
    assert (s.llm.model, s.llm.base_url, s.llm.timeout_seconds, s.llm.max_tokens) == (
        "ollama:llama3.2", "http://127.0.0.1:11434", 7.5, 300)
    assert s.slack.stream_interval_seconds == 2.0
    with pytest.raises(SettingsError, match="DEALBOT_LLM_TEMPERATURE = 'hot' is invalid"):
        load_settings(env={"DEALBOT_LLM_TEMPERATURE": "hot"})


def test_the_offline_path_never_imports_langchain():
    import subprocess
    import sys

    code = ("import sys, bot.cli, bot.pipeline, bot.evaluate, bot.slack.app; "
            "print(sorted(m for m in sys.modules if m.startswith('langchain')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
