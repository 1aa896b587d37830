"""Benchmark suite: telecard-auth against its floors, its peers and its backends, at scale.

In one run, each figure the median of repeated rounds, the rounds of the cases that are compared
interleaved (the order rotating from round to round, so that the noise of a shared machine falls
on all of them alike):

- **core**: the bare minimum of an issue + redeem pair in pure Python, written inline (an 8-digit
  code from ``secrets``, HMAC-SHA256 twice, a dict insert and pop, ``compare_digest``), the same
  plus one Ed25519 signature, and ``CodeIssuer`` on ``MemoryStorage`` (default policy) without
  and with a ``ReceiptSigner``;
- **peer**: pyotp (TOTP ``now`` + ``verify``), Django's ``PasswordResetTokenGenerator``
  (``make_token`` + ``check_token``) and itsdangerous (``TimestampSigner`` ``sign`` +
  ``unsign``), each doing its nearest equivalent of one pair;
- **backend**: per backend (memory, SQLite ``synchronous=full`` and ``normal``, Redis,
  PostgreSQL) the library beside the raw driver sending the same statements (the pieces of
  ``benchmarks/storage.py``);
- **scale**: the cost of one redemption with 1,000 / 100,000 / 1,000,000 subjects stored, per
  backend (memory, SQLite, PostgreSQL, Redis);
- **footprint**: bytes per live code in ``MemoryStorage`` (tracemalloc) and per stored code in
  SQLite (pages after ``VACUUM``).

It prints a table and the targets (reported, never enforced), and writes a JSON file and a PNG
plot (``benchmarks/results/latest.json`` and ``latest.png``; with ``--quick``, ``quick.json`` and
``quick.png``). ``--quick`` (CI's smoke run) uses small counts and finishes in well under a
minute. A server that does not answer, or a peer that is not installed, is skipped with the
reason printed: the run still succeeds.

Usage: ``python benchmarks/run.py [--quick] [--cases PATTERNS] [--json PATH] [--plot PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import fnmatch
import functools
import gc
import hashlib
import hmac
import importlib
import importlib.metadata
import json
import os
import platform
import pstats
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import telecard_auth
from telecard_auth import (
    CodeIssuer,
    Commit,
    Keyring,
    ManualClock,
    MemoryStorage,
    Policy,
    ReceiptSigner,
    Subject,
    SystemClock,
)
from telecard_auth._storage.codec import decode_state
from telecard_auth._storage.sqlite import SQLiteStorage

try:
    from benchmarks import storage as bench
except ImportError:  # run as a script (python benchmarks/run.py): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import storage as bench

RESULTS = Path(__file__).resolve().parent / "results"
PROVIDER = bench.PROVIDER
SERVICE = bench.SERVICE
#: A code is valid for four hours under the default policy; the peers' tokens get the same.
TOKEN_SECONDS = 4 * 3600
#: Rotating secrets and users in the peer cases, so that no one object is always hot.
PEER_POOL = 256
#: A peer whose verification fails more often than this (TOTP at a 30 s boundary) is broken.
PEER_FAILURE_SHARE = 0.01
#: Targets: reported, not enforced.
TARGET_MEMORY_RATIO = 2.0
TARGET_BACKEND_RATIO = 1.3
TARGET_SCALE_RATIO = 1.2
TARGET_BYTES_PER_CODE = 400.0
REAL_BACKENDS = ("sqlite-full", "sqlite-normal", "redis", "postgres")
SCALE_BACKENDS = ("memory", "sqlite", "postgres", "redis")
REDIS_BATCH = 5_000
KILO = 1_000
MEGA = 1_000_000


@dataclass(frozen=True)
class Config:
    """How long and how often to measure."""

    name: str
    #: Rounds and seconds per round of the core and peer cases.
    core_rounds: int
    core_round_seconds: float
    core_min_ops: int
    core_max_ops: int
    #: The storage benchmark's settings for the backend cases (rounds, seconds, pair bounds).
    backend: bench.Settings
    variants: tuple[str, ...]
    scale_sizes: tuple[int, ...]
    scale_rounds: int
    scale_batch: int
    footprint_codes: int


FULL = Config(
    name="full",
    core_rounds=15,
    core_round_seconds=0.3,
    core_min_ops=50,
    core_max_ops=500_000,
    backend=bench.Settings(
        rounds=9,
        round_seconds=0.5,
        min_pairs=20,
        max_pairs=20_000,
        scale_small=1_000,
        scale_large=1_000_000,
        scale_rounds=11,
        scale_batch=400,
        min_pairs_per_task=8,
    ),
    variants=bench.VARIANTS,
    scale_sizes=(1_000, 100_000, 1_000_000),
    scale_rounds=11,
    scale_batch=400,
    footprint_codes=100_000,
)
QUICK = Config(
    name="quick",
    core_rounds=5,
    core_round_seconds=0.04,
    core_min_ops=20,
    core_max_ops=20_000,
    backend=bench.Settings(
        rounds=3,
        round_seconds=0.06,
        min_pairs=5,
        max_pairs=2_000,
        scale_small=1_000,
        scale_large=30_000,
        scale_rounds=3,
        scale_batch=100,
        min_pairs_per_task=2,
    ),
    variants=("new-subject",),
    scale_sizes=(1_000, 10_000, 30_000),
    scale_rounds=3,
    scale_batch=100,
    footprint_codes=10_000,
)


# --- results ----------------------------------------------------------------------------------


@dataclass
class Entry:
    """One case, measured: what ``latest.json`` lists."""

    case: str
    group: str
    unit: str
    ops_per_s: float | None
    ratio_to_floor: float | None
    floor_case: str | None = None
    ratio_min: float | None = None
    ratio_max: float | None = None
    ops_per_s_min: float | None = None
    ops_per_s_max: float | None = None
    rounds: int | None = None
    ops_per_round: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The entry as a flat JSON object, floats rounded."""
        data: dict[str, Any] = {
            "case": self.case,
            "ops_per_s": _round(self.ops_per_s, 1),
            "ratio_to_floor": _round(self.ratio_to_floor, 3),
            "floor_case": self.floor_case,
            "ratio_min": _round(self.ratio_min, 3),
            "ratio_max": _round(self.ratio_max, 3),
            "ops_per_s_min": _round(self.ops_per_s_min, 1),
            "ops_per_s_max": _round(self.ops_per_s_max, 1),
            "group": self.group,
            "unit": self.unit,
            "rounds": self.rounds,
            "ops_per_round": self.ops_per_round,
            "note": self.note,
        }
        data.update(self.extra)
        return data


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Run:
    """Everything one run collects."""

    entries: list[Entry] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    profiles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def skip(self, what: str, reason: str) -> None:
        """Record and print why ``what`` is not measured."""
        reason = " ".join(reason.split())
        print(f"  {what}: skipped, {reason}", flush=True)
        self.skipped.append({"case": what, "reason": reason})


class Selection:
    """The ``--cases`` filter: comma-separated patterns (fnmatch, or a prefix up to a ``/``)."""

    def __init__(self, patterns: str | None) -> None:
        self.patterns = [p.strip() for p in (patterns or "").split(",") if p.strip()]

    def wants(self, case: str) -> bool:
        """Whether ``case`` is selected (everything is, without patterns)."""
        if not self.patterns:
            return True
        return any(
            fnmatch.fnmatchcase(case, pattern) or case.startswith(pattern.rstrip("/") + "/")
            for pattern in self.patterns
        )

    def any(self, cases: Sequence[str]) -> bool:
        """Whether any of ``cases`` is selected."""
        return any(self.wants(case) for case in cases)


@dataclass
class Context:
    """What every part of a run shares."""

    run: Run
    selection: Selection
    config: Config
    folder: Path
    keyring: Keyring
    citizens: bench.Citizens


# --- interleaved rounds -----------------------------------------------------------------------


@dataclass
class Side:
    """One case in a rotation: ``run(n)`` does ``n`` operations and returns the timed seconds."""

    case: str
    group: str
    unit: str
    run: Callable[[int], float]
    floor: str | None = None
    note: str = ""
    ops: int = 0
    seconds: list[float] = field(default_factory=list)


def calibrate(side: Side, seconds: float, least: int, most: int) -> int:
    """Operations per round for ``side``: what it does in ``seconds``, within the bounds."""
    side.run(least)  # warm-up: caches, lazy imports, first allocations
    done, spent, batch = 0, 0.0, least
    while spent < seconds / 2:
        spent += side.run(batch)
        done += batch
        batch = min(batch * 2, most)
    return max(least, min(most, int(done / spent * seconds)))


def rotate(sides: Sequence[Side], rounds: int) -> None:
    """``rounds`` rounds of every side, the order rotating by one each round."""
    for side in sides:
        side.seconds.clear()
    for index in range(rounds):
        for offset in range(len(sides)):
            side = sides[(index + offset) % len(sides)]
            gc.collect()
            side.seconds.append(side.run(side.ops))


def summarize(sides: Sequence[Side]) -> list[Entry]:
    """Medians and spreads; each ratio is the median of per-round ratios to the side's floor."""
    by_case = {side.case: side for side in sides}
    entries = []
    for side in sides:
        rates = [side.ops / value for value in side.seconds]
        ratios: list[float] | None = None
        if side.floor is not None:
            floor = by_case[side.floor]
            ratios = [
                (mine / side.ops) / (base / floor.ops)
                for mine, base in zip(side.seconds, floor.seconds, strict=True)
            ]
        elif side.case.endswith("floor"):
            ratios = [1.0] * len(rates)
        entries.append(
            Entry(
                case=side.case,
                group=side.group,
                unit=side.unit,
                ops_per_s=statistics.median(rates),
                ratio_to_floor=None if ratios is None else statistics.median(ratios),
                floor_case=side.floor if side.floor is not None else side.case,
                ratio_min=None if ratios is None else min(ratios),
                ratio_max=None if ratios is None else max(ratios),
                ops_per_s_min=min(rates),
                ops_per_s_max=max(rates),
                rounds=len(rates),
                ops_per_round=side.ops,
                note=side.note,
                extra={"per_round_ops_per_s": [round(rate, 1) for rate in rates]},
            )
        )
    return entries


# --- core: the floors and the library on memory -----------------------------------------------


class CoreFloor:
    """The bare minimum of issue + redeem in pure Python, written inline; and with a receipt."""

    def __init__(self) -> None:
        self.key = secrets.token_bytes(32)
        self.signing_key = Ed25519PrivateKey.generate()
        self.store: dict[bytes, bytes] = {}
        self._next = 0

    def subjects(self, count: int) -> list[bytes]:
        """``count`` subject identifiers never used before in this run."""
        first, self._next = self._next, self._next + count
        return [f"1{index:09d}".encode() for index in range(first, first + count)]

    def unsigned(self, count: int) -> float:
        """Seconds for ``count`` pairs: a code, its HMAC stored, then popped and compared."""
        subjects = self.subjects(count)
        key, store, randbelow = self.key, self.store, secrets.randbelow
        digest, compare, sha256 = hmac.digest, hmac.compare_digest, hashlib.sha256
        start = time.perf_counter()
        for subject in subjects:
            code = f"{randbelow(100_000_000):08d}"
            store[subject] = digest(key, subject + code.encode(), sha256)
            if not compare(digest(key, subject + code.encode(), sha256), store.pop(subject)):
                raise bench.FloorFailed(subject.decode())
        return time.perf_counter() - start

    def signed(self, count: int) -> float:
        """``unsigned``, plus one Ed25519 signature over the redemption per pair."""
        subjects = self.subjects(count)
        key, store, randbelow = self.key, self.store, secrets.randbelow
        digest, compare, sha256 = hmac.digest, hmac.compare_digest, hashlib.sha256
        sign = self.signing_key.sign
        start = time.perf_counter()
        for subject in subjects:
            code = f"{randbelow(100_000_000):08d}"
            store[subject] = digest(key, subject + code.encode(), sha256)
            if not compare(digest(key, subject + code.encode(), sha256), store.pop(subject)):
                raise bench.FloorFailed(subject.decode())
            sign(subject + b":" + code.encode())
        return time.perf_counter() - start


def library_sides(keyring: Keyring, citizens: bench.Citizens) -> list[Side]:
    """``CodeIssuer`` on ``MemoryStorage``, default policy, without and with a signed receipt."""
    sides = []
    for case, signer, floor in (
        ("core/telecard-auth", None, "core/floor"),
        ("core/telecard-auth+receipt", ReceiptSigner.generate(), "core/floor+receipt"),
    ):
        issuer = CodeIssuer(
            MemoryStorage(), keyring=keyring, policy=Policy(), clock=ManualClock(), signer=signer
        )
        (subject,) = citizens.take(1)
        issued = issuer.issue(subject, PROVIDER)
        redemption = issuer.redeem(subject, PROVIDER, issued.code, SERVICE)
        if (redemption.receipt is not None) != (signer is not None):
            raise RuntimeError(f"{case}: the receipt is not what the signer implies")
        sides.append(
            Side(
                case=case,
                group="core",
                unit="issue+redeem pairs",
                run=functools.partial(
                    bench.library_round, issuer, citizens, returning=False, samples=None
                ),
                floor=floor,
                note="CodeIssuer.issue + redeem, MemoryStorage, default Policy, ManualClock, a"
                " fresh subject per pair" + (", Ed25519 receipt" if signer else ""),
            )
        )
    return sides


# --- peers ------------------------------------------------------------------------------------


class PeerMissing(Exception):
    """A peer library is not installed: its case is skipped."""


def _import(name: str) -> Any:
    """Import an optional package by name (typed ``Any``: the peers ship no stubs we need)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise PeerMissing(
            f"{name} is not installed ({error}); pip install -e '.[bench]'"
        ) from error


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _check_peer(case: str, failures: int, count: int) -> None:
    if failures > max(1, count * PEER_FAILURE_SHARE):
        raise RuntimeError(f"{case}: {failures} of {count} verifications failed")


def pyotp_side() -> Side:
    """pyotp: ``TOTP.now()`` then ``TOTP.verify()``, one secret per (pooled) customer."""
    pyotp = _import("pyotp")
    totps = [pyotp.TOTP(pyotp.random_base32()) for _ in range(PEER_POOL)]

    def run(count: int) -> float:
        items = [totps[index % PEER_POOL] for index in range(count)]
        failures = 0
        start = time.perf_counter()
        for totp in items:
            if not totp.verify(totp.now()):
                failures += 1  # now() and verify() fell on either side of a 30 s step
        elapsed = time.perf_counter() - start
        _check_peer("pyotp", failures, count)
        return elapsed

    return Side(
        case="peer/pyotp-totp",
        group="peer",
        unit="now+verify",
        run=run,
        floor="core/floor",
        note=f"pyotp {_version('pyotp')}: TOTP(secret).now() + verify(); stateless, no storage,"
        " not one-time",
    )


@dataclass(frozen=True)
class _DjangoUser:
    """The fields ``PasswordResetTokenGenerator`` reads from a user: no model, no database."""

    pk: int
    password: str
    last_login: datetime
    email: str

    @staticmethod
    def get_email_field_name() -> str:
        return "email"


def django_side() -> Side:
    """Django: ``PasswordResetTokenGenerator.make_token`` then ``check_token``, no database."""
    conf = _import("django.conf")
    if not conf.settings.configured:
        conf.settings.configure(
            SECRET_KEY=secrets.token_urlsafe(50), PASSWORD_RESET_TIMEOUT=TOKEN_SECONDS, USE_TZ=True
        )
    tokens = _import("django.contrib.auth.tokens")
    generator = tokens.PasswordResetTokenGenerator()
    login = datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
    users = [
        _DjangoUser(
            pk=index,
            password="pbkdf2_sha256$1000000$" + secrets.token_urlsafe(16),
            last_login=login,
            email=f"customer{index}@example.com",
        )
        for index in range(PEER_POOL)
    ]

    def run(count: int) -> float:
        items = [users[index % PEER_POOL] for index in range(count)]
        make, check = generator.make_token, generator.check_token
        failures = 0
        start = time.perf_counter()
        for user in items:
            if not check(user, make(user)):
                failures += 1
        elapsed = time.perf_counter() - start
        _check_peer("django", failures, count)
        return elapsed

    return Side(
        case="peer/django-password-reset",
        group="peer",
        unit="make+check",
        run=run,
        floor="core/floor",
        note=f"Django {_version('django')}: PasswordResetTokenGenerator make_token +"
        " check_token (SHA-256 HMAC), settings configured in-process, no database",
    )


def itsdangerous_side() -> Side:
    """itsdangerous: ``TimestampSigner.sign`` then ``unsign`` with a four-hour ``max_age``."""
    module = _import("itsdangerous")
    signer = module.TimestampSigner(secrets.token_bytes(32), salt="telecard-bench")
    values = [f"1{index:09d}:stc".encode() for index in range(PEER_POOL)]

    def run(count: int) -> float:
        items = [values[index % PEER_POOL] for index in range(count)]
        sign, unsign = signer.sign, signer.unsign
        start = time.perf_counter()
        for value in items:
            if unsign(sign(value), max_age=TOKEN_SECONDS) != value:
                raise RuntimeError("itsdangerous: the value did not come back")
        return time.perf_counter() - start

    return Side(
        case="peer/itsdangerous-timestamp",
        group="peer",
        unit="sign+unsign",
        run=run,
        floor="core/floor",
        note=f"itsdangerous {_version('itsdangerous')}: TimestampSigner sign + unsign"
        " (max_age 4 h); stateless, not one-time",
    )


CORE_CASES = (
    "core/floor",
    "core/floor+receipt",
    "core/telecard-auth",
    "core/telecard-auth+receipt",
)
PEER_CASES = ("peer/pyotp-totp", "peer/django-password-reset", "peer/itsdangerous-timestamp")
PEERS: dict[str, Callable[[], Side]] = {
    "peer/pyotp-totp": pyotp_side,
    "peer/django-password-reset": django_side,
    "peer/itsdangerous-timestamp": itsdangerous_side,
}


def run_core(ctx: Context) -> None:
    """The floors, the library on memory and the peers, all in one rotation."""
    run, selection, config = ctx.run, ctx.selection, ctx.config
    keyring, citizens = ctx.keyring, ctx.citizens
    if not selection.any(CORE_CASES + PEER_CASES):
        return
    print("core and peers", flush=True)
    floor = CoreFloor()
    candidates = [
        Side(
            case="core/floor",
            group="core",
            unit="issue+redeem pairs",
            run=floor.unsigned,
            note="inline: secrets 8-digit code, HMAC-SHA256 x2, dict insert + pop, compare_digest",
        ),
        Side(
            case="core/floor+receipt",
            group="core",
            unit="issue+redeem pairs",
            run=floor.signed,
            floor="core/floor",
            note="core/floor + one Ed25519 signature (cryptography); its ratio is to core/floor",
        ),
        *library_sides(keyring, citizens),
    ]
    for case, make in PEERS.items():
        if selection.wants(case):
            try:
                candidates.append(make())
            except PeerMissing as error:
                run.skip(case, str(error))
    wanted = {side.case for side in candidates if selection.wants(side.case)}
    wanted |= {side.floor for side in candidates if side.case in wanted and side.floor}
    wanted |= {"core/floor"} if "core/floor+receipt" in wanted else set()
    sides = [side for side in candidates if side.case in wanted]
    for side in sides:
        side.ops = calibrate(
            side, config.core_round_seconds, config.core_min_ops, config.core_max_ops
        )
    rotate(sides, config.core_rounds)
    for entry in summarize(sides):
        run.entries.append(entry)
        _progress(entry)


def _progress(entry: Entry) -> None:
    ratio = "" if entry.ratio_to_floor is None else f"  x{entry.ratio_to_floor:.2f}"
    rate = "" if entry.ops_per_s is None else f"{entry.ops_per_s:12,.0f}/s"
    print(f"  {entry.case:42} {rate}{ratio}", flush=True)


def profile_memory(run: Run, keyring: Keyring, citizens: bench.Citizens, count: int) -> None:
    """cProfile of issue + redeem on memory, without and with a receipt: the top own costs."""
    for case, signer in (
        ("core/telecard-auth", None),
        ("core/telecard-auth+receipt", ReceiptSigner.generate()),
    ):
        issuer = CodeIssuer(
            MemoryStorage(), keyring=keyring, policy=Policy(), clock=ManualClock(), signer=signer
        )
        bench.library_round(issuer, citizens, min(count, 500), returning=False)  # warm-up
        subjects = citizens.take(count)
        profiler = cProfile.Profile()
        profiler.enable()
        for subject in subjects:
            bench.pair(issuer, subject)
        profiler.disable()
        run.profiles[case] = bench._top_functions(pstats.Stats(profiler), count)


# --- backends ---------------------------------------------------------------------------------


def backend_cases(name: str, variants: Sequence[str]) -> list[str]:
    """The case names of one backend: library, adapter and floor, per variant."""
    cases = []
    for variant in variants:
        middle = "" if variant == "new-subject" else "returning/"
        cases += [f"backend/{name}/{middle}{side}" for side in ("library", "adapter", "floor")]
    return cases


def run_backends(ctx: Context) -> None:
    """Per backend: the library, the adapter and the raw driver, interleaved (storage.py's)."""
    run, selection, config = ctx.run, ctx.selection, ctx.config
    folder, keyring, citizens = ctx.folder, ctx.keyring, ctx.citizens
    names = [name for name in bench.BACKENDS if selection.any(backend_cases(name, config.variants))]
    if not names:
        return
    print("backends: library vs raw-driver floor", flush=True)
    documents = bench.capture_documents(keyring, citizens)
    for name in names:
        try:
            backend = bench.make_backend(name, folder, documents, keyring, postgres_pools=())
        except (bench.Unavailable, ImportError) as error:
            run.skip(f"backend/{name}", str(error))
            continue
        try:
            issuer = CodeIssuer(
                backend.storage, keyring=keyring, policy=Policy(), clock=ManualClock()
            )
            count = bench.calibrate(issuer, citizens, config.backend)
            sides = []
            for variant in config.variants:
                returning = variant == "returning-subject"
                backend.floor.timed_round(config.backend.min_pairs, returning=returning)  # warm
                library, adapter, floor = backend_cases(name, [variant])
                unit = f"issue+redeem pairs ({variant})"
                sides += [
                    Side(
                        library,
                        "backend",
                        unit,
                        functools.partial(
                            bench.library_round, issuer, citizens, returning=returning, samples=None
                        ),
                        floor=floor,
                        note=f"CodeIssuer on {name}, {variant}",
                    ),
                    Side(
                        adapter,
                        "backend",
                        unit,
                        _adapter_runner(backend.storage, documents, returning=returning),
                        floor=floor,
                        note="the storage's load/commit with the core's commits pre-built",
                    ),
                    Side(
                        floor,
                        "backend",
                        unit,
                        functools.partial(backend.floor.timed_round, returning=returning),
                        note=_floor_note(name),
                    ),
                ]
            for side in sides:
                side.ops = count
            rotate(sides, config.backend.rounds)
            for entry in summarize(sides):
                run.entries.append(entry)
                _progress(entry)
        finally:
            backend.cleanup()


def _adapter_runner(
    storage: Any, documents: bench.Documents, *, returning: bool
) -> Callable[[int], float]:
    def run(count: int) -> float:
        return bench.adapter_round(storage, documents, count, returning=returning)

    return run


def _floor_note(name: str) -> str:
    if name == "memory":
        return "dict + lock, HMAC-SHA256 x2, secrets draw (storage.py's MemoryFloor)"
    if name == "redis":
        return "redis-py: HMGET, EVALSHA commit.lua, HMGET, EVALSHA, pre-built arguments"
    return "the raw driver: SELECT, INSERT, SELECT, UPDATE (the library's statements)"


# --- scale ------------------------------------------------------------------------------------


@dataclass
class ScaleTable:
    """One table of ``size`` stored subjects, with an issuer and the subjects it redeems for."""

    size: int
    issuer: CodeIssuer
    clock: ManualClock
    subjects: list[Subject]
    load_seconds: float
    stored_bytes: int | None = None


def _size_label(size: int) -> str:
    if size >= MEGA and size % MEGA == 0:
        return f"{size // MEGA}M"
    if size >= KILO and size % KILO == 0:
        return f"{size // KILO}k"
    return str(size)


def scale_cases(backend: str, sizes: Sequence[int]) -> list[str]:
    """The case names of one backend's scale curve."""
    return [f"scale/{backend}/{_size_label(size)}" for size in sizes]


def _table(
    storage: Any,
    *,
    size: int,
    keyring: Keyring,
    citizens: bench.Citizens,
    batch: int,
    loaded: float,
) -> ScaleTable:
    clock = ManualClock()
    issuer = CodeIssuer(storage, keyring=keyring, policy=Policy(), clock=clock)
    return ScaleTable(size, issuer, clock, citizens.take(batch), loaded)


def _filler_commits(count: int, states: Sequence[tuple[int, bench.Write]]) -> Iterator[Commit]:
    """``count`` fresh subjects' commits of the mixed states, each decoded into its own objects.

    The stored version starts at 1 rather than the state's own; nothing measured depends on it.
    """
    for index, ref in enumerate(bench.fresh_refs(count)):
        version, write = states[index % len(states)]
        snapshot = decode_state(ref, version, write.incarnation, write.document, write.keep_until)
        yield Commit(
            subject_ref=ref,
            expected_version=0,
            incarnation=write.incarnation,
            identity=snapshot.identity,
            codes=snapshot.codes,
            failure_logs=snapshot.failure_logs,
            written_at=write.keep_until - timedelta(milliseconds=write.keep_ms),
            keep_until=write.keep_until,
        )


@contextlib.contextmanager
def memory_tables(
    sizes: Sequence[int],
    states: Sequence[tuple[int, bench.Write]],
    keyring: Keyring,
    citizens: bench.Citizens,
    batch: int,
) -> Iterator[list[ScaleTable]]:
    """``MemoryStorage`` holding the same mix of states, each decoded into its own snapshot."""
    tables = []
    for size in sizes:
        storage = MemoryStorage()
        start = time.perf_counter()
        for change in _filler_commits(size - batch, states):
            if not storage.commit(change):
                raise bench.FloorFailed(change.subject_ref)
        tables.append(
            _table(
                storage,
                size=size,
                keyring=keyring,
                citizens=citizens,
                batch=batch,
                loaded=time.perf_counter() - start,
            )
        )
    try:
        yield tables
    finally:
        tables.clear()
        gc.collect()


@contextlib.contextmanager
def sqlite_tables(
    sizes: Sequence[int],
    states: Sequence[tuple[int, bench.Write]],
    keyring: Keyring,
    citizens: bench.Citizens,
    batch: int,
    *,
    folder: Path,
) -> Iterator[list[ScaleTable]]:
    """One SQLite file per size (``synchronous=normal``), bulk-loaded as storage.py does."""
    tables, storages = [], []
    try:
        for size in sizes:
            path = folder / f"run-scale-{size}.db"
            storage = SQLiteStorage(path, synchronous="normal")
            storages.append(storage)
            storage.migrate()
            start = time.perf_counter()
            bulk = sqlite3.connect(path, isolation_level=None)
            try:
                bulk.execute("PRAGMA synchronous = OFF")
                bulk.execute("BEGIN")
                bulk.executemany(
                    "INSERT INTO telecard_subjects (subject_ref, version, incarnation,"
                    " keep_until, state) VALUES (?, ?, ?, ?, ?)",
                    bench._filler_rows(size - batch, states, micros_keep=True),
                )
                bulk.execute("COMMIT")
                bulk.execute("ANALYZE")
                bulk.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = bulk.execute("PRAGMA page_count").fetchone()[0]
                page_size = bulk.execute("PRAGMA page_size").fetchone()[0]
            finally:
                bulk.close()
            table = _table(
                storage,
                size=size,
                keyring=keyring,
                citizens=citizens,
                batch=batch,
                loaded=time.perf_counter() - start,
            )
            table.stored_bytes = pages * page_size
            tables.append(table)
        yield tables
    finally:
        for storage in storages:
            storage.close()
        for size in sizes:
            for suffix in ("", "-wal", "-shm"):
                (folder / f"run-scale-{size}.db{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def postgres_tables(
    sizes: Sequence[int],
    states: Sequence[tuple[int, bench.Write]],
    keyring: Keyring,
    citizens: bench.Citizens,
    batch: int,
) -> Iterator[list[ScaleTable]]:
    """One PostgreSQL schema per size, loaded with ``COPY`` then ``VACUUM ANALYZE``."""
    import psycopg  # noqa: PLC0415 - the client library is needed only for this backend
    from psycopg import sql  # noqa: PLC0415

    from telecard_auth._storage.postgres import PostgresStorage  # noqa: PLC0415

    drops: list[Callable[[], None]] = []
    storages: list[PostgresStorage] = []
    tables = []
    try:
        for size in sizes:
            schema, drop = bench._postgres_schema(bench.POSTGRES_URL)
            drops.append(drop)
            storage = PostgresStorage(bench.POSTGRES_URL, schema=schema)
            storages.append(storage)
            storage.migrate()
            table_name = sql.SQL("{}.telecard_subjects").format(sql.Identifier(schema))
            start = time.perf_counter()
            with psycopg.connect(bench.POSTGRES_URL) as connection:
                with (
                    connection.cursor() as cursor,
                    cursor.copy(
                        sql.SQL(
                            "COPY {} (subject_ref, version, incarnation, keep_until, state)"
                            " FROM STDIN"
                        ).format(table_name)
                    ) as copy,
                ):
                    for row in bench._filler_rows(size - batch, states, micros_keep=False):
                        copy.write_row(row)
                connection.commit()
                connection.autocommit = True
                connection.execute(sql.SQL("VACUUM ANALYZE {}").format(table_name))
                with contextlib.suppress(psycopg.Error):
                    connection.execute("CHECKPOINT")
                found = connection.execute(
                    "SELECT pg_total_relation_size(%s::regclass)",
                    (f'"{schema}".telecard_subjects',),
                ).fetchone()
            table = _table(
                storage,
                size=size,
                keyring=keyring,
                citizens=citizens,
                batch=batch,
                loaded=time.perf_counter() - start,
            )
            table.stored_bytes = None if found is None else int(found[0])
            tables.append(table)
        yield tables
    finally:
        for storage in storages:
            storage.close()
        for drop in drops:
            drop()


def _redis_url(database: int) -> str:
    parts = urlsplit(bench.REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _empty_databases(count: int) -> list[int]:
    """``count`` Redis logical databases other than the URL's that hold no key, or Unavailable."""
    import redis  # noqa: PLC0415 - the client library is needed only for this backend

    probe = redis.Redis.from_url(bench.REDIS_URL, socket_connect_timeout=3)
    databases: list[int] = []
    try:
        probe.ping()
        own = int(probe.connection_pool.connection_kwargs.get("db", 0))
        for database in range(15, 0, -1):
            if database == own or len(databases) == count:
                continue
            client = redis.Redis.from_url(_redis_url(database))
            try:
                if client.dbsize() == 0:
                    databases.append(database)
            except redis.ResponseError:
                break
            finally:
                client.close()
    except redis.RedisError as error:
        raise bench.Unavailable(f"Redis at {bench.REDIS_URL}: {error}") from error
    finally:
        probe.close()
    if len(databases) < count:
        raise bench.Unavailable(f"Redis has fewer than {count} empty logical databases")
    return databases


def _execute(pipe: Any) -> None:
    """Send a pipeline of commits; each must have landed (the subjects are fresh)."""
    if not all(pipe.execute()):
        raise bench.FloorFailed("a pipelined filler commit did not land")


def _unlink_prefix(client: Any, prefix: str) -> None:
    """Delete every key under ``prefix`` in ``client``'s database, in batches."""
    doomed: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=REDIS_BATCH):
        doomed.append(key)
        if len(doomed) >= REDIS_BATCH:
            client.unlink(*doomed)
            doomed = []
    if doomed:
        client.unlink(*doomed)


@contextlib.contextmanager
def redis_tables(
    sizes: Sequence[int],
    states: Sequence[tuple[int, bench.Write]],
    keyring: Keyring,
    citizens: bench.Citizens,
    batch: int,
) -> Iterator[list[ScaleTable]]:
    """One empty Redis logical database per size (a keyspace is one table), under a fresh prefix.

    The subjects go in through the storage's own commit script, pipelined (so they carry the
    storage's expiry and vanish by themselves if the run dies), and are deleted by prefix
    afterwards; databases that hold anything are not used.
    """
    import redis  # noqa: PLC0415 - the client library is needed only for this backend

    from telecard_auth._storage.redis import RedisStorage  # noqa: PLC0415

    databases = _empty_databases(len(sizes))
    prefix = "benchscale" + uuid.uuid4().hex[:10]
    clients: list[Any] = []
    tables = []
    try:
        for size, database in zip(sizes, databases, strict=False):
            client = redis.Redis.from_url(_redis_url(database))
            clients.append(client)
            storage = RedisStorage(client, prefix=prefix)
            storage.migrate()
            before = int(client.info("memory")["used_memory"])
            start = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for index, change in enumerate(_filler_commits(size - batch, states)):
                # The storage's own commit script and arguments, pipelined.
                storage._commit(
                    keys=[storage.key(change.subject_ref)],
                    args=storage._arguments(change),
                    client=pipe,
                )
                if index % REDIS_BATCH == REDIS_BATCH - 1:
                    _execute(pipe)
            _execute(pipe)
            table = _table(
                storage,
                size=size,
                keyring=keyring,
                citizens=citizens,
                batch=batch,
                loaded=time.perf_counter() - start,
            )
            table.stored_bytes = int(client.info("memory")["used_memory"]) - before
            tables.append(table)
        yield tables
    finally:
        for client in clients:
            _unlink_prefix(client, prefix)
            client.close()


def measure_scale(
    backend: str, tables: Sequence[ScaleTable], rounds: int, note: str
) -> list[Entry]:
    """Redemption cost per table, the tables rotating round by round; ratios to the smallest."""
    for table in tables:  # warm-up: caches, prepared statements
        bench._scale_round(table.issuer, table.clock, table.subjects)
    micros: list[list[float]] = [[] for _ in tables]
    for index in range(rounds):
        for offset in range(len(tables)):
            side = (index + offset) % len(tables)
            table = tables[side]
            micros[side].append(bench._scale_round(table.issuer, table.clock, table.subjects))
    cases = scale_cases(backend, [table.size for table in tables])
    entries = []
    for table, case, timings in zip(tables, cases, micros, strict=True):
        ratios = [mine / base for mine, base in zip(timings, micros[0], strict=True)]
        rates = [1e6 / value for value in timings]
        extra: dict[str, Any] = {
            "stored_subjects": table.size,
            "redeem_us": round(statistics.median(timings), 2),
            "load_seconds": round(table.load_seconds, 1),
        }
        if table.stored_bytes is not None:
            extra["stored_bytes"] = table.stored_bytes
            extra["stored_bytes_per_subject"] = round(table.stored_bytes / table.size, 1)
        entries.append(
            Entry(
                case=case,
                group="scale",
                unit="redemptions",
                ops_per_s=statistics.median(rates),
                ratio_to_floor=statistics.median(ratios),
                floor_case=cases[0],
                ratio_min=min(ratios),
                ratio_max=max(ratios),
                ops_per_s_min=min(rates),
                ops_per_s_max=max(rates),
                rounds=rounds,
                ops_per_round=len(table.subjects),
                note=note,
                extra=extra,
            )
        )
    return entries


SCALE_NOTES = {
    "memory": "MemoryStorage; each stored subject decoded into its own snapshot",
    "sqlite": "SQLiteStorage synchronous=normal (fsync latency would hide the table's cost)",
    "postgres": "PostgresStorage, COPY-loaded, VACUUM ANALYZE; the server's synchronous_commit",
    "redis": "RedisStorage; one empty logical database per size, loaded by its commit script",
}


def run_scale(ctx: Context) -> None:
    """Per backend: one redemption's cost with each table size stored."""
    run, selection, config = ctx.run, ctx.selection, ctx.config
    folder, keyring, citizens = ctx.folder, ctx.keyring, ctx.citizens
    backends = [b for b in SCALE_BACKENDS if selection.any(scale_cases(b, config.scale_sizes))]
    if not backends:
        return
    sizes = ", ".join(f"{size:,}" for size in config.scale_sizes)
    print(f"scale: redemption with {sizes} subjects stored", flush=True)
    states = bench.filler_states(keyring, citizens, 512)
    common = (config.scale_sizes, states, keyring, citizens, config.scale_batch)
    makers: dict[str, Callable[[], contextlib.AbstractContextManager[list[ScaleTable]]]] = {
        "memory": lambda: memory_tables(*common),
        "sqlite": lambda: sqlite_tables(*common, folder=folder),
        "postgres": lambda: postgres_tables(*common),
        "redis": lambda: redis_tables(*common),
    }
    for backend in backends:
        try:
            with makers[backend]() as tables:
                entries = measure_scale(backend, tables, config.scale_rounds, SCALE_NOTES[backend])
        except (bench.Unavailable, ImportError) as error:
            run.skip(f"scale/{backend}", str(error))
            continue
        for entry in entries:
            run.entries.append(entry)
            print(
                f"  {entry.case:24} {entry.extra['redeem_us']:9.1f} us/redemption"
                f"  x{entry.ratio_to_floor or 0:.2f}  (loaded in {entry.extra['load_seconds']} s)",
                flush=True,
            )


# --- footprint --------------------------------------------------------------------------------


def _rss_bytes() -> int | None:
    """The process's resident set size, from ``/proc/self/statm`` (Linux), or None."""
    try:
        resident = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE")


def _issue_all(issuer: CodeIssuer, subjects: Sequence[Subject]) -> None:
    for subject in subjects:
        issuer.issue(subject, PROVIDER)


def footprint_memory(keyring: Keyring, citizens: bench.Citizens, count: int) -> Entry:
    """Bytes per live code in ``MemoryStorage``: ``count`` subjects each issued one code.

    tracemalloc counts what the storage keeps (snapshots, records, times, strings, the dict),
    measured after a collection; the RSS growth of a second, untraced run is given beside it.
    """
    subjects = citizens.take(count)
    issuer = CodeIssuer(MemoryStorage(), keyring=keyring, policy=Policy(), clock=SystemClock())
    _issue_all(issuer, citizens.take(10))  # warm-up: lazy state outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _issue_all(issuer, subjects)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    traced = (after - before) / count
    del issuer
    gc.collect()
    subjects = citizens.take(count)
    issuer = CodeIssuer(MemoryStorage(), keyring=keyring, policy=Policy(), clock=SystemClock())
    _issue_all(issuer, citizens.take(10))
    gc.collect()
    rss_before = _rss_bytes()
    _issue_all(issuer, subjects)
    gc.collect()
    rss_after = _rss_bytes()
    rss = None if rss_before is None or rss_after is None else (rss_after - rss_before) / count
    del issuer
    gc.collect()
    return Entry(
        case="footprint/memory",
        group="footprint",
        unit="bytes per live code",
        ops_per_s=None,
        ratio_to_floor=None,
        floor_case=None,
        note=f"tracemalloc growth over {count:,} subjects, each with one live code issued by"
        " CodeIssuer (SystemClock, so each code has times of its own), after gc.collect();"
        " rss_bytes_per_code: RSS growth of a second, untraced run",
        extra={
            "bytes_per_code": round(traced, 1),
            "rss_bytes_per_code": None if rss is None else round(rss, 1),
            "codes": count,
        },
    )


def _sqlite_pages(path: Path, *, vacuum: bool) -> int:
    """The database's size in bytes (``page_count * page_size``), after ``VACUUM`` if asked."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if vacuum:
            connection.execute("VACUUM")
        pages = int(connection.execute("PRAGMA page_count").fetchone()[0])
        return pages * int(connection.execute("PRAGMA page_size").fetchone()[0])
    finally:
        connection.close()


def footprint_sqlite(keyring: Keyring, citizens: bench.Citizens, count: int, folder: Path) -> Entry:
    """Bytes per stored code in SQLite: ``count`` codes issued by the library, then ``VACUUM``.

    The empty schema's own pages (measured the same way) are taken off before dividing.
    """
    empty_path, path = folder / "footprint-empty.db", folder / "footprint.db"
    for target in (empty_path, path):
        storage = SQLiteStorage(target, synchronous="normal")
        storage.migrate()
        storage.close()
    empty = _sqlite_pages(empty_path, vacuum=True)
    storage = SQLiteStorage(path, synchronous="normal")
    try:
        issuer = CodeIssuer(storage, keyring=keyring, policy=Policy(), clock=SystemClock())
        start = time.perf_counter()
        _issue_all(issuer, citizens.take(count))
        seconds = time.perf_counter() - start
    finally:
        storage.close()
    total = _sqlite_pages(path, vacuum=True)
    connection = sqlite3.connect(path)
    try:
        document = connection.execute("SELECT avg(length(state)) FROM telecard_subjects").fetchone()
    finally:
        connection.close()
    return Entry(
        case="footprint/sqlite",
        group="footprint",
        unit="bytes per stored code",
        ops_per_s=None,
        ratio_to_floor=None,
        floor_case=None,
        note=f"(page_count*page_size after VACUUM - the empty schema's) / {count:,} subjects,"
        " each with one live code issued by CodeIssuer with SystemClock (primary key and"
        " keep_until index included)",
        extra={
            "bytes_per_code": round((total - empty) / count, 1),
            "database_bytes": total,
            "empty_schema_bytes": empty,
            "state_document_bytes": None if document is None else round(float(document[0]), 1),
            "codes": count,
            "issue_seconds": round(seconds, 1),
        },
    )


def run_footprint(ctx: Context) -> None:
    """Bytes per live code: in memory and on disk."""
    run, selection, config = ctx.run, ctx.selection, ctx.config
    folder, keyring, citizens = ctx.folder, ctx.keyring, ctx.citizens
    if not selection.any(["footprint/memory", "footprint/sqlite"]):
        return
    print(f"footprint: {config.footprint_codes:,} subjects with one live code each", flush=True)
    count = config.footprint_codes
    measures: list[tuple[str, Callable[[], Entry]]] = [
        ("footprint/memory", lambda: footprint_memory(keyring, citizens, count)),
        ("footprint/sqlite", lambda: footprint_sqlite(keyring, citizens, count, folder)),
    ]
    for case, measure in measures:
        if selection.wants(case):
            entry = measure()
            run.entries.append(entry)
            print(f"  {case:42} {entry.extra['bytes_per_code']:10,.1f} bytes per code", flush=True)


# --- targets, machine, output -----------------------------------------------------------------


def targets(entries: Sequence[Entry], config: Config) -> list[dict[str, Any]]:
    """Each target: the figure, the limit, and whether it is met (reported, not enforced)."""
    by_case = {entry.case: entry for entry in entries}
    checks: list[tuple[str, str, float, str]] = [
        ("memory issue+redeem within 2x the floor", "core/telecard-auth", TARGET_MEMORY_RATIO, ""),
        (
            "memory issue+redeem with receipt within 2x the floor+receipt",
            "core/telecard-auth+receipt",
            TARGET_MEMORY_RATIO,
            "",
        ),
    ]
    for name in REAL_BACKENDS:
        for variant in config.variants:
            case = backend_cases(name, [variant])[0]
            checks.append(
                (
                    f"{name} within 1.3x its raw-driver floor ({variant})",
                    case,
                    TARGET_BACKEND_RATIO,
                    "",
                )
            )
    largest, smallest = config.scale_sizes[-1], config.scale_sizes[0]
    caveat = "" if largest >= MEGA else f"quick run: {largest:,} stored, not 1,000,000"
    for backend in SCALE_BACKENDS:
        checks.append(
            (
                f"{backend}: redemption at {_size_label(largest)} within 1.2x of"
                f" {_size_label(smallest)}",
                scale_cases(backend, [largest])[0],
                TARGET_SCALE_RATIO,
                caveat,
            )
        )
    checks.append(
        (
            "memory storage under 400 bytes per live code",
            "footprint/memory",
            TARGET_BYTES_PER_CODE,
            "",
        )
    )
    verdicts = []
    for target, case, limit, note in checks:
        entry = by_case.get(case)
        if entry is None:
            value = None
        elif case.startswith("footprint/"):
            value = float(entry.extra["bytes_per_code"])
        else:
            value = entry.ratio_to_floor
        verdicts.append(
            {
                "target": target,
                "case": case,
                "value": _round(value, 4),
                "limit": limit,
                "met": None if value is None else value <= limit,
                "note": note if value is not None else "not measured in this run",
            }
        )
    return verdicts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "telecard_auth": telecard_auth.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sqlite": sqlite3.sqlite_version,
        "packages": {
            name: _version(name)
            for name in (
                "cryptography",
                "attrs",
                "redis",
                "psycopg",
                "pyotp",
                "django",
                "itsdangerous",
                "matplotlib",
            )
        },
        "load_average_at_start": _load_average(),
        "ci": os.environ.get("CI") == "true",
    }


def print_table(entries: Sequence[Entry]) -> None:
    """The figures as one plain table."""
    header = (
        f"{'case':42} {'ops/s':>12} {'(min-max)':>21} {'ratio':>7} {'(min-max)':>13}"
        f"  {'to floor':<28}"
    )
    print()
    print(header)
    print("-" * len(header))
    group = None
    for entry in entries:
        if entry.group != group and group is not None:
            print()
        group = entry.group
        if entry.ops_per_s is None:
            bytes_per_code = entry.extra.get("bytes_per_code")
            print(f"{entry.case:42} {bytes_per_code:>12,.1f} bytes per code")
            continue
        spread = f"{entry.ops_per_s_min or 0:,.0f}-{entry.ops_per_s_max or 0:,.0f}"
        ratio = "" if entry.ratio_to_floor is None else f"{entry.ratio_to_floor:.2f}"
        ratio_spread = (
            ""
            if entry.ratio_min is None or entry.ratio_max is None
            else f"{entry.ratio_min:.2f}-{entry.ratio_max:.2f}"
        )
        floor = "" if entry.floor_case in (None, entry.case) else entry.floor_case
        print(
            f"{entry.case:42} {entry.ops_per_s:>12,.0f} {spread:>21} {ratio:>7}"
            f" {ratio_spread:>13}  {floor:<28}"
        )


def print_targets(verdicts: Sequence[dict[str, Any]]) -> None:
    """The targets, met or not (never enforced)."""
    print("\ntargets (reported, not enforced):")
    for verdict in verdicts:
        if verdict["met"] is None:
            state = "not measured"
            value = ""
        else:
            state = "met" if verdict["met"] else "NOT met"
            value = f"{verdict['value']:.2f} (limit {verdict['limit']:g})"
        note = f"  [{verdict['note']}]" if verdict["note"] and verdict["met"] is not None else ""
        print(f"  {state:12} {verdict['target']:62} {value}{note}")


def print_profiles(profiles: dict[str, list[dict[str, Any]]]) -> None:
    """The cProfile top own costs per pair."""
    for case, rows in profiles.items():
        print(f"\nprofile: {case}, own time per issue+redeem pair (under cProfile):")
        for row in rows:
            print(
                f"  {row['own_us_per_pair']:8.2f} us own {row['own_share']:6.1%}"
                f"  {row['cumulative_us_per_pair']:9.2f} us cum"
                f"  x{row['calls_per_pair']:<6} {row['function']}"
            )


PLOT_COLOURS = {
    "floor": "#9e9e9e",
    "library": "#1f77b4",
    "adapter": "#aec7e8",
    "peer": "#ff7f0e",
}


def _kind(entry: Entry) -> str:
    if entry.group == "peer":
        return "peer"
    if entry.case.endswith("floor") or "floor+" in entry.case:
        return "floor"
    if entry.case.endswith("adapter"):
        return "adapter"
    return "library"


def _plot_throughput(axes: Any, bars: Sequence[Entry], patch: Any) -> None:
    """Horizontal bars of ops/s per case (log scale), whiskers min-max, ratio labels."""
    if not bars:
        axes.set_axis_off()
        return
    positions = list(range(len(bars)))[::-1]
    rates = [entry.ops_per_s or 0.0 for entry in bars]
    errors = [
        [rate - (entry.ops_per_s_min or rate) for rate, entry in zip(rates, bars, strict=True)],
        [(entry.ops_per_s_max or rate) - rate for rate, entry in zip(rates, bars, strict=True)],
    ]
    axes.barh(
        positions,
        rates,
        xerr=errors,
        color=[PLOT_COLOURS[_kind(entry)] for entry in bars],
        error_kw={"elinewidth": 0.8, "capsize": 2},
    )
    axes.set_yticks(positions, [entry.case for entry in bars], fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("operations per second (median of rounds; whiskers min-max; log scale)")
    for position, rate, entry in zip(positions, rates, bars, strict=True):
        if entry.ratio_to_floor is not None and entry.floor_case not in (None, entry.case):
            edge = max(rate, entry.ops_per_s_max or rate)
            axes.text(
                edge * 1.12, position, f"x{entry.ratio_to_floor:.2f}", va="center", fontsize=6
            )
    axes.set_title("throughput by case (xN: time relative to the case's floor)", fontsize=9)
    handles = [patch(color=colour, label=label) for label, colour in PLOT_COLOURS.items()]
    axes.legend(handles=handles, fontsize=7, loc="lower right")
    axes.grid(axis="x", which="both", alpha=0.3)


def _plot_scale(axes: Any, scale: Sequence[Entry]) -> None:
    """Microseconds per redemption against subjects stored, one line per backend."""
    if not scale:
        axes.set_axis_off()
        return
    backends: dict[str, list[Entry]] = {}
    for entry in scale:
        backends.setdefault(entry.case.split("/")[1], []).append(entry)
    for backend, points in backends.items():
        sizes = [point.extra["stored_subjects"] for point in points]
        micros = [1e6 / (point.ops_per_s or 1.0) for point in points]
        low = [m - 1e6 / (p.ops_per_s_max or 1.0) for m, p in zip(micros, points, strict=True)]
        high = [1e6 / (p.ops_per_s_min or 1.0) - m for m, p in zip(micros, points, strict=True)]
        axes.errorbar(sizes, micros, yerr=[low, high], marker="o", capsize=3, label=backend)
        axes.annotate(
            f"x{points[-1].ratio_to_floor or 0:.2f}",
            (sizes[-1], micros[-1]),
            textcoords="offset points",
            xytext=(6, 0),
            fontsize=7,
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("subjects stored")
    axes.set_ylabel("microseconds per redemption (median; bars min-max)")
    axes.set_title("scale: redemption cost by table size (xN: vs the smallest)", fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(which="both", alpha=0.3)


def plot(entries: Sequence[Entry], path: Path, title: str) -> str | None:
    """Throughput by case and the scale curves, as one PNG; the reason if it cannot be drawn."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        pyplot = importlib.import_module("matplotlib.pyplot")
        patches = importlib.import_module("matplotlib.patches")
    except ImportError as error:
        return f"matplotlib is not installed ({error}); pip install -e '.[bench]'"
    bars = [e for e in entries if e.group in ("core", "peer", "backend") and e.ops_per_s]
    height = max(4.0, 0.28 * len(bars) + 1.5)
    figure, (left, right) = pyplot.subplots(
        1, 2, figsize=(16, height), gridspec_kw={"width_ratios": [3, 2]}
    )
    figure.suptitle(title, fontsize=10)
    _plot_throughput(left, bars, patches.Patch)
    _plot_scale(right, [e for e in entries if e.group == "scale"])
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return None


def all_cases(config: Config) -> list[str]:
    """Every case the run knows, in order."""
    cases = list(CORE_CASES + PEER_CASES)
    for name in bench.BACKENDS:
        cases += backend_cases(name, config.variants)
    for backend in SCALE_BACKENDS:
        cases += scale_cases(backend, config.scale_sizes)
    return [*cases, "footprint/memory", "footprint/sqlite"]


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small counts, short rounds, no 1M tables (CI smoke)"
    )
    parser.add_argument(
        "--cases",
        metavar="PATTERNS",
        help="comma-separated case patterns (fnmatch, or a prefix such as 'core', 'peer',"
        " 'backend/redis', 'scale/sqlite'); the floors a selected case needs always run",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--json", type=Path, help="JSON output (default results/latest.json; quick: quick.json)"
    )
    parser.add_argument(
        "--plot", type=Path, help="PNG output (default results/latest.png; quick: quick.png)"
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile issue+redeem on memory (with and without a receipt)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and targets, write the JSON file and the plot."""
    options = parse_arguments(argv)
    config = QUICK if options.quick else FULL
    if options.list:
        print("\n".join(all_cases(config)))
        return 0
    selection = Selection(options.cases)
    if not selection.any(all_cases(config)):
        print(f"--cases {options.cases!r} matches no case (see --list)", file=sys.stderr)
        return 2
    stem = "quick" if options.quick else "latest"
    json_path: Path = options.json or RESULTS / f"{stem}.json"
    plot_path: Path = options.plot or RESULTS / f"{stem}.png"

    started = time.perf_counter()
    details = machine()
    print(
        f"telecard-auth {details['telecard_auth']}, Python {details['python']} on"
        f" {details['os']}, {details['cpu_model']} ({details['cores']} cores), {config.name} run"
        + (" (CI smoke run: targets are reported, not enforced)" if details["ci"] else ""),
        flush=True,
    )
    run = Run()
    keyring = Keyring.generate()
    citizens = bench.Citizens()
    with tempfile.TemporaryDirectory(prefix="telecard-run-") as temporary:
        ctx = Context(run, selection, config, Path(temporary), keyring, citizens)
        run_core(ctx)
        run_backends(ctx)
        run_footprint(ctx)
        run_scale(ctx)
    if options.profile:
        profile_memory(run, keyring, citizens, 2_000 if options.quick else 20_000)
    total = time.perf_counter() - started
    details["load_average_at_end"] = _load_average()
    verdicts = targets(run.entries, config)
    print_table(run.entries)
    print_targets(verdicts)
    print_profiles(run.profiles)
    for skipped in run.skipped:
        print(f"skipped {skipped['case']}: {skipped['reason']}")
    print(f"\ntotal time {total:.1f} s")
    report = {
        "machine": details,
        "settings": {
            "run": config.name,
            "core_rounds": config.core_rounds,
            "core_round_seconds": config.core_round_seconds,
            "backend_rounds": config.backend.rounds,
            "backend_round_seconds": config.backend.round_seconds,
            "scale_sizes": list(config.scale_sizes),
            "scale_rounds": config.scale_rounds,
            "scale_batch": config.scale_batch,
            "footprint_codes": config.footprint_codes,
            "cases": options.cases,
        },
        "results": [entry.as_json() for entry in run.entries],
        "targets": verdicts,
        "skipped": run.skipped,
        "profiles": run.profiles,
        "total_seconds": round(total, 1),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {json_path}")
    if not options.no_plot:
        title = (
            f"telecard-auth {details['telecard_auth']} - {details['cpu_model']},"
            f" {details['cores']} cores, Python {details['python']} - {details['date']}"
            f" ({config.name} run)"
        )
        problem = plot(run.entries, plot_path, title)
        print(f"plot: {problem}" if problem else f"plot written to {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
