import shutil
from datetime import date

import pytest

from conftest import FIXTURES, SAMPLE
from ingest.sources import ReadError, SourceError, list_files, parse, read_raw


def load(path, source=None):
    source = str(source or path.parent)
    return parse(read_raw(source, path, path.name))


def test_markdown_front_matter_gives_the_metadata():
    a = load(SAMPLE / "the-hill-2025-06-27.md")
    assert a.title == "White House announces trade deal with China on rare earth exports"
    assert a.outlet == "The Hill"
    assert a.published == date(2025, 6, 27)
    assert a.url is None and a.doc_id == "the-hill-2025-06-27.md"
    assert a.text.startswith("The Trump administration reached an agreement")
    assert "---" not in a.text and "outlet:" not in a.text


def test_html_main_text_without_boilerplate_and_with_page_metadata():
    a = load(FIXTURES / "boilerplate-page.html")
    assert a.title == "Magnet shipments resume after London framework"
    assert a.published == date(2025, 7, 3)
    assert a.url == "https://fixture-daily.example/2025/07/03/magnet-shipments-resume"
    assert a.doc_id == a.url
    assert a.outlet == "Fixture Daily"
    assert "licence applications for rare earth magnets" in a.text
    for junk in ("Subscribe", "newsletter", "Copyright", "beaches", "Cookie"):
        assert junk not in a.text


def test_txt_title_is_a_short_first_line_and_there_is_no_date():
    a = load(FIXTURES / "plain-note.txt")
    assert a.title == "Port congestion eases in Rotterdam"
    assert a.published is None and a.outlet is None
    assert a.text.startswith("This text is a test fixture")


def test_txt_whose_first_line_is_a_sentence_is_titled_from_its_file_name(tmp_path):
    path = tmp_path / "rare_earth-notes.txt"
    path.write_text("China supplies most rare earths. Refining is concentrated there too.\nMore text follows here.\n")
    a = load(path)
    assert a.title == "Rare earth notes"
    assert a.text.startswith("China supplies most rare earths.")


@pytest.mark.parametrize(
    "name, reason",
    [("binary.txt", "binary"), ("latin1.txt", "not UTF-8"), ("empty.md", "empty")],
)
def test_bad_files_raise_a_read_error_with_the_reason(name, reason):
    with pytest.raises(ReadError, match=reason):
        load(FIXTURES / name)


def test_bad_front_matter_date_is_a_clear_error(tmp_path):
    path = tmp_path / "x.md"
    path.write_text("---\ntitle: X\npublished: last Tuesday\n---\nSome words are here for the body.\n")
    with pytest.raises(ReadError, match="not an ISO date"):
        load(path)


def test_listing_a_folder_skips_hidden_and_unsupported_files(tmp_path):
    shutil.copy(FIXTURES / "plain-note.txt", tmp_path / "a.txt")
    (tmp_path / "sub").mkdir()
    shutil.copy(FIXTURES / "boilerplate-page.html", tmp_path / "sub" / "b.html")
    (tmp_path / ".hidden.md").write_text("secret words in here")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    assert [rel for _, rel in list_files(str(tmp_path))] == ["a.txt", "sub/b.html"]


def test_missing_source_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        list_files(str(tmp_path / "nope"))
