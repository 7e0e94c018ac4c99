"""Per-input health bookkeeping (received, rejected by reason, rate) for diagnostics.

Pure Python: nodes turn `InputHealth.report()` into diagnostic_msgs; offline
evaluation puts the same counts in its report.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, field


class Level(enum.IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass
class InputStatus:
    name: str
    level: Level
    message: str
    values: dict[str, str]


@dataclass
class InputHealth:
    """Counts for one input stream; `window_s` bounds the rate estimate and 'recent'."""

    name: str
    window_s: float = 5.0
    stale_after_s: float = 2.0
    received: int = 0
    rejected: collections.Counter = field(default_factory=collections.Counter)
    last_reject: str = ""
    _times: collections.deque = field(default_factory=collections.deque)
    _reject_times: collections.deque = field(default_factory=collections.deque)

    def accept(self, now_s: float) -> None:
        self.received += 1
        self._times.append(now_s)
        self._trim(now_s)

    def reject(self, now_s: float, reason: str, message: str) -> None:
        self.received += 1
        self.rejected[reason] += 1
        self.last_reject = message
        self._reject_times.append(now_s)
        self._trim(now_s)

    def _trim(self, now_s: float) -> None:
        for q in (self._times, self._reject_times):
            while q and (q[0] < now_s - self.window_s or q[0] > now_s + 1e-9):
                q.popleft()

    def rate_hz(self, now_s: float) -> float:
        self._trim(now_s)
        return len(self._times) / self.window_s

    def report(self, now_s: float) -> InputStatus:
        """Level WARN while rejections happened within the window, STALE if silent."""
        self._trim(now_s)
        values = {
            "received": str(self.received),
            "rejected": str(sum(self.rejected.values())),
            "rate_hz": f"{self.rate_hz(now_s):.2f}",
            **{f"rejected_{k}": str(v) for k, v in sorted(self.rejected.items())},
        }
        if self._reject_times:
            n = len(self._reject_times)
            return InputStatus(self.name, Level.WARN, f"{n} rejected: {self.last_reject}", values)
        if self.received and not self._times:
            return InputStatus(self.name, Level.STALE, "no data recently", values)
        if not self.received:
            return InputStatus(self.name, Level.OK, "waiting for data", values)
        return InputStatus(self.name, Level.OK, "ok", values)
