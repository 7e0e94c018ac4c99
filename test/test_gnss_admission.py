"""GNSS admission rules on synthetic innovations: gate, re-admission run, bursts, reset."""

from __future__ import annotations

from collections import Counter

import numpy as np

from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.fusion.gnss_admission import GnssAdmission, Held, Innovation

FIX_COV = np.eye(3) * 0.8**2


def _inn(t: float, r_xy, state_sigma_m: float) -> Innovation:
    r = np.array([*r_xy, 0.0])
    S = FIX_COV + np.eye(3) * state_sigma_m**2
    return Innovation(t, r, S, FIX_COV, float(r @ np.linalg.solve(S, r)))


def _feed(adm: GnssAdmission, stream) -> list[str]:
    """Verdicts of a stream; held runs count as 'admitted' when they complete."""
    out = []
    for inn in stream:
        v = adm.judge(inn)
        if v == "use":
            adm.used(inn)
        elif v == "hold":
            for item in adm.hold(Held(0, None, inn)):
                adm.used(item.innovation)
        out.append(v)
    return out


def test_a_burst_stays_out_while_the_state_sigma_grows_past_its_offset():
    """Good fixes, then a 12 m burst that starts with a step while the state's sigma
    grows 1 m a second: once the offset passes the re-admission gate the fixes still
    look like the ones just refused, so none enters; the good fixes after it do."""
    adm = GnssAdmission(FusionConfig(), Counter(), [])
    rng = np.random.default_rng(0)
    good = [_inn(0.2 * k, rng.normal(0, 0.5, 2), 0.5) for k in range(20)]
    burst = [_inn(4.0 + 0.2 * k, np.array([12.0, 0.0]) + rng.normal(0, 1.0, 2), 0.5 + 0.2 * k)
             for k in range(40)]  # fmt: skip
    after = [_inn(12.0 + 0.2 * k, rng.normal(0, 0.5, 2), 8.5) for k in range(10)]
    v = _feed(adm, good + burst + after)
    burst_v = v[20:60]
    assert "use" not in burst_v
    passing = [b.nis <= adm.cfg.gnss_readmit_chi2 for b in burst]
    assert sum(passing) >= 10  # the gate alone would have let these in
    assert adm.counts["gnss_used"] >= 20 + 6  # the good fixes before and after
    assert adm.counts["gnss_divergence_reset"] == 0


def test_a_drifting_state_lets_consistent_fixes_back_without_a_reset():
    """No step: the state drifts 0.8 m per fix to 8 m off good fixes, so they fail the
    gate; its sigma then grows while it refuses, a run passes the re-admission gate and
    enters. (Were the burst rule applied, they would look like the fixes just refused
    and stay out until the reset.)"""
    adm = GnssAdmission(FusionConfig(), Counter(), [])
    rng = np.random.default_rng(1)
    sigma, err, admitted_at, verdicts = 0.5, 0.0, None, []
    for k in range(60):
        if admitted_at is None:
            err = min(8.0, max(0.0, 0.8 * (k - 10)))
        inn = _inn(0.2 * k, np.array([err, 0.0]) + rng.normal(0, 0.3, 2), sigma)
        v = _feed(adm, [inn])[0]
        verdicts.append(v)
        if v in ("refuse", "hold"):
            sigma += 0.3  # the state's covariance grows while GNSS is refused
        elif admitted_at is None and "refuse" in verdicts:
            admitted_at = k
            err, sigma = 0.0, 0.5
    assert "refuse" in verdicts
    assert admitted_at is not None and admitted_at < 10 / 0.2, verdicts
    assert adm.counts["gnss_divergence_reset"] == 0


def test_every_fix_refused_for_the_reset_period_asks_for_a_reset():
    cfg = FusionConfig()
    adm = GnssAdmission(cfg, Counter(), [])
    stream = [_inn(0.2 * k, [40.0, 0.0], 0.5) for k in range(int(cfg.gnss_gate_reset_s / 0.2) + 2)]
    v = _feed(adm, stream)
    assert v[-1] == "reset" or "reset" in v
    assert adm.counts["gnss_divergence_reset"] == 1


def test_after_a_long_refusal_the_readmission_run_must_span_a_share_of_it():
    """8 s of refused fixes (no step, so the burst rule stays out of it), then fixes
    that pass the re-admission gate: a run of 3 (0.4 s) no longer proves the state
    wrong; the run enters once it reaches gnss_readmit_span_fraction of the 8 s (1.6 s)
    past the last refused fix. With the fraction at 0 the first 3 enter, as before."""
    far = [_inn(0.2 * k, [30.0, 0.0], 1.0) for k in range(41)]  # refused, 0 .. 8 s
    near = [_inn(8.2 + 0.2 * k, [1.0, 0.0], 1.0) for k in range(12)]
    for fraction, release_s in ((0.2, 8.0 + 1.6), (0.0, 8.6)):  # 8.6 s: the 3rd fix
        adm = GnssAdmission(FusionConfig(gnss_readmit_span_fraction=fraction), Counter(), [])
        _feed(adm, far)
        assert adm.counts["gnss_used"] == 0 and adm.suspect
        released_at = None
        for inn in near:
            assert adm.judge(inn) in ("hold", "use")
            run = adm.hold(Held(0, None, inn)) if adm.suspect else []
            if run and released_at is None:
                released_at = inn.t_s
                assert run[0].innovation.t_s == near[0].t_s, [h.innovation.t_s for h in run]
        # the first fix at or past release_s (stamps in float: within one fix)
        assert release_s - 1e-6 <= released_at <= release_s + 0.2 + 1e-6, released_at
        assert not adm.suspect
