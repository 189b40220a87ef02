"""README.md's commands work as written: every ```bash block runs in a fresh clone of the repository, on its own,
with an empty database and the suite's PostgreSQL and Redis, the service on free loopback ports; the test breaks
when the README drifts from the code.

What runs: blocks tagged exactly ```bash. A block tagged ```bash skip-test (it runs this suite, needs Docker, or
never ends) or anything else (```console, ```json) is only read. Each block gets a clone of its own (git clone of
this repository, plus the uncommitted changes to tracked files, so an edited README is tested before it is
committed), the current virtualenv linked in (`make venv` finds it up to date: no install), and runs under
`bash -euo pipefail` with job control on (`set -m`), so `make run &` ... `kill %1` stops the service it started.
Whatever a block leaves running is stopped afterwards: the block runs in a process group of its own, ended by its id.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port
from tests.support.services import redis_url

README = ROOT / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
BLOCK_TIMEOUT = 240


def blocks(text: str) -> list[tuple[str, int, str]]:
    """(info string, line number, body) of every fenced block."""
    return [(m.group(1).strip(), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)]


def runnable(text: str) -> list[tuple[int, str]]:
    return [(line, body) for info, line, body in blocks(text) if info == "bash"]


def test_the_readme_has_blocks_that_run_and_blocks_it_only_shows():
    text = README.read_text()
    infos = {info for info, _line, _body in blocks(text)}

    assert len(runnable(text)) >= 3
    assert "bash skip-test" in infos
    # The trading walkthrough and the admin set-up are among the blocks that run.
    bodies = "\n".join(body for _line, body in runnable(text))
    assert "make run &" in bodies and "kill %1" in bodies
    assert "createsuperuser" in bodies


def test_every_manage_py_command_in_the_readme_runs_through_the_virtualenv():
    """As printed, in a fresh clone: `python manage.py` would need an activated virtualenv nobody made."""
    for _info, line, body in blocks(README.read_text()):
        for command in re.findall(r"^.*manage\.py.*$", body, flags=re.MULTILINE):
            assert ".venv/bin/python manage.py" in command, f"README.md line {line}: {command.strip()}"


def test_files_the_readme_writes_keys_to_are_git_ignored():
    names = {"api-keys.txt"}
    for _info, _line, body in blocks(README.read_text()):
        names |= set(re.findall(r"--keys-file\s+(\S+)", body))
    for name in sorted(names):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{name} holds live keys and is not git-ignored"


def _clone(destination: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", "--local", str(ROOT), str(destination)], check=True, timeout=120)
    changed = subprocess.run(
        ["git", "ls-files", "--modified"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in changed:
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            (destination / name).write_bytes(source.read_bytes())
    # The suite's virtualenv, already installed: `make venv` must find it newer than the requirements files.
    (destination / ".venv").symlink_to(ROOT / ".venv")
    (ROOT / ".venv" / "bin" / ".installed").touch()
    return destination


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End the block's process group (it is the group this test created for the block, by its id)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; children of the group may remain a moment.
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Iterator[Path]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    yield _clone(tmp_path / "clone")


BLOCKS = runnable(README.read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("line", "body"), BLOCKS, ids=[f"README.md:{line}" for line, _body in BLOCKS])
def test_readme_block_runs_in_a_fresh_clone(line, body, fresh_clone, service_database_url, tmp_path):
    script = tmp_path / "block.sh"
    script.write_text("set -euo pipefail\nset -m\n" + body)
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "POSTGRES_URL", "VIRTUAL_ENV"}},
        "DATABASE_URL": service_database_url,
        "REDIS_URL": redis_url(),
        "HTTP_PORT": str(free_port()),
        "GRPC_PORT": str(free_port()),
        "BIND_HOST": "127.0.0.1",
        "SERVICE_INSTANCE_NAME": f"readme-{uuid.uuid4().hex[:8]}",
        "CONFIG_SERVICE_URL": "",
        "LOG_LEVEL": "WARNING",
    }
    output = tmp_path / "output.log"
    with open(output, "wb") as sink:
        proc = subprocess.Popen(
            ["bash", str(script)],
            cwd=fresh_clone,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = proc.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            _stop_group(proc)
    text = output.read_text(errors="replace")
    assert returncode == 0, f"README.md block at line {line} exited {returncode}:\n{text[-4000:]}"
