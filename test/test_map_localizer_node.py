"""map_localizer_node in-process over DDS: a frame with prior and gravity gives a planar fix;
missing calibration, missing gravity and priors off the map are counted, not crashes."""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")

from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image, Imu

from geoloc_ros.io.image import msg_from_image
from geoloc_ros.neuralmap.tiles import build_map
from geoloc_ros.nodes.base import MSG_TYPES, RELIABLE_QOS, SENSOR_QOS, TF_STATIC_QOS
from geoloc_ros.nodes.map_localizer_node import MapLocalizerNode
from test.conftest import spin_until
from test.test_neuralmap import DATUM, _utm_geotiff, car_bundle  # noqa: F401 (fixture)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def map_dir(tmp_path_factory, car_bundle):  # noqa: F811
    root = tmp_path_factory.mktemp("nmap")
    src = _utm_geotiff(root / "ortho.tif")
    build_map(root / "map", car_bundle, ortho=src, datum=DATUM, progress=False)
    return root / "map"


def _stamp(msg, t):
    msg.header.stamp.sec = int(t)
    msg.header.stamp.nanosec = int((t % 1) * 1e9)
    return msg


def _info(t):
    m = CameraInfo(width=320, height=240)
    m.k = [160.0, 0.0, 159.5, 0.0, 160.0, 119.5, 0.0, 0.0, 1.0]
    m.header.frame_id = "camera_optical_frame"
    return _stamp(m, t)


def _imu(t):
    m = Imu()
    m.linear_acceleration.z = 9.81
    m.orientation_covariance[0] = -1.0
    return _stamp(m, t)


def _odom(t, x, y):
    m = Odometry()
    m.header.frame_id = "map"
    m.pose.pose.position.x, m.pose.pose.position.y = x, y
    m.pose.pose.orientation.w = 1.0
    m.pose.covariance = list(np.diag([25.0, 25.0, 1.0, 0.1, 0.1, 10.0]).ravel())
    return _stamp(m, t)


def test_frames_give_planar_fixes_and_bad_situations_are_counted(context, map_dir, car_bundle):  # noqa: F811
    args = ["--ros-args", "-p", f"model:={car_bundle}", "-p", f"map:={map_dir}",
            "-p", "publish_multimodal:=true", "-p", "window_m:=16.0"]  # fmt: skip
    node = MapLocalizerNode(context=context, cli_args=args)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)
    probe = rclpy.create_node("probe", context=context)
    ex.add_node(probe)
    fixes = []
    probe.create_subscription(PoseWithCovarianceStamped, "map_localizer/fix", fixes.append,
                              RELIABLE_QOS)  # fmt: skip
    pub_img = probe.create_publisher(Image, "image", SENSOR_QOS)
    pub_info = probe.create_publisher(CameraInfo, "camera_info", SENSOR_QOS)
    pub_imu = probe.create_publisher(Imu, "imu", SENSOR_QOS)
    pub_odom = probe.create_publisher(Odometry, "odometry/global", RELIABLE_QOS)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    rejected = node.diag.inputs["image"].rejected
    # warmed up before subscribing: the full-yaw templates exist before the first frame
    assert {node.config.yaw_bins, node.config.yaw_prior_bins} <= set(node.localizer._full)
    try:
        assert spin_until(ex, lambda: pub_img.get_subscription_count() > 0)
        assert spin_until(ex, lambda: node._pub.get_subscription_count() > 0)
        pub_img.publish(msg_from_image(img, 10.0, "camera_optical_frame", MSG_TYPES))
        assert spin_until(ex, lambda: rejected["camera_info"] == 1)  # uncalibrated
        pub_info.publish(_info(10.0))
        assert spin_until(ex, lambda: node._info is not None)
        pub_img.publish(msg_from_image(img, 10.1, "camera_optical_frame", MSG_TYPES))
        assert spin_until(ex, lambda: rejected["gravity"] == 1)
        pub_imu.publish(_imu(10.1))
        pub_odom.publish(_odom(10.1, 500.0, 0.0))  # far off the 120 m map
        assert spin_until(ex, lambda: node._priors.state and node._gravity.g_base is not None)
        pub_img.publish(msg_from_image(img, 10.2, "camera_optical_frame", MSG_TYPES))
        assert spin_until(ex, lambda: rejected["outside_map"] == 1)
        pub_odom.publish(_odom(10.2, 5.0, -3.0))
        assert spin_until(ex, lambda: node._priors.state and node._priors.state[1].xy_m[0] == 5.0)
        pub_img.publish(msg_from_image(img, 10.3, "camera_optical_frame", MSG_TYPES))
        assert spin_until(ex, lambda: len(fixes) >= 1, timeout_s=20), node.counts
        f = fixes[0]
        assert f.header.frame_id == "map" and f.header.stamp.sec == 10
        cov = np.array(f.pose.covariance).reshape(6, 6)
        assert cov[2, 2] == cov[3, 3] == cov[4, 4] == 1e6  # z, roll, pitch left free
        assert cov[0, 0] > 0 and cov[1, 1] > 0 and cov[5, 5] > 0
        assert abs(f.pose.pose.position.x - 5.0) <= 8.0 + 1e-6  # inside the 16 m window
        # the orthophoto is latched for RViz: a subscriber joining late still gets it
        grids = []
        probe.create_subscription(OccupancyGrid, "map_localizer/ortho", grids.append,
                                  TF_STATIC_QOS)  # fmt: skip
        assert spin_until(ex, lambda: len(grids) == 1)
        g = grids[0]
        card = node.localizer.store.card
        assert g.header.frame_id == "map" and g.info.resolution == card["res_m"]
        assert (g.info.width, g.info.height) == (card["width"], card["height"])
        assert g.info.origin.position.x == card["x_west_m"]
        grey = np.array(g.data, np.int8).view(np.uint8).reshape(g.info.height, g.info.width)
        # the white 8 m square of the test orthophoto sits around ENU (12, -20)
        col = int((12.0 - card["x_west_m"]) / card["res_m"])
        row = int((-20.0 - g.info.origin.position.y) / card["res_m"])
        assert grey[row, col] > 200 and np.median(grey) < 160
    finally:
        node.destroy_node()
        probe.destroy_node()
