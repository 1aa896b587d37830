"""The chaos soak (``benchmarks/soak.py --chaos``) from the tests: run as a command, or loaded as
a module for its parts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_chaos(*arguments: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run ``soak.py --chaos`` with ``arguments``: its JSON summary (the last line printed), and
    the finished process (its exit status and output, for the failure message)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(BENCHMARKS / "soak.py"), "--chaos", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"the chaos soak printed nothing (exit {done.returncode}): {done.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    print(f"\nchaos soak {' '.join(arguments)}: {lines[-1]}")  # the figures, with pytest -s
    return summary, done


def chaos_module() -> ModuleType:
    """``benchmarks/chaos.py``, imported under the name ``chaos`` (the benchmarks are no package
    the tests can import by name)."""
    spec = importlib.util.spec_from_file_location("chaos", BENCHMARKS / "chaos.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module
