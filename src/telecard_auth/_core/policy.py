"""The policy: every setting the rules read, in one immutable object checked when built.

The policy holds settings and lookups only; the rules that apply them live in ``_core``.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import attrs

from telecard_auth._core.errors import InvalidPolicy, MalformedCode, UnknownProvider, UnknownService
from telecard_auth._core.model import (
    DEFAULT_SERVICES,
    SAUDI_PROVIDERS,
    Provider,
    Service,
    SubjectKind,
)
from telecard_auth._core.normalize import MAX_INPUT_LENGTH, fold_digits
from telecard_auth._core.text import clip, plain, plain_text

__all__ = ["CodeFormat", "GuessRisk", "Policy", "default_government_id_validator"]

_PRINTABLE = re.compile(r"[!-~]+", re.ASCII)
_SEPARATOR_CHARS = frozenset(" -")
_GOVERNMENT_ID = re.compile(r"7[0-9]{9}", re.ASCII)
_MAX_CODE_LENGTH = 32
#: The period the per-subject figure of ``GuessRisk`` covers.
_DAY = timedelta(hours=24)
#: Largest count a policy takes (attempts, failure budget, live codes): far past any real need,
#: and small enough that every figure computed from it stays exact and short to print.
_MAX_COUNT = 10**9
#: Longest duration a policy takes (TTLs, failure window, retention): a year, leap day included.
#: Times are bounded too (see ``CodeIssuer``), so no sum of them leaves what ``datetime`` holds.
_MAX_DURATION = timedelta(days=366)
#: Largest figure a ``GuessRisk`` takes: past the combinations of the longest code format.
_MAX_FIGURE = 10**100
#: How many unknown ids a refusal names before it only counts the rest.
_IDS_SHOWN = 5


def _limit_action(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    # A plain str by now (the field's converter): comparing it calls nothing of the caller's.
    if type(value) is not str or value not in ("refuse", "supersede"):
        raise InvalidPolicy(reason="on_live_code_limit must be 'refuse' or 'supersede'")


def _whole_number(most: int, shown: str) -> Callable[[object, attrs.Attribute[int], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        # bool is an int in Python; True attempts is a configuration mistake, not 1.
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise InvalidPolicy(reason=f"{attribute.name} must be a whole number from 1 to {shown}")

    return check


_positive_int = _whole_number(_MAX_COUNT, "10^9")
_figure = _whole_number(_MAX_FIGURE, "10^100")


def _count(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_COUNT:
        raise InvalidPolicy(reason=f"{attribute.name} must be a whole number from 0 to 10^9")


def _figure_or_zero(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_FIGURE:
        raise InvalidPolicy(reason=f"{attribute.name} must be a whole number from 0 to 10^100")


def _real_bool(_instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    # A truthy string or 1 is not a decision to accept a risk.
    if not isinstance(value, bool):
        raise InvalidPolicy(reason=f"{attribute.name} must be True or False")


def _positive_duration(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_duration(value, attribute.name)


def _check_duration(value: object, what: str) -> None:
    if not isinstance(value, timedelta) or not timedelta(0) < value <= _MAX_DURATION:
        raise InvalidPolicy(
            reason=f"{what} must be a positive timedelta of at most {_MAX_DURATION.days} days"
        )


@attrs.frozen(kw_only=True)
class CodeFormat:
    """How codes look: ``length`` characters drawn uniformly from ``alphabet`` with ``secrets``.

    The default is 8 decimal digits: 10^8 codes, about 26.6 bits. A format with fewer than
    ``MIN_COMBINATIONS`` possible codes is refused: with the default attempt limit an attacker's
    chance per code would exceed one in twenty million.

    >>> CodeFormat().bits
    26.6
    >>> CodeFormat(length=6)
    Traceback (most recent call last):
      ...
    telecard_auth._core.errors.InvalidPolicy: The policy is not valid: ...
    """

    #: Fewest possible codes a format may have (10^8, the space of 8 decimal digits).
    MIN_COMBINATIONS: ClassVar[int] = 10**8

    length: int = attrs.field(default=8, validator=_positive_int)
    alphabet: str = attrs.field(default="0123456789", converter=plain_text)
    _pattern: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)
    _fold_case: Callable[[str], str] | None = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        alphabet = self.alphabet
        if not isinstance(alphabet, str) or not _PRINTABLE.fullmatch(alphabet):
            raise InvalidPolicy(reason="the code alphabet must be printable ASCII characters")
        if len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:  # noqa: PLR2004
            raise InvalidPolicy(reason="the code alphabet needs at least 2 distinct characters")
        if _SEPARATOR_CHARS & set(alphabet):
            raise InvalidPolicy(reason="the code alphabet cannot hold '-' or ' ' (separators)")
        if self.length > _MAX_CODE_LENGTH:
            raise InvalidPolicy(reason=f"a code is at most {_MAX_CODE_LENGTH} characters long")
        if self.combinations < self.MIN_COMBINATIONS:
            raise InvalidPolicy(
                reason=(
                    f"{self.length} characters from an alphabet of {len(alphabet)} give only "
                    f"{self.combinations} codes ({self.bits} bits); at least "
                    f"{self.MIN_COMBINATIONS} (8 decimal digits) are needed so that guessing "
                    "stays hopeless; lengthen the code or widen the alphabet"
                )
            )
        # A single-case alphabet forgives the other case; a mixed-case one is case-sensitive.
        fold: Callable[[str], str] | None = None
        if alphabet == alphabet.upper() != alphabet.lower():
            fold = str.upper
        elif alphabet == alphabet.lower() != alphabet.upper():
            fold = str.lower
        object.__setattr__(self, "_fold_case", fold)
        chars = "".join(re.escape(char) for char in alphabet)
        object.__setattr__(self, "_pattern", re.compile(f"[{chars}]{{{self.length}}}", re.ASCII))

    @property
    def combinations(self) -> int:
        """How many distinct codes the format can produce."""
        return int(len(self.alphabet) ** self.length)

    @property
    def bits(self) -> float:
        """Entropy of one code in bits, rounded to a tenth."""
        return round(self.length * math.log2(len(self.alphabet)), 1)

    def generate(self) -> str:
        """A fresh code, uniformly random over the whole format."""
        if self.alphabet == "0123456789":
            return f"{secrets.randbelow(self.combinations):0{self.length}d}"
        base = len(self.alphabet)
        number = secrets.randbelow(self.combinations)
        chars = []
        for _ in range(self.length):
            number, digit = divmod(number, base)
            chars.append(self.alphabet[digit])
        return "".join(chars)

    def normalize(self, text: object) -> str:
        """The code as typed, folded to the canonical form; ``MalformedCode`` if it cannot be one.

        >>> CodeFormat().normalize("١٢٣٤ ٥٦٧٨")
        '12345678'
        """
        if isinstance(text, str) and len(text) <= MAX_INPUT_LENGTH:
            value = fold_digits(text)
            if self._fold_case is not None and value.isascii():
                value = self._fold_case(value)
            if self._pattern.fullmatch(value):
                return value
        raise MalformedCode(length=self.length, alphabet=self.alphabet)


def _chance(tries: int, combinations: int) -> float:
    # int / int is correctly rounded, so comparing with a threshold is exact up to one ulp; it is
    # only computed below 1, where no quotient of whole numbers can overflow a float.
    return 1.0 if tries >= combinations else tries / combinations


def _one_in(tries: int, combinations: int) -> int:
    # Rounded down: the odds shown are never better than the bound.
    return max(1, combinations // tries)


def _per_day(count: int, window: timedelta, span: timedelta = _DAY) -> int:
    # At most ``count`` in any window, and ``span`` split into ceil(span / window) windows.
    return count * -(-span // window)


@attrs.frozen(kw_only=True)
class GuessRisk:
    """The worst-case chance that an attacker guesses a code, as the policy's limits allow.

    Both figures are upper bounds, for an online attacker who does not know the code and whose
    every guess goes through ``redeem``; with ``N`` possible codes (``combinations``):

    - ``per_code = min(1, A / N)``, ``A`` being ``max_failed_attempts``: a code is compared with
      at most ``A`` guesses before it locks, and ``A`` guesses at a uniformly random code hit it
      with chance at most ``A / N`` (exactly, if they are distinct). The failure budget and the
      TTL may leave the attacker fewer guesses at one code; the figure does not count on it.
    - ``per_subject_per_day = min(1, P * (G * L + R) / N)``: the chance that an attacker
      guessing against ONE subject at ALL ``P`` providers of the policy during any 24 hours (from
      ``t`` to just before ``t + 24 h``) hits a live code. ``G`` is ``guesses_per_day``, the
      wrong guesses the failure budget lets through at one provider in 24 hours: at most
      ``failure_budget`` in any ``failure_window``, so
      ``failure_budget * ceil(24 h / failure_window)``. ``L`` is ``codes_tested_per_guess``, the
      live codes one guess is compared with: ``max_live_codes``, since a wrong code is charged
      against every live code of the subject at that provider. ``R`` is
      ``recovery_tries_per_day``, the comparisons recovery codes allow at one provider once the
      budget there is spent: a recovery code is compared only until ``recovery_attempts`` wrong
      guesses lock it, and at most ``recovery_codes`` are issued in any ``failure_window``. A
      code issued up to its TTL before the 24 hours start is still live in them, so the codes
      that can be guessed in 24 hours are those issued in ``24 h + T``, ``T`` being the longest
      TTL: ``R = recovery_codes * ceil((24 h + T) / failure_window) * recovery_attempts``. The
      union bound sums the chance of each (guess, live code) comparison, ``1 / N`` each. A guess
      compared with no live code cannot succeed and is counted nowhere; it adds nothing to the
      bound.

    The TTL and re-issuing do not tighten the bound. A code stops being live as soon as it locks,
    is used or is revoked, and the customer may then be issued another at once, so the number of
    codes a subject holds in a day has no limit but ``max_live_codes`` at a time; each guess can
    always meet ``L`` live codes, and only the failure budget limits the guesses. Nor does the
    bound credit that the ``L`` live codes are shared by all providers: a subject may hold them
    at one provider while it is guessed at, then at the next. At one provider the bound is
    reached, by a subject who re-issues each code as it locks; across several, ``max_live_codes``
    also caps the recovery codes live when a day starts, so the bound may be a little loose (the
    default's 304 tries are 278 at most). An attacker guessing for many subjects faces these odds
    for each of them.

    Each count is a whole number from 1 to 10^100 (``InvalidPolicy`` otherwise); a policy's
    figures are far smaller.

    The default policy: ``N = 10^8``, ``A = 5``, ``P = 8``, ``G = 10 * ceil(24 h / 24 h) = 10``,
    ``L = 3``, ``R = 2 * ceil((24 h + 4 h) / 24 h) * 2 = 8``:

    >>> risk = Policy().guess_risk
    >>> risk.per_code, risk.per_subject_per_day
    (5e-08, 3.04e-06)
    >>> risk.per_code_one_in, risk.per_subject_per_day_one_in
    (20000000, 328947)
    >>> print(risk)  # doctest: +NORMALIZE_WHITESPACE
    worst-case chance of a guessed code:
    1 in 20,000,000 per code (5 attempts over 100,000,000 codes);
    1 in 328,947 per subject per day
    (8 providers x (10 wrong guesses x 3 live codes + 8 recovery tries) = 304 tries
    over 100,000,000 codes)
    """

    #: How many distinct codes the format can produce (``N``).
    combinations: int = attrs.field(validator=_figure)
    #: Wrong attempts after which a code locks (``A``).
    max_failed_attempts: int = attrs.field(validator=_figure)
    #: How many providers one subject can be guessed at (``P``).
    providers: int = attrs.field(validator=_figure)
    #: Most wrong guesses counted at one provider in any 24 hours (``G``).
    guesses_per_day: int = attrs.field(validator=_figure)
    #: Most live codes one wrong guess is compared with (``L``).
    codes_tested_per_guess: int = attrs.field(validator=_figure)
    #: Most comparisons recovery codes allow at one provider in 24 hours (``R``).
    recovery_tries_per_day: int = attrs.field(default=0, validator=_figure_or_zero)
    #: Worst-case chance that one code is guessed before it locks: ``min(1, A / N)``.
    per_code: float = attrs.field(init=False)
    #: Worst-case chance that a subject's live code is guessed in 24 h: ``min(1, P*(G*L+R) / N)``.
    per_subject_per_day: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "per_code", _chance(self.max_failed_attempts, self.combinations))
        object.__setattr__(
            self, "per_subject_per_day", _chance(self.tries_per_day, self.combinations)
        )

    @property
    def tries_per_day(self) -> int:
        """Comparisons of a wrong guess with a live code, per subject in 24 h: ``P*(G*L+R)``."""
        per_provider = self.guesses_per_day * self.codes_tested_per_guess
        return self.providers * (per_provider + self.recovery_tries_per_day)

    @property
    def per_code_one_in(self) -> int:
        """``per_code`` as "1 in N": ``N // A``, rounded down, at least 1."""
        return _one_in(self.max_failed_attempts, self.combinations)

    @property
    def per_subject_per_day_one_in(self) -> int:
        """``per_subject_per_day`` as "1 in N": ``N // (P*(G*L+R))``, rounded down, at least 1."""
        return _one_in(self.tries_per_day, self.combinations)

    def __str__(self) -> str:
        return (
            f"worst-case chance of a guessed code: 1 in {self.per_code_one_in:,} per code "
            f"({self.max_failed_attempts} attempts over {self.combinations:,} codes); "
            f"1 in {self.per_subject_per_day_one_in:,} per subject per day "
            f"({self.providers} providers x ({self.guesses_per_day} wrong guesses x "
            f"{self.codes_tested_per_guess} live codes + {self.recovery_tries_per_day} recovery "
            f"tries) = {self.tries_per_day:,} tries over {self.combinations:,} codes)"
        )


def default_government_id_validator(identifier: str) -> bool:
    """The assumed shape of a government body's identifier: 10 digits starting with ``7``.

    No public identifier scheme for government bodies is known; this mirrors the unified national
    number of establishments. Deployments that know better pass their own validator to ``Policy``.
    """
    return _GOVERNMENT_ID.fullmatch(identifier) is not None


def _limit(chance: float) -> str:
    return f"1 in {1 / chance:,.0f} ({chance:.3g})"


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """Turn whatever a caller's container raises while it is read into ``InvalidPolicy``."""
    try:
        yield
    except InvalidPolicy:
        raise
    except Exception as error:
        # Its iteration, hashing or comparison is the caller's code: any exception may come out.
        raise InvalidPolicy(reason=f"{what} could not be read") from error


def _catalogue(value: object, kind: type[Any], what: str) -> tuple[Any, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidPolicy(reason=f"{what} must be a sequence of {kind.__name__}")
    with _reading(what):
        items = tuple(value)
    if not items or not all(isinstance(item, kind) for item in items):
        raise InvalidPolicy(reason=f"{what} must be a non-empty sequence of {kind.__name__}")
    # Ids are text (the classes' validators) and hashed as plain str: nothing of a subclass runs.
    if len({plain(item.id) for item in items}) != len(items):
        raise InvalidPolicy(reason=f"{what} ids must be unique")
    return items


def _providers(value: object) -> tuple[Provider, ...]:
    return _catalogue(value, Provider, "providers")


def _services(value: object) -> tuple[Service, ...]:
    return _catalogue(value, Service, "services")


def _kinds(value: object) -> frozenset[SubjectKind]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidPolicy(reason="eligible_kinds must be a set of SubjectKind")
    with _reading("eligible_kinds"):
        items = tuple(value)
    if not items or not all(isinstance(kind, SubjectKind) for kind in items):
        raise InvalidPolicy(reason="eligible_kinds must be a non-empty set of SubjectKind")
    return frozenset(items)


def _str_set(value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidPolicy(reason="expected a set of service ids")
    with _reading("a set of service ids"):
        items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise InvalidPolicy(reason="expected a set of service ids")
    return frozenset(plain(item) for item in items)


def _services_by_kind(value: object) -> Mapping[SubjectKind, frozenset[str]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidPolicy(reason="services_by_kind must map SubjectKind to sets of service ids")
    with _reading("services_by_kind"):
        pairs = list(value.items())
    if not all(isinstance(kind, SubjectKind) for kind, _ in pairs):
        raise InvalidPolicy(reason="services_by_kind must map SubjectKind to sets of service ids")
    return MappingProxyType({kind: _str_set(ids) for kind, ids in pairs})


def _ttl_by_service(value: object) -> Mapping[str, timedelta]:
    if not isinstance(value, Mapping):
        raise InvalidPolicy(reason="ttl_by_service must map service ids to timedeltas")
    with _reading("ttl_by_service"):
        pairs = list(value.items())
    if not all(isinstance(service_id, str) for service_id, _ in pairs):
        raise InvalidPolicy(reason="ttl_by_service must map service ids to timedeltas")
    for _, ttl in pairs:
        _check_duration(ttl, "every ttl_by_service value")
    return MappingProxyType({plain(service_id): ttl for service_id, ttl in pairs})


def _listed(ids: Iterable[str]) -> str:
    """Ids for a message: sorted, each clipped, and only the first few named."""
    shown = sorted(ids)
    listed = ", ".join(clip(service_id) for service_id in shown[:_IDS_SHOWN])
    rest = len(shown) - _IDS_SHOWN
    return f"{listed} and {rest:,} more" if rest > 0 else listed


@attrs.frozen(kw_only=True)
class Policy:
    """Every setting of the service, checked when built. The defaults follow the regulator.

    - ``providers``: the operators a code can be issued for (default: the eight Saudi operators).
    - ``services``: the catalogue (default: the article's four services).
    - ``eligible_kinds``: who may hold codes (default: all four kinds).
    - ``services_by_kind``: services allowed per kind; a kind left out gets none; ``None`` (the
      default) allows every service to every eligible kind.
    - ``ttl``: how long a code is valid, 4 hours; ``ttl_by_service`` overrides it per service.
    - ``code_format``: 8 decimal digits by default.
    - ``max_failed_attempts``: wrong attempts after which a code locks (5).
    - ``failure_budget`` / ``failure_window``: wrong attempts allowed per subject and provider in
      any sliding window (10 per 24 hours). Issuing a new code does not reset it. Only a wrong
      code that was compared with a live code of the subject at that provider counts.
    - ``recovery_codes`` / ``recovery_attempts``: the way back for a customer whose budget at a
      provider is spent. A code issued then (the customer authenticated again and asked anew) is
      a recovery code: while the budget is spent, only recovery codes are compared, and each
      locks after ``recovery_attempts`` wrong attempts (2; at most ``max_failed_attempts``). At
      most ``recovery_codes`` are issued per provider in any ``failure_window`` (2; 0 turns
      recovery off); further codes are ordinary ones, usable once the budget frees.
    - ``max_live_codes``: how many unexpired, unused codes one subject may hold at once (3).
    - ``on_live_code_limit``: what issuing one more code at that limit does: ``"refuse"`` (the
      default: ``LiveCodeLimitReached``) or ``"supersede"`` (the oldest live code stops working,
      in the same atomic change that issues the new one).
    - ``retention``: how long a code's record is kept after it expires, so that a late attempt
      still hears "already used" or "expired" rather than "wrong code" (24 hours).
    - ``transfer_services``: services for which a code may be bound to a recipient
      (``number_transfer``, when the catalogue has it).
    - ``government_id_validator``: decides whether a government body's identifier is valid.
    - ``accept_guess_risk``: build the policy even if its ``guess_risk`` is above the limits.

    Counts (``max_failed_attempts``, ``failure_budget``, ``max_live_codes``,
    ``recovery_attempts``) are whole numbers from 1 to ``MAX_COUNT`` (10^9), ``recovery_codes``
    from 0; durations (``ttl``, each ``ttl_by_service`` value,
    ``failure_window``, ``retention``) are positive and at most ``MAX_DURATION`` (366 days).
    Anything else is ``InvalidPolicy``.

    ``guess_risk`` gives the worst-case chance that a code is guessed (see ``GuessRisk``). A
    policy is refused unless both figures are within the limits, or ``accept_guess_risk=True``:

    - ``per_code`` at most ``MAX_GUESS_CHANCE_PER_CODE``, one in a million: the 10^8 codes of 8
      digits with up to 100 attempts, the most consecutive failures NIST SP 800-63B lets a
      verifier allow;
    - ``per_subject_per_day`` at most ``MAX_GUESS_CHANCE_PER_SUBJECT_DAY``, one in 100,000:
      1,000 tries a day against 10^8 codes.

    The default policy is 1 in 20,000,000 per code and 1 in 328,947 per subject per day; it stays
    within the limits with up to 3 times its failure budget or live codes. ``attrs.evolve`` keeps
    ``accept_guess_risk``: a policy evolved from an accepted one is accepted too.

    >>> from datetime import timedelta
    >>> policy = Policy(ttl_by_service={"number_transfer": timedelta(hours=1)})
    >>> policy.ttl_for("number_transfer"), policy.ttl_for("new_line")
    (datetime.timedelta(seconds=3600), datetime.timedelta(seconds=14400))
    >>> Policy(failure_budget=100)
    Traceback (most recent call last):
      ...
    telecard_auth._core.errors.InvalidPolicy: The policy is not valid: ...
    >>> Policy(failure_budget=100, accept_guess_risk=True).guess_risk.per_subject_per_day
    2.464e-05
    """

    #: Highest ``guess_risk.per_code`` a policy may have without ``accept_guess_risk``.
    MAX_GUESS_CHANCE_PER_CODE: ClassVar[float] = 1e-6
    #: Highest ``guess_risk.per_subject_per_day`` a policy may have without ``accept_guess_risk``.
    MAX_GUESS_CHANCE_PER_SUBJECT_DAY: ClassVar[float] = 1e-5
    #: Largest count a policy takes: attempts, failure budget, live codes.
    MAX_COUNT: ClassVar[int] = _MAX_COUNT
    #: Longest duration a policy takes: TTLs, failure window, retention.
    MAX_DURATION: ClassVar[timedelta] = _MAX_DURATION

    providers: tuple[Provider, ...] = attrs.field(default=SAUDI_PROVIDERS, converter=_providers)
    services: tuple[Service, ...] = attrs.field(default=DEFAULT_SERVICES, converter=_services)
    eligible_kinds: frozenset[SubjectKind] = attrs.field(
        default=frozenset(SubjectKind), converter=_kinds
    )
    services_by_kind: Mapping[SubjectKind, frozenset[str]] | None = attrs.field(
        default=None, converter=_services_by_kind
    )
    ttl: timedelta = attrs.field(default=timedelta(hours=4), validator=_positive_duration)
    ttl_by_service: Mapping[str, timedelta] = attrs.field(factory=dict, converter=_ttl_by_service)
    code_format: CodeFormat = attrs.field(factory=CodeFormat)
    max_failed_attempts: int = attrs.field(default=5, validator=_positive_int)
    failure_budget: int = attrs.field(default=10, validator=_positive_int)
    failure_window: timedelta = attrs.field(
        default=timedelta(hours=24), validator=_positive_duration
    )
    max_live_codes: int = attrs.field(default=3, validator=_positive_int)
    recovery_codes: int = attrs.field(default=2, validator=_count)
    recovery_attempts: int = attrs.field(default=2, validator=_positive_int)
    on_live_code_limit: Literal["refuse", "supersede"] = attrs.field(
        default="refuse", converter=plain_text, validator=_limit_action
    )
    retention: timedelta = attrs.field(default=timedelta(hours=24), validator=_positive_duration)
    transfer_services: frozenset[str] = attrs.field(converter=_str_set)
    government_id_validator: Callable[[str], bool] = attrs.field(
        default=default_government_id_validator
    )
    accept_guess_risk: bool = attrs.field(default=False, validator=_real_bool)

    @transfer_services.default
    def _transfer_services_in_catalogue(self) -> frozenset[str]:
        # The default names number transfer only when the catalogue has it, so that a policy
        # with a catalogue of its own need not also clear this field.
        return frozenset({"number_transfer"}) & {service.id for service in self.services}

    _provider_by_id: Mapping[str, Provider] = attrs.field(init=False, repr=False, eq=False)
    _service_by_id: Mapping[str, Service] = attrs.field(init=False, repr=False, eq=False)
    _allowed: Mapping[SubjectKind, frozenset[str]] = attrs.field(init=False, repr=False, eq=False)
    _longest_ttl: Mapping[SubjectKind, timedelta] = attrs.field(init=False, repr=False, eq=False)
    _guess_risk: GuessRisk = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.code_format, CodeFormat):
            raise InvalidPolicy(reason="code_format must be a CodeFormat")
        if not callable(self.government_id_validator):
            raise InvalidPolicy(reason="government_id_validator must be callable")
        if self.recovery_attempts > self.max_failed_attempts:
            raise InvalidPolicy(reason="recovery_attempts cannot exceed max_failed_attempts")
        services = {service.id: service for service in self.services}
        unknown = set(self.ttl_by_service) | set(self.transfer_services)
        if self.services_by_kind is not None:
            unknown.update(*self.services_by_kind.values())
        unknown -= set(services)
        if unknown:
            raise InvalidPolicy(reason=f"unknown service ids: {_listed(unknown)}")
        allowed = {
            kind: (
                frozenset(services)
                if self.services_by_kind is None
                else self.services_by_kind.get(kind, frozenset())
            )
            for kind in SubjectKind
        }
        longest = {
            kind: max((self.ttl_for(sid) for sid in ids), default=self.ttl)
            for kind, ids in allowed.items()
        }
        object.__setattr__(self, "_provider_by_id", {p.id: p for p in self.providers})
        object.__setattr__(self, "_service_by_id", services)
        object.__setattr__(self, "_allowed", allowed)
        object.__setattr__(self, "_longest_ttl", longest)
        risk = GuessRisk(
            combinations=self.code_format.combinations,
            max_failed_attempts=self.max_failed_attempts,
            providers=len(self.providers),
            guesses_per_day=_per_day(self.failure_budget, self.failure_window),
            codes_tested_per_guess=self.max_live_codes,
            recovery_tries_per_day=(
                _per_day(self.recovery_codes, self.failure_window, _DAY + max(longest.values()))
                * self.recovery_attempts
            ),
        )
        object.__setattr__(self, "_guess_risk", risk)
        if not self.accept_guess_risk:
            self._refuse_guess_risk(risk)

    def _refuse_guess_risk(self, risk: GuessRisk) -> None:
        too_high = []
        if risk.per_code > self.MAX_GUESS_CHANCE_PER_CODE:
            too_high.append(
                f"the worst-case chance that one code is guessed before it locks is "
                f"1 in {risk.per_code_one_in:,} ({risk.per_code:.3g}: "
                f"{risk.max_failed_attempts} attempts over {risk.combinations:,} codes), above "
                f"the limit of {_limit(self.MAX_GUESS_CHANCE_PER_CODE)}; lower "
                "max_failed_attempts or lengthen the code"
            )
        if risk.per_subject_per_day > self.MAX_GUESS_CHANCE_PER_SUBJECT_DAY:
            too_high.append(
                f"the worst-case chance that one subject's live code is guessed in a day is "
                f"1 in {risk.per_subject_per_day_one_in:,} ({risk.per_subject_per_day:.3g}: "
                f"{risk.providers} providers x ({risk.guesses_per_day} wrong guesses a day "
                f"at each x {risk.codes_tested_per_guess} live codes + "
                f"{risk.recovery_tries_per_day} recovery tries) over "
                f"{risk.combinations:,} codes), above the limit of "
                f"{_limit(self.MAX_GUESS_CHANCE_PER_SUBJECT_DAY)}; lower failure_budget, "
                "max_live_codes, recovery_codes, recovery_attempts or the number of providers, "
                "lengthen failure_window or the code"
            )
        if too_high:
            raise InvalidPolicy(
                reason="; ".join(too_high) + "; or pass accept_guess_risk=True to accept the risk"
            )

    @property
    def guess_risk(self) -> GuessRisk:
        """The worst-case chance that an attacker guesses a code under this policy."""
        return self._guess_risk

    def provider(self, value: object) -> Provider:
        """The registered provider for ``value`` (a ``Provider`` or its id)."""
        if isinstance(value, Provider):
            found = self._provider_by_id.get(value.id)
            if found is None or value != found:
                raise UnknownProvider()
            return found
        if isinstance(value, str):
            found = self._provider_by_id.get(value if type(value) is str else plain(value))
            if found is not None:
                return found
        raise UnknownProvider()

    def service(self, value: object) -> Service:
        """The catalogue's service for ``value`` (a ``Service`` or its id)."""
        if isinstance(value, Service):
            found = self._service_by_id.get(value.id)
            if found is None or value != found:
                raise UnknownService()
            return found
        if isinstance(value, str):
            found = self._service_by_id.get(value if type(value) is str else plain(value))
            if found is not None:
                return found
        raise UnknownService()

    def services_for(self, kind: SubjectKind | str) -> frozenset[str]:
        """Ids of the services a subject of ``kind`` may use codes for."""
        return self._allowed[SubjectKind.parse(kind)]

    def ttl_for(self, service_id: str | None) -> timedelta:
        """How long a code is good for the given service (the default ``ttl`` if not overridden).

        Any id but text is ``UnknownService``; an id the catalogue lacks gets the default.
        """
        if service_id is None:
            return self.ttl
        if type(service_id) is not str:
            if not isinstance(service_id, str):
                raise UnknownService()
            service_id = plain(service_id)
        return self.ttl_by_service.get(service_id, self.ttl)

    @property
    def key_retirement_delay(self) -> timedelta:
        """How long after a new HMAC key becomes current the previous key can be retired.

        The longest life of any code (every code digested with the old key has expired by then)
        plus ``retention`` (its record is gone, so no late attempt hears "wrong code" instead of
        "already used" or "expired"). 28 hours with the defaults.

        >>> Policy().key_retirement_delay
        datetime.timedelta(days=1, seconds=14400)
        """
        return max(self._longest_ttl.values()) + self.retention

    def longest_ttl(self, kind: SubjectKind | str) -> timedelta:
        """The longest validity among the services ``kind`` may use: the life of an unbound code."""
        return self._longest_ttl[SubjectKind.parse(kind)]
