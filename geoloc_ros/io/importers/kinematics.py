"""Finite-difference twists for ground truth that comes as poses only.

Data sets give positions and orientations (sometimes velocities) but rarely angular
rates; nav_msgs/Odometry carries both in the child frame. Central differences keep the
estimate centred on the sample (no half-step lag); the ends use one-sided differences.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from geoloc_ros.io.importers.base import SourceError


def _check_times(t_s: np.ndarray, n: int) -> None:
    if t_s.shape != (n,) or n < 2 or not np.all(np.diff(t_s) > 0):
        raise SourceError("ground truth needs at least 2 poses with strictly increasing times")


def velocity_parent(t_s: np.ndarray, p_m: np.ndarray) -> np.ndarray:
    """(N, 3) velocity in the parent frame from (N, 3) positions (second-order differences)."""
    t_s = np.asarray(t_s, dtype=np.float64)
    _check_times(t_s, len(p_m))
    return np.gradient(np.asarray(p_m, dtype=np.float64), t_s, axis=0)


def body_rates(t_s: np.ndarray, R_parent_child: np.ndarray) -> np.ndarray:
    """(N, 3) angular velocity of the child relative to the parent, in the child frame.

    From R_{k+1} = R_{k-1} Exp(w dt): w_k = Log(R_{k-1}^T R_{k+1}) / (t_{k+1} - t_{k-1}).
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    R = np.asarray(R_parent_child, dtype=np.float64)
    _check_times(t_s, len(R))
    lo = np.r_[0, np.arange(len(R) - 2), len(R) - 2]
    hi = np.r_[1, np.arange(2, len(R)), len(R) - 1]
    rel = Rotation.from_matrix(np.swapaxes(R[lo], 1, 2) @ R[hi])
    return rel.as_rotvec() / (t_s[hi] - t_s[lo])[:, None]
