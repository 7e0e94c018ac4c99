"""gnss_pose_node in-process over DDS on an isolated domain: TF out, NaN IMU -> WARN, no crash."""

from __future__ import annotations

import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Imu, NavSatFix
from tf2_msgs.msg import TFMessage

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import xyzw_from_rpy
from geoloc_ros.io.convert import msg_from_gnss, msg_from_imu
from geoloc_ros.nodes.base import MSG_TYPES, SENSOR_QOS, TF_QOS
from geoloc_ros.nodes.gnss_pose_node import GnssPoseNode
from geoloc_ros.types import CovarianceType, GnssFix, ImuSample
from test.conftest import spin_until

pytestmark = pytest.mark.ros


def imu_msg(t_s: float, nan: bool = False) -> Imu:
    msg = msg_from_imu(
        ImuSample(
            t_s, [0.0, 0.0, 0.01], [0.0, 0.0, 9.81], "base_link", q_xyzw=xyzw_from_rpy(0, 0, 0.5)
        ),
        MSG_TYPES,
    )
    if nan:
        msg.angular_velocity.x = math.nan
    return msg


def fix_msg(t_s: float, lat: float = 47.3769) -> NavSatFix:
    fix = GnssFix(
        t_s,
        lat,
        8.5417,
        408.0,
        cov_enu_3x3=np.eye(3),
        covariance_type=CovarianceType.DIAGONAL_KNOWN,
    )
    return msg_from_gnss(fix, MSG_TYPES)


def test_tf_and_odometry_out_nan_imu_gives_warn_diagnostic(context):
    node = GnssPoseNode(context=context)
    probe = rclpy.create_node("probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    got_tf: list[TFMessage] = []
    got_odom: list[Odometry] = []
    got_diag: list[DiagnosticArray] = []
    probe.create_subscription(TFMessage, "/tf", got_tf.append, TF_QOS)
    probe.create_subscription(Odometry, "odometry/gnss", got_odom.append, 10)
    probe.create_subscription(DiagnosticArray, "/diagnostics", got_diag.append, 10)
    imu_pub = probe.create_publisher(Imu, "imu", SENSOR_QOS)
    fix_pub = probe.create_publisher(NavSatFix, "fix", SENSOR_QOS)
    assert spin_until(executor, lambda: imu_pub.get_subscription_count() > 0)
    assert spin_until(executor, lambda: fix_pub.get_subscription_count() > 0)

    t0 = 1700000000.0
    imu_pub.publish(imu_msg(t0, nan=True))  # must be rejected, not crash the node
    imu_pub.publish(imu_msg(t0 + 0.01))
    spin_until(executor, lambda: False, 0.3)
    fix_pub.publish(fix_msg(t0 + 0.02))
    fix_pub.publish(fix_msg(t0 + 0.22, lat=47.3770))

    assert spin_until(executor, lambda: len(got_tf) >= 2), "no TF received on /tf"
    tf = got_tf[-1].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("map", "base_link")
    assert tf.transform.translation.y == pytest.approx(11.1, abs=0.2)  # 1e-4 deg of latitude
    assert tf.transform.rotation.z == pytest.approx(math.sin(0.25), abs=1e-9)
    assert spin_until(executor, lambda: got_odom), "no odometry/gnss received"

    def imu_warn() -> DiagnosticStatus | None:
        for arr in got_diag:
            for st in arr.status:
                if st.name.endswith(": imu") and st.level == DiagnosticStatus.WARN:
                    return st
        return None

    assert spin_until(executor, lambda: imu_warn() is not None, 5.0), "no WARN for the NaN IMU"
    status = imu_warn()
    assert "NaN" in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values["rejected_nan"] == "1"
    executor.shutdown()
    probe.destroy_node()
    node.destroy_node()


def test_time_going_back_resets_instead_of_crashing(context):
    node = GnssPoseNode(context=context)
    node._on_imu(imu_msg(1000.0))
    node._on_fix(fix_msg(1000.1))
    node._on_imu(imu_msg(10.0))  # a bag loop: 990 s back
    assert node.estimator._q_map_base is not None  # reset, then accepted the new sample
    node._on_fix(fix_msg(1000.1 - 990.0))
    node._on_fix(fix_msg(1000.1 - 990.0))  # duplicate stamp: rejected, counted
    assert node.diag.inputs["fix"].rejected["out_of_order"] == 1
    node.destroy_node()


def test_unknown_parameter_in_file_names_key_and_file(context, tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text(
        "gnss_pose_node:\n  ros__parameters:\n    publish_tf: true\n    mapframe: x\n"
    )
    args = ["--ros-args", "--params-file", str(params)]
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'mapframe'"):
        GnssPoseNode(context=context, cli_args=args)


def test_mistyped_parameter_in_file_names_key_and_file(context, tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("gnss_pose_node:\n  ros__parameters:\n    publish_tf: 'yes'\n")
    args = ["--ros-args", "--params-file", str(params)]
    with pytest.raises(ConfigError, match=r"bad\.yaml: 'publish_tf' must be true or false"):
        GnssPoseNode(context=context, cli_args=args)


def test_shipped_config_is_accepted_by_the_node(context):
    from test.conftest import REPO

    args = ["--ros-args", "--params-file", str(REPO / "config" / "car.yaml")]
    node = GnssPoseNode(context=context, cli_args=args)
    assert node.config.publish_tf is False  # fusion_node owns the TF tree
    node.destroy_node()


def test_static_tf_is_latched_and_accumulates(context):
    from geoloc_ros.io.convert import transform_msg
    from geoloc_ros.nodes.base import TF_STATIC_QOS, TfPublisher

    node = rclpy.create_node("static_pub", context=context)
    tf = TfPublisher(node)
    tf.send_static(
        [transform_msg(0.0, "base_link", "imu_link", [0.1, 0, 0.2], [0, 0, 0, 1], MSG_TYPES)]
    )
    tf.send_static(
        [transform_msg(0.0, "base_link", "gnss_link", [0, 0, 1.5], [0, 0, 0, 1], MSG_TYPES)]
    )
    late = rclpy.create_node("late_listener", context=context)  # subscribes after publication
    got: list[TFMessage] = []
    late.create_subscription(TFMessage, "/tf_static", got.append, TF_STATIC_QOS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(late)
    assert spin_until(executor, lambda: bool(got)), "latched /tf_static not delivered"
    assert sorted(t.child_frame_id for t in got[-1].transforms) == ["gnss_link", "imu_link"]
    executor.shutdown()
    late.destroy_node()
    node.destroy_node()
