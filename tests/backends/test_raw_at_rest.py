"""Nothing secret or personal at rest, read from the RAW storage of every backend.

A realistic run (subjects of every kind, several providers, mobile-number and recipient bindings,
redeemed, revoked, locked and expired codes, wrong attempts) goes through ``CodeIssuer`` into each
backend. Then the storage is read behind the library's back: every row of every table through
``sqlite3`` or ``psycopg`` (and the SQLite files' bytes), every Redis key and every field of it
under the test's prefix, and for memory every snapshot. No plaintext code, identity number or
mobile number may appear, in any digit script, even inside JSON escapes. A planted leak proves the
search would find one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.backends.conftest import UrlFactory
from tests.backends.workers import close_storage
from tests.helpers import K1_SECRET, K2_SECRET, PSEUDONYM_SECRET, other_code

from telecard_auth import (
    BindingMismatch,
    BindingRequired,
    CodeExpired,
    CodeIssuer,
    CodeLocked,
    CodeRecord,
    CodeRevoked,
    CodeState,
    Commit,
    FailureLog,
    HmacKey,
    IssuedCode,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    PostgresStorage,
    ReceiptSigner,
    RedisStorage,
    SQLiteStorage,
    Storage,
    Subject,
    TelecardAuthError,
    WrongCode,
    storage_from_url,
)
from telecard_auth._core.requests import identity_of

CITIZENS = ("1000000008", "1110704341", "1909266858", "1122334459")
RESIDENTS = ("2129040479", "2123456788", "2345678904")
COMPANIES = ("7000000001", "7012345678", "7099999999")
GOVERNMENT = ("7001234567", "7100000000")
#: Every accepted form of a mobile number, in every digit script, with separators.
MOBILES = (
    "0551234567",
    "551234568",
    "+966501112223",
    "00966598765432",
    "966561112224",
    "٠٥٦٣٣٣٤٤٤٥",
    "۵۴۴۵۵۵۶۶۶",
    "+966 50-111-2225",
)
WRONG_MOBILE = "0599999999"
#: Request ids that look like what an operator's system sends; none may be stored as typed.
REQUEST_IDS = ("req-7f3a9c21-0001", "ORDER/2026/000417", "agent42:visit:8812")
PROVIDERS = ("stc", "mobily", "zain", "virgin", "lebara", "salam", "redbull", "friendi")

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EXTENDED_ARABIC_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
#: A JSON or Python ``\\uXXXX`` escape, however many times its backslash was itself escaped.
UNICODE_ESCAPE = re.compile(r"\\+u([0-9a-fA-F]{4})")
TO_ASCII = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def mobile_core(typed: str) -> str:
    """The nine digits 5XXXXXXXX that every accepted form of a mobile number contains."""
    digits = [char for char in typed.translate(TO_ASCII) if char in "0123456789"]
    return "".join(digits)[-9:]


@attrs.define
class Run:
    """One backend after a realistic run, and how to read its raw content."""

    backend: str
    storage: Storage
    issuer: CodeIssuer
    raw: Callable[[], list[str]]
    codes: list[IssuedCode] = attrs.Factory(list)
    owners: list[Subject] = attrs.Factory(list)
    subjects: list[Subject] = attrs.Factory(list)

    def refused(
        self, expected: type[TelecardAuthError], subject: Subject, *args: Any, **kwargs: Any
    ) -> None:
        """Redeem with these arguments and require the ``expected`` refusal."""
        with pytest.raises(expected):
            self.issuer.redeem(subject, *args, **kwargs)


def drive(run: Run, clock: ManualClock, early: CodeIssuer, superseding: CodeIssuer) -> None:
    """A day of traffic: every kind of subject, binding, outcome and wrong attempt."""
    issuer = run.issuer
    subjects = (
        [Subject.citizen(number) for number in CITIZENS]
        + [Subject.resident(number) for number in RESIDENTS]
        + [Subject.company(number) for number in COMPANIES]
        + [Subject.government(number) for number in GOVERNMENT]
    )
    # Some identifiers typed in Arabic-Indic digits, as customers do.
    subjects[1] = Subject.citizen(CITIZENS[1].translate(ARABIC_INDIC))
    subjects[5] = Subject.resident(RESIDENTS[1].translate(EXTENDED_ARABIC_INDIC))
    run.subjects = subjects
    for index, subject in enumerate(subjects):
        active = early if index % 4 == 0 else issuer
        recipient = subjects[(index + 1) % len(subjects)]
        mobile = MOBILES[index % len(MOBILES)]
        first = active.issue(subject, PROVIDERS[index % 8], msisdn=mobile)
        second = issuer.issue(
            subject, PROVIDERS[(index + 3) % 8], service="number_transfer", recipient=recipient
        )
        third = issuer.issue(subject, PROVIDERS[(index + 5) % 8], service="new_line")
        run.codes += [first, second, third]
        run.owners += [subject] * 3

        # First code: a wrong number, a missing one, then redeemed with the right one, typed in
        # another script.
        run.refused(
            BindingMismatch, subject, first.provider, first.code, "new_line", msisdn=WRONG_MOBILE
        )
        run.refused(BindingRequired, subject, first.provider, first.code, "new_line")
        typed = first.code.translate(ARABIC_INDIC)
        request_id = REQUEST_IDS[index % len(REQUEST_IDS)]
        once = issuer.redeem(
            subject, first.provider, typed, "new_line", msisdn=mobile, request_id=request_id
        )
        # A retry with the same request id is answered from storage, receipt and all.
        again = issuer.redeem(
            subject, first.provider, first.code, "new_line", msisdn=mobile, request_id=request_id
        )
        assert once == again
        assert once.receipt is not None
        # Second code: a wrong recipient, then revoked or redeemed by the right recipient.
        transfer = (second.provider, second.code, "number_transfer")
        run.refused(BindingMismatch, subject, *transfer, recipient=subject)
        if index % 2:
            issuer.revoke(subject, second.code_id)
            run.refused(CodeRevoked, subject, *transfer, recipient=recipient)
        else:
            issuer.redeem(subject, *transfer, recipient=recipient)
        # Third code: locked by wrong guesses for some, left to expire for the others.
        if index % 3 == 0:
            for _ in range(5):
                run.refused(WrongCode, subject, third.provider, other_code(third.code), "new_line")
            run.refused(CodeLocked, subject, third.provider, third.code, "new_line")
        clock.advance(minutes=7)

    clock.advance(hours=5)
    for index, subject in enumerate(subjects):
        third = run.codes[3 * index + 2]
        if index % 3:
            run.refused(CodeExpired, subject, third.provider, third.code, "new_line")
        fresh = issuer.issue(subject, "stc", msisdn=MOBILES[(index + 2) % len(MOBILES)])
        run.codes.append(fresh)
        run.owners.append(subject)
        if index % 2 == 0:
            # Three more codes under a superseding policy: the third supersedes ``fresh``.
            for _ in range(3):
                newer = superseding.issue(subject, "mobily")
                run.codes.append(newer)
                run.owners.append(subject)
            assert newer.superseded_code_ids == (fresh.code_id,)


# --- reading each backend raw -----------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def raw_memory(storage: MemoryStorage) -> list[str]:
    """Every snapshot in memory, rendered whole."""
    texts = []
    for snapshot in storage.snapshots():
        texts += [repr(snapshot), repr(attrs.asdict(snapshot, recurse=True))]
    return texts


def raw_sqlite(storage: SQLiteStorage) -> list[str]:
    """Every row of every table (and the schema itself) through sqlite3, and the files' bytes."""
    import sqlite3

    texts = []
    with sqlite3.connect(storage.path) as connection:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        tables = [row[0] for row in connection.execute(query)]
        assert {"telecard_subjects", "telecard_schema"} <= set(tables)
        for table in ("sqlite_master", *tables):
            for row in connection.execute(f'SELECT * FROM "{table}"'):  # noqa: S608
                texts += [_text(value) for value in row]
    connection.close()
    folder = Path(storage.path).parent
    for path in folder.glob(Path(storage.path).name + "*"):
        data = path.read_bytes()
        texts += [data.decode("latin-1"), data.decode("utf-8", errors="replace")]
    return texts


def raw_redis(storage: RedisStorage, url: str) -> list[str]:
    """Every key under the prefix and every field and value in it, through a separate client."""
    import redis

    client = redis.Redis.from_url(url)
    texts = []
    try:
        for key in client.scan_iter(match=f"{storage.prefix}:*", count=1000):
            texts.append(_text(key))
            kind = _text(client.type(key))
            assert "hash" == kind
            fields = client.hgetall(key)
            assert {b"v", b"i", b"d", b"k"} == set(fields)
            for field, value in fields.items():
                texts += [_text(field), _text(value)]
    finally:
        client.close()
    return texts


def raw_postgres(storage: PostgresStorage, url: str) -> list[str]:
    """Every value of every row of every table in the storage's schema, through psycopg."""
    import psycopg
    from psycopg import sql

    texts = []
    with psycopg.connect(url) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (storage.schema,),
            )
        ]
        assert {"telecard_subjects", "telecard_schema"} <= set(tables)
        for table in tables:
            query = sql.SQL("SELECT * FROM {}.{}").format(
                sql.Identifier(storage.schema), sql.Identifier(table)
            )
            for row in connection.execute(query):
                texts += [_text(value) for value in row]
    return texts


def reader(storage: Storage, request: pytest.FixtureRequest) -> Callable[[], list[str]]:
    """The raw reader for ``storage``."""
    if isinstance(storage, MemoryStorage):
        return lambda: raw_memory(storage)
    if isinstance(storage, SQLiteStorage):
        return lambda: raw_sqlite(storage)
    if isinstance(storage, RedisStorage):
        url = request.getfixturevalue("redis_url")
        return lambda: raw_redis(storage, url)
    assert isinstance(storage, PostgresStorage)
    url = request.getfixturevalue("postgres_url")
    return lambda: raw_postgres(storage, url)


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def run(
    request: pytest.FixtureRequest,
    storage_url: UrlFactory,
    keyring: Keyring,
    clock: ManualClock,
) -> Iterator[Run]:
    """A backend after a realistic run with two keys (k1 for some codes, k2 for the rest)."""
    backend: str = request.param
    storage = storage_from_url(storage_url(backend))
    migrate = getattr(storage, "migrate", None)
    if migrate is not None:
        migrate()
    rotated = keyring.with_key(HmacKey(key_id="k2", secret=K2_SECRET))
    signer = ReceiptSigner.generate()
    issuer = CodeIssuer(storage, keyring=rotated, clock=clock, signer=signer)
    early = CodeIssuer(storage, keyring=keyring, clock=clock)
    superseding = CodeIssuer(
        storage, keyring=rotated, clock=clock, policy=Policy(on_live_code_limit="supersede")
    )
    result = Run(backend=backend, storage=storage, issuer=issuer, raw=reader(storage, request))
    drive(result, clock, early, superseding)
    yield result
    close_storage(storage)


# --- what must not be found -------------------------------------------------------------------


def forbidden_of(run: Run) -> set[str]:
    """Every plaintext that must never be at rest, in ASCII digits (texts are folded to ASCII)."""
    forbidden: set[str] = set()
    for issued in run.codes:
        code = issued.code
        forbidden |= {code, issued.display, f"{code[:4]}-{code[4:]}"}
    forbidden |= set(CITIZENS + RESIDENTS + COMPANIES + GOVERNMENT)
    forbidden |= set(REQUEST_IDS)
    for typed in (*MOBILES, WRONG_MOBILE):
        core = mobile_core(typed)
        forbidden |= {core, "0" + core, "966" + core, "+966" + core, "00966" + core}
        forbidden.add(typed.translate(TO_ASCII))
    return forbidden


def secret_forms(secret: bytes) -> set[str]:
    """A key's bytes as they could appear in text: hex, base64 (either alphabet), latin-1."""
    forms = {secret.hex(), secret.hex().upper(), secret.decode("latin-1")}
    for encoded in (base64.b64encode(secret), base64.urlsafe_b64encode(secret)):
        forms |= {encoded.decode(), encoded.decode().rstrip("=")}
    return forms


def searchable(texts: list[str]) -> list[str]:
    """The texts as stored, with JSON escapes undone, and folded from every digit script."""
    out = []
    for text in texts:
        variants = {text, UNICODE_ESCAPE.sub(lambda match: chr(int(match[1], 16)), text)}
        with contextlib.suppress(ValueError):
            variants.add(json.dumps(json.loads(text), ensure_ascii=False))
        out += [variant.translate(TO_ASCII) for variant in variants]
    return out


def leaks(forbidden: set[str], texts: list[str]) -> set[str]:
    """The forbidden strings that occur in any of the texts."""
    haystack = "\n".join(searchable(texts))
    return {secret for secret in forbidden if secret in haystack}


def test_the_run_left_every_kind_of_record(run: Run) -> None:
    """The raw dump is not vacuous: every subject and code is in it, codes in every state."""
    states = {
        run.issuer.status(owner, issued.code_id).state
        for owner, issued in zip(run.owners, run.codes, strict=True)
    }
    assert set(CodeState) == states
    haystack = "\n".join(run.raw())
    refs = {run.issuer.keyring.subject_ref(identity_of(subject)) for subject in run.subjects}
    assert len(run.subjects) == len(refs)
    assert set() == {ref for ref in refs if ref not in haystack}
    assert set() == {issued.code_id for issued in run.codes if issued.code_id not in haystack}


def test_no_code_identity_or_mobile_number_in_raw_storage(run: Run) -> None:
    """No plaintext code, identity or mobile number (any form, any script) is stored anywhere."""
    texts = run.raw()
    assert set() == leaks(forbidden_of(run), texts)
    for secret in (K1_SECRET, K2_SECRET, PSEUDONYM_SECRET):
        assert set() == leaks(secret_forms(secret), texts)


def test_the_raw_search_finds_a_planted_leak(run: Run, clock: ManualClock) -> None:
    """The search is not blind: a code, an ID and a number planted through commit() are found."""
    code = run.codes[0].code
    national_id = CITIZENS[0].translate(ARABIC_INDIC)
    mobile = mobile_core(MOBILES[0]).translate(EXTENDED_ARABIC_INDIC)
    now = clock.now()
    leaky = CodeRecord(
        code_id=code,
        provider_id="stc",
        key_id="k1",
        digest=b"x" * 32,
        issued_at=now,
        expires_at=now + timedelta(hours=4),
        service_id=national_id,
        msisdn_ref=mobile,
    )
    change = Commit(
        subject_ref="planted",
        expected_version=0,
        incarnation="planted-incarnation",
        codes=(leaky,),
        failure_logs=(FailureLog(provider_id="stc", failures=(now,)),),
        written_at=now,
        keep_until=now + timedelta(days=1),
    )
    assert run.storage.commit(change)
    found = leaks(forbidden_of(run), run.raw())
    assert {code, CITIZENS[0], mobile_core(MOBILES[0])} <= found
