"""Tests for the clocks and the aware-UTC rule: naive datetimes are refused, time never rewinds."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import START
from tests.strategies import aware_datetimes, naive_datetimes

from telecard_auth import Clock, InvalidInput, InvalidTime, ManualClock, SystemClock
from telecard_auth._core.clock import ensure_utc

RIYADH = timezone(timedelta(hours=3))


class _NoOffset(tzinfo):
    """A tzinfo that is attached but knows no offset: the datetime is still naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


# --- ensure_utc ----------------------------------------------------------------------------------


def test_ensure_utc_keeps_utc() -> None:
    """A UTC datetime comes back equal and in UTC."""
    assert START == ensure_utc(START)
    assert UTC is ensure_utc(START).tzinfo


def test_ensure_utc_converts_other_offsets() -> None:
    """Noon in Riyadh (UTC+3) is 09:00 UTC."""
    converted = ensure_utc(datetime(2026, 3, 1, 12, 0, tzinfo=RIYADH))
    assert datetime(2026, 3, 1, 9, 0, tzinfo=UTC) == converted
    assert UTC is converted.tzinfo
    assert "2026-03-01T09:00:00+00:00" == converted.isoformat()


@given(aware_datetimes())
def test_ensure_utc_keeps_the_instant(moment: datetime) -> None:
    """Any aware datetime keeps its instant and gets a zero offset."""
    converted = ensure_utc(moment)
    assert moment == converted
    assert timedelta(0) == converted.utcoffset()
    assert UTC is converted.tzinfo


@given(naive_datetimes())
def test_ensure_utc_refuses_naive(moment: datetime) -> None:
    """Any naive datetime is InvalidTime."""
    with pytest.raises(InvalidTime) as excinfo:
        ensure_utc(moment)
    assert "invalid_time" == excinfo.value.code


def test_ensure_utc_refuses_a_tzinfo_without_offset() -> None:
    """A tzinfo whose utcoffset() is None does not make a datetime aware."""
    with pytest.raises(InvalidTime):
        ensure_utc(datetime(2026, 1, 1, tzinfo=_NoOffset()))


@pytest.mark.parametrize(
    "value", [None, "2026-01-01T00:00:00+00:00", 1767225600, 1.7e9, date(2026, 1, 1)]
)
def test_ensure_utc_refuses_non_datetimes(value: object) -> None:
    """Strings, timestamps and plain dates are InvalidTime."""
    with pytest.raises(InvalidTime) as excinfo:
        ensure_utc(value)
    assert "invalid_time" == excinfo.value.code


def test_ensure_utc_names_what_was_wrong() -> None:
    """The refusal names the value it was asked to check, in both languages."""
    with pytest.raises(InvalidTime) as excinfo:
        ensure_utc(datetime(2026, 1, 1), what="issued_at")
    error = excinfo.value
    assert "issued_at has no timezone (naive datetimes are refused)" == error.details["reason"]
    assert error.details["reason"] in error.message_en
    assert error.details["reason_ar"] in error.message_ar
    assert isinstance(error, InvalidInput)


# --- ManualClock: construction -------------------------------------------------------------------


def test_manual_clock_default_start() -> None:
    """Without a start the clock reads 2026-01-01T00:00Z, its documented default."""
    assert datetime(2026, 1, 1, tzinfo=UTC) == ManualClock().now()
    assert ManualClock.DEFAULT_START == ManualClock().now()


def test_manual_clock_starts_where_told() -> None:
    """A clock built with a start reads that moment, and keeps reading it."""
    clock = ManualClock(START)
    assert START == clock.now()
    assert START == clock.now()


def test_manual_clock_converts_its_start_to_utc() -> None:
    """A start in another timezone is stored as the same instant in UTC."""
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=RIYADH))
    assert START == clock.now()
    assert UTC is clock.now().tzinfo


@pytest.mark.parametrize(
    "start", [datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=_NoOffset()), "2026-01-01", 0]
)
def test_manual_clock_refuses_a_bad_start(start: object) -> None:
    """A naive or non-datetime start is InvalidTime."""
    with pytest.raises(InvalidTime) as excinfo:
        ManualClock(start)  # type: ignore[arg-type]
    assert "invalid_time" == excinfo.value.code


def test_manual_clock_is_a_clock() -> None:
    """ManualClock and SystemClock satisfy the Clock protocol."""
    assert isinstance(ManualClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_manual_clock_repr() -> None:
    """repr shows the current time."""
    assert "ManualClock('2026-03-01T09:00:00+00:00')" == repr(ManualClock(START))


# --- ManualClock: advance ------------------------------------------------------------------------


def test_advance_by_timedelta() -> None:
    """advance(delta) moves the clock and returns the new time."""
    clock = ManualClock(START)
    assert START + timedelta(hours=4) == clock.advance(timedelta(hours=4))
    assert START + timedelta(hours=4) == clock.now()


def test_advance_by_keywords() -> None:
    """Keyword amounts add up, fractions included."""
    clock = ManualClock(START)
    moved = clock.advance(hours=1.5, minutes=2, seconds=3, microseconds=4)
    assert START + timedelta(hours=1, minutes=32, seconds=3, microseconds=4) == moved
    assert moved == clock.now()


def test_advance_accumulates() -> None:
    """Successive advances add up."""
    clock = ManualClock(START)
    clock.advance(hours=3, minutes=59, seconds=59)
    clock.advance(seconds=1)
    assert START + timedelta(hours=4) == clock.now()


def test_advance_by_nothing_stays() -> None:
    """advance() and advance(timedelta(0)) leave the time as it was."""
    clock = ManualClock(START)
    assert START == clock.advance()
    assert START == clock.advance(timedelta(0))


@pytest.mark.parametrize(
    ("hours", "minutes", "seconds", "microseconds"),
    [(-1, 0, 0, 0), (0, -0.5, 0, 0), (0, 0, -1, 0), (0, 0, 0, -1), (1, -61, 0, 0)],
)
def test_advance_refuses_negative_keywords(
    hours: float, minutes: float, seconds: float, microseconds: float
) -> None:
    """A negative total amount is InvalidTime and leaves the clock where it was."""
    clock = ManualClock(START)
    with pytest.raises(InvalidTime) as excinfo:
        clock.advance(hours=hours, minutes=minutes, seconds=seconds, microseconds=microseconds)
    assert "invalid_time" == excinfo.value.code
    assert START == clock.now()


def test_advance_refuses_negative_timedelta() -> None:
    """advance(-delta) is InvalidTime and leaves the clock where it was."""
    clock = ManualClock(START)
    with pytest.raises(InvalidTime) as excinfo:
        clock.advance(timedelta(microseconds=-1))
    assert "a manual clock never goes backwards" == excinfo.value.details["reason"]
    assert START == clock.now()


@pytest.mark.parametrize("delta", [3600, 1.5, "1h", START])
def test_advance_refuses_non_timedelta(delta: object) -> None:
    """Numbers, strings and datetimes are not durations."""
    clock = ManualClock(START)
    with pytest.raises(InvalidTime) as excinfo:
        clock.advance(delta)  # type: ignore[arg-type]
    assert "invalid_time" == excinfo.value.code
    assert START == clock.now()


@given(st.lists(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)), max_size=10))
def test_advance_sums_and_never_goes_back(deltas: list[timedelta]) -> None:
    """After any non-negative advances the clock reads start plus their sum, never less."""
    clock = ManualClock(START)
    previous = clock.now()
    for delta in deltas:
        now = clock.advance(delta)
        assert now >= previous
        previous = now
    assert START + sum(deltas, timedelta(0)) == clock.now()


def test_advance_is_thread_safe() -> None:
    """Concurrent advances from many threads lose none of the time added."""
    clock = ManualClock(START)
    threads_count, steps = 8, 500
    barrier = threading.Barrier(threads_count)

    def work() -> None:
        barrier.wait()
        for _ in range(steps):
            clock.advance(microseconds=1)

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert START + timedelta(microseconds=threads_count * steps) == clock.now()


# --- ManualClock: set ----------------------------------------------------------------------------


def test_set_moves_forward() -> None:
    """set() jumps forward and returns the new time."""
    clock = ManualClock(START)
    later = START + timedelta(days=3)
    assert later == clock.set(later)
    assert later == clock.now()


def test_set_to_now_is_allowed() -> None:
    """Setting the clock to the time it already reads is not going backwards."""
    clock = ManualClock(START)
    assert START == clock.set(START)


def test_set_converts_to_utc() -> None:
    """set() with another timezone stores the same instant in UTC."""
    clock = ManualClock(START)
    moved = clock.set(datetime(2026, 3, 1, 15, 0, tzinfo=RIYADH))
    assert datetime(2026, 3, 1, 12, 0, tzinfo=UTC) == moved
    assert UTC is clock.now().tzinfo


def test_set_refuses_going_backwards() -> None:
    """set() to an earlier moment is InvalidTime and leaves the clock where it was."""
    clock = ManualClock(START)
    with pytest.raises(InvalidTime) as excinfo:
        clock.set(START - timedelta(microseconds=1))
    assert "a manual clock never goes backwards" == excinfo.value.details["reason"]
    assert START == clock.now()


def test_set_refuses_an_earlier_instant_in_another_zone() -> None:
    """Wall-clock 11:00 in Riyadh is 08:00 UTC: earlier than 09:00 UTC, so refused."""
    clock = ManualClock(START)
    with pytest.raises(InvalidTime):
        clock.set(datetime(2026, 3, 1, 11, 0, tzinfo=RIYADH))
    assert START == clock.now()


@pytest.mark.parametrize("moment", [datetime(2027, 1, 1), "2027-01-01T00:00:00Z", None])
def test_set_refuses_naive_and_non_datetimes(moment: object) -> None:
    """set() refuses a naive datetime (even a later one) and anything not a datetime."""
    clock = ManualClock(START)
    with pytest.raises(InvalidTime) as excinfo:
        clock.set(moment)  # type: ignore[arg-type]
    assert "invalid_time" == excinfo.value.code
    assert START == clock.now()


# --- SystemClock ---------------------------------------------------------------------------------


def test_system_clock_is_aware_utc() -> None:
    """SystemClock.now() is an aware UTC datetime between two readings of the machine's clock."""
    before = datetime.now(UTC)
    now = SystemClock().now()
    after = datetime.now(UTC)
    assert UTC is now.tzinfo
    assert before <= now <= after


def test_system_clock_repr() -> None:
    """repr names the class."""
    assert "SystemClock()" == repr(SystemClock())
