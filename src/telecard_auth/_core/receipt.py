"""Signed redemption receipts: JSON Web Tokens an operator verifies on any stack, offline.

A successful redemption through an issuer with a :class:`ReceiptSigner` hands back a
:class:`Receipt`, whose :attr:`Receipt.token` is a JWT (RFC 7519) in compact JWS form (RFC 7515),
signed with EdDSA over Ed25519 (RFC 8037). Any JOSE library with EdDSA verifies it with the
public JWK Set (:meth:`ReceiptSigner.public_jwks`) alone: PyJWT, joserfc, Node's ``jose``,
nimbus-jose-jwt. Nothing secret leaves the issuer.

The token
    Header ``{"alg":"EdDSA","kid":…,"typ":"telecard-receipt+jwt"}``. Claims: ``iss`` (the issuing
    platform, :attr:`ReceiptSigner.issuer`), ``sub`` (the customer's pseudonym for this
    operator: never an identity number, different at every operator), ``aud`` (the provider's
    id), ``iat`` (when the code was redeemed, whole seconds), ``jti`` (the code's id), and
    ``service``, ``code_issued_at``, ``bindings`` (which bindings the redemption proved:
    ``msisdn``, ``recipient``) and, when given at redemption, ``reference`` (the operator's
    agent or branch). Signatures are deterministic, so a retried redemption gets the very token
    it got the first time.

Verification (:func:`verify_receipt`) is strict: the algorithm must be EdDSA (``none`` and every
HMAC algorithm are refused, so a public key cannot be used as an HMAC secret), the ``kid`` must
name one of the keys given (keys in the header, ``jwk``, ``jku``, ``x5u``, ``x5c``, are refused,
as is ``crit``), the ``typ`` must be the receipt's, the signature must verify before any claim is
read, every claim must be present and well formed, and the audience must be the caller's.

>>> signer = ReceiptSigner.generate("r1")
>>> receipt = signer.sign(
...     code_id="q3Vx0bLk9TzA2mNc",
...     provider_id="stc",
...     service_id="new_line",
...     customer_ref="3f9a0c1b2d4e5f60718293a4b5c6d7e8",
...     issued_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
...     redeemed_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
... )
>>> receipt.token.count(".")
2
>>> jwks = signer.public_jwks()  # what the operator is given, as JSON
>>> verify_receipt(receipt.token, jwks, audience="stc") == receipt
True
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from telecard_auth._core import jws
from telecard_auth._core.clock import ensure_utc
from telecard_auth._core.errors import (
    ConfigurationError,
    KeyringError,
    MalformedReceipt,
    ReceiptMismatch,
    ReceiptNotVerified,
    UnknownSigningKey,
)
from telecard_auth._core.keyring import keys_led_by, keys_with, weakness
from telecard_auth._core.text import clip, plain, plain_text

__all__ = [
    "DEFAULT_ISSUER",
    "MAX_RECEIPT_LENGTH",
    "RECEIPT_TYPE",
    "Receipt",
    "ReceiptSigner",
    "SigningKey",
    "VerifyKey",
    "verify_receipt",
]

#: The ``typ`` header of every receipt (RFC 8725 §3.11: explicit typing).
RECEIPT_TYPE = "telecard-receipt+jwt"
#: The ``iss`` claim unless a signer is given another.
DEFAULT_ISSUER = "telecard-auth"
#: The longest token :func:`verify_receipt` reads; real receipts are well under 1 000 characters.
MAX_RECEIPT_LENGTH = 2048
#: The bindings a receipt can say were proved.
BINDINGS = ("msisdn", "recipient")

_ALGORITHM = "EdDSA"
_SIGNATURE_BYTES = 64
# The same rule as HmacKey ids in keyring.py (kept in step by tests/test_receipt.py).
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}", re.ASCII)
# Code ids, provider and service slugs, pseudonyms: characters no JSON or header escapes.
_TOKEN = re.compile(r"[A-Za-z0-9._~:+/=-]{1,64}", re.ASCII)
# The issuing platform's id: a name or a URI, printable ASCII.
_ISSUER = re.compile(r"[!-~]{1,255}", re.ASCII)
# The operator's reference, as redeem takes it.
_REFERENCE = re.compile(r"[ -~]{1,64}", re.ASCII)
# Ten bare digits is the shape of a national ID, Iqama or unified number: never a pseudonym.
_IDENTITY_NUMBER = re.compile(r"[0-9]{10}", re.ASCII)
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)", re.ASCII)
# Header members that bring their own key or rules: a verifier that honoured them would let the
# token choose what it is checked with.
_REFUSED_HEADERS = ("jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit")
_HEADER_MEMBERS = frozenset(("alg", "kid", "typ"))
# NumericDate bounds: 1970 up to the end of year 8999, the range the issuers' clocks accept.
_LAST_SECOND = 221845392000


def _malformed(reason: str, reason_ar: str) -> MalformedReceipt:
    return MalformedReceipt(reason=reason, reason_ar=reason_ar)


def _bad_claim(name: str) -> MalformedReceipt:
    # ``name`` is one of the receipt's own claim names, never the token's text.
    return _malformed(
        f"the claim {name} is missing or not valid", f"الحقل {name} مفقود أو غير صحيح"
    )


def _text(value: object) -> object:
    """Text as a plain ``str``; anything else as it came, for the claim's check to refuse."""
    return plain(value) if isinstance(value, str) else value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def _seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, floored exactly (no float on the way)."""
    return (moment - _EPOCH) // _SECOND


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- keys --------------------------------------------------------------------------------------


def _key_id(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise KeyringError(reason="a key id is 1-32 characters of A-Z, a-z, 0-9, '.', '_', '-'")


def _is_private(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Ed25519PrivateKey):
        raise KeyringError(reason="a receipt signing key must be an Ed25519PrivateKey")
    why = weakness(value.private_bytes_raw())
    if why is not None:
        raise KeyringError(
            reason=f"the receipt signing key is not random: {why}; make keys with"
            " SigningKey.generate()"
        )


def _is_public(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Ed25519PublicKey):
        raise KeyringError(reason="a receipt verify key must be an Ed25519PublicKey")


def _show_public(key: Ed25519PublicKey) -> str:
    return repr(jws.b64encode(jws.raw_public(key)))


def _jwk_key_id(jwk: Mapping[str, Any]) -> str:
    key_id = jws.member(jwk, "kid")
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise KeyringError(reason="a receipt key's kid is 1-32 characters of A-Z, a-z, 0-9, . _ -")
    return key_id


@attrs.frozen(kw_only=True)
class VerifyKey:
    """A receipt signing key's public half and its id: all an operator needs to verify receipts.

    Its JWK (:meth:`to_jwk`) is safe to publish. Two verify keys are equal when their ids and
    public key bytes are.

    >>> key = VerifyKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "kid": "r1",
    ...                           "x": "he5ngcSf3KwM7ZoxUnYjuVoVej0GtlxJpXewO4Coz8I"})
    >>> key
    VerifyKey(key_id='r1', public_key='he5ngcSf3KwM7ZoxUnYjuVoVej0GtlxJpXewO4Coz8I')
    >>> key.to_jwk()["alg"]
    'EdDSA'
    """

    key_id: str = attrs.field(converter=plain_text, validator=_key_id)
    public_key: Ed25519PublicKey = attrs.field(validator=_is_public, eq=False, repr=_show_public)
    _raw: bytes = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_raw", jws.raw_public(self.public_key))

    def to_jwk(self) -> dict[str, str]:
        """The public JWK: ``kty`` OKP, ``crv`` Ed25519, ``kid``, ``use``, ``alg`` EdDSA, ``x``."""
        return jws.ed25519_jwk(self.key_id, self.public_key, private=False)

    @classmethod
    def from_jwk(cls, jwk: object) -> VerifyKey:
        """The key an Ed25519 JWK describes (a private JWK gives its public half)."""
        members = jws.jwk_members(jwk)
        public = jws.ed25519_from_jwk(members, private=False)
        assert isinstance(public, Ed25519PublicKey)  # noqa: S101 - private=False gives public
        return cls(key_id=_jwk_key_id(members), public_key=public)

    @classmethod
    def from_jwks(cls, jwks: object) -> tuple[VerifyKey, ...]:
        """Every Ed25519 signing key of a JWK Set (``{"keys": [...]}``), in its order.

        Keys of other kinds (the ``oct`` keys of a private key set, keys of other curves or for
        encryption) are passed over; a set with no receipt key at all is a ``KeyringError``.
        """
        members = jws.jwk_members(jwks)
        entries = members.get("keys")
        if not isinstance(entries, list):
            raise KeyringError(reason='a JWK Set is a JSON object with a "keys" list')
        if not all(isinstance(entry, Mapping) for entry in entries):
            raise KeyringError(reason="every key of a JWK Set is a JSON object")
        found = tuple(cls.from_jwk(entry) for entry in entries if jws.is_ed25519(entry))
        if not found:
            raise KeyringError(reason="the JWK Set holds no Ed25519 receipt key")
        by_id: dict[str, VerifyKey] = {}
        for key in found:
            if by_id.setdefault(key.key_id, key) != key:
                raise KeyringError(reason=f"two different keys have the kid {key.key_id}")
        return found


@attrs.frozen(kw_only=True)
class SigningKey:
    """One Ed25519 receipt signing key and the ``kid`` written into every receipt it signs.

    The private key is left out of ``repr``; :meth:`to_jwk` is its private JWK, for a key file,
    and :attr:`public_key` the part operators are given. Two signing keys are equal when their
    ids and key pairs are.
    """

    key_id: str = attrs.field(converter=plain_text, validator=_key_id)
    private_key: Ed25519PrivateKey = attrs.field(validator=_is_private, repr=False, eq=False)
    # Equality and hashing go by the public half: it identifies the pair, and is no secret.
    _public_raw: bytes = attrs.field(init=False, repr=False)
    _header: str = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_public_raw", jws.raw_public(self.private_key.public_key()))
        header = {"alg": _ALGORITHM, "kid": self.key_id, "typ": RECEIPT_TYPE}
        object.__setattr__(self, "_header", jws.b64encode(jws.compact_json(header)))

    @classmethod
    def generate(cls, key_id: str = "r1") -> SigningKey:
        """A fresh random signing key."""
        private_key = Ed25519PrivateKey.generate()
        while weakness(private_key.private_bytes_raw()) is not None:  # pragma: no cover
            private_key = Ed25519PrivateKey.generate()
        return cls(key_id=key_id, private_key=private_key)

    @property
    def public_key(self) -> VerifyKey:
        """The public half, with the same id: what operators verify receipts with."""
        return VerifyKey(key_id=self.key_id, public_key=self.private_key.public_key())

    def to_jwk(self) -> dict[str, str]:
        """The private JWK (with ``d``). Keep it secret; publish :attr:`public_key` instead."""
        return jws.ed25519_jwk(self.key_id, self.private_key, private=True)

    @classmethod
    def from_jwk(cls, jwk: object) -> SigningKey:
        """The signing key a private Ed25519 JWK holds; anything else is a ``KeyringError``."""
        members = jws.jwk_members(jwk)
        private = jws.ed25519_from_jwk(members, private=True)
        assert isinstance(private, Ed25519PrivateKey)  # noqa: S101 - private=True gives private
        return cls(key_id=_jwk_key_id(members), private_key=private)

    def sign_token(self, claims: bytes) -> str:
        """The compact JWS of the claims' JSON bytes, under this key's header."""
        signing_input = f"{self._header}.{jws.b64encode(claims)}"
        signature = self.private_key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{jws.b64encode(signature)}"


def _signing_keys(value: object) -> tuple[SigningKey, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(k, SigningKey) for k in value):
        raise KeyringError(reason="keys must be a sequence of SigningKey")
    return tuple(value)


def _issuer(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not _ISSUER.fullmatch(value):
        raise KeyringError(reason="the issuer is 1-255 printable ASCII characters, no spaces")


@attrs.frozen(kw_only=True)
class ReceiptSigner:
    """Receipt signing keys, oldest first: the newest signs, every one's public key verifies.

    ``issuer`` is written into every receipt's ``iss`` claim: the issuing platform's name or URI.

    >>> signer = ReceiptSigner.generate("r1")
    >>> rotated = signer.with_key(SigningKey.generate("r2"))
    >>> rotated.current.key_id
    'r2'
    >>> [jwk["kid"] for jwk in rotated.public_jwks()["keys"]]
    ['r1', 'r2']
    >>> [key.key_id for key in rotated.without_key("r1").keys]
    ['r2']
    """

    keys: tuple[SigningKey, ...] = attrs.field(converter=_signing_keys)
    issuer: str = attrs.field(default=DEFAULT_ISSUER, converter=plain_text, validator=_issuer)

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise KeyringError(reason="a receipt signer needs at least one key")
        if len({key.key_id for key in self.keys}) != len(self.keys):
            raise KeyringError(reason="receipt signing key ids must be unique")

    @classmethod
    def generate(cls, key_id: str = "r1", *, issuer: str = DEFAULT_ISSUER) -> ReceiptSigner:
        """A signer with one fresh random key."""
        return cls(keys=(SigningKey.generate(key_id),), issuer=issuer)

    @property
    def current(self) -> SigningKey:
        """The key new receipts are signed with: the newest."""
        return self.keys[-1]

    def with_key(self, key: SigningKey, *, current: bool = True) -> ReceiptSigner:
        """A copy with ``key`` added as the newest: it signs from now on. Ids must stay unique.

        With ``current=False`` the key is added in standby, just before the current key, and
        signs nothing until ``with_current`` names it: time to publish its public key to every
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
        """The key with ``key_id``, or :attr:`current` when that key is no longer held."""
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

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set (RFC 7517 §5) to publish to operators: every key held, oldest first.

        Serve it as JSON (``application/jwk-set+json``) or hand it over as a file; any JOSE
        library verifies receipts with it alone.
        """
        return {"keys": [key.to_jwk() for key in self.verify_keys()]}

    def sign(
        self,
        *,
        code_id: str,
        provider_id: str,
        service_id: str,
        customer_ref: str,
        issued_at: datetime,
        redeemed_at: datetime,
        bindings: Collection[str] = (),
        reference: str | None = None,
        key_id: str | None = None,
    ) -> Receipt:
        """A receipt for these facts, signed with :attr:`current`, or with ``key_id`` if held.

        Deterministic: the same facts and key always give the same token, which is how a retried
        redemption gets the very receipt it got the first time. Times keep whole seconds. A fact
        a receipt cannot hold is a ``MalformedReceipt``; a naive time is an ``InvalidTime``.
        """
        key = self.current if key_id is None else self.key(key_id)
        issued = _seconds(ensure_utc(issued_at, what="issued_at"))
        redeemed = _seconds(ensure_utc(redeemed_at, what="redeemed_at"))
        if not isinstance(bindings, list | tuple | set | frozenset) or not all(
            isinstance(name, str) for name in bindings
        ):
            raise _bad_claim("bindings")
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": _text(customer_ref),
            "aud": _text(provider_id),
            "iat": redeemed,
            "jti": _text(code_id),
            "service": _text(service_id),
            "code_issued_at": issued,
            "bindings": sorted(plain(name) for name in bindings),
        }
        if reference is not None:
            claims["reference"] = _text(reference)
        fields = _read_claims(claims)
        token = key.sign_token(jws.compact_json(claims))
        return Receipt(token=token, key_id=key.key_id, **fields)


# --- receipts ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Receipt:
    """Signed proof that a code was redeemed: the token, and what it says.

    Made by :meth:`ReceiptSigner.sign` (an issuer with a signer does it on every redemption) and
    read back by :func:`verify_receipt`; times are UTC, to the second. ``str(receipt)`` is the
    token.
    """

    token: str = attrs.field(repr=False)
    key_id: str
    issuer: str
    customer_ref: str
    provider_id: str
    code_id: str
    service_id: str
    issued_at: datetime
    redeemed_at: datetime
    bindings: tuple[str, ...] = ()
    reference: str | None = None

    def __str__(self) -> str:
        return self.token


def _claim(claims: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad_claim(name)
    return value


def _audience(claims: Mapping[str, Any]) -> str:
    """The one audience of a receipt: ``aud`` as a string, or an array of one (RFC 7519 §4.1.3)."""
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) == 1:
        return _claim({"aud": audience[0]}, "aud", _TOKEN)
    return _claim(claims, "aud", _TOKEN)


def _numeric_date(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if type(value) is not int or not 0 <= value < _LAST_SECOND:
        raise _bad_claim(name)
    return value


def _read_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The facts in ``claims``, each checked; ``MalformedReceipt`` names the first bad one."""
    customer_ref = _claim(claims, "sub", _TOKEN)
    if _IDENTITY_NUMBER.fullmatch(customer_ref):
        raise _malformed(
            "sub looks like an identity number; a receipt holds a pseudonym only",
            "الحقل sub يشبه رقم هوية؛ لا يحمل الإيصال إلا اسمًا مستعارًا",
        )
    issued_at = _numeric_date(claims, "code_issued_at")
    redeemed_at = _numeric_date(claims, "iat")
    if issued_at > redeemed_at:
        raise _bad_claim("code_issued_at")
    bindings = claims.get("bindings")
    if (
        not isinstance(bindings, list)
        or not all(isinstance(name, str) and name in BINDINGS for name in bindings)
        or len(set(bindings)) != len(bindings)
    ):
        raise _bad_claim("bindings")
    reference = claims.get("reference")
    if "reference" in claims:
        reference = _claim(claims, "reference", _REFERENCE)
    return {
        "issuer": _claim(claims, "iss", _ISSUER),
        "customer_ref": customer_ref,
        "provider_id": _audience(claims),
        "code_id": _claim(claims, "jti", _TOKEN),
        "service_id": _claim(claims, "service", _TOKEN),
        "issued_at": _moment(issued_at),
        "redeemed_at": _moment(redeemed_at),
        "bindings": tuple(sorted(bindings)),
        "reference": reference,
    }


def _verify_keys(keys: object) -> tuple[VerifyKey, ...]:
    """The verify keys ``keys`` stands for: a JWK Set, a signer, one key or several."""
    if isinstance(keys, ReceiptSigner):
        return keys.verify_keys()
    if isinstance(keys, VerifyKey):
        return (keys,)
    if isinstance(keys, Mapping):
        return VerifyKey.from_jwks(keys)
    if isinstance(keys, str | bytes | bytearray | memoryview) or not isinstance(keys, Iterable):
        raise KeyringError(
            reason="verify with a JWK Set, a ReceiptSigner, a VerifyKey or VerifyKeys"
        )
    try:
        # The caller's iterable: whatever its iteration raises is a keyring mistake.
        candidates = tuple(keys)
    except Exception as error:
        raise KeyringError(reason="the verify keys could not be read") from error
    if not all(isinstance(key, VerifyKey) for key in candidates):
        raise KeyringError(reason="verify keys must all be VerifyKey")
    return candidates


def _pick(keys: tuple[VerifyKey, ...], key_id: str) -> Ed25519PublicKey:
    found: VerifyKey | None = None
    for key in keys:
        if key.key_id == key_id:
            if found is not None and found != key:
                raise KeyringError(reason=f"two different verify keys have the id {key_id}")
            found = key
    if found is None:
        raise UnknownSigningKey()
    return found.public_key


def _header(encoded: str) -> str:
    """The ``kid`` of a receipt's header, once the header is one a receipt may have."""
    raw = jws.b64decode(encoded)
    try:
        header = jws.strict_json_object(raw if raw is not None else b"")
    except jws.NotJson:
        raise _malformed(
            "the header is not a JSON object", "ترويسة الإيصال ليست كائن JSON"
        ) from None
    algorithm = header.get("alg")
    if algorithm != _ALGORITHM:
        raise _malformed(
            "the algorithm is not EdDSA; receipts are signed with Ed25519 only",
            "خوارزمية التوقيع ليست EdDSA؛ لا تُوقَّع الإيصالات إلا بـEd25519",
        )
    for name in _REFUSED_HEADERS:
        if name in header:
            raise _malformed(
                f"the header holds {name}; keys come from the verifier, never from the token",
                f"الترويسة تحمل {name}؛ المفاتيح يحددها المتحقق لا الإيصال",
            )
    if not header.keys() <= _HEADER_MEMBERS:
        raise _malformed(
            "the header holds a member receipts never have", "الترويسة تحمل حقلًا لا تحمله الإيصالات"
        )
    kind = header.get("typ")
    if isinstance(kind, str) and kind.lower().startswith("application/"):
        kind = kind[len("application/") :]  # the same media type, RFC 7515 §4.1.9
    if not isinstance(kind, str) or kind.lower() != RECEIPT_TYPE:
        raise _malformed(
            f"the typ header is not {RECEIPT_TYPE}", f"قيمة typ في الترويسة ليست {RECEIPT_TYPE}"
        )
    key_id = header.get("kid")
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise _malformed("the kid header is missing or not valid", "قيمة kid مفقودة أو غير صحيحة")
    return key_id


def verify_receipt(
    token: object,
    keys: Mapping[str, Any] | ReceiptSigner | VerifyKey | Iterable[VerifyKey],
    *,
    audience: str,
    service: str | None = None,
    issuer: str | None = None,
) -> Receipt:
    """The receipt ``token`` carries, if and only if it is authentic and meant for ``audience``.

    ``keys`` is the public JWK Set (a mapping, as parsed from JSON), a :class:`ReceiptSigner`, a
    :class:`VerifyKey` or several. ``audience`` is the verifying operator's provider id; give
    ``service`` or ``issuer`` to require those as well.

    Raises ``MalformedReceipt`` for anything that is not a receipt's token (including any
    algorithm but EdDSA, and keys or ``crit`` in the header), ``UnknownSigningKey`` for a ``kid``
    none of the keys has, ``ReceiptNotVerified`` when the signature does not verify, and
    ``ReceiptMismatch`` (naming the claim) for an authentic receipt made for another audience,
    service or issuer. No message repeats the token.
    """
    if not isinstance(audience, str) or not audience:
        raise ConfigurationError(reason="audience must be the verifying provider's id, as text")
    if not all(isinstance(given, str | None) for given in (service, issuer)):
        raise ConfigurationError(reason="service and issuer, when given, are text")
    audience = plain(audience)
    service = None if service is None else plain(service)
    issuer = None if issuer is None else plain(issuer)
    if not isinstance(token, str):
        raise _malformed(f"a receipt must be text, not {clip(token)}", "يجب أن يكون الإيصال نصًا")
    token = plain(token)
    match = _COMPACT.fullmatch(token) if 0 < len(token) <= MAX_RECEIPT_LENGTH else None
    if match is None:
        raise _malformed(
            f"a receipt is a compact JWS of 3 base64url parts, at most {MAX_RECEIPT_LENGTH}"
            " characters",
            f"الإيصال بصيغة JWS المدمجة من 3 أجزاء base64url وبحد أقصى {MAX_RECEIPT_LENGTH} حرفًا",
        )
    header, payload, signature_text = match.groups()
    key_id = _header(header)
    signature = jws.b64decode(signature_text)
    if signature is None or len(signature) != _SIGNATURE_BYTES:
        raise _malformed(
            "the signature is not 64 bytes of canonical base64url",
            "التوقيع ليس 64 بايت بترميز base64url قياسي",
        )
    public_key = _pick(_verify_keys(keys), key_id)
    try:
        public_key.verify(signature, f"{header}.{payload}".encode("ascii"))
    except InvalidSignature:
        raise ReceiptNotVerified() from None
    raw = jws.b64decode(payload)
    try:
        claims = jws.strict_json_object(raw if raw is not None else b"")
    except jws.NotJson:
        raise _malformed(
            "the claims are not a JSON object", "محتوى الإيصال ليس كائن JSON"
        ) from None
    fields = _read_claims(claims)
    for claim, given, expected in (
        ("aud", fields["provider_id"], audience),
        ("service", fields["service_id"], service),
        ("iss", fields["issuer"], issuer),
    ):
        if expected is not None and given != expected:
            raise ReceiptMismatch(claim=claim)
    return Receipt(token=token, key_id=key_id, **fields)
