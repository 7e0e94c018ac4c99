"""TUM trajectory files (`t x y z qx qy qz qw`) through evo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geoloc_ros.geo.quaternion import wxyz_from_xyzw, xyzw_from_wxyz
from geoloc_ros.types import NavState


def write_tum(path: str | Path, states: Sequence[NavState]) -> None:
    """Write states (map frame) as a TUM file; evo stores quaternions as wxyz internally."""
    from evo.core.trajectory import PoseTrajectory3D  # noqa: PLC0415
    from evo.tools import file_interface  # noqa: PLC0415

    traj = PoseTrajectory3D(
        positions_xyz=np.array([s.p_m for s in states]).reshape(-1, 3),
        orientations_quat_wxyz=wxyz_from_xyzw(np.array([s.q_xyzw for s in states]).reshape(-1, 4)),
        timestamps=np.array([s.t_s for s in states]),
    )
    file_interface.write_tum_trajectory_file(str(path), traj)


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_s, p_m (N,3), q_xyzw (N,4)) of a TUM file."""
    from evo.tools import file_interface  # noqa: PLC0415

    traj = file_interface.read_tum_trajectory_file(str(path))
    return traj.timestamps, traj.positions_xyz, xyzw_from_wxyz(traj.orientations_quat_wxyz)
