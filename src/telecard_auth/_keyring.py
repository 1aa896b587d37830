"""Keys that live outside storage: what turns codes and identity numbers into keyed hashes.

A code is stored only as HMAC-SHA256 under a key with an id; the newest key makes new digests and
every key in the ring still verifies, so keys rotate without invalidating live codes. Identity
numbers and mobile numbers become pseudonyms under a separate pseudonym secret, which is stable:
changing it would orphan every stored record.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import attrs

from telecard_auth._errors import InvalidInput, KeyringError, clip, plain, plain_text

__all__ = ["MIN_SECRET_BYTES", "HmacKey", "Keyring"]

#: Shortest secret accepted: 256 bits, the output size of the hash.
MIN_SECRET_BYTES = 32

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}", re.ASCII)
_SEP = b"\x1f"


class _Keyed(Protocol):
    @property
    def key_id(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


def _secret(_instance: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    if not isinstance(value, bytes) or len(value) < MIN_SECRET_BYTES:
        raise KeyringError(reason=f"{attribute.name} must be at least {MIN_SECRET_BYTES} bytes")


def _key_id(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise KeyringError(reason="a key id is 1-32 characters of A-Z, a-z, 0-9, '.', '_', '-'")


@attrs.frozen(kw_only=True)
class HmacKey:
    """One HMAC-SHA256 key and the id stored beside each digest it made."""

    key_id: str = attrs.field(converter=plain_text, validator=_key_id)
    secret: bytes = attrs.field(repr=False, validator=_secret)


def _keys(value: object) -> tuple[HmacKey, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(k, HmacKey) for k in value):
        raise KeyringError(reason="keys must be a sequence of HmacKey")
    return tuple(value)


@attrs.frozen(kw_only=True)
class Keyring:
    """HMAC keys, oldest first: the newest digests new codes, all of them verify.

    >>> ring = Keyring.generate()
    >>> ring.current.key_id
    'k1'
    >>> rotated = ring.with_key(HmacKey(key_id="k2", secret=bytes(32)))
    >>> [key.key_id for key in rotated.keys]
    ['k1', 'k2']
    """

    keys: tuple[HmacKey, ...] = attrs.field(converter=_keys)
    pseudonym_secret: bytes = attrs.field(repr=False, validator=_secret)
    # Keyed HMAC states, made once: each digest copies one instead of rekeying from the secret.
    _by_id: Mapping[str, hmac.HMAC] = attrs.field(init=False, repr=False, eq=False)
    _pseudonym_mac: hmac.HMAC = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise KeyringError(reason="a keyring needs at least one key")
        by_id = {key.key_id: hmac.new(key.secret, digestmod=hashlib.sha256) for key in self.keys}
        if len(by_id) != len(self.keys):
            raise KeyringError(reason="key ids must be unique")
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(
            self, "_pseudonym_mac", hmac.new(self.pseudonym_secret, digestmod=hashlib.sha256)
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyed HMAC states cannot be pickled; they are remade from the keys.
        return (_rebuild, (self.keys, self.pseudonym_secret))

    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        """A keyring with one fresh random key and a fresh pseudonym secret."""
        return cls(
            keys=(HmacKey(key_id=key_id, secret=secrets.token_bytes(MIN_SECRET_BYTES)),),
            pseudonym_secret=secrets.token_bytes(MIN_SECRET_BYTES),
        )

    @property
    def current(self) -> HmacKey:
        """The key new codes are digested with: the newest."""
        return self.keys[-1]

    def with_key(self, key: HmacKey, *, current: bool = True) -> Keyring:
        """A copy with ``key`` added as the newest, digesting new codes from now on.

        With ``current=False`` the key is added in standby, just before the current key: it
        verifies codes but digests none until ``with_current`` names it. That is the first pass
        of a rollout over many nodes; see the rotation procedure in the documentation.

        >>> standby = HmacKey(key_id="k2", secret=bytes(32))
        >>> ring = Keyring.generate().with_key(standby, current=False)
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

    def code_digest(
        self, key_id: str, subject_ref: str, provider_id: str, code: str
    ) -> bytes | None:
        """The digest of ``code`` under ``key_id``, or ``None`` when that key is not in the ring.

        The subject and provider are part of the message, so a digest is worthless anywhere
        but on its own record. Every argument is a plain ``str``: the issuer calls this with
        values it has already checked; anything but text is ``InvalidInput``.
        """
        # A try costs nothing until it catches: the hot path pays no check for the guard.
        try:
            keyed = self._by_id.get(key_id)
            if keyed is None:
                return None
            message = _SEP.join(
                (b"code", subject_ref.encode(), provider_id.encode(), code.encode())
            )
        except (AttributeError, TypeError):  # not text
            raise InvalidInput() from None
        mac = keyed.copy()
        mac.update(message)
        return mac.digest()

    def pseudonym(self, domain: str, value: str) -> str:
        """A stable keyed pseudonym (128 bits, hex) of ``value`` within ``domain``.

        ``domain`` and ``value`` are plain ``str``, as the issuer passes them; anything but text
        is ``InvalidInput``.
        """
        try:
            message = _SEP.join((domain.encode(), value.encode()))
        except (AttributeError, TypeError):  # not text (the try costs nothing until it catches)
            raise InvalidInput() from None
        mac = self._pseudonym_mac.copy()
        mac.update(message)
        return mac.digest()[:16].hex()


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


def _rebuild(keys: tuple[HmacKey, ...], pseudonym_secret: bytes) -> Keyring:
    return Keyring(keys=keys, pseudonym_secret=pseudonym_secret)
