"""The one typed settings object: defaults from config/dealbot.toml, overridden by DEALBOT_* environment variables.

A key `name` at the top of the file is overridden by `DEALBOT_NAME`; a key `name` in section `[sec]` by
`DEALBOT_SEC_NAME`. Relative paths in a config file are resolved against the folder that holds the file, so the
defaults work from any working directory. Settings are built once, at the entry point, and passed down.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "dealbot.toml"


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
class SlackSettings:
    api_url: str = "https://slack.com/api/"
    allowed_channels: tuple[str, ...] = ()
    max_question_chars: int = 1000
    workers: int = 4
    stream_interval_seconds: float = 1.0


@dataclass(frozen=True)
class LLMSettings:
    model: str = ""  # LangChain's "provider:model"; empty means the offline (extractive) answer
    base_url: str = ""
    temperature: float = 0.0
    max_tokens: int = 400
    timeout_seconds: float = 30.0
    max_retries: int = 1


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".dealbot")
    chroma_url: str = ""
    collection: str = "dealbot"
    sources: tuple[str, ...] = ()
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)

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
    return _build(Settings, raw, env, prefix="", base=path.resolve().parent)


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
        if hint == tuple[str, ...]:
            if from_env:
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError("a list of strings")
            if key != "sources":
                return tuple(value)
            return tuple(v if "://" in v else str(_resolve(v, base)) for v in value)
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
    except (TypeError, ValueError) as exc:
        expected = str(exc) if isinstance(exc, TypeError) else f"a {hint.__name__}"
        raise SettingsError(f"{where} = {value!r} is invalid: expected {expected}") from None
    raise AssertionError(f"no coercion for {key}: {hint}")


def _resolve(value: str, base: Path) -> Path:
    if not isinstance(value, str):
        raise TypeError("a path string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
