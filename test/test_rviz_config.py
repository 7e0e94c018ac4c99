"""rviz/geoloc.rviz shows only what exists: every topic a display subscribes to is published
by one of our nodes with the type that display expects (or is a sensor input of the bag
contract, for the camera image), with a QoS the publisher can serve."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from geoloc_ros.io import topics

ROOT = Path(__file__).resolve().parent.parent
DISPLAY_TYPES = {
    "rviz_default_plugins/Map": "nav_msgs/msg/OccupancyGrid",
    "rviz_default_plugins/Path": "nav_msgs/msg/Path",
    "rviz_default_plugins/Odometry": "nav_msgs/msg/Odometry",
    "rviz_default_plugins/PoseWithCovariance": "geometry_msgs/msg/PoseWithCovarianceStamped",
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
}
MSG_PACKAGES = {"Odometry": "nav_msgs", "Path": "nav_msgs", "OccupancyGrid": "nav_msgs",
                "NavSatFix": "sensor_msgs", "PoseWithCovarianceStamped": "geometry_msgs",
                "DiagnosticArray": "diagnostic_msgs", "TFMessage": "tf2_msgs",
                "Clock": "rosgraph_msgs"}  # fmt: skip


def _published() -> dict[str, tuple[str, str]]:
    """'/topic' -> (message type, QoS name) of every create_publisher in the nodes."""
    out = {}
    for f in (ROOT / "geoloc_ros" / "nodes").glob("*.py"):
        text = re.sub(r"\s+", " ", f.read_text())
        for cls, topic, qos in re.findall(r'create_publisher\((\w+), "([^"]+)",? ?(\w*)', text):
            out["/" + topic.lstrip("/")] = (f"{MSG_PACKAGES[cls]}/msg/{cls}", qos)
    return out


def _displays() -> list[dict]:
    doc = yaml.safe_load((ROOT / "rviz" / "geoloc.rviz").read_text())
    return doc["Visualization Manager"]["Displays"]


def test_every_displayed_topic_is_published_with_the_displayed_type():
    published = _published()
    shown = {}
    for d in _displays():
        if "Topic" not in d:
            continue
        topic, want = d["Topic"]["Value"], DISPLAY_TYPES[d["Class"]]
        shown[topic] = want
        if topic in topics.TYPES:  # a sensor input (camera driver or `geoloc replay`)
            assert topics.TYPES[topic] == want, topic
            continue
        assert topic in published, f"{topic} is displayed but no node publishes it"
        assert published[topic][0] == want, (topic, published[topic][0], want)
        if d["Topic"]["Durability Policy"] == "Transient Local":
            assert published[topic][1] == "TF_STATIC_QOS", f"{topic} is not latched"
    # the list: TF, fused odometry, path, both fixes, the image and the map
    assert {"/odometry/global", "/path", "/map_localizer/fix", "/posenet/fix", "/image",
            "/map_localizer/ortho"} <= set(shown)  # fmt: skip
    assert any(d["Class"] == "rviz_default_plugins/TF" for d in _displays())


def test_the_fixed_frame_is_the_map_frame():
    doc = yaml.safe_load((ROOT / "rviz" / "geoloc.rviz").read_text())
    assert doc["Visualization Manager"]["Global Options"]["Fixed Frame"] == "map"
