"""Simulate a car drive or a drone flight through a world and write it as a rosbag2 mcap.

The bag carries the DESIGN.md topics (IMU, GNSS, camera + CameraInfo, wheel speed for
the car), the extrinsics on /tf_static, ground truth on /ground_truth/odom (ECEF,
frame `earth`) and a latched /geoloc/sim_info naming the world and settings. Every
random stream is derived from the seed, so the same seed and version give a
bit-identical bag.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import xyzw_from_matrix
from geoloc_ros.io import topics
from geoloc_ros.io.bag import check_output
from geoloc_ros.sim.appearance import Appearance
from geoloc_ros.sim.camera import (
    CAR_CAMERA,
    CAR_MOUNT,
    DRONE_CAMERA,
    DRONE_NADIR_MOUNT,
    DRONE_OBLIQUE_MOUNT,
    R_FLU_RDF,
    CameraMount,
    PinholeCamera,
    check_drone_altitude,
)
from geoloc_ros.sim.world import GENERATOR_VERSION, World

log = logging.getLogger(__name__)

T0_S = 1_700_000_000.0  # bag start (fixed, so bags are reproducible)
PLATFORMS = ("car", "drone")


@dataclass(frozen=True)
class DriveConfig:
    platform: str = "car"
    duration_s: float = 60.0
    seed: int = 0
    gnss_outages: tuple[tuple[float, float], ...] = ()  # (start_s from bag start, duration_s)
    camera_rate_hz: float = 10.0  # 0 = no camera (fusion-only drives, long benchmarks)
    ground_truth_rate_hz: float = 50.0
    drone_camera: str = "nadir"  # nadir | oblique
    drone_altitude_m: tuple[float, float] = (50.0, 120.0)  # above ground
    appearance: str = "random"  # random | map (the orthophoto's own look)

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ConfigError(f"unknown platform {self.platform!r}; one of {', '.join(PLATFORMS)}")
        if not (np.isfinite(self.duration_s) and 0.0 < self.duration_s <= 3600.0):
            raise ConfigError(f"duration must be in (0, 3600] s, got {self.duration_s}")
        if self.seed < 0:
            raise ConfigError(f"seed must be non-negative, got {self.seed}")
        if not (self.camera_rate_hz == 0.0 or 10.0 <= self.camera_rate_hz <= 20.0):
            raise ConfigError(f"camera rate must be 0 or 10-20 Hz, got {self.camera_rate_hz}")
        check_drone_altitude(self.drone_altitude_m)
        if self.drone_camera not in ("nadir", "oblique"):
            raise ConfigError(f"drone camera must be nadir or oblique, got {self.drone_camera!r}")
        if self.appearance not in ("random", "map"):
            raise ConfigError(f"appearance must be random or map, got {self.appearance!r}")
        for start, dur in self.gnss_outages:
            if not (0.0 <= start < self.duration_s and dur > 0.0):
                raise ConfigError(
                    f"GNSS outage {start}:{dur} must start inside the {self.duration_s} s drive "
                    "and last > 0 s"
                )

    @property
    def camera(self) -> PinholeCamera:
        return CAR_CAMERA if self.platform == "car" else DRONE_CAMERA

    @property
    def mount(self) -> CameraMount:
        if self.platform == "car":
            return CAR_MOUNT
        return DRONE_NADIR_MOUNT if self.drone_camera == "nadir" else DRONE_OBLIQUE_MOUNT


def parse_outage(text: str) -> tuple[float, float]:
    """'START:DURATION' in seconds -> (start, duration)."""
    try:
        start, dur = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--gnss-outage wants START:DURATION in seconds, got {text!r}") from None
    return start, dur


def make_trajectory(world: World, cfg: DriveConfig, rng: np.random.Generator):
    """The platform's ground-truth trajectory, starting at T0_S and long enough."""
    from geoloc_ros.sim.trajectory import CarTrajectory, DroneTrajectory  # noqa: PLC0415

    if cfg.platform == "car":
        from geoloc_ros.sim.route import plan_route  # noqa: PLC0415

        want = 10.0 * cfg.duration_s + 300.0
        for _ in range(6):
            route = plan_route(world.layout, rng, want)
            traj = CarTrajectory.from_route(
                route.xy_m, world.terrain, stops_s_m=route.stops_s_m, t0_s=T0_S
            )
            if traj.duration_s >= cfg.duration_s:
                return traj
            want *= 1.6
        raise ConfigError(f"could not plan a {cfg.duration_s} s drive in this world")
    half = world.half_m
    lo, hi = cfg.drone_altitude_m
    for spacing in (60.0, 40.0, 25.0, 15.0):
        size = float(np.clip(np.sqrt(8.0 * cfg.duration_s * spacing), 80.0, 2 * half - 120.0))
        c = rng.uniform(-half + 60 + size / 2, half - 60 - size / 2, 2)
        start = rng.uniform(-half + 30, half - 30, 2)
        traj = DroneTrajectory.survey(
            c,
            size,
            (lo + hi) / 2,
            spacing,
            world.terrain,
            transit_from_xy_m=start,
            altitude_range_m=(lo, hi),
            t0_s=T0_S,
        )
        if traj.duration_s >= cfg.duration_s:
            return traj
    raise ConfigError(f"could not plan a {cfg.duration_s} s flight in this world")


@dataclass(frozen=True)
class DriveSummary:
    bag: Path
    platform: str
    duration_s: float
    frames: int
    imu: int
    fixes: int
    fixes_in_burst: int
    fixes_in_outage: int
    bytes: int


def simulate_drive(world: World, cfg: DriveConfig, out: str | Path, progress: bool = True):
    """Write the bag; returns a DriveSummary. Deterministic in (world, cfg)."""
    from tqdm import tqdm  # noqa: PLC0415

    from geoloc_ros.io.bag import BagWriter  # noqa: PLC0415
    from geoloc_ros.io.msgtypes import RosbagsTypes, default_typestore  # noqa: PLC0415
    from geoloc_ros.sim import sensors  # noqa: PLC0415

    out = Path(out)
    check_output(out)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(7)]
    rng_traj, rng_imu, rng_gnss, rng_wheel, rng_look, rng_noise, _ = streams
    traj = make_trajectory(world, cfg, rng_traj)
    t_end = T0_S + cfg.duration_s
    g = float(sensors.normal_gravity_mps2(world.cfg.datum[0], world.cfg.datum[2]))
    imu_cfg = sensors.ImuConfig.car() if cfg.platform == "car" else sensors.ImuConfig.drone()
    imu = sensors.simulate_imu(traj, traj.times(imu_cfg.rate_hz, T0_S, t_end), imu_cfg, rng_imu, g)
    # town driving: a multipath burst every ~25 s next to tall buildings (exposure 1)
    gnss_cfg = sensors.GnssConfig(
        rate_hz=5.0 if cfg.platform == "car" else 10.0, burst_rate_hz=1.0 / 25.0
    )
    gnss = sensors.simulate_gnss(
        traj,
        gnss_cfg,
        world.ltp,
        rng_gnss,
        world.multipath_exposure,
        T0_S,
        t_end,
        outages=cfg.gnss_outages,
    )
    wheel = None
    if cfg.platform == "car":
        wheel = sensors.simulate_wheel_speed(
            traj, sensors.WheelSpeedConfig(), rng_wheel, T0_S, t_end
        )
    look = Appearance.random(rng_look) if cfg.appearance == "random" else Appearance.orthophoto()
    types = RosbagsTypes(default_typestore())
    info = _sim_info(world, cfg, look, imu_cfg, gnss_cfg, g)
    t_cam = traj.times(cfg.camera_rate_hz, T0_S, t_end) if cfg.camera_rate_hz else np.zeros(0)
    with BagWriter(out) as bag:
        for topic, msgtype in topics.TYPES.items():
            if topic == topics.WHEEL_ODOM and wheel is None:
                continue
            if topic in (topics.IMAGE, topics.CAMERA_INFO) and not len(t_cam):
                continue
            bag.add_topic(topic, msgtype, latched=topic in (topics.TF_STATIC, topics.SIM_INFO))
        bag.write(topics.SIM_INFO, T0_S, types.get("std_msgs/msg/String")(data=info))
        bag.write(topics.TF_STATIC, T0_S, _tf_static(cfg, imu_cfg, gnss_cfg, types))
        streams_ = [
            _imu_msgs(imu, types),
            _gnss_msgs(gnss, types),
            _truth_msgs(world, traj, cfg, types),
            _camera_msgs(world, traj, cfg, look, t_cam, rng_noise, types),
        ]
        if wheel is not None:
            streams_.append(_wheel_msgs(wheel, types))
        bar = tqdm(
            total=len(t_cam), desc=f"{cfg.platform} frames", unit="frame", disable=not progress
        )
        for t, _order, topic, msg in heapq.merge(*streams_, key=lambda e: (e[0], e[1])):
            bag.write(topic, t, msg)
            if topic == topics.IMAGE:
                bar.update(1)
        bar.close()
    return DriveSummary(
        out,
        cfg.platform,
        cfg.duration_s,
        len(t_cam),
        len(imu.t_s),
        int((~gnss.in_outage).sum()),
        int(gnss.in_burst.sum()),
        int(gnss.in_outage.sum()),
        out.stat().st_size,
    )


def _sim_info(world: World, cfg: DriveConfig, look, imu_cfg, gnss_cfg, g: float) -> str:
    cam = cfg.camera
    return json.dumps(
        {
            "generator": GENERATOR_VERSION,
            "world": world.identity(),
            "drive": {**asdict(cfg), "t0_s": T0_S},
            "appearance": asdict(look),
            "camera": asdict(cam),
            "imu": asdict(imu_cfg),
            "gnss": asdict(gnss_cfg),
            "gravity_mps2": g,
            "ground_truth": "nav_msgs/Odometry in frame earth (ECEF); twist in base_link",
        },
        sort_keys=True,
    )


def _tf_static(cfg: DriveConfig, imu_cfg, gnss_cfg, types) -> Any:
    from geoloc_ros.io.convert import transform_msg  # noqa: PLC0415

    mount = cfg.mount
    T_base_cam = mount.T_base_cam
    R_tilt = T_base_cam[:3, :3] @ R_FLU_RDF.T
    tfs = [
        transform_msg(
            T0_S, "base_link", "imu_link", np.zeros(3), xyzw_from_matrix(imu_cfg.R_base_imu), types
        ),
        transform_msg(
            T0_S, "base_link", "gnss_link", gnss_cfg.lever_arm_base_m, [0, 0, 0, 1.0], types
        ),
        transform_msg(
            T0_S, "base_link", "camera_link", mount.xyz_m, xyzw_from_matrix(R_tilt), types
        ),
        transform_msg(
            T0_S,
            "camera_link",
            "camera_optical_frame",
            np.zeros(3),
            xyzw_from_matrix(R_FLU_RDF),
            types,
        ),
    ]
    return types.get("tf2_msgs/msg/TFMessage")(transforms=tfs)


Event = tuple[float, int, str, Any]


def _imu_msgs(imu, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import msg_from_imu  # noqa: PLC0415

    for s in imu.to_samples():
        yield s.t_s, 0, topics.IMU, msg_from_imu(s, types)


def _gnss_msgs(gnss, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import msg_from_gnss  # noqa: PLC0415

    for f in gnss.to_fixes():
        yield f.t_s, 1, topics.FIX, msg_from_gnss(f, types)


def _wheel_msgs(wheel, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import odometry_from_navstate  # noqa: PLC0415
    from geoloc_ros.types import NavState  # noqa: PLC0415

    cov_pose = np.diag([1e6] * 6)
    cov_twist = np.diag([wheel.variance_m2ps2, 1e-2, 1e-2, 1e6, 1e6, 1e6])
    for t, v in zip(wheel.t_s, wheel.speed_mps, strict=True):
        s = NavState(
            float(t),
            np.zeros(3),
            np.array([0, 0, 0, 1.0]),
            np.array([v, 0.0, 0.0]),
            cov_pose_6x6=cov_pose,
            cov_twist_6x6=cov_twist,
            frame_id="odom",
        )
        yield float(t), 2, topics.WHEEL_ODOM, odometry_from_navstate(s, types)


def _truth_msgs(world: World, traj, cfg: DriveConfig, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import odometry_from_navstate  # noqa: PLC0415
    from geoloc_ros.types import NavState  # noqa: PLC0415

    t = traj.times(cfg.ground_truth_rate_hz, T0_S, T0_S + cfg.duration_s)
    st = traj.state(t)
    R_ecef_enu = world.ltp.R_enu_ecef.T
    p_ecef = world.ltp.ecef_from_enu(st.p_m)
    for i, ti in enumerate(t):
        R = R_ecef_enu @ st.R_world_base[i]
        s = NavState(
            float(ti),
            p_ecef[i],
            xyzw_from_matrix(R),
            R_ecef_enu @ st.v_mps[i],
            st.w_base_radps[i],
            frame_id="earth",
            child_frame_id="base_link",
        )
        yield float(ti), 3, topics.GROUND_TRUTH, odometry_from_navstate(s, types)


def camera_pose(traj, mount: CameraMount, t_s: Sequence[float]) -> np.ndarray:
    """T_world_cam (N, 4, 4) of the optical frame at times t_s."""
    st = traj.state(np.asarray(t_s, dtype=np.float64))
    T = np.tile(np.eye(4), (len(st.p_m), 1, 1))
    T[:, :3, :3] = st.R_world_base
    T[:, :3, 3] = st.p_m
    return T @ mount.T_base_cam


def _camera_msgs(world, traj, cfg: DriveConfig, look, t_cam, rng, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import msg_from_camera_info  # noqa: PLC0415
    from geoloc_ros.io.image import msg_from_image  # noqa: PLC0415
    from geoloc_ros.types import CameraFrame  # noqa: PLC0415

    cam = cfg.camera
    poses = camera_pose(traj, cfg.mount, t_cam)
    for t, T in zip(t_cam, poses, strict=True):
        img = world.renderer.render(cam, T, look, rng).rgb
        frame = CameraFrame(float(t), img, cam.K, frame_id="camera_optical_frame")
        yield float(t), 4, topics.CAMERA_INFO, msg_from_camera_info(frame, types)
        yield float(t), 5, topics.IMAGE, msg_from_image(img, float(t), frame.frame_id, types)
