"""`geoloc replay BAG`: publish a rosbag2 or ROS 1 bag over ROS with /clock (a `ros2 bag
play` for machines without ROS), so the nodes run on it live with use_sim_time.

Messages go out in log-time order at `rate` x real time, serialised to CDR by rosbags
and published raw, so any type the installed message packages know is carried as is;
topics of unknown types are listed once and skipped. /tf_static and the latched info
topics are published transient-local, like the recorder offered them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from geoloc_ros.errors import BagError, ConfigError
from geoloc_ros.io import topics
from geoloc_ros.io.bag import BagReader
from geoloc_ros.io.msgtypes import RclpyTypes

LATCHED_TOPICS = {topics.TF_STATIC, topics.SIM_INFO, topics.SOURCE_INFO}
PLAY_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)  # fmt: skip
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
CLOCK_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.BEST_EFFORT)  # fmt: skip


@dataclass
class PlayStats:
    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)  # topic -> unknown type
    clock_ticks: int = 0
    loops: int = 0
    wall_s: float = 0.0


class BagPlayer(Node):
    """Publishes one bag; `play()` blocks until the end (or `stop()`), looping if asked."""

    def __init__(self, bag: str | Path, rate: float = 1.0, loop: bool = False,
                 only_topics: Sequence[str] = (), clock_hz: float = 100.0,
                 **node_kwargs) -> None:  # fmt: skip
        super().__init__("geoloc_replay", **node_kwargs)
        if not rate > 0:
            raise ConfigError(f"--rate must be positive, got {rate}")
        if not clock_hz > 0:
            raise ConfigError(f"--clock-hz must be positive, got {clock_hz}")
        self.bag = Path(bag)
        self.rate, self.loop, self.clock_period_s = float(rate), loop, 1.0 / clock_hz
        self.only = set(only_topics)
        self.stats = PlayStats()
        self._stopped = False
        from rosgraph_msgs.msg import Clock  # noqa: PLC0415

        self._clock_cls = Clock
        self._clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS)
        self._pubs: dict[str, object] = {}
        with BagReader(self.bag) as reader:
            self.stats.skipped_topics.update(reader.skipped)
            infos = [t for t in reader.topics() if not self.only or t.topic in self.only]
        if self.only - {t.topic for t in infos}:
            missing = sorted(self.only - {t.topic for t in infos})
            raise BagError(f"{self.bag}: no readable topic {', '.join(missing)}")
        types = RclpyTypes()
        for t in infos:
            try:
                cls = types.get(t.msgtype)
            except (ImportError, AttributeError, ValueError):
                self.stats.skipped_topics[t.topic] = t.msgtype
                continue
            qos = LATCHED_QOS if t.topic in LATCHED_TOPICS else PLAY_QOS
            self._pubs[t.topic] = self.create_publisher(cls, t.topic, qos)
        if self.stats.skipped_topics:
            listing = ", ".join(f"{k} ({v})" for k, v in sorted(self.stats.skipped_topics.items()))
            self.get_logger().warning(f"not published (type not installed): {listing}")
        if not self._pubs:
            raise BagError(f"{self.bag}: nothing to publish")

    def subscription_count(self, topic: str) -> int:
        """Subscribers matched on one of the bag's topics (0 for a topic it does not play)."""
        pub = self._pubs.get(topic)
        return pub.get_subscription_count() if pub is not None else 0

    def stop(self) -> None:
        self._stopped = True

    def play(self, progress: Callable[[float, float], None] | None = None) -> PlayStats:
        """Publish the bag in real time / rate; `progress(t_bag_s, duration_s)` per message."""
        t_wall0 = time.monotonic()
        while not self._stopped:
            self._play_once(progress)
            self.stats.loops += 1
            if not self.loop:
                break
        self.stats.wall_s = time.monotonic() - t_wall0
        return self.stats

    def _play_once(self, progress) -> None:
        with BagReader(self.bag) as reader:
            store = reader.typestore
            t0, duration = reader.start_s, reader.end_s - reader.start_s
            wall0 = time.monotonic()
            next_clock = t0
            for m in reader.messages(list(self._pubs)):
                if self._stopped:
                    return
                due = wall0 + (m.t_log_s - t0) / self.rate
                while True:  # wait for the message's time, ticking /clock meanwhile
                    now = time.monotonic()
                    t_bag = t0 + (now - wall0) * self.rate
                    if t_bag >= next_clock:
                        self._tick(min(t_bag, m.t_log_s))
                        next_clock = t_bag + self.clock_period_s * self.rate
                    if now >= due or self._stopped:
                        break
                    time.sleep(min(due - now, self.clock_period_s))
                self._tick(m.t_log_s)
                raw = store.serialize_cdr(m.msg, m.msgtype)
                self._pubs[m.topic].publish(bytes(raw))
                self.stats.published[m.topic] = self.stats.published.get(m.topic, 0) + 1
                if progress is not None:
                    progress(m.t_log_s - t0, duration)

    def _tick(self, t_s: float) -> None:
        msg = self._clock_cls()
        msg.clock.sec = int(t_s)
        msg.clock.nanosec = round((t_s - int(t_s)) * 1e9) % 1_000_000_000
        self._clock_pub.publish(msg)
        self.stats.clock_ticks += 1


def main_replay(bag: str, rate: float, loop: bool, only_topics: Sequence[str],
                clock_hz: float, progress: bool) -> int:  # fmt: skip
    """The `geoloc replay` body: init rclpy, play, shut down; Ctrl-C stops cleanly."""
    import rclpy  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    rclpy.init()
    player = None
    try:
        player = BagPlayer(bag, rate, loop, only_topics, clock_hz)
        bar = tqdm(total=0, unit="s", desc="replay", disable=not progress,
                   bar_format="{desc}: {n:.1f}/{total:.1f} s bag time")  # fmt: skip

        def show(t: float, duration: float) -> None:
            bar.total, bar.n = duration, t
            bar.refresh()

        stats = player.play(show)
        bar.close()
        n = sum(stats.published.values())
        print(f"replayed {n} messages on {len(stats.published)} topics in {stats.wall_s:.1f} s"
              f" ({stats.loops} pass{'es' if stats.loops != 1 else ''})")  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        if player is not None:
            player.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
