"""Tests for HMAC keys and the keyring: key validation, rotation, digests and pseudonyms."""

from __future__ import annotations

import copy
import hashlib
import hmac
import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import hmac_secrets, key_ids, short_secrets

from telecard_auth import (
    CodeIssuer,
    ConfigurationError,
    HmacKey,
    Keyring,
    KeyringError,
    ManualClock,
    MemoryStorage,
    Subject,
)
from telecard_auth._keyring import MIN_SECRET_BYTES

SECRET_1 = b"telecard-auth keyring secret #1."
SECRET_2 = b"telecard-auth keyring secret #2."
PSEUDONYM_SECRET = b"telecard-auth pseudonym secret.."
K1 = HmacKey(key_id="k1", secret=SECRET_1)
K2 = HmacKey(key_id="k2", secret=SECRET_2)

#: Text that may appear in subject refs, provider ids and codes: no unit separator (the library's
#: field separator) and no surrogates.
_FIELD_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x1f"), max_size=20)


def _ring(*keys: HmacKey, pseudonym_secret: bytes = PSEUDONYM_SECRET) -> Keyring:
    return Keyring(keys=keys, pseudonym_secret=pseudonym_secret)


# --- HmacKey ---------------------------------------------------------------------------------


def test_secrets_are_32_bytes_or_more() -> None:
    """The minimum secret is 32 bytes, the output size of SHA-256."""
    assert 32 == MIN_SECRET_BYTES
    assert b"k" * 32 == HmacKey(key_id="k1", secret=b"k" * 32).secret


@given(short_secrets())
def test_short_secret_is_refused(secret: bytes) -> None:
    """A secret under 32 bytes is a KeyringError."""
    with pytest.raises(KeyringError) as excinfo:
        HmacKey(key_id="k1", secret=secret)
    assert "keyring_error" == excinfo.value.code


@pytest.mark.parametrize(
    "secret", ["x" * 32, bytearray(32), memoryview(bytes(32)), None, 2**256, [0] * 32]
)
def test_secret_must_be_bytes(secret: object) -> None:
    """Text, bytearrays, memoryviews, numbers and lists are not secrets."""
    with pytest.raises(KeyringError):
        HmacKey(key_id="k1", secret=secret)  # type: ignore[arg-type]


@given(key_ids(), hmac_secrets())
def test_valid_key_ids_and_secrets_are_accepted(key_id: str, secret: bytes) -> None:
    """Any id of the documented shape and any secret of 32+ bytes make a key."""
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
        assert SECRET_1.decode() not in text
        assert SECRET_1.hex() not in text


def test_short_secret_error_does_not_echo_the_secret() -> None:
    """The refusal of a short secret does not repeat it."""
    with pytest.raises(KeyringError) as excinfo:
        HmacKey(key_id="k1", secret=b"do-not-print-me")
    assert "do-not-print-me" not in str(excinfo.value)
    assert "do-not-print-me" not in repr(excinfo.value)


# --- Keyring: construction -----------------------------------------------------------------------


def test_keyring_accepts_a_list() -> None:
    """Keys given as a list are kept as a tuple, oldest first."""
    ring = Keyring(keys=[K1, K2], pseudonym_secret=PSEUDONYM_SECRET)
    assert (K1, K2) == ring.keys


@pytest.mark.parametrize("keys", [(), []])
def test_keyring_needs_a_key(keys: Any) -> None:
    """An empty key list is a KeyringError."""
    with pytest.raises(KeyringError) as excinfo:
        Keyring(keys=keys, pseudonym_secret=PSEUDONYM_SECRET)
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
        Keyring(keys=keys, pseudonym_secret=PSEUDONYM_SECRET)


@pytest.mark.parametrize("secret", [b"", b"p" * 31, "p" * 32, None])
def test_keyring_refuses_a_bad_pseudonym_secret(secret: Any) -> None:
    """The pseudonym secret follows the same 32-byte rule as keys."""
    with pytest.raises(KeyringError):
        Keyring(keys=(K1,), pseudonym_secret=secret)


def test_keyring_is_frozen() -> None:
    """A keyring cannot be changed in place; rotation makes a new one."""
    ring = _ring(K1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ring.keys = (K2,)  # type: ignore[misc]


def test_keyring_repr_hides_every_secret() -> None:
    """repr() and str() show key ids but no key secret and no pseudonym secret."""
    ring = _ring(K1, K2)
    for text in (repr(ring), str(ring)):
        assert "k1" in text
        assert "k2" in text
        for secret in (SECRET_1, SECRET_2, PSEUDONYM_SECRET):
            assert secret.decode() not in text
            assert repr(secret) not in text
            assert secret.hex() not in text


@given(st.lists(hmac_secrets(), min_size=1, max_size=3), hmac_secrets())
def test_keyring_repr_never_contains_a_secret(secrets_: list[bytes], pseudonym: bytes) -> None:
    """Whatever the secrets are, none of them appears in repr()."""
    keys = tuple(
        HmacKey(key_id=f"k{index}", secret=secret) for index, secret in enumerate(secrets_)
    )
    text = repr(_ring(*keys, pseudonym_secret=pseudonym))
    for secret in (*secrets_, pseudonym):
        assert repr(secret) not in text
        assert secret.hex() not in text


def test_generate_makes_one_fresh_key() -> None:
    """generate() makes a ring with one 32-byte key 'k1' and a 32-byte pseudonym secret."""
    ring = Keyring.generate()
    assert ["k1"] == [key.key_id for key in ring.keys]
    assert 32 == len(ring.current.secret)
    assert 32 == len(ring.pseudonym_secret)


def test_generate_takes_a_key_id() -> None:
    """generate(key_id) names the first key."""
    assert "2026-03" == Keyring.generate("2026-03").current.key_id


def test_generate_is_random() -> None:
    """Two generated rings share no secret."""
    first, second = Keyring.generate(), Keyring.generate()
    assert first.current.secret != second.current.secret
    assert first.pseudonym_secret != second.pseudonym_secret
    assert first.current.secret != first.pseudonym_secret


# --- Keyring: rotation ---------------------------------------------------------------------------


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
    assert PSEUDONYM_SECRET == rotated.pseudonym_secret


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
    digest = _ring(K1).code_digest("k1", "ref", "stc", "12345678")
    assert digest is not None
    assert 32 == len(digest)
    assert digest != hashlib.sha256(b"12345678").digest()


def test_code_digest_is_pinned() -> None:
    """The digest format is stable: digests stored by an earlier release must still verify."""
    ring = Keyring(keys=(HmacKey(key_id="k1", secret=b"K" * 32),), pseudonym_secret=b"P" * 32)
    expected = hmac.new(b"K" * 32, b"code\x1fsubject-ref\x1fstc\x1f12345678", "sha256").digest()
    assert expected == ring.code_digest("k1", "subject-ref", "stc", "12345678")
    assert "4344d3ff92139bcaacf0987222aef1eb9a78b77b4b80d9a412327d5f5746a541" == expected.hex()


@given(_FIELD_TEXT, _FIELD_TEXT, _FIELD_TEXT)
def test_code_digest_is_deterministic(subject_ref: str, provider_id: str, code: str) -> None:
    """The same key, subject, provider and code give the same digest, from any equal ring."""
    first = _ring(K1).code_digest("k1", subject_ref, provider_id, code)
    second = _ring(K1, K2).code_digest("k1", subject_ref, provider_id, code)
    assert first is not None
    assert first == second


def test_code_digest_differs_per_key() -> None:
    """Two keys digest the same code differently."""
    ring = _ring(K1, K2)
    assert ring.code_digest("k1", "ref", "stc", "12345678") != ring.code_digest(
        "k2", "ref", "stc", "12345678"
    )


@given(
    st.lists(st.tuples(_FIELD_TEXT, _FIELD_TEXT, _FIELD_TEXT), min_size=2, max_size=2, unique=True)
)
def test_code_digest_binds_subject_provider_and_code(triples: list[tuple[str, str, str]]) -> None:
    """Different (subject_ref, provider, code) triples never share a digest."""
    first, second = triples
    ring = _ring(K1)
    assert ring.code_digest("k1", *first) != ring.code_digest("k1", *second)


@pytest.mark.parametrize(
    "other",
    [
        ("other-ref", "stc", "12345678"),
        ("ref", "zain", "12345678"),
        ("ref", "stc", "12345679"),
        # The same characters moved across a field boundary.
        ("refs", "tc", "12345678"),
        ("ref", "stc1", "2345678"),
    ],
)
def test_code_digest_differs_per_field(other: tuple[str, str, str]) -> None:
    """Changing the subject, the provider or the code changes the digest."""
    ring = _ring(K1)
    assert ring.code_digest("k1", "ref", "stc", "12345678") != ring.code_digest("k1", *other)


def test_code_digest_for_an_unknown_key_is_none() -> None:
    """A key id that is not in the ring gives None, not an error."""
    assert _ring(K1).code_digest("k2", "ref", "stc", "12345678") is None


def test_rotation_keeps_old_digests_verifiable() -> None:
    """After adding a key, the old key still gives the old digest; after retiring it, None."""
    ring = _ring(K1)
    before = ring.code_digest("k1", "ref", "stc", "12345678")
    rotated = ring.with_key(K2)
    assert before == rotated.code_digest("k1", "ref", "stc", "12345678")
    assert rotated.without_key("k1").code_digest("k1", "ref", "stc", "12345678") is None


# --- pseudonyms ----------------------------------------------------------------------------------


@given(_FIELD_TEXT, _FIELD_TEXT)
def test_pseudonym_is_32_hex_characters(domain: str, value: str) -> None:
    """A pseudonym is 128 bits as 32 lowercase hex characters."""
    assert re.fullmatch(r"[0-9a-f]{32}", _ring(K1).pseudonym(domain, value), re.ASCII)


def test_pseudonym_is_pinned() -> None:
    """Pseudonyms are stable across releases: changing them would orphan every stored record."""
    ring = Keyring(keys=(HmacKey(key_id="k1", secret=b"K" * 32),), pseudonym_secret=b"P" * 32)
    assert "bcf5d2a1943ff24630fc13e4d8792c77" == ring.pseudonym("subject", "citizen:1000000008")


def test_pseudonym_is_stable() -> None:
    """The same domain and value give the same pseudonym, from equal rings."""
    assert _ring(K1).pseudonym("subject", "citizen:1000000008") == _ring(K1).pseudonym(
        "subject", "citizen:1000000008"
    )


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


def test_pseudonym_depends_on_the_pseudonym_secret() -> None:
    """Another pseudonym secret gives other pseudonyms."""
    other = _ring(K1, pseudonym_secret=b"another pseudonym secret, 32 by.")
    assert _ring(K1).pseudonym("subject", "x") != other.pseudonym("subject", "x")


def test_pseudonym_survives_key_rotation() -> None:
    """Rotating HMAC keys does not change pseudonyms: they use their own secret."""
    ring = _ring(K1)
    rotated = ring.with_key(K2).without_key("k1")
    assert ring.pseudonym("subject", "citizen:1000000008") == rotated.pseudonym(
        "subject", "citizen:1000000008"
    )


def test_pseudonym_does_not_contain_the_value() -> None:
    """The pseudonym of an ID number does not contain the number."""
    assert "1000000008" not in _ring(K1).pseudonym("subject", "citizen:1000000008")


def test_keyring_pickles_and_copies_with_every_key() -> None:
    ring = Keyring.generate().with_key(HmacKey(key_id="k2", secret=bytes(range(32))))
    restored = pickle.loads(pickle.dumps(ring))  # noqa: S301 - our own bytes
    for copied in (restored, copy.deepcopy(ring), copy.copy(ring)):
        assert copied == ring
        assert copied.pseudonym("subject", "x") == ring.pseudonym("subject", "x")
        for key in ring.keys:
            assert copied.code_digest(key.key_id, "ref", "stc", "12345678") == ring.code_digest(
                key.key_id, "ref", "stc", "12345678"
            )


def test_digests_from_many_threads_agree() -> None:
    ring = Keyring.generate()
    expected = [ring.code_digest("k1", "ref", "stc", f"{n:08d}") for n in range(200)]

    def digests() -> list[bytes | None]:
        return [ring.code_digest("k1", "ref", "stc", f"{n:08d}") for n in range(200)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: digests(), range(16)))
    assert all(result == expected for result in results)


def test_a_standby_key_verifies_but_digests_nothing_until_current() -> None:
    """with_key(current=False) puts a key before the current one; with_current promotes it."""
    standby = _ring(K1).with_key(K2, current=False)
    assert ("k2", "k1") == tuple(key.key_id for key in standby.keys)
    assert "k1" == standby.current.key_id
    promoted = standby.with_current("k2")
    assert ("k1", "k2") == tuple(key.key_id for key in promoted.keys)
    # A code a promoted node digests with k2 verifies on a node that holds k2 in standby.
    assert promoted.code_digest("k2", "ref", "stc", "12345678") == standby.code_digest(
        "k2", "ref", "stc", "12345678"
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
