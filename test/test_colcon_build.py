"""What a ROS user gets from `colcon build`: console scripts, share/ files, ament index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test.conftest import REPO

IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "build", "install", "log", "out", "__pycache__", "*.egg-info", ".*cache"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    colcon = Path(sys.prefix) / "bin" / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment (make test installs it)")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "geoloc_ros", ignore=IGNORE)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [str(colcon), "build", "--base-paths", "src", "--event-handlers", "console_direct-"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return ws / "install" / "geoloc_ros"


def test_only_geoloc_ros_is_built(installed):
    # The tf2_msgs fallback sits behind COLCON_IGNORE: a ROS user keeps the distro's package.
    assert sorted(p.name for p in installed.parent.iterdir() if p.is_dir()) == ["geoloc_ros"]


def test_console_scripts_where_ros2_run_finds_them(installed):
    lib = installed / "lib" / "geoloc_ros"
    for script in ("geoloc", "gnss_pose_node", "fusion_node"):
        assert (lib / script).is_file(), sorted(p.name for p in lib.iterdir())
        assert os.access(lib / script, os.X_OK)


def test_share_has_manifest_launch_config_rviz(installed):
    share = installed / "share" / "geoloc_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "geoloc.launch.py").is_file()
    assert (share / "config" / "car.yaml").is_file() and (share / "config" / "drone.yaml").is_file()
    assert (share / "rviz" / "geoloc.rviz").is_file()


def test_ament_index_registers_the_package(installed):
    marker = installed / "share" / "ament_index" / "resource_index" / "packages" / "geoloc_ros"
    assert marker.is_file()


def test_installed_console_script_runs(installed):
    site = next((installed / "lib").glob("python3*/site-packages"))
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, str(installed / "lib" / "geoloc_ros" / "geoloc"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout
