"""Half-turn augmentation for nadir cameras.

An image turned by 180 degrees about its centre is exactly the view of the same camera
after a half turn about its optical axis, provided the principal point is the image
centre. For a nadir camera that is the drone flying the opposite heading, so every
training image also teaches the reverse direction of its survey line, for free.
"""

from __future__ import annotations

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix

CENTRE_TOLERANCE_PX = 0.5
R_HALF_TURN_Z = np.diag([-1.0, -1.0, 1.0])


def check_half_turn(camera: dict | None) -> None:
    """Raise ConfigError unless the camera's principal point is its image centre."""
    if camera is None:
        raise ConfigError(
            "--half-turn needs the camera intrinsics and mount, which only simulator "
            "datasets record (dataset.json)"
        )
    K = np.asarray(camera["K"], dtype=np.float64)
    w, h = camera["width"], camera["height"]
    off = np.abs([K[0, 2] - (w - 1) / 2, K[1, 2] - (h - 1) / 2])
    if off.max() > CENTRE_TOLERANCE_PX:
        raise ConfigError(
            f"--half-turn needs the principal point at the image centre; it is "
            f"{off.max():.1f} px off"
        )


def half_turn_poses(
    p_m: np.ndarray, q_xyzw: np.ndarray, T_base_cam: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Base poses (N, 3), (N, 4) after a half turn of the camera about its optical axis.

    T_world_base' = T_world_base @ T_base_cam @ Rz(pi) @ T_cam_base: the camera stays
    where it was, the body swings round it (0.2 m for a lens 0.1 m ahead of base_link).
    """
    T_bc = np.asarray(T_base_cam, dtype=np.float64)
    T_turn = np.eye(4)
    T_turn[:3, :3] = R_HALF_TURN_Z
    T_delta = T_bc @ T_turn @ np.linalg.inv(T_bc)
    R = np.stack([matrix_from_xyzw(q) for q in q_xyzw])
    p_out = p_m + np.einsum("nij,j->ni", R, T_delta[:3, 3])
    q_out = np.stack([xyzw_from_matrix(r @ T_delta[:3, :3]) for r in R])
    return p_out, q_out
