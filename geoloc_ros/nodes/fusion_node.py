"""fusion_node: the GTSAM fusion as a node (IMU, GNSS, wheel speed, visual fixes -> pose, TF).

In:  `imu` (sensor_msgs/Imu), `fix` (sensor_msgs/NavSatFix), `wheel_odom` (nav_msgs/Odometry),
     sensor-data QoS; `map_localizer/fix`, `posenet/fix` (geometry_msgs/
     PoseWithCovarianceStamped in `map`), reliable.
Out: `odometry/global` (nav_msgs/Odometry `map` -> `base_link`, with covariance) and TF
     `map` -> `odom` (`publish_tf`), `odom` -> `base_link` (`publish_odom_tf`) per REP-105,
     from the IMU-rate state decimated to `output_rate_hz`; `fix/filtered`
     (sensor_msgs/NavSatFix) at every keyframe (`keyframe_period_s`, 10 Hz by default);
     `path` (nav_msgs/Path in `map`, the last `path_max_poses` keyframe poses) gaining a
     pose at PATH_RATE_HZ and republished by a timer at PATH_PUBLISH_HZ, off the keyframe
     handler (a 2000-pose Path costs milliseconds to publish); /diagnostics: per-input rates
     and rejections, plus a "fusion" status (state, covariance health, gating, internal errors).
All estimation is FusionPipeline's, the same code `geoloc eval` replays offline.
"""

from __future__ import annotations

import collections
import sys
import traceback
from typing import Any

from geometry_msgs.msg import (
    Point,
    Pose,
    PoseStamped,
    PoseWithCovarianceStamped,
    Quaternion,
    TransformStamped,
)
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from sensor_msgs.msg import Imu, NavSatFix

from geoloc_ros.errors import InputRejected
from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.fusion.pipeline import INPUTS, FusionPipeline
from geoloc_ros.health import InputStatus, Level
from geoloc_ros.io.convert import fill_odometry, fill_transform, msg_from_gnss
from geoloc_ros.io.msgtypes import header_msg
from geoloc_ros.nodes.base import (
    MSG_TYPES,
    OUTPUT_QOS,
    RELIABLE_QOS,
    STREAM_QOS,
    Diagnostics,
    TfPublisher,
    declare_config,
    run,
    watch_time_jumps,
)
from geoloc_ros.timeutil import Decimator
from geoloc_ros.types import NavState

NODE_NAME = "fusion_node"
PATH_RATE_HZ = 2.0  # path poses: 5 m apart at 10 m/s; 2000 poses hold ~17 min
PATH_PUBLISH_HZ = 1.0  # RViz trail refresh; the whole Path is resent each time
ERROR_WINDOW_S = 5.0  # the "fusion" status stays ERROR this long after an internal error

INPUT_TYPES: dict[str, tuple[type, Any]] = {
    "imu": (Imu, STREAM_QOS),
    "fix": (NavSatFix, STREAM_QOS),
    "wheel_odom": (Odometry, STREAM_QOS),
    "map_localizer/fix": (PoseWithCovarianceStamped, RELIABLE_QOS),
    "posenet/fix": (PoseWithCovarianceStamped, RELIABLE_QOS),
}


class FusionNode(Node):
    """Thin adapter around FusionPipeline: subscriptions in, publishers and TF out."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        argv = [*sys.argv, *(node_kwargs.get("cli_args") or [])]
        self.config = declare_config(self, FusionConfig, argv)
        self.pipeline = FusionPipeline(self.config)
        self.internal_errors = 0
        self._last_error = ""
        self._last_error_s: float | None = None
        self._fixes_gated_total = 0
        self.odometry_published = 0  # on /diagnostics: tells the node's losses from a recording's
        self._resets_seen = self.pipeline.resets
        self._imu_gaps_seen = 0
        self._last_keyframe_t_s: float | None = None
        self._path_rate = Decimator(1.0 / PATH_RATE_HZ)
        self.path_poses: collections.deque[PoseStamped] = collections.deque(
            maxlen=self.config.path_max_poses
        )
        self.diag = Diagnostics(self, INPUTS, extra=self._fusion_status)
        self.tf = TfPublisher(self)
        self._odom_pub = self.create_publisher(Odometry, "odometry/global", OUTPUT_QOS)
        self._fix_pub = self.create_publisher(NavSatFix, "fix/filtered", OUTPUT_QOS)
        self._path_pub = self.create_publisher(Path, "path", RELIABLE_QOS)
        self._path_dirty = False
        # the IMU-rate outputs are refilled in place: building them anew was ~60 % of an
        # output sample's cost (each rclpy constructor builds and drops default children)
        self._odom_msg = Odometry()
        cfg = self.config
        self._tf_map_odom = self._transform(cfg.map_frame, cfg.odom_frame)
        self._tf_odom_base = self._transform(cfg.odom_frame, cfg.base_frame)
        self.create_timer(1.0 / PATH_PUBLISH_HZ, self.publish_path)
        for name in INPUTS:
            msg_type, qos = INPUT_TYPES[name]
            self.create_subscription(
                msg_type, name, lambda msg, name=name: self.on_message(name, msg), qos
            )
        self._jump_handle = watch_time_jumps(self, self.reset)

    def reset(self) -> None:
        """Restart the fusion and the outputs derived from it (clock jump, internal error)."""
        self.pipeline.reset()
        self._reset_outputs()

    def _reset_outputs(self) -> None:
        self._resets_seen = self.pipeline.resets
        self._last_keyframe_t_s = None
        self._path_rate.reset()
        self.path_poses.clear()
        self._path_dirty = False

    def on_message(self, name: str, msg: Any) -> None:
        """The node's one boundary: bad data is counted, an internal error logged and reset."""
        try:
            state = self.pipeline.handle(name, msg)
        except InputRejected as exc:
            self.diag.reject(name, exc.reason, str(exc))
            return
        except Exception as exc:  # a bug or a numerical failure must not stop the node
            self._internal_error(name, exc)
            return
        self.diag.accept(name)
        if name == "imu":
            self._warn_imu_gap()
        try:
            self._publish(state)
        except Exception as exc:
            self._internal_error(name, exc)

    def _warn_imu_gap(self) -> None:
        gaps = self.pipeline.imu_gaps
        if gaps.gaps != self._imu_gaps_seen:
            self._imu_gaps_seen = gaps.gaps
            self.get_logger().warning(
                f"imu: {gaps.gaps} gaps so far ({gaps.missing_s:.2f} s of samples missing, "
                f"longest {gaps.max_gap_s:.2f} s, latest before t={gaps.last_t_s:.2f})",
                throttle_duration_sec=5.0,
            )

    def _internal_error(self, name: str, exc: Exception) -> None:
        self.internal_errors += 1
        self._last_error = f"{name}: {type(exc).__name__}: {exc}"
        self._last_error_s = self.get_clock().now().nanoseconds * 1e-9
        self.get_logger().error(
            f"internal error while handling {self._last_error}; resetting the fusion",
            throttle_duration_sec=5.0,
        )
        self.get_logger().debug(traceback.format_exc())
        self.reset()

    # -- outputs ------------------------------------------------------------------------
    def _publish(self, state: NavState | None) -> None:
        """Outputs after one handled message: keyframe outputs, then the IMU-rate ones."""
        if self.pipeline.resets != self._resets_seen:  # the pipeline reset itself (bag loop)
            self._reset_outputs()
        keyframe = self.pipeline.output_state
        if keyframe is not None and keyframe.t_s != self._last_keyframe_t_s:
            self._last_keyframe_t_s = keyframe.t_s
            self._publish_keyframe(keyframe)
        if state is not None:  # the pipeline returns one at output_rate_hz
            self._publish_state(state)

    @staticmethod
    def _transform(parent: str, child: str) -> TransformStamped:
        msg = TransformStamped()
        msg.header.frame_id = parent
        msg.child_frame_id = child
        return msg

    def _publish_state(self, s: NavState) -> None:
        cfg = self.config
        self._odom_pub.publish(fill_odometry(self._odom_msg, s))
        self.odometry_published += 1
        transforms = []
        if cfg.publish_tf:
            p_m, q_xyzw = self.pipeline.odom.T_map_odom
            transforms.append(fill_transform(self._tf_map_odom, s.t_s, p_m, q_xyzw))
        if cfg.publish_odom_tf:
            p_m, q_xyzw = self.pipeline.odom.T_odom_base
            transforms.append(fill_transform(self._tf_odom_base, s.t_s, p_m, q_xyzw))
        if transforms:
            self.tf.send(transforms)

    def _publish_keyframe(self, s: NavState) -> None:
        fix = self.pipeline.fused_fix(s)
        if fix is not None:
            self._fix_pub.publish(msg_from_gnss(fix, MSG_TYPES))
        if not self._path_rate.due(s.t_s):
            return
        header = header_msg(MSG_TYPES, s.t_s, self.config.map_frame)
        p, q = s.p_m, s.q_xyzw
        pose = Pose(
            position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
            orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
        )
        self.path_poses.append(PoseStamped(header=header, pose=pose))
        self._path_dirty = True

    def publish_path(self) -> None:
        """Resend the path if it gained a pose (timer callback, off the keyframe handler)."""
        if not self._path_dirty or not self.path_poses:
            return
        self._path_dirty = False
        header = self.path_poses[-1].header
        try:
            self._path_pub.publish(Path(header=header, poses=list(self.path_poses)))
        except Exception as exc:  # a display topic: log it, the estimate is unaffected
            self.get_logger().error(f"path: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    # -- diagnostics ----------------------------------------------------------------------
    def _fusion_status(self, now_s: float) -> list[InputStatus]:
        """The "fusion" DiagnosticStatus: state, covariance health, gating since last time."""
        est = self.pipeline.estimator
        try:
            values = self.pipeline.health()
        except Exception as exc:  # diagnostics must not take the node down either
            values = {"health_error": f"{type(exc).__name__}: {exc}"}
        decisions = self.pipeline.take_decisions()  # drained here so memory stays flat
        used = sum(1 for d in decisions if d.accepted)
        gated = len(decisions) - used
        self._fixes_gated_total += gated
        values.update(
            {
                "initialized": str(est.initialized),
                "initializations": str(est.counts.get("initialized", 0)),
                "fixes_used_last_period": str(used),
                "fixes_gated_last_period": str(gated),
                "fixes_gated_total": str(self._fixes_gated_total),
                "internal_errors": str(self.internal_errors),
                "path_poses": str(len(self.path_poses)),
                "odometry_published": str(self.odometry_published),
            }
        )
        recent_error = self._last_error_s is not None and (
            0.0 <= now_s - self._last_error_s < ERROR_WINDOW_S
        )
        if recent_error:
            level, message = Level.ERROR, f"internal error, fusion reset: {self._last_error}"
        elif not est.initialized:
            level, message = Level.WARN, "not initialised: waiting for motion or a visual fix"
        elif not self.pipeline.heading_known:
            sigma = values.get("sigma_yaw_deg", "?")
            message = f"initialised, not publishing: yaw sigma {sigma} deg above the output limit"
            level = Level.WARN
        elif values.get("covariance_ok") != "True":
            level, message = Level.WARN, "pose covariance is not finite positive definite"
        elif gated and not used:
            level, message = Level.WARN, f"all {gated} absolute fixes of the last period gated"
        else:
            level, message = Level.OK, "ok"
        return [InputStatus("fusion", level, message, values)]


def in_process(params_file: str, domain_id: int = 101) -> FusionNode:
    """A FusionNode on its own context, for driving on_message directly (benchmarks)."""
    import rclpy  # noqa: PLC0415

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    return FusionNode(context=ctx, cli_args=["--ros-args", "--params-file", params_file])


def main(args: list[str] | None = None) -> int:
    return run(FusionNode, args)


if __name__ == "__main__":
    sys.exit(main())
