"""The README works when pasted: its shell walk-through runs to the end and prints what it shows,
and its Python example prints what the README says it prints.

The walk-through is the ```console block after the comment that names this file: each ``$ `` line
is a command, and the lines under it are what the command prints (stdout and stderr, as a terminal
shows them), where ``...`` stands for any text. It runs in a shell of its own, in a directory only
we can write, as a new user would run it after the README's install lines: with the environment's
``telecard-auth`` first on ``PATH``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: The comment that marks a block this file runs or checks.
MARK = "<!-- tests/test_readme.py "
#: Where one line's output ends in the shell's transcript, and with which exit status.
STATUS = re.compile(r"^@@status (\d+)@@$", re.MULTILINE)


@attrs.frozen
class Step:
    """One ``$ `` line of the walk-through and what the README shows it printing."""

    command: str
    shown: str


def _blocks(text: str) -> Iterator[tuple[str, str]]:
    """The fenced blocks that follow a comment marking them for this file: (info, content)."""
    for found in re.finditer(
        rf"^{re.escape(MARK)}[^\n]*-->\n```(\w+)\n(.*?)^```$", text, re.M | re.S
    ):
        yield found.group(1), found.group(2)


def _steps(block: str) -> list[Step]:
    steps: list[Step] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append(Step(command=line.removeprefix("$ "), shown=""))
        else:
            last = steps[-1]
            steps[-1] = Step(command=last.command, shown=f"{last.shown}{line}\n")
    return steps


def _walk_through() -> list[Step]:
    [block] = [content for info, content in _blocks(README.read_text("utf-8")) if info == "console"]
    return _steps(block)


def _shown(expected: str, actual: str) -> bool:
    """Whether ``actual`` is what ``expected`` shows, ``...`` standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


def _script(steps: list[Step]) -> str:
    # After each line, a line of our own marks where its output ends and gives its exit status.
    lines = [f"{step.command}\nprintf '\\n@@status %s@@\\n' \"$?\"" for step in steps]
    return "\n".join(lines) + "\n"


def _transcript(output: str) -> list[tuple[str, int]]:
    """Each line's output and exit status, from the shell's transcript."""
    parts = STATUS.split(output)
    outputs, statuses = parts[0:-1:2], parts[1::2]
    return [(text.strip("\n"), int(status)) for text, status in zip(outputs, statuses, strict=True)]


def _environment(private: Path) -> dict[str, str]:
    """A user's shell after the install lines: the environment's commands first on PATH."""
    scripts = Path(sys.executable).parent
    if shutil.which("telecard-auth", path=str(scripts)) is None:
        pytest.fail(f"the telecard-auth command is not installed in {scripts}")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("TELECARD_AUTH_")
    }
    return environment | {
        "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}",
        "TELECARD_AUTH_HOME": str(private / ".telecard-auth"),
        "PYTHONUTF8": "1",  # a terminal that shows Arabic
    }


@pytest.mark.skipif(os.name != "posix", reason="a POSIX shell")
@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_the_walk_through_runs_to_the_end_and_prints_what_it_shows(
    shell: str, private: Path
) -> None:
    """Every line of the README's walk-through exits 0 and prints what the README shows under it."""
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} here")
    steps = _walk_through()
    script = private / "walk-through.sh"
    script.write_text(_script(steps), encoding="utf-8")
    run = subprocess.run(  # noqa: S603 - a shell running the README's lines
        [shell, str(script)],
        cwd=private,
        env=_environment(private),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
        check=False,
    )
    transcript = _transcript(run.stdout.decode("utf-8"))
    assert len(steps) == len(transcript), run.stdout.decode("utf-8")
    for step, (printed, status) in zip(steps, transcript, strict=True):
        assert 0 == status, (step.command, printed)
        assert _shown(step.shown.strip("\n"), printed), (step.command, printed)


def test_the_walk_through_keeps_the_code_off_the_command_line() -> None:
    """The code is captured with --print and given to redeem on standard input, never as an
    argument; the receipt is captured and verified, as STC would, with the published JWK Set;
    no line holds a placeholder."""
    commands = [step.command for step in _walk_through()]
    issue = next(command for command in commands if " issue " in command)
    assert issue.startswith("CODE=$(")
    assert issue.endswith("--print code)")
    redeems = [command for command in commands if " redeem " in command]
    assert redeems
    assert all("printf '%s\\n' \"$CODE\" | telecard-auth redeem " in command for command in redeems)
    assert all("--code - " in command for command in redeems)
    assert any(command.endswith("--print receipt)") for command in redeems)
    assert "telecard-auth keys public --jwks > jwks.json" in commands
    verify = 'telecard-auth receipt verify "$RECEIPT" --provider stc --jwks jwks.json'
    assert commands.index("telecard-auth keys public --jwks > jwks.json") < commands.index(verify)
    # A placeholder to replace by hand (CODE, RECEIPT), rather than a variable ($CODE, CODE=).
    assert [] == [
        command for command in commands if re.search(r"(?<![$\w])[A-Z]{4,}(?![=\w])", command)
    ]


def test_the_install_lines_install_from_the_checkout() -> None:
    """The README installs the clone it is in, in a virtual environment of its own: nothing is
    published to an index yet."""
    [install] = re.findall(r"^```sh\n(.*?)^```$", README.read_text("utf-8"), re.M | re.S)
    assert ["python3 -m venv .venv", ". .venv/bin/activate", "python -m pip install ."] == (
        install.splitlines()
    )


def test_the_python_example_prints_what_the_readme_says() -> None:
    """The README's Python block, run as it stands, prints each step as the README shows."""
    text = README.read_text("utf-8")
    [source] = re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)
    [shown] = [content for info, content in _blocks(text) if info == "text"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(source, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
    assert _shown(shown, printed.getvalue())
    assert 3 == len(printed.getvalue().splitlines())


def test_sybil_runs_the_readme_python_blocks() -> None:
    """The root conftest.py has sybil collect the README's Python blocks as tests."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "README.md",
        ],
        cwd=README.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == run.returncode, run.stdout + run.stderr
    assert re.search(r"^README\.md::line:\d+,column:1$", run.stdout, re.MULTILINE), run.stdout


def test_the_matching_rule() -> None:
    """``...`` in what the README shows stands for any text, across lines; the rest is literal."""
    assert _shown("code: ...", "code: 4821 0937")
    assert _shown("a\n...\nz", "a\nb\nc\nz")
    assert not _shown("code: ...", "error: 4821 0937")
    assert not _shown("exit status 4", "exit status 5")
    assert not _shown("a.b", "axb")
