"""geoloc replay: a bag published over DDS in log-time order with /clock, every message of
every installed type delivered, latched topics served to late joiners, bad arguments refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")

from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, Imu, NavSatFix
from tf2_msgs.msg import TFMessage

from geoloc_ros.errors import BagError, ConfigError
from geoloc_ros.io.bag import BagReader
from geoloc_ros.nodes.bag_player import CLOCK_QOS, LATCHED_QOS, BagPlayer
from geoloc_ros.sim.drive import DriveConfig, simulate_drive
from geoloc_ros.sim.layout import LayoutConfig
from geoloc_ros.sim.world import WorldConfig, write_world
from test.conftest import spin_until

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    root = tmp_path_factory.mktemp("play")
    world, _ = write_world(
        WorldConfig.for_seed(0, layout=LayoutConfig(size_m=200.0)), root / "w", progress=False
    )
    path = root / "car.mcap"
    simulate_drive(world, DriveConfig("car", 1.0, seed=2), path, progress=False)
    return path


def test_replay_delivers_every_message_in_order_with_a_clock(context, bag):
    with BagReader(bag) as r:
        counts = {t.topic: t.count for t in r.topics()}
        first_imu = next(r.messages(["/imu"])).msg
        end_s = r.end_s
    player = BagPlayer(bag, rate=2.0, context=context)
    probe = rclpy.create_node("probe", context=context)
    got = {"/imu": [], "/fix": [], "/image": [], "/clock": []}
    deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)  # keep every one
    probe.create_subscription(Imu, "/imu", got["/imu"].append, deep)
    probe.create_subscription(NavSatFix, "/fix", got["/fix"].append, deep)
    probe.create_subscription(Image, "/image", got["/image"].append, deep)
    probe.create_subscription(Clock, "/clock", got["/clock"].append, CLOCK_QOS)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: player.count_subscribers("/image") > 0)
        worker = threading.Thread(target=player.play)
        worker.start()
        while worker.is_alive():
            ex.spin_once(timeout_sec=0.01)
        spin_until(ex, lambda: len(got["/imu"]) == counts["/imu"], timeout_s=5)
        for topic in ("/imu", "/fix", "/image"):
            assert len(got[topic]) == counts[topic] == player.stats.published[topic], topic
        t_imu = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in got["/imu"]]
        assert np.all(np.diff(t_imu) > 0)
        a = got["/imu"][0].linear_acceleration
        assert (a.x, a.y, a.z) == pytest.approx(
            (first_imu.linear_acceleration.x, first_imu.linear_acceleration.y,
             first_imu.linear_acceleration.z))  # fmt: skip
        assert got["/image"][0].height == 240 and len(got["/image"][0].data) == 240 * 320 * 3
        clock = [c.clock.sec + 1e-9 * c.clock.nanosec for c in got["/clock"]]
        assert len(clock) >= 10 and np.all(np.diff(clock) >= 0)
        assert clock[-1] == pytest.approx(end_s, abs=1e-6)  # the last message's log time
        # 1 s of bag at 2x: paced, so at least half a second of wall time (and no hang)
        assert 0.45 < player.stats.wall_s < 3.0
        late = []  # /tf_static is latched: a subscriber joining after the replay still gets it
        probe.create_subscription(TFMessage, "/tf_static", late.append, LATCHED_QOS)
        assert spin_until(ex, lambda: len(late) == 1)
        assert {t.child_frame_id for t in late[0].transforms} >= {"camera_optical_frame"}
    finally:
        player.destroy_node()
        probe.destroy_node()


def test_replay_refuses_bad_arguments(context, bag, tmp_path):
    with pytest.raises(ConfigError, match="rate"):
        BagPlayer(bag, rate=0.0, context=context)
    with pytest.raises(BagError, match="no readable topic /lidar"):
        BagPlayer(bag, only_topics=["/imu", "/lidar"], context=context)
    with pytest.raises(BagError, match="not found"):
        BagPlayer(tmp_path / "nope.mcap", context=context)
