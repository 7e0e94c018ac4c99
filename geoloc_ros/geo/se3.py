"""Rigid transforms as 4x4 homogeneous matrices named `T_parent_child`."""

from __future__ import annotations

import numpy as np

from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix


def T_from_pq(p_m, q_xyzw) -> np.ndarray:
    """4x4 transform from a translation and a ROS-order quaternion."""
    T = np.eye(4)
    T[:3, :3] = matrix_from_xyzw(q_xyzw)
    T[:3, 3] = np.asarray(p_m, dtype=np.float64)
    return T


def pq_from_T(T) -> tuple[np.ndarray, np.ndarray]:
    """(translation, q_xyzw) of a 4x4 transform."""
    T = np.asarray(T, dtype=np.float64)
    return T[:3, 3].copy(), xyzw_from_matrix(T[:3, :3])


def T_inv(T) -> np.ndarray:
    """Inverse of a rigid transform without a general matrix inverse."""
    T = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def skew(v) -> np.ndarray:
    """Cross-product matrix: skew(a) @ b == cross(a, b)."""
    x, y, z = np.asarray(v, dtype=np.float64)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
