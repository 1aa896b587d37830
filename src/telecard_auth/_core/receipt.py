"""Signed redemption receipts: proof, checkable offline, that a code was used.

A successful redemption can hand back a :class:`Receipt`: which code (``code_id``) was used, at
which provider, for which service, when, by whom, and which key signed it. "By whom" is the
customer's pseudonym for that provider (``customer_ref``): never an identity number, never the key
under which storage files the customer, and different at each provider, so a receipt can be kept,
logged and passed on without carrying personal data, and two operators cannot link their
customers by comparing receipts.

What is signed
    The :meth:`Receipt.payload`: the seven fields as compact JSON with sorted keys and ASCII only,
    ``redeemed_at`` as UTC to the microsecond (``2026-03-01T09:30:00.000000Z``). The version and
    the signing key id are inside the signed bytes, so neither can be swapped after signing.
    There is exactly one encoding of a given receipt, and parsing refuses every other: one
    receipt has one text, and changing any character of it either makes it unreadable
    (:class:`MalformedReceipt`) or breaks the signature (:class:`ReceiptNotVerified`).

How
    Ed25519 (RFC 8032). Signatures are deterministic: signing the same fields with the same key
    gives the same receipt, byte for byte, so an idempotent redemption answered twice hands back
    one receipt. An operator verifies with the public key alone, offline; nothing secret leaves
    the issuer. Use a receipt signing key for receipts only.

Text forms (ASCII; base64url without padding, so safe in an HTTP header or a database column)
    * receipt: ``tar1.<base64url(payload)>.<base64url(64-byte signature)>``, at most
      :data:`MAX_RECEIPT_LENGTH` characters;
    * public key, for operators: ``tar1-public:<key id>:<base64url(32 bytes)>``;
    * private key, for the issuer's key file: ``tar1-private:<key id>:<base64url(32 bytes)>``.

Keys rotate like the HMAC keyring: :meth:`ReceiptSigner.with_key` adds a key that signs from then
on, :meth:`ReceiptSigner.verify_keys` still lists the older public keys, and
:meth:`ReceiptSigner.without_key` retires one, after which its receipts no longer verify against
the signer's keys (:class:`UnknownSigningKey`).

>>> signer = ReceiptSigner.generate("r1")
>>> receipt = signer.sign(
...     code_id="q3Vx0bLk9TzA2mNc",
...     provider_id="stc",
...     service_id="new_line",
...     redeemed_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
...     customer_ref="3f9a0c1b2d4e5f60718293a4b5c6d7e8",
... )
>>> text = receipt.to_text()
>>> text.startswith("tar1.")
True
>>> operator_key = signer.current.public_key.to_text()  # one short line, handed to the operator
>>> verify_receipt(text, VerifyKey.from_text(operator_key)) == receipt
True
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from telecard_auth._core.clock import ensure_utc
from telecard_auth._core.errors import (
    KeyringError,
    MalformedReceipt,
    ReceiptNotVerified,
    UnknownSigningKey,
)
from telecard_auth._core.keyring import keys_led_by, keys_with, weakness
from telecard_auth._core.text import clip, plain, plain_text

__all__ = [
    "MAX_RECEIPT_LENGTH",
    "RECEIPT_VERSION",
    "Receipt",
    "ReceiptSigner",
    "SigningKey",
    "VerifyKey",
    "verify_receipt",
]

#: The receipt format version: signed inside the payload and named by the ``tar1.`` prefix.
RECEIPT_VERSION = 1
#: The longest receipt text accepted by :meth:`Receipt.parse`; real receipts are well under 1 000.
MAX_RECEIPT_LENGTH = 2048

_PREFIX = "tar1."
_PUBLIC_PREFIX = "tar1-public:"
_PRIVATE_PREFIX = "tar1-private:"
_SIGNATURE_BYTES = 64
_KEY_BYTES = 32
# A key text is one short line; anything much longer is refused before any pattern runs.
_LONGEST_KEY_TEXT = 128

# The same rule as HmacKey ids in _keyring.py (kept in step by tests/test_receipt.py).
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}", re.ASCII)
# Receipt fields: characters JSON never escapes and a header never chokes on; covers code ids
# (token_urlsafe), provider and service slugs, and hex or base64 pseudonyms.
_TOKEN = re.compile(r"[A-Za-z0-9._~:+/=-]{1,64}", re.ASCII)
# Ten bare digits is the shape of a national ID, Iqama or unified number: never a pseudonym.
_IDENTITY_NUMBER = re.compile(r"[0-9]{10}", re.ASCII)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z", re.ASCII)
_B64 = "[A-Za-z0-9_-]"
_TEXT_FORM = re.compile(rf"tar1\.({_B64}+)\.({_B64}+)", re.ASCII)
_KEY_TEXT = re.compile(
    rf"(tar1-public|tar1-private):([A-Za-z0-9._-]{{1,32}}):({_B64}{{43}})", re.ASCII
)

_TEXT_FIELDS = ("code_id", "provider_id", "service_id", "customer_ref")
_FIELDS = frozenset(("version", "key_id", "redeemed_at", *_TEXT_FIELDS))


# --- encodings ---------------------------------------------------------------------------------


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """The bytes of canonical unpadded base64url ``text``, or ``None``.

    Only the one encoding that ``_b64encode`` gives back is accepted: stray padding bits would
    let two texts carry one receipt.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == text else None


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _malformed(reason: str, reason_ar: str) -> MalformedReceipt:
    return MalformedReceipt(reason=reason, reason_ar=reason_ar)


def _bad_field(name: str) -> MalformedReceipt:
    # ``name`` is one of the receipt's own field names, never caller text.
    return _malformed(
        f"the field {name} is missing or not valid", f"الحقل {name} مفقود أو غير صحيح"
    )


# --- keys --------------------------------------------------------------------------------------


def _key_id(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise KeyringError(reason="a key id is 1-32 characters of A-Z, a-z, 0-9, '.', '_', '-'")


def _is_private(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Ed25519PrivateKey):
        raise KeyringError(reason="a receipt signing key must be an Ed25519PrivateKey")
    why = weakness(_raw_private(value))
    if why is not None:
        raise KeyringError(
            reason=f"the receipt signing key is not random: {why}; make keys with"
            " SigningKey.generate()"
        )


def _is_public(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Ed25519PublicKey):
        raise KeyringError(reason="a receipt verify key must be an Ed25519PublicKey")


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _show_public(key: Ed25519PublicKey) -> str:
    return repr(_b64encode(_raw_public(key)))


def _read_key_text(text: object, want: str) -> tuple[str, bytes]:
    """The key id and raw key bytes of a ``tar1-public:`` or ``tar1-private:`` line.

    Key texts may be secret: no error repeats them.
    """
    shape = f"expected {want}<key id>:<43 characters of base64url>"
    if not isinstance(text, str):
        raise KeyringError(reason=f"a key text must be a str, not {clip(text)}")
    line = text.strip()
    if len(line) > _LONGEST_KEY_TEXT:
        raise KeyringError(reason=shape)
    match = _KEY_TEXT.fullmatch(line)
    if match is None:
        raise KeyringError(reason=shape)
    kind, key_id, encoded = match.groups()
    if kind + ":" != want:
        if want == _PUBLIC_PREFIX:
            raise KeyringError(
                reason="this is a private key; hand operators the public key text only"
            )
        raise KeyringError(reason="this is a public key; signing needs the private key text")
    raw = _b64decode(encoded)
    if raw is None or len(raw) != _KEY_BYTES:
        raise KeyringError(reason=shape)
    return key_id, raw


@attrs.frozen(kw_only=True)
class VerifyKey:
    """A receipt signing key's public half and its id: all an operator needs to verify receipts.

    Its text form is one short line, safe to hand out, paste into a configuration file or print.
    Two verify keys are equal when their ids and public key bytes are.

    >>> key = VerifyKey.from_text("tar1-public:r1:he5ngcSf3KwM7ZoxUnYjuVoVej0GtlxJpXewO4Coz8I")
    >>> key
    VerifyKey(key_id='r1', public_key='he5ngcSf3KwM7ZoxUnYjuVoVej0GtlxJpXewO4Coz8I')
    >>> key.to_text()
    'tar1-public:r1:he5ngcSf3KwM7ZoxUnYjuVoVej0GtlxJpXewO4Coz8I'
    """

    key_id: str = attrs.field(converter=plain_text, validator=_key_id)
    public_key: Ed25519PublicKey = attrs.field(validator=_is_public, eq=False, repr=_show_public)
    _raw: bytes = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_raw", _raw_public(self.public_key))

    def to_text(self) -> str:
        """``tar1-public:<key id>:<base64url of the 32 raw public key bytes>``."""
        return f"{_PUBLIC_PREFIX}{self.key_id}:{_b64encode(self._raw)}"

    @classmethod
    def from_text(cls, text: object) -> VerifyKey:
        """Read :meth:`to_text`'s form (surrounding whitespace allowed); else ``KeyringError``."""
        key_id, raw = _read_key_text(text, _PUBLIC_PREFIX)
        try:
            public_key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise KeyringError(reason="the bytes are not an Ed25519 public key") from None
        return cls(key_id=key_id, public_key=public_key)


@attrs.frozen(kw_only=True)
class SigningKey:
    """One Ed25519 receipt signing key and the id written into every receipt it signs.

    The private key is left out of ``repr``; :meth:`to_private_text` is the form for a key file,
    :attr:`public_key` the part to hand to operators. Two signing keys are equal when their ids
    and key pairs are.

    >>> key = SigningKey.from_private_text(
    ...     "tar1-private:r1:p3KNBwbeZo_m6oCSH5BRG4ZZocfCUYA6nX9gUTua72o"
    ... )
    >>> key
    SigningKey(key_id='r1')
    >>> key.public_key.to_text()
    'tar1-public:r1:he5ngcSf3KwM7ZoxUnYjuVoVej0GtlxJpXewO4Coz8I'
    """

    key_id: str = attrs.field(converter=plain_text, validator=_key_id)
    private_key: Ed25519PrivateKey = attrs.field(validator=_is_private, repr=False, eq=False)
    # Equality and hashing go by the public half: it identifies the pair, and is no secret.
    _public_raw: bytes = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_public_raw", _raw_public(self.private_key.public_key()))

    @classmethod
    def generate(cls, key_id: str = "r1") -> SigningKey:
        """A fresh random signing key."""
        private_key = Ed25519PrivateKey.generate()
        while weakness(_raw_private(private_key)) is not None:  # pragma: no cover - 1 in 10^13
            private_key = Ed25519PrivateKey.generate()
        return cls(key_id=key_id, private_key=private_key)

    @property
    def public_key(self) -> VerifyKey:
        """The public half, with the same id: what operators verify receipts with."""
        return VerifyKey(key_id=self.key_id, public_key=self.private_key.public_key())

    def to_private_text(self) -> str:
        """``tar1-private:<key id>:<base64url of the 32-byte private key>``. Keep it secret."""
        raw = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{_PRIVATE_PREFIX}{self.key_id}:{_b64encode(raw)}"

    @classmethod
    def from_private_text(cls, text: object) -> SigningKey:
        """Read :meth:`to_private_text`'s form; anything else is a ``KeyringError``."""
        key_id, raw = _read_key_text(text, _PRIVATE_PREFIX)
        return cls(key_id=key_id, private_key=Ed25519PrivateKey.from_private_bytes(raw))


def _signing_keys(value: object) -> tuple[SigningKey, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(k, SigningKey) for k in value):
        raise KeyringError(reason="keys must be a sequence of SigningKey")
    return tuple(value)


@attrs.frozen(kw_only=True)
class ReceiptSigner:
    """Receipt signing keys, oldest first: the newest signs, every one's public key verifies.

    >>> signer = ReceiptSigner.generate("r1")
    >>> rotated = signer.with_key(SigningKey.generate("r2"))
    >>> rotated.current.key_id
    'r2'
    >>> [key.key_id for key in rotated.verify_keys()]
    ['r1', 'r2']
    >>> [key.key_id for key in rotated.without_key("r1").keys]
    ['r2']
    """

    keys: tuple[SigningKey, ...] = attrs.field(converter=_signing_keys)

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise KeyringError(reason="a receipt signer needs at least one key")
        if len({key.key_id for key in self.keys}) != len(self.keys):
            raise KeyringError(reason="receipt signing key ids must be unique")

    @classmethod
    def generate(cls, key_id: str = "r1") -> ReceiptSigner:
        """A signer with one fresh random key."""
        return cls(keys=(SigningKey.generate(key_id),))

    @property
    def current(self) -> SigningKey:
        """The key new receipts are signed with: the newest."""
        return self.keys[-1]

    def with_key(self, key: SigningKey, *, current: bool = True) -> ReceiptSigner:
        """A copy with ``key`` added as the newest: it signs from now on. Ids must stay unique.

        With ``current=False`` the key is added in standby, just before the current key, and
        signs nothing until ``with_current`` names it: time to hand its public key to every
        operator before the first receipt it signs reaches one.
        """
        return attrs.evolve(self, keys=keys_with(self.keys, key, current=current))

    def with_current(self, key_id: str) -> ReceiptSigner:
        """A copy in which the held key ``key_id`` signs new receipts; no key is dropped."""
        return attrs.evolve(self, keys=keys_led_by(self.keys, key_id))

    def without_key(self, key_id: str) -> ReceiptSigner:
        """A copy with ``key_id`` retired: receipts it signed no longer verify with this signer.

        Retiring a key the signer does not hold, or its last key, is a ``KeyringError``.
        """
        if not isinstance(key_id, str):
            raise KeyringError(reason=f"a key id is text, not {clip(key_id)}")
        retired = plain(key_id)
        kept = tuple(key for key in self.keys if key.key_id != retired)
        if len(kept) == len(self.keys):
            raise KeyringError(reason=f"no receipt signing key has the id {clip(retired)}")
        return attrs.evolve(self, keys=kept)

    def key(self, key_id: str) -> SigningKey:
        """The key with ``key_id``, or :attr:`current` when that key is no longer held.

        A key id that is not text is a ``KeyringError``.
        """
        if not isinstance(key_id, str):
            raise KeyringError(reason=f"a key id is text, not {clip(key_id)}")
        wanted = plain(key_id)
        for key in self.keys:
            if key.key_id == wanted:
                return key
        return self.current

    def verify_keys(self) -> tuple[VerifyKey, ...]:
        """The public keys of every key held, oldest first: older receipts still verify."""
        return tuple(key.public_key for key in self.keys)

    def sign(
        self,
        *,
        code_id: str,
        provider_id: str,
        service_id: str,
        redeemed_at: datetime,
        customer_ref: str,
        key_id: str | None = None,
    ) -> Receipt:
        """A receipt for these fields, signed with :attr:`current`, or with ``key_id`` if held.

        Deterministic: the same fields and key always give the same receipt, which is how a
        retried redemption gets the very receipt it got the first time. A field that a receipt
        cannot hold is a ``MalformedReceipt``; a naive time is an ``InvalidTime``.
        """
        key = self.current if key_id is None else self.key(key_id)
        unsigned = Receipt(
            version=RECEIPT_VERSION,
            code_id=code_id,
            provider_id=provider_id,
            service_id=service_id,
            redeemed_at=redeemed_at,
            customer_ref=customer_ref,
            key_id=key.key_id,
            signature=bytes(_SIGNATURE_BYTES),
        )
        # The receipt was just checked field by field and nobody else holds it yet: set its
        # signature in place instead of building and checking it a second time (attrs.evolve).
        object.__setattr__(unsigned, "signature", key.private_key.sign(unsigned.payload()))
        return unsigned


# --- receipts ----------------------------------------------------------------------------------


def _version(_instance: object, _attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int or value != RECEIPT_VERSION:
        raise _malformed(
            f"only version {RECEIPT_VERSION} receipts are known",
            f"لا يُعرف من الإيصالات إلا الإصدار {RECEIPT_VERSION}",
        )


def _token(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise _bad_field(attribute.name)


def _pseudonym(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    _token(instance, attribute, value)
    if _IDENTITY_NUMBER.fullmatch(str(value)):
        raise _malformed(
            "customer_ref looks like an identity number; a receipt holds a pseudonym only",
            "الحقل customer_ref يشبه رقم هوية؛ لا يحمل الإيصال إلا اسمًا مستعارًا",
        )


def _receipt_key_id(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise _bad_field("key_id")


def _signature(_instance: object, _attribute: attrs.Attribute[bytes], value: object) -> None:
    if not isinstance(value, bytes) or len(value) != _SIGNATURE_BYTES:
        raise _malformed(
            f"the signature must be {_SIGNATURE_BYTES} bytes",
            f"يجب أن يكون التوقيع {_SIGNATURE_BYTES} بايت",
        )


def _utc(value: object) -> datetime:
    return ensure_utc(value, what="redeemed_at")


def _redeemed_at(text: object) -> datetime:
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise _bad_field("redeemed_at")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise _bad_field("redeemed_at") from None


def _pick(keys: object, key_id: str) -> Ed25519PublicKey:
    """The public key to check a receipt signed by ``key_id`` with."""
    if isinstance(keys, Ed25519PublicKey):
        return keys
    if isinstance(keys, VerifyKey):
        keys = (keys,)
    if isinstance(keys, str | bytes | bytearray | memoryview) or not isinstance(keys, Iterable):
        raise KeyringError(
            reason="verify takes a VerifyKey, an Ed25519PublicKey or an iterable of VerifyKey"
        )
    try:
        # The caller's iterable: whatever its iteration raises is a keyring mistake.
        candidates = tuple(keys)
    except Exception as error:
        raise KeyringError(reason="the verify keys could not be read") from error
    found: VerifyKey | None = None
    for key in candidates:
        if not isinstance(key, VerifyKey):
            raise KeyringError(reason="verify keys must all be VerifyKey")
        if key.key_id == key_id:
            if found is not None and found != key:
                raise KeyringError(reason=f"two different verify keys have the id {key_id}")
            found = key
    if found is None:
        raise UnknownSigningKey(key_id=clip(key_id))
    return found.public_key


@attrs.frozen(kw_only=True)
class Receipt:
    """Signed proof that a code was redeemed: what, where, for what, when, by whom, under which key.

    ``customer_ref`` is the subject's pseudonym, never an identity number. ``redeemed_at`` is
    UTC and keeps its microseconds. Build receipts with :meth:`ReceiptSigner.sign`, read them
    with :meth:`parse`, check them with :meth:`verify`.

    >>> from datetime import UTC, datetime
    >>> import attrs
    >>> signer = ReceiptSigner(keys=(SigningKey.from_private_text(
    ...     "tar1-private:r1:p3KNBwbeZo_m6oCSH5BRG4ZZocfCUYA6nX9gUTua72o"),))
    >>> receipt = signer.sign(
    ...     code_id="q3Vx0bLk9TzA2mNc",
    ...     provider_id="mobily",
    ...     service_id="lost_sim_replacement",
    ...     redeemed_at=datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC),
    ...     customer_ref="3f9a0c1b2d4e5f60718293a4b5c6d7e8",
    ... )
    >>> receipt
    Receipt(version=1, code_id='q3Vx0bLk9TzA2mNc', provider_id='mobily',
            service_id='lost_sim_replacement',
            redeemed_at=datetime.datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=...),
            customer_ref='3f9a0c1b2d4e5f60718293a4b5c6d7e8', key_id='r1')
    >>> receipt.payload()[:70]
    b'{"code_id":"q3Vx0bLk9TzA2mNc","customer_ref":"3f9a0c1b2d4e5f60718293a4'
    >>> text = receipt.to_text()
    >>> Receipt.parse(text) == receipt
    True
    >>> receipt.verify(signer.verify_keys())  # None: authentic
    >>> tampered = attrs.evolve(receipt, service_id="new_line")
    >>> tampered.verify(signer.verify_keys())
    Traceback (most recent call last):
    ...
    telecard_auth._core.errors.ReceiptNotVerified: The receipt is not authentic: ...
    """

    version: int = attrs.field(validator=_version)
    code_id: str = attrs.field(converter=plain_text, validator=_token)
    provider_id: str = attrs.field(converter=plain_text, validator=_token)
    service_id: str = attrs.field(converter=plain_text, validator=_token)
    redeemed_at: datetime = attrs.field(converter=_utc)
    customer_ref: str = attrs.field(converter=plain_text, validator=_pseudonym)
    key_id: str = attrs.field(converter=plain_text, validator=_receipt_key_id)
    signature: bytes = attrs.field(validator=_signature, repr=False)

    def payload(self) -> bytes:
        """The exact bytes that are signed: canonical JSON of every field but the signature.

        Compact, keys sorted, ASCII only, ``redeemed_at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.
        """
        fields = {
            "version": self.version,
            "code_id": self.code_id,
            "provider_id": self.provider_id,
            "service_id": self.service_id,
            "redeemed_at": _format_time(self.redeemed_at),
            "customer_ref": self.customer_ref,
            "key_id": self.key_id,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")

    def to_text(self) -> str:
        """``tar1.<base64url(payload)>.<base64url(signature)>``: ASCII, unpadded, header-safe."""
        return f"{_PREFIX}{_b64encode(self.payload())}.{_b64encode(self.signature)}"

    @classmethod
    def parse(cls, text: object) -> Receipt:
        """Read a receipt's text form. Parsing does not verify: call :meth:`verify` next.

        Anything but the exact form :meth:`to_text` writes is a ``MalformedReceipt``, and no
        other exception; the message never repeats the text.
        """
        if not isinstance(text, str):
            raise _malformed(f"a receipt must be text, not {clip(text)}", "يجب أن يكون الإيصال نصًا")
        if not 0 < len(text) <= MAX_RECEIPT_LENGTH:
            raise _malformed(
                f"a receipt is 1 to {MAX_RECEIPT_LENGTH} characters",
                f"يجب أن يتكون الإيصال من 1 إلى {MAX_RECEIPT_LENGTH} حرفًا",
            )
        match = _TEXT_FORM.fullmatch(text)
        if match is None:
            raise _malformed(
                "a receipt has the form tar1.<payload>.<signature> in base64url",
                "صيغة الإيصال هي tar1.<payload>.<signature> بترميز base64url",
            )
        payload, signature = (_b64decode(part) for part in match.groups())
        if payload is None or signature is None:
            raise _malformed(
                "a part is not canonical base64url without padding",
                "أحد أجزاء الإيصال ليس بترميز base64url قياسي دون حشو",
            )
        if len(signature) != _SIGNATURE_BYTES:
            raise _malformed(
                f"the signature must be {_SIGNATURE_BYTES} bytes",
                f"يجب أن يكون التوقيع {_SIGNATURE_BYTES} بايت",
            )
        receipt = cls._from_payload(payload, signature)
        if receipt.payload() != payload:
            raise _malformed(
                "the payload is not in canonical form", "محتوى الإيصال ليس بالصيغة القياسية"
            )
        return receipt

    @classmethod
    def _from_payload(cls, payload: bytes, signature: bytes) -> Receipt:
        try:
            # Nesting within the length cap can be deep enough to exhaust the parser's recursion.
            fields = json.loads(payload.decode("ascii"))
        except (ValueError, RecursionError):
            raise _malformed(
                "the payload is not ASCII JSON", "محتوى الإيصال ليس JSON بترميز ASCII"
            ) from None
        if not isinstance(fields, dict) or set(fields) != _FIELDS:
            raise _malformed(
                "the payload must hold exactly the receipt's fields",
                "يجب أن يحمل محتوى الإيصال حقوله بالضبط ولا شيء غيرها",
            )
        # Every validator raises MalformedReceipt; _redeemed_at makes only aware UTC times.
        return cls(
            version=fields["version"],
            code_id=fields["code_id"],
            provider_id=fields["provider_id"],
            service_id=fields["service_id"],
            redeemed_at=_redeemed_at(fields["redeemed_at"]),
            customer_ref=fields["customer_ref"],
            key_id=fields["key_id"],
            signature=signature,
        )

    def verify(self, keys: VerifyKey | Ed25519PublicKey | Iterable[VerifyKey]) -> None:
        """Check the signature; return ``None`` when the receipt is authentic.

        ``keys`` is a :class:`VerifyKey` (its id must be the receipt's), several of them (the
        one with the receipt's key id is used), or a bare ``Ed25519PublicKey`` (no id check).
        A receipt whose key id none of them has is an ``UnknownSigningKey``; a signature that
        does not verify, after any change to any field, is a ``ReceiptNotVerified``.
        """
        public_key = _pick(keys, self.key_id)
        try:
            public_key.verify(self.signature, self.payload())
        except InvalidSignature:
            raise ReceiptNotVerified() from None


def verify_receipt(
    text: object, keys: VerifyKey | Ed25519PublicKey | Iterable[VerifyKey]
) -> Receipt:
    """Parse a receipt's text form and verify it: the receipt, if and only if it is authentic.

    Raises ``MalformedReceipt``, ``UnknownSigningKey`` or ``ReceiptNotVerified``.
    """
    receipt = Receipt.parse(text)
    receipt.verify(keys)
    return receipt
