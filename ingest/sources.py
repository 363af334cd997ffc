"""Reading documents into Articles: .txt, .md (YAML front matter) and .html files, and fetched web pages.

A source is what a user names with --source or in the configuration. Listing a source is cheap (paths and raw
bytes); parsing happens only for files whose bytes changed since the last run. Every problem with one file becomes
a ReadError that the sync reports, never an exception that stops the run.
"""

from __future__ import annotations

import codecs
import errno
import functools
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from .records import Article, sha256
from .settings import IngestSettings

SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}
# Bump when parsing changes, so that unchanged files are parsed again with the new rules.
PARSER_VERSION = "3"


class ReadError(Exception):
    """One document could not be read; the message says why, for the run report."""


class SourceError(Exception):
    """A whole source is unusable (missing, not a supported file)."""


@dataclass(frozen=True)
class RawDocument:
    """A document's bytes as found: a file's content, or a web page's body.

    `kind` is "text", "markdown" or "html" (for files, from the suffix); `hints` are what a feed said of the entry
    (title, published), used when the page itself does not say.
    """

    source: str
    location: str
    relpath: str
    data: bytes
    kind: str = ""
    hints: dict = field(default_factory=dict)

    @property
    def raw_hash(self) -> str:
        return sha256(PARSER_VERSION.encode() + b"\0" + self.data)


@dataclass(frozen=True)
class ListedFile:
    """A file found in a folder source: `path` to open, `real` what it resolves to (inside `root`, the source's real
    folder), and `relpath` / `location` as shown and stored (bytes that are not UTF-8 and control characters in the
    name escaped, so every name can be stored and printed)."""

    path: Path
    real: Path
    root: Path
    relpath: str
    location: str


@dataclass
class Listing:
    """What a source holds: its files, and why anything that looks like an article was not listed."""

    files: list[ListedFile] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (location, reason)


def list_files(source: str) -> list[tuple[Path, str]]:
    """The (path, path relative to the source) of every supported file in a source, sorted."""
    return [(f.path, f.relpath) for f in scan(source).files]


def scan(source: str) -> Listing:
    """List a file or folder source: only what lies inside it once symlinks are resolved, regular files only.

    Symlinks to files inside the folder are followed (a symlinked folder is not: what it leads to is listed
    under its own name); a symlink that dangles, loops or leads outside, a special file (FIFO, socket, device) named like an article, a folder named like a file and a
    folder that cannot be listed are each reported with a reason. Raises SourceError when the source itself is
    unusable.
    """
    if printable(source) != source:
        raise SourceError(f"{printable(source)}: the path has bytes that are not UTF-8 or control characters: rename it")
    root = Path(source)
    try:
        real_root = root.resolve(strict=True)
        st = real_root.stat()
    except FileNotFoundError:
        raise SourceError(f"{source}: no such file or folder") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise SourceError(f"{source}: cannot be opened: {_why(exc)}") from None
    if stat.S_ISREG(st.st_mode):
        if root.suffix.lower() not in SUFFIXES:
            raise SourceError(f"{source}: not a supported file (use {', '.join(sorted(SUFFIXES))})")
        return Listing([ListedFile(root, real_root, real_root.parent, root.name, source)])
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{source}: not a regular file or folder")
    listing = Listing()
    _walk(root, real_root, listing)
    listing.files.sort(key=lambda f: f.relpath)
    seen: set[str] = set()
    for f in list(listing.files):
        if f.location in seen:  # two names that escape alike ("a\xff.md" and a name with the byte 0xff)
            listing.files.remove(f)
            listing.problems.append((f.location, "its escaped name is the same as another file's: rename it"))
        seen.add(f.location)
    return listing


def _walk(root: Path, real_root: Path, listing: Listing) -> None:
    visited = {_identity(real_root)}
    pending = [(root, "")]
    while pending:
        folder, rel = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            listing.problems.append((printable(str(folder)), f"cannot list the folder: {_why(exc)}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            relpath = f"{rel}{printable(entry.name)}"
            kind, real, problem = _classify(entry, path, real_root)
            location = printable(str(path))
            could_be_article = Path(entry.name).suffix.lower() in SUFFIXES
            if problem:
                if could_be_article or not Path(entry.name).suffix:
                    listing.problems.append((location, problem))
            elif kind == "folder":
                if could_be_article:
                    listing.problems.append((location, "a folder named like an article file, not a file (what it "
                                                       "holds is listed on its own)"))
                # A symlinked folder leads inside the source (else it was refused above), where its files are
                # listed under their own names: following it would only list them twice, or loop.
                if not entry.is_symlink() and _identity(real) not in visited:
                    visited.add(_identity(real))
                    pending.append((path, f"{relpath}/"))
            elif kind == "file" and could_be_article:
                listing.files.append(ListedFile(path, real, real_root, relpath, location))
            elif kind not in ("file", "folder") and could_be_article:
                listing.problems.append((location, f"not a regular file ({kind}): skipped"))


def _classify(entry: os.DirEntry, path: Path, real_root: Path) -> tuple[str, Path, str | None]:
    """(kind, resolved path, problem): kind is "file", "folder" or what special file it is."""
    try:
        if entry.is_symlink():
            try:
                real = path.resolve(strict=True)
            except FileNotFoundError:
                return "", path, f"dangling symlink (to {printable(os.readlink(path))}): nothing to read"
            except RuntimeError:
                return "", path, "symlink loop: not followed"
            if not real.is_relative_to(real_root):
                return "", real, f"symlink to {printable(str(real))}, outside the source folder: not read"
            mode = real.stat().st_mode
        else:
            real, mode = path, entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "", path, "symlink loop: not followed"
        return "", path, f"cannot be examined: {_why(exc)}"
    if stat.S_ISDIR(mode):
        return "folder", real, None
    if stat.S_ISREG(mode):
        return "file", real, None
    special = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
               stat.S_ISBLK: "a block device"}
    return next((name for test, name in special.items() if test(mode)), "not a regular file"), real, None


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]")


def printable(name: str) -> str:
    """A path as it can be stored and shown: bytes that are not UTF-8 (which Python keeps as lone surrogates) and
    control characters written as \\xNN escapes."""
    if not _UNPRINTABLE.search(name):
        return name
    return _UNPRINTABLE.sub(lambda m: f"\\x{(ord(m[0]) & 0xFF):02x}", name)


def read_raw(source: str, path: Path, relpath: str, max_bytes: int = 0, listed: ListedFile | None = None) -> RawDocument:
    """A file's bytes, refused past `max_bytes` (0: no cap) before they are read. Opened without following a
    symlink swapped in since listing, and checked to be a regular file still inside its source folder."""
    target = listed.real if listed else path
    location = listed.location if listed else str(path)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ReadError("vanished during the run (no such file)") from None
    except OSError as exc:
        raise ReadError(f"unreadable: {_why(exc)}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError("not a regular file any more: skipped")
        if listed and not _still_inside(fd, listed.root):
            raise ReadError("no longer inside the source folder: not read")
        if max_bytes and st.st_size > max_bytes:
            raise ReadError(f"too large: {st.st_size:,} bytes (limit {max_bytes:,}, ingest.max_file_bytes)")
        try:
            data = f.read(max_bytes + 1) if max_bytes else f.read()
        except OSError as exc:
            raise ReadError(f"unreadable: {_why(exc)}") from None
    if max_bytes and len(data) > max_bytes:
        raise ReadError(f"too large: over {max_bytes:,} bytes (limit, ingest.max_file_bytes)")
    return RawDocument(source=source, location=location, relpath=relpath, data=data)


def _still_inside(fd: int, root: Path) -> bool:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(root)
    except OSError:  # no /proc: the check made when listing stands
        return True


def parse(raw: RawDocument, limits: IngestSettings = IngestSettings()) -> Article:
    """Turn a file's bytes into an Article, or raise ReadError saying what is wrong with it."""
    if not raw.data.strip():
        raise ReadError("empty file")
    kind = raw.kind or SUFFIXES[Path(raw.location).suffix.lower()]
    if kind == "html":
        fields = _parse_html(_html_input(raw.data), raw.location)
    else:
        fields = _parse_text(_decode(raw.data), kind, limits)
    for key, value in raw.hints.items():
        fields[key] = fields.get(key) or value
    text = _clean(fields.pop("text", "") or "")
    if len(text.split()) < 3:
        raise ReadError("no article text found")
    url = fields.get("url") or (raw.location if "://" in raw.location else None)
    title = _short(fields.get("title"), limits.max_title_chars) or _title_from_name(raw.relpath)
    return Article(
        doc_id=url or raw.relpath,
        source=raw.source,
        location=raw.location,
        title=title,
        text=text,
        raw_hash=raw.raw_hash,
        url=url,
        published=_to_date(fields.get("published")),
        outlet=_short(fields.get("outlet"), limits.max_title_chars),
        author=_short(fields.get("author"), limits.max_title_chars),
    )


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),  # before UTF-16: its BOM begins like UTF-16's little-endian one
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


def _decode(data: bytes) -> str:
    """Text from UTF-8, or from UTF-16 / UTF-32 with a byte order mark; a NUL anywhere means binary."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise ReadError(f"not valid {name} text (byte {exc.start}) despite its byte order mark") from None
            break
    else:
        _refuse_binary(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReadError(f"not UTF-8 text (byte {exc.start}): re-save the file as UTF-8") from None
    if "\x00" in text:
        raise ReadError(f"binary file, not text (a NUL character at position {text.index(chr(0)):,})")
    if not text.strip():
        raise ReadError("empty file")
    return text


def _refuse_binary(data: bytes) -> None:
    at = data.find(b"\x00")
    if at >= 0:
        raise ReadError(f"binary file, not text (a NUL byte at offset {at:,})")


def _html_input(data: bytes) -> bytes | str:
    """What trafilatura reads: the bytes (it finds the page's charset), or text when a byte order mark says
    UTF-16 / UTF-32."""
    if any(data.startswith(bom) for bom, codec, _ in _BOMS if codec != "utf-8-sig"):
        return _decode(data)
    _refuse_binary(data)
    return data


def _parse_text(content: str, kind: str, limits: IngestSettings) -> dict:
    fields: dict = {}
    if kind == "markdown" and _FENCE.match(content):
        fields, content = front_matter(content, limits.max_front_matter_bytes)
    body, heading = _split_heading(content, kind)
    fields["title"] = fields.get("title") or heading
    fields["text"] = body
    return fields


# Front matter: a first line of exactly "---", the YAML, then a line "---" (or "...").
_FENCE = re.compile(r"---[ \t]*\r?\n")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.M)
FRONT_MATTER_KEYS = ("title", "url", "published", "outlet", "author")
MAX_URL_CHARS = 2048


def front_matter(content: str, max_bytes: int) -> tuple[dict, str]:
    """The front matter's keys that are read, checked (text where text goes, a real date), and the body after it.

    The YAML is parsed by a safe loader that refuses anchors and aliases (a few lines of them expand to gigabytes)
    and keeps dates as text, so that an impossible date is reported rather than crashing the parser.
    """
    start = _FENCE.match(content).end()
    end = _CLOSE.search(content, start, start + max_bytes + 8)
    if end is None:
        if len(content[start:].encode("utf-8", "surrogatepass")) > max_bytes:
            raise ReadError(f"front matter is larger than {max_bytes:,} bytes (ingest.max_front_matter_bytes) "
                            "or never closed by a '---' line")
        raise ReadError("front matter is not closed: no '---' line ends it")
    block = content[start : end.start()]
    if len(block.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ReadError(f"front matter is larger than {max_bytes:,} bytes (ingest.max_front_matter_bytes)")
    meta = _load_yaml(block)
    fields = {key: _checked(key, meta.get(key)) for key in FRONT_MATTER_KEYS}
    return fields, content[end.end() :].lstrip("\r\n")


def _load_yaml(block: str) -> dict:
    import yaml

    try:
        meta = yaml.load(block, Loader=_front_matter_loader())  # noqa: S506 - a SafeLoader subclass
    except ReadError:
        raise
    except yaml.YAMLError as exc:
        raise ReadError(f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ReadError("front matter is nested too deeply") from None
    except (ValueError, TypeError) as exc:  # e.g. an integer of more digits than Python converts
        raise ReadError(f"front matter has a value that cannot be read: {exc}") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ReadError(f"front matter must be keys and values (a YAML mapping), not {_kind(meta)}")
    return meta


@functools.cache
def _front_matter_loader():
    import yaml

    class FrontMatterLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise ReadError("front matter uses a YAML alias (*name): aliases are not allowed")
            if getattr(self.peek_event(), "anchor", None):
                raise ReadError("front matter uses a YAML anchor (&name): anchors are not allowed")
            return super().compose_node(parent, index)

    # Dates stay text: checked by _to_date, so "2025-02-30" is a reason, not a crash inside the YAML parser.
    FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
    return FrontMatterLoader


def _checked(key: str, value):
    if value is None or value == "":
        return None
    if key == "published":
        if not isinstance(value, str):
            raise ReadError(f"front matter 'published' must be a date (YYYY-MM-DD), not {_kind(value)}")
        return _to_date(value)
    if not isinstance(value, str):
        hint = " (put it in quotes)" if isinstance(value, (bool, int, float, date)) else ""
        raise ReadError(f"front matter '{key}' must be text, not {_kind(value)}{hint}")
    if key == "url" and not _is_web_url(value.strip()):
        raise ReadError(f"front matter 'url' must be an http(s) URL of at most {MAX_URL_CHARS} characters")
    return value


def _is_web_url(value: str) -> bool:
    return len(value) <= MAX_URL_CHARS and re.match(r"https?://[^\s/?#]+", value, re.I) is not None


def _kind(value) -> str:
    kinds = ((str, "text"), (bool, "true/false"), ((int, float), "a number"), (bytes, "binary data"), (list, "a list"),
             (dict, "a mapping"), (set, "a set"), ((date, datetime), "a date object"))
    return next((name for t, name in kinds if isinstance(value, t)), f"a {type(value).__name__}")


_HEADING = re.compile(r"\A\s*#{1,6}\s+(?P<title>[^\n]+)\n")


def _split_heading(content: str, kind: str) -> tuple[str, str | None]:
    """A leading markdown heading, or a short first line without final punctuation, is the title."""
    if kind == "markdown" and (m := _HEADING.match(content)):
        return content[m.end() :], m["title"].strip()
    first, _, rest = content.strip().partition("\n")
    first = first.strip()
    if rest.strip() and len(first) <= 120 and not re.search(r"[.!?\"”:;,]$", first):
        return rest, first
    return content, None


def _parse_html(data: bytes, location: str) -> dict:
    import trafilatura

    doc = trafilatura.bare_extraction(
        data,
        url=location if "://" in location else None,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        # Only a date the page declares (meta tags, structured data, the URL): a guess from "Copyright 2025" in a
        # footer is worse than the date a feed gives for the entry.
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if doc is None:
        raise ReadError("no article text found in the HTML")
    text = doc.text or ""
    if doc.title and text.startswith(doc.title + "\n"):  # the headline is the title, not a sentence to cite
        text = text[len(doc.title) + 1 :]
    return {
        "text": text,
        "title": doc.title,
        "url": doc.url if doc.url and _is_web_url(doc.url) else None,  # a page's odd canonical link is not a citation
        "published": doc.date,
        "outlet": doc.sitename,
        "author": doc.author,
    }


def _clean(text: str) -> str:
    """Normalise line endings and blank runs; keep the words exactly, since citations quote them."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _to_date(value) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text[:10]):
        raise ReadError(f"published date {text[:40]!r} is not a real date") from None
    raise ReadError(f"published date {text[:40]!r} is not an ISO date (YYYY-MM-DD)") from None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _short(value, limit: int) -> str | None:
    """One line of text (control characters dropped), cut at a word to at most `limit` characters, "…" marking
    the cut."""
    if value in (None, ""):
        return None
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    if len(text) > limit:
        cut = text[: max(1, limit - 1)]
        space = cut.rfind(" ")
        text = (cut[:space] if space > limit // 2 else cut).rstrip() + "…"
    return text or None


def _title_from_name(relpath: str) -> str:
    stem = Path(relpath).stem
    return re.sub(r"[_-]+", " ", stem).strip().capitalize() or stem
