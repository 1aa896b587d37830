"""``telecard_auth.testing``: it names its extra when pytest is missing, and pytest rewrites the
asserts of every module the contract suites are split into.

The import tests run in fresh interpreters where pytest cannot be imported; the rewriting tests
run pytest on a small project in a subprocess, as an integrator's test suite would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

#: Two ways pytest can be missing: blocked in ``sys.modules``, or refused by a finder.
WITHOUT_PYTEST = {
    "modules-none": """
sys.modules["pytest"] = None
""",
    "finder": """
import importlib.abc
class Uninstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Uninstalled())
""",
}

IMPORT = """
import json
import sys
{without_pytest}
import telecard_auth
try:
    import {module}
except telecard_auth.MissingExtra as error:
    print(json.dumps({{
        "type": type(error).__name__,
        "code": error.code,
        "details": dict(error.details),
        "configuration_error": isinstance(error, telecard_auth.ConfigurationError),
        "messages": [error.message_en, error.message_ar],
        "cause": type(error.__cause__).__name__,
        "left_behind": sorted(m for m in sys.modules if m.startswith("{module}")),
    }}))
else:
    print(json.dumps(None))
"""


def _run_python(script: str) -> object:
    completed = subprocess.run(  # noqa: S603 - this interpreter, a script of this file
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == completed.returncode, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", ["telecard_auth.testing", "telecard_auth.pytest_plugin"])
@pytest.mark.parametrize("way", sorted(WITHOUT_PYTEST))
def test_without_pytest_the_import_names_the_extra(module: str, way: str) -> None:
    """Without pytest, importing the suites or the plugin raises MissingExtra naming [testing]."""
    script = IMPORT.format(without_pytest=WITHOUT_PYTEST[way], module=module)
    result = _run_python(script)
    assert isinstance(result, dict)
    messages = result.pop("messages")
    assert {
        "type": "MissingExtra",
        "code": "missing_extra",
        "details": {"feature": module, "extra": "testing"},
        "configuration_error": True,
        "cause": "ModuleNotFoundError",
        "left_behind": [],
    } == result
    assert [True, True] == ["pip install 'telecard-auth[testing]'" in text for text in messages]
    assert messages[0].startswith(f"{module} needs optional dependencies")


STRICT_INI = """
[pytest]
addopts = --strict-markers --strict-config --import-mode=importlib -p no:cacheprovider
filterwarnings = error
"""

#: The two documented ways to have the suites' asserts rewritten.
REWRITE_CONFTEST = {
    "register": 'import pytest\n\npytest.register_assert_rewrite("telecard_auth.testing")\n',
    "plugin": 'pytest_plugins = ["telecard_auth.testing"]\n',
}

OFF_BY_ONE = '''
import sys

import attrs
import pytest

from telecard_auth import MemoryStorage
from telecard_auth.testing import StorageContract


class OffByOne(MemoryStorage):
    """Reports every subject one version ahead of what it stored."""

    def load(self, subject_ref):
        snapshot = super().load(subject_ref)
        return attrs.evolve(snapshot, version=snapshot.version + 1)


class TestOffByOne(StorageContract):
    @pytest.fixture
    def storage(self):
        return OffByOne()


def test_every_module_of_the_suites_is_rewritten():
    suites = [name for name in sys.modules if name.startswith("telecard_auth.testing")]
    loaders = {name: type(sys.modules[name].__loader__).__name__ for name in suites}
    assert len(loaders) > 10
    assert {"AssertionRewritingHook"} == set(loaders.values())
'''


@pytest.mark.parametrize("way", sorted(REWRITE_CONFTEST))
def test_a_failing_contract_assert_shows_its_values(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """Every module of the suites is rewritten: a failing assert in a mixin shows what differed."""
    # Installed, the package's pytest11 entry point has pytest rewrite all of telecard_auth; without
    # it, only the conftest's registration of telecard_auth.testing can cover the suites' modules.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makefile(".ini", pytest=textwrap.dedent(STRICT_INI))
    pytester.makeconftest(REWRITE_CONFTEST[way])
    pytester.makepyfile(test_off_by_one=OFF_BY_ONE)
    result = pytester.runpytest_subprocess(
        "-k", "rewritten or test_load_of_unknown_subject_is_empty_at_version_zero"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * assert SubjectSnapsh* == SubjectSnapsh*",
            "E *Differing attributes:",
            "E *?'version'?",  # fnmatch reads [ ] as a set of characters
            "E *version: 0 != 1",
            "*/telecard_auth/testing/_operations.py:*: AssertionError",
        ]
    )
