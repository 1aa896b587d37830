"""What a distribution gets: an sdist that can run its own tests, and metadata that says only what
a user installs. Both archives are built here, without network (``--no-isolation``)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel of this checkout, in a directory of their own."""
    pytest.importorskip("build", reason="the 'package' dependency group is not installed")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(  # noqa: S603 - this interpreter, building this checkout
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return out


def _sdist_names(built: Path) -> set[str]:
    (sdist,) = built.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def test_the_sdist_holds_what_its_tests_read(built: Path) -> None:
    """conftest, fuzz targets, benchmarks, docs, examples and README: what pytest reads."""
    names = _sdist_names(built)
    needed = {
        "conftest.py",
        "pyproject.toml",
        "README.md",
        "Makefile",
        "fuzz/fuzz_receipt.py",
        "benchmarks/soak.py",
        "benchmarks/chaos.py",
        "docs/security.md",
        "examples/quickstart.py",
        "tests/conftest.py",
        "src/telecard_auth/_storage/lua/commit.lua",
    }
    assert set() == needed - names
    assert [] == [name for name in names if name.startswith((".venv", "docs/_build", ".git/"))]


def test_the_wheel_holds_the_package_and_its_scripts(built: Path) -> None:
    """The wheel has the package, its Lua scripts and py.typed, and nothing else of the tree."""
    (wheel,) = built.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {
        "telecard_auth/py.typed",
        "telecard_auth/_storage/lua/commit.lua",
        "telecard_auth/_storage/lua/purge.lua",
        "telecard_auth/testing/__init__.py",
    } <= names
    assert [] == [n for n in names if n.split("/")[0] in ("tests", "docs", "benchmarks", "fuzz")]


def test_metadata_offers_only_what_a_user_installs(built: Path) -> None:
    """Extras are the backends and the testing suites; links and the pytest classifier are set."""
    (wheel,) = built.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode("utf-8"))
    assert ["postgres", "redis", "testing"] == sorted(message.get_all("Provides-Extra") or [])
    requirements = message.get_all("Requires-Dist") or []
    unwanted = ("django", "matplotlib", "atheris", "sphinx", "mypy", "ruff")
    assert [] == [r for r in requirements if r.lower().startswith(unwanted)]
    urls = {url.split(",")[0] for url in message.get_all("Project-URL") or []}
    assert {"Homepage", "Source", "Documentation", "Issues", "Changelog"} <= urls
    assert "Framework :: Pytest" in (message.get_all("Classifier") or [])
