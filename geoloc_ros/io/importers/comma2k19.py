"""comma2k19 segment -> DESIGN bag: phone IMU, u-blox fixes, CAN speed, ground-truth poses.

Conventions (also recorded on /geoloc/source_info):
- Time: the logs count seconds since device boot. All stamps become UTC epoch seconds
  with one offset, median(utc_ms / 1000 - t_boot) over the u-blox fixes. The receiver's
  ~100 ms latency stays in the data (fixes are stamped when they were logged, like every
  other stream); compensating it is the fusion's job.
- IMU: comma's axes are forward-right-down; ROS base axes are forward-left-up, so
  (x, y, z) = (f, -r, -d). The accelerometer times drive the stream; gyro is linearly
  interpolated there, samples outside the gyro's span are dropped. No orientation.
  Covariances (per sample, isotropic): accel (0.5 m/s^2)^2, gyro (0.02 rad/s)^2: the
  high-frequency scatter measured in this car at highway speed (vibration dominates the
  phone's own ~0.02 m/s^2 and ~0.001 rad/s white noise).
- GNSS: NavSatFix in `gnss_link`, status FIX, covariance APPROXIMATED, sigma 1.5 m
  horizontal and 3 m vertical (the logs carry none; the fusion config may override).
- CAN speed: nav_msgs/Odometry odom->base_link, twist.linear.x = speed,
  variance (0.1 m/s)^2, lateral/vertical (0.1 m/s)^2, pose and rates unknown (1e6).
- Ground truth: base_link sits at the camera with FLU axes, R_ecef_base =
  R_ecef_camFRD @ diag(1, -1, -1); Odometry earth->base_link, ECEF position, twist in
  base_link: linear = R^T v_ecef, angular = central differences of the orientations
  (rate relative to ECEF, i.e. without the Earth's 7.3e-5 rad/s).
- /tf_static: base_link->imu_link identity (the converted IMU axes are taken as the base
  axes), base_link->gnss_link zero (lever arm unknown). The one still frame is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from geoloc_ros.io import topics
from geoloc_ros.io.bag import check_output
from geoloc_ros.io.importers.base import (
    SOURCE_INFO_TYPE,
    Event,
    Importer,
    ImportSummary,
    SourceError,
    require_dir,
    require_file,
    string_msg,
    summary,
    write_bag,
)

FLU_FROM_FRD = np.diag([1.0, -1.0, -1.0])
ACCEL_VAR = 0.5**2  # (m/s^2)^2
GYRO_VAR = 0.02**2  # (rad/s)^2
GNSS_SIGMA_H_M, GNSS_SIGMA_V_M = 1.5, 3.0
SPEED_VAR = 0.1**2  # (m/s)^2
GPS_UNIX_EPOCH_S, GPS_UTC_LEAP_S = 315_964_800.0, 18.0  # leap seconds valid 2017-2025

FILES = {
    "accel": "processed_log/IMU/accelerometer",
    "gyro": "processed_log/IMU/gyro",
    "gnss": "processed_log/GNSS/live_gnss_ublox",
    "speed": "processed_log/CAN/speed",
}
POSE = (("frame_positions", 3), ("frame_velocities", 3), ("frame_orientations", 4))


def _load(path: Path, cols: int | None = None) -> np.ndarray:
    """A float64 array: (N,) when `cols` is None, else (N, cols)."""
    require_file(path, "comma2k19 array")
    try:
        arr = np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    n = len(arr) if arr.ndim else 0
    want = (n,) if cols is None else (n, cols)
    if n < 2 or arr.size != int(np.prod(want)):
        shape = "N" if cols is None else f"N, {cols}"
        raise SourceError(f"{path} has shape {arr.shape}, expected ({shape}) with N >= 2")
    return arr.reshape(want)


def _stream(src: Path, key: str, cols: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(t, value, rows dropped) of one processed_log stream; rows with NaN or inf drop."""
    base = src / FILES[key]
    t, v = _load(base / "t"), _load(base / "value", cols)
    if len(t) != len(v) or not np.all(np.diff(t) >= 0):
        raise SourceError(f"{base}: t and value must be equally long and t sorted")
    ok = np.isfinite(t) & np.isfinite(v).all(axis=1)
    return t[ok], v[ok], int((~ok).sum())


def time_offset_s(t_boot: np.ndarray, utc_ms: np.ndarray) -> tuple[float, float]:
    """UTC epoch minus boot time (median over the fixes) and its spread (max - min)."""
    d = utc_ms / 1000.0 - t_boot
    offset = float(np.median(d))
    if not 946_684_800.0 < offset < 4_102_444_800.0:  # 2000..2100: else no valid UTC column
        raise SourceError(f"live_gnss_ublox utc ms gives an implausible UTC offset {offset:.0f} s")
    return offset, float(d.max() - d.min())


def _route_segment(src: Path) -> tuple[str | None, str | None]:
    """comma2k19 layout Chunk_N/<route>|<date>/<segment>/: route and segment, if present."""
    m = re.match(r"^([0-9a-f]{16})\|", src.resolve().parent.name)
    return (m.group(1), src.name) if m and src.name.isdigit() else (None, None)


class Comma2k19Importer(Importer):
    name = "comma2k19"
    describe = "comma2k19 segment folder (processed_log/ + global_pose/) -> DESIGN bag"
    source_help = "segment folder, e.g. Chunk_1/<route>|<date>/<segment>"

    def run(self, src: str | Path, out: str | Path, progress: bool = True) -> ImportSummary:
        from geoloc_ros.io.msgtypes import RosbagsTypes  # noqa: PLC0415

        src, out = Path(src), Path(out)
        check_output(out)
        require_dir(src, "comma2k19 segment folder")
        ta, accel, bad_a = _stream(src, "accel", 3)
        tg, gyro, bad_g = _stream(src, "gyro", 3)
        tf, fix, bad_f = _stream(src, "gnss", 6)
        tc, speed, bad_c = _stream(src, "speed", 1)
        gt = _ground_truth(src / "global_pose")
        offset, spread = time_offset_s(tf, fix[:, 3])
        keep = (ta >= tg[0]) & (ta <= tg[-1])
        if not keep.any():
            raise SourceError(f"{src}: accelerometer and gyro times do not overlap")
        gyro_at = np.stack([np.interp(ta[keep], tg, gyro[:, k]) for k in range(3)], axis=1)
        t_imu = ta[keep] + offset
        types = RosbagsTypes()
        streams = [
            _imu_events(t_imu, accel[keep] @ FLU_FROM_FRD, gyro_at @ FLU_FROM_FRD, types),
            _gnss_events(tf + offset, fix, types),
            _speed_events(tc + offset, speed[:, 0], types),
            _truth_events(gt.t + offset, gt.p_ecef, gt.v_ecef, gt.q_wxyz, types),
        ]
        t0 = float(min(ta[keep][0], tf[0], tc[0], gt.t[0]) + offset)
        info = self._info(src, offset, spread, gt)
        first = [
            (t0, -2, topics.SOURCE_INFO, string_msg(types, info)),
            (t0, -1, topics.TF_STATIC, _tf_static(t0, types)),
        ]
        names = (topics.IMU, topics.FIX, topics.WHEEL_ODOM, topics.GROUND_TRUTH)
        topic_types = {t: topics.TYPES[t] for t in (*names, topics.TF_STATIC)}
        topic_types[topics.SOURCE_INFO] = SOURCE_INFO_TYPE
        total = 2 + len(t_imu) + len(tf) + len(tc) + len(gt.t)
        latched = (topics.TF_STATIC, topics.SOURCE_INFO)
        counts, t_first, t_last = write_bag(
            out, topic_types, latched, first, streams, progress, total, self.name
        )
        skipped = {
            f"{topics.IMU}: outside the gyro's time span": int((~keep).sum()),
            f"{topics.IMU}: NaN or inf": bad_a + bad_g,
            f"{topics.FIX}: NaN or inf": bad_f,
            f"{topics.WHEEL_ODOM}: NaN or inf": bad_c,
            f"{topics.GROUND_TRUTH}: NaN or inf": gt.dropped,
        }
        return summary(self.name, src, out, counts, t_first, t_last, skipped)

    def _info(self, src: Path, offset: float, spread: float, gt: _Poses) -> dict:
        route, segment = _route_segment(src)
        info = {
            "dataset": self.name,
            "source": str(src.resolve()),
            "route": route,
            "segment": segment,
            "time_offset_s": offset,
            "time_offset_spread_s": spread,
            "time_base": "UTC epoch s = boot s + time_offset_s (median over u-blox utc_ms)",
            "imu": f"FRD->FLU (x=f, y=-r, z=-d) at accelerometer times; var accel {ACCEL_VAR:g} "
            f"gyro {GYRO_VAR:g}; no orientation",
            "gnss": f"live_gnss_ublox, APPROXIMATED sigma_h {GNSS_SIGMA_H_M} m sigma_v "
            f"{GNSS_SIGMA_V_M} m; stamped at log time (receiver latency ~0.1 s not removed)",
            "wheel_odom": f"CAN speed as twist.linear.x, variance {SPEED_VAR:g}",
            "ground_truth": "global_pose camera poses; base_link at the camera, FLU axes "
            "(R_ecef_base = R_ecef_camFRD diag(1,-1,-1)); frame earth (ECEF); twist in "
            "base_link, angular from central differences (relative to ECEF)",
            "tf_static": "base_link->imu_link identity, base_link->gnss_link zero (unknown)",
        }
        if gt.gps_week_tow is not None:  # the pose optimiser's own GPS time, for reference
            g = gt.gps_week_tow
            utc = GPS_UNIX_EPOCH_S + g[:, 0] * 604800.0 + g[:, 1] - GPS_UTC_LEAP_S
            info["time_offset_from_frame_gps_times_s"] = float(np.median(utc - gt.t))
        return info


class _Poses(NamedTuple):
    t: np.ndarray  # boot s
    p_ecef: np.ndarray
    v_ecef: np.ndarray
    q_wxyz: np.ndarray  # R maps camera [forward, right, down] into ECEF
    dropped: int  # rows with NaN or inf
    gps_week_tow: np.ndarray | None


def _ground_truth(gp: Path) -> _Poses:
    """The camera poses of global_pose/, rows with NaN or inf dropped."""
    t = _load(gp / "frame_times")
    p, v, q = (_load(gp / f, n) for f, n in POSE)
    g = _load(gp / "frame_gps_times", 2) if (gp / "frame_gps_times").is_file() else None
    if not len(t) == len(p) == len(v) == len(q) or (g is not None and len(g) != len(t)):
        raise SourceError(f"{gp}: the frame_* arrays differ in length")
    ok = np.isfinite(t) & np.isfinite(np.hstack([p, v, q])).all(axis=1)
    g = g[ok] if g is not None else None
    return _Poses(t[ok], p[ok], v[ok], q[ok], int((~ok).sum()), g)


def _tf_static(t0: float, types) -> object:
    from geoloc_ros.io.convert import transform_msg  # noqa: PLC0415

    ident = [0.0, 0.0, 0.0, 1.0]
    return types.get("tf2_msgs/msg/TFMessage")(
        transforms=[
            transform_msg(t0, "base_link", "imu_link", np.zeros(3), ident, types),
            transform_msg(t0, "base_link", "gnss_link", np.zeros(3), ident, types),
        ]
    )


def _imu_events(t_s, accel_flu, gyro_flu, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import msg_from_imu  # noqa: PLC0415
    from geoloc_ros.types import ImuSample  # noqa: PLC0415

    cov_a, cov_g = np.eye(3) * ACCEL_VAR, np.eye(3) * GYRO_VAR
    for i, t in enumerate(t_s):
        s = ImuSample(float(t), gyro_flu[i], accel_flu[i], "imu_link", None, cov_g, cov_a)
        yield float(t), 0, topics.IMU, msg_from_imu(s, types)


def _gnss_events(t_s, fix, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import msg_from_gnss  # noqa: PLC0415
    from geoloc_ros.types import CovarianceType, GnssFix, GnssStatus  # noqa: PLC0415

    cov = np.diag([GNSS_SIGMA_H_M**2, GNSS_SIGMA_H_M**2, GNSS_SIGMA_V_M**2])
    for t, row in zip(t_s, fix, strict=True):
        lat, lon, alt = float(row[0]), float(row[1]), float(row[4])
        f = GnssFix(
            float(t), lat, lon, alt, GnssStatus.FIX, cov, CovarianceType.APPROXIMATED, "gnss_link"
        )
        yield float(t), 1, topics.FIX, msg_from_gnss(f, types)


def _speed_events(t_s, speed, types) -> Iterator[Event]:
    from geoloc_ros.io.convert import odometry_from_navstate  # noqa: PLC0415
    from geoloc_ros.types import NavState  # noqa: PLC0415

    cov_pose = np.diag([1e6] * 6)
    cov_twist = np.diag([SPEED_VAR, 1e-2, 1e-2, 1e6, 1e6, 1e6])
    q = np.array([0.0, 0.0, 0.0, 1.0])
    for t, v in zip(t_s, speed, strict=True):
        s = NavState(
            float(t),
            np.zeros(3),
            q,
            v_mps=np.array([v, 0.0, 0.0]),
            cov_pose_6x6=cov_pose,
            cov_twist_6x6=cov_twist,
            frame_id="odom",
            child_frame_id="base_link",
        )
        yield float(t), 2, topics.WHEEL_ODOM, odometry_from_navstate(s, types)


def ground_truth_states(t_s: np.ndarray, q_wxyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R_ecef_base (N,3,3), w_base (N,3)) of comma's camera poses, base_link FLU."""
    from scipy.spatial.transform import Rotation  # noqa: PLC0415

    from geoloc_ros.io.importers.kinematics import body_rates  # noqa: PLC0415

    q = np.asarray(q_wxyz, dtype=np.float64)
    n = np.linalg.norm(q, axis=1)
    if not np.all(np.abs(n - 1.0) < 1e-3):
        raise SourceError("global_pose/frame_orientations holds non-unit quaternions")
    R = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix() @ FLU_FROM_FRD
    return R, body_rates(t_s, R)


def _truth_events(t_s, p_ecef, v_ecef, q_wxyz, types) -> Iterator[Event]:
    from geoloc_ros.geo.quaternion import xyzw_from_matrix  # noqa: PLC0415
    from geoloc_ros.io.convert import odometry_from_navstate  # noqa: PLC0415
    from geoloc_ros.types import NavState  # noqa: PLC0415

    R, w = ground_truth_states(t_s, q_wxyz)
    q_xyzw = xyzw_from_matrix(R)
    for i, t in enumerate(t_s):
        s = NavState(float(t), p_ecef[i], q_xyzw[i], v_ecef[i], w[i], None, None, "earth")
        yield float(t), 3, topics.GROUND_TRUTH, odometry_from_navstate(s, types)
