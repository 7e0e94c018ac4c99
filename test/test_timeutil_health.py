"""Stamps, time-jump detection and per-input health counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoloc_ros.errors import InputRejected, TimeJump
from geoloc_ros.health import InputHealth, Level
from geoloc_ros.timeutil import GapMeter, TimeGuard, s_to_stamp, stamp_to_s


@given(st.integers(0, 2**31 - 1), st.integers(0, 999_999_999))
def test_stamp_round_trip_within_float64_resolution(sec, nanosec):
    s2, ns2 = s_to_stamp(stamp_to_s(sec, nanosec))
    assert 0 <= ns2 < 1_000_000_000
    assert abs((s2 - sec) * 1_000_000_000 + (ns2 - nanosec)) <= 256  # ulp at 2^31 s is 238 ns


def test_s_to_stamp_carries_rounding_into_seconds():
    assert s_to_stamp(1.9999999999) == (2, 0)
    with pytest.raises(InputRejected):
        s_to_stamp(math.nan)


def test_time_guard_accepts_forward_rejects_duplicates_and_flags_jumps():
    g = TimeGuard(jump_back_s=1.0)
    g.check(10.0)
    g.check(10.1)
    with pytest.raises(InputRejected) as err:
        g.check(10.1)
    assert err.value.reason == "out_of_order"
    with pytest.raises(InputRejected):
        g.check(9.5)  # small step back: a reordered message, not a loop
    with pytest.raises(TimeJump):
        g.check(2.0)
    g.check(2.1)  # after a jump the new timeline is accepted
    with pytest.raises(InputRejected):
        g.check(-1.0)


def test_health_levels_rate_and_counts():
    h = InputHealth("imu", window_s=2.0)
    assert h.report(0.0).level == Level.OK
    for i in range(20):
        h.accept(i * 0.1)
    assert h.rate_hz(2.0) == pytest.approx(10.0, abs=0.6)
    h.reject(2.0, "nan", "angular_velocity contains NaN")
    r = h.report(2.0)
    assert r.level == Level.WARN and "NaN" in r.message
    assert r.values["rejected_nan"] == "1" and r.values["received"] == "21"
    assert h.report(10.0).level == Level.STALE  # silence after data: stale


def test_frame_rate_admits_by_stamp_and_restarts_when_time_goes_back():
    from geoloc_ros.timeutil import FrameRate

    rate = FrameRate(5.0)
    stamps = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # 10 Hz camera, 5 Hz budget
    assert [t for t in stamps if rate.admit(t)] == [0.0, 0.2, 0.4, 0.6]
    assert rate.admit(0.1)  # a bag loop: time went back, start afresh
    assert all(FrameRate(0.0).admit(t) for t in stamps)
    with pytest.raises(ValueError):
        FrameRate(-1.0)


def test_gap_meter_counts_holes_in_a_200_hz_stream_and_what_they_miss():
    meter = GapMeter()
    stamps = [i * 0.005 for i in range(400)]
    del stamps[100:140]  # 0.2 s of samples lost
    del stamps[250]  # one lost: a double step is jitter-sized, not a gap
    gaps = [g for g in map(meter.observe, stamps) if g is not None]
    assert gaps == [pytest.approx(0.205)]
    assert meter.gaps == 1 and meter.max_gap_s == pytest.approx(0.205)
    assert meter.missing_s == pytest.approx(0.2)
    meter.reset()
    assert meter.observe(0.0) is None and meter.gaps == 1  # a reset keeps the counts
