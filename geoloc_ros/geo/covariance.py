"""6x6 pose covariances: validation, change of frame, and ROS <-> GTSAM ordering.

ROS (geometry_msgs/PoseWithCovariance): [x y z R P Y], position then a small rotation,
both about the *parent* frame's axes.
GTSAM (Pose3 tangent, Marginals): [rx ry rz tx ty tz], rotation then translation, both
in the *body* frame, for the right perturbation T = T_hat * Exp(xi).
To first order: d_p_parent = R @ t_body and d_theta_parent = R @ r_body.
"""

from __future__ import annotations

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.se3 import skew


def check_covariance(cov, n: int, name: str = "covariance", rel_tol: float = 1e-6) -> np.ndarray:
    """Return `cov` as an n x n float array, or raise InputRejected if it is impossible.

    Impossible: wrong size, non-finite, asymmetric beyond rounding, a variance <= 0, or
    a negative eigenvalue beyond rounding.
    """
    c = np.asarray(cov, dtype=np.float64)
    if c.size != n * n:
        raise InputRejected(f"{name} must have {n * n} elements, got {c.size}", "covariance")
    c = c.reshape(n, n)
    key = (c.tobytes(), rel_tol)
    if key in _VALID:  # sensors repeat one covariance for hours: validate it once
        return c.copy()
    _validate(c, name, rel_tol)
    if len(_VALID) >= _VALID_MAX:
        _VALID.clear()
    _VALID.add(key)
    return c


_VALID: set[tuple[bytes, float]] = set()
_VALID_MAX = 256


def _validate(c: np.ndarray, name: str, rel_tol: float) -> None:
    if not np.isfinite(c).all():
        raise InputRejected(f"{name} contains NaN or inf", "covariance")
    scale = max(float(np.abs(c).max()), 1e-300)
    if np.abs(c - c.T).max() > rel_tol * scale:
        raise InputRejected(f"{name} is not symmetric", "covariance")
    if (np.diag(c) <= 0.0).any():
        raise InputRejected(f"{name} has a variance <= 0: {np.diag(c).tolist()}", "covariance")
    if np.linalg.eigvalsh(0.5 * (c + c.T)).min() < -rel_tol * scale:
        raise InputRejected(f"{name} is not positive semi-definite", "covariance")


def _swap_blocks(R_parent_child: np.ndarray) -> np.ndarray:
    J = np.zeros((6, 6))
    J[0:3, 3:6] = R_parent_child
    J[3:6, 0:3] = R_parent_child
    return J


def cov_ros_from_gtsam(cov_gtsam_6x6, R_parent_child) -> np.ndarray:
    """ROS parent-frame [p, theta] covariance from a GTSAM body-frame [r, t] one."""
    J = _swap_blocks(np.asarray(R_parent_child, dtype=np.float64))
    return J @ np.asarray(cov_gtsam_6x6, dtype=np.float64) @ J.T


def cov_gtsam_from_ros(cov_ros_6x6, R_parent_child) -> np.ndarray:
    """GTSAM body-frame [r, t] covariance from a ROS parent-frame [p, theta] one."""
    J_inv = _swap_blocks(np.asarray(R_parent_child, dtype=np.float64).T)
    return J_inv @ np.asarray(cov_ros_6x6, dtype=np.float64) @ J_inv.T


def rotate_cov_ros(cov_ros_6x6, R_new_old) -> np.ndarray:
    """Re-express a ROS pose covariance in a parent frame rotated by R_new_old."""
    R = np.asarray(R_new_old, dtype=np.float64)
    B = np.zeros((6, 6))
    B[0:3, 0:3] = R
    B[3:6, 3:6] = R
    return B @ np.asarray(cov_ros_6x6, dtype=np.float64) @ B.T


def adjoint_gtsam(T) -> np.ndarray:
    """Adjoint of T in GTSAM's [r, t] ordering (equals gtsam.Pose3(T).AdjointMap())."""
    T = np.asarray(T, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    Ad = np.zeros((6, 6))
    Ad[0:3, 0:3] = R
    Ad[3:6, 0:3] = skew(t) @ R
    Ad[3:6, 3:6] = R
    return Ad


def cov_ros_of_composition(T_a_b, cov_ros_a_b, T_b_c) -> np.ndarray:
    """ROS covariance of T_a_c = T_a_b @ T_b_c, with T_b_c known exactly (an extrinsic).

    Used to move a fix from a sensor frame to base_link (or back) without losing the
    coupling between rotation uncertainty and the lever arm.
    """
    T_a_b = np.asarray(T_a_b, dtype=np.float64)
    T_b_c = np.asarray(T_b_c, dtype=np.float64)
    cov_b = cov_gtsam_from_ros(cov_ros_a_b, T_a_b[:3, :3])
    # Body perturbation of T_a_b becomes Ad(T_c_b) times it in the body of T_a_c.
    R_bc, t_bc = T_b_c[:3, :3], T_b_c[:3, 3]
    T_c_b = np.eye(4)
    T_c_b[:3, :3] = R_bc.T
    T_c_b[:3, 3] = -R_bc.T @ t_bc
    Ad = adjoint_gtsam(T_c_b)
    cov_c = Ad @ cov_b @ Ad.T
    R_a_c = T_a_b[:3, :3] @ R_bc
    return cov_ros_from_gtsam(cov_c, R_a_c)
