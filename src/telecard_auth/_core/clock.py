"""Where "now" comes from: an injected clock, always timezone-aware UTC."""

from __future__ import annotations

import operator
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from telecard_auth._core.errors import InvalidTime

__all__ = ["Clock", "ManualClock", "SystemClock", "ensure_utc"]


@runtime_checkable
class Clock(Protocol):
    """Anything with a ``now()`` that returns a timezone-aware datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


def ensure_utc(moment: object, *, what: str = "time") -> datetime:
    """Return ``moment`` converted to UTC; refuse anything but an aware datetime.

    >>> ensure_utc(datetime(2026, 1, 1, 3, tzinfo=UTC)).isoformat()
    '2026-01-01T03:00:00+00:00'
    """
    if not isinstance(moment, datetime):
        raise InvalidTime(
            reason=f"{what} must be a datetime", reason_ar="يجب أن يكون الوقت من نوع datetime"
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidTime(
            reason=f"{what} has no timezone (naive datetimes are refused)",
            reason_ar="الوقت بلا منطقة زمنية (يُرفض الوقت المجرّد)",
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidTime(
            reason=f"{what} is out of range", reason_ar="الوقت خارج النطاق المسموح"
        ) from None


def _amount(value: object) -> float:
    """A keyword amount of ``ManualClock.advance`` as an exact int or float; else InvalidTime."""
    # Checked by type, and copied out of a subclass without calling anything it overrides.
    if isinstance(value, int) and not isinstance(value, bool):
        return operator.index(value)
    if isinstance(value, float):
        return float.__float__(value)
    raise InvalidTime(
        reason="the amounts to advance by must be numbers",
        reason_ar="يجب أن تكون مقادير التقديم أرقامًا",
    )


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to, and never backwards. For tests and demos.

    >>> from datetime import UTC, datetime
    >>> clock = ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    >>> clock.advance(hours=4).isoformat()
    '2026-03-01T13:00:00+00:00'
    """

    #: Where a ``ManualClock()`` built without a start begins.
    DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

    def __init__(self, start: datetime | None = None) -> None:
        self._now = ensure_utc(self.DEFAULT_START if start is None else start, what="start")
        # The clock is shared by every thread of a race test; moving it must not tear.
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time the clock was last set to."""
        return self._now

    def advance(
        self,
        delta: timedelta | None = None,
        *,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        microseconds: float = 0,
    ) -> datetime:
        """Move forward by ``delta`` (or by the keyword amounts) and return the new time.

        The keyword amounts are ints or floats; anything else, or an amount too large for a
        ``timedelta``, is ``InvalidTime``.
        """
        hours, minutes, seconds, microseconds = amounts = (
            _amount(hours),
            _amount(minutes),
            _amount(seconds),
            _amount(microseconds),
        )
        if delta is None:
            try:
                delta = timedelta(
                    hours=hours, minutes=minutes, seconds=seconds, microseconds=microseconds
                )
            except (ValueError, OverflowError):
                raise InvalidTime(
                    reason="the amounts to advance by are out of range",
                    reason_ar="مقادير التقديم خارج النطاق المسموح",
                ) from None
        elif not isinstance(delta, timedelta) or any(amounts):
            raise InvalidTime(
                reason="advance takes one timedelta or keyword amounts",
                reason_ar="يجب أن يكون مقدار التقديم مدة زمنية واحدة",
            )
        if delta < timedelta(0):
            raise InvalidTime(
                reason="a manual clock never goes backwards",
                reason_ar="لا يمكن إرجاع الساعة اليدوية إلى الوراء",
            )
        with self._lock:
            try:
                self._now += delta
            except OverflowError:
                raise InvalidTime(
                    reason="the clock would pass the last representable time",
                    reason_ar="الوقت خارج النطاق المسموح",
                ) from None
            return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment``, which must be aware and not earlier than now."""
        moment = ensure_utc(moment)
        with self._lock:
            if moment < self._now:
                raise InvalidTime(
                    reason="a manual clock never goes backwards",
                    reason_ar="لا يمكن إرجاع الساعة اليدوية إلى الوراء",
                )
            self._now = moment
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()!r})"
