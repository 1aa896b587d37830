"""A small HTTP service over telecard-auth: the platform issues codes, the operators redeem them.

Two endpoints, each for one kind of caller, each caller known by its own API key, sent as
``Authorization: Bearer <key>``, and one public endpoint:

- ``POST /codes``, for the issuing platform, once the national SSO has authenticated the
  customer: ``{"kind": "citizen", "id": "1000000008", "provider": "stc"}`` and optionally
  ``"service"``. The answer holds the code, to show the customer once.
- ``POST /redemptions``, for an operator's back end: ``{"kind", "id", "code", "service"}`` and
  optionally ``"reference"``, the operator's agent or branch, which the audit events record. The
  operator is the one whose key was presented: a body cannot name another operator. The answer
  holds the signed receipt, a JWT (``eyJ…``). An ``Idempotency-Key`` header makes a retry safe:
  the same key and body get the very same answer and receipt.
- ``GET /.well-known/jwks.json``, for anyone, without a key: the public JWK Set that verifies the
  receipts (``verify_receipt(token, jwks, audience="stc")``, or any JOSE library). Operators fetch
  it, and fetch it again when a receipt names a key id they do not have yet.

Each API key may make at most ``rate_limit`` requests (``"20/second"`` unless told otherwise,
in the notation of the ``limits`` library, counted in a moving window in the storage its URL
names: ``memory://`` in one process, ``redis://…`` shared by every instance). A key over its
limit gets 429 and ``Retry-After``, so one operator's key cannot make guesses at full speed.

Every refusal is JSON: ``{"error": error.to_dict(), "message": …}``, the library's error as JSON
(stable ``code``, ``status``, ``message`` in English and Arabic, ``details``, ``retry_after``
when waiting helps) and, in ``message``, the message in the language the request's
``Accept-Language`` prefers (``Content-Language`` says which). The status is the error's
``http_status``, and ``Retry-After`` is its ``retry_after`` whenever it has one. Nothing ever
answers with a traceback. A storage failure is a 503 with fixed messages, whatever the error
says: what the driver said (``StorageError.detail``: hosts, ports, databases, roles, paths)
goes to the service's log, never to the caller. A configuration error is logged and answered
with a bare ``internal_error``.

``create_app`` builds the app from an issuer and the keys; tests give it a ``ManualClock`` and
in-memory storage. ``app_from_environment`` builds it as deployed, every secret read from the
environment. Running this file walks through one code over the app, in process.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import secrets
import string
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import httpx
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Lifespan

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncMemoryStorage,
    ConfigurationError,
    InvalidInput,
    Keyring,
    KeyringError,
    ReceiptSigner,
    SignedRedemption,
    StorageError,
    Subject,
    TelecardAuthError,
    async_storage_from_url,
    preferred_language,
    verify_receipt,
)
from telecard_auth.events import JsonLinesSink
from telecard_auth.keys import KeySet, load_keys

__all__ = [
    "ENV_AUDIT_LOG",
    "ENV_KEYS",
    "ENV_KEYS_JSON",
    "ENV_OPERATOR_KEYS",
    "ENV_PLATFORM_KEY",
    "ENV_RATE_LIMIT",
    "ENV_RATE_STORAGE",
    "ENV_STORAGE",
    "JWKS_PATH",
    "BodyTooLarge",
    "InvalidBody",
    "InvalidJson",
    "NotAuthenticated",
    "RateLimited",
    "app_from_environment",
    "create_app",
    "keys_from_environment",
]

logger = logging.getLogger(__name__)

#: The largest request body read. Every valid body is far smaller.
MAX_BODY_BYTES = 4096
#: The shortest API key accepted: ``secrets.token_urlsafe(32)`` makes 43 characters.
MIN_KEY_LENGTH = 32
#: The key file that ``telecard-auth init`` wrote (the same variable the command line reads).
ENV_KEYS = "TELECARD_AUTH_KEYS"
#: The same key material as JSON, the private JWK Set itself, as a secret manager injects it.
ENV_KEYS_JSON = "TELECARD_AUTH_KEYS_JSON"
#: The storage URL (the same variable the command line reads).
ENV_STORAGE = "TELECARD_AUTH_STORAGE"
#: The issuing platform's API key.
ENV_PLATFORM_KEY = "TELECARD_HTTP_PLATFORM_KEY"
#: The operators' API keys, as ``stc=KEY,mobily=KEY``.
ENV_OPERATOR_KEYS = "TELECARD_HTTP_OPERATOR_KEYS"
#: Requests allowed per API key, in the ``limits`` notation (``"20/second"``, ``"600/minute"``).
ENV_RATE_LIMIT = "TELECARD_HTTP_RATE_LIMIT"
#: Where the counts of requests are kept, as a ``limits`` storage URL (``redis://…``).
ENV_RATE_STORAGE = "TELECARD_HTTP_RATE_STORAGE"
#: The audit trail: a JSON Lines file every audit event is appended to, durably.
ENV_AUDIT_LOG = "TELECARD_HTTP_AUDIT_LOG"
#: Requests allowed per API key unless told otherwise.
DEFAULT_RATE_LIMIT = "20/second"
#: Where the public JWK Set is published (RFC 8615's well-known URIs, as OpenID Connect does).
JWKS_PATH = "/.well-known/jwks.json"
#: The JWK Set's media type (RFC 7517 §8.5).
JWKS_MEDIA_TYPE = "application/jwk-set+json"

#: From this status up a refusal is the service's own failure: logged, and answered with nothing.
_SERVICE_FAILED = HTTPStatus.INTERNAL_SERVER_ERROR
_NO_STORE = {"Cache-Control": "no-store"}  # answers carry codes and receipts: no cache keeps them
#: The JWK Set is public and changes only when keys rotate: caches may keep it for five minutes.
_JWKS_CACHE = {"Cache-Control": "public, max-age=300"}


# --- the service's own refusals, in the library's families -------------------------------------
# Each declares the fields its messages need, keyword-only, as the library's errors do, and the
# HTTP status that answers it.


class NotAuthenticated(TelecardAuthError):
    """No API key, or one that is not valid for this endpoint."""

    code = "not_authenticated"
    http_status = 401
    template_en = "The API key is missing or not valid for this endpoint."
    template_ar = "مفتاح الوصول مفقود أو غير صالح لهذه الواجهة."


class InvalidJson(InvalidInput):
    """The body is not a JSON object."""

    code = "invalid_json"
    http_status = 400
    template_en = "The request body must be a JSON object."
    template_ar = "يجب أن يكون محتوى الطلب كائن JSON."


class InvalidBody(InvalidInput):
    """The body is a JSON object, but not one this endpoint takes (400, as ``InvalidInput``)."""

    code = "invalid_body"
    template_en = "The request body is not valid: {reason}."
    template_ar = "محتوى الطلب غير صحيح: {reason_ar}."

    def __init__(self, *, reason: str, reason_ar: str) -> None:
        self._format(reason=reason, reason_ar=reason_ar)


class RateLimited(TelecardAuthError):
    """The API key made more requests than its rate limit allows; ``retry_after`` in seconds."""

    code = "rate_limited"
    http_status = 429
    template_en = "Too many requests with this API key; try again in {retry_after} s."
    template_ar = "طلبات كثيرة بمفتاح الوصول هذا؛ حاول مرة أخرى بعد {retry_after} ثانية."

    def __init__(self, *, retry_after: int) -> None:
        self._format(retry_after=retry_after)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the key's window lets one more request through, at least 1."""
        return int(self.details["retry_after"])


class BodyTooLarge(InvalidInput):
    """The body is larger than any valid one."""

    code = "body_too_large"
    http_status = 413
    template_en = "The request body is larger than {limit} bytes."
    template_ar = "محتوى الطلب أكبر من {limit} بايت."

    def __init__(self, *, limit: int) -> None:
        self._format(limit=limit)


def _fixed(code: str, status: int, message_en: str, message_ar: str) -> dict[str, Any]:
    """An answer of the service's own, in the shape of ``TelecardAuthError.to_dict()``."""
    return {
        "code": code,
        "status": status,
        "message": {"en": message_en, "ar": message_ar},
        "details": {},
    }


#: The answer to a bug or a configuration error: nothing about it reaches the caller.
_INTERNAL = _fixed(
    "internal_error",
    500,
    "The service could not complete the request.",
    "تعذّر على الخدمة إتمام الطلب.",
)
#: The text of the answer to any storage failure, whichever backend failed and however.
_UNAVAILABLE_EN = "The service is unavailable for a moment; try again later."
_UNAVAILABLE_AR = "الخدمة غير متاحة مؤقتًا؛ حاول مرة أخرى لاحقًا."
#: The answers for requests that reach no endpoint.
_ROUTING = {
    404: _fixed("not_found", 404, "There is no such endpoint.", "لا توجد واجهة بهذا العنوان."),
    405: _fixed(
        "method_not_allowed",
        405,
        "This endpoint does not take this method; the Allow header lists those it takes.",
        "هذه الواجهة لا تقبل هذه الطريقة؛ ترويسة Allow تذكر الطرق التي تقبلها.",
    ),
}


# --- the app ---------------------------------------------------------------------------------


def create_app(
    *,
    issuer: AsyncCodeIssuer[SignedRedemption],
    operator_keys: Mapping[str, str],
    platform_key: str,
    rate_limit: str = DEFAULT_RATE_LIMIT,
    rate_storage: str = "memory://",
    lifespan: Lifespan[Starlette] | None = None,
) -> Starlette:
    """The service over ``issuer``, which must have a ``ReceiptSigner``.

    ``operator_keys`` maps each operator's provider id (``"stc"``) to its API key, and
    ``platform_key`` is the issuing platform's. Keys are at least ``MIN_KEY_LENGTH`` printable
    ASCII characters, all different; anything unsafe is refused here, with ``ConfigurationError``,
    rather than at the first request. Each key may make ``rate_limit`` requests, counted in
    ``rate_storage`` (a ``limits`` storage URL). ``lifespan`` is passed on to ``Starlette``.
    """
    given: object = issuer  # typed as it should be; checked, as a caller may not be typed
    if not isinstance(given, AsyncCodeIssuer):
        raise ConfigurationError(reason="the issuer must be an AsyncCodeIssuer")
    signer = issuer.signer
    if signer is None:
        raise ConfigurationError(reason="the issuer needs a ReceiptSigner to sign receipts")
    if not operator_keys:
        raise ConfigurationError(reason="no operator has an API key")
    # Each key maps to who holds it.
    platform = {_checked_key(platform_key): "platform"}
    operators = {
        _checked_key(key): _provider_id(issuer, provider) for provider, key in operator_keys.items()
    }
    if len(operators) != len(operator_keys) or platform.keys() & operators.keys():
        raise ConfigurationError(reason="every API key must be different")
    limit, limiter = _rate_limiter(rate_limit, rate_storage)

    async def admitted(request: Request, keys: Mapping[bytes, str]) -> str:
        """Who holds the key presented, once its rate allows one more request."""
        holder = _caller(request, keys)
        if not await limiter.hit(limit, holder):
            stats = await limiter.get_window_stats(limit, holder)
            raise RateLimited(retry_after=max(1, math.ceil(stats.reset_time - time.time())))
        return holder

    async def issue(request: Request) -> JSONResponse:
        await admitted(request, platform)
        body = await _body(request, required=("kind", "id", "provider"), optional=("service",))
        issued = await issuer.issue(_subject(body), body["provider"], service=body.get("service"))
        answer = {
            "code": issued.code,
            "display": issued.display,
            "code_id": issued.code_id,
            "provider": issued.provider.id,
            "service": None if issued.service is None else issued.service.id,
            "issued_at": issued.issued_at.isoformat(),
            "expires_at": issued.expires_at.isoformat(),
        }
        return JSONResponse(answer, status_code=201, headers=_NO_STORE)

    async def redeem(request: Request) -> JSONResponse:
        provider = await admitted(request, operators)  # from the key, never from the body
        body = await _body(
            request, required=("kind", "id", "code", "service"), optional=("reference",)
        )
        redemption = await issuer.redeem(
            _subject(body),
            provider,
            body["code"],
            body["service"],
            request_id=request.headers.get("idempotency-key"),
            reference=body.get("reference"),
        )
        answer = {
            "code_id": redemption.code_id,
            "provider": redemption.provider.id,
            "service": redemption.service.id,
            "issued_at": redemption.issued_at.isoformat(),
            "redeemed_at": redemption.redeemed_at.isoformat(),
            "receipt": redemption.receipt.token,
        }
        return JSONResponse(answer, headers=_NO_STORE)

    async def jwks(_request: Request) -> JSONResponse:
        # Public halves only: what verifies receipts, nothing that signs them or digests codes.
        return JSONResponse(signer.public_jwks(), headers=_JWKS_CACHE, media_type=JWKS_MEDIA_TYPE)

    async def refused(request: Request, error: Exception) -> JSONResponse:
        return _refusal(error, _language(request))

    async def unrouted(request: Request, error: Exception) -> JSONResponse:
        status = error.status_code if isinstance(error, HTTPException) else 500
        headers = error.headers if isinstance(error, HTTPException) else None  # 405: Allow
        answer = _ROUTING.get(status, {**_INTERNAL, "status": status})
        return _answer(answer, _language(request), headers)

    async def unexpected(request: Request, _error: Exception) -> JSONResponse:
        # Starlette raises the exception again after this answer, so the server logs it.
        return _answer(_INTERNAL, _language(request))

    return Starlette(
        routes=[
            Route("/codes", issue, methods=["POST"]),
            Route("/redemptions", redeem, methods=["POST"]),
            Route(JWKS_PATH, jwks, methods=["GET"]),
        ],
        exception_handlers={
            TelecardAuthError: refused,
            HTTPException: unrouted,
            Exception: unexpected,
        },
        lifespan=lifespan,
    )


def _language(request: Request) -> str:
    """``"ar"`` or ``"en"``, as the request's ``Accept-Language`` prefers (English without it)."""
    return preferred_language(request.headers.get("accept-language"))


def _answer(
    error: Mapping[str, Any], lang: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer: ``{"error": error, "message": its message in lang}``, with its status."""
    body = {"error": error, "message": error["message"][lang]}
    # The body's message depends on Accept-Language: caches must keep one answer per language.
    language = {"Content-Language": lang, "Vary": "Accept-Language"}
    return JSONResponse(body, status_code=error["status"], headers={**(headers or {}), **language})


def _refusal(error: Exception, lang: str) -> JSONResponse:
    """The answer to a refusal: its status, headers and JSON body, never a driver's text."""
    if isinstance(error, StorageError):
        # The detail names the database's host, port, role or file: for this log only. So may a
        # custom backend's reason: the caller gets fixed text, and no details.
        logger.error("storage failed: %s (%s)", error.details.get("reason"), error.detail)
        answer = _fixed(error.code, error.http_status, _UNAVAILABLE_EN, _UNAVAILABLE_AR)
    elif not isinstance(error, TelecardAuthError) or error.http_status >= _SERVICE_FAILED:
        # A configuration error tells what is wrong with the service: log it, tell nobody.
        logger.error("request failed", exc_info=error)
        return _answer(_INTERNAL, lang)
    else:
        answer = error.to_dict()
    headers = {}
    if isinstance(error, NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return _answer(answer, lang, headers)


def _provider_id(issuer: AsyncCodeIssuer[SignedRedemption], provider: str) -> str:
    try:
        return issuer.policy.provider(provider).id
    except InvalidInput:
        raise ConfigurationError(
            reason="an operator key names a provider the policy lacks"
        ) from None


def _rate_limiter(
    rate_limit: str, storage_url: str
) -> tuple[RateLimitItem, MovingWindowRateLimiter]:
    try:
        limit = parse(rate_limit)
    except ValueError:
        raise ConfigurationError(reason="the rate limit is not in the limits notation") from None
    try:
        storage = storage_from_string(f"async+{storage_url}")
    except Exception:  # the limits library's errors for a URL it cannot use
        raise ConfigurationError(reason="the rate limit storage URL is not valid") from None
    return limit, MovingWindowRateLimiter(storage)


def _checked_key(key: object) -> bytes:
    allowed = set(string.ascii_letters + string.digits + string.punctuation)
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH or not set(key) <= allowed:
        raise ConfigurationError(
            reason=f"an API key must be at least {MIN_KEY_LENGTH} printable ASCII characters"
        )
    return key.encode("ascii")


def _caller(request: Request, keys: Mapping[bytes, str]) -> str:
    """Who holds the key the request presents, among ``keys``; else ``NotAuthenticated``."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise NotAuthenticated()
    # Headers arrive as latin-1 text, so this never fails; a non-ASCII key matches nothing.
    candidate = presented.strip().encode("latin-1")
    holder = None
    for key, owner in keys.items():
        # Constant-time, and every key is compared: the time taken tells nothing of a key.
        if hmac.compare_digest(candidate, key):
            holder = owner
    if holder is None:
        raise NotAuthenticated()
    return holder


async def _body(
    request: Request, *, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, str]:
    """The request's JSON object, with exactly the ``required`` and some ``optional`` fields."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge(limit=MAX_BODY_BYTES)
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidJson() from None
    if not isinstance(document, dict):
        raise InvalidJson()
    fields = ", ".join((*required, *optional))
    if not document.keys() <= {*required, *optional}:
        # The unknown names are not echoed: they are the caller's, of any length.
        raise InvalidBody(
            reason=f"the fields allowed are {fields}", reason_ar=f"الحقول المسموح بها: {fields}"
        )
    body: dict[str, str] = {}
    for name in (*required, *optional):
        value = document.get(name)
        if value is None and name in optional:
            continue
        if value is None:
            raise InvalidBody(reason=f"{name} is missing", reason_ar=f"الحقل {name} مفقود")
        if not isinstance(value, str):
            raise InvalidBody(reason=f"{name} must be text", reason_ar=f"يجب أن يكون {name} نصًا")
        body[name] = value
    return body


def _subject(body: Mapping[str, str]) -> Subject:
    # The library checks both: an unknown kind is UnknownSubjectKind, a bad ID InvalidIdentifier.
    return Subject(kind=body["kind"], identifier=body["id"])


# --- as deployed -----------------------------------------------------------------------------


def keys_from_environment() -> KeySet:
    """The key material, from exactly one of ``TELECARD_AUTH_KEYS`` and ``TELECARD_AUTH_KEYS_JSON``.

    ``TELECARD_AUTH_KEYS`` names the key file (``load_keys`` refuses one that another user could
    have written); ``TELECARD_AUTH_KEYS_JSON`` holds the private JWK Set itself, as a secret
    manager injects it. Neither or both is a ``ConfigurationError``, and so is JSON that is not a
    key set: its reason names the variable and the member at fault, never a value.
    """
    path, document = os.environ.get(ENV_KEYS, ""), os.environ.get(ENV_KEYS_JSON, "")
    if bool(path) == bool(document):
        raise ConfigurationError(
            reason=f"set exactly one of {ENV_KEYS} (a key file) and {ENV_KEYS_JSON} (its JSON)"
        )
    if path:
        return load_keys(path)
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            reason=f"{ENV_KEYS_JSON} is not valid JSON (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise ConfigurationError(reason=f"{ENV_KEYS_JSON} is not valid JSON") from None
    try:
        return KeySet.from_jwks(parsed)
    except KeyringError as error:
        reason = error.details.get("reason", "a key is not valid")
        raise ConfigurationError(reason=f"{ENV_KEYS_JSON}: {reason}") from None


def app_from_environment() -> Starlette:
    """The app as deployed: every secret comes from the environment, none from the code.

    - ``TELECARD_AUTH_KEYS``: the key file that ``telecard-auth init`` wrote (HMAC keys,
      pseudonym keys, receipt signing keys); or else ``TELECARD_AUTH_KEYS_JSON``: the same
      private JWK Set as JSON, from a secret manager. Exactly one of the two.
    - ``TELECARD_AUTH_STORAGE``: the storage URL (``sqlite:///…``, ``redis://…``,
      ``postgresql://…``); its schema is created or upgraded when the app starts.
    - ``TELECARD_HTTP_PLATFORM_KEY``: the issuing platform's API key.
    - ``TELECARD_HTTP_OPERATOR_KEYS``: the operators' API keys, as ``stc=KEY,mobily=KEY``.
    - ``TELECARD_HTTP_AUDIT_LOG``: the audit trail, a JSON Lines file each audit event is
      appended to and flushed to disk before the request is answered (``JsonLinesSink``).
    - ``TELECARD_HTTP_RATE_LIMIT`` (optional, ``20/second``): requests per API key.
    - ``TELECARD_HTTP_RATE_STORAGE`` (optional, ``memory://``): where requests are counted; with
      several instances, a shared ``redis://…``.

    The operators verify receipts with the public JWK Set the app serves at
    ``/.well-known/jwks.json``. Serve it with any ASGI server, for example
    ``uvicorn --factory examples.http_service.app:app_from_environment``.
    """
    keys = keys_from_environment()
    platform_key = _setting(ENV_PLATFORM_KEY)
    operator_keys: dict[str, str] = {}
    for entry in _setting(ENV_OPERATOR_KEYS).split(","):
        provider, _, key = entry.strip().partition("=")
        operator_keys[provider] = key
    storage = async_storage_from_url(_setting(ENV_STORAGE))
    audit = JsonLinesSink(_setting(ENV_AUDIT_LOG))
    issuer = AsyncCodeIssuer(storage, keyring=keys.keyring, signer=keys.signer, events=audit)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with storage:  # closed when the app stops
            await storage.migrate()  # creates or upgrades the schema; safe on every start
            try:
                yield
            finally:
                audit.close()

    try:
        return create_app(
            issuer=issuer,
            operator_keys=operator_keys,
            platform_key=platform_key,
            rate_limit=os.environ.get(ENV_RATE_LIMIT) or DEFAULT_RATE_LIMIT,
            rate_storage=os.environ.get(ENV_RATE_STORAGE) or "memory://",
            lifespan=lifespan,
        )
    except ConfigurationError:
        audit.close()
        raise


def _setting(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigurationError(reason=f"the environment variable {name} is not set")
    return value


# --- a walk through, in process --------------------------------------------------------------


async def _walk() -> int:
    """Issue a code, redeem it twice with one Idempotency-Key, verify the receipt with the JWK Set
    the app publishes; 0 if all held."""
    signer = ReceiptSigner.generate("r1")
    issuer = AsyncCodeIssuer(AsyncMemoryStorage(), keyring=Keyring.generate(), signer=signer)
    platform_key, stc_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    app = create_app(issuer=issuer, operator_keys={"stc": stc_key}, platform_key=platform_key)
    customer = {"kind": "citizen", "id": "1000000008"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        issued = await client.post(
            "/codes",
            json={**customer, "provider": "stc"},
            headers={"Authorization": f"Bearer {platform_key}"},
        )
        print(f"POST /codes -> {issued.status_code}, code {issued.json()['display']}")

        operator = {"Authorization": f"Bearer {stc_key}", "Idempotency-Key": "visit-0001"}
        redemption = {**customer, "code": issued.json()["code"], "service": "new_line"}
        first = await client.post("/redemptions", json=redemption, headers=operator)
        retry = await client.post("/redemptions", json=redemption, headers=operator)
        print(f"POST /redemptions -> {first.status_code}, retried -> {retry.status_code}")

        again = await client.post(
            "/redemptions", json=redemption, headers={"Authorization": f"Bearer {stc_key}"}
        )
        print(f"without the Idempotency-Key -> {again.status_code} {again.json()['error']['code']}")

        published = await client.get(JWKS_PATH)  # what the operators fetch: no key, no file
        published.raise_for_status()

    # STC verifies with the published JWK Set alone, as itself: a receipt for another is refused.
    receipt = verify_receipt(first.json()["receipt"], published.json(), audience="stc")
    print(f"receipt verified with the public key: {receipt.service_id} at {receipt.provider_id}")
    return 0 if first.json() == retry.json() else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_walk()))
