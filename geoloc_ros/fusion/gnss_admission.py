"""Which GNSS fixes enter the fusion's graph: gate, re-admission, bursts, divergence.

Pure bookkeeping on innovations (fix minus prediction, with its covariance S); the
estimator computes them and builds the factors. The rules, in order:

1. A fix whose Mahalanobis distance to the prediction exceeds `gnss_gate_chi2` is
   refused.
2. After a refusal the next fixes are suspect: they are held until
   `gnss_readmit_fixes` in a row (optionally also reaching past the last refused one
   by `gnss_readmit_span_fraction` of the time fixes were refused, off by default: see
   docs/fusion.md) pass the tighter `gnss_readmit_chi2`, then enter together. A
   multipath burst is a biased run of fixes; single ones that slip under the gate
   (heavy tails, a covariance grown while refusing) pull the state, and through the
   IMU chain its velocity, off; after a long refusal a short run proves little.
3. A refused run that began with a step from the last used fix is a burst: a suspect
   fix is also refused while it is likelier one more of the fixes refused in the last
   GNSS_BURST_MEMORY_S than a fix of the state. The state's covariance grows while it
   refuses (a drone's by metres a second) until the burst's offset passes the gate;
   the fixes just refused say where the burst's fixes fall, far more sharply. A state
   that drifts from good fixes makes no step, and its fixes come back by rule 2. A
   receiver that snaps back to the truth after a slow drift the fusion followed looks
   like a burst too; it waits for rule 4, as it did before this rule (synthetic: 8 m
   drift over 20 s, snap back: first fix used 11.4 s later with or without rule 3).
4. Every fix refused for `gnss_gate_reset_s`: the state, not GNSS, is wrong; the
   estimator starts again from the fixes.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from scipy.stats import multivariate_normal

from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.types import Decision

GNSS_BURST_MEMORY_S = 2.0  # refused fixes this recent describe a running multipath burst
GNSS_STEP_SPEED_MPS = 1.0  # allowance for the state's velocity error between two fixes
GNSS_STEP_CHI2 = 11.34  # a step between two fixes' innovations (99 %, 3 dof)


@dataclass(frozen=True)
class Innovation:
    """One fix against the prediction of its keyframe."""

    t_s: float  # measurement time
    r_m: np.ndarray  # (3,) fix minus predicted antenna position
    S_m2: np.ndarray  # (3, 3) covariance of r: state plus fix
    cov_m2: np.ndarray  # (3, 3) the fix's own covariance
    nis: float  # r' S^-1 r


@dataclass(frozen=True)
class Held:
    """A suspect fix waiting for its run to complete: its factor enters with the run."""

    keyframe: int
    factor: object
    innovation: Innovation


class GnssAdmission:
    """The state of rules 1-4 over a stream of fixes; counts and decisions are shared
    with the estimator (its /diagnostics and eval report)."""

    def __init__(self, cfg: FusionConfig, counts: Counter, decisions: list[Decision]) -> None:
        self.cfg = cfg
        self.counts = counts
        self.decisions = decisions
        self.reset()

    def reset(self) -> None:
        self._reject_since: float | None = None
        self._readmit_left = 0
        self._readmit_until_s = 0.0  # the held run must reach this stamp (span rule)
        self._held: list[Held] = []
        self._last_used: Innovation | None = None
        self._burst = False
        self._refused: deque[tuple[float, np.ndarray]] = deque(maxlen=50)  # (t, r)

    @property
    def suspect(self) -> bool:
        """A fix was refused lately and the run that re-admits GNSS is not complete."""
        return self._readmit_left > 0

    def judge(self, inn: Innovation) -> str:
        """The verdict on one fix: use, hold (suspect: call `hold`), refuse, or reset."""
        c = self.cfg
        gate = c.gnss_readmit_chi2 if self.suspect else c.gnss_gate_chi2
        if c.gnss_gate_chi2 <= 0 or not (
            inn.nis > gate or (self.suspect and self._burst and self._like_burst(inn))
        ):
            return "hold" if self.suspect else "use"
        self._refused.append((inn.t_s, inn.r_m))
        self._readmit_left = c.gnss_readmit_fixes
        if self._reject_since is None:
            self._reject_since = inn.t_s
            self._burst = self._stepped(inn)
        span_s = c.gnss_readmit_span_fraction * (inn.t_s - self._reject_since)
        self._readmit_until_s = inn.t_s + span_s
        self.refuse_held()  # the run is broken: its fixes were burst fixes too
        if inn.t_s - self._reject_since < c.gnss_gate_reset_s:
            self.counts["gnss_gated" if inn.nis > c.gnss_gate_chi2 else "gnss_gated_readmit"] += 1
            self.decisions.append(Decision(inn.t_s, False, "gate", inn.nis))
            return "refuse"
        self.counts["gnss_divergence_reset"] += 1
        self._reject_since = None
        return "reset"

    def used(self, inn: Innovation) -> None:
        """A fix went into the graph (judged "use", or one of a completed held run)."""
        self._reject_since = None
        self._last_used = inn
        self.counts["gnss_used"] += 1
        self.decisions.append(Decision(inn.t_s, True, "", inn.nis))

    def hold(self, item: Held) -> list[Held]:
        """Hold a suspect fix; the whole run once it is complete (to enter), else []."""
        self._held.append(item)
        self._readmit_left = max(self._readmit_left - 1, 0)
        if self._readmit_left > 0 or item.innovation.t_s < self._readmit_until_s:
            self._readmit_left = max(self._readmit_left, 1)  # still suspect
            return []
        run, self._held = self._held, []
        return run

    def refuse_held(self, items: list[Held] | None = None) -> None:
        """Refuse the held fixes (or `items` of a run whose keyframes left the window)."""
        if items is None:
            items, self._held = self._held, []
        for item in items:
            self.counts["gnss_gated_readmit"] += 1
            self.decisions.append(Decision(item.innovation.t_s, False, "gate", item.innovation.nis))

    def _stepped(self, inn: Innovation) -> bool:
        """Whether the innovation jumped from the last used fix's by more than the two
        fixes' noise allows: a burst starts with a step, a drifting state does not."""
        last = self._last_used
        if last is None or inn.t_s - last.t_s > GNSS_BURST_MEMORY_S:
            return False
        d = inn.r_m - last.r_m
        S = inn.cov_m2 + last.cov_m2 + np.eye(3) * (GNSS_STEP_SPEED_MPS * (inn.t_s - last.t_s)) ** 2
        return float(d @ np.linalg.solve(S, d)) > GNSS_STEP_CHI2

    def _like_burst(self, inn: Innovation) -> bool:
        """Whether a suspect fix is likelier one more of the fixes refused in the last
        GNSS_BURST_MEMORY_S (their median and scatter) than a fix of the state."""
        recent = [r for t, r in self._refused if inn.t_s - t <= GNSS_BURST_MEMORY_S]
        if len(recent) < 3:
            return False
        g = np.array(recent)
        S_b = np.cov(g.T) + inn.cov_m2
        burst = multivariate_normal.logpdf(inn.r_m, np.median(g, axis=0), S_b)
        return bool(burst > multivariate_normal.logpdf(inn.r_m, np.zeros(3), inn.S_m2))
