"""MC-dropout statistics: N head samples -> mean pose and a 6x6 covariance, and its calibration.

Covariances are in ROS order (x, y, z, then rotation about the parent frame's X, Y, Z
axes): a sample's rotation is R_i = Exp(theta_i) R_mean with theta in the parent frame,
as geometry_msgs/PoseWithCovariance specifies.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.transform import Rotation
from scipy.special import softmax
from scipy.stats import chi2

from geoloc_ros.errors import ConfigError

log = logging.getLogger(__name__)

CHI2_95_3DOF = float(chi2.ppf(0.95, 3))


@dataclass(frozen=True)
class PoseSamples:
    """Decoded head samples: positions (N, 3) in metres and unit quaternions (N, 4)."""

    p_m: np.ndarray
    q_xyzw: np.ndarray


def decode(out: np.ndarray, cfg) -> PoseSamples:
    """Head outputs (N, cfg.out_dim) -> positions in metres and normalised quaternions."""
    out = np.asarray(out, dtype=np.float64)
    k = cfg.n_anchors
    if k:
        best = out[:, :k].argmax(1)
        anchors = np.asarray(cfg.anchors_xy_m)
        off = out[:, k : 3 * k].reshape(-1, k, 2)[np.arange(len(out)), best]
        xy = anchors[best] + off * cfg.anchor_scale_m
        z = out[:, 3 * k] * cfg.p_scale_m[2] + cfg.p_mean_m[2]
        p = np.column_stack([xy, z])
    else:
        p = out[:, :3] * np.asarray(cfg.p_scale_m) + np.asarray(cfg.p_mean_m)
    q = out[:, -4:]
    n = np.linalg.norm(q, axis=1, keepdims=True)
    return PoseSamples(p, q / np.maximum(n, 1e-12))


def anchor_confidence(out: np.ndarray, cfg) -> tuple[float, float]:
    """How sure the MC samples are of the anchor: (top mean softmax probability, share of
    samples whose best anchor is the most frequent one); (1, 1) without anchors.

    Reported beside the MC spread so the bench can show which one ranks errors better.
    """
    k = cfg.n_anchors
    if not k:
        return 1.0, 1.0
    logits = np.asarray(out, dtype=np.float64)[:, :k]
    p = softmax(logits, axis=1)
    votes = np.bincount(logits.argmax(1), minlength=k)
    return float(p.mean(0).max()), float(votes.max() / len(logits))


def mean_pose(s: PoseSamples) -> tuple[np.ndarray, np.ndarray]:
    """Mean position and the quaternion average (Markley et al. 2007, via scipy)."""
    q = Rotation.from_quat(s.q_xyzw).mean().as_quat()
    return s.p_m.mean(0), q


def rotation_errors(q_xyzw: np.ndarray, q_ref_xyzw: np.ndarray) -> np.ndarray:
    """theta (N, 3) in the parent frame with R = Exp(theta) R_ref."""
    return (Rotation.from_quat(q_xyzw) * Rotation.from_quat(q_ref_xyzw).inv()).as_rotvec()


def sample_covariance(s: PoseSamples, p_mean: np.ndarray, q_mean: np.ndarray) -> np.ndarray:
    """6x6 ROS-ordered covariance of the samples about the mean pose."""
    d = np.hstack([s.p_m - p_mean, rotation_errors(s.q_xyzw, q_mean)])
    n = len(d)
    if n < 2:
        raise ConfigError("MC dropout needs at least 2 samples for a covariance")
    return d.T @ d / (n - 1)


@dataclass(frozen=True)
class Calibration:
    """Per-block variance scales fitted on held-out data, plus floors.

    cov' = D (cov + floor) D with D = diag(s_p, s_p, s_p, s_r, s_r, s_r): the
    position block's 95 % region holds 95 % of the validation errors (same for
    rotation), and the correlation structure of the samples is kept.
    """

    scale_p: float = 1.0
    scale_r: float = 1.0
    floor_p_m: float = 0.05
    floor_r_rad: float = 0.002

    def apply(self, cov_6x6: np.ndarray) -> np.ndarray:
        c = np.array(cov_6x6, dtype=np.float64)
        c[np.diag_indices(3)] += self.floor_p_m**2
        idx = (np.arange(3, 6), np.arange(3, 6))
        c[idx] += self.floor_r_rad**2
        d = np.array([self.scale_p] * 3 + [self.scale_r] * 3)
        return c * np.outer(d, d)

    def apply_batch(self, cov_6x6: np.ndarray) -> np.ndarray:
        return np.stack([self.apply(c) for c in cov_6x6])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        from geoloc_ros.config import from_mapping  # noqa: PLC0415

        return from_mapping(cls, d, "model card calibration")  # strict: unknown keys refused


def mahalanobis2(err: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances of (N, k) errors under (N, k, k) covariances."""
    return np.einsum("ni,ni->n", err, np.linalg.solve(cov, err[..., None])[..., 0])


def fit_calibration(
    err_p_m: np.ndarray, err_r_rad: np.ndarray, cov_6x6: np.ndarray, base: Calibration
) -> Calibration:
    """Scales so that 95 % of the held-out errors fall in the 95 % chi-square region."""
    if len(err_p_m) < 10:
        raise ConfigError(f"calibration needs >= 10 validation samples, got {len(err_p_m)}")
    if len(err_p_m) < 100:
        log.warning("calibrating on %d samples only: the 95 %% quantile is rough", len(err_p_m))
    c = Calibration(1.0, 1.0, base.floor_p_m, base.floor_r_rad).apply_batch(cov_6x6)
    d2_p = mahalanobis2(err_p_m, c[:, :3, :3])
    d2_r = mahalanobis2(err_r_rad, c[:, 3:, 3:])
    s_p = float(np.sqrt(np.quantile(d2_p, 0.95) / CHI2_95_3DOF))
    s_r = float(np.sqrt(np.quantile(d2_r, 0.95) / CHI2_95_3DOF))
    return Calibration(s_p, s_r, base.floor_p_m, base.floor_r_rad)


def coverage(err_p_m: np.ndarray, cov_p_3x3: np.ndarray) -> float:
    """Fraction of errors inside the 95 % region of their covariance."""
    return float(np.mean(mahalanobis2(err_p_m, cov_p_3x3) <= CHI2_95_3DOF))
