"""Bag reading (mcap, sqlite3, ROS 1) and atomic mcap writing with rosbags."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from geoloc_ros.errors import BagError
from geoloc_ros.io.bag import BagReader, BagWriter, convert_bag
from geoloc_ros.io.convert import gnss_from_msg, msg_from_gnss, msg_from_imu
from geoloc_ros.io.msgtypes import RosbagsTypes
from geoloc_ros.types import GnssFix, ImuSample

TYPES = RosbagsTypes()


def _imu(t: float):
    return msg_from_imu(ImuSample(t, [0, 0, 0.1], [0, 0, 9.8]), TYPES)


def _fix(t: float, lat: float = 47.0):
    return msg_from_gnss(GnssFix(t, lat, 8.0, 400.0, cov_enu_3x3=np.eye(3)), TYPES)


def write_small(path, n: int = 10):
    with BagWriter(path) as bag:
        bag.add_topic("/imu", "sensor_msgs/msg/Imu")
        bag.add_topic("/fix", "sensor_msgs/msg/NavSatFix")
        bag.add_topic("/tf_static", "tf2_msgs/msg/TFMessage", latched=True)
        for i in range(n):
            bag.write("/imu", 10.0 + 0.1 * i, _imu(10.0 + 0.1 * i))
            if i % 5 == 0:
                bag.write("/fix", 10.0 + 0.1 * i, _fix(10.0 + 0.1 * i, lat=47.0 + i))


def test_mcap_file_round_trip(tmp_path):
    path = tmp_path / "drive.mcap"
    write_small(path)
    assert path.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp dir removed
    with BagReader(path) as bag:
        topics = {t.topic: (t.msgtype, t.count) for t in bag.topics()}
        assert topics["/imu"] == ("sensor_msgs/msg/Imu", 10)
        assert topics["/fix"] == ("sensor_msgs/msg/NavSatFix", 2)
        fixes = [gnss_from_msg(m.msg) for m in bag.messages(["/fix"])]
        times = [m.t_log_s for m in bag.messages()]
    assert [f.lat_deg for f in fixes] == [47.0, 52.0]
    assert times == sorted(times)
    assert bag.start_s == pytest.approx(10.0)


def test_rosbag2_directory_output(tmp_path):
    path = tmp_path / "drive_dir"
    write_small(path)
    assert (path / "metadata.yaml").is_file()
    with BagReader(path) as bag:
        assert sum(t.count for t in bag.topics()) == 12


def test_sqlite3_bag_is_read(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = tmp_path / "sq"
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conn = w.add_connection("/imu", "sensor_msgs/msg/Imu", typestore=TYPES.typestore)
        w.write(conn, 5_000_000_000, TYPES.typestore.serialize_cdr(_imu(5.0), conn.msgtype))
    with BagReader(path) as bag:
        (m,) = list(bag.messages())
    assert m.msg.angular_velocity.z == pytest.approx(0.1)


def test_ros1_bag_is_read_and_converted(tmp_path):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ros1 = get_typestore(Stores.ROS1_NOETIC)
    Fix = ros1.types["sensor_msgs/msg/NavSatFix"]
    Header = ros1.types["std_msgs/msg/Header"]
    Time = ros1.types["builtin_interfaces/msg/Time"]
    Status = ros1.types["sensor_msgs/msg/NavSatStatus"]
    msg = Fix(
        header=Header(seq=1, stamp=Time(sec=3, nanosec=0), frame_id="gps"),
        status=Status(status=0, service=1),
        latitude=42.0,
        longitude=-71.0,
        altitude=10.0,
        position_covariance=np.eye(3).reshape(-1),
        position_covariance_type=2,
    )
    src = tmp_path / "old.bag"
    with Writer(src) as w:
        conn = w.add_connection("/fix", "sensor_msgs/msg/NavSatFix", typestore=ros1)
        w.write(conn, 3_000_000_000, ros1.serialize_ros1(msg, conn.msgtype))
    with BagReader(src) as bag:
        (m,) = list(bag.messages())
        assert gnss_from_msg(m.msg).lat_deg == 42.0
    out = tmp_path / "new.mcap"
    topics = convert_bag(src, out)
    assert [(t.topic, t.count) for t in topics] == [("/fix", 1)]
    with BagReader(out) as bag:
        (m,) = list(bag.messages())
        assert not hasattr(m.msg.header, "seq")  # ROS 2 definition
        assert gnss_from_msg(m.msg).lon_deg == -71.0


def test_unknown_types_are_skipped_with_one_warning(tmp_path, caplog):
    import sqlite3

    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("int32 a", "my_pkg/msg/Secret"))
    store.register(get_types_from_msg("int32 b", "my_pkg/msg/Other"))
    path = tmp_path / "old_defs"
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        known = w.add_connection("/imu", "sensor_msgs/msg/Imu", typestore=store)
        w.add_connection("/mystery", "my_pkg/msg/Secret", typestore=store)
        w.add_connection("/other", "my_pkg/msg/Other", typestore=store)
        w.write(known, 1, store.serialize_cdr(_imu(1.0), "sensor_msgs/msg/Imu"))
    # Recorders before Iron stored no definitions: strip them, as such a bag would be.
    (db,) = path.glob("*.db3")
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM message_definitions")
        con.execute("UPDATE topics SET type_description_hash = ''")
    with caplog.at_level(logging.WARNING), BagReader(path) as bag:
        assert [t.topic for t in bag.topics()] == ["/imu"]
        assert len(list(bag.messages())) == 1
    warnings = [r for r in caplog.records if "unknown message types" in r.getMessage()]
    assert len(warnings) == 1
    assert "/mystery (my_pkg/msg/Secret)" in warnings[0].getMessage()
    assert "/other" in warnings[0].getMessage()


def test_missing_and_corrupt_bags_raise_bag_error(tmp_path):
    with pytest.raises(BagError, match="not found"):
        BagReader(tmp_path / "nope.mcap").__enter__()
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"this is not an mcap file" * 10)
    with pytest.raises(BagError), BagReader(junk) as bag:
        list(bag.messages())


def test_truncated_mcap_raises_bag_error(tmp_path):
    path = tmp_path / "drive.mcap"
    write_small(path, n=200)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError), BagReader(path) as bag:
        list(bag.messages())


def test_writer_is_atomic_on_failure_and_refuses_overwrite(tmp_path):
    path = tmp_path / "drive.mcap"

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom), BagWriter(path) as bag:
        bag.add_topic("/imu", "sensor_msgs/msg/Imu")
        bag.write("/imu", 1.0, _imu(1.0))
        raise Boom
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    write_small(path)
    with pytest.raises(BagError, match="exists already"):
        write_small(path)
    with pytest.raises(BagError, match="not added"), BagWriter(tmp_path / "b.mcap") as bag:
        bag.write("/nope", 1.0, _imu(1.0))


def test_real_ros1_bag_from_shared_data(shared_data):
    path = shared_data / "robot_localization_bag" / "test1.bag"
    with BagReader(path) as bag:
        topics = {t.topic: t for t in bag.topics()}
        assert topics["/fix"].msgtype == "sensor_msgs/msg/NavSatFix"
        assert topics["/imu/data"].count > 5000
        fixes = []
        for m in bag.messages(["/fix"]):
            try:
                fixes.append(gnss_from_msg(m.msg))
            except Exception as exc:  # the real bag's fixes must all convert or be rejected
                assert type(exc).__name__ == "InputRejected"
    good = [f for f in fixes if f.has_fix]
    assert len(good) > 100
    assert abs(np.median([f.lat_deg for f in good]) - 42.3758) < 0.01
