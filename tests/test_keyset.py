"""Tests for ``KeySet`` and its JWK Set form: round trips, what each entry holds, refusals of
malformed sets (by position, never by value), rotation steps and the public set.

Files are tests/test_cli.py's business; here key sets go through ``to_jwks``/``from_jwks`` (and
JSON text) only.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers import K1_SECRET, K2_SECRET, PSEUDONYM_SECRET

from telecard_auth import KeyringError, TelecardAuthError, verify_receipt
from telecard_auth._core.receipt import DEFAULT_ISSUER
from telecard_auth.keys import HmacKey, Keyring, KeySet, ReceiptSigner, SigningKey

# --- fixed test values ----------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    """Unpadded base64url, computed here independently of the library."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
R1_SEED = hashlib.sha256(b"telecard-auth test receipt key r1").digest()
#: r1's public half, worked out once with another tool.
R1_X = "XA278EpkPc7TSI8U5O3P8Hqf0dCEvB_q258kPq7I5tM"
#: Every secret of the fixed key set, as its JWK Set writes it: none may show in an error.
SECRETS = [_b64(K1_SECRET), _b64(PSEUDONYM_SECRET), _b64(R1_SEED)]


def _fixed() -> KeySet:
    """A key set of fixed keys: HMAC key k1, pseudonym key p1, receipt key r1, all added NOW."""
    return KeySet(
        keyring=Keyring(
            keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
            pseudonym_keys=(HmacKey(key_id="p1", secret=PSEUDONYM_SECRET),),
        ),
        signer=ReceiptSigner(
            keys=(
                SigningKey(key_id="r1", private_key=Ed25519PrivateKey.from_private_bytes(R1_SEED)),
            )
        ),
        added_at={"k1": NOW, "p1": NOW, "r1": NOW},
    )


#: What ``_fixed().to_jwks()`` must be, written out here by hand.
FIXED_JWKS: dict[str, Any] = {
    "issuer": "telecard-auth",
    "pseudonym_standby": False,
    "keys": [
        {
            "kty": "oct",
            "kid": "k1",
            "role": "hmac",
            "alg": "HS256",
            "k": _b64(K1_SECRET),
            "added_at": "2026-11-25T06:00:00+00:00",
        },
        {
            "kty": "oct",
            "kid": "p1",
            "role": "pseudonym",
            "alg": "HS256",
            "k": _b64(PSEUDONYM_SECRET),
            "added_at": "2026-11-25T06:00:00+00:00",
        },
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": "r1",
            "use": "sig",
            "alg": "EdDSA",
            "x": R1_X,
            "d": _b64(R1_SEED),
            "role": "receipt",
            "added_at": "2026-11-25T06:00:00+00:00",
        },
    ],
}


def _document() -> dict[str, Any]:
    """The fixed key set's private JWK Set, as JSON text parses back: a fresh copy to change."""
    parsed: dict[str, Any] = json.loads(json.dumps(_fixed().to_jwks()))
    return parsed


def _names(value: object) -> set[str]:
    """Every member name anywhere in a JSON value."""
    if isinstance(value, Mapping):
        return set(value) | {name for member in value.values() for name in _names(member)}
    if isinstance(value, list):
        return {name for member in value for name in _names(member)}
    return set()


# --- the JWK Set form -----------------------------------------------------------------------------


def test_the_private_set_has_the_documented_members() -> None:
    """Each key with its role, kid, secret and added_at; the issuer and standby flag on top."""
    document = _fixed().to_jwks()
    assert isinstance(document.pop("comment"), str)
    assert FIXED_JWKS == document


def test_generate_makes_k1_p1_r1() -> None:
    """generate: one fresh key of each role, added now, under the default issuer."""
    keys = KeySet.generate(NOW)
    assert ["k1"] == [key.key_id for key in keys.keyring.keys]
    assert ["p1"] == [key.key_id for key in keys.keyring.pseudonym_keys]
    assert ["r1"] == [key.key_id for key in keys.signer.keys]
    assert {"k1": NOW, "p1": NOW, "r1": NOW} == dict(keys.added_at)
    assert DEFAULT_ISSUER == keys.signer.issuer
    assert not keys.keyring.pseudonym_standby
    assert KeySet.generate(NOW) != keys  # fresh secrets every time


def test_roles_and_key_types() -> None:
    """hmac and pseudonym keys are oct HS256 keys; receipt keys are OKP Ed25519 EdDSA keys."""
    keys = KeySet.generate(NOW).rotated(LATER, hmac=True, signing=True).with_pseudonym_step(LATER)
    table = [
        (jwk["kid"], jwk["role"], jwk["kty"], jwk.get("crv"), jwk["alg"])
        for jwk in keys.to_jwks()["keys"]
    ]
    assert [
        ("k1", "hmac", "oct", None, "HS256"),
        ("k2", "hmac", "oct", None, "HS256"),
        ("p1", "pseudonym", "oct", None, "HS256"),
        ("p2", "pseudonym", "oct", None, "HS256"),
        ("r1", "receipt", "OKP", "Ed25519", "EdDSA"),
        ("r2", "receipt", "OKP", "Ed25519", "EdDSA"),
    ] == table


def test_round_trip() -> None:
    """from_jwks(to_jwks()) is an equal key set, through JSON text too."""
    for keys in (_fixed(), KeySet.generate(NOW), KeySet.generate(NOW, issuer="urn:sa:telecard")):
        assert keys == KeySet.from_jwks(keys.to_jwks())
        assert keys == KeySet.from_jwks(json.loads(json.dumps(keys.to_jwks())))
        assert keys.to_jwks() == KeySet.from_jwks(keys.to_jwks()).to_jwks()


def test_the_fixed_set_is_read_from_a_hand_written_document() -> None:
    """The document written by hand above reads as the fixed key set, without a comment."""
    assert _fixed() == KeySet.from_jwks(FIXED_JWKS)


def test_added_at_is_kept_as_utc() -> None:
    """added_at is read in any zone as the same instant in UTC; a key without one has none."""
    document = _document()
    document["keys"][0]["added_at"] = "2026-11-25T09:00:00+03:00"
    document["keys"][1]["added_at"] = "2026-11-25T06:00:00Z"
    del document["keys"][2]["added_at"]
    keys = KeySet.from_jwks(document)
    assert {"k1": NOW, "p1": NOW} == dict(keys.added_at)
    assert all(moment.utcoffset() == timedelta(0) for moment in keys.added_at.values())
    assert "added_at" not in keys.to_jwks()["keys"][2]
    assert keys == KeySet.from_jwks(keys.to_jwks())


def test_added_at_written_from_another_zone_is_utc() -> None:
    """A key added at a Riyadh time is written as the same instant in UTC."""
    riyadh = NOW.astimezone(timezone(timedelta(hours=3)))
    keys = attrs.evolve(_fixed(), added_at={"k1": riyadh})
    assert "2026-11-25T06:00:00+00:00" == keys.to_jwks()["keys"][0]["added_at"]


def test_the_issuer_is_kept() -> None:
    """The receipts' iss is the set's issuer member; without one it is the default."""
    keys = KeySet.generate(NOW, issuer="https://sim-codes.example.sa")
    assert "https://sim-codes.example.sa" == keys.to_jwks()["issuer"]
    assert "https://sim-codes.example.sa" == KeySet.from_jwks(keys.to_jwks()).signer.issuer
    document = _document()
    del document["issuer"]
    assert DEFAULT_ISSUER == KeySet.from_jwks(document).signer.issuer


def test_pseudonym_standby_is_kept() -> None:
    """A pseudonym key in standby stays in standby through the JWK Set; without the member, not."""
    standby = _fixed().with_pseudonym_step(LATER)
    assert standby.to_jwks()["pseudonym_standby"] is True
    read = KeySet.from_jwks(standby.to_jwks())
    assert read.keyring.pseudonym_standby
    assert "p1" == read.keyring.pseudonym_key.key_id
    assert standby == read
    document = _document()
    del document["pseudonym_standby"]
    assert not KeySet.from_jwks(document).keyring.pseudonym_standby


def test_the_set_signs_receipts_its_public_and_private_forms_verify() -> None:
    """A receipt signed by the set's signer verifies with its public set and its private set."""
    keys = _fixed()
    receipt = keys.signer.sign(
        code_id="q3Vx0bLk9TzA2mNc",
        provider_id="stc",
        service_id="new_line",
        customer_ref="3f9a0c1b2d4e5f60718293a4b5c6d7e8",
        issued_at=NOW,
        redeemed_at=NOW + timedelta(minutes=5),
    )
    assert receipt == verify_receipt(receipt.token, keys.public_jwks(), audience="stc")
    assert receipt == verify_receipt(receipt.token, keys.to_jwks(), audience="stc")


# --- the public set -------------------------------------------------------------------------------


def test_public_jwks_are_the_receipt_keys_public_halves_only() -> None:
    """Only OKP keys, without d, role or added_at; no secret of any role in the text."""
    keys = _fixed().rotated(LATER, hmac=True, signing=True).with_pseudonym_step(LATER)
    public = keys.public_jwks()
    assert ["r1", "r2"] == [jwk["kid"] for jwk in public["keys"]]
    assert {"OKP"} == {jwk["kty"] for jwk in public["keys"]}
    assert {"keys", "kty", "crv", "kid", "use", "alg", "x"} == _names(public)
    assert keys.signer.public_jwks() == public
    text = json.dumps(public)
    secrets = [_b64(key.secret) for key in (*keys.keyring.keys, *keys.keyring.pseudonym_keys)]
    secrets += [jwk["d"] for jwk in keys.to_jwks()["keys"] if "d" in jwk]
    assert 6 == len(secrets)
    assert [] == [secret for secret in secrets if secret in text]


def test_repr_shows_no_secret() -> None:
    """A key set in a log shows ids and times, no secret."""
    shown = repr(_fixed()) + str(_fixed())
    assert [] == [secret for secret in SECRETS if secret in shown]
    assert [] == [
        secret for secret in (K1_SECRET, PSEUDONYM_SECRET, R1_SEED) if repr(secret) in shown
    ]


# --- rotation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hmac", "signing", "hmac_ids", "receipt_ids"),
    [
        (True, False, ["k1", "k2"], ["r1"]),
        (False, True, ["k1"], ["r1", "r2"]),
        (True, True, ["k1", "k2"], ["r1", "r2"]),
        (False, False, ["k1"], ["r1"]),
    ],
)
def test_rotated_adds_a_newest_key_of_each_kind_asked_for(
    hmac: bool, signing: bool, hmac_ids: list[str], receipt_ids: list[str]
) -> None:
    """rotated adds k<n+1> and/or r<n+1>, current, added now; nothing is removed or changed."""
    before = _fixed()
    after = before.rotated(LATER, hmac=hmac, signing=signing)
    assert hmac_ids == [key.key_id for key in after.keyring.keys]
    assert receipt_ids == [key.key_id for key in after.signer.keys]
    assert hmac_ids[-1] == after.keyring.current.key_id
    assert receipt_ids[-1] == after.signer.current.key_id
    assert ["p1"] == [key.key_id for key in after.keyring.pseudonym_keys]
    new = set(hmac_ids + receipt_ids) - {"k1", "r1"}
    assert {**dict.fromkeys(["k1", "p1", "r1"], NOW), **dict.fromkeys(new, LATER)} == dict(
        after.added_at
    )
    assert _fixed() == before
    assert after == KeySet.from_jwks(after.to_jwks())


def test_rotated_twice_counts_on() -> None:
    """Each rotation takes the next free number of its prefix."""
    keys = _fixed().rotated(LATER, hmac=True, signing=True).rotated(LATER, hmac=True, signing=True)
    assert ["k1", "k2", "k3"] == [key.key_id for key in keys.keyring.keys]
    assert ["r1", "r2", "r3"] == [key.key_id for key in keys.signer.keys]


def test_rotated_skips_ids_taken_by_another_role() -> None:
    """A new id is unique across the whole set, whichever role holds the id already."""
    keys = KeySet(
        keyring=Keyring(
            keys=(HmacKey(key_id="k1", secret=K1_SECRET), HmacKey(key_id="r2", secret=K2_SECRET)),
            pseudonym_keys=(HmacKey(key_id="k2", secret=PSEUDONYM_SECRET),),
        ),
        signer=ReceiptSigner.generate("r1"),
    )
    rotated = keys.rotated(LATER, hmac=True, signing=True)
    assert ["k1", "r2", "k3"] == [key.key_id for key in rotated.keyring.keys]
    assert ["r1", "r3"] == [key.key_id for key in rotated.signer.keys]


def test_pseudonym_steps() -> None:
    """First step: p2 in standby (p1 still files); second step: p2 files. Both survive the set."""
    first = _fixed().with_pseudonym_step(LATER)
    assert ["p1", "p2"] == [key.key_id for key in first.keyring.pseudonym_keys]
    assert first.keyring.pseudonym_standby
    assert "p1" == first.keyring.pseudonym_key.key_id
    assert LATER == first.added_at["p2"]
    second = first.with_pseudonym_step(LATER + timedelta(days=1))
    assert ["p1", "p2"] == [key.key_id for key in second.keyring.pseudonym_keys]
    assert not second.keyring.pseudonym_standby
    assert "p2" == second.keyring.pseudonym_key.key_id
    assert LATER == second.added_at["p2"]
    for keys in (first, second):
        assert keys == KeySet.from_jwks(keys.to_jwks())
    assert ["k1"] == [key.key_id for key in second.keyring.keys]
    assert ["r1"] == [key.key_id for key in second.signer.keys]


@given(st.lists(st.sampled_from(["hmac", "signing", "both", "pseudonym"]), max_size=6))
@settings(max_examples=30)
def test_any_sequence_of_steps_keeps_ids_unique_and_round_trips(steps: list[str]) -> None:
    """Rotations and pseudonym steps in any order: ids unique across roles, the set round trips."""
    keys = KeySet.generate(NOW)
    for number, step in enumerate(steps):
        now = NOW + timedelta(days=number + 1)
        if step == "pseudonym":
            keys = keys.with_pseudonym_step(now)
        else:
            keys = keys.rotated(now, hmac=step in ("hmac", "both"), signing=step != "hmac")
    ids = [jwk["kid"] for jwk in keys.to_jwks()["keys"]]
    assert len(set(ids)) == len(ids)
    assert set(ids) == set(keys.added_at)
    assert keys == KeySet.from_jwks(json.loads(json.dumps(keys.to_jwks())))


# --- refusals -------------------------------------------------------------------------------------


def test_kids_are_unique_across_roles() -> None:
    """One kid for two keys of different roles is refused, built directly or read."""
    with pytest.raises(KeyringError, match="across roles"):
        KeySet(
            keyring=_fixed().keyring,
            signer=ReceiptSigner(keys=(SigningKey.generate("p1"),)),
        )
    for index, other in ((0, "p1"), (2, "k1"), (1, "r1")):
        document = _document()
        document["keys"][index]["kid"] = other
        with pytest.raises(KeyringError) as caught:
            KeySet.from_jwks(document)
        assert [] == [secret for secret in SECRETS if secret in str(caught.value)]


@pytest.mark.parametrize(
    ("keyring", "signer"),
    [
        (None, None),
        ("keyring", "signer"),
        (Keyring.generate(), None),
        (None, ReceiptSigner.generate()),
    ],
    ids=repr,
)
def test_a_key_set_holds_a_keyring_and_a_signer(keyring: Any, signer: Any) -> None:
    """Anything but a Keyring and a ReceiptSigner is refused."""
    with pytest.raises(KeyringError):
        KeySet(keyring=keyring, signer=signer)


def _entry_cases() -> dict[str, tuple[int, dict[str, Any] | object]]:
    """Each fault of one entry: the position it is put at, and the members it changes.

    A member changed to ``...`` is removed; a case whose changes are not a dict replaces the
    whole entry.
    """
    k = _b64(K1_SECRET)
    d = _b64(R1_SEED)
    return {
        "entry a string": (0, "k1"),
        "entry a list": (1, [{"kty": "oct"}]),
        "entry null": (2, None),
        "entry a number": (1, 5),
        "role missing": (0, {"role": ...}),
        "role unknown": (1, {"role": "signing"}),
        "role upper case": (0, {"role": "HMAC"}),
        "role not text": (2, {"role": ["receipt"]}),
        "hmac role on an OKP key": (2, {"role": "hmac"}),
        "receipt role on an oct key": (0, {"role": "receipt"}),
        "kty missing": (1, {"kty": ...}),
        "kty EC": (2, {"kty": "EC"}),
        "k missing": (0, {"k": ...}),
        "k a number": (1, {"k": 12345}),
        "k padded": (0, {"k": k + "="}),
        "k unused bits": (0, {"k": k[:-1] + chr(ord(k[-1]) ^ 1)}),
        "k standard alphabet": (0, {"k": "+" + k[1:]}),
        "k with a newline": (0, {"k": k[:10] + "\n" + k[10:]}),
        "k too short": (1, {"k": _b64(K1_SECRET[:16])}),
        "k all zeros": (1, {"k": _b64(bytes(32))}),
        "k a password": (0, {"k": _b64(b"correct horse battery staple 123")}),
        "oct kid missing": (0, {"kid": ...}),
        "oct kid with a space": (1, {"kid": "p 1"}),
        "oct kid a number": (0, {"kid": 1}),
        "okp kid too long": (2, {"kid": "r" * 33}),
        "d missing": (2, {"d": ...}),
        "d short": (2, {"d": d[:-2]}),
        "d padded": (2, {"d": d + "="}),
        "d not the private half of x": (2, {"d": _b64(K2_SECRET)}),
        "x missing": (2, {"x": ...}),
        "crv X25519": (2, {"crv": "X25519"}),
        "use enc": (2, {"use": "enc"}),
        "alg HS256 on the receipt key": (2, {"alg": "HS256"}),
        "d weak": (2, {"d": _b64(bytes(range(32))), "x": _weak_x()}),
        "added_at naive": (1, {"added_at": "2026-11-25T06:00:00"}),
        "added_at a date": (0, {"added_at": "2026-11-25"}),
        "added_at not a time": (2, {"added_at": "yesterday"}),
        "added_at a number": (0, {"added_at": 1764050400}),
        "added_at null": (1, {"added_at": None}),
        "name not text": (2, {1: "x"}),
    }


def _weak_x() -> str:
    """The public half of the patterned private key bytes(range(32)): a consistent weak pair."""
    public = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    return _b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


ENTRY_CASES = _entry_cases()


@pytest.mark.parametrize("case", list(ENTRY_CASES.values()), ids=list(ENTRY_CASES))
def test_a_malformed_entry_is_refused_by_its_position(case: tuple[int, object]) -> None:
    """Each bad entry is a KeyringError naming keys[i], never a secret of the set."""
    index, changes = case
    document = _document()
    if isinstance(changes, dict):
        entry = {**document["keys"][index], **changes}
        document["keys"][index] = {name: v for name, v in entry.items() if v is not ...}
    else:
        document["keys"][index] = changes
    with pytest.raises(KeyringError) as caught:
        KeySet.from_jwks(document)
    error = caught.value
    assert "keyring_error" == error.code
    assert f"keys[{index}]" in error.details["reason"]
    shown = [str(error), repr(error), error.message_ar, json.dumps(error.to_dict())]
    assert [] == [secret for secret in SECRETS for text in shown if secret[:12] in text]


def test_the_position_counts_every_entry_before() -> None:
    """With two more keys in front, the receipt key's fault is reported at keys[4]."""
    document = _document()
    extra = copy.deepcopy(document["keys"][0])
    extra["kid"], extra["k"] = "k2", _b64(K2_SECRET)
    document["keys"][1:1] = [
        extra,
        {**extra, "kid": "k3", "k": _b64(hashlib.sha256(b"3").digest())},
    ]
    del document["keys"][4]["d"]
    with pytest.raises(KeyringError, match=r"keys\[4\]"):
        KeySet.from_jwks(document)


@pytest.mark.parametrize("role", ["hmac", "pseudonym", "receipt"])
def test_a_set_without_a_role_is_refused(role: str) -> None:
    """Every role needs at least one key."""
    document = _document()
    document["keys"] = [jwk for jwk in document["keys"] if jwk["role"] != role]
    with pytest.raises(KeyringError, match=f"no {role} key"):
        KeySet.from_jwks(document)


def _with_member(**changes: Any) -> dict[str, Any]:
    document = _document()
    document.update(changes)
    return {name: value for name, value in document.items() if value is not ...}


NOT_KEY_SETS: dict[str, object] = {
    "None": None,
    "JSON text": json.dumps(FIXED_JWKS),
    "bytes": json.dumps(FIXED_JWKS).encode(),
    "a list": FIXED_JWKS["keys"],
    "empty object": {},
    "keys missing": _with_member(keys=...),
    "keys empty": _with_member(keys=[]),
    "keys an object": _with_member(keys={"k1": FIXED_JWKS["keys"][0]}),
    "keys text": _with_member(keys="k1,p1,r1"),
    "public set only": {"keys": [{**FIXED_JWKS["keys"][2], "d": ...}]},
    "standby as text": _with_member(pseudonym_standby="true"),
    "standby as a number": _with_member(pseudonym_standby=1),
    "standby null": _with_member(pseudonym_standby=None),
    "standby with one pseudonym key": _with_member(pseudonym_standby=True),
    "issuer empty": _with_member(issuer=""),
    "issuer with a space": _with_member(issuer="telecard auth"),
    "issuer a number": _with_member(issuer=7),
    "issuer null": _with_member(issuer=None),
    "names not text": {1: "x", "keys": FIXED_JWKS["keys"]},
    "two hmac keys with one kid": _with_member(
        keys=[
            FIXED_JWKS["keys"][0],
            {**FIXED_JWKS["keys"][0], "k": _b64(K2_SECRET)},
            *FIXED_JWKS["keys"][1:],
        ]
    ),
    "three pseudonym keys": _with_member(
        keys=[
            FIXED_JWKS["keys"][0],
            *(
                {
                    **FIXED_JWKS["keys"][1],
                    "kid": f"p{n}",
                    "k": _b64(hashlib.sha256(bytes([n])).digest()),
                }
                for n in range(1, 4)
            ),
            FIXED_JWKS["keys"][2],
        ]
    ),
}


@pytest.mark.parametrize("document", list(NOT_KEY_SETS.values()), ids=list(NOT_KEY_SETS))
def test_documents_that_are_not_key_sets_are_refused(document: object) -> None:
    """Not a JSON object, no keys, a bad issuer or standby flag, clashing keys: KeyringError."""
    with pytest.raises(KeyringError) as caught:
        KeySet.from_jwks(document)
    assert "keyring_error" == caught.value.code
    assert [] == [secret for secret in SECRETS if secret[:12] in str(caught.value)]


# --- times and ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(KeySet.generate, id="generate"),
        pytest.param(lambda now: _fixed().rotated(now, hmac=True, signing=True), id="rotated"),
        pytest.param(lambda now: _fixed().with_pseudonym_step(now), id="with_pseudonym_step"),
    ],
)
def test_a_naive_time_is_refused(make: Callable[[datetime], KeySet]) -> None:
    """Times are aware: a naive now is refused, as everywhere else in the library."""
    with pytest.raises(TelecardAuthError):
        make(datetime(2026, 11, 25, 6, 0))


@pytest.mark.parametrize("added_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_added_at_out_of_range_is_a_keyring_error(added_at: str) -> None:
    """A time that has no UTC instant is refused like any other bad added_at."""
    document = _document()
    document["keys"][0]["added_at"] = added_at
    with pytest.raises(KeyringError, match=r"keys\[0\]\.added_at"):
        KeySet.from_jwks(document)
