"""rosbag1 importer: topics mapped by type, messages kept, ambiguity refused with names.

The real bag (../shared/data, skipped when absent) checks counts and content; a tiny ROS 1
bag written here checks the ambiguity error, --topic mappings and rejected-message counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geoloc_ros.errors import ConfigError
from geoloc_ros.io.bag import BagReader
from geoloc_ros.io.convert import imu_from_msg, stamp_of
from geoloc_ros.io.importers.rosbag1 import Rosbag1Importer, plan_mapping
from test.conftest import SHARED_DATA

ROS1_BAG = SHARED_DATA / "robot_localization_bag" / "test1.bag"


def _read(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with BagReader(path) as bag:
        for m in bag.messages():
            out.setdefault(m.topic, []).append(m)
    return out


@pytest.fixture(scope="module")
def ros1(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sensor data not found at {SHARED_DATA} (developer checkouts only)")
    out = tmp_path_factory.mktemp("ros1") / "r.mcap"
    return Rosbag1Importer().run(ROS1_BAG, out, progress=False), _read(out)


def test_rosbag1_maps_by_type_and_keeps_messages(shared_data, ros1):
    summary, bag = ros1
    src: dict[str, list] = _read(ROS1_BAG)
    pairs = {"/imu/data": "/imu", "/fix": "/fix", "/husky_velocity_controller/odom": "/wheel_odom"}
    info = json.loads(bag["/geoloc/source_info"][0].msg.data)
    assert info["mapping"] == pairs
    for s, d in pairs.items():
        rejected = sum(n for k, n in summary.skipped.items() if k.startswith(f"{s}:"))
        assert len(bag[d]) == len(src[s]) - rejected
        assert [m.msg.header.frame_id for m in bag[d]] == [m.msg.header.frame_id for m in src[s]]
        assert [stamp_of(m.msg) for m in bag[d]] == [stamp_of(m.msg) for m in src[s]]
    a, b = imu_from_msg(src["/imu/data"][5].msg), imu_from_msg(bag["/imu"][5].msg)
    assert np.allclose(a.q_xyzw, b.q_xyzw) and np.allclose(a.cov_gyro_3x3, b.cov_gyro_3x3)
    assert bag["/fix"][0].msg.header.frame_id == "/gps"  # kept, leading slash and all
    assert not hasattr(bag["/fix"][0].msg.header, "seq")


def _tiny_ros1_bag(path: Path) -> None:
    """Two Imu topics (one message of /imu_a has a NaN) and an Odometry named /gt/odom."""
    from rosbags.convert.converter import default_message
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    with Writer(path) as w:
        kinds = {"/imu_a": "Imu", "/imu_b": "Imu", "/gt/odom": "Odometry"}
        pkgs = {"Imu": "sensor_msgs/msg/Imu", "Odometry": "nav_msgs/msg/Odometry"}
        conns = {t: w.add_connection(t, pkgs[k], typestore=ts) for t, k in kinds.items()}
        for i in range(5):
            for topic, kind in kinds.items():
                msg = default_message(ts, pkgs[kind])
                msg.header.seq, msg.header.stamp.sec, msg.header.frame_id = i, 100 + i, "imu"
                if kind == "Imu":
                    msg.orientation.w, msg.orientation_covariance[0] = 1.0, -1.0
                    msg.linear_acceleration.z = float("nan") if i == 2 else 9.81
                else:
                    msg.pose.pose.orientation.w, msg.pose.pose.position.x = 1.0, float(i)
                raw = ts.serialize_ros1(msg, pkgs[kind])
                w.write(conns[topic], (100 + i) * 10**9, raw)


def test_rosbag1_ambiguous_topics_need_mappings(tmp_path):
    src = tmp_path / "two_imus.bag"
    _tiny_ros1_bag(src)
    with pytest.raises(ConfigError, match=r"/imu_a.*/imu_b"):
        Rosbag1Importer().run(src, tmp_path / "a.mcap", progress=False)
    assert not (tmp_path / "a.mcap").exists()
    s = Rosbag1Importer({"/imu_a": "/imu", "/imu_b": ""}).run(src, tmp_path / "b.mcap", False)
    assert s.counts["/imu"] == 4 and s.skipped == {"/imu_a: nan": 1}
    assert s.counts["/ground_truth/odom"] == 5  # named gt: ground truth, not wheel odometry
    bag = _read(tmp_path / "b.mcap")
    assert "/imu_b" not in bag and {m.msg.header.frame_id for m in bag["/imu"]} == {"imu"}
    info = json.loads(bag["/geoloc/source_info"][0].msg.data)
    assert info["mapping"] == {"/imu_a": "/imu", "/gt/odom": "/ground_truth/odom"}
    assert info["dropped"] == {"/imu_b": "dropped by --topic"}


def test_plan_mapping_rules():
    types = {
        "/cam/image_raw": "sensor_msgs/msg/Image",
        "/cam/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
        "/tf_static": "tf2_msgs/msg/TFMessage",
        "/odom": "nav_msgs/msg/Odometry",
        "/odometry/groundtruth": "nav_msgs/msg/Odometry",
        "/rosout": "rosgraph_msgs/msg/Log",
    }
    mapping, dropped = plan_mapping(types, {})
    assert mapping == {
        "/cam/image_raw": "/image",
        "/tf_static": "/tf_static",
        "/odom": "/wheel_odom",
        "/odometry/groundtruth": "/ground_truth/odom",
    }
    assert set(dropped) == {"/cam/image_raw/compressed", "/rosout"}
    with pytest.raises(ConfigError, match="not in the bag"):
        plan_mapping(types, {"/nope": "/imu"})
