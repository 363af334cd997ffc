"""Reading documents into Articles: .txt, .md (YAML front matter) and .html files, and fetched web pages.

A source is what a user names with --source or in the configuration. Listing a source is cheap (paths and raw
bytes); parsing happens only for files whose bytes changed since the last run. Every problem with one file becomes
a ReadError that the sync reports, never an exception that stops the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from .records import Article, sha256

SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}
# Bump when parsing changes, so that unchanged files are parsed again with the new rules.
PARSER_VERSION = "2"


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


def list_files(source: str) -> list[tuple[Path, str]]:
    """The (path, path relative to the source) of every supported file in a source, sorted."""
    root = Path(source)
    if root.is_file():
        if root.suffix.lower() not in SUFFIXES:
            raise SourceError(f"{source}: not a supported file (use {', '.join(sorted(SUFFIXES))})")
        return [(root, root.name)]
    if not root.is_dir():
        raise SourceError(f"{source}: no such file or folder")
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in SUFFIXES and path.is_file():
            found.append((path, rel.as_posix()))
    return found


def read_raw(source: str, path: Path, relpath: str) -> RawDocument:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReadError(f"unreadable: {exc.strerror or exc}") from None
    return RawDocument(source=source, location=str(path), relpath=relpath, data=data)


def parse(raw: RawDocument) -> Article:
    """Turn a file's bytes into an Article, or raise ReadError saying what is wrong with it."""
    if not raw.data.strip():
        raise ReadError("empty file")
    if b"\x00" in raw.data[:8192]:
        raise ReadError("binary file, not text")
    kind = raw.kind or SUFFIXES[Path(raw.location).suffix.lower()]
    fields = _parse_html(raw.data, raw.location) if kind == "html" else _parse_text(_decode(raw.data), kind)
    for key, value in raw.hints.items():
        fields[key] = fields.get(key) or value
    text = _clean(fields.pop("text", ""))
    if len(text.split()) < 3:
        raise ReadError("no article text found")
    url = fields.get("url") or (raw.location if "://" in raw.location else None)
    title = fields.get("title") or _title_from_name(raw.relpath)
    return Article(
        doc_id=url or raw.relpath,
        source=raw.source,
        location=raw.location,
        title=" ".join(str(title).split()),
        text=text,
        raw_hash=raw.raw_hash,
        url=url,
        published=_to_date(fields.get("published")),
        outlet=_opt_str(fields.get("outlet")),
        author=_opt_str(fields.get("author")),
    )


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(f"not UTF-8 text (byte {exc.start}): re-save the file as UTF-8") from None


def _parse_text(content: str, kind: str) -> dict:
    fields: dict = {}
    if kind == "markdown" and content.startswith("---"):
        import frontmatter  # only files with front matter pay for the YAML parser
        import yaml

        try:
            post = frontmatter.loads(content)
        except yaml.YAMLError as exc:
            raise ReadError(f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from None
        fields = {k: post.metadata.get(k) for k in ("title", "url", "published", "outlet", "author")}
        content = post.content
    body, heading = _split_heading(content, kind)
    fields["title"] = fields.get("title") or heading
    fields["text"] = body
    return fields


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
        "url": doc.url,
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
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ReadError(f"published date {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _opt_str(value) -> str | None:
    return " ".join(str(value).split()) or None if value not in (None, "") else None


def _title_from_name(relpath: str) -> str:
    stem = Path(relpath).stem
    return re.sub(r"[_-]+", " ", stem).strip().capitalize() or stem
