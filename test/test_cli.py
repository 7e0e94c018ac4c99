"""The `geoloc` command as users call it: fast help, one-line errors, working verbs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from test.conftest import REPO

GEOLOC = Path(sys.prefix) / "bin" / "geoloc"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(GEOLOC), *args], capture_output=True, text=True, timeout=300, cwd=cwd or REPO
    )


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from geoloc_ros import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'gtsam', 'cv2', 'rclpy', 'rosbags', 'matplotlib', 'evo'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_only_working_verbs():
    out = run("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout and "bag" in out.stdout


def test_missing_bag_is_one_line_exit_1(tmp_path):
    out = run("bag", "info", str(tmp_path / "missing.mcap"))
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith("geoloc: error: bag not found")


def test_corrupt_bag_is_one_line_exit_1_and_writes_nothing(tmp_path):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"\x89MCAP0\r\n" + b"garbage" * 100)
    out = run("bag", "convert", str(junk), "--out", str(tmp_path / "out.mcap"))
    assert out.returncode == 1, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mcap"]


def test_bad_argument_exits_non_zero_before_work(tmp_path):
    out = run("demo", "--duration", "-5", "--out", str(tmp_path / "d"))
    assert out.returncode == 2
    assert "--duration must be positive" in out.stderr
    assert not (tmp_path / "d").exists()


def test_unwritable_output_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run("demo", "--duration", "5", "--out", str(blocker / "sub"), "-q")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_demo_end_to_end_measures_the_gnss_baseline(tmp_path):
    out_dir = tmp_path / "demo"
    out = run("demo", "--duration", "30", "--seed", "3", "--out", str(out_dir), "-q")
    assert out.returncode == 0, out.stderr
    assert "GNSS only" in out.stdout
    metrics = json.loads((out_dir / "metrics.json").read_text())
    row = metrics["rows"]["gnss"]
    assert row["n"] == 150  # 5 Hz for 30 s
    # Noise is 1.5 m per horizontal axis: RMSE of the horizontal error is 1.5 * sqrt(2).
    assert 1.6 < row["rmse_h_m"] < 2.7
    assert row["yaw_rmse_deg"] < 1.0  # attitude comes from the IMU through the bag
    gt = np.loadtxt(out_dir / "ground_truth.tum")
    assert gt.shape[1] == 8 and np.abs(gt[:, 1:3]).max() < 130.0  # map frame, not ECEF
    assert (out_dir / "trajectory.png").stat().st_size > 10_000
    info = run("bag", "info", str(out_dir / "quickdrive.mcap"))
    assert "/ground_truth/odom" in info.stdout and "nav_msgs/msg/Odometry" in info.stdout
