"""Keys that live outside storage: what turns codes and identities into keyed digests.

Two kinds of key, each a list of ``HmacKey`` with ids, oldest first:

- **HMAC keys** (``keys``) digest codes, and everything else stored about one code (a bound mobile
  number or recipient, an idempotent request's id and inputs), each digest bound to the code's
  subject and provider. The newest digests new codes and every key in the ring still verifies,
  so keys rotate without invalidating live codes; a record names its key.
- **Pseudonym keys** (``pseudonym_keys``) file subjects: a subject is stored under the keyed
  pseudonym of its identity (``subject_ref``), with its identity sealed (AES-256-GCM) under the
  same key, so that a later key can re-file it without anyone typing the identity again. They
  also make the pseudonyms that leave the issuing side: one per operator for a customer
  (``customer_ref``) and one for audit events (``audit_ref``), none of which is the storage key.
  Pseudonym keys rotate too, one rotation at a time: see ``with_pseudonym_key``.

A secret that is visibly not random (one byte repeated, a short pattern repeated, bytes counting
up or down, few distinct values, printable text) is refused: it is a placeholder or a password,
and would make every digest guessable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telecard_auth._core import jws
from telecard_auth._core.errors import InvalidInput, KeyringError
from telecard_auth._core.text import clip, plain, plain_text

__all__ = ["MIN_SECRET_BYTES", "HmacKey", "Keyring", "weakness"]

#: Shortest secret accepted: 256 bits, the output size of the hash.
MIN_SECRET_BYTES = 32
#: Fewest distinct byte values a 32-byte secret may have; random ones have about 30.
_MIN_DISTINCT = 16
_NONCE_BYTES = 12

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}", re.ASCII)
_SEP = b"\x1f"
_PRINTABLE = re.compile(rb"[ -~]*")


class _Keyed(Protocol):
    @property
    def key_id(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


def weakness(secret: bytes) -> str | None:
    """Why ``secret`` is visibly not random, or ``None`` when nothing shows.

    32 random bytes fail one of these checks with a chance below one in 10^13 (all printable is
    the likeliest); a placeholder (``bytes(32)``, ``bytes(range(32))``, ``b"K" * 32``) or a
    password fails at least one.

    >>> weakness(bytes(range(32)))
    'its bytes count up or down in equal steps'
    >>> weakness(secrets.token_bytes(32)) is None
    True
    """
    size = len(secret)
    if len(set(secret)) == 1:
        return "it is one byte repeated"
    steps = {(secret[i + 1] - secret[i]) % 256 for i in range(size - 1)}
    if len(steps) == 1:
        return "its bytes count up or down in equal steps"
    for period in range(2, size // 2 + 1):
        if secret[period:] == secret[:-period]:
            return "it repeats a short pattern"
    if len(set(secret)) < _MIN_DISTINCT:
        return "it uses too few distinct byte values"
    if _PRINTABLE.fullmatch(secret):
        return "it is printable text (a password or a placeholder), not random bytes"
    return None


def check_secret(secret: object, what: str) -> bytes:
    """``secret`` if it is bytes, long enough and not visibly weak; else ``KeyringError``."""
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise KeyringError(reason=f"{what} must be at least {MIN_SECRET_BYTES} bytes")
    why = weakness(secret)
    if why is not None:
        raise KeyringError(
            reason=f"{what} is not random: {why}; make keys with HmacKey.generate() or"
            " Keyring.generate()"
        )
    return secret


def _secret(_instance: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    check_secret(value, attribute.name)


def _key_id(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise KeyringError(reason="a key id is 1-32 characters of A-Z, a-z, 0-9, '.', '_', '-'")


@attrs.frozen(kw_only=True)
class HmacKey:
    """One HMAC-SHA256 key and the id stored beside each digest or pseudonym it made.

    >>> HmacKey.generate("k2").key_id
    'k2'
    """

    key_id: str = attrs.field(converter=plain_text, validator=_key_id)
    secret: bytes = attrs.field(repr=False, validator=_secret)

    @classmethod
    def generate(cls, key_id: str) -> HmacKey:
        """A fresh random key with the id ``key_id``."""
        secret = secrets.token_bytes(MIN_SECRET_BYTES)
        while weakness(secret) is not None:  # pragma: no cover - one draw in 10^13
            secret = secrets.token_bytes(MIN_SECRET_BYTES)
        return cls(key_id=key_id, secret=secret)


def _keys(value: object) -> tuple[HmacKey, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(k, HmacKey) for k in value):
        raise KeyringError(reason="keys must be a sequence of HmacKey")
    return tuple(value)


class _PseudonymKey:
    """One pseudonym key's keyed states: pseudonyms, and the identity seal."""

    __slots__ = ("key_id", "mac", "seal")

    def __init__(self, key: HmacKey) -> None:
        self.key_id = key.key_id
        self.mac = hmac.new(key.secret, digestmod=hashlib.sha256)
        self.seal = AESGCM(hmac.new(key.secret, b"seal", hashlib.sha256).digest())

    def pseudonym(self, domain: bytes, value: str) -> str:
        mac = self.mac.copy()
        mac.update(domain + _SEP + value.encode())
        return mac.digest()[:16].hex()


@attrs.frozen(kw_only=True)
class Keyring:
    """HMAC keys and pseudonym keys, each oldest first; see the module's notes.

    The newest HMAC key digests new codes and all of them verify. The newest pseudonym key files
    new subjects, unless it is in standby (``pseudonym_standby``, see ``with_pseudonym_key``).

    >>> ring = Keyring.generate()
    >>> ring.current.key_id, ring.pseudonym_key.key_id
    ('k1', 'p1')
    >>> rotated = ring.with_key(HmacKey.generate("k2"))
    >>> [key.key_id for key in rotated.keys]
    ['k1', 'k2']
    """

    keys: tuple[HmacKey, ...] = attrs.field(converter=_keys)
    pseudonym_keys: tuple[HmacKey, ...] = attrs.field(converter=_keys)
    pseudonym_standby: bool = False
    # Keyed states, made once: each digest copies one instead of rekeying from the secret.
    _by_id: Mapping[str, hmac.HMAC] = attrs.field(init=False, repr=False, eq=False)
    _pseudonyms: Mapping[str, _PseudonymKey] = attrs.field(init=False, repr=False, eq=False)
    _filing: _PseudonymKey = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise KeyringError(reason="a keyring needs at least one key")
        by_id = {key.key_id: hmac.new(key.secret, digestmod=hashlib.sha256) for key in self.keys}
        if len(by_id) != len(self.keys):
            raise KeyringError(reason="key ids must be unique")
        count = len(self.pseudonym_keys)
        if not 1 <= count <= 2:  # noqa: PLR2004
            raise KeyringError(
                reason="a keyring holds one pseudonym key, or two while subjects move to the newer"
            )
        pseudonyms = {key.key_id: _PseudonymKey(key) for key in self.pseudonym_keys}
        if len(pseudonyms) != count:
            raise KeyringError(reason="pseudonym key ids must be unique")
        if not isinstance(self.pseudonym_standby, bool):
            raise KeyringError(reason="pseudonym_standby must be True or False")
        if self.pseudonym_standby and count != 2:  # noqa: PLR2004
            raise KeyringError(reason="only a second, newer pseudonym key can be in standby")
        filing = self.pseudonym_keys[0 if self.pseudonym_standby else -1]
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_pseudonyms", pseudonyms)
        object.__setattr__(self, "_filing", pseudonyms[filing.key_id])

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyed states cannot be pickled; they are remade from the keys.
        return (_rebuild, (self.keys, self.pseudonym_keys, self.pseudonym_standby))

    @classmethod
    def generate(cls, key_id: str = "k1", pseudonym_key_id: str = "p1") -> Keyring:
        """A keyring with one fresh random HMAC key and one fresh random pseudonym key."""
        return cls(
            keys=(HmacKey.generate(key_id),), pseudonym_keys=(HmacKey.generate(pseudonym_key_id),)
        )

    # --- HMAC keys --------------------------------------------------------------------------

    @property
    def current(self) -> HmacKey:
        """The key new codes are digested with: the newest."""
        return self.keys[-1]

    def with_key(self, key: HmacKey, *, current: bool = True) -> Keyring:
        """A copy with ``key`` added as the newest, digesting new codes from now on.

        With ``current=False`` the key is added in standby, just before the current key: it
        verifies codes but digests none until ``with_current`` names it. That is the first pass
        of a rollout over many nodes; see the rotation procedure in the documentation.

        >>> ring = Keyring.generate().with_key(HmacKey.generate("k2"), current=False)
        >>> [key.key_id for key in ring.keys], ring.current.key_id
        (['k2', 'k1'], 'k1')
        >>> ring.with_current("k2").current.key_id
        'k2'
        """
        return attrs.evolve(self, keys=keys_with(self.keys, key, current=current))

    def with_current(self, key_id: str) -> Keyring:
        """A copy in which the held key ``key_id`` digests new codes; every key still verifies."""
        return attrs.evolve(self, keys=keys_led_by(self.keys, key_id))

    def without_key(self, key_id: str) -> Keyring:
        """A copy with ``key_id`` retired: codes digested with it can no longer be redeemed."""
        if not isinstance(key_id, str):
            raise KeyringError(reason="a key id is text")
        retired = plain(key_id)
        return attrs.evolve(self, keys=tuple(k for k in self.keys if k.key_id != retired))

    def code_digest(self, key_id: str, identity: str, provider_id: str, code: str) -> bytes | None:
        """The digest of ``code`` under ``key_id``, or ``None`` when that key is not in the ring.

        The subject's identity and the provider are part of the message, so a digest is worthless
        anywhere but on its own record. Every argument is a plain ``str``: the issuer calls this
        with values it has already checked; anything but text is ``InvalidInput``.
        """
        # A try costs nothing until it catches: the hot path pays no check for the guard.
        try:
            keyed = self._by_id.get(key_id)
            if keyed is None:
                return None
            message = _SEP.join((b"code", identity.encode(), provider_id.encode(), code.encode()))
        except (AttributeError, TypeError):  # not text
            raise InvalidInput() from None
        mac = keyed.copy()
        mac.update(message)
        return mac.digest()

    def record_digest(
        self, key_id: str, domain: str, identity: str, provider_id: str, value: str
    ) -> str | None:
        """A keyed digest (hex) of ``value`` stored on a code record of ``key_id``.

        Bound, like the code's digest, to the subject's identity and the provider, in its own
        ``domain`` (``"msisdn"``, ``"recipient"``, ``"request"``, ``"request-inputs"``); ``None``
        when the key is not in the ring.
        """
        keyed = self._by_id.get(key_id) if isinstance(key_id, str) else None
        if keyed is None:
            return None
        message = _texts(
            lambda: _SEP.join(
                (domain.encode(), identity.encode(), provider_id.encode(), value.encode())
            )
        )
        mac = keyed.copy()
        mac.update(message)
        return mac.digest()[:16].hex()

    def holds(self, key_id: str) -> bool:
        """Whether the HMAC key ``key_id`` is in the ring: codes it digested can still match."""
        return isinstance(key_id, str) and key_id in self._by_id

    # --- pseudonym keys ---------------------------------------------------------------------

    @property
    def pseudonym_key(self) -> HmacKey:
        """The pseudonym key new subjects are filed under."""
        for key in self.pseudonym_keys:
            if key.key_id == self._filing.key_id:
                return key
        raise AssertionError("the filing key is held")  # pragma: no cover

    def with_pseudonym_key(self, key: HmacKey, *, current: bool = True) -> Keyring:
        """A copy with a second, newer pseudonym key ``key``: the start of a rotation.

        With ``current=True`` new subjects are filed under ``key``, lookups try ``key`` first and
        then the older key, and a subject found under the older key moves to ``key`` when it is
        next written; ``CodeIssuer.move_subjects`` moves the rest. With ``current=False`` the key
        is in standby: lookups also try it, but nothing is filed under it until
        ``with_current_pseudonym_key`` names it. Roll a standby key out to every node first, then
        make it current everywhere, so that no node files a subject where another will not look.
        A ring holds two pseudonym keys at most: retire the older one
        (``without_pseudonym_key``) once every subject has moved.
        """
        if not isinstance(key, HmacKey):
            raise KeyringError(reason="a pseudonym key must be an HmacKey")
        if len(self.pseudonym_keys) != 1:
            raise KeyringError(
                reason="a rotation is under way: move every subject and retire the older"
                " pseudonym key before adding another"
            )
        return attrs.evolve(
            self, pseudonym_keys=(*self.pseudonym_keys, key), pseudonym_standby=not current
        )

    def with_current_pseudonym_key(self, key_id: str) -> Keyring:
        """A copy in which the newer pseudonym key ``key_id``, in standby, files new subjects."""
        held_key(self.pseudonym_keys, key_id)
        if plain(key_id) != self.pseudonym_keys[-1].key_id:
            raise KeyringError(reason="only the newer pseudonym key can become current")
        return attrs.evolve(self, pseudonym_standby=False)

    def without_pseudonym_key(self, key_id: str) -> Keyring:
        """A copy without the pseudonym key ``key_id``, which must not be the filing key.

        Retiring the older key ends a rotation: a subject still filed under it can no longer be
        found, so run ``move_subjects`` until it is ``done`` first. Retiring a newer key still
        in standby cancels a rotation that has not started filing.
        """
        held_key(self.pseudonym_keys, key_id)
        if len(self.pseudonym_keys) != 2 or plain(key_id) == self._filing.key_id:  # noqa: PLR2004
            raise KeyringError(reason="only a pseudonym key that files nothing can retire")
        kept = tuple(key for key in self.pseudonym_keys if key.key_id != plain(key_id))
        return attrs.evolve(self, pseudonym_keys=kept, pseudonym_standby=False)

    @property
    def filing_key_id(self) -> str:
        """The id of the pseudonym key that files new subjects."""
        return self._filing.key_id

    def lookup_key_ids(self) -> tuple[str, ...]:
        """The pseudonym key ids a subject is looked up under, in order: the filing key first."""
        other = [key.key_id for key in self.pseudonym_keys if key.key_id != self._filing.key_id]
        return (self._filing.key_id, *other)

    @property
    def newest_pseudonym_key_id(self) -> str:
        """The id of the newer pseudonym key: where subjects move to during a rotation."""
        return self.pseudonym_keys[-1].key_id

    def _pseudonym_key(self, key_id: str | None) -> _PseudonymKey:
        if key_id is None:
            return self._filing
        if not isinstance(key_id, str):
            raise InvalidInput()
        key = self._pseudonyms.get(key_id)
        if key is None:
            raise KeyringError(reason="no pseudonym key has that id")
        return key

    def subject_ref(self, identity: str, key_id: str | None = None) -> str:
        """The keyed pseudonym under which ``identity`` is filed by ``key_id`` (default: filing).

        Every argument is a plain ``str``: anything else is ``InvalidInput``, a key id the ring
        does not hold a ``KeyringError``; the same holds for every method below.
        """
        key = self._pseudonym_key(key_id)
        return _texts(lambda: key.pseudonym(b"subject", identity))

    def customer_ref(self, identity: str, provider_id: str) -> str:
        """The customer's pseudonym for one operator: what receipts and redemptions carry.

        Unlinkable across operators (each has its own domain) and to the storage key. Made with
        the filing pseudonym key, so it changes when a new pseudonym key becomes current.
        """
        return _texts(
            lambda: self._filing.pseudonym(b"customer" + _SEP + provider_id.encode(), identity)
        )

    def audit_ref(self, identity: str) -> str:
        """The customer's pseudonym in audit events, unlinkable to the storage key."""
        return _texts(lambda: self._filing.pseudonym(b"audit", identity))

    def pseudonym(self, domain: str, value: str) -> str:
        """A stable keyed pseudonym (128 bits, hex) of ``value`` within ``domain``, for the
        integrator's own use.

        Made with the filing pseudonym key, in a space of its own: no ``domain`` gives any of
        the library's pseudonyms (the storage key, a customer's or an audit pseudonym). A domain
        holding the unit separator (U+001F) is ``InvalidInput``: it could make two domains one.
        """
        if not isinstance(domain, str) or "\x1f" in domain:
            raise InvalidInput()
        return _texts(lambda: self._filing.pseudonym(b"app" + _SEP + domain.encode(), value))

    def seal(self, identity: str, subject_ref: str, key_id: str) -> str:
        """``identity`` encrypted and authenticated under pseudonym key ``key_id``, bound to
        ``subject_ref``: ``<key id>.<base64url(nonce, ciphertext)>``."""
        key = self._pseudonym_key(key_id)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = _texts(lambda: key.seal.encrypt(nonce, identity.encode(), subject_ref.encode()))
        return f"{key.key_id}.{jws.b64encode(nonce + sealed)}"

    def unseal(self, envelope: str | None, subject_ref: str) -> tuple[str, str] | None:
        """The pseudonym key id and identity ``seal`` made into ``envelope`` for ``subject_ref``.

        ``None`` if there is none, its key is not held, or it was altered or moved.
        """
        if not isinstance(envelope, str):
            return None
        key_id, _, encoded = envelope.partition(".")
        key = self._pseudonyms.get(key_id)
        raw = jws.b64decode(encoded)
        if key is None or raw is None or len(raw) <= _NONCE_BYTES:
            return None
        try:
            opened = key.seal.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], subject_ref.encode())
            return key_id, opened.decode()
        except (InvalidTag, UnicodeDecodeError):
            return None


T = TypeVar("T")


def _texts(make: Callable[[], T]) -> T:
    """``make()``, with arguments that are not text turned into ``InvalidInput``."""
    try:
        return make()
    except (AttributeError, TypeError):  # not text (the try costs nothing until it catches)
        raise InvalidInput() from None


def keys_with(keys: tuple[K, ...], key: K, *, current: bool) -> tuple[K, ...]:
    """``keys`` (oldest first, the last one current) with ``key`` added as current or in standby."""
    return (*keys, key) if current else (*keys[:-1], key, keys[-1])


def keys_led_by(keys: tuple[K, ...], key_id: object) -> tuple[K, ...]:
    """``keys`` reordered so that the held key ``key_id`` is the last one, the current one."""
    chosen = held_key(keys, key_id)
    return (*(key for key in keys if key is not chosen), chosen)


def held_key(keys: tuple[K, ...], key_id: object) -> K:
    """The key of ``keys`` with id ``key_id``; ``KeyringError`` if none has it."""
    if not isinstance(key_id, str):
        raise KeyringError(reason=f"a key id is text, not {clip(key_id)}")
    wanted = plain(key_id)
    for key in keys:
        if key.key_id == wanted:
            return key
    raise KeyringError(reason=f"no key has the id {clip(wanted)}")


def _rebuild(
    keys: tuple[HmacKey, ...], pseudonym_keys: tuple[HmacKey, ...], standby: bool
) -> Keyring:
    return Keyring(keys=keys, pseudonym_keys=pseudonym_keys, pseudonym_standby=standby)
