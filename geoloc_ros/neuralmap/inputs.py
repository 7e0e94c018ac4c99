"""What the map localizer needs besides the image, the same in the node and in `geoloc eval`.

MapLocalizerConfig: the localizer's parameters plus the camera mount, the IMU mount
and the prior handling (the `map_localizer_node` section of config/*.yaml).
GravityFilter: gravity in base_link for roll and pitch: from the IMU's own orientation
(AHRS) when it reports one, else the low-passed accelerometer. The accelerometer alone is
wrong while accelerating (a car braking at 1 m/s^2 reads 6 deg of pitch; a multirotor's
specific force stays along its thrust axis whatever its tilt), so the AHRS wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NamedTuple

import numpy as np

from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.neuralmap.localizer import MapLocalizerParams


@dataclass(frozen=True)
class MapLocalizerConfig(MapLocalizerParams):
    """The localizer's parameters plus the camera mount and prior handling."""

    camera_xyz_m: list[float] = field(default_factory=lambda: [1.2, 0.0, 1.5])  # in base_link
    camera_pitch_down_deg: float = 3.0  # 0 forward, 90 nadir; optical axis along base x
    q_base_imu: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 1.0])  # x y z w
    ground_z_m: float = 0.0  # map-frame ground height under a drone (flat-ground assumption)
    min_prior_sigma_m: float = 2.0
    max_prior_sigma_m: float = 40.0
    max_prior_age_s: float = 2.0
    gravity_time_constant_s: float = 0.5
    accel_tilt_sigma_deg: float = 3.0  # roll/pitch 1-sigma when only the accelerometer gives them
    publish_multimodal: bool = False
    remove_prior: bool = True  # publish the image's own evidence (the prior divided out)
    yaw_only_fixes: bool = True  # a fix whose position the prior dominates still gives its yaw
    max_rate_hz: float = 0.0  # localize at most this often (by image stamps); 0 = every frame
    map_frame: str = "map"
    ortho_max_cells: int = 1024  # the map's orthophoto on map_localizer/ortho for RViz; 0 = off

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.camera_xyz_m) != 3 or not np.all(np.isfinite(self.camera_xyz_m)):
            raise ConfigError(f"camera_xyz_m must be 3 finite values, got {self.camera_xyz_m}")
        q = np.asarray(self.q_base_imu, float)
        if q.shape != (4,) or not abs(np.linalg.norm(q) - 1.0) < 1e-6:
            raise ConfigError(f"q_base_imu must be a unit quaternion [x y z w]: {self.q_base_imu}")
        if not 0 < self.min_prior_sigma_m <= self.max_prior_sigma_m:
            raise ConfigError("need 0 < min_prior_sigma_m <= max_prior_sigma_m")
        if not self.max_rate_hz >= 0:
            raise ConfigError(f"max_rate_hz must be >= 0, got {self.max_rate_hz}")
        if not (self.max_prior_age_s > 0 and self.gravity_time_constant_s > 0):
            raise ConfigError("max_prior_age_s and gravity_time_constant_s must be positive")
        if not 0.0 <= self.accel_tilt_sigma_deg <= 45.0:
            raise ConfigError(
                f"accel_tilt_sigma_deg must be in [0, 45], got {self.accel_tilt_sigma_deg}"
            )

    def params(self) -> MapLocalizerParams:
        return MapLocalizerParams(
            **{f.name: getattr(self, f.name) for f in fields(MapLocalizerParams)}
        )

    def gravity_filter(self) -> GravityFilter:
        return GravityFilter(self.gravity_time_constant_s, self.q_base_imu,
                             np.radians(self.accel_tilt_sigma_deg))  # fmt: skip

    def T_base_cam(self) -> np.ndarray:
        """4x4 camera_optical_frame in base_link from camera_xyz_m and camera_pitch_down_deg."""
        from geoloc_ros.sim.camera import CameraMount  # noqa: PLC0415

        return CameraMount(tuple(self.camera_xyz_m), self.camera_pitch_down_deg).T_base_cam

    def prior_sigma(self, sigma_m: float) -> float:
        return float(np.clip(sigma_m, self.min_prior_sigma_m, self.max_prior_sigma_m))


class GravityFilter:
    """Gravity direction in base_link: AHRS orientation if reported, else low-passed -accel."""

    def __init__(self, time_constant_s: float = 0.5, q_base_imu=(0.0, 0.0, 0.0, 1.0),
                 accel_tilt_sigma_rad: float = np.radians(3.0)) -> None:  # fmt: skip
        from geoloc_ros.geo.quaternion import matrix_from_xyzw  # noqa: PLC0415

        self.time_constant_s = float(time_constant_s)
        self.R_base_imu = matrix_from_xyzw(np.asarray(q_base_imu, float))
        self.g_base: np.ndarray | None = None
        self.t_s: float | None = None
        self.source = "none"  # "orientation" or "accelerometer"
        self.accel_tilt_sigma_rad = float(accel_tilt_sigma_rad)
        self.tilt_sigma_rad = float("nan")  # 1-sigma of roll/pitch, for the fix covariance

    def update(self, t_s: float, accel_imu_mps2, q_world_imu_xyzw=None, cov_rpy_3x3=None) -> None:
        """One IMU sample; `q_world_imu_xyzw` is its reported orientation (None if it has
        none) and `cov_rpy_3x3` that orientation's covariance (rad^2)."""
        from geoloc_ros.geo.quaternion import matrix_from_xyzw  # noqa: PLC0415

        if q_world_imu_xyzw is not None:
            R_world_base = matrix_from_xyzw(q_world_imu_xyzw) @ self.R_base_imu.T
            g = R_world_base.T @ np.array([0.0, 0.0, -1.0])
            if np.all(np.isfinite(g)):
                self.g_base, self.t_s, self.source = g, float(t_s), "orientation"
                self.tilt_sigma_rad = self.accel_tilt_sigma_rad
                if cov_rpy_3x3 is not None and np.all(np.isfinite(cov_rpy_3x3)):
                    c = np.asarray(cov_rpy_3x3, float)
                    self.tilt_sigma_rad = float(np.sqrt(max(c[0, 0], c[1, 1], 0.0)))
                return
        if self.source == "orientation":
            return  # an IMU that reported orientation before and lost it briefly: keep it
        g = -(self.R_base_imu @ np.asarray(accel_imu_mps2, float))
        if not np.all(np.isfinite(g)):
            raise InputRejected("IMU acceleration is not finite", "nan")
        if self.g_base is None or self.t_s is None or t_s <= self.t_s:
            self.g_base = g  # first sample, or time went back: restart from this one
        else:
            a = min(1.0, (t_s - self.t_s) / self.time_constant_s)
            self.g_base = (1 - a) * self.g_base + a * g
        self.t_s = float(t_s)
        self.source = "accelerometer"
        self.tilt_sigma_rad = self.accel_tilt_sigma_rad

    def roll_pitch(self) -> tuple[float, float]:
        """(roll, pitch) of base_link; InputRejected when no IMU sample came yet."""
        from geoloc_ros.neuralmap.geometry import roll_pitch_from_gravity  # noqa: PLC0415

        if self.g_base is None:
            raise InputRejected("no IMU yet: gravity (roll, pitch) unavailable", "gravity")
        return roll_pitch_from_gravity(self.g_base)


def camera_mount(tf, frame_id: str, cfg: MapLocalizerConfig) -> tuple[np.ndarray, str]:
    """T_base_cam from /tf_static (io.tf.StaticTransforms) when it links base_link to the
    image's frame, else from the config; also says which ("tf_static" or "config")."""
    if frame_id and len(tf):
        try:
            return tf.lookup("base_link", frame_id), "tf_static"
        except InputRejected:
            pass
    return cfg.T_base_cam(), "config"


YAW_PRIOR_SIGMAS = 3.0  # the searched yaw range holds the fused yaw's 3-sigma interval


class ImagePrior(NamedTuple):
    """Where an image's search looks: base_link's map-frame position and its horizontal
    sigma, the yaw (None: all yaws), and base_link's height with its sigma (a nadir view
    searches heights that far; 0 takes the height as given)."""

    xy_m: np.ndarray
    z_m: float
    sigma_m: float
    yaw_rad: float | None = None
    sigma_z_m: float = 0.0


def prior_from_state(state, cfg: MapLocalizerConfig) -> ImagePrior:
    """The ImagePrior of a fused NavState (odometry/global).

    The yaw joins only when its 3-sigma range fits inside `yaw_prior_deg`, the half-width
    the search then narrows to: a state 14 deg off with a 14 deg sigma (the demo's
    start, after a PoseNet fix) must not hide the true heading from the search. The
    sigma is clipped to the configured bounds.
    """
    from geoloc_ros.geo.quaternion import yaw_from_xyzw  # noqa: PLC0415

    p = np.asarray(state.p_m, float)
    cov = state.cov_pose_6x6
    if not np.all(np.isfinite(p)) or cov is None or not np.all(np.isfinite(cov)):
        raise InputRejected("the fused state has no finite position or covariance", "prior")
    sigma = float(np.sqrt(max(cov[0, 0], cov[1, 1], 0.0)))
    yaw_ok = 0.0 < cov[5, 5] < (np.radians(cfg.yaw_prior_deg) / YAW_PRIOR_SIGMAS) ** 2
    yaw = yaw_from_xyzw(state.q_xyzw) if yaw_ok else None
    sigma_z = float(np.sqrt(max(cov[2, 2], 0.0)))
    return ImagePrior(p[:2].copy(), float(p[2]), cfg.prior_sigma(sigma), yaw, sigma_z)


def prior_from_gnss(fix, ltp) -> tuple[float, ImagePrior] | None:
    """(t_s, ImagePrior) of a GnssFix in the map frame of `ltp`, or None without a
    position or a covariance (the sigma is the larger horizontal one, unclipped)."""
    if not fix.has_fix or fix.cov_enu_3x3 is None:
        return None
    if not np.all(np.isfinite([fix.lat_deg, fix.lon_deg, fix.alt_m])):
        return None
    enu = ltp.enu_from_geodetic(fix.lat_deg, fix.lon_deg, fix.alt_m)
    sigma = float(np.sqrt(max(fix.cov_enu_3x3[0, 0], fix.cov_enu_3x3[1, 1])))
    sigma_z = float(np.sqrt(max(fix.cov_enu_3x3[2, 2], 0.0)))
    return fix.t_s, ImagePrior(np.asarray(enu[:2], float), float(enu[2]), sigma, None, sigma_z)


@dataclass(frozen=True)
class Priors:
    """The latest fused-state and GNSS priors, immutable (a node hands a snapshot to its
    worker). `for_image` picks one the same way online and offline: the fused state while
    it is within max_prior_age_s of the image, else a GNSS fix that is."""

    state: tuple[float, ImagePrior] | None = None  # (t_s, prior) from odometry/global
    gnss: tuple[float, ImagePrior] | None = None  # (t_s, prior) from fix, sigma unclipped

    def with_state(self, state, cfg: MapLocalizerConfig) -> Priors:
        """Raises InputRejected for a state without a finite position or covariance;
        None (a fusion that reset after diverging) drops the state prior: GNSS takes over
        at once, not after max_prior_age_s of priors from the diverged state."""
        if state is None:
            return Priors(None, self.gnss)
        return Priors((float(state.t_s), prior_from_state(state, cfg)), self.gnss)

    def with_gnss(self, fix, ltp) -> Priors:
        """A fix without a position or a covariance keeps the previous GNSS prior."""
        return Priors(self.state, prior_from_gnss(fix, ltp) or self.gnss)

    def for_image(self, t_s: float, cfg: MapLocalizerConfig) -> ImagePrior:
        """The prior for an image at `t_s`, or InputRejected("prior")."""
        age = cfg.max_prior_age_s
        if self.state is not None and abs(t_s - self.state[0]) <= age:
            return self.state[1]
        if self.gnss is not None and abs(t_s - self.gnss[0]) <= age:
            return self.gnss[1]._replace(sigma_m=cfg.prior_sigma(self.gnss[1].sigma_m))
        if self.state is None and self.gnss is None:
            raise InputRejected("no prior yet (odometry/global or fix)", "prior")
        t_last = max(p[0] for p in (self.state, self.gnss) if p is not None)
        raise InputRejected(f"prior is {t_s - t_last:.1f} s from the image", "prior")


def fix_to_publish(loc, fix, prior_xy, prior_sigma_m: float, cfg: MapLocalizerConfig):
    """map_localizer_node's rules for one fix, live and offline alike: (fix, "") to
    publish, or (None, reason) withheld: "multimodal" (unless publish_multimodal), or
    "prior_dominated" when, with remove_prior, the fused prior divided out of the fix
    leaves no position of the image's own, and, with yaw_only_fixes, no yaw as sure as
    one the search would narrow to either (neuralmap.localizer.divide_out_prior).
    """
    from geoloc_ros.neuralmap.localizer import divide_out_prior  # noqa: PLC0415

    if fix.multimodal and not cfg.publish_multimodal:
        return None, "multimodal"
    if cfg.remove_prior and loc.params.use_prior:
        max_yaw_sigma = 0.0  # a yaw as sure as one the search narrows to, or none
        if cfg.yaw_only_fixes:
            max_yaw_sigma = np.radians(cfg.yaw_prior_deg) / YAW_PRIOR_SIGMAS
        fix = divide_out_prior(fix, prior_xy, prior_sigma_m, loc.bundle.calibration,
                               max_yaw_sigma)  # fmt: skip
        if fix is None:
            return None, "prior_dominated"
    return fix, ""


def posefix_of(t_s: float, fix, z_m: float, map_frame: str):
    """The planar MapFix as the PoseFix map_localizer/fix carries (3-DoF: x, y, yaw; its
    z is the prior's `z_m`, free, unless the search measured the height: then that
    height's z, with its variance)."""
    from geoloc_ros.geo.quaternion import xyzw_from_rpy  # noqa: PLC0415
    from geoloc_ros.types import FREE_VARIANCE, PoseFix  # noqa: PLC0415

    cov = np.diag([0.0, 0.0, FREE_VARIANCE, FREE_VARIANCE, FREE_VARIANCE, 0.0])
    cov[:2, :2] = fix.cov_xyyaw[:2, :2]
    cov[5, 5] = fix.cov_xyyaw[2, 2]
    if fix.height_m is not None:
        z_m = z_m + fix.height_m - fix.height_prior_m  # base_link moves with the camera
        cov[2, 2] = fix.var_height_m2
    p = np.array([fix.xy_m[0], fix.xy_m[1], z_m])
    q = xyzw_from_rpy(0.0, 0.0, fix.yaw_rad)
    return PoseFix(t_s, p, q, cov, map_frame, "base_link", 3, "map_localizer")
