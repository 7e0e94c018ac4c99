"""Single-frame accuracy of the map localizer on dataset samples, and its calibration.

Protocol (issue 6): the prior is the true position plus isotropic Gaussian noise of
`prior_sigma_m` (seeded), no yaw prior unless asked; the window must hold the truth
for the fix to be right, so pick `window_m` >= 6 sigma for the recall tables.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.neuralmap.bundle import Calibration

CHI2_95_2DOF = 5.991464547107979
CHI2_95_1DOF = 3.841458820694124
POSITION_THRESHOLDS_M = (1.0, 3.0, 5.0)
YAW_THRESHOLDS_DEG = (1.0, 3.0, 5.0)


@dataclass
class Runs:
    err_xy_m: np.ndarray  # (N, 2) estimate - truth
    err_yaw_rad: np.ndarray  # (N,)
    cov_raw: np.ndarray  # (N, 3, 3) before calibration: volume moments only
    multimodal: np.ndarray  # (N,) bool
    timing_ms: list[dict]
    rejected: int
    cov_volume_xy: np.ndarray | None = None  # (N, 2, 2) whole-window moments (matcher)
    second_peak_ratio: np.ndarray | None = None  # (N,)
    mode_mass: np.ndarray | None = None  # (N,)
    prior_offset_xy_m: np.ndarray | None = None  # (N, 2) prior - truth
    truth_yaw_rad: np.ndarray | None = None  # (N,) heading, to split errors along / across it

    def per_frame(self) -> dict[str, np.ndarray]:
        """The arrays of every frame, for an .npz beside a benchmark's JSON."""
        return {k: getattr(self, k) for k in _FRAME_ARRAYS if getattr(self, k) is not None}

    @classmethod
    def concatenate(cls, parts: list[Runs]) -> Runs:
        """Several datasets' runs as one; an optional array only where every part has it."""

        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(r, name) for r in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return cls(timing_ms=[t for r in parts for t in r.timing_ms],
                   rejected=sum(r.rejected for r in parts),
                   **{k: cat(k) for k in _FRAME_ARRAYS})  # fmt: skip


_FRAME_ARRAYS = tuple(f.name for f in fields(Runs) if f.name not in ("timing_ms", "rejected"))


def volume_cov_of(fix) -> np.ndarray:
    """A MapFix's whole-window 2x2 position moments, NaN where it has none."""
    v = fix.cov_xy_volume_m2
    return np.full((2, 2), np.nan) if v is None else np.asarray(v, float)


def run_samples(localizer, samples, prior_sigma_m: float, seed: int, yaw_prior_sigma_deg=None,
                progress: bool = True, height_sigma_fraction: float = 0.0) -> Runs:  # fmt: skip
    """Localize every sample from a noisy prior; errors and raw covariances.

    `height_sigma_fraction` > 0 gives the true height a sigma of that share of it, so a
    nadir view searches heights as the node does when the fused height is uncertain
    (the height itself stays the truth: the recall protocol is unchanged)."""
    from tqdm import tqdm  # noqa: PLC0415

    from geoloc_ros.neuralmap.data import load_rgb  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    exy, eyaw, covs, mm, timing, vol, ratio, mass, offset, yaw = ([] for _ in range(10))
    rejected = 0
    for s in tqdm(samples, desc="localize", unit="frame", disable=not progress):
        prior = s.xy_m + rng.normal(0.0, prior_sigma_m, 2)
        yaw_prior = None
        if yaw_prior_sigma_deg:
            yaw_prior = s.roll_pitch_yaw[2] + np.radians(rng.normal(0, yaw_prior_sigma_deg))
        try:
            f = localizer.localize(load_rgb(s.image_path), s.K, s.roll_pitch_yaw[:2],
                                   s.T_base_cam, prior, prior_sigma_m, yaw_prior,
                                   s.height_above_ground_m,
                                   height_sigma_m=height_sigma_fraction
                                   * (s.height_above_ground_m or 0.0))  # fmt: skip
        except InputRejected:
            rejected += 1
            continue
        exy.append(f.xy_m - s.xy_m)
        eyaw.append(np.angle(np.exp(1j * (f.yaw_rad - s.roll_pitch_yaw[2]))))
        covs.append(f.cov_raw_xyyaw)
        mm.append(f.multimodal)
        timing.append(f.timing_ms)
        vol.append(volume_cov_of(f))
        ratio.append(f.second_peak_ratio)
        mass.append(f.mode_mass)
        offset.append(prior - s.xy_m)
        yaw.append(s.roll_pitch_yaw[2])
    return Runs(np.array(exy).reshape(-1, 2), np.array(eyaw), np.array(covs).reshape(-1, 3, 3),
                np.array(mm, bool), timing, rejected, np.array(vol).reshape(-1, 2, 2),
                np.array(ratio, float), np.array(mass, float),
                np.array(offset, float).reshape(-1, 2), np.array(yaw, float))  # fmt: skip


def mahalanobis2_xy(err_xy: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return np.einsum("ni,nij,nj->n", err_xy, np.linalg.inv(cov[:, :2, :2]), err_xy)


def in_mode_support(runs: Runs) -> np.ndarray:
    """(N,) bool: the truth lies where the fix's covariance was measured, the mode's local
    window (matcher.LOCAL_RADIUS_M, LOCAL_YAW_RAD). Outside it the fix found another
    place: a gross failure no Gaussian of that mode describes."""
    from geoloc_ros.neuralmap.matcher import LOCAL_RADIUS_M, LOCAL_YAW_RAD  # noqa: PLC0415

    d = np.linalg.norm(runs.err_xy_m, axis=1)
    return (d <= LOCAL_RADIUS_M) & (np.abs(runs.err_yaw_rad) <= LOCAL_YAW_RAD)


MIN_CALIBRATION_FRAMES = 20


def fit_calibration(runs: Runs, floors: Calibration | None = None) -> Calibration:
    """Scales that put the 95 % chi-square quantile on 95 % of the fixes a node publishes
    (unimodal) whose truth lies in the mode's support (bisection).

    Gross failures are left to the multi-modal flag and the fusion's Mahalanobis gate:
    widening every covariance until it also covers them (a third of the car's frames)
    made the car's yaw sigma 64x its volume's, and the fusion ignored the map's heading.
    """
    base = floors or Calibration()
    keep = ~runs.multimodal & in_mode_support(runs)
    if keep.sum() < MIN_CALIBRATION_FRAMES:
        raise InputRejected(f"only {int(keep.sum())} unimodal fixes near the truth; the "
                            f"fit needs {MIN_CALIBRATION_FRAMES}", "calibration")  # fmt: skip
    err_xy, err_yaw, cov_raw = runs.err_xy_m[keep], runs.err_yaw_rad[keep], runs.cov_raw[keep]

    def coverage_xy(scale: float) -> float:
        c = Calibration(scale, 1.0, base.floor_xy_m, base.floor_yaw_deg).apply(cov_raw)
        return float((mahalanobis2_xy(err_xy, c) <= CHI2_95_2DOF).mean())

    def coverage_yaw(scale: float) -> float:
        c = Calibration(1.0, scale, base.floor_xy_m, base.floor_yaw_deg).apply(cov_raw)
        return float((err_yaw**2 / c[:, 2, 2] <= CHI2_95_1DOF).mean())

    return Calibration(_bisect(coverage_xy), _bisect(coverage_yaw), base.floor_xy_m,
                       base.floor_yaw_deg)  # fmt: skip


def _bisect(coverage, target: float = 0.95) -> float:
    lo, hi = -16.0, 12.0  # log2 of the scale; at the low end the floors alone cover
    for _ in range(40):
        mid = (lo + hi) / 2
        if coverage(2.0**mid) < target:
            lo = mid
        else:
            hi = mid
    return float(2.0**hi)


def error_along_across(err_xy_m: np.ndarray, heading_rad: np.ndarray) -> np.ndarray:
    """(N, 2) position errors in the vehicle's heading frame: along it, across it (left)."""
    c, s = np.cos(heading_rad), np.sin(heading_rad)
    return np.stack([err_xy_m[:, 0] * c + err_xy_m[:, 1] * s,
                     -err_xy_m[:, 0] * s + err_xy_m[:, 1] * c], axis=1)  # fmt: skip


def gross_failure_kinds(runs: Runs, gross_m: float = 5.0) -> dict | None:
    """Frames more than gross_m off, by kind, as shares of all frames: shifted along the
    heading with the yaw right (a repeating street), yaw reversed, other."""
    if runs.truth_yaw_rad is None or not len(runs.err_xy_m):
        return None
    gross = np.linalg.norm(runs.err_xy_m, axis=1) > gross_m
    yaw_deg = np.degrees(np.abs(runs.err_yaw_rad))
    across = np.abs(error_along_across(runs.err_xy_m, runs.truth_yaw_rad)[:, 1])
    along = gross & (yaw_deg < 5.0) & (across < 4.0)
    reversed_ = gross & (yaw_deg > 160.0)
    return {"along_heading_yaw_right": float(along.mean()),
            "yaw_reversed": float(reversed_.mean()),
            "other": float((gross & ~along & ~reversed_).mean())}  # fmt: skip


def summary(runs: Runs, cal: Calibration) -> dict:
    """Recall tables, coverage of the calibrated 95 % region, multi-modal share, timing."""
    d = np.linalg.norm(runs.err_xy_m, axis=1)
    y = np.degrees(np.abs(runs.err_yaw_rad))
    n = len(d)
    cov = cal.carried(runs.cov_raw, runs.cov_volume_xy, runs.multimodal)
    inside = mahalanobis2_xy(runs.err_xy_m, cov) <= CHI2_95_2DOF if n else np.zeros(0, bool)
    inside_yaw = runs.err_yaw_rad**2 / cov[:, 2, 2] <= CHI2_95_1DOF if n else np.zeros(0, bool)
    uni = ~runs.multimodal
    support = in_mode_support(runs)
    ok = uni & support

    def share(mask: np.ndarray, of: np.ndarray) -> float | None:
        return float(mask[of].mean()) if of.any() else None

    out = {
        "frames": n,
        "rejected": runs.rejected,
        "recall_position": {f"{t:g}m": float((d <= t).mean()) if n else 0.0
                            for t in POSITION_THRESHOLDS_M},
        "recall_yaw": {f"{t:g}deg": float((y <= t).mean()) if n else 0.0
                       for t in YAW_THRESHOLDS_DEG},
        "median_m": float(np.median(d)) if n else None,
        "median_deg": float(np.median(y)) if n else None,
        "coverage95_xy": float(inside.mean()) if n else None,
        "coverage95_xy_unimodal": share(inside, uni),
        "coverage95_xy_in_mode_support": share(inside, ok),
        "coverage95_yaw": float(inside_yaw.mean()) if n else None,
        "coverage95_yaw_in_mode_support": share(inside_yaw, ok),
        "unimodal_gross_failure_share": share(~support, uni),
        "multimodal_share": float(runs.multimodal.mean()) if n else None,
        "recall_5m_when_flagged_multimodal": float((d[~uni] <= 5).mean()) if (~uni).any() else None,
        "recall_5m_when_unimodal": float((d[uni] <= 5).mean()) if uni.any() else None,
        "gross_failures_5m": gross_failure_kinds(runs),
    }  # fmt: skip
    if runs.timing_ms:
        out["timing_ms_median"] = {k: float(np.median([t[k] for t in runs.timing_ms]))
                                   for k in runs.timing_ms[0]}  # fmt: skip
    return out
