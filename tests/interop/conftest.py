"""Fixtures of the cross-stack receipt tests: real receipts as an operator holds them, the forged
tokens every verifier must refuse, and Node's ``jose`` installed for the session.

A receipt here is made the way production makes one: a code issued and redeemed through
``CodeIssuer`` with a ``ReceiptSigner``, on ``MemoryStorage``, with a ``ManualClock``. The clock
is set in the past, since PyJWT refuses an ``iat`` still to come. The token and the public JWK
Set reach the other libraries as JSON text, and nothing else of this library does.

Node's ``jose`` is installed with ``npm ci`` (the version and checksum that
``node/package-lock.json`` pins, no install scripts) into a directory this test session owns,
next to the scripts of ``node/``. Without node or npm, or when the install fails, the Node tests
skip with the reason; with ``CI=true`` they fail instead: CI never passes by skipping.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.helpers import unavailable
from tests.interop.forgeries import FORGERIES, Forgery, forge

from telecard_auth import (
    CodeIssuer,
    Keyring,
    ManualClock,
    MemoryStorage,
    Receipt,
    ReceiptSigner,
    Subject,
)

#: When the code is issued: in the past, whatever day the tests run.
ISSUED_AT = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
#: When the agent redeems it.
REDEEMED_AT = ISSUED_AT + timedelta(minutes=7, seconds=30)
#: The operator the code is for, and so the receipt's audience.
PROVIDER = "stc"
#: Every receipt's header, member for member.
HEADER = {"alg": "EdDSA", "kid": "r1", "typ": "telecard-receipt+jwt"}

NODE_SOURCES = Path(__file__).resolve().parent / "node"
#: The oldest Node that jose 6 runs on with Ed25519 in WebCrypto.
OLDEST_NODE = 20


@attrs.frozen(kw_only=True)
class Issued:
    """A genuine receipt as the operator holds it, and what it must be found to say."""

    token: str
    #: The signer's public JWK Set, as the operator parses it from JSON.
    jwks: dict[str, Any]
    audience: str
    #: The claims the token must carry, worked out from the issued code and the redemption.
    claims: dict[str, Any]
    #: What our own ``verify_receipt`` reads from the token.
    receipt: Receipt
    #: The private JWK of the signing key (with ``d``), for other libraries to sign with.
    signing_jwk: dict[str, Any]


def _through_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` as another program gets it: written as JSON text and parsed back."""
    parsed: dict[str, Any] = json.loads(json.dumps(value))
    return parsed


def _redeemed(keyring: Keyring, shape: str) -> Issued:
    signer = ReceiptSigner.generate("r1")
    clock = ManualClock(ISSUED_AT)
    issuer = CodeIssuer(MemoryStorage(), keyring=keyring, clock=clock, signer=signer)
    customer = Subject.citizen("1000000008")
    if shape == "bound":
        service, reference, bindings = "number_transfer", "riyadh-branch-4", ["msisdn", "recipient"]
        number, recipient = "0551234567", Subject.resident("2129040479")
        code = issuer.issue(customer, PROVIDER, service=service, msisdn=number, recipient=recipient)
        clock.set(REDEEMED_AT)
        redemption = issuer.redeem(
            customer,
            PROVIDER,
            code.code,
            service,
            msisdn=number,
            recipient=recipient,
            reference=reference,
        )
    else:
        service, reference, bindings = "new_line", None, []
        code = issuer.issue(customer, PROVIDER)
        clock.set(REDEEMED_AT)
        redemption = issuer.redeem(customer, PROVIDER, code.code, service)
    claims: dict[str, Any] = {
        "iss": "telecard-auth",
        "sub": redemption.customer_ref,
        "aud": PROVIDER,
        "iat": int(REDEEMED_AT.timestamp()),
        "jti": code.code_id,
        "service": service,
        "code_issued_at": int(ISSUED_AT.timestamp()),
        "bindings": bindings,
    }
    if reference is not None:
        claims["reference"] = reference
    return Issued(
        token=redemption.receipt.token,
        jwks=_through_json(signer.public_jwks()),
        audience=PROVIDER,
        claims=claims,
        receipt=redemption.receipt,
        signing_jwk=_through_json(signer.current.to_jwk()),
    )


@pytest.fixture(params=["plain", "bound"])
def issued(request: pytest.FixtureRequest, keyring: Keyring) -> Issued:
    """A genuine receipt: for a code without bindings and no reference ("plain"), or for a
    number transfer bound to a mobile number and a recipient, redeemed with a reference."""
    return _redeemed(keyring, request.param)


@pytest.fixture(params=FORGERIES)
def forgery(request: pytest.FixtureRequest, keyring: Keyring) -> Forgery:
    """A token a verifier must refuse, made from a genuine receipt, with the audience to expect."""
    genuine = _redeemed(keyring, "bound")
    return forge(request.param, genuine.token, genuine.jwks, genuine.audience)


# --- Node ----------------------------------------------------------------------------------------


@attrs.frozen
class Node:
    """Node, with jose installed beside our scripts: runs one script on one JSON request."""

    executable: str
    folder: Path

    def run(self, script: str, request: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        """Run ``node/<script>`` with ``request`` as JSON on its standard input."""
        return subprocess.run(  # noqa: S603 - our own script, with our own input
            [self.executable, str(self.folder / script)],
            input=json.dumps(request),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    """Node 20 or newer, and jose as ``node/package-lock.json`` pins it, in a folder of our own."""
    executable, npm = shutil.which("node"), shutil.which("npm")
    if executable is None or npm is None:
        unavailable("node and npm are needed on PATH for the Node interop tests")
    version = subprocess.run(  # noqa: S603 - the node found on PATH
        [executable, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < OLDEST_NODE:
        unavailable(f"the Node interop tests need Node {OLDEST_NODE} or newer, not {version!r}")
    folder = tmp_path_factory.mktemp("node-jose")
    for source in NODE_SOURCES.iterdir():
        shutil.copy(source, folder / source.name)
    try:
        installed = subprocess.run(  # noqa: S603 - npm ci of the pinned lock file, no scripts
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable("npm ci of jose did not finish in 300 s")
    if installed.returncode != 0:
        unavailable(f"npm ci of jose failed: {installed.stderr.strip()[-2000:]}")
    return Node(executable=executable, folder=folder)
