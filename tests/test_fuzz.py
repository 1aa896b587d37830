"""The fuzz targets in ``fuzz/``: replayed in-process, and fuzzed under libFuzzer for a while.

Each target is run as a script, as a person would run it (``python fuzz/fuzz_x.py -flags``),
with a scratch corpus directory first (libFuzzer writes new inputs there) and the committed
seeds second. Both targets fuzz at once, so the suite pays for one budget, not two. A run
passes when libFuzzer stops at its time limit having executed many inputs, none of which let an
exception other than ``TelecardAuthError`` escape or broke a promise the target checks.

atheris is the ``fuzz`` extra; without it these tests skip, except under ``CI=true``, where a
missing fuzzer fails the run (CI never passes by skipping).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
#: Each target and its seed corpus directory.
TARGETS = {"fuzz_normalize": "normalize", "fuzz_receipt": "receipt"}
#: Seconds of fuzzing per target; the targets run side by side.
BUDGET_SECONDS = 8
#: Fewest inputs a run must have executed: a few thousand a second is normal.
FEWEST_RUNS = 1_000


def _need_atheris() -> None:
    if importlib.util.find_spec("atheris") is not None:
        return
    message = "atheris (the 'fuzz' dependency group) is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def _load(name: str) -> ModuleType:
    """Import ``fuzz/<name>.py`` as a module of its own (``fuzz/`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"telecard_fuzz_{name}", FUZZ / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seeds(name: str) -> list[Path]:
    return sorted((FUZZ / "corpus" / TARGETS[name]).iterdir())


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, Path]]]:
    """Every target fuzzed under libFuzzer, at the same time: its output and its artifact folder."""
    _need_atheris()
    started = {}
    for name, corpus in TARGETS.items():
        scratch = tmp_path_factory.mktemp(name)
        (scratch / "corpus").mkdir()
        command = [
            sys.executable,
            str(FUZZ / f"{name}.py"),
            f"-max_total_time={BUDGET_SECONDS}",
            "-rss_limit_mb=2048",
            "-timeout=10",
            "-print_final_stats=1",
            f"-artifact_prefix={scratch}/",
            str(scratch / "corpus"),
            str(FUZZ / "corpus" / corpus),
        ]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            command,
            cwd=scratch,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        started[name] = (process, scratch)
    finished = {}
    try:
        for name, (process, scratch) in started.items():
            output, _ = process.communicate(timeout=BUDGET_SECONDS + 90)
            assert process.returncode is not None
            finished[name] = (f"exit status {process.returncode}\n{output}", scratch)
        yield finished
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("name", TARGETS)
def test_target_replays_its_seeds_in_process(name: str) -> None:
    """Each seed, and a few thousand random inputs, go through ``fuzz_one_input`` cleanly."""
    _need_atheris()
    target = _load(name)
    for seed in _seeds(name):
        target.fuzz_one_input(seed.read_bytes())
    chance = random.Random(name)  # noqa: S311 - reproducible test inputs, not secrets
    for _ in range(3_000):
        target.fuzz_one_input(chance.randbytes(chance.randrange(0, 200)))


def test_seeds_reach_the_accepting_paths() -> None:
    """The seeds are worth having: they hold values the library accepts, not only junk."""
    _need_atheris()
    from telecard_auth import SigningKey, Subject, VerifyKey, normalize_msisdn, verify_receipt

    assert "+966551234567" == normalize_msisdn(
        (FUZZ / "corpus" / "normalize" / "msisdn-arabic-indic").read_bytes()[1:].decode()
    )
    assert (
        "1000000008"
        == Subject.citizen(
            (FUZZ / "corpus" / "normalize" / "citizen").read_bytes()[1:].decode()
        ).identifier
    )
    receipts = FUZZ / "corpus" / "receipt"
    target = _load("fuzz_receipt")
    token = (receipts / "receipt").read_bytes()[1:].decode()
    assert token == verify_receipt(token, target.JWKS, audience=target.AUDIENCE).token
    private = json.loads((receipts / "private-jwk").read_bytes()[1:])
    assert private == SigningKey.from_jwk(private).to_jwk()
    public = json.loads((receipts / "public-jwks").read_bytes()[1:])
    assert public == {"keys": [key.to_jwk() for key in VerifyKey.from_jwks(public)]}


@pytest.mark.parametrize("name", TARGETS)
def test_target_fuzzes_clean_for_its_budget(
    name: str, fuzz_runs: dict[str, tuple[str, Path]]
) -> None:
    """libFuzzer runs the target to its time limit: many inputs, no crash, no broken promise."""
    output, scratch = fuzz_runs[name]
    crashes = sorted(path for path in scratch.iterdir() if path.is_file())
    found = "\n".join(
        f"{path.name}: {base64.b64encode(path.read_bytes()).decode()}" for path in crashes
    )
    tail = "\n".join(output.splitlines()[-60:])
    assert output.startswith("exit status 0\n"), f"{name} failed:\n{tail}\n{found}"
    assert not crashes, f"{name} left crash inputs (base64):\n{found}"
    stats = re.search(r"stat::number_of_executed_units: (\d+)", output) or re.search(
        r"Done (\d+) runs", output
    )
    assert stats is not None, f"{name} printed no run count:\n{tail}"
    assert int(stats.group(1)) >= FEWEST_RUNS, f"{name} ran only {stats.group(1)} inputs"
