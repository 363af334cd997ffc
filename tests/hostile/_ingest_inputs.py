"""Hostile files for the ingest tests, each built by the test itself (nothing binary is checked in), with what the
ingest must make of it. Every article text here is an invented test fixture.

Import from a test module in this folder with `from _ingest_inputs import ...` (pytest puts this folder on
sys.path for its test modules; `ensure_importable()` does it for anything else).
"""

from __future__ import annotations

import codecs
import ctypes
import gzip
import os
import random
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent

# What no answer, passage or report may ever contain: it lives outside every source folder.
SECRET = "ORCHID-7731-SECRET-LAUNCH-CODE"


def ensure_importable() -> None:
    for folder in (HERE, TESTS):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


# --- fixture text: every stored case needs words of its own, or the ingest rightly takes it for a copy ----------

_SUBJECTS = ["The licence office", "A customs official", "The fixture ministry", "An exporter in Ganzhou",
             "A magnet maker", "The trade envoy", "A port authority", "An industry group", "The review panel",
             "A refinery manager", "The shipping agent", "A procurement lead"]
_VERBS = ["approved", "delayed", "reviewed", "counted", "questioned", "shipped", "inspected", "listed", "recorded",
          "flagged", "returned", "scheduled"]
_OBJECTS = ["applications for dysprosium", "cargo of terbium oxide", "licences for neodymium magnets",
            "samples of yttrium", "forms for gallium exports", "crates of germanium", "permits for samarium",
            "orders of lanthanum", "reports on cerium stocks", "invoices for scandium"]
_WHEN = ["on a Monday in June", "late in the spring", "before the Geneva round", "after the London framework",
         "during the autumn review", "in the first week of July", "ahead of the Busan meeting", "at the end of May"]


def fixture_text(seed: str, sentences: int = 6) -> str:
    """Sentences of invented fixture news, different for every seed."""
    rng = random.Random(seed)
    out = [f"This is test fixture text {seed!r}, written for the hostile-input tests."]
    for _ in range(sentences):
        out.append(f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.randint(2, 9999)} "
                   f"{rng.choice(_OBJECTS)} {rng.choice(_WHEN)}.")
    return " ".join(out)


def md(front: str, body: str) -> bytes:
    return f"---\n{front}\n---\n{body}\n".encode("utf-8")


# --- the cases --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile entry in a folder: `name` (str, or bytes for a name that is not UTF-8), how to make it, and what
    the ingest must make of it: "fail" with `reason` in its report line, "stored" (with `check` on its stored
    metadata), "copy" (stored as another document's alternate), "ignored" (neither stored nor reported) or
    "collides" (two files whose names escape alike: one stored, the other reported under the same name)."""

    id: str
    name: str | bytes
    build: Callable[[Path], None]
    expect: str
    reason: str = ""
    check: Callable[[list[dict]], None] | None = None
    also_stored: tuple[str, ...] = ()  # relpaths of articles the case brings along (inside a folder it makes)
    also_failed: tuple[str, ...] = ()  # relpaths of other entries it makes that are reported too
    needs_root: bool = False  # makes a device node


def write(data: bytes | str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    return build


def symlink(target: str | Callable[[Path], str]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        os.symlink(target(path) if callable(target) else target, path)

    return build


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # the socket file stays after the socket object is gone
    s.close()


def _device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # like /dev/null


def _locked(data: bytes) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.write_bytes(data)
        path.chmod(0)

    return build


def _closed_folder(path: Path) -> None:
    path.mkdir()
    (path / "inside.md").write_bytes(md("title: Behind a closed door", fixture_text("closed-door")))
    path.chmod(0)


def _folder_named_like_a_file(path: Path) -> None:
    path.mkdir()
    (path / "inner.md").write_bytes(md("title: Inside a folder named like a file", fixture_text("inner")))


def _loop(path: Path) -> None:
    other = path.with_name("loop-b.md")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def _deep_yaml(depth: int) -> bytes:
    return md("title: " + "[" * depth + "]" * depth, fixture_text("deep"))


def _laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    return "\n".join(lines) + "\ntitle: laughs"


def _twins(path: Path) -> None:
    """A file literally named "twin\\xff.md" and one whose name has the byte 0xff: stored and shown alike."""
    path.write_bytes(md("title: Twin one", fixture_text("twin1")))
    (path.parent / os.fsdecode(b"twin\xff.md")).write_bytes(md("title: Twin two", fixture_text("twin2")))


def _title_check(limit: int) -> Callable[[list[dict]], None]:
    def check(metas: list[dict]) -> None:
        title = metas[0]["title"]
        assert 0 < len(title) <= limit and title.endswith("…"), title[:80]

    return check


def _text_has(words: str) -> Callable[[list[dict]], None]:
    def check(metas: list[dict]) -> None:
        assert any(words in m["_text"] for m in metas), metas[0]["_text"][:200]

    return check


def _bom(codec: str, bom: bytes, text: str) -> bytes:
    body = text.encode(codec)
    return body if body.startswith(bom) else bom + body


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def file_cases() -> list[Case]:
    """The hostile files, one folder's worth. Built inside one folder, they go through one ingest run."""
    t = fixture_text
    utf16_text = "Licence fixture in UTF-16\n" + t("utf16-le")
    cases = [
        # front matter: dates
        Case("date-feb-30", "date-feb-30.md", write(md("title: A\npublished: 2025-02-30", t("d1"))), "fail", "'2025-02-30' is not a real date"),
        Case("date-month-13", "date-month-13.md", write(md("title: A\npublished: 2025-13-01", t("d2"))), "fail", "is not a real date"),
        Case("date-month-0", "date-month-0.md", write(md("title: A\npublished: 2025-00-10", t("d3"))), "fail", "is not a real date"),
        Case("date-words", "date-words.md", write(md("title: A\npublished: last Tuesday", t("d4"))), "fail", "is not an ISO date"),
        Case("date-number", "date-number.md", write(md("title: A\npublished: 20250627", t("d5"))), "fail", "'published' must be a date (YYYY-MM-DD), not a number"),
        Case("date-list", "date-list.md", write(md("title: A\npublished: [2025-06-27]", t("d6"))), "fail", "'published' must be a date (YYYY-MM-DD), not a list"),
        Case("date-mapping", "date-mapping.md", write(md("title: A\npublished: {year: 2025}", t("d7"))), "fail", "not a mapping"),
        Case("date-bool", "date-bool.md", write(md("title: A\npublished: yes", t("d8"))), "fail", "not true/false"),
        Case("date-binary", "date-binary.md", write(md("title: A\npublished: !!binary MjAyNS0wNi0yNw==", t("d9"))), "fail", "not binary data"),
        # front matter: text keys of the wrong type
        Case("title-list", "title-list.md", write(md("title: [rare, earths]", t("t1"))), "fail", "'title' must be text, not a list"),
        Case("title-mapping", "title-mapping.md", write(md("title: {a: b}", t("t2"))), "fail", "'title' must be text, not a mapping"),
        Case("title-int", "title-int.md", write(md("title: 2025", t("t3"))), "fail", "'title' must be text, not a number (put it in quotes)"),
        Case("title-float", "title-float.md", write(md("title: 3.14", t("t4"))), "fail", "'title' must be text, not a number"),
        Case("title-bool", "title-bool.md", write(md("title: true", t("t5"))), "fail", "'title' must be text, not true/false"),
        Case("title-binary", "title-binary.md", write(md("title: !!binary aGVsbG8gd29ybGQ=", t("t6"))), "fail", "'title' must be text, not binary data"),
        Case("title-set", "title-set.md", write(md("title: !!set {a, b}", t("t7"))), "fail", "'title' must be text, not a set"),
        Case("title-date", "title-date.md", write(md("title: A\noutlet: 2025-06-27", t("t8"))), "stored",
             check=lambda metas: metas[0]["outlet"] == "2025-06-27"),  # a date where text goes is text
        Case("url-list", "url-list.md", write(md("title: A\nurl: [https://example.com/a]", t("u1"))), "fail", "'url' must be text, not a list"),
        Case("url-javascript", "url-javascript.md", write(md("title: A\nurl: 'javascript:alert(1)'", t("u2"))), "fail", "'url' must be an http(s) URL"),
        Case("url-file", "url-file.md", write(md("title: A\nurl: file:///etc/passwd", t("u3"))), "fail", "'url' must be an http(s) URL"),
        Case("url-too-long", "url-too-long.md", write(md("title: A\nurl: https://example.com/" + "a" * 3000, t("u4"))), "fail", "at most 2048 characters"),
        Case("url-number", "url-number.md", write(md("title: A\nurl: 42", t("u5"))), "fail", "'url' must be text, not a number"),
        Case("outlet-list", "outlet-list.md", write(md("title: A\noutlet: [a, b]", t("o1"))), "fail", "'outlet' must be text, not a list"),
        Case("outlet-int", "outlet-int.md", write(md("title: A\noutlet: 12", t("o2"))), "fail", "'outlet' must be text, not a number"),
        Case("author-mapping", "author-mapping.md", write(md("title: A\nauthor: {name: x}", t("a1"))), "fail", "'author' must be text, not a mapping"),
        Case("author-binary", "author-binary.md", write(md("title: A\nauthor: !!binary AAECAw==", t("a2"))), "fail", "'author' must be text, not binary data"),
        # front matter: YAML that attacks the parser
        Case("billion-laughs", "billion-laughs.md", write(md(_laughs(), t("bl"))), "fail", "anchors are not allowed"),
        Case("alias", "alias.md", write(md("base: &b Rare earths\ntitle: *b", t("al"))), "fail", "anchors are not allowed"),
        Case("alias-only", "alias-only.md", write(md("title: *undefined", t("al2"))), "fail", "aliases are not allowed"),
        Case("merge-key", "merge-key.md", write(md("base: &b {title: x}\n<<: *b", t("mk"))), "fail", "anchors are not allowed"),
        Case("python-object", "python-object.md", write(md("title: !!python/object/apply:os.system ['echo pwned']", t("po"))), "fail", "not valid YAML"),
        Case("python-name", "python-name.md", write(md("title: !!python/name:os.system", t("pn"))), "fail", "not valid YAML"),
        Case("unhashable-key", "unhashable-key.md", write(md("? [a, b]\n: c", t("uk"))), "fail", "not valid YAML"),
        Case("yaml-syntax", "yaml-syntax.md", write(md("title: [unclosed", t("ys"))), "fail", "not valid YAML"),
        Case("yaml-tabs", "yaml-tabs.md", write(md("title: A\n\tbad: indent", t("yt"))), "fail", "not valid YAML"),
        Case("yaml-deep", "yaml-deep.md", write(_deep_yaml(5_000)), "fail", "front matter"),
        Case("yaml-huge-int", "yaml-huge-int.md", write(md("title: A\nn: " + "9" * 6000, t("hi"))), "fail", "cannot be read"),
        Case("front-list", "front-list.md", write(md("- a\n- b", t("fl"))), "fail", "(a YAML mapping), not a list"),
        Case("front-scalar", "front-scalar.md", write(md("just a line of text", t("fs"))), "fail", "(a YAML mapping), not text"),
        Case("front-too-big", "front-too-big.md", write(md("title: A\nnotes: " + "x" * 70_000, t("ftb"))), "fail", "larger than 65,536 bytes"),
        Case("front-unterminated", "front-unterminated.md", write("---\ntitle: Never closed\n" + t("fu") + "\n"), "fail", "front matter is not closed"),
        Case("front-unterminated-huge", "front-unterminated-huge.md", write("---\ntitle: x\n" + "y: z\n" * 20_000), "fail", "or never closed"),
        Case("front-rule-only", "front-rule-only.md", write("---\n" + t("fr") + "\n"), "fail", "front matter is not closed"),
        Case("front-crlf", "front-crlf.md", write(md("title: Carriage returns\r\noutlet: CRLF Wire\r", t("crlf")).replace(b"\n", b"\r\n")), "stored",
             check=lambda metas: (metas[0]["title"], metas[0]["outlet"]) == ("Carriage returns", "CRLF Wire")),
        Case("front-dots", "front-dots.md", write(f"---\ntitle: Closed by dots\n...\n{t('dots')}\n"), "stored",
             check=lambda metas: metas[0]["title"] == "Closed by dots"),
        Case("front-nul", "front-nul.md", write(md("title: A\x00B", t("fn"))), "fail", "binary file"),
        Case("front-empty", "front-empty.md", write(md("", t("fe"))), "stored"),
        Case("front-no-body", "front-no-body.md", write(md("title: Only a head", "")), "fail", "no article text found"),
        # caps on titles and fields
        Case("title-long-front", "title-long-front.md", write(md("title: " + "Rare earth headline " * 250, t("tl1"))), "stored", check=_title_check(300)),
        Case("title-long-heading", "title-long-heading.md", write("# " + "Heading word " * 80_000 + "\n\n" + t("tl2")), "stored", check=_title_check(300)),
        Case("title-long-html", "title-long-html.html", write(f"<html><head><title>{'Page title words ' * 60_000}</title></head><body><article><p>{t('tl3')}</p></article></body></html>"), "stored", check=_title_check(300)),
        Case("outlet-long", "outlet-long.md", write(md("title: A\noutlet: " + "Wire " * 2000, t("ol"))), "stored",
             check=lambda metas: len(metas[0]["outlet"]) <= 300),
        Case("title-controls", "title-controls.md", write(md('title: "Bell\\a and \\e[31mred\\e[0m"', t("tc"))), "stored",
             check=lambda metas: not any(ord(c) < 32 for c in metas[0]["title"])),
        # encodings
        Case("utf16-le-bom", "utf16-le-bom.txt", write(_bom("utf-16-le", codecs.BOM_UTF16_LE, utf16_text)), "stored", check=_text_has("test fixture text 'utf16-le'")),
        Case("utf16-be-bom", "utf16-be-bom.md", write(_bom("utf-16-be", codecs.BOM_UTF16_BE, "---\ntitle: Big-endian sixteen\n---\n" + t("utf16-be"))), "stored",
             check=lambda metas: metas[0]["title"] == "Big-endian sixteen"),
        Case("utf32-le-bom", "utf32-le-bom.txt", write(_bom("utf-32-le", codecs.BOM_UTF32_LE, t("utf32-le"))), "stored", check=_text_has("'utf32-le'")),
        Case("utf32-be-bom", "utf32-be-bom.txt", write(_bom("utf-32-be", codecs.BOM_UTF32_BE, t("utf32-be"))), "stored", check=_text_has("'utf32-be'")),
        Case("utf8-bom", "utf8-bom.md", write(codecs.BOM_UTF8 + md("title: With a BOM", t("utf8-bom"))), "stored",
             check=lambda metas: metas[0]["title"] == "With a BOM"),
        Case("utf16-html-bom", "utf16-html-bom.html", write(_bom("utf-16-le", codecs.BOM_UTF16_LE, f"<html><head><title>Sixteen page</title></head><body><article><p>{t('utf16-html')}</p></article></body></html>")), "stored",
             check=_text_has("'utf16-html'")),
        Case("utf16-no-bom", "utf16-no-bom.txt", write(t("utf16-nobom").encode("utf-16-le")), "fail", "binary file"),
        Case("utf16-bad", "utf16-bad.txt", write(codecs.BOM_UTF16_LE + "valid start".encode("utf-16-le") + b"\x00\xd8"), "fail", "not valid UTF-16 text"),
        Case("utf32-bad", "utf32-bad.txt", write(codecs.BOM_UTF32_LE + b"\xff\xff\xff\x7f" * 3), "fail", "not valid UTF-32 text"),
        Case("utf16-nul-char", "utf16-nul-char.txt", write(_bom("utf-16-le", codecs.BOM_UTF16_LE, t("u16nul") + "\x00 more")), "fail", "a NUL character"),
        Case("latin1", "latin1.txt", write(("Caf\u00e9 fixture " + t("latin1")).encode("latin-1")), "fail", "not UTF-8 text"),
        Case("overlong-utf8", "overlong-utf8.txt", write(t("overlong").encode() + b" \xc0\x80 end"), "fail", "not UTF-8 text"),
        Case("utf8-surrogate", "utf8-surrogate.txt", write(t("surr").encode() + b" \xed\xa0\x80 end"), "fail", "not UTF-8 text"),
        Case("nul-late", "nul-late.txt", write(("x " * 6000 + t("late")).encode() + b"\x00" + b" tail words here"), "fail", "a NUL byte at offset 12,"),
        Case("png-as-txt", "png-as-txt.txt", write(_png()), "fail", "binary file"),
        Case("gzip-as-md", "gzip-as-md.md", write(gzip.compress(t("gz").encode() * 50)), "fail", "binary file"),
        Case("html-binary", "html-binary.html", write(b"<html><body><p>" + bytes(range(256)) * 8 + b"</p></body></html>"), "fail", "binary file"),
        Case("empty", "empty.md", write(b""), "fail", "empty file"),
        Case("whitespace", "whitespace.txt", write(b" \n\t\r\n   \n"), "fail", "empty file"),
        Case("utf16-empty", "utf16-empty.txt", write(codecs.BOM_UTF16_LE + "   \n".encode("utf-16-le")), "fail", "empty file"),
        Case("two-words", "two-words.txt", write(b"two words"), "fail", "no article text found"),
        Case("html-script-only", "html-script-only.html", write("<html><head><script>alert('x')</script></head><body><script>var a=1;</script></body></html>"), "fail", "no article text found"),
        Case("ansi-text", "ansi-text.txt", write("Terminal fixture\n\x1b[2J\x1b[31m" + t("ansi") + "\x1b[0m\n"), "stored"),
        # HTML that attacks the parser
        Case("html-xxe", "html-xxe.html", lambda p: p.write_text(
            f'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY xxe SYSTEM "file://{p.parent.parent / "outside" / "secret.txt"}">]>'
            f'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>XXE &xxe;</title></head><body><article><p>{t("xxe")} &xxe;</p></article></body></html>'),
             "stored"),
        Case("html-laughs", "html-laughs.html", write(
            '<!DOCTYPE html [<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">' for i in range(1, 10))
            + f']><html><body><article><p>{t("hlaughs")} &l9;</p></article></body></html>'), "stored"),
        Case("html-js-canonical", "html-js-canonical.html", write(
            f'<html><head><link rel="canonical" href="javascript:alert(1)"><title>Canonical trick</title></head><body><article><p>{t("jscanon")}</p></article></body></html>'),
             "stored", check=lambda metas: metas[0]["url"] == ""),
        Case("html-deep", "html-deep.html", write("<div>" * 50_000 + f"<p>{t('deepdiv')}</p>" + "</div>" * 50_000), "fail", "no article text found"),
        # sizes and text without boundaries
        Case("huge-30mb", "huge-30mb.txt", lambda p: _big_text(p, 30_000_000), "fail", "too large: 30,000,000 bytes (limit 10,000,000, ingest.max_file_bytes)"),
        Case("no-breaks", "no-breaks.txt", write(" ".join(f"word{i % 997}" for i in range(2_000))), "stored"),
        Case("no-spaces", "no-spaces.txt", write("Unbroken\nThe fixture word follows: " + "x" * 20_000 + " and ends here."), "stored"),
        Case("cjk-run", "cjk-run.txt", write("\u7a00\u571f\nA fixture in Chinese characters: " + "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(2000))), "stored"),
        # the folder itself: links, special files, permissions, names
        Case("symlink-passwd", "passwd.txt", symlink("/etc/passwd"), "fail", "symlink to /etc/passwd, outside the source folder: not read"),
        Case("symlink-secret", "leak.md", symlink(lambda p: str(p.parent.parent / "outside" / "secret.txt")), "fail", "outside the source folder: not read"),
        Case("symlink-secret-relative", "leak-relative.txt", symlink("../outside/secret.txt"), "fail", "outside the source folder"),
        Case("symlink-outside-dir", "outside-dir", symlink(lambda p: str(p.parent.parent / "outside")), "fail", "outside the source folder"),
        Case("symlink-etc", "etc", symlink("/etc"), "fail", "symlink to /etc, outside the source folder"),
        Case("symlink-outside-png", "leak.png", symlink("/etc/passwd"), "ignored"),
        Case("symlink-hidden", ".hidden-leak.md", symlink("/etc/passwd"), "ignored"),
        Case("symlink-inside", "zz-alias-of-good.md", symlink("good-1.md"), "copy"),
        Case("symlink-inside-dir", "linked-folder", symlink("sub"), "ignored"),
        Case("symlink-loop", "loop-a.md", _loop, "fail", "symlink loop", also_failed=("loop-b.md",)),
        Case("symlink-self", "self.md", symlink("self.md"), "fail", "symlink loop"),
        Case("symlink-dangling", "gone.md", symlink("nowhere/missing.md"), "fail", "dangling symlink (to nowhere/missing.md)"),
        Case("symlink-dangling-dir", "old-folder", symlink("/nonexistent/folder"), "fail", "dangling symlink"),
        Case("folder-named-md", "folder.md", _folder_named_like_a_file, "fail", "a folder named like an article file",
             also_stored=("folder.md/inner.md",)),
        Case("fifo-txt", "pipe.txt", _fifo, "fail", "not a regular file (a FIFO)"),
        Case("fifo-bare", "pipe", _fifo, "ignored"),
        Case("socket-md", "sock.md", _socket, "fail", "not a regular file (a socket)"),
        Case("device-txt", "device.txt", _device, "fail", "not a regular file (a character device)", needs_root=True),
        Case("unreadable", "locked.md", _locked(md("title: Locked", t("locked"))), "fail", "unreadable: Permission denied"),
        Case("unlistable-folder", "closed", _closed_folder, "fail", "cannot list the folder: Permission denied"),
        Case("name-latin1", b"caf\xe9-fixture.md", write(md("title: Latin-1 name", t("latin1-name"))), "stored",
             check=lambda metas: metas[0]["location"].endswith("caf\\xe9-fixture.md")),
        Case("name-controls", "evil\n\x1b[31mname.txt", write("Control name\n" + t("ctrl-name")), "stored",
             check=lambda metas: "\\x0a\\x1b[31mname.txt" in metas[0]["location"]),
        Case("name-collides", "twin\\xff.md", _twins, "collides", "its escaped name is the same as another file's"),
        Case("name-upper-suffix", "SHOUT.MD", write(md("title: Upper case suffix", t("shout"))), "stored"),
        Case("name-long", "n" * 250 + ".md", write(md("title: Long name", t("longname"))), "stored"),
    ]
    return cases


def _big_text(path: Path, size: int) -> None:
    line = (fixture_text("big") + "\n").encode()
    with open(path, "wb") as f:
        for _ in range(size // len(line)):
            f.write(line)
        f.write(b"x" * (size % len(line)))


GOOD = {  # relpath -> title: ordinary articles beside the hostile ones, all of which must be stored
    "good-1.md": "Good fixture one",
    "good-2.txt": "Good fixture two",
    "sub/good-3.html": "Good fixture three",
}


def build_folder(root: Path, cases: list[Case], outside: Path) -> None:
    """The source folder: the good articles, then every case; `outside` holds the secret, beside the folder."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text(f"Secret fixture\nThe launch code is {SECRET}. Nobody may read this file.\n")
    root.mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "good-1.md").write_bytes(md("title: Good fixture one\noutlet: Test Wire\npublished: 2025-07-01", fixture_text("good-1", 8)))
    (root / "good-2.txt").write_text("Good fixture two\n" + fixture_text("good-2", 8))
    (root / "sub" / "good-3.html").write_text(
        f"<html><head><title>Good fixture three</title></head><body><article><p>{fixture_text('good-3', 8)}</p>"
        "</article></body></html>")
    for case in cases:
        name = os.fsdecode(case.name) if isinstance(case.name, bytes) else case.name
        case.build(root / name)


def location_of(root: Path, name: str | bytes) -> str:
    from ingest.sources import printable

    return printable(str(root / (os.fsdecode(name) if isinstance(name, bytes) else name)))


# --- running the CLI so that file permissions hold, even for root ---------------------------------------------

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def drop_file_privileges() -> None:
    """A preexec_fn: root keeps its uid but loses the capabilities that let it ignore file permissions, so that a
    mode-000 file is unreadable to the child as it would be to any other user. No-op when not root."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def wait_for_healthz(server: subprocess.Popen, port: int, timeout: float = 120) -> None:
    """Until `dealbot serve --http` on `port` answers /healthz with 200 (fails if it exits or takes too long)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                assert r.status == 200
                return
        except OSError:
            assert server.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.3)
