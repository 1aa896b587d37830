"""``KeySet``: all the key material of one issuing platform, and its JWK Set form (RFC 7517).

In the JWK Set each key says what it is for in a ``role`` member (members a JOSE library does not
know are ignored by it, RFC 7517 §4):

========================  ==================  ==============================================
role                      JWK                 what it does
========================  ==================  ==============================================
``hmac``                  ``oct``, HS256      digests codes and what is stored with them
``pseudonym``             ``oct``, HS256      files subjects, makes customer and audit pseudonyms
``receipt``               ``OKP``, Ed25519    signs receipts (``d`` private; ``x`` published)
========================  ==================  ==============================================

Within a role keys are oldest first and the last is current (a key in standby sits just before
it). ``kid`` values are unique across the whole set. ``added_at`` (ISO 8601) records when a key
was made; ``issuer`` (top level) is the receipts' ``iss``; ``pseudonym_standby`` says the newer
pseudonym key is not yet current. Only :meth:`KeySet.public_jwks` may leave the issuing side.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from telecard_auth._core import jws
from telecard_auth._core.clock import ensure_utc
from telecard_auth._core.errors import KeyringError
from telecard_auth._core.keyring import MIN_SECRET_BYTES, HmacKey, Keyring
from telecard_auth._core.receipt import DEFAULT_ISSUER, ReceiptSigner, SigningKey

__all__ = ["KeySet"]

_COMMENT = (
    "telecard-auth key material, a JWK Set. Secret: keep it readable by its owner only, and back"
    " it up; without it no stored code can be redeemed. Within each role keys are oldest first;"
    " the last is current. Publish only the output of 'telecard-auth keys public --jwks'."
)
_ROLES = ("hmac", "pseudonym", "receipt")


@attrs.frozen(kw_only=True)
class KeySet:
    """The key material of one issuing platform: HMAC keys, pseudonym keys, receipt signing keys.

    ``added_at`` says when each key (by ``kid``) was made. Read one with
    :func:`~telecard_auth.keys.load_keys` or :meth:`from_jwks`, write one with
    :func:`~telecard_auth.keys.save_keys`; hand operators :meth:`public_jwks` only.

    >>> from datetime import UTC, datetime
    >>> keys = KeySet.generate(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    >>> keys.keyring.current.key_id, keys.signer.current.key_id, keys.keyring.pseudonym_key.key_id
    ('k1', 'r1', 'p1')
    >>> KeySet.from_jwks(keys.to_jwks()) == keys
    True
    >>> [jwk["kty"] for jwk in keys.public_jwks()["keys"]]
    ['OKP']
    >>> rotated = keys.rotated(datetime(2026, 12, 1, tzinfo=UTC), hmac=True, signing=True)
    >>> [key.key_id for key in rotated.keyring.keys], rotated.signer.current.key_id
    (['k1', 'k2'], 'r2')
    """

    keyring: Keyring
    signer: ReceiptSigner
    added_at: Mapping[str, datetime] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.keyring, Keyring) or not isinstance(self.signer, ReceiptSigner):
            raise KeyringError(reason="a key set holds a Keyring and a ReceiptSigner")
        if not isinstance(self.added_at, Mapping) or not all(
            isinstance(moment, datetime) and moment.utcoffset() is not None
            for moment in self.added_at.values()
        ):
            raise KeyringError(reason="added_at maps key ids to times with their zone")
        key_ids = [key.key_id for key in self._all_keys()]
        if len(set(key_ids)) != len(key_ids):
            raise KeyringError(reason="every key of a key set needs its own kid, across roles")

    def _all_keys(self) -> list[HmacKey | SigningKey]:
        return [*self.keyring.keys, *self.keyring.pseudonym_keys, *self.signer.keys]

    @classmethod
    def generate(cls, now: datetime, *, issuer: str = DEFAULT_ISSUER) -> KeySet:
        """Fresh key material: HMAC key ``k1``, pseudonym key ``p1``, receipt signing key ``r1``."""
        now = ensure_utc(now, what="now")
        return cls(
            keyring=Keyring.generate("k1", "p1"),
            signer=ReceiptSigner.generate("r1", issuer=issuer),
            added_at={"k1": now, "p1": now, "r1": now},
        )

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set for operators: the receipt keys' public halves, nothing secret."""
        return self.signer.public_jwks()

    def rotated(self, now: datetime, *, hmac: bool, signing: bool) -> KeySet:
        """A copy with a new newest key of each kind asked for; no key is removed.

        Pseudonym keys rotate apart (``with_pseudonym_step``): subjects must move to a new one.
        """
        now = ensure_utc(now, what="now")
        keyring, signer, added = self.keyring, self.signer, dict(self.added_at)
        taken = [key.key_id for key in self._all_keys()]
        if hmac:
            key_id = _next_id("k", taken)
            secret = secrets.token_bytes(MIN_SECRET_BYTES)
            keyring = keyring.with_key(HmacKey(key_id=key_id, secret=secret))
            added[key_id] = now
        if signing:
            key_id = _next_id("r", taken)
            signer = signer.with_key(SigningKey.generate(key_id))
            added[key_id] = now
        return KeySet(keyring=keyring, signer=signer, added_at=added)

    def with_pseudonym_step(self, now: datetime) -> KeySet:
        """The next step of a pseudonym key rotation: a new key in standby, then current.

        With one pseudonym key, a new one is added in standby (lookups try it; nothing is filed
        under it). With one in standby, it becomes current. Once it is current, the next step is
        ``move_subjects``, after which the older key retires.
        """
        now = ensure_utc(now, what="now")
        ring, added = self.keyring, dict(self.added_at)
        if len(ring.pseudonym_keys) == 1:
            key_id = _next_id("p", [key.key_id for key in self._all_keys()])
            ring = ring.with_pseudonym_key(HmacKey.generate(key_id), current=False)
            added[key_id] = now
        else:
            ring = ring.with_current_pseudonym_key(ring.newest_pseudonym_key_id)
        return attrs.evolve(self, keyring=ring, added_at=added)

    # --- the JWK Set form ------------------------------------------------------------------

    def to_jwks(self) -> dict[str, Any]:
        """The private JWK Set: every key with its secret. Keep it as secret as the keys."""

        def added(key_id: str) -> dict[str, str]:
            moment = self.added_at.get(key_id)
            return {} if moment is None else {"added_at": moment.astimezone(UTC).isoformat()}

        def secret(role: str, key: HmacKey) -> dict[str, str]:
            return {
                "kty": "oct",
                "kid": key.key_id,
                "role": role,
                "alg": "HS256",
                "k": jws.b64encode(key.secret),
            } | added(key.key_id)

        entries: list[dict[str, str]] = [secret("hmac", key) for key in self.keyring.keys]
        entries += [secret("pseudonym", key) for key in self.keyring.pseudonym_keys]
        entries += [
            key.to_jwk() | {"role": "receipt"} | added(key.key_id) for key in self.signer.keys
        ]
        return {
            "comment": _COMMENT,
            "issuer": self.signer.issuer,
            "pseudonym_standby": self.keyring.pseudonym_standby,
            "keys": entries,
        }

    @classmethod
    def from_jwks(cls, jwks: object) -> KeySet:
        """The key set a private JWK Set holds, as parsed from JSON (from a file, a secret manager).

        Anything that is not such a set is a ``KeyringError`` naming the member at fault (by
        position: ``keys[2].k``), never a value.
        """
        document = jws.jwk_members(jwks)
        entries = document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeyringError(reason='a key set is a JWK Set: a JSON object with a "keys" list')
        found: dict[str, list[Any]] = {role: [] for role in _ROLES}
        added: dict[str, datetime] = {}
        for index, entry in enumerate(entries):
            role, key, moment = _entry(entry, f"keys[{index}]")
            found[role].append(key)
            if moment is not None:
                added[key.key_id] = moment
        for role in _ROLES:
            if not found[role]:
                raise KeyringError(reason=f"the key set has no {role} key")
        issuer: Any = jws.member(document, "issuer") if "issuer" in document else DEFAULT_ISSUER
        standby = document.get("pseudonym_standby", False)
        if not isinstance(standby, bool):
            raise KeyringError(reason="pseudonym_standby is not true or false")
        return cls(
            keyring=Keyring(
                keys=found["hmac"], pseudonym_keys=found["pseudonym"], pseudonym_standby=standby
            ),
            signer=ReceiptSigner(keys=found["receipt"], issuer=issuer),
            added_at=added,
        )


def _entry(entry: object, where: str) -> tuple[str, HmacKey | SigningKey, datetime | None]:
    """One JWK of a private key set: its role, its key, and when it was added."""
    if not isinstance(entry, Mapping):
        raise KeyringError(reason=f"{where} is not a JSON object")
    role = jws.member(entry, "role")
    kind = jws.member(entry, "kty")
    try:
        if role in ("hmac", "pseudonym") and kind == "oct":
            key_id, raw = jws.member(entry, "kid"), jws.member(entry, "k")
            secret = jws.b64decode(raw) if isinstance(raw, str) else None
            if secret is None:
                raise KeyringError(reason="k is not base64url")
            key: HmacKey | SigningKey = HmacKey(key_id=key_id, secret=secret)  # type: ignore[arg-type]
        elif role == "receipt" and kind == "OKP":
            key = SigningKey.from_jwk(entry)
        else:
            raise KeyringError(
                reason="role and kty are not one of: hmac/oct, pseudonym/oct, receipt/OKP"
            )
    except KeyringError as error:
        raise KeyringError(reason=f"{where}: {error.details['reason']}") from None
    return str(role), key, _added_at(entry, where)


def _added_at(entry: Mapping[str, Any], where: str) -> datetime | None:
    if "added_at" not in entry:
        return None
    text = jws.member(entry, "added_at")
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise KeyringError(reason=f"{where}.added_at is not an ISO 8601 time with its zone")


def _next_id(prefix: str, taken: Sequence[str]) -> str:
    shape = re.compile(re.escape(prefix) + "([0-9]{1,9})")
    numbers = [int(match.group(1)) for key_id in taken if (match := shape.fullmatch(key_id))]
    number = max(numbers, default=0) + 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"
