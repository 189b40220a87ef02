"""The agent instructions in .claude/ name only things that exist: every command in CLAUDE.md and every command
allowed in settings.json must run here, so an agent following them never starts from a broken instruction."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

from tests.support.processes import ROOT

CLAUDE_MD = ROOT / ".claude" / "CLAUDE.md"
SETTINGS_JSON = ROOT / ".claude" / "settings.json"


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def check_make(args: list[str]) -> None:
    targets = [a for a in args if not a.startswith("-") and "=" not in a]
    assert targets, "make without a target"
    missing = set(targets) - make_targets()
    assert not missing, f"no such make target: {sorted(missing)}"


def check_manage(args: list[str]) -> None:
    assert args, "manage.py without a command"
    name, *options = args
    commands = get_commands()
    assert name in commands, f"no management command {name!r}"
    # Parsing the options too catches a renamed or removed flag; Django's parser raises instead of exiting.
    load_command_class(commands[name], name).create_parser("manage.py", name).parse_args(options)


def check_pytest(args: list[str]) -> None:
    assert importlib.util.find_spec("pytest") is not None
    for arg in args:
        if not arg.startswith("-") and "/" in arg:
            assert (ROOT / arg.split("::")[0]).exists(), f"pytest path {arg} does not exist"


def check_executable(path: str) -> None:
    # .venv/bin/<tool>: the virtualenv running this test is the one `make venv` builds.
    name = Path(path).name
    assert (ROOT / path).exists() or (Path(sys.executable).parent / name).exists(), f"{path} does not exist"


def command_words(span: str) -> list[str] | None:
    """The words of ``span`` if it is a command line of this project (make, python, a tool path), else None."""
    try:
        words = shlex.split(span)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # leading VAR=value assignments
        words.pop(0)
    if not words:
        return None
    head = words[0]
    if head == "make" or head in {"python", "python3"} or head.endswith("/bin/python"):
        return words
    if head.startswith((".venv/bin/", ".ci/", "./")):
        return words
    return None


def check_command(command: str) -> None:
    words = command_words(command)
    assert words is not None, f"{command!r} is not a command this project has (make target, manage.py, tool)"
    head, rest = words[0], words[1:]
    if head == "make":
        check_make(rest)
    elif head in {"python", "python3"} or head.endswith("/bin/python"):
        if head.startswith("."):
            check_executable(head)
        if rest[:1] == ["manage.py"]:
            check_manage(rest[1:])
        else:
            assert rest[:2] == ["-m", "pytest"], f"unknown python invocation {command!r}"
            check_pytest(rest[2:])
    elif head.startswith(".venv/bin/"):
        check_executable(head)
        for arg in rest:
            if not arg.startswith(("-", ".")):
                assert (ROOT / arg).exists(), f"{arg} (argument of {head}) does not exist"
    else:
        assert (ROOT / head).is_file(), f"{head} does not exist"


def looks_like_path(span: str) -> bool:
    return " " not in span and ("/" in span or re.search(r"\.(py|md|json|ya?ml|txt|toml)$", span) is not None)


def backtick_spans() -> list[str]:
    return list(dict.fromkeys(re.findall(r"`([^`\n]+)`", CLAUDE_MD.read_text())))


def claude_md_commands() -> list[str]:
    return [span for span in backtick_spans() if command_words(span) is not None]


def claude_md_paths() -> list[str]:
    return [
        span
        for span in backtick_spans()
        # Placeholders (<app>/services.py) and files outside this repository (../shared) are not checked.
        if looks_like_path(span)
        and not re.search(r"[<>*]", span)
        and not span.startswith("../")
        and span.split()[0] not in {"make", "python"}
        and not span.startswith(".venv/bin/")
    ]


def allowed_bash_commands() -> list[str]:
    rules = json.loads(SETTINGS_JSON.read_text())["permissions"]["allow"]
    commands = []
    for rule in rules:
        match = re.fullmatch(r"Bash\((.+?)(:\*)?\)", rule)
        assert match, f"unexpected allow rule {rule!r}"
        commands.append(match.group(1))
    return commands


def test_claude_md_names_the_everyday_commands():
    commands = claude_md_commands()

    for expected in ("make run", "make test", "make lint", "make typecheck", "python manage.py serve"):
        assert any(c.startswith(expected) for c in commands), f"{expected} is not mentioned"
    assert any("-m pytest" in c for c in commands)


@pytest.mark.parametrize("command", claude_md_commands())
def test_every_command_in_claude_md_exists(command):
    check_command(command)


@pytest.mark.parametrize("path", claude_md_paths())
def test_every_path_in_claude_md_exists(path):
    assert (ROOT / path.rstrip("/")).exists()


@pytest.mark.parametrize("command", allowed_bash_commands())
def test_every_allowed_command_in_settings_json_exists(command):
    check_command(command)


def test_settings_json_keeps_secrets_out_of_reach():
    deny = json.loads(SETTINGS_JSON.read_text())["permissions"]["deny"]

    assert "Read(./.env)" in deny
    assert any("api-keys" in rule for rule in deny)


def test_claude_md_states_the_money_invariants():
    text = CLAUDE_MD.read_text()

    for invariant in ("Decimal", "NUMERIC", "sum to zero per asset", "append-only", "never go negative", "hashed"):
        assert invariant in text
