"""map_localizer_node: camera image + prior + gravity -> planar fix from the neural map.

In:  `image`, `camera_info` (required: an uncalibrated camera gives no fix),
     `odometry/global` (prior; preferred), `fix` (NavSatFix prior when no odometry),
     `imu` (gravity, for roll and pitch). Sensor-data QoS for sensors.
Out: `map_localizer/fix` (PoseWithCovarianceStamped, base_link in `map`: x, y, yaw with
     their covariance; roll, pitch carry 1e6 variances and must be left free, and so
     does z unless a drone's height search measured it: then z has its own variance),
     /diagnostics (inputs, fixes, multi-modal fixes withheld, frames dropped, latency).

A worker thread takes the newest frame; older ones are dropped (and counted).
"""

from __future__ import annotations

import sys
import time

from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, Imu, NavSatFix

from geoloc_ros.errors import GeolocError, InputRejected
from geoloc_ros.health import InputStatus, Level
from geoloc_ros.io.convert import (
    camera_frame_from_msgs,
    gnss_from_msg,
    imu_from_msg,
    msg_from_posefix,
    navstate_from_odometry,
)
from geoloc_ros.neuralmap.geometry import roll_pitch_from_gravity
from geoloc_ros.neuralmap.inputs import (
    MapLocalizerConfig,
    Priors,
    fix_to_publish,
    posefix_of,
)
from geoloc_ros.neuralmap.localizer import MapLocalizer
from geoloc_ros.nodes.base import (
    MSG_TYPES,
    RELIABLE_QOS,
    SENSOR_QOS,
    TF_STATIC_QOS,
    Diagnostics,
    LatestFrameWorker,
    admit_frame,
    declare_config,
    run,
)
from geoloc_ros.timeutil import FrameRate

NODE_NAME = "map_localizer_node"


class MapLocalizerNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        argv = [*sys.argv, *(node_kwargs.get("cli_args") or [])]
        self.config = declare_config(self, MapLocalizerConfig, argv)
        from geoloc_ros.geo.wgs84 import LocalTangentPlane  # noqa: PLC0415

        self.T_base_cam = self.config.T_base_cam()
        self.localizer = MapLocalizer(self.config.params())
        self.ltp = LocalTangentPlane(*self.localizer.store.datum)
        self.counts = {"published": 0, "multimodal": 0, "prior_dominated": 0, "dropped": 0,
                       "failed": 0}  # fmt: skip
        self.last_latency_ms = float("nan")
        self._gravity = self.config.gravity_filter()
        self._rate = FrameRate(self.config.max_rate_hz)
        self._priors = Priors()  # the latest odometry/global and fix; replaced, not mutated
        inputs = ["image", "camera_info", "odometry/global", "fix", "imu"]
        self.diag = Diagnostics(self, inputs, extra=self._status)
        self._pub = self.create_publisher(PoseWithCovarianceStamped, "map_localizer/fix",
                                          RELIABLE_QOS)  # fmt: skip
        self._info = None
        if self.config.ortho_max_cells > 0:
            self._ortho_pub = self.create_publisher(OccupancyGrid, "map_localizer/ortho",
                                                    TF_STATIC_QOS)  # fmt: skip
            self._publish_ortho()
        try:  # before subscribing: the first frames would otherwise pay for it
            warm_ms = self.localizer.warm_up(self.T_base_cam)
            self.get_logger().info(f"localizer warmed up in {warm_ms:.0f} ms")
        except (GeolocError, ValueError, RuntimeError) as exc:
            self.get_logger().warning(f"warm-up failed (frames will report why): {exc}")
        self._worker = LatestFrameWorker(self.process, "map_localizer")
        self.create_subscription(CameraInfo, "camera_info", self._on_info, SENSOR_QOS)
        self.create_subscription(Image, "image", self._on_image, SENSOR_QOS)
        self.create_subscription(Imu, "imu", self._on_imu, SENSOR_QOS)
        self.create_subscription(Odometry, "odometry/global", self._on_odom, RELIABLE_QOS)
        self.create_subscription(NavSatFix, "fix", self._on_fix, SENSOR_QOS)
        self.get_logger().info(
            f"map localizer ({self.localizer.cfg.platform}) on map {self.config.map}, "
            f"{self.config.yaw_bins} yaw bins, {self.config.window_m:g} m window"
        )

    def _publish_ortho(self) -> None:
        """The map's orthophoto once, latched: RViz's Map display (colour scheme raw)."""
        from geoloc_ros.io.convert import occupancy_grid_from_grey  # noqa: PLC0415

        try:
            grey, res, x_west, y_south = self.localizer.store.ortho_gray(
                self.config.ortho_max_cells
            )
        except GeolocError as exc:
            self.get_logger().warning(f"no orthophoto for RViz: {exc}")
            return
        t = self.get_clock().now().nanoseconds * 1e-9
        msg = occupancy_grid_from_grey(grey, res, x_west, y_south, self.config.map_frame, t,
                                       MSG_TYPES)  # fmt: skip
        self._ortho_pub.publish(msg)

    # --- inputs -------------------------------------------------------------------------
    def _on_info(self, msg: CameraInfo) -> None:
        self._info = msg
        self.diag.accept("camera_info")

    def _on_imu(self, msg: Imu) -> None:
        try:
            s = imu_from_msg(msg)
            self._gravity.update(s.t_s, s.accel_mps2, s.q_xyzw, s.cov_orientation_3x3)
        except InputRejected as exc:
            self.diag.reject("imu", exc.reason, str(exc))
            return
        self.diag.accept("imu")

    def _on_odom(self, msg: Odometry) -> None:
        try:
            self._priors = self._priors.with_state(navstate_from_odometry(msg), self.config)
        except InputRejected as exc:
            self.diag.reject("odometry/global", exc.reason, str(exc))
            return
        self.diag.accept("odometry/global")

    def _on_fix(self, msg: NavSatFix) -> None:
        try:
            f = gnss_from_msg(msg)
        except InputRejected as exc:
            self.diag.reject("fix", exc.reason, str(exc))
            return
        self.diag.accept("fix")
        self._priors = self._priors.with_gnss(f, self.ltp)

    def _on_image(self, msg: Image) -> None:
        if not admit_frame(self._rate, msg, self.diag):
            return
        if self._worker.offer(
            msg, self._info, self._gravity.g_base, self._gravity.tilt_sigma_rad, self._priors
        ):
            self.counts["dropped"] += 1

    # --- one frame ----------------------------------------------------------------------
    def process(self, msg: Image, info, g_base, tilt_sigma_rad: float, priors: Priors) -> None:
        """Localize one frame and publish; every problem is a counted reason, never a crash."""
        cfg = self.config
        try:
            if info is None:
                raise InputRejected("no camera_info yet: the camera is uncalibrated", "camera_info")
            if g_base is None:
                raise InputRejected("no IMU yet: gravity (roll, pitch) unavailable", "gravity")
            frame = camera_frame_from_msgs(msg, info, want="rgb8")
            pr = priors.for_image(frame.t_s, cfg)
            height = pr.z_m + self.T_base_cam[2, 3] - cfg.ground_z_m
            t0 = time.perf_counter()
            fix = self.localizer.localize(frame.image, frame.K_3x3, roll_pitch_from_gravity(g_base),
                                          self.T_base_cam, pr.xy_m, pr.sigma_m, pr.yaw_rad, height,
                                          tilt_sigma_rad, pr.sigma_z_m)  # fmt: skip
            self.last_latency_ms = (time.perf_counter() - t0) * 1e3
        except InputRejected as exc:
            self.diag.reject("image", exc.reason, str(exc))
            return
        except (GeolocError, ValueError, RuntimeError) as exc:
            self.counts["failed"] += 1
            self.diag.reject("image", "inference", str(exc))
            return
        self.diag.accept("image")
        fix, withheld = fix_to_publish(self.localizer, fix, pr.xy_m, pr.sigma_m, cfg)
        if fix is None:
            self.counts[withheld] += 1
            return
        out = posefix_of(frame.t_s, fix, pr.z_m, cfg.map_frame)
        self._pub.publish(msg_from_posefix(out, MSG_TYPES))
        self.counts["published"] += 1

    def _status(self, now_s: float) -> list[InputStatus]:
        c = self.counts
        level = Level.OK if c["published"] else Level.WARN
        values = {k: str(v) for k, v in c.items()}
        values["last_latency_ms"] = f"{self.last_latency_ms:.1f}"
        msg = "localizing" if c["published"] else "no fix yet"
        return [InputStatus("map_localizer", level, msg, values)]

    def destroy_node(self) -> None:
        self._worker.stop()
        self.localizer.store.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(MapLocalizerNode, args)


if __name__ == "__main__":
    sys.exit(main())
