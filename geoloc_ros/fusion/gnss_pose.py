"""GNSS-only pose: the raw-fix baseline every fusion row is compared against.

Position is the antenna fix in the local ENU `map` frame (datum from the config, or
the first good fix); orientation is the IMU's own attitude when it reports one
(rotated by the configured IMU mounting), else the previous one. No filtering: this
is what the receiver alone gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.types import GnssFix, ImuSample, NavState

DEFAULT_FIX_VARIANCE_M2 = 25.0  # used when the receiver reports no covariance (5 m sigma)
UNKNOWN_ROTATION_VARIANCE = 1e6  # rad^2: no attitude known
DEFAULT_ATTITUDE_VARIANCE_RAD2 = 0.01  # IMU attitude without a reported covariance


@dataclass
class GnssPoseConfig:
    """Parameters of the GNSS-only baseline (the gnss_pose_node's ROS parameters)."""

    datum: list[float] = field(default_factory=list)  # [lat_deg, lon_deg, alt_m]; [] = first fix
    map_frame: str = "map"
    base_frame: str = "base_link"
    publish_tf: bool = True
    q_base_imu: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 1.0])  # xyzw

    def __post_init__(self) -> None:
        if self.datum and len(self.datum) != 3:
            raise ValueError(f"datum must be [lat_deg, lon_deg, alt_m] or [], got {self.datum}")
        if len(self.q_base_imu) != 4 or abs(np.linalg.norm(self.q_base_imu) - 1.0) > 1e-6:
            raise ValueError(
                f"q_base_imu must be a unit quaternion [x, y, z, w], got {self.q_base_imu}"
            )


class GnssPoseEstimator:
    """Turns fixes (and IMU attitude) into NavStates in the map frame."""

    def __init__(self, config: GnssPoseConfig) -> None:
        self.config = config
        self.ltp: LocalTangentPlane | None = (
            LocalTangentPlane(*config.datum) if config.datum else None
        )
        self._R_imu_base = matrix_from_xyzw(config.q_base_imu).T
        self._q_map_base: np.ndarray | None = None
        self._q_from_imu = False
        self._cov_rot_3x3 = np.eye(3) * UNKNOWN_ROTATION_VARIANCE

    def reset(self) -> None:
        """Forget attitude (after a time jump); the datum is kept so the map does not move."""
        self._q_map_base = None
        self._q_from_imu = False
        self._cov_rot_3x3 = np.eye(3) * UNKNOWN_ROTATION_VARIANCE

    def on_imu(self, sample: ImuSample) -> None:
        if sample.q_xyzw is None:
            return
        R_map_imu = matrix_from_xyzw(sample.q_xyzw)
        self._q_map_base = xyzw_from_matrix(R_map_imu @ self._R_imu_base)
        self._q_from_imu = True
        if sample.cov_orientation_3x3 is not None:  # fixed (world) axes, as in ROS poses
            self._cov_rot_3x3 = sample.cov_orientation_3x3
        else:
            self._cov_rot_3x3 = np.eye(3) * DEFAULT_ATTITUDE_VARIANCE_RAD2

    def on_fix(self, fix: GnssFix) -> NavState | None:
        """NavState of base_link at the fix time, or None for NO_FIX."""
        if not fix.has_fix:
            return None
        if self.ltp is None:
            self.ltp = LocalTangentPlane(fix.lat_deg, fix.lon_deg, fix.alt_m)
        p = self.ltp.enu_from_geodetic(fix.lat_deg, fix.lon_deg, fix.alt_m)
        if np.abs(p).max() > 1e6:
            raise InputRejected(f"fix is {np.linalg.norm(p) / 1e3:.0f} km from the datum", "range")
        cov_p = (
            fix.cov_enu_3x3 if fix.cov_enu_3x3 is not None else np.eye(3) * DEFAULT_FIX_VARIANCE_M2
        )
        cov = np.zeros((6, 6))
        R_map_fixenu = self.ltp.R_enu_ecef_at(fix.lat_deg, fix.lon_deg)
        cov[:3, :3] = R_map_fixenu @ cov_p @ R_map_fixenu.T
        cov[3:, 3:] = self._cov_rot_3x3
        q = self._q_map_base if self._q_map_base is not None else np.array([0.0, 0.0, 0.0, 1.0])
        return NavState(
            t_s=fix.t_s,
            p_m=p,
            q_xyzw=q,
            cov_pose_6x6=cov,
            frame_id=self.config.map_frame,
            child_frame_id=self.config.base_frame,
        )
