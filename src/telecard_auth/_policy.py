"""The policy: every setting the rules read, in one immutable object checked when built.

The policy holds settings and lookups only; the rules that apply them live in ``_core``.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from telecard_auth._errors import (
    InvalidPolicy,
    MalformedCode,
    UnknownProvider,
    UnknownService,
    clip,
)
from telecard_auth._model import (
    DEFAULT_SERVICES,
    SAUDI_PROVIDERS,
    Provider,
    Service,
    SubjectKind,
)
from telecard_auth._normalize import MAX_INPUT_LENGTH, fold_digits

__all__ = ["CodeFormat", "Policy", "default_government_id_validator"]

_PRINTABLE = re.compile(r"[!-~]+", re.ASCII)
_SEPARATOR_CHARS = frozenset(" -")
_GOVERNMENT_ID = re.compile(r"7[0-9]{9}", re.ASCII)
_MAX_CODE_LENGTH = 32


def _positive_int(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    # bool is an int in Python; True attempts is a configuration mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidPolicy(reason=f"{attribute.name} must be a whole number of at least 1")


def _positive_duration(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidPolicy(reason=f"{attribute.name} must be a positive timedelta")


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
    telecard_auth._errors.InvalidPolicy: The policy is not valid: ...
    """

    #: Fewest possible codes a format may have (10^8, the space of 8 decimal digits).
    MIN_COMBINATIONS: ClassVar[int] = 10**8

    length: int = attrs.field(default=8, validator=_positive_int)
    alphabet: str = "0123456789"
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


def default_government_id_validator(identifier: str) -> bool:
    """The assumed shape of a government body's identifier: 10 digits starting with ``7``.

    No public identifier scheme for government bodies is known; this mirrors the unified national
    number of establishments. Deployments that know better pass their own validator to ``Policy``.
    """
    return _GOVERNMENT_ID.fullmatch(identifier) is not None


def _catalogue(value: object, kind: type[Any], what: str) -> tuple[Any, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidPolicy(reason=f"{what} must be a sequence of {kind.__name__}")
    items = tuple(value)
    if not items or not all(isinstance(item, kind) for item in items):
        raise InvalidPolicy(reason=f"{what} must be a non-empty sequence of {kind.__name__}")
    if len({item.id for item in items}) != len(items):
        raise InvalidPolicy(reason=f"{what} ids must be unique")
    return items


def _providers(value: object) -> tuple[Provider, ...]:
    return _catalogue(value, Provider, "providers")


def _services(value: object) -> tuple[Service, ...]:
    return _catalogue(value, Service, "services")


def _kinds(value: object) -> frozenset[SubjectKind]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidPolicy(reason="eligible_kinds must be a set of SubjectKind")
    try:
        kinds = frozenset(value)
    except TypeError:
        raise InvalidPolicy(reason="eligible_kinds must be a set of SubjectKind") from None
    if not kinds or not all(isinstance(kind, SubjectKind) for kind in kinds):
        raise InvalidPolicy(reason="eligible_kinds must be a non-empty set of SubjectKind")
    return kinds


def _str_set(value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidPolicy(reason="expected a set of service ids")
    try:
        items = frozenset(value)
    except TypeError:
        raise InvalidPolicy(reason="expected a set of service ids") from None
    if not all(isinstance(item, str) for item in items):
        raise InvalidPolicy(reason="expected a set of service ids")
    return items


def _services_by_kind(value: object) -> Mapping[SubjectKind, frozenset[str]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, SubjectKind) for k in value):
        raise InvalidPolicy(reason="services_by_kind must map SubjectKind to sets of service ids")
    return MappingProxyType({kind: _str_set(ids) for kind, ids in value.items()})


def _ttl_by_service(value: object) -> Mapping[str, timedelta]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidPolicy(reason="ttl_by_service must map service ids to timedeltas")
    for ttl in value.values():
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise InvalidPolicy(reason="every ttl_by_service value must be a positive timedelta")
    return MappingProxyType(dict(value))


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
      any sliding window (10 per 24 hours). Issuing a new code does not reset it.
    - ``max_live_codes``: how many unexpired, unused codes one subject may hold at once (3).
    - ``retention``: how long a code's record is kept after it expires, so that a late attempt
      still hears "already used" or "expired" rather than "wrong code" (24 hours).
    - ``transfer_services``: services for which a code may be bound to a recipient.
    - ``government_id_validator``: decides whether a government body's identifier is valid.

    >>> from datetime import timedelta
    >>> policy = Policy(ttl_by_service={"number_transfer": timedelta(hours=1)})
    >>> policy.ttl_for("number_transfer"), policy.ttl_for("new_line")
    (datetime.timedelta(seconds=3600), datetime.timedelta(seconds=14400))
    """

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
    retention: timedelta = attrs.field(default=timedelta(hours=24), validator=_positive_duration)
    transfer_services: frozenset[str] = attrs.field(
        default=frozenset({"number_transfer"}), converter=_str_set
    )
    government_id_validator: Callable[[str], bool] = attrs.field(
        default=default_government_id_validator
    )

    _provider_by_id: Mapping[str, Provider] = attrs.field(init=False, repr=False, eq=False)
    _service_by_id: Mapping[str, Service] = attrs.field(init=False, repr=False, eq=False)
    _allowed: Mapping[SubjectKind, frozenset[str]] = attrs.field(init=False, repr=False, eq=False)
    _longest_ttl: Mapping[SubjectKind, timedelta] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.code_format, CodeFormat):
            raise InvalidPolicy(reason="code_format must be a CodeFormat")
        if not callable(self.government_id_validator):
            raise InvalidPolicy(reason="government_id_validator must be callable")
        services = {service.id: service for service in self.services}
        unknown = set(self.ttl_by_service) | set(self.transfer_services)
        if self.services_by_kind is not None:
            unknown.update(*self.services_by_kind.values())
        unknown -= set(services)
        if unknown:
            raise InvalidPolicy(reason=f"unknown service ids: {', '.join(sorted(unknown))}")
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

    def provider(self, value: object) -> Provider:
        """The registered provider for ``value`` (a ``Provider`` or its id)."""
        key = value.id if isinstance(value, Provider) else value
        found = self._provider_by_id.get(key) if isinstance(key, str) else None
        if found is None or (isinstance(value, Provider) and value != found):
            raise UnknownProvider(provider=clip(key))
        return found

    def service(self, value: object) -> Service:
        """The catalogue's service for ``value`` (a ``Service`` or its id)."""
        key = value.id if isinstance(value, Service) else value
        found = self._service_by_id.get(key) if isinstance(key, str) else None
        if found is None or (isinstance(value, Service) and value != found):
            raise UnknownService(service=clip(key))
        return found

    def services_for(self, kind: SubjectKind | str) -> frozenset[str]:
        """Ids of the services a subject of ``kind`` may use codes for."""
        return self._allowed[SubjectKind.parse(kind)]

    def ttl_for(self, service_id: str | None) -> timedelta:
        """How long a code is good for the given service (the default ``ttl`` if not overridden)."""
        if service_id is None:
            return self.ttl
        return self.ttl_by_service.get(service_id, self.ttl)

    def longest_ttl(self, kind: SubjectKind | str) -> timedelta:
        """The longest validity among the services ``kind`` may use: the life of an unbound code."""
        return self._longest_ttl[SubjectKind.parse(kind)]
