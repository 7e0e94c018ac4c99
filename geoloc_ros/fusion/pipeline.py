"""Messages in, fused states out: the body of fusion_node, also what `geoloc eval` replays.

FusionPipeline converts each ROS message (rclpy or rosbags objects alike) to a core
type, checks its stamp against its stream, and hands it to one FusionEstimator. It
also keeps the continuous `odom` frame (REP-105): odom -> base_link integrates the
fused body velocity and gyro, so it never jumps; map -> odom absorbs the corrections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gtsam
import numpy as np

from geoloc_ros.errors import InputRejected, TimeJump
from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.fusion.estimator import FusionEstimator
from geoloc_ros.geo.quaternion import rot3_from_xyzw, xyzw_from_rot3
from geoloc_ros.io.convert import (
    gnss_from_msg,
    imu_from_msg,
    posefix_from_msg,
    stamp_of,
)
from geoloc_ros.timeutil import Decimator, GapMeter, TimeGuard
from geoloc_ros.types import (
    CovarianceType,
    Decision,
    GnssFix,
    GnssStatus,
    ImuSample,
    NavState,
    PoseFix,
)

INPUTS = ("imu", "fix", "wheel_odom", "map_localizer/fix", "posenet/fix")
"""The fusion's inputs, named as the node's (relative, remappable) topics."""

DEFAULT_WHEEL_VARIANCE_M2PS2 = 0.01  # odometry without a twist covariance


@dataclass(frozen=True)
class WheelSpeed:
    """Forward speed of a wheel-odometry message (twist.linear.x, child frame) and its
    variance as reported (the pipeline replaces one that is not finite and positive)."""

    t_s: float
    speed_mps: float
    var_m2ps2: float


def convert_input(name: str, msg: Any) -> ImuSample | GnssFix | WheelSpeed | PoseFix:
    """The core type of one ROS message of fusion input `name`; InputRejected if bad.

    Pure (no pipeline state), so it can run where the messages are read: `geoloc eval`
    converts in its reader process while the fusion runs (eval.readahead)."""
    if name == "imu":
        return imu_from_msg(msg)
    if name == "fix":
        return gnss_from_msg(msg)
    if name == "wheel_odom":
        return WheelSpeed(
            stamp_of(msg), float(msg.twist.twist.linear.x), float(msg.twist.covariance[0])
        )
    if name == "map_localizer/fix":
        return posefix_from_msg(msg, 3, "map_localizer")
    if name == "posenet/fix":
        return posefix_from_msg(msg, 6, "posenet")
    raise KeyError(f"unknown fusion input {name!r}; known: {', '.join(INPUTS)}")


@dataclass(frozen=True)
class Rejection:
    """One message the pipeline refused, for diagnostics and the eval report."""

    t_s: float
    input: str
    reason: str
    message: str


class OdomFrame:
    """T_odom_base by dead reckoning on the fused velocity and rate: continuous by design.

    Rotations are gtsam.Rot3 (quaternion in and out without 3x3 round trips: this runs at
    the output rate, 50 Hz)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t_s: float | None = None
        self.R_odom_base = gtsam.Rot3()
        self.p_odom_base = np.zeros(3)
        self._R_map_odom = gtsam.Rot3()
        self._p_map_odom = np.zeros(3)

    def update(self, s: NavState) -> None:
        R_map_base = rot3_from_xyzw(s.q_xyzw)
        if self.t_s is None:  # odom starts where map is, so map -> odom starts at identity
            self.R_odom_base, self.p_odom_base = R_map_base, s.p_m.copy()
        else:
            dt = s.t_s - self.t_s
            v_base = R_map_base.unrotate(s.v_mps)
            self.p_odom_base = self.p_odom_base + self.R_odom_base.rotate(v_base) * dt
            self.R_odom_base = self.R_odom_base.compose(gtsam.Rot3.Expmap(s.w_radps * dt))
        self.t_s = s.t_s
        self._R_map_odom = R_map_base.compose(self.R_odom_base.inverse())
        self._p_map_odom = s.p_m - self._R_map_odom.rotate(self.p_odom_base)

    @property
    def T_map_odom(self) -> tuple[np.ndarray, np.ndarray]:
        """(p_m, q_xyzw) of odom in map."""
        return self._p_map_odom, xyzw_from_rot3(self._R_map_odom)

    @property
    def T_odom_base(self) -> tuple[np.ndarray, np.ndarray]:
        """(p_m, q_xyzw) of base_link in odom."""
        return self.p_odom_base, xyzw_from_rot3(self.R_odom_base)


class FusionPipeline:
    """Routes messages to one FusionEstimator; `handle` raises InputRejected for bad ones."""

    def __init__(self, cfg: FusionConfig) -> None:
        self.cfg = cfg
        self.estimator = FusionEstimator(cfg)
        self.odom = OdomFrame()
        self._guards = {name: TimeGuard() for name in INPUTS}
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.accepted: Counter[str] = Counter()
        self.resets = 0
        self.imu_gaps = GapMeter()  # dropped IMU samples (a loaded DDS link, a driver stall)
        self.heading_known = cfg.output_max_yaw_sigma_rad <= 0  # outputs start when True
        # IMU-rate states are built only at the output rate: at 100-400 Hz IMU most
        # samples are integrated and nothing more (the node and the eval publish these)
        self._output = Decimator(1.0 / cfg.output_rate_hz)
        self._handlers: dict[str, Callable[[Any], NavState | None]] = {
            "imu": self._imu,
            "fix": self._fix,
            "wheel_odom": self._wheel,
            "map_localizer/fix": lambda f: self._pose(f, "map_localizer"),
            "posenet/fix": lambda f: self._pose(f, "posenet"),
        }

    def reset(self) -> None:
        """Forget the state and the stream stamps (time jump, bag loop)."""
        self.estimator.reset()
        self.odom.reset()
        for guard in self._guards.values():
            guard.reset()
        self.imu_gaps.reset()
        self._output.reset()
        self.heading_known = self.cfg.output_max_yaw_sigma_rad <= 0
        self.resets += 1

    def handle(self, name: str, msg: Any) -> NavState | None:
        """Feed one message of input `name`; returns the IMU-rate state for the IMU
        messages on which an output is due (`output_rate_hz`), else None."""
        try:
            item = convert_input(name, msg)  # KeyError for an unknown input
        except InputRejected as exc:
            self.count_rejected(name, exc.reason)
            raise
        return self.feed(name, item)

    def feed(self, name: str, item: Any) -> NavState | None:
        """`handle` for an input already converted by `convert_input`."""
        handler = self._handlers.get(name)
        if handler is None:
            raise KeyError(f"unknown fusion input {name!r}; known: {', '.join(INPUTS)}")
        try:
            out = handler(item)
        except InputRejected as exc:
            self.count_rejected(name, exc.reason)
            raise
        self.accepted[name] += 1
        return out

    def count_rejected(self, name: str, reason: str) -> None:
        """Count a message of input `name` refused on the way in (also by a converter
        that ran elsewhere), as diagnostics report them."""
        self.rejected[(name, reason)] += 1

    def take_decisions(self) -> list[Decision]:
        """Gating decisions since the last call (the estimator keeps none afterwards)."""
        out = list(self.estimator.decisions)
        self.estimator.decisions.clear()
        return out

    def _stamp(self, name: str, t_s: float) -> None:
        try:
            self._guards[name].check(t_s)
        except TimeJump:
            self.reset()
            self._guards[name].check(t_s)

    def _imu(self, s: ImuSample) -> NavState | None:
        if np.abs(s.accel_mps2).max() >= self.cfg.imu_accel_limit_mps2:
            raise InputRejected("IMU acceleration at the sensor's range (saturated)", "saturated")
        if np.abs(s.gyro_radps).max() >= self.cfg.imu_gyro_limit_radps:
            raise InputRejected("IMU rate at the sensor's range (saturated)", "saturated")
        last = self._guards["imu"].last_t_s
        self._stamp("imu", s.t_s)
        self.imu_gaps.observe(s.t_s)
        if last is not None and s.t_s - last > self.cfg.lag_s:
            # an IMU gap longer than the smoother's window (or a glitched stamp) cannot be
            # bridged: integrating across it would add a keyframe every period, for hours
            self.reset()
            self._stamp("imu", s.t_s)
        est = self.estimator
        est.on_imu(s, propagate=False)
        if est.state is None or not self._heading_ready(est.state) or not self._output.due(s.t_s):
            return None
        state = est.propagated(s.t_s)
        if state is not None:
            self.odom.update(state)  # dead reckoning at the output rate: all TF consumes
        return state

    def _heading_ready(self, s: NavState) -> bool:
        """Latches once the fused yaw sigma reaches output_max_yaw_sigma_rad (until a reset)."""
        if not self.heading_known and s.cov_pose_6x6 is not None:
            var = float(s.cov_pose_6x6[5, 5])
            self.heading_known = bool(var <= self.cfg.output_max_yaw_sigma_rad**2)
        return self.heading_known

    @property
    def output_state(self) -> NavState | None:
        """The latest keyframe state if outputs have started: what the node publishes at
        keyframes, and what the localizers see as the fusion's prior."""
        return self.estimator.state if self.heading_known else None

    def _fix(self, fix: GnssFix) -> None:
        """NO_FIX is information, not bad input: the estimator counts it (gnss_no_fix)."""
        self._stamp("fix", fix.t_s)
        self.estimator.on_gnss(fix)
        return None

    def _wheel(self, w: WheelSpeed) -> None:
        """Only the forward speed and its variance are used."""
        var = w.var_m2ps2
        if not (np.isfinite(var) and var > 0):
            var = DEFAULT_WHEEL_VARIANCE_M2PS2
        self._stamp("wheel_odom", w.t_s)
        self.estimator.on_wheel_speed(w.t_s, w.speed_mps, var)
        return None

    def _pose(self, fix: PoseFix, source: str) -> None:
        if fix.frame_id and fix.frame_id != self.cfg.map_frame:
            raise InputRejected(
                f"{source} fix is in frame '{fix.frame_id}', expected '{self.cfg.map_frame}'",
                "frame",
            )
        self._stamp(f"{source}/fix", fix.t_s)
        self.estimator.on_pose_fix(fix)
        return None

    def fused_fix(self, s: NavState) -> GnssFix | None:
        """The fused base_link position as a WGS84 fix with its ENU covariance."""
        ltp = self.estimator.ltp
        if ltp is None:
            return None
        lat, lon, alt = ltp.geodetic_from_enu(s.p_m)
        cov = s.cov_pose_6x6[:3, :3] if s.cov_pose_6x6 is not None else None
        return GnssFix(
            s.t_s, float(lat), float(lon), float(alt), GnssStatus.FIX, cov,
            CovarianceType.KNOWN if cov is not None else CovarianceType.UNKNOWN,
            self.cfg.base_frame,
        )  # fmt: skip

    def health(self) -> dict[str, str]:
        """Key figures for /diagnostics: state, covariance health, decisions by kind."""
        est = self.estimator
        out = {"initialized": str(est.initialized), "resets": str(self.resets)}
        s = est.state
        if s is not None and s.cov_pose_6x6 is not None:
            cov = s.cov_pose_6x6
            ok = bool(np.isfinite(cov).all())
            ok = ok and float(np.linalg.eigvalsh(0.5 * (cov + cov.T)).min()) > 0
            out["covariance_ok"] = str(ok)
            if ok:
                out["sigma_h_m"] = f"{np.sqrt(cov[0, 0] + cov[1, 1]):.3f}"
                out["sigma_yaw_deg"] = f"{np.degrees(np.sqrt(cov[5, 5])):.2f}"
        gaps = self.imu_gaps
        out["imu_gaps"] = str(gaps.gaps)
        out["imu_missing_s"] = f"{gaps.missing_s:.3f}"
        out["imu_max_gap_s"] = f"{gaps.max_gap_s:.3f}"
        for key, n in sorted(est.counts.items()):
            out[f"count/{key}"] = str(n)
        for (name, reason), n in sorted(self.rejected.items()):
            out[f"rejected/{name}/{reason}"] = str(n)
        return out
