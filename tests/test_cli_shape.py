"""The CLI stays a user of the library: every command function parses, calls the library and renders, in at most
40 lines (counted from its `def` to its last line, docstring included, decorators not)."""

from __future__ import annotations

import ast
from pathlib import Path

import bot.cli

LIMIT = 40


def command_lengths() -> dict[str, int]:
    """Each function of bot/cli.py registered by a `@cli.command` or `@click.group` decorator, and its length."""
    tree = ast.parse(Path(bot.cli.__file__).read_text(encoding="utf-8"))
    lengths = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(_registers(d) for d in node.decorator_list):
            lengths[node.name] = node.end_lineno - node.lineno + 1
    return lengths


def _registers(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr in ("command", "group")


def test_every_command_is_found_and_no_command_function_is_over_40_lines():
    lengths = command_lengths()
    registered = {command.callback.__name__ for command in bot.cli.cli.commands.values()} | {"cli"}
    assert set(lengths) == registered
    assert {name: n for name, n in lengths.items() if n > LIMIT} == {}, lengths
