"""REP-103 axis conventions: ENU/FLU (ROS) versus NED/FRD (aerospace, many drivers).

All of these are their own inverses as vector maps; attitude conversions need both
the world and the body change.
"""

from __future__ import annotations

import numpy as np

from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix

R_ENU_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
"""Takes NED vectors to ENU (and back: it is symmetric and its own inverse)."""

R_FLU_FRD = np.diag([1.0, -1.0, -1.0])
"""Takes FRD body vectors to FLU (and back)."""


def enu_from_ned(v_ned) -> np.ndarray:
    """(north, east, down) -> (east, north, up), shape (..., 3)."""
    return np.asarray(v_ned, dtype=np.float64) @ R_ENU_NED.T


def ned_from_enu(v_enu) -> np.ndarray:
    """(east, north, up) -> (north, east, down)."""
    return np.asarray(v_enu, dtype=np.float64) @ R_ENU_NED.T


def flu_from_frd(v_frd) -> np.ndarray:
    """(forward, right, down) -> (forward, left, up)."""
    return np.asarray(v_frd, dtype=np.float64) @ R_FLU_FRD.T


def frd_from_flu(v_flu) -> np.ndarray:
    """(forward, left, up) -> (forward, right, down)."""
    return np.asarray(v_flu, dtype=np.float64) @ R_FLU_FRD.T


def q_enu_flu_from_q_ned_frd(q_ned_frd_xyzw) -> np.ndarray:
    """Attitude of an FLU body in ENU from the attitude of the FRD body in NED."""
    R = R_ENU_NED @ matrix_from_xyzw(q_ned_frd_xyzw) @ R_FLU_FRD
    return xyzw_from_matrix(R)


def q_ned_frd_from_q_enu_flu(q_enu_flu_xyzw) -> np.ndarray:
    """Attitude of an FRD body in NED from the attitude of the FLU body in ENU."""
    R = R_ENU_NED @ matrix_from_xyzw(q_enu_flu_xyzw) @ R_FLU_FRD
    return xyzw_from_matrix(R)
