"""docs/trust.md's recipes work when pasted: its commands make ``redemption.json`` and
``jwks.json``, and its PyJWT and Node recipes, run as printed on those files, print the
receipt's claims, and fail when the audience is another operator's.

The blocks are the fenced blocks after a comment ``<!-- tests/interop/test_trust_doc.py: NAME
-->``: ``files`` (a console block whose ``$ `` lines are run by bash, in a fresh directory only we
can write, with the environment's ``telecard-auth`` first on ``PATH``), ``pyjwt`` and ``node``.
The Node recipe runs from the folder the ``node`` fixture installed jose into, in the directory
with the files.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.helpers import unavailable
from tests.interop.conftest import Node

from telecard_auth import verify_receipt

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.name != "posix", reason="the commands run in a POSIX shell"),
]

DOC = Path(__file__).resolve().parents[2] / "docs" / "trust.md"
#: The comment that marks a block this file runs.
MARK = "<!-- tests/interop/test_trust_doc.py: "


@attrs.frozen
class Recipe:
    """How to run one recipe, and how to point it at another operator."""

    #: The audience as the recipe writes it; the test replaces ``stc`` in it with ``mobily``.
    audience: str
    #: What the recipe's failure says when the audience is another operator's.
    refusal: str


RECIPES = {
    "pyjwt": Recipe(audience='audience="stc"', refusal="InvalidAudienceError"),
    "node": Recipe(audience='audience: "stc"', refusal="ERR_JWT_CLAIM_VALIDATION_FAILED"),
}


def _blocks() -> dict[str, tuple[str, str]]:
    """The marked blocks of the page, by name: (info string, content)."""
    text = DOC.read_text("utf-8")
    pattern = rf"^{re.escape(MARK)}(\w+) -->\n```(\w+)\n(.*?)^```$"
    return {
        found.group(1): (found.group(2), found.group(3))
        for found in re.finditer(pattern, text, re.M | re.S)
    }


def _source(name: str) -> str:
    return _blocks()[name][1]


def _environment() -> dict[str, str]:
    """A user's shell after installing the package: its commands first on PATH."""
    scripts = Path(sys.executable).parent
    if shutil.which("telecard-auth", path=str(scripts)) is None:
        pytest.fail(f"the telecard-auth command is not installed in {scripts}")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("TELECARD_AUTH_")
    }
    return environment | {"PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def files(private_root: Path) -> Path:
    """A fresh directory in which the page's commands have run, as a user pastes them."""
    bash = shutil.which("bash")
    if bash is None:
        unavailable("bash, which runs the page's commands, is not on PATH")
    folder = Path(tempfile.mkdtemp(dir=private_root))
    commands = [
        line.removeprefix("$ ") for line in _source("files").splitlines() if line.startswith("$ ")
    ]
    ran = subprocess.run(  # noqa: S603 - a shell running the page's commands
        [bash, "-c", "set -euo pipefail\n" + "\n".join(commands)],
        cwd=folder,
        env=_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == ran.returncode, ran.stdout + ran.stderr
    return folder


def _claims(token: str) -> Any:
    """The claims part of ``token``, decoded (not verified)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _run(
    name: str, source: str, folder: Path, request: pytest.FixtureRequest
) -> subprocess.CompletedProcess[str]:
    """Run the recipe ``name`` with ``source`` in ``folder``, where the files are."""
    if name == "pyjwt":
        script = folder / "verify_receipt.py"
        script.write_text(source, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        node: Node = request.getfixturevalue("node")
        script = node.folder / f"recipe-{uuid.uuid4().hex}.mjs"  # where jose resolves
        script.write_text(source, encoding="utf-8")
        command = [node.executable, str(script)]
    return subprocess.run(  # noqa: S603 - the page's recipe, run as a reader would
        command, cwd=folder, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_page_marks_its_blocks() -> None:
    """The page has the three marked blocks, each fenced with its language."""
    assert {"files": "console", "pyjwt": "py", "node": "js"} == {
        name: info for name, (info, _content) in _blocks().items()
    }


def test_the_commands_make_a_receipt_and_the_public_key_set(files: Path) -> None:
    """The commands leave a receipt for STC and the JWK Set that verifies it, public keys only."""
    token = json.loads((files / "redemption.json").read_text("utf-8"))["receipt"]
    jwks = json.loads((files / "jwks.json").read_text("utf-8"))
    assert [] == [key for key in jwks["keys"] if "d" in key]
    assert "stc" == verify_receipt(token, jwks, audience="stc").provider_id


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_recipe_prints_the_claims(
    name: str, files: Path, request: pytest.FixtureRequest
) -> None:
    """The recipe, as printed, exits 0 and prints the receipt's claims as JSON."""
    ran = _run(name, _source(name), files, request)
    assert 0 == ran.returncode, ran.stderr
    token = json.loads((files / "redemption.json").read_text("utf-8"))["receipt"]
    assert _claims(token) == json.loads(ran.stdout)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_recipe_fails_for_another_audience(
    name: str, files: Path, request: pytest.FixtureRequest
) -> None:
    """The recipe, checking for Mobily instead of STC, fails and prints nothing."""
    recipe, source = RECIPES[name], _source(name)
    assert 1 == source.count(recipe.audience)
    ran = _run(
        name,
        source.replace(recipe.audience, recipe.audience.replace("stc", "mobily")),
        files,
        request,
    )
    assert 0 != ran.returncode
    assert "" == ran.stdout
    assert recipe.refusal in ran.stderr
