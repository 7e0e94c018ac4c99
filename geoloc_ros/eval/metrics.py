"""Accuracy of an estimate against ground truth, measured with evo.

Horizontal figures are evo's APE on trajectories with z set to 0; 3-D figures on the
full positions. Consistency is the position NEES against the estimate's own covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoloc_ros.eval.trajectory import Trajectory

NEES_DOF = 3
JUMP_RAW_ERROR_M = 10.0  # a raw fix this far from the truth is a multipath jump


@dataclass(frozen=True)
class Errors:
    """Estimate and truth on the same stamps, and the horizontal error between them."""

    est: Trajectory
    ref: Trajectory
    err_h_m: np.ndarray

    @property
    def t_s(self) -> np.ndarray:
        return self.est.t_s


def align(est: Trajectory, gt: Trajectory, mode: str = "none") -> Errors:
    """Interpolate gt at est's stamps; `mode` none | origin (first pose) | se3 (Umeyama)."""
    ref, ok = gt.at(est.t_s)
    est = est.select(ok)
    if mode != "none" and len(est) > 1:
        e, r = est.to_evo(), ref.to_evo()
        if mode == "origin":
            e.align_origin(r)
        elif mode == "se3":
            e.align(r)
        else:
            raise ValueError(f"alignment must be none, origin or se3, got {mode!r}")
        est = Trajectory(est.t_s, e.positions_xyz, e.orientations_quat_wxyz[:, [1, 2, 3, 0]], None)
    err_h = np.linalg.norm(est.p_m[:, :2] - ref.p_m[:, :2], axis=1)
    return Errors(est, ref, err_h)


def ape(errors: Errors, horizontal: bool) -> dict[str, float]:
    """evo's APE (translation) statistics: rmse, mean, median, std, min, max."""
    from evo.core import metrics  # noqa: PLC0415

    if len(errors.est) == 0:
        return {}
    m = metrics.APE(metrics.PoseRelation.translation_part)
    m.process_data((errors.ref.to_evo(horizontal), errors.est.to_evo(horizontal)))
    return {k: float(v) for k, v in m.get_all_statistics().items()}


def yaw_errors_deg(errors: Errors) -> np.ndarray:
    """Heading error (estimate minus truth) at each stamp [deg], wrapped to [-180, 180)."""
    from geoloc_ros.geo.quaternion import yaw_from_xyzw  # noqa: PLC0415

    yaw_est = np.array([yaw_from_xyzw(q) for q in errors.est.q_xyzw])
    yaw_ref = np.array([yaw_from_xyzw(q) for q in errors.ref.q_xyzw])
    return np.degrees((yaw_est - yaw_ref + np.pi) % (2 * np.pi) - np.pi)


def yaw_rmse_deg(errors: Errors) -> float | None:
    """RMS heading error [deg]; None without poses."""
    if len(errors.est) == 0:
        return None
    return float(np.sqrt(np.mean(yaw_errors_deg(errors) ** 2)))


def window_max(errors: Errors, window_s: tuple[float, float] | None) -> float | None:
    """Largest horizontal error with the stamp inside [start, end)."""
    if window_s is None:
        return None
    m = (errors.t_s >= window_s[0]) & (errors.t_s < window_s[1])
    return float(errors.err_h_m[m].max()) if m.any() else None


def jump_response(errors: Errors, raw: Errors) -> dict[str, float | int | None] | None:
    """Where raw GNSS is off by > 10 m (multipath), how far off is the estimate at most,
    and how far did the jump move it: the largest change of the horizontal error vector
    (until 0.5 s after it) from its value just before the episode began. An episode
    that ends a GNSS gap (an outage) is left out of the move: there the fixes coming
    back correct the dead-reckoned track, a move the jump did not cause."""
    bad = raw.err_h_m > JUMP_RAW_ERROR_M
    if not bad.any():
        return None
    t_bad = raw.t_s[bad]
    near = np.min(np.abs(errors.t_s[:, None] - t_bad[None, :]), axis=1) <= 0.5
    starts = int(np.sum(np.diff(np.r_[0, bad.astype(int)]) == 1))
    return {
        "raw_fixes_off_by_10m": int(bad.sum()),
        "episodes": starts,
        "raw_max_error_m": float(raw.err_h_m[bad].max()),
        "fused_max_error_m": float(errors.err_h_m[near].max()) if near.any() else float("nan"),
        "fused_max_shift_m": _max_shift(errors, t_bad, raw.t_s),
    }


def _max_shift(errors: Errors, t_bad: np.ndarray, t_fix: np.ndarray) -> float | None:
    """Largest move of the error vector within a run of bad fixes (gaps under 1 s) that
    a fix less than 1 s before it precedes; None without such a run."""
    e = errors.est.p_m[:, :2] - errors.ref.p_m[:, :2]
    t = errors.t_s
    worst = None
    for run in np.split(t_bad, np.flatnonzero(np.diff(t_bad) > 1.0) + 1):
        before = np.flatnonzero(t < run[0])
        earlier = t_fix[t_fix < run[0]]
        if not len(earlier) or run[0] - earlier[-1] > 1.0:
            continue
        inside = (t >= run[0]) & (t <= run[-1] + 0.5)
        if not len(before) or not inside.any():
            continue
        shift = float(np.linalg.norm(e[inside] - e[before[-1]], axis=1).max())
        worst = shift if worst is None else max(worst, shift)
    return worst


def nees(errors: Errors) -> dict[str, float] | None:
    """Position NEES per stamp and the share inside the two-sided 95 % chi-square bounds."""
    from scipy.stats import chi2  # noqa: PLC0415

    if errors.est.cov_p_3x3 is None or len(errors.est) == 0:
        return None
    values = nees_series(errors)
    lo, hi = chi2.ppf([0.025, 0.975], NEES_DOF)
    inside = (values >= lo) & (values <= hi)
    return {
        "dof": NEES_DOF,
        "bounds": [float(lo), float(hi)],
        "fraction_inside": float(inside.mean()),
        "fraction_above": float((values > hi).mean()),
        "fraction_below": float((values < lo).mean()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
    }


def nees_series(errors: Errors) -> np.ndarray:
    """Position NEES e^T P^-1 e at each stamp."""
    cov = errors.est.cov_p_3x3
    e = errors.est.p_m - errors.ref.p_m
    return np.array([r @ np.linalg.solve(c, r) for r, c in zip(e, cov, strict=True)])


AUTOCORR_LAGS_S = (0.5, 1.0, 2.0, 5.0, 10.0)


def error_autocorrelation(
    t_s: np.ndarray, err_norm: np.ndarray, lags_s: tuple[float, ...] = AUTOCORR_LAGS_S
) -> dict[str, list]:
    """Autocorrelation of normalised errors (N, k: error / own sigma per axis) at each
    lag, the mean over the k axes; pairs are stamps lag apart within half the median
    spacing, so withheld fixes leave gaps, not shifts. It is what the fusion's
    `*_error_tau_s` are read from: a = exp(-lag / tau)."""
    t = np.asarray(t_s, dtype=np.float64)
    z = np.asarray(err_norm, dtype=np.float64).reshape(len(t), -1)
    out: dict[str, list] = {"lags_s": [], "autocorrelation": [], "pairs": []}
    if len(t) < 3:
        return out
    tol = 0.5 * float(np.median(np.diff(t)))
    for lag in lags_s:
        j = np.clip(np.searchsorted(t, t + lag), 0, len(t) - 1)
        ok = np.abs(t[j] - t - lag) <= tol
        if ok.sum() < 10:
            continue
        a, b = z[ok], z[j[ok]]
        r = [np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(z.shape[1])]
        out["lags_s"].append(float(lag))
        out["autocorrelation"].append(float(np.mean(r)))
        out["pairs"].append(int(ok.sum()))
    return out
