"""Time conventions: sensor time as float64 seconds, ROS stamps as (sec, nanosec).

`TimeGuard` detects time going backwards (bag loops, clock resets) per input, the
condition on which every estimator resets cleanly. `FrameRate` and `Decimator` thin
streams by their stamps, so offline replays and the nodes keep the same messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geoloc_ros.errors import InputRejected, TimeJump

NS_PER_S = 1_000_000_000
RATE_JITTER = 0.9  # a decimated output is due after 90 % of its period (stamp jitter)


def stamp_to_s(sec: int, nanosec: int) -> float:
    """ROS stamp (sec, nanosec) to float seconds."""
    return sec + nanosec * 1e-9


def s_to_stamp(t_s: float) -> tuple[int, int]:
    """Float seconds to a ROS stamp (sec, nanosec) with 0 <= nanosec < 1e9, rounded to 1 ns."""
    if not math.isfinite(t_s):
        raise InputRejected(f"timestamp {t_s} is not finite", reason="stamp")
    total_ns = round(t_s * NS_PER_S)
    sec, nanosec = divmod(total_ns, NS_PER_S)
    return int(sec), int(nanosec)


@dataclass
class TimeGuard:
    """Checks that the stamps of one input stream move forward.

    A stamp older than the last one by more than `jump_back_s` raises `TimeJump`
    (the caller resets); a smaller step back or a duplicate raises `InputRejected`.
    """

    jump_back_s: float = 1.0
    last_t_s: float | None = None

    def check(self, t_s: float) -> None:
        """Accept `t_s` or raise; accepted stamps become the new reference."""
        if not math.isfinite(t_s) or t_s < 0.0:
            raise InputRejected(f"timestamp {t_s} is not a valid time", reason="stamp")
        last = self.last_t_s
        if last is not None:
            if t_s < last - self.jump_back_s:
                self.last_t_s = t_s
                raise TimeJump(f"time jumped back by {last - t_s:.3f} s ({last:.3f} -> {t_s:.3f})")
            if t_s <= last:
                raise InputRejected(
                    f"stamp {t_s:.6f} is not after the previous one {last:.6f}",
                    reason="out_of_order",
                )
        self.last_t_s = t_s

    def reset(self) -> None:
        """Forget the reference stamp (after a reset of the estimator)."""
        self.last_t_s = None


class FrameRate:
    """Admits frames at most `max_hz` by their stamps (0 = every frame): the same frames
    offline and live, whatever the replay speed. Time going backwards starts afresh."""

    def __init__(self, max_hz: float) -> None:
        if not (math.isfinite(max_hz) and max_hz >= 0.0):
            raise ValueError(f"max rate must be >= 0 Hz, got {max_hz}")
        self.period_s = 1.0 / max_hz if max_hz > 0 else 0.0
        self._last = -math.inf

    def admit(self, t_s: float) -> bool:
        if t_s < self._last or t_s - self._last >= self.period_s - 1e-3:
            self._last = t_s
            return True
        return False


class Decimator:
    """Says when an output is due, every `period_s` of message time; time going back restarts."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.last_t_s: float | None = None

    def due(self, t_s: float) -> bool:
        last = self.last_t_s
        if last is not None and 0.0 <= t_s - last < RATE_JITTER * self.period_s:
            return False
        self.last_t_s = t_s
        return True

    def reset(self) -> None:
        self.last_t_s = None


class GapMeter:
    """Counts gaps in a periodic stream: steps over `factor` x its typical period (a
    running median of recent steps), so dropped IMU samples show in diagnostics."""

    def __init__(self, factor: float = 3.0, history: int = 64) -> None:
        self.factor = factor
        self._steps: list[float] = []
        self._history = history
        self.last_t_s: float | None = None
        self.gaps = 0
        self.missing_s = 0.0  # stream time inside gaps beyond one typical period
        self.max_gap_s = 0.0

    def observe(self, t_s: float) -> float | None:
        """Record a stamp; returns the gap length (s) when this step is a gap."""
        last, self.last_t_s = self.last_t_s, t_s
        if last is None or t_s <= last:
            return None
        step = t_s - last
        typical = sorted(self._steps)[len(self._steps) // 2] if len(self._steps) >= 8 else None
        if typical is not None and step > self.factor * typical:
            self.gaps += 1
            self.missing_s += step - typical
            self.max_gap_s = max(self.max_gap_s, step)
            return step
        self._steps.append(step)
        if len(self._steps) > self._history:
            self._steps.pop(0)
        return None

    def reset(self) -> None:
        """Forget the stream's last stamp (a reset), keep the counts."""
        self.last_t_s = None
