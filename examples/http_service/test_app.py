"""Tests of the HTTP service, through httpx's ASGI transport: in process, no network, no sleeping.

The app gets an issuer over in-memory storage that reads a ``ManualClock``, so four hours pass in
one call. Every test marked ``anyio`` runs on asyncio.
"""

from __future__ import annotations

import ast
import hmac
import inspect
import json
import pickle
import re
import secrets
import string
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from examples.http_service import app as app_module
from examples.http_service.app import (
    ENV_AUDIT_LOG,
    ENV_KEYS,
    ENV_KEYS_JSON,
    ENV_OPERATOR_KEYS,
    ENV_PLATFORM_KEY,
    ENV_STORAGE,
    JWKS_PATH,
    MAX_BODY_BYTES,
    BodyTooLarge,
    InvalidBody,
    InvalidJson,
    NotAuthenticated,
    RateLimited,
    app_from_environment,
    create_app,
    keys_from_environment,
)
from starlette.applications import Starlette

from telecard_auth import (
    AsyncCodeIssuer,
    AsyncMemoryStorage,
    AsyncStorage,
    CodeIssuer,
    CollectingSink,
    ConfigurationError,
    Keyring,
    ManualClock,
    MemoryStorage,
    ReceiptMismatch,
    ReceiptSigner,
    SignedRedemption,
    StorageError,
    TelecardAuthError,
    async_storage_from_url,
    events,
    verify_receipt,
)
from telecard_auth.keys import KeySet, save_keys

pytestmark = pytest.mark.anyio

START = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
CUSTOMER = {"kind": "citizen", "id": "1000000008"}
ARABIC = re.compile("[\u0600-\u06ff]")
HERE = Path(__file__).parent

# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the service does not depend on the event loop's flavour."""
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    """The time of every test's start; it moves only when the test moves it."""
    return ManualClock(START)


@pytest.fixture
def signer() -> ReceiptSigner:
    """The issuing side's receipt signing key."""
    return ReceiptSigner.generate("r1")


@pytest.fixture
def issuer(clock: ManualClock, signer: ReceiptSigner) -> AsyncCodeIssuer[SignedRedemption]:
    """An issuer over fresh in-memory storage, reading the manual clock."""
    return AsyncCodeIssuer(
        AsyncMemoryStorage(), keyring=Keyring.generate(), clock=clock, signer=signer
    )


@pytest.fixture
def keys() -> dict[str, str]:
    """Fresh API keys: the platform's and two operators'."""
    return {name: secrets.token_urlsafe(32) for name in ("platform", "stc", "mobily")}


@pytest.fixture
def app(issuer: AsyncCodeIssuer[SignedRedemption], keys: Mapping[str, str]) -> Starlette:
    """The service under test."""
    operators = {provider: keys[provider] for provider in ("stc", "mobily")}
    return create_app(issuer=issuer, operator_keys=operators, platform_key=keys["platform"])


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that calls the app in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    """The header that presents ``key``."""
    return {"Authorization": f"Bearer {key}"}


async def issue(
    client: httpx.AsyncClient, keys: Mapping[str, str], provider: str = "stc", **extra: str
) -> dict[str, Any]:
    """Issue a code for ``CUSTOMER`` at ``provider`` as the platform; the answer's JSON."""
    body = {**CUSTOMER, "provider": provider, **extra}
    answer = await client.post("/codes", json=body, headers=bearer(keys["platform"]))
    assert 201 == answer.status_code, answer.text
    issued: dict[str, Any] = answer.json()
    return issued


def redemption(code: str, service: str = "new_line") -> dict[str, str]:
    """The body of a redemption of ``code`` for ``CUSTOMER``."""
    return {**CUSTOMER, "code": code, "service": service}


def wrong_code(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def refusal(answer: httpx.Response, status: int, code: str, lang: str = "en") -> dict[str, Any]:
    """Check that ``answer`` is a refusal with ``status`` and ``code``, in both languages, its
    ``message`` in ``lang``; the ``error`` object."""
    assert (status, "application/json", lang) == (
        answer.status_code,
        answer.headers["content-type"],
        answer.headers["content-language"],
    )
    document = answer.json()
    assert {"error", "message"} == document.keys()
    error: dict[str, Any] = document["error"]
    assert {"code", "status", "message", "details"} <= error.keys()
    assert error.keys() <= {"code", "status", "message", "details", "retry_after"}
    assert (code, status) == (error["code"], error["status"])
    assert {"en", "ar"} == error["message"].keys()
    assert error["message"]["en"].isascii()
    assert ARABIC.search(error["message"]["ar"])
    assert error["message"][lang] == document["message"]
    assert "Traceback" not in answer.text
    return error


# --- issuing ---------------------------------------------------------------------------------


async def test_the_platform_issues_a_code_for_four_hours(
    client: httpx.AsyncClient, keys: Mapping[str, str]
) -> None:
    """POST /codes answers 201 with the code, its operator, and an expiry four hours on."""
    answer = await client.post(
        "/codes", json={**CUSTOMER, "provider": "stc"}, headers=bearer(keys["platform"])
    )
    assert 201 == answer.status_code
    assert "no-store" == answer.headers["cache-control"]
    issued = answer.json()
    assert re.fullmatch("[0-9]{8}", issued["code"], re.ASCII)
    assert ("stc", None) == (issued["provider"], issued["service"])
    assert START.isoformat() == issued["issued_at"]
    assert (START + timedelta(hours=4)).isoformat() == issued["expires_at"]


async def test_a_code_bound_to_a_service_is_refused_for_another(
    client: httpx.AsyncClient, keys: Mapping[str, str]
) -> None:
    """The optional service binds the code: another service gets 403 service_mismatch."""
    issued = await issue(client, keys, service="lost_sim_replacement")
    assert "lost_sim_replacement" == issued["service"]
    answer = await client.post(
        "/redemptions", json=redemption(issued["code"], "new_line"), headers=bearer(keys["stc"])
    )
    refusal(answer, 403, "service_mismatch")
    assert "retry-after" not in answer.headers


async def test_the_live_code_limit_is_403_with_retry_after_until_a_place_frees(
    client: httpx.AsyncClient, keys: Mapping[str, str], clock: ManualClock
) -> None:
    """A fourth live code is 403 live_code_limit; Retry-After counts to the first one's expiry."""
    for _ in range(3):
        await issue(client, keys)
    clock.advance(minutes=30)
    answer = await client.post(
        "/codes", json={**CUSTOMER, "provider": "stc"}, headers=bearer(keys["platform"])
    )
    error = refusal(answer, 403, "live_code_limit")
    seconds = 3 * 3600 + 30 * 60  # the first code expires at START + 4 h
    assert (str(seconds), seconds) == (answer.headers["retry-after"], error["retry_after"])
    assert {"limit": 3, "next_free": "2026-11-25T10:00:00Z", "retry_after": seconds} == (
        error["details"]
    )


# --- redeeming -------------------------------------------------------------------------------


async def test_the_operator_redeems_and_verifies_the_receipt_with_the_published_jwks(
    client: httpx.AsyncClient, keys: Mapping[str, str]
) -> None:
    """POST /redemptions answers 200 with a JWT receipt that the published JWK Set verifies."""
    issued = await issue(client, keys)
    answer = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
    )
    assert 200 == answer.status_code, answer.text
    assert "no-store" == answer.headers["cache-control"]
    redeemed = answer.json()
    assert (issued["code_id"], "stc", "new_line") == (
        redeemed["code_id"],
        redeemed["provider"],
        redeemed["service"],
    )

    jwks = (await client.get(JWKS_PATH)).json()  # all the operator needs, fetched without a key
    receipt = verify_receipt(redeemed["receipt"], jwks, audience="stc")
    assert (issued["code_id"], "stc", "new_line", START) == (
        receipt.code_id,
        receipt.provider_id,
        receipt.service_id,
        receipt.redeemed_at,
    )
    assert redeemed["receipt"].startswith("eyJ")
    assert issued["code"] not in redeemed["receipt"]
    assert CUSTOMER["id"] not in answer.text
    with pytest.raises(ReceiptMismatch) as mismatch:  # made for STC: no other operator's
        verify_receipt(redeemed["receipt"], jwks, audience="mobily")
    assert "aud" == mismatch.value.details["claim"]

    again = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
    )
    refusal(again, 409, "code_already_used")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer(secrets.token_urlsafe(32)),
        {"Authorization": "Basic c3RjOnN0Yw=="},
        {"Authorization": "Bearer"},
        {b"Authorization": "Bearer kéy".encode("latin-1")},
    ],
    ids=["none", "unknown", "basic", "empty", "non-ascii"],
)
async def test_a_missing_or_wrong_api_key_is_401(
    client: httpx.AsyncClient,
    keys: Mapping[str, str],
    headers: dict[str, str] | dict[bytes, bytes],
) -> None:
    """Neither endpoint does anything for a request without a valid key of its own."""
    issued = await issue(client, keys)
    for path, body in [("/codes", {**CUSTOMER, "provider": "stc"}), ("/redemptions", {})]:
        answer = await client.post(path, json=body, headers=headers)
        refusal(answer, 401, "not_authenticated")
        assert "Bearer" == answer.headers["www-authenticate"]
    answer = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
    )
    assert 200 == answer.status_code  # nothing was counted against the code


async def test_every_key_is_compared_in_constant_time(
    client: httpx.AsyncClient, keys: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The presented key meets every operator key through compare_digest, whichever matches."""
    compared: list[tuple[bytes, bytes]] = []

    def compare_digest(presented: bytes, key: bytes) -> bool:
        compared.append((presented, key))
        return hmac.compare_digest(presented, key)

    monkeypatch.setattr(app_module, "hmac", SimpleNamespace(compare_digest=compare_digest))
    stranger = secrets.token_urlsafe(32)
    for key in (keys["stc"], stranger):
        await client.post("/redemptions", json=redemption("12345678"), headers=bearer(key))
    operator_keys = sorted(keys[name].encode() for name in ("stc", "mobily"))
    assert [operator_keys, operator_keys] == [
        sorted(key for presented, key in compared if presented == given.encode())
        for given in (keys["stc"], stranger)
    ]
    assert 4 == len(compared)


async def test_each_key_opens_its_own_endpoint_only(
    client: httpx.AsyncClient, keys: Mapping[str, str]
) -> None:
    """An operator cannot issue codes, and the platform cannot redeem them."""
    issued = await issue(client, keys)
    as_operator = await client.post(
        "/codes", json={**CUSTOMER, "provider": "stc"}, headers=bearer(keys["stc"])
    )
    refusal(as_operator, 401, "not_authenticated")
    as_platform = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["platform"])
    )
    refusal(as_platform, 401, "not_authenticated")


async def test_an_operator_cannot_redeem_another_operators_code(
    client: httpx.AsyncClient, keys: Mapping[str, str]
) -> None:
    """Mobily's key on STC's code is a wrong code; naming STC in the body is not allowed."""
    issued = await issue(client, keys, provider="stc")
    at_mobily = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["mobily"])
    )
    refusal(at_mobily, 403, "wrong_code")

    posing = {**redemption(issued["code"]), "provider": "stc"}
    answer = await client.post("/redemptions", json=posing, headers=bearer(keys["mobily"]))
    refusal(answer, 400, "invalid_body")

    at_stc = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
    )
    assert 200 == at_stc.status_code


async def test_a_retry_with_the_same_idempotency_key_gets_the_identical_receipt(
    client: httpx.AsyncClient, keys: Mapping[str, str], clock: ManualClock
) -> None:
    """Same key, same body: the same answer, byte for byte. Other keys or bodies are refused."""
    issued = await issue(client, keys)
    headers = {**bearer(keys["stc"]), "Idempotency-Key": "visit-8812"}
    first = await client.post("/redemptions", json=redemption(issued["code"]), headers=headers)
    clock.advance(minutes=3)  # the network dropped the answer; the agent's system tries again
    retry = await client.post("/redemptions", json=redemption(issued["code"]), headers=headers)
    assert (200, 200) == (first.status_code, retry.status_code)
    assert first.content == retry.content
    assert START.isoformat() == retry.json()["redeemed_at"]

    other_service = redemption(issued["code"], "lost_sim_replacement")
    conflict = await client.post("/redemptions", json=other_service, headers=headers)
    refusal(conflict, 409, "request_conflict")
    other_key = {**headers, "Idempotency-Key": "visit-8813"}
    used = await client.post("/redemptions", json=redemption(issued["code"]), headers=other_key)
    refusal(used, 409, "code_already_used")


async def test_a_code_expires_when_the_clock_reaches_four_hours(
    client: httpx.AsyncClient, keys: Mapping[str, str], clock: ManualClock
) -> None:
    """Four hours on, the code is 410 code_expired: Riyadh time in messages, UTC in details."""
    issued = await issue(client, keys)
    clock.advance(hours=4)
    answer = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
    )
    error = refusal(answer, 410, "code_expired")
    assert (
        "The code expired at 25 November 2026, 13:00 Riyadh time; ask for a new code."
        == error["message"]["en"]
    )
    assert {"expired_at": "2026-11-25T10:00:00Z"} == error["details"]
    assert "retry-after" not in answer.headers


async def test_wrong_attempts_lock_the_code_then_wait_with_429_and_retry_after(
    client: httpx.AsyncClient, keys: Mapping[str, str], clock: ManualClock
) -> None:
    """A locked code is 429 without Retry-After; a spent budget 429 with it, to the second."""
    # Waiting does not unlock a code, so code_locked has no Retry-After. The customer's way back
    # is a new code: asked for once the budget is spent, it is a recovery code, and it redeems.

    async def guess_wrong_five_times(code: str) -> None:
        for _ in range(5):
            answer = await client.post(
                "/redemptions", json=redemption(wrong_code(code)), headers=bearer(keys["stc"])
            )
            refusal(answer, 403, "wrong_code")

    first = await issue(client, keys)
    await guess_wrong_five_times(first["code"])
    locked = await client.post(
        "/redemptions", json=redemption(first["code"]), headers=bearer(keys["stc"])
    )
    refusal(locked, 429, "code_locked")
    assert "retry-after" not in locked.headers

    second = await issue(client, keys)
    await guess_wrong_five_times(second["code"])  # ten wrong attempts at STC, all at START
    clock.advance(hours=1, seconds=17)
    answer = await client.post(
        "/redemptions", json=redemption(second["code"]), headers=bearer(keys["stc"])
    )
    error = refusal(answer, 429, "failure_budget_exhausted")  # redeeming waits, for 24 hours...
    seconds = 23 * 3600 - 17
    assert (str(seconds), seconds) == (answer.headers["retry-after"], error["retry_after"])
    assert "2026-11-26T06:00:00Z" == error["details"]["retry_at"]
    fresh = await issue(client, keys)  # ...unless the customer asks anew: a recovery code
    answer = await client.post(
        "/redemptions", json=redemption(fresh["code"]), headers=bearer(keys["stc"])
    )
    assert 200 == answer.status_code, answer.text


async def test_each_api_key_is_held_to_its_rate_limit(
    issuer: AsyncCodeIssuer[SignedRedemption], keys: Mapping[str, str]
) -> None:
    """A key past its rate limit gets 429 rate_limited with Retry-After; other keys go on."""
    operators = {provider: keys[provider] for provider in ("stc", "mobily")}
    app = create_app(
        issuer=issuer, operator_keys=operators, platform_key=keys["platform"], rate_limit="3/hour"
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        statuses = []
        for _ in range(4):
            answer = await client.post(
                "/redemptions", json=redemption("12345678"), headers=bearer(keys["stc"])
            )
            statuses.append(answer.status_code)
        error = refusal(answer, 429, "rate_limited")
        assert str(error["retry_after"]) == answer.headers["retry-after"]
        assert 1 <= error["retry_after"] <= 3600
        other = await client.post(
            "/redemptions", json=redemption("12345678"), headers=bearer(keys["mobily"])
        )
    assert [403, 403, 403, 429] == statuses
    assert 403 == other.status_code


def test_a_rate_limit_that_cannot_be_read_is_refused_at_creation(
    issuer: AsyncCodeIssuer[SignedRedemption], keys: Mapping[str, str]
) -> None:
    """A rate limit not in the limits notation, or a storage URL it cannot use, is refused."""
    operators = {"stc": keys["stc"]}
    for rate_limit, rate_storage in (("often", "memory://"), ("20/second", "nowhere://")):
        with pytest.raises(ConfigurationError):
            create_app(
                issuer=issuer,
                operator_keys=operators,
                platform_key=keys["platform"],
                rate_limit=rate_limit,
                rate_storage=rate_storage,
            )


async def test_the_operators_reference_reaches_the_audit_events(
    clock: ManualClock, signer: ReceiptSigner, keys: Mapping[str, str]
) -> None:
    """The body's reference (agent or branch) is in the redemption's and a refusal's events."""
    sink = CollectingSink()
    issuer = AsyncCodeIssuer(
        AsyncMemoryStorage(), keyring=Keyring.generate(), clock=clock, signer=signer, events=sink
    )
    app = create_app(
        issuer=issuer, operator_keys={"stc": keys["stc"]}, platform_key=keys["platform"]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        issued = await issue(client, keys)
        body = {**redemption(issued["code"]), "reference": "branch-12/agent-7"}
        wrong = {**body, "code": wrong_code(issued["code"])}
        refused = await client.post("/redemptions", json=wrong, headers=bearer(keys["stc"]))
        answer = await client.post("/redemptions", json=body, headers=bearer(keys["stc"]))
        bad = await client.post(
            "/redemptions", json={**body, "reference": "no spaces"}, headers=bearer(keys["stc"])
        )
    refusal(refused, 403, "wrong_code")
    assert 200 == answer.status_code, answer.text
    refusal(bad, 400, "invalid_reference")
    references = [
        (event.kind, event.reference)
        for event in sink.events
        if isinstance(event, events.CodeRedemption | events.RedemptionRefusal)
    ]
    assert [
        ("redemption_refused", "branch-12/agent-7"),
        ("code_redeemed", "branch-12/agent-7"),
    ] == references
    receipt = verify_receipt(answer.json()["receipt"], signer.public_jwks(), audience="stc")
    assert "branch-12/agent-7" == receipt.reference


# --- languages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "lang"),
    [
        ("ar-SA,en;q=0.5", "ar"),
        ("ar", "ar"),
        ("en-US,ar;q=0.5", "en"),
        ("fr", "en"),
        ("fr, ar;q=0.1", "ar"),
        ("*", "en"),
        (None, "en"),
    ],
)
async def test_the_message_is_in_the_language_the_request_prefers(
    client: httpx.AsyncClient,
    keys: Mapping[str, str],
    clock: ManualClock,
    accept_language: str | None,
    lang: str,
) -> None:
    """Accept-Language picks the message and Content-Language names it; both stay in ``error``."""
    issued = await issue(client, keys)
    clock.advance(hours=5)
    headers = bearer(keys["stc"])
    if accept_language is not None:
        headers["Accept-Language"] = accept_language
    answer = await client.post("/redemptions", json=redemption(issued["code"]), headers=headers)
    error = refusal(answer, 410, "code_expired", lang)
    assert "Accept-Language" == answer.headers["vary"]
    shown = {
        "ar": "انتهت صلاحية الرمز في 25 نوفمبر 2026، الساعة 13:00 بتوقيت الرياض؛ اطلب رمزًا جديدًا.",
        "en": "The code expired at 25 November 2026, 13:00 Riyadh time; ask for a new code.",
    }
    assert (shown, shown[lang]) == (error["message"], answer.json()["message"])


async def test_an_arabic_client_gets_arabic_for_the_services_own_refusals(
    client: httpx.AsyncClient,
) -> None:
    """The service's errors and its routing answers follow Accept-Language as the library's do."""
    arabic = {"Accept-Language": "ar-SA,en;q=0.5"}
    unauthenticated = await client.post("/codes", json={}, headers=arabic)
    error = refusal(unauthenticated, 401, "not_authenticated", "ar")
    assert "مفتاح الوصول مفقود أو غير صالح لهذه الواجهة." == unauthenticated.json()["message"]
    assert {} == error["details"]
    refusal(await client.post("/nowhere", headers=arabic), 404, "not_found", "ar")
    refusal(
        await client.get("/codes", headers={"Accept-Language": "fr"}), 405, "method_not_allowed"
    )


# --- the public JWK Set ------------------------------------------------------------------------


async def test_the_jwks_is_public_cacheable_and_verifies_a_real_receipt(
    client: httpx.AsyncClient, keys: Mapping[str, str], signer: ReceiptSigner
) -> None:
    """GET /.well-known/jwks.json, without a key: the public keys only, cacheable five minutes."""
    answer = await client.get(JWKS_PATH)
    assert (200, "application/jwk-set+json", "public, max-age=300") == (
        answer.status_code,
        answer.headers["content-type"],
        answer.headers["cache-control"],
    )
    jwks = answer.json()
    assert signer.public_jwks() == jwks
    assert [("OKP", "Ed25519", "r1")] == [(k["kty"], k["crv"], k["kid"]) for k in jwks["keys"]]
    assert not any({"d", "k"} & jwk.keys() for jwk in jwks["keys"])  # nothing private

    issued = await issue(client, keys)
    redeemed = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
    )
    receipt = verify_receipt(redeemed.json()["receipt"], jwks, audience="stc")
    assert ("r1", issued["code_id"]) == (receipt.key_id, receipt.code_id)


async def test_the_jwks_lists_every_key_a_rotated_signer_holds(
    clock: ManualClock, keys: Mapping[str, str]
) -> None:
    """After a rotation the set holds the old key and the new: receipts of either verify."""
    old = ReceiptSigner.generate("r1")
    rotated = old.with_key(ReceiptSigner.generate("r2").current)
    issuer = AsyncCodeIssuer(
        AsyncMemoryStorage(), keyring=Keyring.generate(), clock=clock, signer=rotated
    )
    app = create_app(
        issuer=issuer, operator_keys={"stc": keys["stc"]}, platform_key=keys["platform"]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as client:
        jwks = (await client.get(JWKS_PATH)).json()
        issued = await issue(client, keys)
        redeemed = await client.post(
            "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
        )
    assert ["r1", "r2"] == [jwk["kid"] for jwk in jwks["keys"]]
    assert "r2" == verify_receipt(redeemed.json()["receipt"], jwks, audience="stc").key_id


async def test_the_jwks_takes_get_only(client: httpx.AsyncClient) -> None:
    """Anything but GET (or HEAD) at the JWK Set is 405, with Allow."""
    answer = await client.post(JWKS_PATH, json={})
    refusal(answer, 405, "method_not_allowed")
    assert "GET" in answer.headers["allow"]
    assert 200 == (await client.head(JWKS_PATH)).status_code


# --- bad requests ----------------------------------------------------------------------------


def _body(**changes: object) -> bytes:
    """A redemption body with ``changes`` (a value of ``None`` leaves its field out)."""
    body = {**redemption("12345678"), **changes}
    return json.dumps({name: value for name, value in body.items() if value is not None}).encode()


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        pytest.param(b"{not json", 400, "invalid_json", id="not-json"),
        pytest.param(b"\xff\xfe\x00", 400, "invalid_json", id="not-text"),
        pytest.param(b'["a list"]', 400, "invalid_json", id="not-an-object"),
        pytest.param(b"", 400, "invalid_json", id="empty"),
        pytest.param(b"{}", 400, "invalid_body", id="no-fields"),
        pytest.param(_body(service=None), 400, "invalid_body", id="missing-field"),
        pytest.param(_body(code=12345678), 400, "invalid_body", id="number-not-text"),
        pytest.param(_body(kind="alien"), 400, "unknown_subject_kind", id="unknown-kind"),
        pytest.param(_body(serivce="x"), 400, "invalid_body", id="unknown-field"),
        pytest.param(_body(id="1234567890"), 400, "invalid_identifier", id="bad-check-digit"),
        pytest.param(_body(code="1234"), 400, "malformed_code", id="short-code"),
        pytest.param(_body(service="sim_swap"), 400, "unknown_service", id="unknown-service"),
        pytest.param(b" " * (MAX_BODY_BYTES + 1), 413, "body_too_large", id="too-large"),
    ],
)
async def test_a_bad_body_is_refused_with_a_typed_error(
    client: httpx.AsyncClient, keys: Mapping[str, str], content: bytes, status: int, code: str
) -> None:
    """Malformed JSON, or a body of the wrong shape or values, is 400; a huge one 413."""
    headers = {**bearer(keys["stc"]), "Content-Type": "application/json"}
    answer = await client.post("/redemptions", content=content, headers=headers)
    refusal(answer, status, code)


async def test_a_refusal_never_echoes_the_callers_values(
    client: httpx.AsyncClient, keys: Mapping[str, str]
) -> None:
    """An unknown field, service or kind, and a bad identity number, are named, never shown."""
    marker = "zz-caller-value-9"
    for body in (
        _body(**{marker: "x"}),
        _body(service=marker),
        _body(kind=marker),
        _body(id="1234567890"),
    ):
        headers = {**bearer(keys["stc"]), "Content-Type": "application/json"}
        answer = await client.post("/redemptions", content=body, headers=headers)
        assert 400 == answer.status_code
        assert (False, False) == (marker in answer.text, "1234567890" in answer.text)


@pytest.mark.parametrize("request_id", ["", "x" * 65, "two words"])
async def test_a_bad_idempotency_key_is_400(
    client: httpx.AsyncClient, keys: Mapping[str, str], request_id: str
) -> None:
    """An Idempotency-Key must be 1 to 64 printable ASCII characters without spaces."""
    issued = await issue(client, keys)
    headers = {**bearer(keys["stc"]), "Idempotency-Key": request_id}
    answer = await client.post("/redemptions", json=redemption(issued["code"]), headers=headers)
    refusal(answer, 400, "invalid_request_id")


async def test_a_wrong_method_or_path_is_json_too(client: httpx.AsyncClient) -> None:
    """Routing errors answer in the same JSON shape: 405 with Allow, and 404."""
    wrong_method = await client.get("/codes")
    refusal(wrong_method, 405, "method_not_allowed")
    assert "POST" in wrong_method.headers["allow"]
    refusal(await client.post("/nowhere"), 404, "not_found")


#: The service's own errors and the statuses they declare.
SERVICE_ERRORS: dict[type[TelecardAuthError], int] = {
    NotAuthenticated: 401,
    InvalidJson: 400,
    InvalidBody: 400,
    BodyTooLarge: 413,
    RateLimited: 429,
}


@pytest.mark.parametrize("error_class", list(SERVICE_ERRORS), ids=lambda cls: cls.__name__)
def test_each_error_declares_the_fields_of_its_messages(
    error_class: type[TelecardAuthError],
) -> None:
    """Each service error takes exactly its templates' fields, keyword-only, shown and pickled."""
    parameters = inspect.signature(error_class).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    templates = (error_class.template_en, error_class.template_ar)
    parsed = [string.Formatter().parse(template) for template in templates]
    assert {name for fields in parsed for _, name, _, _ in fields if name} == set(parameters)
    fields = {name: f"<{name}>" for name in parameters}
    error = error_class(**fields)
    assert all(value in error.message_en + error.message_ar for value in fields.values())
    assert fields == dict(error.details)
    assert str(error) == str(pickle.loads(pickle.dumps(error)))  # noqa: S301 - our own object


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (NotAuthenticated(), 401, None),
        (InvalidJson(), 400, None),
        (InvalidBody(reason="r", reason_ar="ر"), 400, None),
        (BodyTooLarge(limit=MAX_BODY_BYTES), 413, None),
        (RateLimited(retry_after=7), 429, 7),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_each_error_declares_its_http_status_and_retry_after(
    error: TelecardAuthError, status: int, retry_after: int | None
) -> None:
    """Each service error has its status; only rate_limited a retry_after; to_dict has both."""
    assert SERVICE_ERRORS[type(error)] == status
    assert (status, retry_after) == (error.http_status, error.retry_after)
    answer = error.to_dict()
    assert (status, retry_after) == (answer["status"], answer.get("retry_after"))


# --- failures of the service itself ------------------------------------------------------------


class BrokenStorage(AsyncMemoryStorage):
    """A storage whose every load fails, as a database that went away."""

    async def load(self, subject_ref: str) -> Any:
        """Fail."""
        raise OSError("connection reset")


class BrokenIssuer(AsyncCodeIssuer[SignedRedemption]):
    """An issuer with a bug: redeeming raises an exception no one planned for."""

    async def redeem(self, *_arguments: Any, **_options: Any) -> SignedRedemption:
        """Fail."""
        raise RuntimeError("a bug, with internals in its message")


async def test_a_storage_failure_is_503(keys: Mapping[str, str], signer: ReceiptSigner) -> None:
    """The library's storage_error, with fixed messages, and nothing of the failure's internals."""
    issuer = AsyncCodeIssuer(BrokenStorage(), keyring=Keyring.generate(), signer=signer)
    app = create_app(
        issuer=issuer, operator_keys={"stc": keys["stc"]}, platform_key=keys["platform"]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as client:
        answer = await client.post(
            "/codes", json={**CUSTOMER, "provider": "stc"}, headers=bearer(keys["platform"])
        )
    refusal(answer, 503, "storage_error")
    assert "connection reset" not in answer.text
    assert "retry-after" not in answer.headers


#: The only error a storage failure answers with, whatever the failure.
UNAVAILABLE: dict[str, Any] = {
    "code": "storage_error",
    "status": 503,
    "message": {
        "en": "The service is unavailable for a moment; try again later.",
        "ar": "الخدمة غير متاحة مؤقتًا؛ حاول مرة أخرى لاحقًا.",
    },
    "details": {},
}
#: What a database driver says when it cannot connect: for the service's log, not its callers.
DRIVER_TEXT = 'connection to server at "db01.internal", port 5432 failed: role "issuer" denied'


class LeakyStorage(AsyncMemoryStorage):
    """A storage that fails with a StorageError carrying server data, as a custom backend might."""

    async def load(self, subject_ref: str) -> Any:
        """Fail, naming the server in the reason and in the detail."""
        raise StorageError(reason=f"PostgreSQL: {DRIVER_TEXT}", detail=DRIVER_TEXT)


async def _issue_over(
    storage: AsyncStorage,
    keys: Mapping[str, str],
    signer: ReceiptSigner,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """One POST /codes to an app whose issuer runs over ``storage``."""
    issuer = AsyncCodeIssuer(storage, keyring=Keyring.generate(), signer=signer)
    app = create_app(
        issuer=issuer, operator_keys={"stc": keys["stc"]}, platform_key=keys["platform"]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as client:
        return await client.post(
            "/codes",
            json={**CUSTOMER, "provider": "stc"},
            headers={**bearer(keys["platform"]), **(headers or {})},
        )


@pytest.mark.parametrize(("accept_language", "lang"), [("en", "en"), ("ar-SA,en;q=0.5", "ar")])
async def test_a_storage_failure_answers_fixed_text_and_logs_the_detail(
    keys: Mapping[str, str],
    signer: ReceiptSigner,
    caplog: pytest.LogCaptureFixture,
    accept_language: str,
    lang: str,
) -> None:
    """503 with the fixed text whatever the error says; the driver's text goes to the log."""
    answer = await _issue_over(LeakyStorage(), keys, signer, {"Accept-Language": accept_language})
    assert (503, lang) == (answer.status_code, answer.headers["content-language"])
    assert {"error": UNAVAILABLE, "message": UNAVAILABLE["message"][lang]} == answer.json()
    assert "db01" not in answer.text
    assert any(DRIVER_TEXT in record.getMessage() for record in caplog.records)


async def test_an_unreachable_redis_answers_503_without_its_address(
    keys: Mapping[str, str], signer: ReceiptSigner, caplog: pytest.LogCaptureFixture
) -> None:
    """A real backend with nothing listening: 503, fixed text; host and port only in the log."""
    pytest.importorskip("redis")
    storage = async_storage_from_url("redis://127.0.0.1:1/0?prefix=nowhere")
    answer = await _issue_over(storage, keys, signer)
    await storage.close()
    assert 503 == answer.status_code
    assert {"error": UNAVAILABLE, "message": UNAVAILABLE["message"]["en"]} == answer.json()
    assert "127.0.0.1" not in answer.text
    assert any("127.0.0.1:1" in record.getMessage() for record in caplog.records)


async def test_an_unexpected_error_is_a_bare_500(
    keys: Mapping[str, str], signer: ReceiptSigner
) -> None:
    """A bug answers 500 internal_error in both languages, with no traceback and no message."""
    issuer = BrokenIssuer(AsyncMemoryStorage(), keyring=Keyring.generate(), signer=signer)
    app = create_app(
        issuer=issuer, operator_keys={"stc": keys["stc"]}, platform_key=keys["platform"]
    )
    # Starlette raises the exception again for the server to log; the client gets the answer.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        answer = await client.post(
            "/redemptions",
            json=redemption("12345678"),
            headers={**bearer(keys["stc"]), "Accept-Language": "ar"},
        )
    error = refusal(answer, 500, "internal_error", "ar")
    assert {} == error["details"]
    assert "internals" not in answer.text


class BrokenClock:
    """A clock that fails, as a misconfigured time source would."""

    def now(self) -> datetime:
        """Fail."""
        raise OSError("the time server went away")


async def test_a_configuration_error_is_logged_and_a_bare_500(
    keys: Mapping[str, str], signer: ReceiptSigner, caplog: pytest.LogCaptureFixture
) -> None:
    """What is wrong with the service goes to its log; the caller learns only internal_error."""
    issuer = AsyncCodeIssuer(
        AsyncMemoryStorage(), keyring=Keyring.generate(), clock=BrokenClock(), signer=signer
    )
    app = create_app(
        issuer=issuer, operator_keys={"stc": keys["stc"]}, platform_key=keys["platform"]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as client:
        answer = await client.post(
            "/codes", json={**CUSTOMER, "provider": "stc"}, headers=bearer(keys["platform"])
        )
    error = refusal(answer, 500, "internal_error")
    assert {} == error["details"]
    assert "clock" not in answer.text
    logged = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert ["configuration_error"] == [getattr(error, "code", None) for error in logged]


# --- configuration ---------------------------------------------------------------------------


def _unsafe_configurations(
    issuer: AsyncCodeIssuer[SignedRedemption], keys: Mapping[str, str]
) -> list[Callable[[], Starlette]]:
    unsigned = AsyncCodeIssuer(AsyncMemoryStorage(), keyring=Keyring.generate())
    synchronous = CodeIssuer(MemoryStorage(), keyring=Keyring.generate())
    operators = {"stc": keys["stc"]}
    platform = keys["platform"]
    return [
        lambda: create_app(issuer=unsigned, operator_keys=operators, platform_key=platform),  # type: ignore[arg-type]
        lambda: create_app(issuer=synchronous, operator_keys=operators, platform_key=platform),  # type: ignore[arg-type]
        lambda: create_app(issuer=issuer, operator_keys={}, platform_key=platform),
        lambda: create_app(issuer=issuer, operator_keys={"stc": "short"}, platform_key=platform),
        lambda: create_app(
            issuer=issuer, operator_keys={"acme": keys["stc"]}, platform_key=platform
        ),
        lambda: create_app(issuer=issuer, operator_keys=operators, platform_key=keys["stc"]),
        lambda: create_app(
            issuer=issuer, operator_keys={"stc": platform + "é"}, platform_key=platform
        ),
        lambda: create_app(
            issuer=issuer,
            operator_keys={"stc": keys["stc"], "zain": keys["stc"]},
            platform_key=platform,
        ),
    ]


def test_unsafe_configuration_is_refused_at_creation(
    issuer: AsyncCodeIssuer[SignedRedemption], keys: Mapping[str, str]
) -> None:
    """No signer, a sync issuer, no operators, a short, non-ASCII or shared key, an unknown one."""
    for build in _unsafe_configurations(issuer, keys):
        with pytest.raises(ConfigurationError):
            build()


def _deploy(monkeypatch: pytest.MonkeyPatch, folder: Path, keys: Mapping[str, str]) -> None:
    """Set every variable but the key material's: SQLite storage, API keys, the audit trail."""
    for name in (ENV_KEYS, ENV_KEYS_JSON):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_STORAGE, f"sqlite:///{folder / 'codes.db'}")
    monkeypatch.setenv(ENV_PLATFORM_KEY, keys["platform"])
    monkeypatch.setenv(ENV_OPERATOR_KEYS, f"stc={keys['stc']}, mobily={keys['mobily']}")
    monkeypatch.setenv(ENV_AUDIT_LOG, str(folder / "audit.jsonl"))


async def _redeem_at_mobily(app: Starlette, keys: Mapping[str, str]) -> tuple[str, Any]:
    """Issue and redeem one code at Mobily over ``app``, started; the receipt and the JWK Set."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            issued = await issue(client, keys, provider="mobily")
            answer = await client.post(
                "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["mobily"])
            )
            jwks = (await client.get(JWKS_PATH)).json()
    assert 200 == answer.status_code, answer.text
    receipt: str = answer.json()["receipt"]
    return receipt, jwks


async def test_the_deployed_app_reads_every_secret_from_the_environment(
    private: Path, keys: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key file, SQLite storage and API keys from the environment; the schema made at start-up."""
    key_set = KeySet.generate(START)
    save_keys(private / "keys.json", key_set)
    _deploy(monkeypatch, private, keys)
    monkeypatch.setenv(ENV_KEYS, str(private / "keys.json"))

    token, jwks = await _redeem_at_mobily(app_from_environment(), keys)
    assert key_set.public_jwks() == jwks
    assert "mobily" == verify_receipt(token, jwks, audience="mobily").provider_id
    assert (private / "codes.db").exists()
    trail = [json.loads(line) for line in (private / "audit.jsonl").read_text().splitlines()]
    assert ["code_issued", "code_redeemed"] == [entry["event"] for entry in trail]
    assert 0o600 == (private / "audit.jsonl").stat().st_mode & 0o777

    monkeypatch.delenv(ENV_PLATFORM_KEY)
    with pytest.raises(ConfigurationError, match=ENV_PLATFORM_KEY):
        app_from_environment()


async def test_the_key_material_may_come_as_json_from_a_secret_manager(
    private: Path, keys: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TELECARD_AUTH_KEYS_JSON holds the private JWK Set itself: no key file is read or written."""
    key_set = KeySet.generate(START)
    _deploy(monkeypatch, private, keys)
    monkeypatch.setenv(ENV_KEYS_JSON, json.dumps(key_set.to_jwks()))

    assert key_set == keys_from_environment()
    token, jwks = await _redeem_at_mobily(app_from_environment(), keys)
    assert key_set.public_jwks() == jwks
    assert "mobily" == verify_receipt(token, jwks, audience="mobily").provider_id
    assert [] == sorted(path.name for path in private.iterdir() if path.suffix == ".json")


def test_exactly_one_source_of_keys_is_set(private: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the key file nor its JSON, or both, is a ConfigurationError naming the two."""
    key_set = KeySet.generate(START)
    save_keys(private / "keys.json", key_set)
    monkeypatch.delenv(ENV_KEYS, raising=False)
    monkeypatch.delenv(ENV_KEYS_JSON, raising=False)
    with pytest.raises(ConfigurationError) as neither:
        keys_from_environment()
    monkeypatch.setenv(ENV_KEYS, str(private / "keys.json"))
    assert key_set == keys_from_environment()
    monkeypatch.setenv(ENV_KEYS_JSON, json.dumps(key_set.to_jwks()))
    with pytest.raises(ConfigurationError) as both:
        keys_from_environment()
    for refused in (neither.value, both.value):
        assert (True, True) == (ENV_KEYS in refused.message_en, ENV_KEYS_JSON in refused.message_en)


@pytest.mark.parametrize(
    "document",
    [
        '{"keys": [{"kty": "oct", "role": "hmac", "kid": "k1", "k": "SECRET-VALUE!"',
        '{"keys": [{"kty": "oct", "role": "hmac", "kid": "k1", "k": "SECRET-VALUE!"}]}',
        '["SECRET-VALUE!"]',
        '"SECRET-VALUE!"',
    ],
    ids=["not-json", "bad-key", "a-list", "a-string"],
)
def test_json_that_is_not_a_key_set_is_refused_without_its_text(
    monkeypatch: pytest.MonkeyPatch, document: str
) -> None:
    """Broken key JSON is a ConfigurationError that names the variable and never shows a value."""
    monkeypatch.delenv(ENV_KEYS, raising=False)
    monkeypatch.setenv(ENV_KEYS_JSON, document)
    with pytest.raises(ConfigurationError) as refused:
        keys_from_environment()
    shown = [refused.value.message_en, refused.value.message_ar, repr(refused.value)]
    assert all(ENV_KEYS_JSON in text and "SECRET" not in text for text in shown)
    # No parser's text is chained to the traceback either.
    assert (None, True) == (refused.value.__cause__, refused.value.__suppress_context__)


# --- the example's own shape -------------------------------------------------------------------


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, and every name it imports from one, as dotted paths."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


@pytest.mark.parametrize("module", ["app.py", "test_app.py"])
def test_the_example_imports_nothing_from_the_command_line(module: str) -> None:
    """Neither the app nor its tests import ``telecard_auth.cli``: the command line is no API."""
    imported = _imported(HERE / module)
    assert [] == sorted(
        name
        for name in imported
        if name == "telecard_auth.cli" or name.startswith("telecard_auth.cli.")
    )


def test_the_app_reads_key_material_with_the_keys_module() -> None:
    """The app loads keys with ``telecard_auth.keys``: ``load_keys`` and ``KeySet``."""
    wanted = {"telecard_auth.keys.load_keys", "telecard_auth.keys.KeySet"}
    assert wanted == wanted & _imported(HERE / "app.py")


def test_the_readme_documents_every_setting_and_endpoint() -> None:
    """Each environment variable the app reads, and the JWK Set's path, is in its README."""
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    names = [value for name, value in vars(app_module).items() if name.startswith("ENV_")]
    assert 8 == len(names)
    assert [] == [name for name in (*names, JWKS_PATH) if name not in readme]
