"""Acknowledged redemptions survive a killed process (SQLite with synchronous="full", PostgreSQL).

A child process redeems pre-issued codes one after another and prints each code id, flushed, as
soon as its redemption returned: every line the parent reads is an acknowledged redemption. The
parent kills the child with SIGKILL at a random moment (after a random number of lines, or after a
random short real-time delay), then checks with a fresh storage that every acknowledged redemption
is recorded, cannot be repeated, that nothing beyond the one request in flight was touched, and
that the storage still works. Set ``TELECARD_CRASH_SEED`` to replay a run's kill points.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.backends.conftest import UrlFactory
from tests.backends.workers import close_storage, keyring_spec, subject_for
from tests.helpers import START

from telecard_auth import (
    CodeAlreadyUsed,
    CodeIssuer,
    CodeState,
    IssuedCode,
    Keyring,
    ManualClock,
    SQLiteStorage,
    Subject,
    storage_from_url,
)

ROOT = Path(__file__).resolve().parents[2]
#: Codes waiting for each child: far more than it can redeem before a kill (see ``PIPE_SIZE``).
POOL = 2000
#: The child's stdout pipe, in bytes: once it is full the child waits for the parent to read, so
#: it never runs more than a few hundred lines ahead of the kill point.
PIPE_SIZE = 4096
#: Kill points per backend.
KILLS = 6
#: Most acknowledgements read before a kill.
MAX_LINES = 300
#: Longest real-time delay before a kill, counted from the child's first acknowledgement.
MAX_DELAY = 0.05
#: Codes after the one in flight whose state is checked to be untouched.
WINDOW = 20
#: The longest the parent waits for the child (seconds).
TIMEOUT = 60.0


@attrs.frozen
class Item:
    """One pre-issued code and the subject it belongs to."""

    subject: Subject
    issued: IssuedCode


@attrs.frozen
class Crash:
    """What one killed child left: the ids it acknowledged, in order, and how it ended."""

    acknowledged: tuple[str, ...]
    returncode: int
    finished: bool


def read_line(child: subprocess.Popen[str]) -> str:
    """The child's next line; fails the test if the child ended instead."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.endswith("\n"):
        pytest.fail(f"the child ended early with {child.wait(TIMEOUT)}")
    return line.rstrip("\n")


def run_and_kill(
    job_file: Path, url: str, keyring: Keyring, items: list[Item], rng: random.Random
) -> Crash:
    """Start the crash child on ``items``, SIGKILL it at a random point, collect its lines."""
    job: dict[str, Any] = {
        "url": url,
        "keyring": keyring_spec(keyring),
        "items": [
            [
                item.subject.kind.value,
                item.subject.identifier,
                "stc",
                item.issued.code,
                item.issued.code_id,
            ]
            for item in items
        ],
    }
    job_file.write_text(json.dumps(job), encoding="utf-8")
    with (
        job_file.with_suffix(".err").open("w") as errors,
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "tests.backends.workers", str(job_file)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        ) as child,
    ):
        assert child.stdout is not None
        # The smallest pipe keeps the child close behind what the parent has read.
        fcntl.fcntl(child.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        assert "ready" == read_line(child)
        lines: list[str] = []
        if rng.random() < 0.5:
            # Right after a random number of acknowledgements (0: before the first one).
            lines += [read_line(child) for _ in range(rng.randrange(0, MAX_LINES))]
        else:
            # After a random real-time delay, once the child is redeeming.
            lines.append(read_line(child))
            time.sleep(rng.uniform(0, MAX_DELAY))
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()
        returncode = child.wait(TIMEOUT)
    # Lines still in the pipe were acknowledged too; only whole lines count.
    lines += rest[: rest.rfind("\n") + 1].splitlines()
    return Crash(
        acknowledged=tuple(line for line in lines if line != "done"),
        returncode=returncode,
        finished="done" in lines,
    )


def top_up(issuer: CodeIssuer, pending: list[Item], serials: Iterator[int]) -> None:
    """Issue codes to new subjects until ``POOL`` codes wait for the next child."""
    while len(pending) < POOL:
        subject = subject_for(next(serials))
        issued = issuer.issue(subject, "stc", service="new_line")
        pending.append(Item(subject=subject, issued=issued))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_acknowledged_redemptions_survive_sigkill(
    storage_url: UrlFactory, keyring: Keyring, tmp_path: Path, backend: str
) -> None:
    """After each SIGKILL every acknowledged redemption is REDEEMED and cannot be repeated."""
    seed = int(os.environ.get("TELECARD_CRASH_SEED") or secrets.randbelow(2**32))
    rng = random.Random(seed)  # noqa: S311 - kill points, not secrets
    note = f"replay with TELECARD_CRASH_SEED={seed}"
    url = storage_url(backend)
    setup = storage_from_url(url)
    if isinstance(setup, SQLiteStorage):
        assert "full" == setup.synchronous
    getattr(setup, "migrate")()  # noqa: B009 - both SQL backends have it
    pending: list[Item] = []
    serials = itertools.count()
    top_up(CodeIssuer(setup, keyring=keyring, clock=ManualClock(START)), pending, serials)
    close_storage(setup)

    for kill in range(KILLS):
        crash = run_and_kill(tmp_path / f"job{kill}.json", url, keyring, pending, rng)
        assert (-signal.SIGKILL, False) == (crash.returncode, crash.finished), note
        count = len(crash.acknowledged)
        assert [item.issued.code_id for item in pending[:count]] == list(crash.acknowledged), note

        # A fresh storage, as after a restart, holds every acknowledged redemption.
        fresh = storage_from_url(url)
        issuer = CodeIssuer(fresh, keyring=keyring, clock=ManualClock(START))
        states = [
            issuer.status(item.subject, item.issued.code_id).state
            for item in pending[: count + 1 + WINDOW]
        ]
        assert [CodeState.REDEEMED] * count == states[:count], note
        # Only the request in flight may have landed unacknowledged; later codes are untouched.
        assert states[count] in (CodeState.ACTIVE, CodeState.REDEEMED), note
        assert [CodeState.ACTIVE] * WINDOW == states[count + 1 :], note
        for item in pending[:count]:
            with pytest.raises(CodeAlreadyUsed):
                issuer.redeem(item.subject, "stc", item.issued.code, "new_line")

        # Still fully usable: a new code is issued and redeemed; the code in flight, if it did
        # not land, goes to the next child with the rest.
        newcomer = subject_for(10_000_000 + kill)
        fresh_code = issuer.issue(newcomer, "zain")
        assert "new_line" == issuer.redeem(newcomer, "zain", fresh_code.code, "new_line").service.id
        del pending[: count + (states[count] is CodeState.REDEEMED)]
        top_up(issuer, pending, serials)
        close_storage(fresh)
