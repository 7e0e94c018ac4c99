"""Building blocks every geoloc node composes: strict parameters, diagnostics, TF, time jumps.

Each helper is handed the node (as tf2_ros's listener is) instead of being a base class.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import rclpy
import rclpy.executors
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import ClockType, JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from geoloc_ros.config import ROS_RESERVED, flatten, from_mapping, load_node_config
from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.health import InputHealth, InputStatus
from geoloc_ros.io.convert import stamp_of
from geoloc_ros.io.msgtypes import RclpyTypes
from geoloc_ros.timeutil import FrameRate

T = TypeVar("T")

SENSOR_QOS = qos_profile_sensor_data
"""Inputs: best effort, keep last 5 (rclpy's SensorDataQoS)."""

STREAM_QOS = QoSProfile(depth=400, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.BEST_EFFORT)  # fmt: skip
"""Inputs an estimator integrates (IMU, wheel speed, fixes): best effort like a sensor
offers them, but 2 s deep at 200 Hz, so a smoother update that stalls the executor
does not lose samples (keep-last-5 dropped over half the IMU of a loaded 2-core run)."""

RELIABLE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
"""Outputs: reliable, so both best-effort and reliable subscribers receive them."""

OUTPUT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
"""Estimates at up to 50 Hz (odometry/global, fix/filtered): reliable and 2 s deep, so
a subscriber that stalls for a few tenths of a second still gets every one (keep-last-10
lost 2.4 % of odometry/global and 1.2 % of fix/filtered to the live demo's recorder)."""

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
"""/tf as tf2_ros.TransformBroadcaster offers it (DynamicBroadcasterQoS)."""

TF_STATIC_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""/tf_static as tf2_ros.StaticTransformBroadcaster offers it (latched)."""

MSG_TYPES = RclpyTypes()


def params_files(argv: Sequence[str]) -> list[str]:
    """Paths given with --params-file in a ROS argument list."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--params-file"]


def declare_config(node: Node, cls: type[T], argv: Sequence[str] | None = None) -> T:
    """Declare `cls`'s fields as parameters and return the validated config.

    Every --params-file is validated strictly first, so an unknown or mistyped key is
    reported with its key and file; then overrides from anywhere else (-p on the
    command line, launch dicts) that match no declared parameter are reported too.
    """
    argv = list(sys.argv if argv is None else argv)
    for path in params_files(argv):
        try:
            load_node_config(cls, path, node.get_name())
        except ConfigError as exc:
            if "no parameters for node" not in str(exc):
                raise
    defaults = flatten(cls())
    overrides = set(getattr(node, "_parameter_overrides", {}))  # rclpy keeps them here
    unknown = sorted(overrides - set(defaults) - ROS_RESERVED)
    unknown = [k for k in unknown if not k.startswith("qos_overrides.")]
    if unknown:
        raise ConfigError(f"node '{node.get_name()}': unknown parameter '{unknown[0]}'")
    for name, value in defaults.items():
        if isinstance(value, list) and not value:
            value = rclpy.Parameter.Type.DOUBLE_ARRAY  # an empty list has no inferable type
        try:
            node.declare_parameter(name, value)
        except Exception as exc:  # rclpy's own type check of an override
            raise ConfigError(f"node '{node.get_name()}': parameter '{name}': {exc}") from None
    values = {}
    for name, default in defaults.items():
        try:
            v = node.get_parameter(name).value
        except ParameterUninitializedException:  # an empty-list default nobody overrode
            v = default
        values[name] = list(v) if isinstance(v, (tuple, Sequence)) and not isinstance(v, str) else v
    return from_mapping(cls, values, f"parameters of node '{node.get_name()}'")


class Diagnostics:
    """Publishes one DiagnosticStatus per input on /diagnostics every `period_s`.

    `extra(now_s)`, if given, adds the node's own statuses (e.g. estimator health).
    """

    def __init__(
        self,
        node: Node,
        inputs: Sequence[str],
        period_s: float = 1.0,
        extra: Callable[[float], Sequence[InputStatus]] | None = None,
    ) -> None:
        self._node = node
        self.inputs = {name: InputHealth(name) for name in inputs}
        self._extra = extra
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._hardware_id = node.get_fully_qualified_name()
        self._timer = node.create_timer(period_s, self.publish)

    def _now_s(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9

    def accept(self, name: str) -> None:
        self.inputs[name].accept(self._now_s())

    def reject(self, name: str, reason: str, message: str) -> None:
        """Count a rejected message and warn (throttled per input)."""
        self.inputs[name].reject(self._now_s(), reason, message)
        self._node.get_logger().warning(
            f"{name}: rejected ({reason}): {message}", throttle_duration_sec=5.0
        )

    def publish(self) -> None:
        now_s = self._now_s()
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        reports = [health.report(now_s) for health in self.inputs.values()]
        if self._extra is not None:
            reports.extend(self._extra(now_s))
        for r in reports:
            msg.status.append(
                DiagnosticStatus(
                    level=bytes([int(r.level)]),
                    name=f"{self._node.get_name()}: {r.name}",
                    message=r.message,
                    hardware_id=self._hardware_id,
                    values=[KeyValue(key=k, value=v) for k, v in r.values.items()],
                )
            )
        self._pub.publish(msg)


def admit_frame(rate: FrameRate, msg: Any, diag: Diagnostics) -> bool:
    """Whether an image is inside the node's max_rate_hz budget (by its stamp); an image
    with an unusable stamp is rejected on `diag` as input "image"."""
    try:
        return rate.admit(stamp_of(msg))
    except InputRejected as exc:
        diag.reject("image", exc.reason, str(exc))
        return False


class LatestFrameWorker:
    """One worker thread fed through a one-item slot: a new item replaces an unprocessed one.

    Camera nodes use it so a slow network drops stale frames instead of queueing
    latency. `process(*item)` runs on the worker thread.
    """

    def __init__(self, process: Callable[..., None], name: str) -> None:
        self._process = process
        self._slot: tuple | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, *item: Any) -> bool:
        """Queue `item` for the worker; True when it replaced one never processed (a drop)."""
        with self._cv:
            dropped = self._slot is not None
            self._slot = item
            self._cv.notify()
        return dropped

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._slot is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                item, self._slot = self._slot, None
            self._process(*item)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=timeout_s)


class TfPublisher:
    """Broadcasts transforms on /tf and /tf_static with tf2_ros's QoS.

    Uses tf2_ros's broadcasters where tf2_ros is installed; without it (pip-only
    set-ups) publishes TFMessage itself, keeping every static transform and
    re-sending the whole set as StaticTransformBroadcaster does.
    """

    def __init__(self, node: Node) -> None:
        from tf2_msgs.msg import TFMessage  # noqa: PLC0415  (fallback build on pip set-ups)

        self._TFMessage = TFMessage
        self._static: dict[str, Any] = {}
        try:
            import tf2_ros  # noqa: PLC0415

            self._dynamic = tf2_ros.TransformBroadcaster(node)
            self._static_bc = tf2_ros.StaticTransformBroadcaster(node)
            self._pub = self._static_pub = None
        except ImportError:
            self._dynamic = self._static_bc = None
            self._pub = node.create_publisher(TFMessage, "/tf", TF_QOS)
            self._static_pub = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)

    def send(self, transforms: Sequence[Any]) -> None:
        if self._dynamic is not None:
            self._dynamic.sendTransform(list(transforms))
        else:
            self._pub.publish(self._TFMessage(transforms=list(transforms)))

    def send_static(self, transforms: Sequence[Any]) -> None:
        for tf in transforms:
            self._static[tf.child_frame_id] = tf
        if self._static_bc is not None:
            self._static_bc.sendTransform(list(self._static.values()))
        else:
            self._static_pub.publish(self._TFMessage(transforms=list(self._static.values())))


def watch_time_jumps(node: Node, on_jump: Callable[[], None], backward_s: float = 0.5) -> Any:
    """Call `on_jump` when the node's clock jumps back (bag loop) or its source changes.

    Stamps going backwards within the data are caught by each input's TimeGuard.
    """
    threshold = JumpThreshold(
        min_forward=None, min_backward=Duration(seconds=-backward_s), on_clock_change=True
    )

    def _post(jump: TimeJump) -> None:
        node.get_logger().warning(
            f"time jump of {jump.delta.nanoseconds * 1e-9:.3f} s: resetting estimators"
        )
        on_jump()

    clock = node.get_clock()
    if clock.clock_type == ClockType.STEADY_TIME:
        return None
    return clock.create_jump_callback(threshold, post_callback=_post)


def run(node_factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """Console-script body: init, build the node, spin; config errors end in one line, exit 1."""
    rclpy.init(args=args)
    node = None
    try:
        node = node_factory()
        rclpy.spin(node)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


__all__ = [
    "MSG_TYPES",
    "OUTPUT_QOS",
    "RELIABLE_QOS",
    "SENSOR_QOS",
    "STREAM_QOS",
    "Diagnostics",
    "TfPublisher",
    "admit_frame",
    "declare_config",
    "run",
    "watch_time_jumps",
]
