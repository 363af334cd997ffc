"""`bot` imports `ingest`, never the reverse (README, Layout): the ingest job runs without the bot's code."""

from __future__ import annotations

from conftest import ROOT, modules_loaded_by


def test_no_ingest_module_imports_bot():
    modules = sorted(p.stem for p in (ROOT / "ingest").glob("*.py") if p.stem != "__init__")
    assert "lexical" in modules and "sync" in modules
    loaded = modules_loaded_by(", ".join(f"ingest.{m}" for m in modules))
    assert {m for m in loaded if m == "bot" or m.startswith("bot.")} == set()


def test_no_ingest_module_imports_bot_even_inside_a_function():
    import ast

    found = []
    for path in sorted((ROOT / "ingest").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.name}: {n}" for n in names if n == "bot" or n.startswith("bot.")]
    assert found == []
