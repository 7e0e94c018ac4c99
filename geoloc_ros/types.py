"""Core data types shared by every layer: SI units, float64 seconds, frames named.

Quaternions are ROS order `q_xyzw` everywhere in the core (see geo.quaternion).
Pose covariances `cov_pose_6x6` use the ROS ordering [x y z roll pitch yaw]: position
in the parent frame, then a small rotation about the parent frame's fixed axes.
A covariance of `None` means "not reported"; consumers apply their own default.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from geoloc_ros.errors import InputRejected


def _vec(value: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (n,):
        raise InputRejected(f"{name} must have {n} elements, got shape {arr.shape}", "shape")
    arr.setflags(write=False)
    return arr


def _mat(value: object | None, n: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != n * n:
        raise InputRejected(f"{name} must be {n}x{n}, got shape {arr.shape}", "shape")
    arr = arr.reshape(n, n)
    arr.setflags(write=False)
    return arr


class GnssStatus(enum.IntEnum):
    """sensor_msgs/NavSatStatus.status values."""

    NO_FIX = -1
    FIX = 0
    SBAS_FIX = 1
    GBAS_FIX = 2


class CovarianceType(enum.IntEnum):
    """sensor_msgs/NavSatFix.position_covariance_type values."""

    UNKNOWN = 0
    APPROXIMATED = 1
    DIAGONAL_KNOWN = 2
    KNOWN = 3


@dataclass(frozen=True, eq=False)
class ImuSample:
    """One IMU reading in `frame_id` (body axes of the IMU, FLU for ROS data)."""

    t_s: float
    gyro_radps: np.ndarray
    accel_mps2: np.ndarray
    frame_id: str = "imu_link"
    q_xyzw: np.ndarray | None = None  # orientation, if the IMU reports one
    cov_gyro_3x3: np.ndarray | None = None
    cov_accel_3x3: np.ndarray | None = None
    cov_orientation_3x3: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gyro_radps", _vec(self.gyro_radps, 3, "gyro_radps"))
        object.__setattr__(self, "accel_mps2", _vec(self.accel_mps2, 3, "accel_mps2"))
        if self.q_xyzw is not None:
            object.__setattr__(self, "q_xyzw", _vec(self.q_xyzw, 4, "q_xyzw"))
        for name in ("cov_gyro_3x3", "cov_accel_3x3", "cov_orientation_3x3"):
            object.__setattr__(self, name, _mat(getattr(self, name), 3, name))


@dataclass(frozen=True, eq=False)
class GnssFix:
    """One GNSS fix: WGS84 position of the antenna (`frame_id`) and its ENU covariance [m^2]."""

    t_s: float
    lat_deg: float
    lon_deg: float
    alt_m: float
    status: GnssStatus = GnssStatus.FIX
    cov_enu_3x3: np.ndarray | None = None
    covariance_type: CovarianceType = CovarianceType.UNKNOWN
    frame_id: str = "gnss_link"

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", GnssStatus(self.status))
        object.__setattr__(self, "covariance_type", CovarianceType(self.covariance_type))
        object.__setattr__(self, "cov_enu_3x3", _mat(self.cov_enu_3x3, 3, "cov_enu_3x3"))

    @property
    def has_fix(self) -> bool:
        return self.status != GnssStatus.NO_FIX


FREE_VARIANCE = 1e6  # a pose fix component left to the other sensors (m^2 or rad^2)


@dataclass(frozen=True, eq=False)
class PoseFix:
    """An absolute pose of `child_frame_id` in `frame_id` (e.g. map) with ROS-ordered covariance.

    `dof` says which components are measured: 6 (PoseNet) or 3 (x, y, yaw from the map
    localizer; z, roll and pitch carry FREE_VARIANCE and must be left free).
    """

    t_s: float
    p_m: np.ndarray
    q_xyzw: np.ndarray
    cov_pose_6x6: np.ndarray
    frame_id: str = "map"
    child_frame_id: str = "base_link"
    dof: int = 6
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "p_m", _vec(self.p_m, 3, "p_m"))
        object.__setattr__(self, "q_xyzw", _vec(self.q_xyzw, 4, "q_xyzw"))
        object.__setattr__(self, "cov_pose_6x6", _mat(self.cov_pose_6x6, 6, "cov_pose_6x6"))
        if self.dof not in (3, 6):
            raise InputRejected(f"PoseFix.dof must be 3 or 6, got {self.dof}", "dof")


@dataclass(frozen=True, eq=False)
class CameraFrame:
    """An image with its pinhole intrinsics; `image` is HxW (mono) or HxWx3 (RGB) uint8."""

    t_s: float
    image: np.ndarray
    K_3x3: np.ndarray | None = None
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = ""
    frame_id: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        if self.image.ndim not in (2, 3):
            raise InputRejected(f"image must be HxW or HxWxC, got {self.image.shape}", "shape")
        object.__setattr__(self, "K_3x3", _mat(self.K_3x3, 3, "K_3x3"))

    @property
    def size_wh(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True, eq=False)
class NavState:
    """Pose and velocity of `child_frame_id` in `frame_id` with covariances.

    `v_mps` is expressed in the parent frame (`frame_id`); nav_msgs/Odometry carries
    the twist in the child frame, and io.convert rotates between the two.
    """

    t_s: float
    p_m: np.ndarray
    q_xyzw: np.ndarray
    v_mps: np.ndarray = field(default_factory=lambda: np.zeros(3))
    w_radps: np.ndarray = field(default_factory=lambda: np.zeros(3))  # body frame
    cov_pose_6x6: np.ndarray | None = None
    cov_twist_6x6: np.ndarray | None = None  # body frame, [vx vy vz wx wy wz]
    frame_id: str = "map"
    child_frame_id: str = "base_link"

    def __post_init__(self) -> None:
        for name, n in (("p_m", 3), ("q_xyzw", 4), ("v_mps", 3), ("w_radps", 3)):
            object.__setattr__(self, name, _vec(getattr(self, name), n, name))
        for name in ("cov_pose_6x6", "cov_twist_6x6"):
            object.__setattr__(self, name, _mat(getattr(self, name), 6, name))


@dataclass(frozen=True)
class Decision:
    """What happened to one absolute measurement (for diagnostics and the eval report)."""

    t_s: float
    accepted: bool
    reason: str = ""
    nis: float = float("nan")
