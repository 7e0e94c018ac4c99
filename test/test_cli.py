"""The `geoloc` command as users call it: fast help, one-line errors, working verbs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_dataset_split_fractions_that_do_not_sum_to_one_are_one_line(tmp_path):
    out = run("sim", "dataset", "--world", str(tmp_path / "w"), "--fractions", "0.5", "0.5",
              "0.5", "--out", str(tmp_path / "d"))  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "split fractions must be positive and sum to 1" in out.stderr
    assert not (tmp_path / "d").exists()
