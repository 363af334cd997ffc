import pytest

from conftest import modules_loaded_by
from ingest.settings import PACKAGE_CONFIG, SettingsError, load_settings

ROOT = PACKAGE_CONFIG.parent.parent


def test_defaults_resolve_against_the_config_file_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.data_dir == ROOT / ".dealbot"
    assert [src.location for src in s.sources] == [str(ROOT / "data" / "articles")]
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
    assert [src.location for src in s.sources] == [f"{tmp_path}/a", f"{tmp_path}/b"]


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("colection = 'x'\n", "unknown setting 'colection'"),
        ("[retrieval]\nkk = 3\n", "unknown setting 'retrieval.kk'"),
        ("[retrieval]\nk = 'many'\n", "setting 'retrieval.k' = 'many' is invalid"),
        ("sources = 'data'\n", "setting 'sources' = 'data' is invalid: expected a list of paths, URLs or source tables"),
        ("sources = ['ftp://example.com/feed']\n", "only http and https URLs can be fetched"),
        ("sources = [{url = 'https://example.com/'}]\n", "a table with a 'location' key"),
        ("sources = [{location = 'https://e.com/', max_items = 3}]\n", "unknown source option 'max_items'"),
        ("sources = [{location = 'https://e.com/', max_entries = -1}]\n", "'max_entries' must be a whole number"),
        ("[ingest]\nschedule = 'every hour'\n", "'ingest.schedule' = 'every hour' is not a cron expression"),
        ("[fetch]\nmax_bytes = 'lots'\n", "setting 'fetch.max_bytes' = 'lots' is invalid"),
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


def test_sources_mix_paths_urls_and_tables_with_options(tmp_path):
    config = tmp_path / "dealbot.toml"
    config.write_text(
        "[ingest]\nschedule = '*/30 * * * *'\n"
        "[[sources]]\nlocation = 'articles'\n"
        "[[sources]]\nlocation = 'https://news.example.com/a-story.html'\n"
        "[[sources]]\nlocation = 'https://wire.example.com/feed.xml'\nname = 'Wire'\nmax_entries = 20\n"
        "include = ['*/trade/*']\nexclude = ['*/video/*']\n"
    )
    s = load_settings(config, env={})
    local, page, feed = s.sources
    assert local.location == str(tmp_path / "articles") and not local.is_url
    assert page.is_url and page.label == "https://news.example.com/a-story.html"
    assert (feed.label, feed.max_entries) == ("Wire", 20)
    assert feed.wants("https://wire.example.com/trade/rare-earths") and not feed.wants("https://wire.example.com/sport/x")
    assert not feed.wants("https://wire.example.com/trade/video/clip")
    assert s.source(feed.location) is feed and s.source("https://other.example.com/").name == ""
    assert s.ingest.schedule == "*/30 * * * *"


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
    loaded = modules_loaded_by("bot.cli, bot.pipeline, bot.evaluate, bot.slack.app")
    assert "bot.pipeline" in loaded and {m for m in loaded if m.startswith("langchain")} == set()


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("roles = [\n", "is not valid TOML"),
        ("rolez = ['minister']\n", "unknown list 'rolez'"),
        ("roles = 'minister'\n", "'roles' must be a list of words"),
        ("roles = ['minister', 3]\n", "'roles' must be a list of words"),
        ("speech = ['said', '  ']\n", "'speech' must be a list of words"),
        ("aliases = ['china', 'beijing']\n", "'aliases' must be a list of lists of names"),
    ],
)
def test_a_broken_story_file_is_a_clear_error_naming_the_file_and_the_list(tmp_path, toml, needle):
    story = tmp_path / "story.toml"
    story.write_text(toml)
    with pytest.raises(SettingsError) as err:
        load_settings(env={"DEALBOT_STORY": str(story)})
    assert needle in str(err.value) and str(story) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_story_file_says_which_setting_names_it(tmp_path):
    with pytest.raises(SettingsError, match="story file .*nope.toml not found: set 'story' \\(or DEALBOT_STORY\\)"):
        load_settings(env={"DEALBOT_STORY": str(tmp_path / "nope.toml")})


def test_the_story_file_is_resolved_against_the_config_file_and_read_as_typed_lists(tmp_path):
    (tmp_path / "mine.toml").write_text("roles = ['premier']\naliases = [['Canada', 'Ottawa']]\n")
    config = tmp_path / "dealbot.toml"
    config.write_text("story = 'mine.toml'\n")
    s = load_settings(config, env={})
    assert s.story == tmp_path / "mine.toml"
    assert s.vocabulary.roles == ("premier",)
    assert s.vocabulary.aliases == (("canada", "ottawa"),)  # names are matched in lower case
    assert s.vocabulary.speech == ()  # a list left out is empty: the check it feeds never fires
    shipped = load_settings(env={}).vocabulary
    assert ("china", "chinese", "beijing", "prc") in shipped.aliases and "secretary" in shipped.roles
