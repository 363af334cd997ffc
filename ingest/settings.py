"""The one typed settings object: defaults from config/dealbot.toml, overridden by DEALBOT_* environment variables.

A key `name` at the top of the file is overridden by `DEALBOT_NAME`; a key `name` in section `[sec]` by
`DEALBOT_SEC_NAME`. Relative paths in a config file are resolved against the folder that holds the file, so the
defaults work from any working directory. Settings are built once, at the entry point, and passed down.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "dealbot.toml"
PACKAGE_STORY = PACKAGE_CONFIG.parent / "story.toml"


class SettingsError(ValueError):
    """A setting is missing, unknown or malformed; the message names the key and the fix."""


@dataclass(frozen=True)
class ChunkingSettings:
    max_tokens: int = 200
    overlap_sentences: int = 1


@dataclass(frozen=True)
class EmbeddingSettings:
    batch_size: int = 64


@dataclass(frozen=True)
class RetrievalSettings:
    k: int = 8
    min_score: float = 0.19


@dataclass(frozen=True)
class AskSettings:
    max_question_chars: int = 1000  # longer questions are cut at a word, with a note (CLI and Slack alike)


@dataclass(frozen=True)
class SlackSettings:
    api_url: str = "https://slack.com/api/"
    allowed_channels: tuple[str, ...] = ()
    max_question_chars: int = 0  # 0: ask.max_question_chars
    workers: int = 4
    stream_interval_seconds: float = 1.0
    api_timeout_seconds: float = 10.0  # each Web API call, and each post to a response URL
    delivery_window_seconds: float = 600.0  # how long an undelivered reply is retried
    delivery_backoff_seconds: float = 1.0  # first wait before a retry, doubled each time (at most 60 s)
    max_blocks: int = 50  # Slack's limit per message
    max_section_chars: int = 3000  # Slack's limit per section
    max_title_chars: int = 200  # an article's title as shown in the sources
    max_request_bytes: int = 1_000_000  # larger requests are refused before they are read


@dataclass(frozen=True)
class LLMSettings:
    model: str = ""  # LangChain's "provider:model"; empty means the offline (extractive) answer
    base_url: str = ""
    temperature: float = 0.0
    max_tokens: int = 400
    timeout_seconds: float = 30.0
    max_retries: int = 1


@dataclass(frozen=True)
class SourceSpec:
    """One configured source: a file, a folder, an article page URL or a feed URL, with its options.

    `include` / `exclude` are shell-style patterns (`*` matches anything) matched against each document's URL or
    path; `max_entries` caps how many of a feed's entries are read (0: all).
    """

    location: str
    name: str = ""
    max_entries: int = 0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def is_url(self) -> bool:
        return "://" in self.location

    @property
    def label(self) -> str:
        return self.name or self.location

    def wants(self, location: str) -> bool:
        """Whether a document at `location` passes the include / exclude patterns."""
        from fnmatch import fnmatchcase

        if self.include and not any(fnmatchcase(location, p) for p in self.include):
            return False
        return not any(fnmatchcase(location, p) for p in self.exclude)


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = "dealbot/0.1 (news question-answering bot; article ingest)"
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_bytes: int = 5_000_000
    retries: int = 3
    backoff_seconds: float = 1.0
    deadline_seconds: float = 60.0  # one URL: every attempt, redirect, back-off and the whole body
    source_deadline_seconds: float = 900.0  # one web source: a feed and all of its pages


@dataclass(frozen=True)
class IngestSettings:
    schedule: str = ""
    max_file_bytes: int = 10_000_000
    max_front_matter_bytes: int = 65_536
    max_title_chars: int = 300


@dataclass(frozen=True)
class DigestSettings:
    channels: tuple[str, ...] = ()  # Slack channel ids the digest of new articles goes to; empty: no digest
    max_items: int = 8  # articles listed in one digest message; past it, "and N more"


@dataclass(frozen=True)
class Vocabulary:
    """The story's words (config/story.toml says what each list is for): the bot's reading of questions and its
    checks of sentences use them. An empty list turns the check it feeds off."""

    aliases: tuple[tuple[str, ...], ...] = ()
    roles: tuple[str, ...] = ()
    person_nouns: tuple[str, ...] = ()
    organisation_nouns: tuple[str, ...] = ()
    number_nouns: tuple[str, ...] = ()
    place_nouns: tuple[str, ...] = ()
    figure_nouns: tuple[str, ...] = ()
    summary: tuple[str, ...] = ()
    institutions: tuple[str, ...] = ()
    speech: tuple[str, ...] = ()
    saying: tuple[str, ...] = ()
    acts: tuple[str, ...] = ()
    reactions: tuple[str, ...] = ()
    agreeing: tuple[str, ...] = ()
    agreement: tuple[str, ...] = ()
    deciding: tuple[str, ...] = ()
    decision: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    money_questions: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()


def load_vocabulary(path: Path) -> Vocabulary:
    """The vocabulary in the TOML file `path`, or a SettingsError naming the file, the key and what is expected."""
    try:
        stat = path.stat()
    except OSError:
        raise SettingsError(f"story file {path} not found: set 'story' (or DEALBOT_STORY) to a file like config/story.toml") from None
    return _vocabulary(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _vocabulary(path: Path, _mtime: int, _size: int) -> Vocabulary:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"story file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"story file {path} is not valid TOML: {exc}") from None
    known = [f.name for f in dataclasses.fields(Vocabulary)]
    if unknown := sorted(set(raw) - set(known)):
        raise SettingsError(f"story file {path}: unknown list '{unknown[0]}' (known: {', '.join(known)})")
    values = {}
    for key, value in raw.items():
        if key == "aliases":
            if not isinstance(value, list) or not all(_words(group) for group in value):
                raise SettingsError(f"story file {path}: 'aliases' must be a list of lists of names, e.g. [[\"china\", \"beijing\"]]")
            values[key] = tuple(tuple(name.lower() for name in group) for group in value)
        elif not _words(value):
            raise SettingsError(f"story file {path}: '{key}' must be a list of words, e.g. [\"word\", \"other word\"]")
        else:
            values[key] = tuple(value)
    return Vocabulary(**values)


def _words(value) -> bool:
    return isinstance(value, list) and all(isinstance(w, str) and w.strip() for w in value)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".dealbot")
    chroma_url: str = ""
    collection: str = "dealbot"
    story: Path = PACKAGE_STORY  # the story's vocabulary (a TOML file of word lists)
    sources: tuple[SourceSpec, ...] = ()
    ingest: IngestSettings = field(default_factory=IngestSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    ask: AskSettings = field(default_factory=AskSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    state_url: str = ""  # where shared state lives: empty for the SQLite files in data_dir, or postgresql://...
    log_format: str = "text"  # "text" or "json" (one object per line)
    log_questions: bool = False  # put question text in log lines

    def source(self, location: str) -> SourceSpec:
        """The configured source at `location` with its options, or a bare one for a location given ad hoc."""
        return next((s for s in self.sources if s.location == location), SourceSpec(location))

    @property
    def vocabulary(self) -> Vocabulary:
        return load_vocabulary(self.story)

    @property
    def server_mode(self) -> bool:
        return bool(self.chroma_url)

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.sqlite"

    @property
    def slack_db(self) -> Path:
        return self.data_dir / "slack.sqlite"

    @property
    def slack_question_chars(self) -> int:
        """The question cap in Slack: slack.max_question_chars, else the one every surface uses."""
        return self.slack.max_question_chars or self.ask.max_question_chars


_PATH_KEYS = {"data_dir"}


def load_settings(config: Path | None = None, env: typing.Mapping[str, str] | None = None) -> Settings:
    """Build Settings from a TOML file (default: DEALBOT_CONFIG, else the repo's config/dealbot.toml) and env."""
    env = os.environ if env is None else env
    path = Path(config or env.get("DEALBOT_CONFIG") or PACKAGE_CONFIG)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"config file {path} not found: pass --config FILE or set DEALBOT_CONFIG") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    settings = _build(Settings, raw, env, prefix="", base=path.resolve().parent)
    _check_schedule(settings.ingest.schedule)
    _check_digest(settings.digest)
    load_vocabulary(settings.story)  # a broken story file fails here, at the start, not on the first question
    _check_operations(settings)
    return settings


def _check_operations(settings: Settings) -> None:
    if settings.state_url and not settings.state_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            "setting 'state_url' must be empty (the SQLite files in data_dir) or a postgresql:// URL, "
            "e.g. postgresql://dealbot@db.example.com/dealbot (the password in PGPASSWORD or ~/.pgpass)"
        )
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"setting 'log_format' = {settings.log_format!r} must be 'text' or 'json'")


def _check_schedule(expression: str) -> None:
    if not expression:
        return
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise SettingsError(
            f"setting 'ingest.schedule' = {expression!r} is not a cron expression (e.g. '*/30 * * * *')"
        )


# A digest message holds one section per article, within Slack's 50 blocks a message.
MAX_DIGEST_ITEMS = 40


def _check_digest(digest: DigestSettings) -> None:
    import re

    for channel in digest.channels:
        if not re.fullmatch(r"[CG][A-Z0-9]{2,}", channel):
            raise SettingsError(
                f"setting 'digest.channels': {channel!r} is not a Slack channel id: use the id (C0123ABCD), shown at "
                "the bottom of the channel's details, not its name"
            )
    if not 1 <= digest.max_items <= MAX_DIGEST_ITEMS:
        raise SettingsError(f"setting 'digest.max_items' = {digest.max_items} must be between 1 and {MAX_DIGEST_ITEMS}")


def source_spec(value, base: Path, where: str) -> SourceSpec:
    """A SourceSpec from a configured string or table; paths resolved against `base`, URLs checked."""
    if isinstance(value, str):
        value = {"location": value}
    if not isinstance(value, dict) or not isinstance(value.get("location"), str) or not value["location"].strip():
        raise SettingsError(f"{where}: each source is a path or URL, or a table with a 'location' key")
    known = {f.name for f in dataclasses.fields(SourceSpec)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise SettingsError(f"{where}: unknown source option '{unknown[0]}' (known: {', '.join(sorted(known))})")
    location = value["location"].strip()
    if "://" in location:
        from urllib.parse import urlparse

        url = urlparse(location)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SettingsError(f"{where}: {location!r}: only http and https URLs can be fetched")
    else:
        location = str(_resolve(location, base))
    name, entries = value.get("name", ""), value.get("max_entries", 0)
    patterns = {k: value.get(k, []) for k in ("include", "exclude")}
    if not isinstance(name, str):
        raise SettingsError(f"{where}: source 'name' must be a string")
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 0:
        raise SettingsError(f"{where}: source 'max_entries' must be a whole number, 0 for all")
    for key, pats in patterns.items():
        if not isinstance(pats, list) or not all(isinstance(p, str) for p in pats):
            raise SettingsError(f"{where}: source '{key}' must be a list of patterns")
    return SourceSpec(location, name, entries, tuple(patterns["include"]), tuple(patterns["exclude"]))


def _build(cls: type, raw: dict, env: typing.Mapping[str, str], prefix: str, base: Path):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        key = prefix + unknown[0]
        raise SettingsError(f"unknown setting '{key}': remove it (known here: {', '.join(sorted(known))})")
    values = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            section = raw.get(f.name, {})
            if not isinstance(section, dict):
                raise SettingsError(f"setting '{key}' must be a [{key}] table")
            values[f.name] = _build(hint, section, env, prefix=f"{key}.", base=base)
            continue
        env_name = "DEALBOT_" + key.replace(".", "_").upper()
        if env_name in env:
            values[f.name] = _coerce(key, hint, env[env_name], f"environment variable {env_name}", Path.cwd())
        elif f.name in raw:
            values[f.name] = _coerce(key, hint, raw[f.name], f"setting '{key}'", base)
    return cls(**values)


def _coerce(key: str, hint, value, where: str, base: Path):
    from_env = isinstance(value, str) and where.startswith("environment")
    try:
        if hint is Path:
            return _resolve(value, base)
        if hint == tuple[SourceSpec, ...]:
            if from_env:
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise TypeError("a list of paths, URLs or source tables")
            return tuple(source_spec(v, base, f"{where}, item {i + 1}") for i, v in enumerate(value))
        if hint == tuple[str, ...]:
            if from_env:
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError("a list of strings")
            return tuple(value)
        if hint is bool:
            if from_env:
                return value.strip().lower() in {"1", "true", "yes", "on"}
            if not isinstance(value, bool):
                raise TypeError("true or false")
            return value
        if hint in (int, float):
            if isinstance(value, bool):
                raise TypeError(f"a number ({hint.__name__})")
            number = hint(value)
            if number < 0:
                raise TypeError("a number that is not negative")
            return number
        if hint is str:
            if not isinstance(value, str):
                raise TypeError("a string")
            return value
    except SettingsError:
        raise
    except (TypeError, ValueError) as exc:
        expected = str(exc) if isinstance(exc, TypeError) else f"a {hint.__name__}"
        raise SettingsError(f"{where} = {value!r} is invalid: expected {expected}") from None
    raise AssertionError(f"no coercion for {key}: {hint}")


def _resolve(value: str, base: Path) -> Path:
    if not isinstance(value, str):
        raise TypeError("a path string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
