"""Every Python block in the README and the documentation runs as part of the test suite; and
the fixtures every test directory shares (``private``: a directory key files may live in)."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.myst import PythonCodeBlockParser

# The contract suites hold no doctests, and pytest must import them itself, as plugins, to rewrite
# their asserts: collecting them for doctests would import them first.
collect_ignore_glob = ["src/telecard_auth/testing/*"]

pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser()], patterns=["README.md", "docs/*.md"]
).pytest()


def _others_can_change(folder: Path) -> bool:
    """Whether a user other than us and root could change ``folder`` or a directory above it."""
    real = folder.resolve()
    for directory in (real, *real.parents):
        info = directory.stat()
        if info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
            return True
    return False


@pytest.fixture(scope="session")
def private_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory that no other user can change, nor any above it: key files may live there.

    The command refuses a key file under a directory others can write, as ssh does, and that
    includes the usual temporary directory (/tmp); so this is under $HOME unless TMPDIR is private.
    """
    bases = [tmp_path_factory.getbasetemp()]
    if os.name == "posix":
        bases = [base for base in (*bases, Path.home()) if not _others_can_change(base)]
    if not bases:
        pytest.fail("key files need a private directory: set TMPDIR or HOME to one")
    folder = Path(tempfile.mkdtemp(prefix=".telecard-auth-tests-", dir=bases[0]))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private(private_root: Path) -> Path:
    """A fresh directory for one test, mode 0700, that no other user can change."""
    return Path(tempfile.mkdtemp(dir=private_root))
