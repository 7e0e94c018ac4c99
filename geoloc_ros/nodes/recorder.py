"""A small `ros2 bag record` for machines without ROS: raw CDR of chosen topics, stamped
with the node's clock (sim time under use_sim_time), written to an mcap at the end."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from geoloc_ros.io.bag import BagWriter
from geoloc_ros.io.msgtypes import RclpyTypes

RECORD_QOS = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE)  # fmt: skip


class Recorder(Node):
    """Subscribes raw to `topics` ((name, ros type "pkg/msg/Type")) and keeps every message."""

    def __init__(self, topics: Sequence[tuple[str, str]], **node_kwargs) -> None:
        super().__init__("geoloc_record", **node_kwargs)
        self.types = dict(topics)
        self.messages: list[tuple[str, float, bytes]] = []
        self._lock = threading.Lock()
        types = RclpyTypes()
        self.subs = {}
        for name, msgtype in topics:
            keep = self._keeper(name)
            self.subs[name] = self.create_subscription(
                types.get(msgtype), name, keep, RECORD_QOS, raw=True
            )

    def _keeper(self, topic: str):
        def keep(raw: bytes) -> None:
            t = self.get_clock().now().nanoseconds * 1e-9
            with self._lock:
                self.messages.append((topic, t, bytes(raw)))

        return keep

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = dict.fromkeys(self.types, 0)
            for topic, _, _ in self.messages:
                out[topic] += 1
        return out

    def write(self, path: str | Path) -> Path:
        """Every message kept so far, in arrival order, to an mcap (rosbags' typestore)."""
        with self._lock:
            messages = sorted(self.messages, key=lambda m: m[1])
        with BagWriter(path, overwrite=True) as bag:
            for name, msgtype in self.types.items():
                bag.add_topic(name, msgtype)
            for topic, t_s, raw in messages:
                bag.write_raw(topic, t_s, raw)
        return Path(path)
