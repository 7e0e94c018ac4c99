"""posenet_node: camera image -> MC-dropout PoseNet fix with a calibrated covariance.

In:  `image` (sensor_msgs/Image or the raw topic of a camera), `camera_info` (optional;
     when present it must describe the image's size), sensor-data QoS.
Out: `posenet/fix` (geometry_msgs/PoseWithCovarianceStamped, base_link in `map`),
     /diagnostics (input rates and rejections; fixes published, withheld, frames dropped).

Inference runs on a worker thread that always takes the newest frame: when it is busy,
older frames are dropped (and counted) instead of queueing up latency.
"""

from __future__ import annotations

import sys
import time

from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from geoloc_ros.errors import ConfigError, GeolocError, InputRejected
from geoloc_ros.health import InputStatus, Level
from geoloc_ros.io.convert import camera_frame_from_msgs, msg_from_posefix
from geoloc_ros.nodes.base import (
    MSG_TYPES,
    RELIABLE_QOS,
    SENSOR_QOS,
    Diagnostics,
    LatestFrameWorker,
    admit_frame,
    declare_config,
    run,
)
from geoloc_ros.posenet.localizer import PoseNetLocalizer, PoseNetNodeConfig
from geoloc_ros.timeutil import FrameRate

NODE_NAME = "posenet_node"


class PoseNetNode(Node):
    """Thin adapter: latest-frame slot, worker thread, PoseNetLocalizer, publisher."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        argv = [*sys.argv, *(node_kwargs.get("cli_args") or [])]
        self.config = declare_config(self, PoseNetNodeConfig, argv)
        if self.config.datum and len(self.config.datum) != 3:
            raise ConfigError(f"datum must be [lat, lon, alt] or [], got {self.config.datum}")
        self.localizer = PoseNetLocalizer.from_params(self.config.params())
        self.localizer.bundle.check_area(self.config.datum or None)
        self.counts = {"published": 0, "withheld": 0, "dropped": 0, "failed": 0}
        self._rate = FrameRate(self.config.max_rate_hz)
        self.last_sigma_m = float("nan")
        self.last_latency_ms = float("nan")
        self.diag = Diagnostics(self, ["image", "camera_info"], extra=self._status)
        self._pub = self.create_publisher(PoseWithCovarianceStamped, "posenet/fix", RELIABLE_QOS)
        self._info = None
        self._worker = LatestFrameWorker(self.process, "posenet")
        self.create_subscription(CameraInfo, "camera_info", self._on_info, SENSOR_QOS)
        self.create_subscription(Image, "image", self._on_image, SENSOR_QOS)
        m = self.localizer.bundle
        self.get_logger().info(
            f"PoseNet for {m.area.get('name')!r} on {self.localizer.runner.name}, "
            f"{self.config.samples} samples"
        )

    def _on_info(self, msg: CameraInfo) -> None:
        self._info = msg
        self.diag.accept("camera_info")

    def _on_image(self, msg: Image) -> None:
        if not admit_frame(self._rate, msg, self.diag):
            return
        if self._worker.offer(msg, self._info):
            self.counts["dropped"] += 1

    def process(self, msg: Image, info: CameraInfo | None) -> None:
        """One frame: decode, localize, publish or withhold; never raises on data."""
        try:
            frame = camera_frame_from_msgs(msg, info, want="auto")
            t0 = time.perf_counter()
            res = self.localizer.localize(frame.image, frame.t_s, self.config.map_frame)
            self.last_latency_ms = (time.perf_counter() - t0) * 1e3
        except InputRejected as exc:
            self.diag.reject("image", exc.reason, str(exc))
            return
        except (GeolocError, ValueError, RuntimeError) as exc:  # backend failures: keep running
            self.counts["failed"] += 1
            self.diag.reject("image", "inference", str(exc))
            return
        self.diag.accept("image")
        self.last_sigma_m = res.sigma_h_m
        if res.withheld:
            self.counts["withheld"] += 1
            return
        self._pub.publish(msg_from_posefix(res.fix, MSG_TYPES))
        self.counts["published"] += 1

    def _status(self, now_s: float) -> list[InputStatus]:
        c = self.counts
        level = Level.OK if c["published"] or not c["withheld"] else Level.WARN
        message = "localizing" if level == Level.OK else "every fix withheld: too uncertain"
        values = {k: str(v) for k, v in c.items()}
        values["last_sigma_h_m"] = f"{self.last_sigma_m:.2f}"
        values["last_latency_ms"] = f"{self.last_latency_ms:.1f}"
        values["backend"] = self.localizer.runner.name
        return [InputStatus("posenet", level, message, values)]

    def destroy_node(self) -> None:
        self._worker.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(PoseNetNode, args)


if __name__ == "__main__":
    sys.exit(main())
