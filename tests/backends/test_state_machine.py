"""Model-based test: random sequences of calls agree with a small reference model, on every backend.

A Hypothesis ``RuleBasedStateMachine`` issues codes, redeems them (the right code at its provider
or another, for its service or another, with and without request ids, retrying a request with the
same or other inputs), types wrong codes, revokes, asks for status, purges and moves the clock (by
microseconds to hours, and onto, just before or just after the moments where answers change). Each
call's outcome, the exact result or the exact error class with its details, must be the one
``tests.backends.model.Model`` predicts, and after every step every code ever issued must have the
status the model gives it. Independently of the model, no code is ever redeemed twice and no
subject holds more live codes than the policy allows.

Every backend runs it in two variants, each example on a fresh storage from the ``storage_url``
factory (the server backends run fewer examples): a policy that refuses at the live-code limit,
with no event sink (``purge`` calls the storage's ``purge``), and one that supersedes the oldest
code, with a ``CollectingSink`` (``purge`` calls ``purge_snapshots`` and must report exactly the
unused codes it deleted as ``events.CodeExpired``). Redis keys also expire by themselves, an hour
of real time after their ``keep_until``: never during an example.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tests.backends.conftest import BACKENDS, UrlFactory
from tests.backends.model import Issued, Model, Outcome, Redeemed, Refused, Rules
from tests.backends.workers import close_storage
from tests.helpers import K1_SECRET, PSEUDONYM_SECRET, START

from telecard_auth import (
    LOST_SIM_REPLACEMENT,
    NEW_LINE,
    NUMBER_TRANSFER,
    SAUDI_PROVIDERS,
    CodeIssuer,
    CodeState,
    CodeStatus,
    HmacKey,
    IssuedCode,
    Keyring,
    ManualClock,
    Policy,
    Redemption,
    Storage,
    Subject,
    TelecardAuthError,
    UnknownCode,
    storage_from_url,
)
from telecard_auth.events import CodeExpired as ExpiredEvent
from telecard_auth.events import CollectingSink

SUBJECTS = {
    "citizen": Subject.citizen("1000000008"),
    "resident": Subject.resident("2129040479"),
}
PROVIDERS = ("stc", "mobily")
SERVICES = (NEW_LINE, NUMBER_TRANSFER, LOST_SIM_REPLACEMENT)
SERVICE_IDS = tuple(service.id for service in SERVICES)
#: A few request ids, so that a new redemption often reuses one.
REQUEST_IDS = ("req-1", "req-2")
TTL_BY_SERVICE = {"number_transfer": timedelta(hours=1), "lost_sim_replacement": timedelta(hours=2)}
MAX_FAILED_ATTEMPTS = 3
FAILURE_BUDGET = 4
FAILURE_WINDOW = timedelta(hours=1)
MAX_LIVE_CODES = 2
RETENTION = timedelta(hours=1)
ONE_MICROSECOND = timedelta(microseconds=1)
#: Ways to type a code: as issued, in groups of four, in Arabic-Indic digits.
TYPINGS = ("plain", "spaced", "arabic")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

#: Examples per backend (each on a fresh storage) and steps per example.
EXAMPLES = {"memory": 200, "sqlite": 150, "redis": 50, "postgres": 50}
STEPS = 50

#: Picks one of a list, counting from its end: often one of the last few, sometimes any.
picks = st.integers(min_value=0, max_value=2) | st.integers(min_value=0, max_value=255)
#: Whether to act as another subject than the code's: mostly not.
mostly_same = st.sampled_from((False, False, False, True))
subjects = st.sampled_from(tuple(SUBJECTS))
providers = st.sampled_from(PROVIDERS)
services = st.sampled_from(SERVICE_IDS)
request_ids = st.none() | st.sampled_from(REQUEST_IDS)
steps_of_time = st.one_of(
    st.integers(1, 999).map(lambda n: timedelta(microseconds=n)),
    st.integers(1, 59).map(lambda n: timedelta(seconds=n)),
    st.integers(1, 59).map(lambda n: timedelta(minutes=n)),
    st.integers(1, 5).map(lambda n: timedelta(hours=n)),
)


def make_policy(on_limit: str) -> Policy:
    """The policy under test: small limits, so that every limit is reached within a few steps."""
    return Policy(
        providers=tuple(provider for provider in SAUDI_PROVIDERS if provider.id in PROVIDERS),
        services=SERVICES,
        ttl_by_service=TTL_BY_SERVICE,
        max_failed_attempts=MAX_FAILED_ATTEMPTS,
        failure_budget=FAILURE_BUDGET,
        failure_window=FAILURE_WINDOW,
        max_live_codes=MAX_LIVE_CODES,
        on_live_code_limit="supersede" if on_limit == "supersede" else "refuse",
        retention=RETENTION,
    )


def make_rules(policy: Policy) -> Rules:
    """The model's copy of the policy's numbers (read back, so the two cannot drift apart)."""
    return Rules(
        services=tuple(service.id for service in policy.services),
        ttl=policy.ttl,
        ttl_by_service=dict(policy.ttl_by_service),
        max_failed_attempts=policy.max_failed_attempts,
        failure_budget=policy.failure_budget,
        failure_window=policy.failure_window,
        max_live_codes=policy.max_live_codes,
        supersede=policy.on_live_code_limit == "supersede",
        retention=policy.retention,
    )


def typed(code: str, typing: str) -> str:
    """``code`` as a person might type it."""
    if typing == "spaced":
        return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
    if typing == "arabic":
        return code.translate(ARABIC_INDIC)
    return code


def outcome(result: object) -> Outcome:
    """A library result in the model's terms (a ``CodeStatus`` or a count stays as it is)."""
    if isinstance(result, IssuedCode):
        return Issued(
            code_id=result.code_id,
            provider=result.provider.id,
            service=None if result.service is None else result.service.id,
            issued_at=result.issued_at,
            expires_at=result.expires_at,
            superseded=result.superseded_code_ids,
        )
    if isinstance(result, Redemption):
        return Redeemed(
            code_id=result.code_id,
            provider=result.provider.id,
            service=result.service.id,
            issued_at=result.issued_at,
            redeemed_at=result.redeemed_at,
        )
    assert isinstance(result, CodeStatus | int), result
    return result


def refused(error: TelecardAuthError) -> Refused:
    """A library error in the model's terms."""
    return Refused(type(error), dict(error.details))


class IssuerMachine(RuleBasedStateMachine):
    """Drives one ``CodeIssuer`` over a fresh storage and a ``Model`` side by side."""

    #: Set by the test on a subclass: which backend, a fresh URL for it, and the policy's choice.
    backend: ClassVar[str]
    new_url: ClassVar[UrlFactory]
    on_limit: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.storage: Storage = storage_from_url(type(self).new_url(self.backend))
        migrate = getattr(self.storage, "migrate", None)
        if migrate is not None:
            migrate()
        policy = make_policy(self.on_limit)
        keyring = Keyring(
            keys=(HmacKey(key_id="k1", secret=K1_SECRET),), pseudonym_secret=PSEUDONYM_SECRET
        )
        self.clock = ManualClock(START)
        self.sink = CollectingSink() if self.on_limit == "supersede" else None
        self.issuer = CodeIssuer(
            self.storage,
            keyring=keyring,
            policy=policy,
            clock=self.clock,
            events=() if self.sink is None else self.sink,
        )
        self.model = Model(make_rules(policy), START)
        #: Plaintext of every code ever issued, by id, to type it again later.
        self.plaintext: dict[str, str] = {}
        #: The moment each code was redeemed, as the library told: a code is redeemed once.
        self.redeemed_at: dict[str, datetime] = {}
        #: Each subject's pseudonym, as the library's redemptions name it.
        self.refs: dict[str, str] = {}
        #: ``(subject, provider, code, service, request id)`` of redemptions made with an id.
        self.requests: list[tuple[str, str, str, str, str]] = []

    def teardown(self) -> None:
        close_storage(self.storage)

    # --- helpers --------------------------------------------------------------------------

    def agree(self, expected: Outcome, actual: Outcome, call: str) -> None:
        assert expected == actual, (
            f"{call} at {self.model.now.isoformat()}:\n"
            f"  model:   {expected!r}\n"
            f"  library: {actual!r}"
        )

    def code_of(self, pick: int) -> tuple[str, str, str, str | None]:
        """A code ever issued, ``pick`` from the last: its id, subject, provider and service."""
        record = self.model.codes[-1 - pick % len(self.model.codes)]
        return record.code_id, record.subject, record.provider, record.service

    def other(self, values: tuple[str, ...], value: str) -> str:
        return values[(values.index(value) + 1) % len(values)]

    def move_to(self, target: datetime) -> None:
        """Move both clocks to ``target``."""
        self.clock.set(target)
        self.model.now = target

    def redeem(
        self,
        subject: str,
        provider: str,
        code: str,
        service: str,
        *,
        request_id: str | None,
        typing: str = "plain",
    ) -> None:
        """Redeem ``code`` (typed as ``typing`` says) and compare; ``code`` is the plain form."""
        shown = typed(code, typing)
        call = f"redeem({subject}, {provider}, {shown!r}, {service}, request_id={request_id})"
        try:
            result = self.issuer.redeem(
                SUBJECTS[subject], provider, shown, service, request_id=request_id
            )
        except TelecardAuthError as error:
            actual: Outcome = refused(error)
        else:
            actual = outcome(result)
            # A code is redeemed once: every redemption of it names the same moment.
            first = self.redeemed_at.setdefault(result.code_id, result.redeemed_at)
            assert first == result.redeemed_at, f"{result.code_id} redeemed twice"
            # One pseudonym per subject, and one subject per pseudonym.
            assert self.refs.setdefault(subject, result.subject_ref) == result.subject_ref
            assert len(set(self.refs.values())) == len(self.refs)
            if request_id is not None:
                self.requests.append((subject, provider, code, service, request_id))
        expected = self.model.redeem(subject, provider, code, service, request_id)
        self.agree(expected, actual, call)

    # --- rules ----------------------------------------------------------------------------

    @rule(subject=subjects, provider=providers, service=st.none() | services)
    def issue(self, subject: str, provider: str, service: str | None) -> None:
        try:
            issued = self.issuer.issue(SUBJECTS[subject], provider, service=service)
        except TelecardAuthError as error:
            actual: Outcome = refused(error)
            expected = self.model.issue(subject, provider, service, "(refused)", "(refused)")
        else:
            actual = outcome(issued)
            assert issued.code_id not in self.plaintext
            self.plaintext[issued.code_id] = issued.code
            expected = self.model.issue(subject, provider, service, issued.code_id, issued.code)
        self.agree(expected, actual, f"issue({subject}, {provider}, service={service})")

    @precondition(lambda self: self.model.codes)
    @rule(
        pick=picks,
        by=st.sampled_from(("owner", "owner", "owner", "owner", "other provider", "other subject")),
        service=st.none() | services,
        request_id=request_ids,
        typing=st.sampled_from(TYPINGS),
    )
    def redeem_right_code(
        self,
        *,
        pick: int,
        by: str,
        service: str | None,
        request_id: str | None,
        typing: str,
    ) -> None:
        """Type a code that was issued: its owner at its provider, at another, or another subject.

        ``service`` None means the code's own service (for an unbound code, one ``pick`` chooses).
        """
        code_id, subject, provider, bound = self.code_of(pick)
        if by == "other subject":
            subject = self.other(tuple(SUBJECTS), subject)
        elif by == "other provider":
            provider = self.other(PROVIDERS, provider)
        chosen = service or bound or SERVICE_IDS[pick % len(SERVICE_IDS)]
        self.redeem(
            subject, provider, self.plaintext[code_id], chosen, request_id=request_id, typing=typing
        )

    @rule(pick=picks, service=st.none() | services, request_id=request_ids)
    def redeem_wrong_code(self, pick: int, service: str | None, request_id: str | None) -> None:
        """Type a well-formed code never issued to anyone, where the ``pick``-th code lives.

        Before any code is issued, ``pick`` chooses the subject and provider.
        """
        if self.model.codes:
            _, subject, provider, bound = self.code_of(pick)
        else:
            subject = tuple(SUBJECTS)[pick % len(SUBJECTS)]
            provider, bound = PROVIDERS[pick // len(SUBJECTS) % len(PROVIDERS)], None
        known = set(self.plaintext.values())
        wrong = "12345678"
        while wrong in known:
            wrong = f"{(int(wrong) + 1) % 10**8:08d}"
        chosen = service or bound or SERVICE_IDS[0]
        self.redeem(subject, provider, wrong, chosen, request_id=request_id)

    @precondition(lambda self: self.requests)
    @rule(pick=picks, change=st.sampled_from(("nothing", "service", "provider", "code")))
    def retry_request(self, pick: int, change: str) -> None:
        """Repeat a redemption made with a request id, exactly or with one input changed."""
        subject, provider, code, service, request_id = self.requests[-1 - pick % len(self.requests)]
        if change == "service":
            service = self.other(SERVICE_IDS, service)
        elif change == "provider":
            provider = self.other(PROVIDERS, provider)
        elif change == "code":
            others = [
                self.plaintext[one.code_id]
                for one in self.model.codes
                if one.subject == subject and self.plaintext[one.code_id] != code
            ]
            code = others[pick % len(others)] if others else f"{(int(code) + 1) % 10**8:08d}"
        self.redeem(subject, provider, code, service, request_id=request_id)

    @precondition(lambda self: self.model.codes)
    @rule(pick=picks, other_subject=mostly_same)
    def revoke(self, pick: int, other_subject: bool) -> None:
        code_id, subject, _, _ = self.code_of(pick)
        if other_subject:
            subject = self.other(tuple(SUBJECTS), subject)
        try:
            actual: Outcome = self.issuer.revoke(SUBJECTS[subject], code_id)
        except TelecardAuthError as error:
            actual = refused(error)
        self.agree(self.model.revoke(subject, code_id), actual, f"revoke({subject}, {code_id})")

    @precondition(lambda self: self.model.codes)
    @rule(pick=picks, subject=subjects)
    def status(self, pick: int, subject: str) -> None:
        """Ask for the status of a code as ``subject``, its owner or not."""
        code_id = self.code_of(pick)[0]
        try:
            actual: Outcome = self.issuer.status(SUBJECTS[subject], code_id)
        except TelecardAuthError as error:
            actual = refused(error)
        self.agree(self.model.status(subject, code_id), actual, f"status({subject}, {code_id})")

    @rule(subject=subjects)
    def ask_about_an_unknown_id(self, subject: str) -> None:
        """Status and revoke of an id never issued."""
        for verb in (self.issuer.status, self.issuer.revoke):
            try:
                actual: Outcome = verb(SUBJECTS[subject], "never-issued")
            except TelecardAuthError as error:
                actual = refused(error)
            self.agree(Refused(UnknownCode), actual, f"{verb.__name__}({subject}, never-issued)")

    @rule(limit=st.sampled_from((1000, 1)))
    def purge(self, limit: int) -> None:
        """Purge until nothing is left to purge, one batch of ``limit`` subjects at a time."""
        total = 0
        while True:
            count = self.issuer.purge(limit)
            assert 0 <= count <= limit
            total += count
            if count == 0:
                break
        self.agree(self.model.purge(), total, f"purge({limit})")
        if self.sink is not None:
            reported = {
                (event.code_id, event.expired_at, event.at)
                for event in self.sink.of_type(ExpiredEvent)
            }
            assert len(reported) == len(self.sink.of_type(ExpiredEvent))
            assert self.model.purged_unused == reported

    @precondition(lambda self: any(m > self.model.now for m in self.model.keep_until.values()))
    @rule(pick=picks, offset=st.sampled_from((0, -1)))
    def purge_when_due(self, pick: int, offset: int) -> None:
        """Move to the moment a subject stops mattering (or just before), and purge there."""
        ahead = sorted(m for m in self.model.keep_until.values() if m > self.model.now)
        target = ahead[pick % len(ahead)] + offset * ONE_MICROSECOND
        if target > self.model.now:
            self.move_to(target)
        self.purge(limit=1000)

    @rule(step=steps_of_time)
    def advance(self, step: timedelta) -> None:
        """Let time pass: microseconds, seconds, minutes or hours."""
        self.move_to(self.model.now + step)

    @precondition(lambda self: any(m > self.model.now for m in self.model.boundaries()))
    @rule(pick=picks, offset=st.sampled_from((0, -1, 1)))
    def advance_to_a_boundary(self, pick: int, offset: int) -> None:
        """Move onto, just before or just after the next moments where some answer changes."""
        ahead = [moment for moment in self.model.boundaries() if moment > self.model.now]
        target = ahead[pick % len(ahead)] + offset * ONE_MICROSECOND
        if target > self.model.now:
            self.move_to(target)

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def every_code_has_the_models_status(self) -> None:
        live = dict.fromkeys(SUBJECTS, 0)
        for record in self.model.codes:
            subject = SUBJECTS[record.subject]
            try:
                actual: Outcome = self.issuer.status(subject, record.code_id)
            except TelecardAuthError as error:
                actual = refused(error)
            expected = self.model.status(record.subject, record.code_id)
            self.agree(expected, actual, f"status({record.subject}, {record.code_id})")
            if isinstance(actual, CodeStatus):
                live[record.subject] += actual.state is CodeState.ACTIVE
                if actual.state is CodeState.REDEEMED:
                    assert self.redeemed_at.get(actual.code_id) == actual.finished_at
        assert max(live.values()) <= MAX_LIVE_CODES


def run_machine(backend: str, on_limit: str, storage_url: UrlFactory) -> None:
    class Machine(IssuerMachine):
        pass

    Machine.backend = backend
    Machine.new_url = storage_url
    Machine.on_limit = on_limit
    Machine.__name__ = f"IssuerMachine_{backend}_{on_limit}"
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=EXAMPLES[backend],
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.parametrize("on_limit", ["refuse", "supersede"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_library_agrees_with_the_model(
    backend: str, on_limit: str, storage_url: UrlFactory
) -> None:
    """Random sequences of every verb and of clock moves give the model's outcomes and states."""
    run_machine(backend, on_limit, storage_url)
