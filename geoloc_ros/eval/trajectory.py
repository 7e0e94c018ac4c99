"""A timed pose sequence in the run's map frame, and the ways evaluation reshapes it.

Ground truth comes at its own rate and in its own frame (ECEF `earth`, or a local one);
estimates come at keyframes. Everything is brought to the map frame and interpolated
to the estimate's stamps before evo measures it, so no error comes from stamp mismatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.types import NavState

MAX_GAP_S = 0.5  # ground truth gaps longer than this are not interpolated across


@dataclass
class Trajectory:
    """t_s (N,), p_m (N,3), q_xyzw (N,4) and optionally cov_p_3x3 (N,3,3), sorted by time."""

    t_s: np.ndarray
    p_m: np.ndarray
    q_xyzw: np.ndarray
    cov_p_3x3: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t_s)

    @classmethod
    def from_states(cls, states: Sequence[NavState]) -> Trajectory:
        cov = None
        if states and all(s.cov_pose_6x6 is not None for s in states):
            cov = np.array([s.cov_pose_6x6[:3, :3] for s in states])
        return cls(
            np.array([s.t_s for s in states], float),
            np.array([s.p_m for s in states], float).reshape(-1, 3),
            np.array([s.q_xyzw for s in states], float).reshape(-1, 4),
            cov,
        )

    @classmethod
    def ground_truth(cls, states: Sequence[NavState], ltp: LocalTangentPlane | None) -> Trajectory:
        """Ground truth in the map frame: ECEF (`earth`) via the map's datum, else as it is."""
        traj = cls.from_states(states)
        traj.cov_p_3x3 = None
        if states and states[0].frame_id == "earth" and ltp is not None:
            R = ltp.R_enu_ecef
            traj.p_m = ltp.enu_from_ecef(traj.p_m)
            traj.q_xyzw = np.array([xyzw_from_matrix(R @ matrix_from_xyzw(q)) for q in traj.q_xyzw])
        return traj

    @classmethod
    def from_tum(cls, path: str | Path) -> Trajectory:
        """A TUM file `t x y z qx qy qz qw` (as write_tum leaves it; no covariances)."""
        from geoloc_ros.eval.tum import read_tum  # noqa: PLC0415

        return cls(*read_tum(path))

    def select(self, mask: np.ndarray) -> Trajectory:
        cov = self.cov_p_3x3[mask] if self.cov_p_3x3 is not None else None
        return Trajectory(self.t_s[mask], self.p_m[mask], self.q_xyzw[mask], cov)

    def at(self, t_s: np.ndarray) -> tuple[Trajectory, np.ndarray]:
        """This trajectory interpolated (linear, slerp) at `t_s`; also the mask of valid stamps."""
        from scipy.spatial.transform import Rotation, Slerp  # noqa: PLC0415

        t_s = np.asarray(t_s, float)
        ok = (t_s >= self.t_s[0]) & (t_s <= self.t_s[-1]) if len(self) > 1 else t_s < -np.inf
        i = np.clip(np.searchsorted(self.t_s, t_s), 1, max(len(self) - 1, 1))
        if len(self) > 1:
            ok &= (self.t_s[i] - self.t_s[i - 1]) <= MAX_GAP_S
        tq = t_s[ok]
        p = np.stack([np.interp(tq, self.t_s, self.p_m[:, k]) for k in range(3)], 1)
        q = Slerp(self.t_s, Rotation.from_quat(self.q_xyzw))(tq).as_quat() if ok.any() else p[:, :0]
        return Trajectory(tq, p.reshape(-1, 3), np.asarray(q).reshape(-1, 4)), ok

    def to_evo(self, horizontal: bool = False):
        """evo PoseTrajectory3D (z set to 0 when `horizontal`, for 2-D metrics)."""
        from evo.core.trajectory import PoseTrajectory3D  # noqa: PLC0415

        p = self.p_m.copy()
        if horizontal:
            p[:, 2] = 0.0
        return PoseTrajectory3D(
            positions_xyz=p,
            orientations_quat_wxyz=self.q_xyzw[:, [3, 0, 1, 2]],
            timestamps=self.t_s,
        )

    def write_tum(self, path: str | Path) -> None:
        """TUM file `t x y z qx qy qz qw`, written by evo (empty when there is no pose)."""
        from evo.tools import file_interface  # noqa: PLC0415

        if len(self) == 0:  # evo refuses empty trajectories; an empty file says it plainly
            Path(path).write_text("")
            return
        file_interface.write_tum_trajectory_file(str(path), self.to_evo())
