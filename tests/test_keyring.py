"""Tests for HMAC keys and the keyring: key validation, weak keys, rotation of HMAC and pseudonym
keys, digests, pseudonyms and sealed identities."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import pickle
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import hmac_secrets, key_ids, short_secrets, subjects, weak_secrets

from telecard_auth import (
    SAUDI_PROVIDERS,
    CodeIssuer,
    ConfigurationError,
    HmacKey,
    InvalidInput,
    Keyring,
    KeyringError,
    ManualClock,
    MemoryStorage,
    Subject,
)
from telecard_auth._core.keyring import MIN_SECRET_BYTES, weakness
from telecard_auth._core.receipt import SigningKey
from telecard_auth._core.requests import identity_of

SECRET_1 = hashlib.sha256(b"telecard-auth keyring secret #1").digest()
SECRET_2 = hashlib.sha256(b"telecard-auth keyring secret #2").digest()
PSEUDONYM_SECRET = hashlib.sha256(b"telecard-auth pseudonym secret #1").digest()
PSEUDONYM_SECRET_2 = hashlib.sha256(b"telecard-auth pseudonym secret #2").digest()
K1 = HmacKey(key_id="k1", secret=SECRET_1)
K2 = HmacKey(key_id="k2", secret=SECRET_2)
P1 = HmacKey(key_id="p1", secret=PSEUDONYM_SECRET)
P2 = HmacKey(key_id="p2", secret=PSEUDONYM_SECRET_2)
P3 = HmacKey(key_id="p3", secret=hashlib.sha256(b"telecard-auth pseudonym secret #3").digest())

#: A customer's identity as the keyring sees it: kind and normalised identifier.
IDENTITY = "citizen:1000000008"
OTHER_IDENTITY = "resident:2129040479"

#: Text that may appear in identities, provider ids and codes: no unit separator (the library's
#: field separator) and no surrogates.
_FIELD_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x1f"), max_size=20)


def _ring(*keys: HmacKey, pseudonym: HmacKey = P1) -> Keyring:
    return Keyring(keys=keys, pseudonym_keys=(pseudonym,))


def _b64(raw: bytes) -> str:
    """Unpadded base64url, computed here independently of the library."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _renderings(secret: bytes) -> list[str]:
    """The ways a secret could show up in a message: repr, hex, base64, and as text."""
    shown = [repr(secret), secret.hex(), _b64(secret), base64.b64encode(secret).decode()]
    if secret.isascii():
        shown.append(secret.decode("ascii"))
    return shown


# --- HmacKey ---------------------------------------------------------------------------------


def test_secrets_are_32_bytes_or_more() -> None:
    """The minimum secret is 32 bytes, the output size of SHA-256."""
    assert 32 == MIN_SECRET_BYTES
    assert SECRET_1 == HmacKey(key_id="k1", secret=SECRET_1).secret
    with pytest.raises(KeyringError):
        HmacKey(key_id="k1", secret=SECRET_1[:31])


@given(short_secrets())
def test_short_secret_is_refused(secret: bytes) -> None:
    """A secret under 32 bytes is a KeyringError."""
    with pytest.raises(KeyringError) as excinfo:
        HmacKey(key_id="k1", secret=secret)
    assert "keyring_error" == excinfo.value.code


@pytest.mark.parametrize(
    "secret",
    [
        "x" * 32,
        bytearray(SECRET_1),
        memoryview(SECRET_1),
        None,
        2**256,
        list(SECRET_1),
        SECRET_1.hex(),
    ],
)
def test_secret_must_be_bytes(secret: object) -> None:
    """Text, bytearrays, memoryviews, numbers and lists are not secrets."""
    with pytest.raises(KeyringError):
        HmacKey(key_id="k1", secret=secret)  # type: ignore[arg-type]


@given(key_ids(), hmac_secrets())
def test_valid_key_ids_and_secrets_are_accepted(key_id: str, secret: bytes) -> None:
    """Any id of the documented shape and any random-looking secret of 32+ bytes make a key."""
    key = HmacKey(key_id=key_id, secret=secret)
    assert (key_id, secret) == (key.key_id, key.secret)


@pytest.mark.parametrize(
    "key_id",
    ["", "a" * 33, "k 1", "k/1", "k:1", "k1\n", "ك1", "k\u00e91", "\uff4b1", 1, None, b"k1"],
)
def test_bad_key_ids_are_refused(key_id: object) -> None:
    """Key ids are 1-32 ASCII letters, digits, '.', '_' or '-'."""
    with pytest.raises(KeyringError) as excinfo:
        HmacKey(key_id=key_id, secret=SECRET_1)  # type: ignore[arg-type]
    assert "keyring_error" == excinfo.value.code


def test_keyring_error_is_a_configuration_error() -> None:
    """Keyring problems are caught with the other configuration errors."""
    with pytest.raises(ConfigurationError):
        HmacKey(key_id="k1", secret=b"short")


def test_key_repr_hides_the_secret() -> None:
    """repr() and str() of a key show its id and nothing of its secret."""
    for text in (repr(K1), str(K1)):
        assert "k1" in text
        assert "secret" not in text
        for shown in _renderings(SECRET_1):
            assert shown not in text


def test_short_secret_error_does_not_echo_the_secret() -> None:
    """The refusal of a short secret does not repeat it."""
    with pytest.raises(KeyringError) as excinfo:
        HmacKey(key_id="k1", secret=b"do-not-print-me")
    assert "do-not-print-me" not in str(excinfo.value)
    assert "do-not-print-me" not in repr(excinfo.value)


def test_generated_keys_are_random_and_named() -> None:
    """HmacKey.generate makes a 32-byte key with the given id, a new secret each time."""
    first, second = HmacKey.generate("k7"), HmacKey.generate("k7")
    assert ("k7", 32) == (first.key_id, len(first.secret))
    assert first.secret != second.secret


# --- weak keys (finding 9) -------------------------------------------------------------------

#: 16 distinct byte values, neither printable, nor a pattern, nor counting: the fewest accepted.
SIXTEEN_VALUES = bytes.fromhex("0c1f27282b34393e496c6f777f88949c6f497f1f27346c9c0c8828392b943e77")
#: The same with one of its values replaced by another: 15 distinct values.
FIFTEEN_VALUES = SIXTEEN_VALUES.replace(b"\x77", b"\x0c")

#: Secrets that look like keys to a hurried operator, and why each is refused. Every one is
#: exactly 32 bytes, so that it is also a well-formed Ed25519 seed.
WEAK_SECRETS = [
    pytest.param(bytes(32), "one byte repeated", id="all zero"),
    pytest.param(b"K" * 32, "one byte repeated", id="one letter"),
    pytest.param(bytes(range(32)), "count up or down", id="counting from 0"),
    pytest.param(bytes(range(1, 33)), "count up or down", id="counting from 1"),
    pytest.param(bytes(range(255, 223, -1)), "count up or down", id="counting down"),
    pytest.param(bytes(range(0, 256, 8)), "count up or down", id="counting in eights"),
    pytest.param(b"abcd" * 8, "repeats a short pattern", id="text pattern"),
    pytest.param(os.urandom(8) * 4, "repeats a short pattern", id="random pattern"),
    pytest.param(os.urandom(16) * 2, "repeats a short pattern", id="random half repeated"),
    pytest.param(FIFTEEN_VALUES, "too few distinct byte values", id="15 values"),
    pytest.param(
        bytes(byte % 4 for byte in SECRET_1), "too few distinct byte values", id="4 values"
    ),
    pytest.param(b"Riyadh-2026!Telecard#Secret&Pass", "printable text", id="password"),
    pytest.param(b"k=3f9a0c1b2d4e5f6Z0718293a4b5c6d", "printable text", id="key typed as text"),
    pytest.param(
        hashlib.sha256(b"x").hexdigest()[:32].encode(),
        "too few distinct byte values",
        id="hex digits as text",
    ),
]


def _assert_refused_for(error: KeyringError, reason: str, secret: bytes) -> None:
    """``error`` says the key is not random and why, names the way out, and shows no secret."""
    message = str(error)
    assert "keyring_error" == error.code
    assert "not random" in message
    assert reason in message
    assert "generate()" in message
    for shown in _renderings(secret):
        assert shown not in message
        assert shown not in repr(error)


def _ring_with_a_key_in(role: str, secret: bytes) -> Keyring:
    """A keyring whose code key (``role="keys"``) or pseudonym key has ``secret``."""
    key = HmacKey(key_id="x1", secret=secret)
    if role == "keys":
        return Keyring(keys=(key,), pseudonym_keys=(P1,))
    return Keyring(keys=(K1,), pseudonym_keys=(key,))


@pytest.mark.parametrize(("secret", "reason"), WEAK_SECRETS)
@pytest.mark.parametrize("role", ["keys", "pseudonym_keys"])
def test_weak_hmac_secrets_are_refused(secret: bytes, reason: str, role: str) -> None:
    """A placeholder, pattern or password is refused as a code key and as a pseudonym key."""
    with pytest.raises(KeyringError) as caught:
        _ring_with_a_key_in(role, secret)
    _assert_refused_for(caught.value, reason, secret)


@pytest.mark.parametrize(("secret", "reason"), WEAK_SECRETS)
def test_weak_secrets_are_refused_when_evolving_a_key(secret: bytes, reason: str) -> None:
    """A good key cannot be turned into a weak one: attrs.evolve checks the secret again."""
    with pytest.raises(KeyringError) as caught:
        attrs.evolve(K1, secret=secret)
    _assert_refused_for(caught.value, reason, secret)


@pytest.mark.parametrize(("seed", "reason"), WEAK_SECRETS)
def test_weak_ed25519_seeds_are_refused(seed: bytes, reason: str) -> None:
    """A receipt signing key with a weak seed is refused, as a private JWK and as a key object."""
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "kid": "r1", "d": _b64(seed), "x": _b64(public)}
    with pytest.raises(KeyringError) as from_jwk:
        SigningKey.from_jwk(jwk)
    _assert_refused_for(from_jwk.value, reason, seed)
    with pytest.raises(KeyringError) as from_object:
        SigningKey(key_id="r1", private_key=private_key)
    _assert_refused_for(from_object.value, reason, seed)


@pytest.mark.parametrize(("secret", "reason"), WEAK_SECRETS)
def test_weakness_names_the_reason(secret: bytes, reason: str) -> None:
    """weakness() says in words why a secret is not random."""
    assert reason in str(weakness(secret))


@given(weak_secrets())
def test_any_weak_secret_is_refused(secret: bytes) -> None:
    """Every secret of a refused kind, 32 to 64 bytes, is found weak and refused as a key."""
    assert weakness(secret) is not None
    with pytest.raises(KeyringError):
        HmacKey(key_id="k1", secret=secret)


def test_sixteen_distinct_values_are_enough() -> None:
    """The distinct-value rule refuses 15 values and accepts 16, all else being random-looking."""
    assert 16 == len(set(SIXTEEN_VALUES))
    assert 15 == len(set(FIFTEEN_VALUES))
    assert SIXTEEN_VALUES == HmacKey(key_id="k1", secret=SIXTEEN_VALUES).secret
    with pytest.raises(KeyringError):
        HmacKey(key_id="k1", secret=FIFTEEN_VALUES)


def test_random_secrets_are_never_found_weak() -> None:
    """weakness() finds nothing in 10,000 secrets from secrets.token_bytes(32)."""
    flagged = [secret for _ in range(10_000) if weakness(secret := secrets.token_bytes(32))]
    assert [] == flagged


@given(hmac_secrets())
def test_random_looking_secrets_are_accepted(secret: bytes) -> None:
    """weakness() finds nothing in the test suite's random-looking secrets of 32 to 64 bytes."""
    assert weakness(secret) is None


def test_generated_keys_are_never_weak() -> None:
    """HmacKey, Keyring and SigningKey.generate, run many times, make keys that are all fine."""
    hmac_keys = [HmacKey.generate("k1") for _ in range(2_000)]
    rings = [Keyring.generate() for _ in range(500)]
    signing = [SigningKey.generate() for _ in range(500)]
    made = [key.secret for key in hmac_keys]
    made += [key.secret for ring in rings for key in (*ring.keys, *ring.pseudonym_keys)]
    made += [
        key.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        for key in signing
    ]
    assert [] == [secret for secret in made if weakness(secret) is not None]
    assert len(made) == len(set(made))


def test_generate_draws_again_when_a_draw_is_weak(monkeypatch: pytest.MonkeyPatch) -> None:
    """HmacKey.generate never hands out a weak draw: it draws until one is fine."""
    draws = iter([bytes(32), b"abcd" * 8, SECRET_2])
    monkeypatch.setattr("telecard_auth._core.keyring.secrets.token_bytes", lambda size: next(draws))
    assert SECRET_2 == HmacKey.generate("k2").secret


def test_signing_key_generate_draws_again_when_a_draw_is_weak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SigningKey.generate never hands out a weak Ed25519 seed: it draws until one is fine."""
    good = hashlib.sha256(b"telecard-auth signing seed").digest()
    seeds = iter([bytes(32), bytes(range(32)), good])
    monkeypatch.setattr(
        Ed25519PrivateKey,
        "generate",
        staticmethod(lambda: Ed25519PrivateKey.from_private_bytes(next(seeds))),
    )
    key = SigningKey.generate("r2")
    assert "r2" == key.key_id
    assert good == key.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


# --- Keyring: construction -----------------------------------------------------------------------


def test_keyring_accepts_lists() -> None:
    """Keys and pseudonym keys given as lists are kept as tuples, oldest first."""
    ring = Keyring(keys=[K1, K2], pseudonym_keys=[P1])
    assert (K1, K2) == ring.keys
    assert (P1,) == ring.pseudonym_keys


@pytest.mark.parametrize("keys", [(), []])
def test_keyring_needs_a_key(keys: Any) -> None:
    """An empty key list is a KeyringError."""
    with pytest.raises(KeyringError) as excinfo:
        Keyring(keys=keys, pseudonym_keys=(P1,))
    assert "keyring_error" == excinfo.value.code


def test_keyring_refuses_duplicate_ids() -> None:
    """Two keys with one id are refused, even with different secrets."""
    with pytest.raises(KeyringError):
        _ring(K1, HmacKey(key_id="k1", secret=SECRET_2))


@pytest.mark.parametrize(
    "keys", [K1, "k1", (K1, "k2"), (K1, (SECRET_2,)), None, {K1: 1}, (SECRET_1,)]
)
def test_keyring_refuses_non_keys(keys: Any) -> None:
    """Keys must be a list or tuple of HmacKey objects."""
    with pytest.raises(KeyringError):
        Keyring(keys=keys, pseudonym_keys=(P1,))


@pytest.mark.parametrize(
    "pseudonym_keys",
    [
        pytest.param((), id="none"),
        pytest.param([], id="empty list"),
        pytest.param(None, id="None"),
        pytest.param(P1, id="a bare key"),
        pytest.param((PSEUDONYM_SECRET,), id="a bare secret"),
        pytest.param(("p1",), id="an id"),
        pytest.param((P1, P2, P3), id="three keys"),
        pytest.param((P1, HmacKey(key_id="p1", secret=PSEUDONYM_SECRET_2)), id="one id twice"),
    ],
)
def test_keyring_refuses_bad_pseudonym_keys(pseudonym_keys: Any) -> None:
    """Pseudonym keys are one HmacKey, or two with distinct ids while subjects move."""
    with pytest.raises(KeyringError):
        Keyring(keys=(K1,), pseudonym_keys=pseudonym_keys)


@pytest.mark.parametrize(
    ("pseudonym_keys", "standby"),
    [((P1,), True), ((P1, P2), "yes"), ((P1, P2), 1), ((P1, P2), None)],
)
def test_keyring_refuses_a_bad_standby(pseudonym_keys: tuple[HmacKey, ...], standby: Any) -> None:
    """Only a second pseudonym key can be in standby, and standby is True or False."""
    with pytest.raises(KeyringError):
        Keyring(keys=(K1,), pseudonym_keys=pseudonym_keys, pseudonym_standby=standby)


def test_keyring_is_frozen() -> None:
    """A keyring cannot be changed in place; rotation makes a new one."""
    ring = _ring(K1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ring.keys = (K2,)  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ring.pseudonym_keys = (P2,)  # type: ignore[misc]


def test_keyring_repr_hides_every_secret() -> None:
    """repr() and str() show key ids but no HMAC key secret and no pseudonym key secret."""
    ring = _ring(K1, K2).with_pseudonym_key(P2, current=False)
    for text in (repr(ring), str(ring)):
        for key_id in ("k1", "k2", "p1", "p2"):
            assert key_id in text
        for secret in (SECRET_1, SECRET_2, PSEUDONYM_SECRET, PSEUDONYM_SECRET_2):
            for shown in _renderings(secret):
                assert shown not in text


@given(st.lists(hmac_secrets(), min_size=1, max_size=3), hmac_secrets())
def test_keyring_repr_never_contains_a_secret(secrets_: list[bytes], pseudonym: bytes) -> None:
    """Whatever the secrets are, none of them appears in repr()."""
    keys = tuple(
        HmacKey(key_id=f"k{index}", secret=secret) for index, secret in enumerate(secrets_)
    )
    text = repr(_ring(*keys, pseudonym=HmacKey(key_id="p1", secret=pseudonym)))
    for secret in (*secrets_, pseudonym):
        assert repr(secret) not in text
        assert secret.hex() not in text


def test_generate_makes_one_fresh_key_of_each_kind() -> None:
    """generate() makes a ring with a 32-byte HMAC key 'k1' and a 32-byte pseudonym key 'p1'."""
    ring = Keyring.generate()
    assert ["k1"] == [key.key_id for key in ring.keys]
    assert ["p1"] == [key.key_id for key in ring.pseudonym_keys]
    assert 32 == len(ring.current.secret)
    assert 32 == len(ring.pseudonym_key.secret)
    assert ring.pseudonym_standby is False


def test_generate_takes_key_ids() -> None:
    """generate(key_id, pseudonym_key_id) names the two keys."""
    ring = Keyring.generate("2026-03", "subjects-2026")
    assert ("2026-03", "subjects-2026") == (ring.current.key_id, ring.pseudonym_key.key_id)


def test_generate_is_random() -> None:
    """Two generated rings share no secret, and no ring uses one secret twice."""
    first, second = Keyring.generate(), Keyring.generate()
    assert first.current.secret != second.current.secret
    assert first.pseudonym_key.secret != second.pseudonym_key.secret
    assert first.current.secret != first.pseudonym_key.secret


# --- Keyring: rotation of HMAC keys ------------------------------------------------------------


def test_current_is_the_newest_key() -> None:
    """The last key of the ring digests new codes."""
    assert K1 == _ring(K1).current
    assert K2 == _ring(K1, K2).current


def test_with_key_adds_the_newest() -> None:
    """with_key() returns a ring with the key appended; the original is unchanged."""
    ring = _ring(K1)
    rotated = ring.with_key(K2)
    assert (K1, K2) == rotated.keys
    assert K2 == rotated.current
    assert (K1,) == ring.keys
    assert (P1,) == rotated.pseudonym_keys


def test_with_key_refuses_a_duplicate_id() -> None:
    """Adding a key whose id is already in the ring is a KeyringError."""
    with pytest.raises(KeyringError):
        _ring(K1, K2).with_key(HmacKey(key_id="k1", secret=SECRET_2))


def test_without_key_retires_a_key() -> None:
    """without_key() drops a key; the original ring still has it."""
    ring = _ring(K1, K2)
    assert (K2,) == ring.without_key("k1").keys
    assert (K1,) == ring.without_key("k2").keys
    assert K1 == ring.without_key("k2").current
    assert (K1, K2) == ring.keys


def test_without_an_unknown_key_changes_nothing() -> None:
    """Retiring an id that is not in the ring leaves the same keys."""
    ring = _ring(K1, K2)
    assert ring == ring.without_key("k9")


def test_without_the_last_key_is_refused() -> None:
    """A ring cannot be left with no key."""
    with pytest.raises(KeyringError):
        _ring(K1).without_key("k1")


# --- code digests --------------------------------------------------------------------------------


def test_code_digest_is_hmac_sha256() -> None:
    """The digest is a 32-byte HMAC-SHA256 of the code under the named key."""
    digest = _ring(K1).code_digest("k1", IDENTITY, "stc", "12345678")
    assert digest is not None
    assert 32 == len(digest)
    assert digest != hashlib.sha256(b"12345678").digest()


def test_code_digest_is_pinned() -> None:
    """The digest format is stable: digests stored by an earlier release must still verify."""
    secret = hashlib.sha256(b"telecard-auth pinned hmac key").digest()
    ring = Keyring(keys=(HmacKey(key_id="k1", secret=secret),), pseudonym_keys=(P1,))
    expected = hmac.new(secret, b"code\x1fcitizen:1000000008\x1fstc\x1f12345678", "sha256").digest()
    assert expected == ring.code_digest("k1", IDENTITY, "stc", "12345678")
    assert "7366ae2cb380f51cf82ed11683e6c84aeaa2b4f712c6d32f3d3591caa8a8d08d" == expected.hex()


@given(_FIELD_TEXT, _FIELD_TEXT, _FIELD_TEXT)
def test_code_digest_is_deterministic(identity: str, provider_id: str, code: str) -> None:
    """The same key, identity, provider and code give the same digest, from any equal ring."""
    first = _ring(K1).code_digest("k1", identity, provider_id, code)
    second = _ring(K1, K2).code_digest("k1", identity, provider_id, code)
    assert first is not None
    assert first == second


def test_code_digest_differs_per_key() -> None:
    """Two keys digest the same code differently."""
    ring = _ring(K1, K2)
    assert ring.code_digest("k1", IDENTITY, "stc", "12345678") != ring.code_digest(
        "k2", IDENTITY, "stc", "12345678"
    )


@given(
    st.lists(st.tuples(_FIELD_TEXT, _FIELD_TEXT, _FIELD_TEXT), min_size=2, max_size=2, unique=True)
)
def test_code_digest_binds_identity_provider_and_code(triples: list[tuple[str, str, str]]) -> None:
    """Different (identity, provider, code) triples never share a digest."""
    first, second = triples
    ring = _ring(K1)
    assert ring.code_digest("k1", *first) != ring.code_digest("k1", *second)


@pytest.mark.parametrize(
    "other",
    [
        (OTHER_IDENTITY, "stc", "12345678"),
        (IDENTITY, "zain", "12345678"),
        (IDENTITY, "stc", "12345679"),
        # The same characters moved across a field boundary.
        (IDENTITY + "s", "tc", "12345678"),
        (IDENTITY, "stc1", "2345678"),
    ],
)
def test_code_digest_differs_per_field(other: tuple[str, str, str]) -> None:
    """Changing the identity, the provider or the code changes the digest."""
    ring = _ring(K1)
    assert ring.code_digest("k1", IDENTITY, "stc", "12345678") != ring.code_digest("k1", *other)


def test_code_digest_for_an_unknown_key_is_none() -> None:
    """A key id that is not in the ring gives None, not an error."""
    assert _ring(K1).code_digest("k2", IDENTITY, "stc", "12345678") is None


def test_rotation_keeps_old_digests_verifiable() -> None:
    """After adding a key, the old key still gives the old digest; after retiring it, None."""
    ring = _ring(K1)
    before = ring.code_digest("k1", IDENTITY, "stc", "12345678")
    rotated = ring.with_key(K2)
    assert before == rotated.code_digest("k1", IDENTITY, "stc", "12345678")
    assert rotated.without_key("k1").code_digest("k1", IDENTITY, "stc", "12345678") is None


# --- record digests ------------------------------------------------------------------------------


def test_record_digest_is_pinned() -> None:
    """A bound value's digest is HMAC-SHA256 of domain, identity, provider and value, 128 bits."""
    secret = hashlib.sha256(b"telecard-auth pinned hmac key").digest()
    ring = Keyring(keys=(HmacKey(key_id="k1", secret=secret),), pseudonym_keys=(P1,))
    message = b"msisdn\x1fcitizen:1000000008\x1fstc\x1f+966551234567"
    expected = hmac.new(secret, message, "sha256").digest()[:16].hex()
    assert expected == ring.record_digest("k1", "msisdn", IDENTITY, "stc", "+966551234567")
    assert "827b2d2128359c8320935d6ed33f25a3" == expected


def test_record_digest_is_bound_to_domain_identity_provider_and_key() -> None:
    """Each domain, identity, provider and key gives another digest of the same value."""
    ring = _ring(K1, K2)
    value = "+966551234567"
    digests = {
        ring.record_digest(key_id, domain, identity, provider_id, value)
        for key_id in ("k1", "k2")
        for domain in ("msisdn", "recipient", "request", "request-inputs")
        for identity in (IDENTITY, OTHER_IDENTITY)
        for provider_id in ("stc", "zain")
    }
    assert 2 * 4 * 2 * 2 == len(digests)
    assert all(re.fullmatch(r"[0-9a-f]{32}", str(digest), re.ASCII) for digest in digests)


def test_record_digest_for_an_unknown_key_is_none() -> None:
    """A key id that is not in the ring gives None, not an error, as for a code's digest."""
    ring = _ring(K1)
    assert ring.record_digest("k2", "msisdn", IDENTITY, "stc", "+966551234567") is None
    assert ring.code_digest("k2", IDENTITY, "stc", "12345678") is None
    retired = _ring(K1, K2).without_key("k1")
    assert retired.record_digest("k1", "request", IDENTITY, "stc", "visit-1") is None
    assert retired.record_digest("k2", "request", IDENTITY, "stc", "visit-1") is not None


def test_record_digest_is_not_a_pseudonym() -> None:
    """Values bound to a code are digested with the code's key, never filed as pseudonyms."""
    ring = _ring(K1)
    digest = ring.record_digest("k1", "recipient", IDENTITY, "stc", OTHER_IDENTITY)
    assert digest not in {
        ring.subject_ref(OTHER_IDENTITY),
        ring.audit_ref(OTHER_IDENTITY),
        ring.customer_ref(OTHER_IDENTITY, "stc"),
        ring.pseudonym("recipient", OTHER_IDENTITY),
    }


# --- what the keyring's digests and pseudonyms take -------------------------------------------

#: Values that are not text, each refused wherever text is due.
_NOT_TEXT = [None, 5, b"citizen:1000000008", ["stc"], 1.5]

#: Each keyed method of a ring, with the one argument under test put in its place.
_TEXT_ARGUMENTS: dict[str, Any] = {
    "subject_ref identity": lambda ring, value: ring.subject_ref(value),
    "subject_ref identity, key id": lambda ring, value: ring.subject_ref(value, "p1"),
    "customer_ref identity": lambda ring, value: ring.customer_ref(value, "stc"),
    "customer_ref provider": lambda ring, value: ring.customer_ref(IDENTITY, value),
    "audit_ref identity": lambda ring, value: ring.audit_ref(value),
    "pseudonym domain": lambda ring, value: ring.pseudonym(value, IDENTITY),
    "pseudonym value": lambda ring, value: ring.pseudonym("loyalty", value),
    "record_digest domain": lambda ring, value: ring.record_digest(
        "k1", value, IDENTITY, "stc", "+966551234567"
    ),
    "record_digest identity": lambda ring, value: ring.record_digest(
        "k1", "msisdn", value, "stc", "+966551234567"
    ),
    "record_digest provider": lambda ring, value: ring.record_digest(
        "k1", "msisdn", IDENTITY, value, "+966551234567"
    ),
    "record_digest value": lambda ring, value: ring.record_digest(
        "k1", "msisdn", IDENTITY, "stc", value
    ),
    "seal identity": lambda ring, value: ring.seal(value, "0" * 32, "p1"),
    "seal subject_ref": lambda ring, value: ring.seal(IDENTITY, value, "p1"),
}


@pytest.mark.parametrize("value", _NOT_TEXT)
@pytest.mark.parametrize("argument", sorted(_TEXT_ARGUMENTS))
def test_keyed_methods_refuse_what_is_not_text(argument: str, value: object) -> None:
    """subject_ref, customer_ref, audit_ref, pseudonym, record_digest and seal raise
    InvalidInput (never a TypeError, nor a KeyringError) for any argument that is not text."""
    ring = _ring(K1)
    with pytest.raises(InvalidInput) as caught:
        _TEXT_ARGUMENTS[argument](ring, value)
    assert "invalid_input" == caught.value.code
    assert not isinstance(caught.value, KeyringError)


@pytest.mark.parametrize("argument", sorted(_TEXT_ARGUMENTS))
def test_keyed_methods_take_text(argument: str) -> None:
    """The same calls with text in that place give 32 hex characters, or an envelope for seal."""
    made = _TEXT_ARGUMENTS[argument](_ring(K1), "text")
    assert re.fullmatch(r"[0-9a-f]{32}|p1\.[A-Za-z0-9_-]+", made, re.ASCII)


def test_a_pseudonym_key_id_the_ring_does_not_hold_is_a_keyring_error() -> None:
    """subject_ref and seal under a pseudonym key id the ring does not hold (never held, or
    retired) raise KeyringError, a configuration mistake rather than a bad request."""
    ring = _ring(K1)
    retired = ring.with_pseudonym_key(P2).without_pseudonym_key("p1")
    ref = ring.subject_ref(IDENTITY)
    calls: list[Callable[[], str]] = [
        lambda: ring.subject_ref(IDENTITY, "p2"),
        lambda: ring.seal(IDENTITY, ref, "p2"),
        lambda: retired.subject_ref(IDENTITY, "p1"),
        lambda: retired.seal(IDENTITY, ref, "p1"),
        lambda: ring.subject_ref(IDENTITY, "k1"),  # an HMAC key is no pseudonym key
    ]
    for call in calls:
        with pytest.raises(KeyringError) as caught:
            call()
        assert "no pseudonym key has that id" in str(caught.value)
    assert retired.subject_ref(IDENTITY, "p2") == retired.subject_ref(IDENTITY)


def test_holds_names_the_hmac_keys_in_the_ring() -> None:
    """holds(key_id) is true for every HMAC key in the ring, standby included, and false for a
    retired key, an unknown id, or a pseudonym key's id."""
    ring = _ring(K1).with_key(K2, current=False)
    assert (True, True) == (ring.holds("k1"), ring.holds("k2"))
    retired = ring.with_current("k2").without_key("k1")
    assert (False, True) == (retired.holds("k1"), retired.holds("k2"))
    assert (False, False, False) == (ring.holds("k9"), ring.holds("p1"), ring.holds(""))


# --- pseudonyms ----------------------------------------------------------------------------------


@given(_FIELD_TEXT, _FIELD_TEXT)
def test_pseudonym_is_32_hex_characters(domain: str, value: str) -> None:
    """A pseudonym is 128 bits as 32 lowercase hex characters."""
    assert re.fullmatch(r"[0-9a-f]{32}", _ring(K1).pseudonym(domain, value), re.ASCII)


def test_pseudonyms_are_pinned() -> None:
    """Storage keys, customer refs and audit refs are stable across releases."""
    # A changed storage key would orphan every stored subject (these are the previous release's
    # keys, made from its pseudonym secret); a changed customer ref would break an operator's
    # records of its own customers.
    secret = hashlib.sha256(b"telecard-auth pinned pseudonym key").digest()
    ring = Keyring(keys=(K1,), pseudonym_keys=(HmacKey(key_id="p1", secret=secret),))

    def mac(message: bytes) -> str:
        return hmac.new(secret, message, "sha256").digest()[:16].hex()

    assert mac(b"subject\x1fcitizen:1000000008") == ring.subject_ref(IDENTITY)
    assert mac(b"customer\x1fstc\x1fcitizen:1000000008") == ring.customer_ref(IDENTITY, "stc")
    assert mac(b"audit\x1fcitizen:1000000008") == ring.audit_ref(IDENTITY)
    # The integrator's pseudonyms live in a space of their own, "app".
    assert mac(b"app\x1floyalty\x1fcitizen:1000000008") == ring.pseudonym("loyalty", IDENTITY)
    assert (
        "50ae9193c871539b497acb83f38a6410",
        "76d7a756812aaa7bf0e3cdef3e3869dd",
        "0f4427158f3b7d77071f140505b8aa37",
    ) == (ring.subject_ref(IDENTITY), ring.customer_ref(IDENTITY, "stc"), ring.audit_ref(IDENTITY))


def test_pseudonym_is_stable() -> None:
    """The same domain and value give the same pseudonym, from equal rings."""
    assert _ring(K1).pseudonym("subject", IDENTITY) == _ring(K1).pseudonym("subject", IDENTITY)


def test_pseudonym_differs_by_domain() -> None:
    """One value in two domains gives two pseudonyms."""
    ring = _ring(K1)
    assert ring.pseudonym("subject", "1000000008") != ring.pseudonym("msisdn", "1000000008")


@given(_FIELD_TEXT, st.lists(_FIELD_TEXT, min_size=2, max_size=2, unique=True))
def test_pseudonym_differs_by_value(domain: str, values: list[str]) -> None:
    """Two values in one domain give two pseudonyms."""
    value, other = values
    ring = _ring(K1)
    assert ring.pseudonym(domain, value) != ring.pseudonym(domain, other)


def test_pseudonym_depends_on_the_pseudonym_key() -> None:
    """Another pseudonym key gives other pseudonyms."""
    other = _ring(K1, pseudonym=HmacKey(key_id="p1", secret=PSEUDONYM_SECRET_2))
    ring = _ring(K1)
    assert ring.pseudonym("subject", "x") != other.pseudonym("subject", "x")
    assert ring.subject_ref(IDENTITY) != other.subject_ref(IDENTITY)


def test_pseudonyms_survive_hmac_key_rotation() -> None:
    """Rotating HMAC keys does not change any pseudonym: they use the pseudonym keys."""
    ring = _ring(K1)
    rotated = ring.with_key(K2).without_key("k1")
    assert (
        ring.subject_ref(IDENTITY),
        ring.customer_ref(IDENTITY, "stc"),
        ring.audit_ref(IDENTITY),
    ) == (
        rotated.subject_ref(IDENTITY),
        rotated.customer_ref(IDENTITY, "stc"),
        rotated.audit_ref(IDENTITY),
    )


def test_pseudonym_does_not_contain_the_value() -> None:
    """The pseudonym of an ID number does not contain the number."""
    ring = _ring(K1)
    for ref in (
        ring.pseudonym("subject", IDENTITY),
        ring.subject_ref(IDENTITY),
        ring.customer_ref(IDENTITY, "stc"),
        ring.audit_ref(IDENTITY),
    ):
        assert "1000000008" not in ref


def test_customer_ref_differs_per_provider_and_is_stable_for_one() -> None:
    """One customer has one pseudonym at each operator, a different one at every other."""
    ring, again = _ring(K1), _ring(K1, K2)
    refs = [ring.customer_ref(IDENTITY, provider.id) for provider in SAUDI_PROVIDERS]
    assert len(SAUDI_PROVIDERS) == len(set(refs))
    assert refs == [again.customer_ref(IDENTITY, provider.id) for provider in SAUDI_PROVIDERS]
    assert ring.customer_ref(IDENTITY, "stc") != ring.customer_ref(OTHER_IDENTITY, "stc")


@pytest.mark.parametrize("domain", ["subject", "audit", "customer", "app", "", "msisdn"])
def test_pseudonym_never_gives_one_of_the_librarys_pseudonyms(domain: str) -> None:
    """pseudonym(domain, value) lives in a space of its own: whatever the domain, even the
    library's own domain names, it is never the storage key, the audit ref or a customer ref."""
    ring = _ring(K1)
    for identity in (IDENTITY, OTHER_IDENTITY, "stc\x1f" + IDENTITY):
        mine = ring.pseudonym(domain, identity)
        assert mine != ring.subject_ref(identity)
        assert mine != ring.audit_ref(identity)
        assert all(mine != ring.customer_ref(identity, p.id) for p in SAUDI_PROVIDERS)
    assert ring.pseudonym("subject", IDENTITY) != ring.subject_ref(IDENTITY)
    assert ring.pseudonym("audit", IDENTITY) != ring.audit_ref(IDENTITY)


def test_a_domain_holding_the_separator_is_refused() -> None:
    """A domain with U+001F could be two domains at once ("a\x1fb", "c" ~ "a", "b\x1fc")."""
    ring = _ring(K1)
    for domain in ("customer\x1fstc", "a\x1fb", "\x1f"):
        with pytest.raises(InvalidInput):
            ring.pseudonym(domain, IDENTITY)
    assert ring.pseudonym("a", "b\x1fc") != ring.pseudonym("a", "b")


@given(_FIELD_TEXT, subjects())
def test_no_domain_gives_a_librarys_pseudonym(domain: str, subject: Subject) -> None:
    """For any domain and any subject, pseudonym() is none of the subject's library pseudonyms,
    under either pseudonym key of a rotation."""
    ring = _ring(K1).with_pseudonym_key(P2, current=False)
    identity = identity_of(subject)
    library = {ring.subject_ref(identity, key_id) for key_id in ("p1", "p2")}
    library.add(ring.audit_ref(identity))
    library.update(ring.customer_ref(identity, p.id) for p in SAUDI_PROVIDERS)
    assert ring.pseudonym(domain, identity) not in library
    current = ring.with_current_pseudonym_key("p2")
    assert current.pseudonym(domain, identity) != current.subject_ref(identity)


@given(subjects())
def test_storage_key_audit_ref_and_customer_refs_are_all_distinct(subject: Subject) -> None:
    """The storage key, the audit ref and each operator's customer ref of one subject differ."""
    ring = _ring(K1).with_pseudonym_key(P2, current=False)
    identity = identity_of(subject)
    outgoing = [ring.audit_ref(identity)]
    outgoing += [ring.customer_ref(identity, provider.id) for provider in SAUDI_PROVIDERS]
    storage_keys = {ring.subject_ref(identity, key_id) for key_id in ("p1", "p2")}
    assert 2 == len(storage_keys)
    assert len(outgoing) == len(set(outgoing))
    assert set() == storage_keys & set(outgoing)
    for ref in (*outgoing, *storage_keys):
        assert re.fullmatch(r"[0-9a-f]{32}", ref, re.ASCII)


# --- pseudonym key rotation ----------------------------------------------------------------------


def test_one_pseudonym_key_files_and_finds_every_subject() -> None:
    """With one pseudonym key, it files new subjects and is the only one looked under."""
    ring = _ring(K1)
    assert P1 == ring.pseudonym_key
    assert ("p1", ("p1",), "p1") == (
        ring.filing_key_id,
        ring.lookup_key_ids(),
        ring.newest_pseudonym_key_id,
    )
    assert ring.subject_ref(IDENTITY, "p1") == ring.subject_ref(IDENTITY)


def test_a_current_pseudonym_key_files_new_subjects_and_the_older_is_still_looked_under() -> None:
    """with_pseudonym_key(key) files under the new key and looks under it first, then the older."""
    ring = _ring(K1)
    rotated = ring.with_pseudonym_key(P2)
    assert (P1, P2) == rotated.pseudonym_keys
    assert rotated.pseudonym_standby is False
    assert P2 == rotated.pseudonym_key
    assert ("p2", ("p2", "p1"), "p2") == (
        rotated.filing_key_id,
        rotated.lookup_key_ids(),
        rotated.newest_pseudonym_key_id,
    )
    assert rotated.subject_ref(IDENTITY, "p2") == rotated.subject_ref(IDENTITY)
    assert ring.subject_ref(IDENTITY) == rotated.subject_ref(IDENTITY, "p1")
    assert ring.subject_ref(IDENTITY) != rotated.subject_ref(IDENTITY)
    assert (P1,) == ring.pseudonym_keys  # the original is unchanged


def test_a_standby_pseudonym_key_is_looked_under_but_files_nothing() -> None:
    """with_pseudonym_key(key, current=False) changes no pseudonym until the key is current."""
    ring = _ring(K1)
    standby = ring.with_pseudonym_key(P2, current=False)
    assert (P1, P2) == standby.pseudonym_keys
    assert standby.pseudonym_standby is True
    assert P1 == standby.pseudonym_key
    assert ("p1", ("p1", "p2"), "p2") == (
        standby.filing_key_id,
        standby.lookup_key_ids(),
        standby.newest_pseudonym_key_id,
    )
    for identity in (IDENTITY, OTHER_IDENTITY):
        assert (
            ring.subject_ref(identity),
            ring.customer_ref(identity, "stc"),
            ring.audit_ref(identity),
        ) == (
            standby.subject_ref(identity),
            standby.customer_ref(identity, "stc"),
            standby.audit_ref(identity),
        )


def test_rotation_runs_standby_current_retired() -> None:
    """Standby, then current, then the older key retired: each step is the ring it should be."""
    standby = _ring(K1).with_pseudonym_key(P2, current=False)
    current = standby.with_current_pseudonym_key("p2")
    assert _ring(K1).with_pseudonym_key(P2) == current
    retired = current.without_pseudonym_key("p1")
    only_new = _ring(K1, pseudonym=P2)
    assert only_new == retired
    for identity in (IDENTITY, OTHER_IDENTITY):
        assert (
            only_new.subject_ref(identity),
            only_new.customer_ref(identity, "zain"),
            only_new.audit_ref(identity),
        ) == (
            current.subject_ref(identity),
            current.customer_ref(identity, "zain"),
            current.audit_ref(identity),
        )
    # Once retired, a rotation can start again.
    assert (P2, P3) == retired.with_pseudonym_key(P3).pseudonym_keys


@pytest.mark.parametrize("current", [True, False])
def test_a_third_pseudonym_key_is_refused(current: bool) -> None:
    """A rotation is one at a time: no third key while two are held, standby or not."""
    for held in (_ring(K1).with_pseudonym_key(P2), _ring(K1).with_pseudonym_key(P2, current=False)):
        with pytest.raises(KeyringError) as caught:
            held.with_pseudonym_key(P3, current=current)
        assert "retire the older" in str(caught.value)


def test_the_filing_key_cannot_retire() -> None:
    """The key new subjects are filed under cannot be retired: not the only one, nor the newer."""
    refusals = [
        (_ring(K1), "p1"),
        (_ring(K1).with_pseudonym_key(P2), "p2"),
        (_ring(K1).with_pseudonym_key(P2, current=False), "p1"),
    ]
    for ring, key_id in refusals:
        with pytest.raises(KeyringError):
            ring.without_pseudonym_key(key_id)


def test_retiring_a_standby_key_cancels_the_rotation() -> None:
    """A newer key still in standby files nothing and may retire: the ring is back to its one
    key, every pseudonym as before, and a rotation can start again."""
    ring = _ring(K1)
    cancelled = ring.with_pseudonym_key(P2, current=False).without_pseudonym_key("p2")
    assert ring == cancelled
    assert ((P1,), False) == (cancelled.pseudonym_keys, cancelled.pseudonym_standby)
    assert ring.subject_ref(IDENTITY) == cancelled.subject_ref(IDENTITY)
    assert ring.customer_ref(IDENTITY, "stc") == cancelled.customer_ref(IDENTITY, "stc")
    assert (P1, P3) == cancelled.with_pseudonym_key(P3).pseudonym_keys


def test_the_filing_key_never_retires_even_with_a_standby_key() -> None:
    """With a newer key in standby the older key files new subjects: retiring it is refused,
    whichever step the rotation is at, and the ring is unchanged."""
    standby = _ring(K1).with_pseudonym_key(P2, current=False)
    current = standby.with_current_pseudonym_key("p2")
    for ring, filing in ((standby, "p1"), (current, "p2")):
        assert filing == ring.filing_key_id
        with pytest.raises(KeyringError) as caught:
            ring.without_pseudonym_key(filing)
        assert "only a pseudonym key that files nothing can retire" in str(caught.value)
    assert (P1, P2) == standby.pseudonym_keys


def test_the_older_pseudonym_key_cannot_become_current() -> None:
    """Only the newer key is promoted: going back to the older one is refused."""
    for ring in (_ring(K1).with_pseudonym_key(P2), _ring(K1).with_pseudonym_key(P2, current=False)):
        with pytest.raises(KeyringError):
            ring.with_current_pseudonym_key("p1")


@pytest.mark.parametrize("key_id", ["p9", "", 1, None, b"p2"])
def test_pseudonym_rotation_refuses_a_key_it_does_not_hold(key_id: Any) -> None:
    """Promoting or retiring an id the ring does not hold is a KeyringError."""
    ring = _ring(K1).with_pseudonym_key(P2, current=False)
    with pytest.raises(KeyringError):
        ring.with_current_pseudonym_key(key_id)
    with pytest.raises(KeyringError):
        ring.without_pseudonym_key(key_id)


@pytest.mark.parametrize(
    "key", [None, "p2", PSEUDONYM_SECRET_2, (P2,), HmacKey(key_id="p1", secret=PSEUDONYM_SECRET_2)]
)
def test_with_pseudonym_key_needs_a_new_hmac_key(key: Any) -> None:
    """A pseudonym key is an HmacKey whose id is not held already."""
    with pytest.raises(KeyringError):
        _ring(K1).with_pseudonym_key(key)


# --- sealed identities ---------------------------------------------------------------------------


def test_seal_and_unseal_round_trip() -> None:
    """An identity sealed for a storage key opens with that key, naming the pseudonym key."""
    ring = _ring(K1)
    ref = ring.subject_ref(IDENTITY)
    envelope = ring.seal(IDENTITY, ref, "p1")
    assert envelope.startswith("p1.")
    assert ("p1", IDENTITY) == ring.unseal(envelope, ref)
    assert ("p1", IDENTITY) == _ring(K2).unseal(envelope, ref)  # the HMAC keys play no part


def test_sealing_hides_the_identity() -> None:
    """The envelope, text or decoded, holds neither the identity nor its number."""
    envelope = _ring(K1).seal(IDENTITY, "ref", "p1")
    raw = _unb64(envelope.partition(".")[2])
    for shown in (envelope, raw.decode("latin-1")):
        assert "1000000008" not in shown
        assert "citizen" not in shown


def test_each_seal_is_fresh() -> None:
    """Sealing one identity twice gives two envelopes (a new nonce each time); both open."""
    ring = _ring(K1)
    first, second = (ring.seal(IDENTITY, "ref", "p1") for _ in range(2))
    assert first != second
    assert ring.unseal(first, "ref") == ring.unseal(second, "ref") == ("p1", IDENTITY)


def test_unseal_refuses_every_altered_byte() -> None:
    """Flipping any bit of an envelope's nonce, ciphertext or tag makes it unopenable."""
    ring = _ring(K1)
    key_id, _, body = ring.seal(IDENTITY, "ref", "p1").partition(".")
    raw = _unb64(body)
    opened = []
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        opened.append(ring.unseal(f"{key_id}.{_b64(bytes(flipped))}", "ref"))
    assert [None] * len(raw) * 8 == opened


def test_unseal_refuses_a_cut_or_extended_envelope() -> None:
    """An envelope with bytes cut off or added, or in the wrong form, opens as nothing."""
    ring = _ring(K1)
    envelope = ring.seal(IDENTITY, "ref", "p1")
    raw = _unb64(envelope.partition(".")[2])
    altered: list[Any] = [
        f"p1.{_b64(raw[:-1])}",
        f"p1.{_b64(raw + b'x')}",
        f"p1.{_b64(raw[:12])}",
        "p1.",
        "p1",
        envelope.replace(".", ""),
        "",
        None,
        42,
        envelope.encode(),
    ]
    assert [None] * len(altered) == [ring.unseal(value, "ref") for value in altered]


def test_unseal_refuses_another_subject_ref() -> None:
    """The storage key is bound to the envelope: moved to another subject, it opens as nothing."""
    ring = _ring(K1)
    ref, other = ring.subject_ref(IDENTITY), ring.subject_ref(OTHER_IDENTITY)
    envelope = ring.seal(IDENTITY, ref, "p1")
    assert ring.unseal(envelope, other) is None
    assert ring.unseal(envelope, ref.upper()) is None


def test_unseal_refuses_a_key_it_does_not_hold() -> None:
    """An envelope naming an unknown key id, or another held key, opens as nothing."""
    rotated = _ring(K1).with_pseudonym_key(P2)
    envelope = rotated.seal(IDENTITY, "ref", "p1")
    body = envelope.partition(".")[2]
    assert ("p1", IDENTITY) == rotated.unseal(envelope, "ref")
    assert rotated.unseal(f"p9.{body}", "ref") is None
    assert rotated.unseal(f"p2.{body}", "ref") is None
    assert _ring(K1, pseudonym=P2).unseal(envelope, "ref") is None
    assert rotated.without_pseudonym_key("p1").unseal(envelope, "ref") is None


def test_envelopes_open_across_a_rotation() -> None:
    """An identity sealed under the older key still opens while both keys are held."""
    ring = _ring(K1)
    ref = ring.subject_ref(IDENTITY)
    old = ring.seal(IDENTITY, ref, "p1")
    rotated = ring.with_pseudonym_key(P2)
    new_ref = rotated.subject_ref(IDENTITY)
    new = rotated.seal(IDENTITY, new_ref, "p2")
    for held in (rotated, ring.with_pseudonym_key(P2, current=False)):
        assert ("p1", IDENTITY) == held.unseal(old, ref)
        assert ("p2", IDENTITY) == held.unseal(new, new_ref)


# --- copies and threads --------------------------------------------------------------------------


def test_keyring_pickles_and_copies_with_every_key() -> None:
    """A pickled or copied ring keeps both kinds of keys, the standby flag and every result."""
    ring = _ring(K1, K2).with_pseudonym_key(P2, current=False)
    ref = ring.subject_ref(IDENTITY)
    envelope = ring.seal(IDENTITY, ref, "p1")
    restored = pickle.loads(pickle.dumps(ring))  # noqa: S301 - our own bytes
    for copied in (restored, copy.deepcopy(ring), copy.copy(ring)):
        assert ring == copied
        assert (ring.keys, ring.pseudonym_keys) == (copied.keys, copied.pseudonym_keys)
        assert copied.pseudonym_standby is True
        assert (ring.filing_key_id, ring.lookup_key_ids()) == (
            copied.filing_key_id,
            copied.lookup_key_ids(),
        )
        assert ring.pseudonym("subject", "x") == copied.pseudonym("subject", "x")
        for key_id in ("p1", "p2"):
            assert ring.subject_ref(IDENTITY, key_id) == copied.subject_ref(IDENTITY, key_id)
        assert ring.customer_ref(IDENTITY, "stc") == copied.customer_ref(IDENTITY, "stc")
        assert ring.audit_ref(IDENTITY) == copied.audit_ref(IDENTITY)
        assert ("p1", IDENTITY) == copied.unseal(envelope, ref)
        for key in ring.keys:
            assert ring.code_digest(key.key_id, IDENTITY, "stc", "12345678") == copied.code_digest(
                key.key_id, IDENTITY, "stc", "12345678"
            )
            assert ring.record_digest(
                key.key_id, "msisdn", IDENTITY, "stc", "+966551234567"
            ) == copied.record_digest(key.key_id, "msisdn", IDENTITY, "stc", "+966551234567")


def test_digests_from_many_threads_agree() -> None:
    """One ring used by many threads at once gives every thread the same digests."""
    ring = Keyring.generate()
    expected = [ring.code_digest("k1", IDENTITY, "stc", f"{n:08d}") for n in range(200)]

    def digests() -> list[bytes | None]:
        return [ring.code_digest("k1", IDENTITY, "stc", f"{n:08d}") for n in range(200)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: digests(), range(16)))
    assert [expected] * 16 == results


def test_a_standby_key_verifies_but_digests_nothing_until_current() -> None:
    """with_key(current=False) puts a key before the current one; with_current promotes it."""
    standby = _ring(K1).with_key(K2, current=False)
    assert ("k2", "k1") == tuple(key.key_id for key in standby.keys)
    assert "k1" == standby.current.key_id
    promoted = standby.with_current("k2")
    assert ("k1", "k2") == tuple(key.key_id for key in promoted.keys)
    # A code a promoted node digests with k2 verifies on a node that holds k2 in standby.
    assert promoted.code_digest("k2", IDENTITY, "stc", "12345678") == standby.code_digest(
        "k2", IDENTITY, "stc", "12345678"
    )
    assert "k1" == promoted.with_current("k1").current.key_id


@pytest.mark.parametrize("key_id", ["k9", "", 1, None])
def test_with_current_refuses_a_key_it_does_not_hold(key_id: Any) -> None:
    """Only a held key can become current; anything else is a KeyringError."""
    with pytest.raises(KeyringError):
        _ring(K1, K2).with_current(key_id)


def test_a_standby_key_on_one_node_redeems_codes_another_node_digested_with_it() -> None:
    """The first pass of a rollout: nodes that know k2 in standby redeem codes made under k2."""
    storage, clock = MemoryStorage(), ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    base = _ring(K1)
    waiting = CodeIssuer(storage, keyring=base.with_key(K2, current=False), clock=clock)
    ahead = CodeIssuer(storage, keyring=base.with_key(K2), clock=clock)
    customer = Subject.citizen("1000000008")

    made_by_waiting = waiting.issue(customer, "stc")
    made_ahead = ahead.issue(customer, "stc")
    (snapshot,) = storage.snapshots()
    assert {"k1", "k2"} == {record.key_id for record in snapshot.codes}
    assert (
        made_ahead.code_id == waiting.redeem(customer, "stc", made_ahead.code, "new_line").code_id
    )
    assert (
        made_by_waiting.code_id
        == ahead.redeem(customer, "stc", made_by_waiting.code, "new_line").code_id
    )
