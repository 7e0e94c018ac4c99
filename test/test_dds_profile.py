"""config/fastdds_shm.xml: Fast DDS parses it, and the live run uses it unless told not to."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")

from geoloc_ros.config import shipped_config
from geoloc_ros.nodes.live import FASTDDS_PROFILE_ENV, dds_environment

pytestmark = pytest.mark.ros

PUBLISH = (
    "import rclpy; from std_msgs.msg import String; rclpy.init(); "
    "n = rclpy.create_node('profile_check'); n.create_publisher(String, 't', 10); print('up')"
)


def start_participant(profile: str) -> str:
    env = {**dds_environment(None), FASTDDS_PROFILE_ENV: profile}
    proc = subprocess.run([sys.executable, "-c", PUBLISH], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_shipped_profile_parses_and_a_broken_one_is_reported(tmp_path):
    out = start_participant(str(shipped_config("fastdds_shm.xml")))
    assert "up" in out and "XMLPARSER" not in out, out
    broken = tmp_path / "broken.xml"
    broken.write_text("<dds><profiles><participant>")
    assert "XMLPARSER" in start_participant(str(broken))  # the check above can fail


def test_live_environment_keeps_the_users_profile_and_sets_the_domain(monkeypatch):
    monkeypatch.delenv(FASTDDS_PROFILE_ENV, raising=False)
    env = dds_environment(42)
    assert env["ROS_DOMAIN_ID"] == "42"
    assert env[FASTDDS_PROFILE_ENV] == str(shipped_config("fastdds_shm.xml"))
    monkeypatch.setenv(FASTDDS_PROFILE_ENV, "/etc/mine.xml")
    assert dds_environment(None)[FASTDDS_PROFILE_ENV] == "/etc/mine.xml"
