"""Model-based test: random sequences of calls agree with a small reference model, on every backend.

A Hypothesis ``RuleBasedStateMachine`` issues codes (number transfers with or without a
recipient), redeems them (the right code at its provider or another, for its service or another,
with the right recipient, none or another, with and without request ids and references, valid or
not, retrying a request with the same or other inputs), types wrong codes until the failure
budget is spent and recovery codes are issued, revokes, asks for status, purges, moves the clock
(by microseconds to hours, and onto, just before or just after the moments where answers change),
and purges a subject that fell due between a request's load and its commit, sometimes re-creating
it there with as many commits as the request read, so that a stale compare-and-set token meets a
subject of a new incarnation. Each call's outcome, the exact result or the exact error class with
its data details, must be the one ``tests.backends.model.Model`` predicts, and after every step
every code ever issued must have the status the model gives it and every subject the version the
model counts (nothing is stored for a refusal that counts nothing), each life of a subject an
incarnation of its own. Independently of the model, no code is ever redeemed twice and no subject
holds more live codes than the policy allows.

Each example draws the policy's recovery settings (``recovery_codes`` 0 to 2, 0 turning recovery
off; ``recovery_attempts`` 1 to 3). Every backend runs it in two variants, each example on a fresh
storage from the ``storage_url`` factory (the server backends run fewer examples): a policy that
refuses at the live-code limit, with no event sink (``purge`` calls the storage's ``purge``), and
one that supersedes the oldest code, with a ``CollectingSink``: there every call must emit exactly
the audit events the model lists (recovery flags, references, locks), under one audit pseudonym
per customer, and ``purge`` (through ``purge_snapshots``) must report exactly the unused codes it
deleted as ``events.CodeExpiry``. Redis keys also expire by themselves, an hour of real time
after their ``keep_until``: never during an example.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tests.backends.conftest import BACKENDS, UrlFactory
from tests.backends.model import Event, Issued, Model, ModelCode, Outcome, Redeemed, Refused, Rules
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
    Commit,
    HmacKey,
    IssuedCode,
    Keyring,
    ManualClock,
    Policy,
    Redemption,
    StorageBackend,
    Subject,
    SubjectSnapshot,
    TelecardAuthError,
    UnknownCode,
    storage_from_url,
)
from telecard_auth import events as audit

#: The customers who hold codes.
SUBJECTS = {
    "citizen": Subject.citizen("1000000008"),
    "resident": Subject.resident("2129040479"),
}
#: Everyone who can receive a number: the customers and a company that never holds a code.
PARTIES = {**SUBJECTS, "company": Subject.company("7000000001")}
PROVIDERS = ("stc", "mobily")
SERVICES = (NEW_LINE, NUMBER_TRANSFER, LOST_SIM_REPLACEMENT)
SERVICE_IDS = tuple(service.id for service in SERVICES)
#: A few request ids, so that a new redemption often reuses one.
REQUEST_IDS = ("req-1", "req-2")
TTL_BY_SERVICE = {"number_transfer": timedelta(hours=1), "lost_sim_replacement": timedelta(hours=2)}
FAILURE_WINDOW = timedelta(hours=1)
MAX_LIVE_CODES = 2
RETENTION = timedelta(hours=1)
ONE_MICROSECOND = timedelta(microseconds=1)
#: Ways to type a code: as issued, in groups of four, in Arabic-Indic digits.
TYPINGS = ("plain", "spaced", "arabic")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
#: The details of an error that carry data (the rest are words for people).
DATA_DETAILS = frozenset({"expired_at", "retry_at", "retry_after", "limit", "next_free", "binding"})

#: Examples per backend (each on a fresh storage) and steps per example.
EXAMPLES = {"memory": 600, "sqlite": 200, "redis": 100, "postgres": 80}
STEPS = 50

#: Picks one of a list, counting from its end: often one of the last few, sometimes any.
picks = st.integers(min_value=0, max_value=2) | st.integers(min_value=0, max_value=255)
#: Whether to act as another subject than the code's: mostly not.
mostly_same = st.sampled_from((False, False, False, True))
subjects = st.sampled_from(tuple(SUBJECTS))
parties = st.sampled_from(tuple(PARTIES))
providers = st.sampled_from(PROVIDERS)
services = st.sampled_from(SERVICE_IDS)
request_ids = st.none() | st.sampled_from(REQUEST_IDS)
#: Mostly none; else a valid one, or any text (mostly not a valid reference).
references = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.sampled_from(("agent-7", "branch:riyadh/12", "x" * 64)),
    st.sampled_from(("agent-7", "branch:riyadh/12", "x" * 64)),
    st.text(max_size=66),
)
#: The recipient an issue names: the one its service needs ("fit"), none, the customer, a party.
issue_bindings = st.sampled_from(("fit",) * 9 + ("none", "self", "party"))
#: The recipient a redemption presents: the code's own, none, or another party.
presented = st.sampled_from(("bound", "bound", "none", "other"))
#: A code's attempt limit, the failure budget (either may be reached first) and the recovery
#: settings (0 codes turns recovery off; a recovery code's attempts at most a code's).
policy_limits = st.integers(2, 4).flatmap(
    lambda attempts: st.fixed_dictionaries(
        {
            "max_failed_attempts": st.just(attempts),
            "failure_budget": st.integers(2, 4),
            "recovery_codes": st.integers(0, 2),
            "recovery_attempts": st.integers(1, attempts),
        }
    )
)
steps_of_time = st.one_of(
    st.integers(1, 999).map(lambda n: timedelta(microseconds=n)),
    st.integers(1, 59).map(lambda n: timedelta(seconds=n)),
    st.integers(1, 59).map(lambda n: timedelta(minutes=n)),
    st.integers(1, 5).map(lambda n: timedelta(hours=n)),
)


def make_policy(on_limit: str, limits: dict[str, int]) -> Policy:
    """The policy under test: small limits, so that every limit is reached within a few steps.

    ``limits`` holds the attempt limits, the failure budget and the recovery settings.
    """
    return Policy(
        max_failed_attempts=limits["max_failed_attempts"],
        failure_budget=limits["failure_budget"],
        recovery_codes=limits["recovery_codes"],
        recovery_attempts=limits["recovery_attempts"],
        providers=tuple(provider for provider in SAUDI_PROVIDERS if provider.id in PROVIDERS),
        services=SERVICES,
        ttl_by_service=TTL_BY_SERVICE,
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
        recovery_codes=policy.recovery_codes,
        recovery_attempts=policy.recovery_attempts,
        transfer_services=policy.transfer_services,
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
    """A library error in the model's terms: its class and the details that carry data."""
    return Refused(type(error), {k: v for k, v in error.details.items() if k in DATA_DETAILS})


def event_of(emitted: audit.AuditEvent) -> Event:
    """A library audit event in the model's terms (``Event``)."""
    if isinstance(emitted, audit.CodeIssuance):
        return (
            "issued",
            emitted.provider_id,
            emitted.code_id,
            emitted.service_id,
            emitted.expires_at,
            emitted.recovery,
        )
    if isinstance(emitted, audit.CodeSupersession):
        return ("superseded", emitted.provider_id, emitted.code_id, emitted.superseded_by)
    if isinstance(emitted, audit.CodeRedemption):
        return (
            "redeemed",
            emitted.provider_id,
            emitted.code_id,
            emitted.service_id,
            emitted.request_id,
            emitted.reference,
        )
    if isinstance(emitted, audit.RedemptionRefusal):
        return (
            "refused",
            emitted.provider_id,
            emitted.code_id,
            emitted.reason,
            emitted.service_id,
            emitted.reference,
        )
    if isinstance(emitted, audit.CodeLockout):
        return ("locked", emitted.provider_id, emitted.code_id, emitted.failed_attempts)
    assert isinstance(emitted, audit.CodeRevocation), emitted
    return ("revoked", emitted.provider_id, emitted.code_id)


def storage_key(keyring: Keyring, subject: Subject) -> str:
    """Where storage files ``subject``: the pseudonym of its identity text, ``kind:identifier``."""
    return keyring.subject_ref(f"{subject.kind.value}:{subject.identifier}")


class InterleavingStorage:
    """A storage that passes every call through, runs ``interlude`` once right after the next
    ``load`` (before the loading request goes on), and counts commits that lost the race."""

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.interlude: Callable[[SubjectSnapshot], None] | None = None
        self.lost = 0

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """The inner snapshot, then the interlude, if one is waiting."""
        snapshot = self.inner.load(subject_ref)
        interlude, self.interlude = self.interlude, None
        if interlude is not None:
            interlude(snapshot)
        return snapshot

    def commit(self, change: Commit) -> bool:
        """The inner compare-and-set, counting a ``False``."""
        landed = self.inner.commit(change)
        self.lost += not landed
        return landed

    def purge(self, now: datetime, limit: int) -> int:
        """The inner purge."""
        return self.inner.purge(now, limit)

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """The inner purge, reporting what it deleted."""
        return self.inner.purge_snapshots(now, limit)

    def waiting(self) -> bool:
        """Whether an interlude still waits for a load."""
        return self.interlude is not None


class IssuerMachine(RuleBasedStateMachine):
    """Drives one ``CodeIssuer`` over a fresh storage and a ``Model`` side by side."""

    #: Set by the test on a subclass: which backend, a fresh URL for it, and the policy's choice.
    backend: ClassVar[str]
    new_url: ClassVar[UrlFactory]
    on_limit: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.inner = storage_from_url(type(self).new_url(self.backend))
        self.inner.migrate()
        self.storage = InterleavingStorage(self.inner)
        self.keyring = Keyring(
            keys=(HmacKey(key_id="k1", secret=K1_SECRET),),
            pseudonym_keys=(HmacKey(key_id="p1", secret=PSEUDONYM_SECRET),),
        )
        self.keys = {name: storage_key(self.keyring, party) for name, party in PARTIES.items()}
        self.clock = ManualClock(START)
        self.sink = audit.CollectingSink() if self.on_limit == "supersede" else None
        #: Plaintext of every code ever issued, by id, to type it again later.
        self.plaintext: dict[str, str] = {}
        #: The moment each code was redeemed, as the library told: a code is redeemed once.
        self.redeemed_at: dict[str, datetime] = {}
        #: Each customer's pseudonym at each provider, as the library's redemptions name it.
        self.customer_refs: dict[tuple[str, str], str] = {}
        #: Each customer's audit pseudonym, as the events name it.
        self.audit_refs: dict[str, str] = {}
        #: The incarnation of each life of each subject in storage, by (name, life).
        self.incarnations: dict[tuple[str, int], str] = {}
        #: ``(subject, provider, code, service, recipient, request id)`` of redemptions with an id.
        self.requests: list[tuple[str, str, str, str, str | None, str, str | None]] = []

    @initialize(limits=policy_limits)
    def choose_the_policy(self, limits: dict[str, int]) -> None:
        """Build the policy, the issuers and the model; the limits vary by example."""
        policy = make_policy(self.on_limit, limits)
        self.issuer = CodeIssuer(
            self.storage,
            keyring=self.keyring,
            policy=policy,
            clock=self.clock,
            events=() if self.sink is None else self.sink,
        )
        #: Another node on the same storage: re-creates subjects behind the issuer's back.
        self.interloper = CodeIssuer(
            self.storage, keyring=self.keyring, policy=policy, clock=self.clock
        )
        self.model = Model(make_rules(policy), START)

    def teardown(self) -> None:
        close_storage(self.inner)

    # --- helpers --------------------------------------------------------------------------

    def agree(self, expected: Outcome, actual: Outcome, call: str) -> None:
        assert expected == actual, (
            f"{call} at {self.model.now.isoformat()}:\n"
            f"  model:   {expected!r}\n"
            f"  library: {actual!r}"
        )

    def call(self, verb: Callable[[], object]) -> Outcome:
        """The library's outcome of ``verb``: its result, or the refusal it raised."""
        try:
            return outcome(verb())
        except TelecardAuthError as error:
            return refused(error)

    def check_events(self, start: int, subject: str, call: str) -> None:
        """The events the library emitted since ``start`` are the model's (then forgotten).

        Every one is dated now and names the subject by its one audit pseudonym. Pseudonyms
        (audit, per provider, storage keys) are never shared, by customers or by uses.
        """
        expected = Counter(self.model.events)
        self.model.events.clear()
        if self.sink is not None:
            emitted = [e for e in self.sink.events[start:] if not isinstance(e, audit.CodeExpiry)]
            assert expected == Counter(event_of(e) for e in emitted), f"events of {call}"
            for one in emitted:
                assert self.model.now == one.at
                assert one.audit_ref is not None
                assert one.audit_ref == self.audit_refs.setdefault(subject, one.audit_ref)
        refs = [*self.audit_refs.values(), *self.customer_refs.values(), *self.keys.values()]
        assert len(set(refs)) == len(refs)

    def mark(self) -> int:
        """Where the events of the next call start."""
        return 0 if self.sink is None else len(self.sink.events)

    def code_of(self, pick: int) -> ModelCode:
        """A code ever issued, ``pick`` from the last."""
        return self.model.codes[-1 - pick % len(self.model.codes)]

    def other(self, values: tuple[str, ...], value: str) -> str:
        return values[(values.index(value) + 1) % len(values)]

    def never_issued(self) -> str:
        """A well-formed code never issued to anyone."""
        known = set(self.plaintext.values())
        wrong = "12345678"
        while wrong in known:
            wrong = f"{(int(wrong) + 1) % 10**8:08d}"
        return wrong

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
        recipient: str | None = None,
        request_id: str | None = None,
        reference: str | None = None,
        typing: str = "plain",
    ) -> None:
        """Redeem ``code`` (typed as ``typing`` says) and compare; ``code`` is the plain form."""
        shown = typed(code, typing)
        call = (
            f"redeem({subject}, {provider}, {shown!r}, {service}, recipient={recipient},"
            f" request_id={request_id}, reference={reference!r})"
        )
        start = self.mark()
        try:
            result = self.issuer.redeem(
                SUBJECTS[subject],
                provider,
                shown,
                service,
                recipient=None if recipient is None else PARTIES[recipient],
                request_id=request_id,
                reference=reference,
            )
        except TelecardAuthError as error:
            actual: Outcome = refused(error)
            event(f"redeem refused: {type(error).__name__}")
        else:
            actual = outcome(result)
            event("redeemed")
            # A code is redeemed once: every redemption of it names the same moment.
            first = self.redeemed_at.setdefault(result.code_id, result.redeemed_at)
            assert first == result.redeemed_at, f"{result.code_id} redeemed twice"
            # One pseudonym per customer and provider.
            ref = self.customer_refs.setdefault((subject, provider), result.customer_ref)
            assert ref == result.customer_ref
            if request_id is not None:
                self.requests.append(
                    (subject, provider, code, service, recipient, request_id, reference)
                )
        expected = self.model.redeem(
            subject,
            provider,
            code,
            service,
            recipient=recipient,
            request_id=request_id,
            reference=reference,
        )
        self.agree(expected, actual, call)
        self.check_events(start, subject, call)

    def purge_all(self, limit: int) -> int:
        """Purge until nothing is left to purge, one batch of ``limit`` subjects at a time."""
        total = 0
        while True:
            count = self.issuer.purge(limit)
            assert 0 <= count <= limit
            total += count
            if count == 0:
                return total

    def check_expired_events(self) -> None:
        """Purges reported, once each, exactly the unused codes they deleted."""
        if self.sink is not None:
            reported = [
                (one.code_id, one.expired_at, one.at) for one in self.sink.of_type(audit.CodeExpiry)
            ]
            assert len(set(reported)) == len(reported)
            assert self.model.purged_unused == set(reported)

    # --- rules ----------------------------------------------------------------------------

    @rule(
        subject=subjects,
        provider=providers,
        service=st.none() | services,
        binding=issue_bindings,
        party=parties,
    )
    def issue(
        self, subject: str, provider: str, service: str | None, binding: str, party: str
    ) -> None:
        """Issue a code; a number transfer names its recipient, unless ``binding`` says not.

        ``fit`` names ``party`` (another than the customer) for a transfer and no one otherwise.
        """
        if binding == "fit":
            fit = party if party != subject else self.other(tuple(PARTIES), party)
            recipient = fit if service in self.model.rules.transfer_services else None
        else:
            recipient = {"none": None, "self": subject, "party": party}[binding]
        call = f"issue({subject}, {provider}, service={service}, recipient={recipient})"
        start = self.mark()
        try:
            issued = self.issuer.issue(
                SUBJECTS[subject],
                provider,
                service=service,
                recipient=None if recipient is None else PARTIES[recipient],
            )
        except TelecardAuthError as error:
            actual: Outcome = refused(error)
            expected = self.model.issue(
                subject, provider, service, recipient=recipient, code_id="-", code="-"
            )
            event(f"issue refused: {type(error).__name__}")
        else:
            actual = outcome(issued)
            assert issued.code_id not in self.plaintext
            self.plaintext[issued.code_id] = issued.code
            expected = self.model.issue(
                subject,
                provider,
                service,
                recipient=recipient,
                code_id=issued.code_id,
                code=issued.code,
            )
            if self.model.codes[-1].recovery:
                event("recovery code issued")
        self.agree(expected, actual, call)
        self.check_events(start, subject, call)

    @precondition(lambda self: self.model.codes)
    @rule(
        pick=picks,
        by=st.sampled_from(("owner", "owner", "owner", "owner", "other provider", "other subject")),
        service=st.none() | services,
        present=presented,
        request_id=request_ids,
        reference=references,
        typing=st.sampled_from(TYPINGS),
    )
    def redeem_right_code(
        self,
        *,
        pick: int,
        by: str,
        service: str | None,
        present: str,
        request_id: str | None,
        reference: str | None,
        typing: str,
    ) -> None:
        """Type a code that was issued: its owner at its provider, at another, or another subject.

        ``service`` None means the code's own service (for an unbound code, one ``pick``
        chooses); ``present`` says which recipient the agent presents.
        """
        record = self.code_of(pick)
        subject, provider = record.subject, record.provider
        if by == "other subject":
            subject = self.other(tuple(SUBJECTS), subject)
        elif by == "other provider":
            provider = self.other(PROVIDERS, provider)
        chosen = service or record.service or SERVICE_IDS[pick % len(SERVICE_IDS)]
        recipient = record.recipient
        if present == "none":
            recipient = None
        elif present == "other":
            recipient = self.other(tuple(PARTIES), recipient or subject)
        self.redeem(
            subject,
            provider,
            self.plaintext[record.code_id],
            chosen,
            recipient=recipient,
            request_id=request_id,
            reference=reference,
            typing=typing,
        )

    @precondition(lambda self: self.model.codes)
    @rule(pick=picks, request_id=request_ids, typing=st.sampled_from(TYPINGS))
    def redeem_as_issued(self, pick: int, request_id: str | None, typing: str) -> None:
        """The owner's agent types a code as it was meant to be used: at its provider, for its
        service (an unbound code for one that needs no recipient), with its recipient."""
        record = self.code_of(pick)
        plain = [one for one in SERVICE_IDS if one not in self.model.rules.transfer_services]
        service = record.service or plain[pick % len(plain)]
        self.redeem(
            record.subject,
            record.provider,
            self.plaintext[record.code_id],
            service,
            recipient=record.recipient,
            request_id=request_id,
            typing=typing,
        )

    @rule(
        pick=picks,
        service=st.none() | services,
        request_id=request_ids,
        reference=references,
        times=st.integers(1, 4),
    )
    def redeem_wrong_code(
        self,
        *,
        pick: int,
        service: str | None,
        request_id: str | None,
        reference: str | None,
        times: int,
    ) -> None:
        """Type a well-formed code never issued to anyone, where the ``pick``-th code lives, one
        to four times in a row (a guesser), each checked.

        Before any code is issued, ``pick`` chooses the subject and provider.
        """
        if self.model.codes:
            record = self.code_of(pick)
            subject, provider, bound = record.subject, record.provider, record.service
        else:
            subject = tuple(SUBJECTS)[pick % len(SUBJECTS)]
            provider, bound = PROVIDERS[pick // len(SUBJECTS) % len(PROVIDERS)], None
        wrong = self.never_issued()
        chosen = service or bound or SERVICE_IDS[0]
        for _ in range(times):
            self.redeem(
                subject, provider, wrong, chosen, request_id=request_id, reference=reference
            )

    @precondition(lambda self: any(self.model.is_live(one) for one in self.model.codes))
    @rule(pick=picks, reference=references, party=parties)
    def guess_until_the_budget_is_spent(self, pick: int, reference: str | None, party: str) -> None:
        """A guesser types wrong codes where a live code is, each checked, until the budget
        there is spent or nothing live is left to count against; then the customer asks for a
        new code there (a recovery code, if the policy has one left).

        A first guess with an invalid reference counts nothing: the budget may stay unspent.
        """
        live = [one for one in self.model.codes if self.model.is_live(one)]
        record = live[-1 - pick % len(live)]
        subject, provider = record.subject, record.provider
        wrong = self.never_issued()
        service = record.service or SERVICE_IDS[0]
        for _ in range(self.model.rules.failure_budget):
            here = [one for one in self.model.stored(subject) if one.provider == provider]
            if self.model.budget_spent(subject, provider) or not any(map(self.model.is_live, here)):
                break
            # The first guess may carry an invalid reference, and count nothing.
            self.redeem(subject, provider, wrong, service, reference=reference)
            reference = None
        self.issue(subject, provider, None, "fit", party)

    @precondition(lambda self: self.requests)
    @rule(
        pick=picks,
        change=st.sampled_from(
            ("nothing", "nothing", "service", "provider", "code", "recipient", "reference")
        ),
    )
    def retry_request(self, pick: int, change: str) -> None:
        """Repeat a redemption made with a request id, exactly or with one input changed."""
        subject, provider, code, service, recipient, request_id, reference = self.requests[
            -1 - pick % len(self.requests)
        ]
        if change == "service":
            service = self.other(SERVICE_IDS, service)
        elif change == "provider":
            provider = self.other(PROVIDERS, provider)
        elif change == "recipient":
            recipient = None if recipient is not None else self.other(tuple(PARTIES), subject)
        elif change == "code":
            others = [
                self.plaintext[one.code_id]
                for one in self.model.codes
                if one.subject == subject and self.plaintext[one.code_id] != code
            ]
            code = others[pick % len(others)] if others else f"{(int(code) + 1) % 10**8:08d}"
        elif change == "reference":
            reference = "agent-9" if reference != "agent-9" else None
        self.redeem(
            subject,
            provider,
            code,
            service,
            recipient=recipient,
            request_id=request_id,
            reference=reference,
        )

    @precondition(lambda self: self.model.codes)
    @rule(pick=picks, other_subject=mostly_same)
    def revoke(self, pick: int, other_subject: bool) -> None:
        """Revoke a code as its owner, or as another subject."""
        record = self.code_of(pick)
        subject = record.subject
        if other_subject:
            subject = self.other(tuple(SUBJECTS), subject)
        call = f"revoke({subject}, {record.code_id})"
        start = self.mark()
        actual = self.call(lambda: self.issuer.revoke(SUBJECTS[subject], record.code_id))
        self.agree(self.model.revoke(subject, record.code_id), actual, call)
        self.check_events(start, subject, call)

    @precondition(lambda self: self.model.codes)
    @rule(pick=picks, subject=subjects)
    def status(self, pick: int, subject: str) -> None:
        """Ask for the status of a code as ``subject``, its owner or not."""
        code_id = self.code_of(pick).code_id
        actual = self.call(lambda: self.issuer.status(SUBJECTS[subject], code_id))
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
        self.agree(self.model.purge(), self.purge_all(limit), f"purge({limit})")
        self.check_expired_events()

    @precondition(lambda self: any(m > self.model.now for m in self.model.keep_until.values()))
    @rule(pick=picks, offset=st.sampled_from((0, -1)))
    def purge_when_due(self, pick: int, offset: int) -> None:
        """Move to the moment a subject stops mattering (or just before), and purge there."""
        ahead = sorted(m for m in self.model.keep_until.values() if m > self.model.now)
        target = ahead[pick % len(ahead)] + offset * ONE_MICROSECOND
        if target > self.model.now:
            self.move_to(target)
        self.purge(limit=1000)

    def stale_request(
        self, subject: str, pick: int, verb: str
    ) -> tuple[Callable[[], object], Callable[[Model], Outcome], list[str]]:
        """The request of the stale-token rule: how the library and the model make it, and the
        list that will hold the id and plaintext of the code the library draws, if it issues."""
        customer = SUBJECTS[subject]
        stored = self.model.stored(subject)
        drawn: list[str] = []
        if verb == "issue":
            provider = PROVIDERS[pick % len(PROVIDERS)]
            return (
                lambda: self.issuer.issue(customer, provider),
                lambda m: m.issue(
                    subject, provider, None, recipient=None, code_id=drawn[0], code=drawn[1]
                ),
                drawn,
            )
        if verb == "redeem" and stored:
            record = stored[-1 - pick % len(stored)]
            code, service = self.plaintext[record.code_id], record.service or NEW_LINE.id
            recipient = record.recipient
            return (
                lambda: self.issuer.redeem(
                    customer,
                    record.provider,
                    code,
                    service,
                    recipient=None if recipient is None else PARTIES[recipient],
                ),
                lambda m: m.redeem(subject, record.provider, code, service, recipient=recipient),
                drawn,
            )
        code_id = stored[-1 - pick % len(stored)].code_id if stored else "never-issued"
        return (
            lambda: self.issuer.status(customer, code_id),
            lambda m: m.status(subject, code_id),
            drawn,
        )

    def new_life(self, subject: str, commits: int) -> list[tuple[str, str, Outcome]]:
        """Another node gives ``subject`` a new life of ``commits`` commits: issue, revoke, issue,
        ...; each call's code id, plaintext (empty for a revoke) and outcome."""
        customer = SUBJECTS[subject]
        life: list[tuple[str, str, Outcome]] = []
        for number in range(commits):
            if number % 2 == 0:
                issued = self.interloper.issue(customer, PROVIDERS[0], service=NEW_LINE)
                self.plaintext[issued.code_id] = issued.code
                life.append((issued.code_id, issued.code, outcome(issued)))
            else:
                code_id = life[-1][0]
                revoked = self.interloper.revoke(customer, code_id)
                life.append((code_id, "", outcome(revoked)))
        return life

    def replay_new_life(self, subject: str, life: list[tuple[str, str, Outcome]]) -> None:
        """The model makes the calls of ``new_life``, each with the outcome the library gave."""
        for code_id, code, got in life:
            if isinstance(got, Issued):
                expected = self.model.issue(
                    subject, PROVIDERS[0], NEW_LINE.id, recipient=None, code_id=code_id, code=code
                )
                self.agree(expected, got, "issue by another node")
            else:
                self.agree(self.model.revoke(subject, code_id), got, "revoke by another node")
        self.model.events.clear()  # another node's: this issuer's sink never hears them

    @precondition(lambda self: self.model.keep_until)
    @rule(
        pick=picks,
        verb=st.sampled_from(("issue", "issue", "redeem", "status")),
        recreate=st.booleans(),
    )
    def purge_between_load_and_commit(self, pick: int, verb: str, recreate: bool) -> None:
        """A subject falls due, and is purged right after a request of its own loaded it.

        With ``recreate``, another issuer then gives the subject a new life of as many commits
        (issue, revoke, issue, ...) as the request read: the request's stale token then names
        the same version as the subject's, and only its incarnation differs. A request whose
        decision writes must lose its compare-and-set once and start over on the new state (it
        comes after the purge and the new life); one that writes nothing answers from what it
        read (it comes before them).
        """
        owners = sorted(self.model.keep_until)
        subject = owners[pick % len(owners)]
        self.move_to(max(self.model.now, self.model.keep_until[subject]))
        library, model, drawn = self.stale_request(subject, pick, verb)
        purged: list[int] = []
        life: list[tuple[str, str, Outcome]] = []

        def interlude(snapshot: SubjectSnapshot) -> None:
            purged.append(self.purge_all(1000))
            if recreate:
                life.extend(self.new_life(subject, snapshot.version))

        call = f"{verb} of {subject} with a purge after its load"
        start, lost = self.mark(), self.storage.lost
        self.storage.interlude = interlude
        try:
            result = library()
        except TelecardAuthError as error:
            actual: Outcome = refused(error)
        else:
            actual = outcome(result)
            if isinstance(result, IssuedCode):
                self.plaintext[result.code_id] = result.code
                drawn += [result.code_id, result.code]
        assert not self.storage.waiting(), "the request never loaded its subject"
        # Would the decision on what the request read write anything? Ask a copy of the model.
        trial = copy.deepcopy(self.model)
        model(trial)
        writes = trial.versions != self.model.versions
        expected = None if writes else model(self.model)
        made = self.model.events[:]
        self.agree(self.model.purge(), purged[0], "purge under a request")
        self.replay_new_life(subject, life)
        self.model.events[:] = made
        expected = model(self.model) if writes else expected
        assert expected is not None
        self.agree(expected, actual, call)
        # Exactly the stale commit lost its compare-and-set, once.
        assert int(writes) == self.storage.lost - lost
        self.check_events(start, subject, call)
        self.check_expired_events()
        event(f"stale {'commit' if writes else 'read'}, {'re-created' if recreate else 'purged'}")

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
            try:
                actual: Outcome = self.issuer.status(SUBJECTS[record.subject], record.code_id)
            except TelecardAuthError as error:
                actual = refused(error)
            expected = self.model.status(record.subject, record.code_id)
            self.agree(expected, actual, f"status({record.subject}, {record.code_id})")
            if isinstance(actual, CodeStatus):
                live[record.subject] += actual.state is CodeState.ACTIVE
                if actual.state is CodeState.REDEEMED:
                    assert self.redeemed_at.get(actual.code_id) == actual.finished_at
        assert max(live.values()) <= MAX_LIVE_CODES

    @invariant()
    def every_subject_has_the_models_version_and_each_life_an_incarnation(self) -> None:
        """Storage holds a row only for written subjects, at the version the model counts."""
        for name, key in self.keys.items():
            snapshot = self.inner.load(key)
            assert self.model.versions.get(name, 0) == snapshot.version, f"version of {name}"
            if snapshot.version:
                life = (name, self.model.lives[name])
                known = self.incarnations.setdefault(life, snapshot.incarnation)
                assert known == snapshot.incarnation
                assert list(self.incarnations.values()).count(known) == 1


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
