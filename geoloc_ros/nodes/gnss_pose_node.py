"""gnss_pose_node: the GNSS-only baseline as a node (fix + IMU attitude -> pose, TF).

In:  `fix` (sensor_msgs/NavSatFix), `imu` (sensor_msgs/Imu), sensor-data QoS.
Out: `odometry/gnss` (nav_msgs/Odometry, map -> base_link), TF map -> base_link when
`publish_tf`, /diagnostics. The fusion node supersedes it; it stays as the raw
baseline and as the smallest end-to-end check of a ROS set-up.
"""

from __future__ import annotations

import sys

from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import Imu, NavSatFix

from geoloc_ros.errors import InputRejected, TimeJump
from geoloc_ros.fusion.gnss_pose import GnssPoseConfig, GnssPoseEstimator
from geoloc_ros.io.convert import gnss_from_msg, imu_from_msg, odometry_from_navstate, transform_msg
from geoloc_ros.nodes.base import (
    MSG_TYPES,
    OUTPUT_QOS,
    SENSOR_QOS,
    Diagnostics,
    TfPublisher,
    declare_config,
    run,
    watch_time_jumps,
)
from geoloc_ros.timeutil import TimeGuard

NODE_NAME = "gnss_pose_node"


class GnssPoseNode(Node):
    """Thin adapter around GnssPoseEstimator."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        argv = [*sys.argv, *(node_kwargs.get("cli_args") or [])]
        self.config = declare_config(self, GnssPoseConfig, argv)
        self.estimator = GnssPoseEstimator(self.config)
        self.diag = Diagnostics(self, ["imu", "fix"])
        self.tf = TfPublisher(self)
        self._time_guards = {"imu": TimeGuard(), "fix": TimeGuard()}
        self._odom_pub = self.create_publisher(Odometry, "odometry/gnss", OUTPUT_QOS)
        self.create_subscription(Imu, "imu", self._on_imu, SENSOR_QOS)
        self.create_subscription(NavSatFix, "fix", self._on_fix, SENSOR_QOS)
        self._jump_handle = watch_time_jumps(self, self.reset)

    def reset(self) -> None:
        self.estimator.reset()
        for guard in self._time_guards.values():
            guard.reset()

    def _admit(self, name: str, convert, msg):
        """Convert and time-check one message; None (and a diagnostic) if rejected."""
        try:
            item = convert(msg)
            self._time_guards[name].check(item.t_s)
        except TimeJump as exc:
            self.get_logger().warning(f"{name}: {exc}; resetting")
            self.reset()
            self._time_guards[name].check(item.t_s)
        except InputRejected as exc:
            self.diag.reject(name, exc.reason, str(exc))
            return None
        self.diag.accept(name)
        return item

    def _on_imu(self, msg: Imu) -> None:
        sample = self._admit("imu", imu_from_msg, msg)
        if sample is not None:
            self.estimator.on_imu(sample)

    def _on_fix(self, msg: NavSatFix) -> None:
        fix = self._admit("fix", gnss_from_msg, msg)
        if fix is None:
            return
        try:
            state = self.estimator.on_fix(fix)
        except InputRejected as exc:
            self.diag.reject("fix", exc.reason, str(exc))
            return
        if state is None:
            return
        self._odom_pub.publish(odometry_from_navstate(state, MSG_TYPES))
        if self.config.publish_tf:
            self.tf.send(
                [
                    transform_msg(
                        state.t_s,
                        state.frame_id,
                        state.child_frame_id,
                        state.p_m,
                        state.q_xyzw,
                        MSG_TYPES,
                    )
                ]
            )


def main(args: list[str] | None = None) -> int:
    return run(GnssPoseNode, args)


if __name__ == "__main__":
    sys.exit(main())
