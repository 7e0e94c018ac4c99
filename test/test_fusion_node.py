"""fusion_node in-process over DDS on an isolated domain: a straight drive in, pose and TF out."""

from __future__ import annotations

import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Imu, NavSatFix
from tf2_msgs.msg import TFMessage

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.health import Level
from geoloc_ros.io.convert import msg_from_gnss, msg_from_imu
from geoloc_ros.nodes.base import MSG_TYPES, RELIABLE_QOS, SENSOR_QOS, TF_QOS
from geoloc_ros.nodes.fusion_node import FusionNode
from geoloc_ros.types import CovarianceType, GnssFix, ImuSample
from test.conftest import spin_until

pytestmark = pytest.mark.ros

T0_S = 1700000000.0
SPEED_MPS = 10.0
HEADING_RAD = math.radians(45.0)  # ENU yaw: north-east
LTP = LocalTangentPlane(47.3769, 8.5417, 408.0)  # the first fix: the node's datum


def truth_enu_m(t_s: float) -> np.ndarray:
    """Position of the car (driving straight north-east from the datum) at stamp t_s."""
    d = SPEED_MPS * (t_s - T0_S)
    return np.array([d * math.cos(HEADING_RAD), d * math.sin(HEADING_RAD), 0.0])


def imu_msg(t_s: float, nan: bool = False) -> Imu:
    """Level, unaccelerated, not turning: specific force +g up, zero rates."""
    msg = msg_from_imu(ImuSample(t_s, [0.0, 0.0, 0.0], [0.0, 0.0, 9.80665], "base_link"), MSG_TYPES)
    if nan:
        msg.angular_velocity.x = math.nan
    return msg


def fix_msg(t_s: float, nan_cov: bool = False) -> NavSatFix:
    lat, lon, alt = LTP.geodetic_from_enu(truth_enu_m(t_s))
    fix = GnssFix(
        t_s,
        float(lat),
        float(lon),
        float(alt),
        cov_enu_3x3=np.eye(3),
        covariance_type=CovarianceType.DIAGONAL_KNOWN,
    )
    msg = msg_from_gnss(fix, MSG_TYPES)
    if nan_cov:
        msg.position_covariance[0] = math.nan
    return msg


def drive(duration_s: float, start_s: float = 0.0):
    """(name, message) of IMU at 100 Hz and GNSS at 5 Hz, in stamp order."""
    for i in range(round(start_s * 100), round((start_s + duration_s) * 100)):
        t_s = T0_S + i * 0.01
        yield "imu", imu_msg(t_s)
        if i % 20 == 0:
            yield "fix", fix_msg(t_s)


def yaw_rad(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def find_status(got_diag, suffix: str, level: bytes | None = None) -> DiagnosticStatus | None:
    """The latest status named `<node>: suffix` (at `level`, if given)."""
    for arr in reversed(got_diag):
        for st in arr.status:
            if st.name.endswith(f": {suffix}") and (level is None or st.level == level):
                return st
    return None


def test_drive_gives_pose_tf_and_filtered_fix_bad_inputs_warn(context):
    node = FusionNode(context=context)
    probe = rclpy.create_node("probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    got_tf: list[TFMessage] = []
    got_odom: list[Odometry] = []
    got_fix: list[NavSatFix] = []
    got_diag: list[DiagnosticArray] = []
    got_path: list[Path] = []
    probe.create_subscription(Path, "path", got_path.append, RELIABLE_QOS)
    probe.create_subscription(TFMessage, "/tf", got_tf.append, TF_QOS)
    probe.create_subscription(Odometry, "odometry/global", got_odom.append, RELIABLE_QOS)
    probe.create_subscription(NavSatFix, "fix/filtered", got_fix.append, RELIABLE_QOS)
    probe.create_subscription(DiagnosticArray, "/diagnostics", got_diag.append, 10)
    pubs = {
        "imu": probe.create_publisher(Imu, "imu", SENSOR_QOS),
        "fix": probe.create_publisher(NavSatFix, "fix", SENSOR_QOS),
    }
    for pub in pubs.values():
        assert spin_until(executor, lambda pub=pub: pub.get_subscription_count() > 0)

    def send(name: str, msg) -> None:
        """Publish and spin until the node has it (best effort keeps only 5 queued)."""
        n = node.diag.inputs[name].received
        pubs[name].publish(msg)
        spin_until(executor, lambda: node.diag.inputs[name].received > n, 1.0)

    for name, msg in drive(4.0):
        send(name, msg)
    assert spin_until(executor, lambda: got_odom and got_fix and got_tf, 2.0), "no output"

    odom = got_odom[-1]
    assert (odom.header.frame_id, odom.child_frame_id) == ("map", "base_link")
    t_s = odom.header.stamp.sec + odom.header.stamp.nanosec * 1e-9
    p = odom.pose.pose.position
    assert np.linalg.norm([p.x, p.y, p.z] - truth_enu_m(t_s)) < 3.0
    assert math.degrees(yaw_rad(odom.pose.pose.orientation)) == pytest.approx(45.0, abs=3.0)
    assert np.all(np.diag(np.reshape(odom.pose.covariance, (6, 6))) > 0)
    pairs = {(tf.header.frame_id, tf.child_frame_id) for m in got_tf for tf in m.transforms}
    assert pairs == {("map", "odom"), ("odom", "base_link")}
    assert got_fix[-1].position_covariance_type == NavSatFix.COVARIANCE_TYPE_KNOWN
    assert len(node.path_poses) >= 2
    assert spin_until(executor, lambda: got_path, 2.0), "no path within a timer period"
    assert got_path[-1].header.frame_id == "map" and 1 <= len(got_path[-1].poses) <= 8

    send("imu", imu_msg(T0_S + 4.005, nan=True))  # rejected, not a crash
    send("fix", fix_msg(T0_S + 4.005, nan_cov=True))
    n_odom = len(got_odom)
    for name, msg in drive(0.5, start_s=4.01):
        send(name, msg)
    assert spin_until(executor, lambda: len(got_odom) > n_odom + 10), "stopped publishing"
    # every published pose is counted (a live run compares it with what it recorded)
    assert spin_until(executor, lambda: len(got_odom) == node.odometry_published, 2.0)

    def warned() -> bool:
        return bool(
            find_status(got_diag, "imu", DiagnosticStatus.WARN)
            and find_status(got_diag, "fix", DiagnosticStatus.WARN)
        )

    assert spin_until(executor, warned, 3.0), "no WARN for the NaN IMU and NaN-covariance fix"
    imu = {kv.key: kv.value for kv in find_status(got_diag, "imu", DiagnosticStatus.WARN).values}
    fix = {kv.key: kv.value for kv in find_status(got_diag, "fix", DiagnosticStatus.WARN).values}
    assert imu["rejected_nan"] == "1" and fix["rejected_covariance"] == "1"
    fusion = {kv.key: kv.value for kv in find_status(got_diag, "fusion").values}
    assert fusion["initialized"] == "True" and fusion["covariance_ok"] == "True"
    assert fusion["internal_errors"] == "0"
    executor.shutdown()
    probe.destroy_node()
    node.destroy_node()


def test_internal_error_is_counted_and_resets_the_fusion(context):
    node = FusionNode(context=context, cli_args=["--ros-args", "-p", "path_max_poses:=3"])
    [status] = node._fusion_status(0.0)
    assert status.level == Level.WARN and "not initialised" in status.message
    for name, msg in drive(3.0):
        node.on_message(name, msg)
    assert node.pipeline.estimator.initialized
    assert len(node.path_poses) == 3  # bounded

    def boom(*_, **__):
        raise RuntimeError("IndeterminantLinearSystem")

    node.pipeline.estimator.on_imu = boom
    node.on_message("imu", imu_msg(T0_S + 3.0))  # must not raise
    assert node.internal_errors == 1
    assert not node.pipeline.estimator.initialized and not node.path_poses
    [status] = node._fusion_status(node.get_clock().now().nanoseconds * 1e-9)
    assert status.level == Level.ERROR and "IndeterminantLinearSystem" in status.message
    node.destroy_node()


def test_unknown_parameter_raises_config_error(context):
    args = ["--ros-args", "-p", "use_wheelspeed:=false"]
    with pytest.raises(ConfigError, match="unknown parameter 'use_wheelspeed'"):
        FusionNode(context=context, cli_args=args)


@pytest.mark.parametrize(("platform", "car"), [("car", True), ("drone", False)])
def test_shipped_configs_are_accepted_by_the_node(context, platform, car):
    from test.conftest import REPO

    args = ["--ros-args", "--params-file", str(REPO / "config" / f"{platform}.yaml")]
    node = FusionNode(context=context, cli_args=args)
    assert (node.config.use_nhc, node.config.use_wheel_speed) == (car, car)
    assert node.config.publish_tf is True
    node.destroy_node()


def test_a_stalled_executor_loses_no_imu_samples(context):
    """300 IMU messages (1.5 s at 200 Hz) arrive while the node is busy: all are kept."""
    node = FusionNode(context=context)
    probe = rclpy.create_node("probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    pub = probe.create_publisher(Imu, "imu", SENSOR_QOS)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
    for i in range(300):  # published without spinning: the node cannot take them yet
        pub.publish(imu_msg(T0_S + i * 0.005))
    received = node.diag.inputs["imu"]
    assert spin_until(executor, lambda: received.received >= 300, 10.0), received.received


def test_dropped_imu_samples_show_on_diagnostics(context):
    """A 0.3 s hole in the IMU stream is counted and measured in the "fusion" status."""
    node = FusionNode(context=context)
    stamps = [T0_S + i * 0.01 for i in range(300)]
    for t_s in stamps[:100] + stamps[130:]:
        node.on_message("imu", imu_msg(t_s))
    values = {s.name: s.values for s in node._fusion_status(0.0)}["fusion"]
    assert values["imu_gaps"] == "1"
    assert float(values["imu_max_gap_s"]) == pytest.approx(0.31, abs=1e-6)
    assert float(values["imu_missing_s"]) == pytest.approx(0.30, abs=1e-6)


def test_outputs_wait_until_the_heading_is_known():
    """With output_max_yaw_sigma_rad the first published state knows its yaw that well;
    without it the fusion publishes from its first (loose-heading) state."""
    from geoloc_ros.fusion.config import FusionConfig
    from geoloc_ros.fusion.pipeline import FusionPipeline

    def first_output(cfg: FusionConfig):
        pipe = FusionPipeline(cfg)
        for name, msg in drive(20.0):
            state = pipe.handle(name, msg)
            if state is not None:
                assert pipe.output_state is not None
                return state
            if name == "imu" and pipe.estimator.initialized:
                assert pipe.output_state is None
        return None

    gated = first_output(FusionConfig(output_max_yaw_sigma_rad=0.02))
    ungated = first_output(FusionConfig())
    assert gated is not None and ungated is not None
    assert math.sqrt(gated.cov_pose_6x6[5, 5]) <= 0.02
    assert math.sqrt(ungated.cov_pose_6x6[5, 5]) > 0.02 and ungated.t_s < gated.t_s


def test_pipeline_returns_states_at_the_output_rate_not_the_imu_rate():
    """handle() builds an IMU-rate state only when an output is due, for node and eval."""
    from geoloc_ros.fusion.config import FusionConfig
    from geoloc_ros.fusion.pipeline import FusionPipeline

    pipe = FusionPipeline(FusionConfig(output_rate_hz=20.0))
    stamps = [s.t_s for name, msg in drive(6.0) if (s := pipe.handle(name, msg)) is not None]
    assert pipe.estimator.initialized and len(stamps) > 50
    steps = np.diff(stamps)
    np.testing.assert_allclose(steps, 0.05, atol=1e-6)  # every 5th sample of 100 Hz
    t_last = stamps[-1]
    assert pipe.odom.t_s == t_last  # the odom frame integrates the states it returned


def test_benchmark_calls_the_path_timer_at_the_node_rate():
    from geoloc_ros.benchmarks import fusion as bench
    from geoloc_ros.nodes.fusion_node import PATH_PUBLISH_HZ

    assert bench.PATH_PUBLISH_HZ == PATH_PUBLISH_HZ
