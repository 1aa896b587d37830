"""Importing the package is cheap and silent: no storage drivers, no I/O, no threads.

Each check runs in a fresh interpreter (``sys.executable``) so that nothing the test session has
already imported hides what ``import telecard_auth`` itself pulls in. An audit hook installed
before the import records network, process and file activity.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

PROBE = r"""
import json
import os
import sys

MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pth")
WATCHED = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork")
recorded = []
recording = True


def hook(event, args):
    if not recording:
        return
    if event.startswith("socket.") or event in WATCHED:
        recorded.append([event, repr(args)[:200]])
    elif event == "open":
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str) and (path.endswith(MODULE_SUFFIXES) or os.path.isdir(path)):
            return
        recorded.append([event, repr(args)[:200]])


sys.addaudithook(hook)
threads_before = __import__("threading").active_count()
import telecard_auth  # noqa: E402
during_import = list(recorded)

# The canary: the hook must see a plain file being opened, or the check above proves nothing.
with open(os.devnull, "rb"):
    pass
canary = recorded[len(during_import):]
recording = False

print(json.dumps({
    "recorded": during_import,
    "canary": canary,
    "modules": sorted(sys.modules),
    "threads_before": threads_before,
    "threads_after": __import__("threading").active_count(),
    "version": telecard_auth.__version__,
}))
"""

DRIVER_ROOTS = {"sqlite3", "_sqlite3", "redis", "psycopg", "psycopg2", "psycopg_c", "asyncpg"}


def probe() -> dict[str, Any]:
    """Run the import probe in a fresh isolated interpreter and return its findings."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter, a fixed script
        [sys.executable, "-I", "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == completed.returncode, completed.stderr
    findings: dict[str, Any] = json.loads(completed.stdout)
    return findings


def test_import_loads_no_storage_driver() -> None:
    """import telecard_auth pulls in no sqlite3, redis or psycopg module."""
    findings = probe()
    modules: list[str] = findings["modules"]
    assert "telecard_auth" in modules
    assert [] == [name for name in modules if name.split(".")[0] in DRIVER_ROOTS]


def test_import_does_no_io() -> None:
    """import telecard_auth opens no socket, process or non-module file."""
    findings = probe()
    assert [] == findings["recorded"]
    assert 1 == len(findings["canary"]), "the audit hook did not see a plain open()"
    assert "open" == findings["canary"][0][0]


def test_import_starts_no_thread() -> None:
    """import telecard_auth leaves the interpreter with the threads it had."""
    findings = probe()
    assert findings["threads_before"] == findings["threads_after"]
    assert findings["version"]
