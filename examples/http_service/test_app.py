"""Tests of the HTTP service, through httpx's ASGI transport: in process, no network, no sleeping.

The app gets an issuer over in-memory storage that reads a ``ManualClock``, so four hours pass in
one call. Every test marked ``anyio`` runs on asyncio.
"""

from __future__ import annotations

import inspect
import json
import pickle
import re
import secrets
import string
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.http_service.app import (
    ENV_AUDIT_LOG,
    ENV_OPERATOR_KEYS,
    ENV_PLATFORM_KEY,
    MAX_BODY_BYTES,
    BodyTooLarge,
    InvalidBody,
    InvalidJson,
    NotAuthenticated,
    RateLimited,
    app_from_environment,
    create_app,
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
    ReceiptSigner,
    Redemption,
    StorageError,
    TelecardAuthError,
    VerifyKey,
    async_storage_from_url,
    events,
    verify_receipt,
)
from telecard_auth.cli import ENV_KEYS, ENV_STORAGE, KeyFile, write_key_file

pytestmark = pytest.mark.anyio

START = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
CUSTOMER = {"kind": "citizen", "id": "1000000008"}
ARABIC = re.compile("[\u0600-\u06ff]")

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
def issuer(clock: ManualClock, signer: ReceiptSigner) -> AsyncCodeIssuer:
    """An issuer over fresh in-memory storage, reading the manual clock."""
    return AsyncCodeIssuer(
        AsyncMemoryStorage(), keyring=Keyring.generate(), clock=clock, signer=signer
    )


@pytest.fixture
def keys() -> dict[str, str]:
    """Fresh API keys: the platform's and two operators'."""
    return {name: secrets.token_urlsafe(32) for name in ("platform", "stc", "mobily")}


@pytest.fixture
def app(issuer: AsyncCodeIssuer, keys: Mapping[str, str]) -> Starlette:
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


def refusal(answer: httpx.Response, status: int, code: str) -> dict[str, str]:
    """Check that ``answer`` is a refusal with ``status`` and ``code``, in both languages."""
    assert (status, "application/json") == (answer.status_code, answer.headers["content-type"])
    error: dict[str, str] = answer.json()["error"]
    assert {"code", "message_en", "message_ar"} == error.keys()
    assert code == error["code"]
    assert error["message_en"].isascii()
    assert ARABIC.search(error["message_ar"])
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
    """The optional service binds the code: another service gets 409 service_mismatch."""
    issued = await issue(client, keys, service="lost_sim_replacement")
    assert "lost_sim_replacement" == issued["service"]
    answer = await client.post(
        "/redemptions", json=redemption(issued["code"], "new_line"), headers=bearer(keys["stc"])
    )
    refusal(answer, 409, "service_mismatch")


async def test_policy_refusals_are_403(client: httpx.AsyncClient, keys: Mapping[str, str]) -> None:
    """A fourth live code is refused by the policy: 403 live_code_limit."""
    for _ in range(3):
        await issue(client, keys)
    answer = await client.post(
        "/codes", json={**CUSTOMER, "provider": "stc"}, headers=bearer(keys["platform"])
    )
    refusal(answer, 403, "live_code_limit")


# --- redeeming -------------------------------------------------------------------------------


async def test_the_operator_redeems_and_verifies_the_receipt_with_the_public_key(
    client: httpx.AsyncClient, keys: Mapping[str, str], signer: ReceiptSigner
) -> None:
    """POST /redemptions answers 200 with a receipt that the public key line alone verifies."""
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

    public_line = signer.current.public_key.to_text()  # all the operator was given
    receipt = verify_receipt(redeemed["receipt"], VerifyKey.from_text(public_line))
    assert (issued["code_id"], "stc", "new_line", START) == (
        receipt.code_id,
        receipt.provider_id,
        receipt.service_id,
        receipt.redeemed_at,
    )
    assert issued["code"] not in redeemed["receipt"]
    assert CUSTOMER["id"] not in answer.text

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
    refusal(at_mobily, 409, "wrong_code")

    posing = {**redemption(issued["code"]), "provider": "stc"}
    answer = await client.post("/redemptions", json=posing, headers=bearer(keys["mobily"]))
    refusal(answer, 422, "invalid_body")

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
    """Four hours after issue, the right code is refused with 409 code_expired."""
    issued = await issue(client, keys)
    clock.advance(hours=4)
    answer = await client.post(
        "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["stc"])
    )
    error = refusal(answer, 409, "code_expired")
    assert error["message_en"].startswith("The code expired at 2026-11-25T10:00:00+00:00")


async def test_wrong_attempts_lock_the_code_then_wait_with_429_and_retry_after(
    client: httpx.AsyncClient, keys: Mapping[str, str], clock: ManualClock
) -> None:
    """Five wrong attempts lock a code (409); ten at one operator are 429 with Retry-After.

    The customer's way back is a new code: asked for once the budget is spent, it is a recovery
    code, and it redeems.
    """

    async def guess_wrong_five_times(code: str) -> None:
        wrong = code[:-1] + str((int(code[-1]) + 1) % 10)  # well formed, and not the code
        for _ in range(5):
            answer = await client.post(
                "/redemptions", json=redemption(wrong), headers=bearer(keys["stc"])
            )
            refusal(answer, 409, "wrong_code")

    first = await issue(client, keys)
    await guess_wrong_five_times(first["code"])
    locked = await client.post(
        "/redemptions", json=redemption(first["code"]), headers=bearer(keys["stc"])
    )
    refusal(locked, 409, "code_locked")

    second = await issue(client, keys)
    await guess_wrong_five_times(second["code"])  # ten wrong attempts at STC, all at START
    clock.advance(hours=1)
    answer = await client.post(
        "/redemptions", json=redemption(second["code"]), headers=bearer(keys["stc"])
    )
    refusal(answer, 429, "failure_budget_exhausted")  # redeeming waits, for 24 hours...
    assert str(23 * 3600) == answer.headers["retry-after"]
    fresh = await issue(client, keys)  # ...unless the customer asks anew: a recovery code
    answer = await client.post(
        "/redemptions", json=redemption(fresh["code"]), headers=bearer(keys["stc"])
    )
    assert 200 == answer.status_code, answer.text


async def test_each_api_key_is_held_to_its_rate_limit(
    issuer: AsyncCodeIssuer, keys: Mapping[str, str]
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
        assert ARABIC.search(error["message_ar"])
        assert 1 <= int(answer.headers["retry-after"]) <= 3600
        other = await client.post(
            "/redemptions", json=redemption("12345678"), headers=bearer(keys["mobily"])
        )
    assert [409, 409, 409, 429] == statuses
    assert 409 == other.status_code


def test_a_rate_limit_that_cannot_be_read_is_refused_at_creation(
    issuer: AsyncCodeIssuer, keys: Mapping[str, str]
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
        wrong = {**body, "code": "12345678" if issued["code"] != "12345678" else "87654321"}
        refused = await client.post("/redemptions", json=wrong, headers=bearer(keys["stc"]))
        answer = await client.post("/redemptions", json=body, headers=bearer(keys["stc"]))
        bad = await client.post(
            "/redemptions", json={**body, "reference": "no spaces"}, headers=bearer(keys["stc"])
        )
    refusal(refused, 409, "wrong_code")
    assert 200 == answer.status_code, answer.text
    refusal(bad, 422, "invalid_reference")
    references = [
        (event.kind, event.reference)
        for event in sink.events
        if isinstance(event, events.CodeRedemption | events.RedemptionRefusal)
    ]
    assert [
        ("redemption_refused", "branch-12/agent-7"),
        ("code_redeemed", "branch-12/agent-7"),
    ] == references


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
        pytest.param(b"{}", 422, "invalid_body", id="no-fields"),
        pytest.param(_body(service=None), 422, "invalid_body", id="missing-field"),
        pytest.param(_body(code=12345678), 422, "invalid_body", id="number-not-text"),
        pytest.param(_body(kind="alien"), 422, "unknown_subject_kind", id="unknown-kind"),
        pytest.param(_body(serivce="x"), 422, "invalid_body", id="unknown-field"),
        pytest.param(_body(id="1234567890"), 422, "invalid_identifier", id="bad-check-digit"),
        pytest.param(_body(code="1234"), 422, "malformed_code", id="short-code"),
        pytest.param(_body(service="sim_swap"), 422, "unknown_service", id="unknown-service"),
        pytest.param(b" " * (MAX_BODY_BYTES + 1), 413, "body_too_large", id="too-large"),
    ],
)
async def test_a_bad_body_is_refused_with_a_typed_error(
    client: httpx.AsyncClient, keys: Mapping[str, str], content: bytes, status: int, code: str
) -> None:
    """Malformed JSON is 400, a body of the wrong shape or values 422, a huge one 413."""
    headers = {**bearer(keys["stc"]), "Content-Type": "application/json"}
    answer = await client.post("/redemptions", content=content, headers=headers)
    refusal(answer, status, code)


@pytest.mark.parametrize("request_id", ["", "x" * 65, "two words"])
async def test_a_bad_idempotency_key_is_422(
    client: httpx.AsyncClient, keys: Mapping[str, str], request_id: str
) -> None:
    """An Idempotency-Key must be 1 to 64 printable ASCII characters without spaces."""
    issued = await issue(client, keys)
    headers = {**bearer(keys["stc"]), "Idempotency-Key": request_id}
    answer = await client.post("/redemptions", json=redemption(issued["code"]), headers=headers)
    refusal(answer, 422, "invalid_request_id")


async def test_a_wrong_method_or_path_is_json_too(client: httpx.AsyncClient) -> None:
    """Routing errors answer in the same JSON shape: 405 with Allow, and 404."""
    wrong_method = await client.get("/codes")
    refusal(wrong_method, 405, "method_not_allowed")
    assert "POST" in wrong_method.headers["allow"]
    refusal(await client.post("/nowhere"), 404, "not_found")


@pytest.mark.parametrize(
    "error_class",
    [NotAuthenticated, InvalidJson, InvalidBody, BodyTooLarge, RateLimited],
    ids=lambda error_class: error_class.__name__,
)
def test_each_error_declares_the_fields_of_its_messages(
    error_class: type[TelecardAuthError],
) -> None:
    """The service's errors take, keyword-only, exactly the fields their templates name; each
    field shows in the messages and survives pickling."""
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


# --- failures of the service itself ------------------------------------------------------------


class BrokenStorage(AsyncMemoryStorage):
    """A storage whose every load fails, as a database that went away."""

    async def load(self, subject_ref: str) -> Any:
        """Fail."""
        raise OSError("connection reset")


class BrokenIssuer(AsyncCodeIssuer):
    """An issuer with a bug: redeeming raises an exception no one planned for."""

    async def redeem(self, *_arguments: Any, **_options: Any) -> Redemption:
        """Fail."""
        raise RuntimeError("a bug, with internals in its message")


async def test_a_storage_failure_is_503(keys: Mapping[str, str], signer: ReceiptSigner) -> None:
    """The library's storage_error, with its messages, and nothing of the failure's internals."""
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


#: The only text a storage failure answers with, whatever the failure.
UNAVAILABLE = {
    "code": "storage_error",
    "message_en": "The service is unavailable for a moment; try again later.",
    "message_ar": "الخدمة غير متاحة مؤقتًا؛ حاول مرة أخرى لاحقًا.",
}
#: What a database driver says when it cannot connect: for the service's log, not its callers.
DRIVER_TEXT = 'connection to server at "db01.internal", port 5432 failed: role "issuer" denied'


class LeakyStorage(AsyncMemoryStorage):
    """A storage that fails with a StorageError carrying server data, as a custom backend might."""

    async def load(self, subject_ref: str) -> Any:
        """Fail, naming the server in the reason and in the detail."""
        raise StorageError(reason=f"PostgreSQL: {DRIVER_TEXT}", detail=DRIVER_TEXT)


async def _issue_over(
    storage: AsyncStorage, keys: Mapping[str, str], signer: ReceiptSigner
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
            "/codes", json={**CUSTOMER, "provider": "stc"}, headers=bearer(keys["platform"])
        )


async def test_a_storage_failure_answers_fixed_text_and_logs_the_detail(
    keys: Mapping[str, str], signer: ReceiptSigner, caplog: pytest.LogCaptureFixture
) -> None:
    """503 with the fixed text whatever the error says; the driver's text goes to the log."""
    answer = await _issue_over(LeakyStorage(), keys, signer)
    assert 503 == answer.status_code
    assert {"error": UNAVAILABLE} == answer.json()
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
    assert {"error": UNAVAILABLE} == answer.json()
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
            "/redemptions", json=redemption("12345678"), headers=bearer(keys["stc"])
        )
    refusal(answer, 500, "internal_error")
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
    refusal(answer, 500, "internal_error")
    assert "clock" not in answer.text
    logged = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert ["configuration_error"] == [getattr(error, "code", None) for error in logged]


# --- configuration ---------------------------------------------------------------------------


def _unsafe_configurations(
    issuer: AsyncCodeIssuer, keys: Mapping[str, str]
) -> list[Callable[[], Starlette]]:
    unsigned = AsyncCodeIssuer(AsyncMemoryStorage(), keyring=Keyring.generate())
    synchronous = CodeIssuer(MemoryStorage(), keyring=Keyring.generate())
    operators = {"stc": keys["stc"]}
    platform = keys["platform"]
    return [
        lambda: create_app(issuer=unsigned, operator_keys=operators, platform_key=platform),
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
    issuer: AsyncCodeIssuer, keys: Mapping[str, str]
) -> None:
    """No signer, a sync issuer, no operators, a short, non-ASCII or shared key, an unknown one."""
    for build in _unsafe_configurations(issuer, keys):
        with pytest.raises(ConfigurationError):
            build()


async def test_the_deployed_app_reads_every_secret_from_the_environment(
    tmp_path: Path, private: Path, keys: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key file, SQLite storage and API keys from the environment; the schema made at start-up."""
    key_file = KeyFile.generate(START)
    write_key_file(private / "keys.json", key_file)
    monkeypatch.setenv(ENV_KEYS, str(private / "keys.json"))
    monkeypatch.setenv(ENV_STORAGE, f"sqlite:///{tmp_path / 'codes.db'}")
    monkeypatch.setenv(ENV_PLATFORM_KEY, keys["platform"])
    monkeypatch.setenv(ENV_OPERATOR_KEYS, f"stc={keys['stc']}, mobily={keys['mobily']}")
    monkeypatch.setenv(ENV_AUDIT_LOG, str(private / "audit.jsonl"))

    app = app_from_environment()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            issued = await issue(client, keys, provider="mobily")
            answer = await client.post(
                "/redemptions", json=redemption(issued["code"]), headers=bearer(keys["mobily"])
            )
    assert 200 == answer.status_code, answer.text
    public_keys = key_file.signer.verify_keys()
    assert "mobily" == verify_receipt(answer.json()["receipt"], public_keys).provider_id
    assert (tmp_path / "codes.db").exists()
    trail = [json.loads(line) for line in (private / "audit.jsonl").read_text().splitlines()]
    assert ["code_issued", "code_redeemed"] == [entry["event"] for entry in trail]
    assert 0o600 == (private / "audit.jsonl").stat().st_mode & 0o777

    monkeypatch.delenv(ENV_PLATFORM_KEY)
    with pytest.raises(ConfigurationError, match=ENV_PLATFORM_KEY):
        app_from_environment()
