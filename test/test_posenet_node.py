"""posenet_node in-process over DDS: images in, calibrated fixes out, bad frames counted."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image

from geoloc_ros.errors import ConfigError
from geoloc_ros.io.image import msg_from_image
from geoloc_ros.nodes.base import MSG_TYPES, RELIABLE_QOS, SENSOR_QOS
from geoloc_ros.nodes.posenet_node import PoseNetNode
from geoloc_ros.posenet.train import train_posenet
from test.conftest import spin_until
from test.posenet_fixtures import DATUM, pattern, write_posed_folder
from test.test_posenet import TINY

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    data = write_posed_folder(tmp_path_factory.mktemp("posed") / "area")
    out = tmp_path_factory.mktemp("model") / "m"
    train_posenet(data, out, TINY, progress=False)
    return out


def _node(context, model_dir, **params):
    args = ["--ros-args", "-p", f"model:={model_dir}", "-p", "samples:=8"]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    return PoseNetNode(context=context, cli_args=args)


def test_images_give_fixes_and_bad_frames_are_counted(context, model_dir):
    node = _node(context, model_dir, max_sigma_m=1e6)  # the toy model is far from certain
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)
    probe = rclpy.create_node("probe", context=context)
    ex.add_node(probe)
    fixes, diags = [], []
    probe.create_subscription(PoseWithCovarianceStamped, "posenet/fix", fixes.append, RELIABLE_QOS)
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    pub = probe.create_publisher(Image, "image", SENSOR_QOS)
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0)
        assert spin_until(ex, lambda: node._pub.get_subscription_count() > 0)
        good = msg_from_image(pattern(1.0, 2.0, 0.3), 100.0, "camera_optical_frame", MSG_TYPES)
        pub.publish(good)
        assert spin_until(ex, lambda: len(fixes) >= 1), node.counts
        fix = fixes[0]
        assert fix.header.frame_id == "map"
        assert fix.header.stamp.sec == 100
        assert min(fix.pose.covariance[i * 7] for i in range(6)) > 0
        mono = msg_from_image(pattern(1.0, 2.0, 0.3)[:, :, 0], 101.0, "cam", MSG_TYPES)
        pub.publish(mono)  # a mono image on a colour model: rejected, not a crash
        assert spin_until(ex, lambda: node.diag.inputs["image"].rejected["encoding"] == 1)
        pub.publish(good)
        assert spin_until(ex, lambda: len(fixes) >= 2)

        def status():
            for arr in reversed(diags):
                for st in arr.status:
                    if st.name.endswith(": posenet"):
                        return {kv.key: kv.value for kv in st.values}
            return None

        assert spin_until(ex, lambda: (status() or {}).get("published") == "2", timeout_s=5)
    finally:
        node.destroy_node()
        probe.destroy_node()


def test_uncertain_fixes_are_withheld(context, model_dir):
    node = _node(context, model_dir, max_sigma_m=0.001)
    node.process(msg_from_image(pattern(0, 0, 0), 5.0, "cam", MSG_TYPES), None)
    assert node.counts["withheld"] == 1 and node.counts["published"] == 0
    node.destroy_node()


def test_busy_node_drops_frames_instead_of_queueing(context, model_dir):
    node = _node(context, model_dir)
    msg = msg_from_image(pattern(0, 0, 0), 5.0, "cam", MSG_TYPES)
    with node._worker._cv:  # hold the worker: frames arriving now overwrite the slot
        for _ in range(5):
            node._on_image(msg)
    assert node.counts["dropped"] == 4
    node.destroy_node()


def test_model_of_another_area_is_refused(context, model_dir):
    with pytest.raises(ConfigError, match="another area"):
        _node(context, model_dir, datum="[48.8566, 2.3522, 35.0]")
    node = _node(context, model_dir, datum=str(DATUM))
    node.destroy_node()
