"""TUM trajectory files (`t x y z qx qy qz qw`) through evo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geoloc_ros.geo.quaternion import xyzw_from_wxyz
from geoloc_ros.types import NavState


def write_tum(path: str | Path, states: Sequence[NavState]) -> None:
    """Write states (map frame) as a TUM file."""
    from geoloc_ros.eval.trajectory import Trajectory  # noqa: PLC0415

    Trajectory.from_states(states).write_tum(path)


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_s, p_m (N,3), q_xyzw (N,4)) of a TUM file."""
    from evo.tools import file_interface  # noqa: PLC0415

    traj = file_interface.read_tum_trajectory_file(str(path))
    return traj.timestamps, traj.positions_xyz, xyzw_from_wxyz(traj.orientations_quat_wxyz)
