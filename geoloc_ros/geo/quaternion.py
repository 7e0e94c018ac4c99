"""One quaternion convention with named converters.

The core stores ROS order `q_xyzw` (scalar last, as geometry_msgs/Quaternion and
scipy). Hamilton/Eigen/GTSAM order is `q_wxyz` (scalar first). Both are Hamilton
quaternions (i*j = k) for active rotations: `R(q) @ v` rotates a child-frame vector
into the parent frame, so a pose `T_parent_child` has rotation `R_parent_child`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from geoloc_ros.errors import InputRejected


def wxyz_from_xyzw(q_xyzw) -> np.ndarray:
    """ROS (x, y, z, w) to Hamilton/GTSAM (w, x, y, z)."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    return np.concatenate([q[..., 3:4], q[..., 0:3]], axis=-1)


def xyzw_from_wxyz(q_wxyz) -> np.ndarray:
    """Hamilton/GTSAM (w, x, y, z) to ROS (x, y, z, w)."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)


def normalized_xyzw(q_xyzw, tol: float = 1e-3) -> np.ndarray:
    """Unit quaternion with w >= 0; rejects NaN and norms further than `tol` from 1.

    A small deviation (float32 round trips) is renormalised; a zero or garbage
    quaternion is input to reject, not to repair.
    """
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(4)
    n = float(np.linalg.norm(q))
    if not math.isfinite(n) or abs(n - 1.0) > tol:
        raise InputRejected(f"quaternion {q.tolist()} is not a unit quaternion", "quaternion")
    q = q / n
    return -q if q[3] < 0 else q


def matrix_from_xyzw(q_xyzw) -> np.ndarray:
    """3x3 rotation matrix R_parent_child of a (nearly) unit quaternion (or an (N,4) stack)."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    if q.shape != (4,):
        return Rotation.from_quat(q).as_matrix()
    x, y, z, w = q / math.sqrt(q @ q)  # closed form: scipy costs ~40 us per single call
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def xyzw_from_matrix(R) -> np.ndarray:
    """Quaternion (x, y, z, w), w >= 0, of a rotation matrix (or an (N,3,3) stack)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        q = Rotation.from_matrix(R).as_quat()
        return np.where(q[..., 3:4] < 0, -q, q)
    # Shepperd's method: pivot on the largest of w, x, y, z for accuracy near 180 deg
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    cands = (tr, R[0, 0], R[1, 1], R[2, 2])
    i = int(np.argmax(cands))
    if i == 0:
        s = 2.0 * math.sqrt(max(1.0 + tr, 0.0))
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, s / 4]
    elif i == 1:
        s = 2.0 * math.sqrt(max(1.0 + R[0, 0] - R[1, 1] - R[2, 2], 0.0))
        q = [s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif i == 2:
        s = 2.0 * math.sqrt(max(1.0 + R[1, 1] - R[0, 0] - R[2, 2], 0.0))
        q = [(R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(max(1.0 + R[2, 2] - R[0, 0] - R[1, 1], 0.0))
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4, (R[1, 0] - R[0, 1]) / s]
    out = np.array(q)
    out /= math.sqrt(out @ out)
    return -out if out[3] < 0 else out


def yaw_from_xyzw(q_xyzw) -> float:
    """Heading [rad] about the parent z axis (ENU: 0 = east, counter-clockwise)."""
    x, y, z, w = np.asarray(q_xyzw, dtype=np.float64)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def xyzw_from_rpy(roll_rad: float, pitch_rad: float, yaw_rad: float) -> np.ndarray:
    """Quaternion of fixed-axis roll, pitch, yaw (R = Rz(yaw) Ry(pitch) Rx(roll), as REP-103)."""
    q = Rotation.from_euler("xyz", [roll_rad, pitch_rad, yaw_rad]).as_quat()
    return -q if q[3] < 0 else q


def rot3_from_xyzw(q_xyzw):
    """gtsam.Rot3 of a ROS-order quaternion."""
    import gtsam  # noqa: PLC0415  (heavy import kept off the CLI's start-up path)

    x, y, z, w = normalized_xyzw(q_xyzw)
    return gtsam.Rot3.Quaternion(w, x, y, z)


def xyzw_from_rot3(rot3) -> np.ndarray:
    """ROS-order quaternion (w >= 0) of a gtsam.Rot3 (no 3x3 round trip: output-rate path)."""
    q = rot3.toQuaternion().coeffs()  # Eigen's order: x, y, z, w
    return -q if q[3] < 0 else q
