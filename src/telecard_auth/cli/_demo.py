"""``demo``: an end-to-end walk through the service that a person can read, in English and Arabic.

Each step states what should happen and checks that it did; the walk fails loudly otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telecard_auth._core.clock import ManualClock
from telecard_auth._core.errors import (
    CodeAlreadyUsed,
    CodeExpired,
    RedemptionRefused,
    TransferNotBound,
    WrongCode,
)
from telecard_auth._core.keyring import Keyring
from telecard_auth._core.model import (
    ACTIVATION_FOR_ACTUAL_USER,
    NEW_LINE,
    NUMBER_TRANSFER,
    IssuedCode,
    Redemption,
    SignedRedemption,
    Subject,
)
from telecard_auth._core.receipt import ReceiptSigner, verify_receipt
from telecard_auth._core.text import moment_for_people
from telecard_auth._issuer import CodeIssuer
from telecard_auth._storage.protocol import Storage
from telecard_auth._storage.urls import storage_from_url
from telecard_auth.cli._output import Outcome
from telecard_auth.cli._settings import DEMO_DATABASE, Settings

__all__ = ["DEMO_FIELDS", "demo", "run_demo"]

#: The fields of the answer (its --json object), in order: what --print may name.
DEMO_FIELDS = ("ok", "transcript")

_TO_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


class _Walk:
    def __init__(self, out: Callable[[str], object]) -> None:
        self.out = out
        self.failures = 0
        self.number = 0

    def step(self, en: str, ar: str) -> None:
        self.number += 1
        self.out("")
        self.out(f"{self.number}. {en}")
        self.out(f"   {ar}")

    def show(self, en: str, ar: str) -> None:
        self.out(f"   -> {en}")
        self.out(f"      {ar}")

    def check(self, ok: bool, en: str, ar: str) -> None:
        mark = "OK  " if ok else "FAIL"
        self.out(f"   [{mark}] {en}")
        self.out(f"          {ar}")
        if not ok:
            self.failures += 1

    def refused(self, attempt: Callable[[], object], expected: type[RedemptionRefused]) -> None:
        try:
            attempt()
        except RedemptionRefused as error:
            self.show(f"refused ({error.code}): {error.message_en}", f"مرفوض: {error.message_ar}")
            self.check(
                isinstance(error, expected),
                f"refused as {expected.code}, as expected",
                "رُفض كما هو متوقع",
            )
        else:
            self.check(False, f"expected a refusal ({expected.code})", "كان يجب رفض الطلب")


def _at(moment: datetime, lang: str = "en") -> str:
    return moment_for_people(moment, lang)


def _expiry(walk: _Walk, issuer: CodeIssuer, clock: ManualClock, customer: Subject) -> None:
    """A code kept past its validity is refused; the manual clock shows it without waiting."""
    walk.step(
        "A code for Zain is kept for four hours before it is used.",
        "يُحتفظ برمز صادر لزين أربع ساعات قبل استخدامه.",
    )
    late = issuer.issue(customer, "zain")
    clock.advance(issuer.policy.ttl)
    walk.show(f"the clock now reads {_at(clock.now())}", f"الساعة الآن {_at(clock.now(), 'ar')}")
    walk.refused(lambda: issuer.redeem(customer, "zain", late.code, NEW_LINE), CodeExpired)


def _number_transfer(walk: _Walk, issuer: CodeIssuer, customer: Subject, unbound: str) -> None:
    """A transfer needs a code issued for it that names the recipient; ``unbound`` does not."""
    walk.step(
        "The code for STC is presented to move the customer's number to another person.",
        "يُقدَّم رمز STC لنقل رقم العميلة إلى شخص آخر.",
    )
    recipient = Subject.resident("2129040479")
    walk.refused(
        lambda: issuer.redeem(customer, "stc", unbound, NUMBER_TRANSFER, recipient=recipient),
        TransferNotBound,
    )
    transfer = issuer.issue(customer, "stc", service=NUMBER_TRANSFER, recipient=recipient)
    walk.show(
        "she asks for a code for the transfer, naming the person who receives the number",
        "تطلب رمزًا للنقل يحدد الشخص الذي يستلم الرقم",
    )
    moved = issuer.redeem(customer, "stc", transfer.code, NUMBER_TRANSFER, recipient=recipient)
    walk.check(
        moved.code_id == transfer.code_id,
        "that code moves the number to that recipient",
        "ينقل ذلك الرمز الرقم إلى ذلك المستلم",
    )


# The STC agent's request id: sent twice, it returns the same redemption (step 3).
_VISIT = "stc-counter-7-visit-1"


def _first_code(walk: _Walk, issuer: CodeIssuer, customer: Subject) -> IssuedCode:
    """A code for STC, valid for exactly the policy's four hours."""
    walk.step(
        "A citizen signed in through national SSO asks for a code for STC.",
        "مواطن سجّل الدخول عبر النفاذ الوطني الموحد يطلب رمزًا لمزود الخدمة STC.",
    )
    issued = issuer.issue(customer, "stc")
    walk.show(
        f"code {issued.display}, valid until {_at(issued.expires_at)}",
        f"الرمز {issued.display}، صالح حتى {_at(issued.expires_at, 'ar')}",
    )
    walk.check(
        issued.expires_at - issued.issued_at == issuer.policy.ttl,
        "valid for exactly 4 hours",
        "صالح لمدة 4 ساعات بالضبط",
    )
    return issued


def _first_use(
    walk: _Walk,
    issuer: CodeIssuer[SignedRedemption],
    customer: Subject,
    issued: IssuedCode,
    jwks: Mapping[str, Any],
) -> SignedRedemption:
    """The agent uses the code; STC gets a pseudonym and a receipt it verifies on its own."""
    walk.step(
        "The STC agent uses it, in place of the fingerprint, to activate a SIM for its user.",
        "يستخدمه موظف STC بدلًا من البصمة لتفعيل بطاقة الاتصال للمستخدم الفعلي.",
    )
    redemption = issuer.redeem(
        customer, "stc", issued.code, ACTIVATION_FOR_ACTUAL_USER, request_id=_VISIT
    )
    walk.show(
        f"accepted for: {redemption.service.name_en}",
        f"قُبل الرمز لخدمة: {redemption.service.name_ar}",
    )
    walk.check(redemption.code_id == issued.code_id, "the code was accepted", "قُبل الرمز")
    walk.show(
        f"STC knows the customer as {redemption.customer_ref}, never by her ID",
        f"يعرف STC العميلة بالاسم المستعار {redemption.customer_ref}، لا برقم هويتها",
    )
    receipt = redemption.receipt
    walk.show(f"signed receipt (a JWT): {receipt.token[:40]}…", "إيصال موقّع يثبت الاستخدام")
    walk.check(
        verify_receipt(receipt.token, jwks, audience="stc") == receipt,
        "the receipt verifies with STC's copy of the public JWK Set alone",
        "يتحقق STC من الإيصال بمجموعة المفاتيح العامة وحدها",
    )
    return redemption


def _retry_and_reuse(
    walk: _Walk, issuer: CodeIssuer, customer: Subject, issued: IssuedCode, used: Redemption
) -> None:
    """The same request again returns the same redemption; another use is refused."""
    walk.step(
        "STC's system lost the answer and sends the same request again.",
        "فقد نظام STC الرد فأعاد إرسال الطلب نفسه.",
    )
    retried = issuer.redeem(
        customer, "stc", issued.code, ACTIVATION_FOR_ACTUAL_USER, request_id=_VISIT
    )
    walk.check(
        retried == used,
        "the same redemption and the same receipt come back, not 'already used'",
        "يعود الاستخدام نفسه والإيصال نفسه، لا رسالة 'مستخدم من قبل'",
    )
    walk.step(
        "The agent tries to use the same code a second time, for another service.",
        "يحاول الموظف استخدام الرمز نفسه مرة ثانية لخدمة أخرى.",
    )
    walk.refused(lambda: issuer.redeem(customer, "stc", issued.code, NEW_LINE), CodeAlreadyUsed)


def _other_provider(walk: _Walk, issuer: CodeIssuer, customer: Subject) -> IssuedCode:
    """A code for STC is refused at Zain; it is returned, still unused."""
    walk.step(
        "A new code for STC is presented to a Zain agent instead.",
        "يُقدَّم رمز جديد صادر لـ STC إلى موظف زين.",
    )
    for_stc = issuer.issue(customer, "stc")
    walk.refused(lambda: issuer.redeem(customer, "zain", for_stc.code, NEW_LINE), WrongCode)
    return for_stc


def _arabic_digits(walk: _Walk, issuer: CodeIssuer, customer: Subject, at_stc: Redemption) -> None:
    """A code typed in Arabic-Indic digits is accepted; Mobily gets its own pseudonym."""
    walk.step(
        "The customer asks for a code for Mobily; the agent types it in Arabic-Indic digits.",
        "يطلب العميل رمزًا لموبايلي، ويكتبه الموظف بالأرقام العربية الهندية.",
    )
    for_mobily = issuer.issue(customer, "mobily")
    typed = for_mobily.display.translate(_TO_ARABIC_INDIC)
    walk.show(f"typed as {typed!r}", f"كُتب هكذا: {typed}")
    accepted = issuer.redeem(customer, "mobily", typed, NEW_LINE)
    walk.check(
        accepted.code_id == for_mobily.code_id,
        "accepted for a new line",
        "قُبل الرمز لإصدار بطاقة جديدة",
    )
    walk.check(
        accepted.customer_ref != at_stc.customer_ref,
        "Mobily knows the customer by another pseudonym than STC: they cannot link her",
        "تعرف موبايلي العميلة باسم مستعار غير الذي يعرفه STC: فلا يمكنهما الربط بينهما",
    )


def _verdict(walk: _Walk, out: Callable[[str], object]) -> int:
    out("")
    if walk.failures:
        out(f"{walk.failures} step(s) did not behave as expected.")
        out(f"عدد الخطوات التي لم تسر كما هو متوقع: {walk.failures}")
        return 1
    out("Every step behaved as the rules say.")
    out("سارت جميع الخطوات وفق القواعد.")
    return 0


def run_demo(storage: Storage, out: Callable[[str], object] = print) -> int:
    """Walk through issuing and redeeming codes; return 0 when every step behaved as the rules say.

    Time comes from a ``ManualClock``, so the four-hour expiry is shown without waiting. A fresh
    keyring makes the walk independent of anything ``storage`` already holds.
    """
    clock = ManualClock(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    signer = ReceiptSigner.generate("r1")
    issuer = CodeIssuer(storage, keyring=Keyring.generate(), clock=clock, signer=signer)
    walk = _Walk(out)
    customer = Subject.citizen("1000000008")
    out("telecard-auth: SIM authentication codes, end to end")
    out("رمز توثيق بطاقات الاتصال: من الإصدار إلى الاستخدام")
    out(f"Storage / التخزين: {issuer.storage!r}; clock / الساعة: {_at(clock.now())}")
    issued = _first_code(walk, issuer, customer)
    used = _first_use(walk, issuer, customer, issued, signer.public_jwks())
    _retry_and_reuse(walk, issuer, customer, issued, used)
    for_stc = _other_provider(walk, issuer, customer)
    _arabic_digits(walk, issuer, customer, used)
    _number_transfer(walk, issuer, customer, for_stc.code)
    _expiry(walk, issuer, clock, customer)
    return _verdict(walk, out)


def demo(_args: argparse.Namespace, settings: Settings) -> Outcome:
    """The ``demo`` command: the walk, on a storage of its own."""
    # Only an explicit --storage counts: TELECARD_AUTH_STORAGE names real data, not a playground.
    url = settings.explicit_storage
    if url is None:
        # The default database belongs to the demo alone: each walk starts from an empty file.
        for suffix in ("", "-wal", "-shm"):
            Path(DEMO_DATABASE + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{DEMO_DATABASE}"
    storage = storage_from_url(url)
    transcript: list[str] = []
    with storage:
        storage.migrate()
        status = run_demo(storage, print if settings.for_people else transcript.append)
    data = {"ok": status == 0, "transcript": transcript}
    # For people, the walk printed itself as it went.
    return Outcome(data=data, lines=[], status=status)
