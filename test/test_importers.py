"""Importers: real data sets -> DESIGN bags, checked against the sources and against physics.

The real-data tests skip without ../shared/data; the error-path tests build their own
tiny inputs. ROS 1 bags: test_importers_rosbag1.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoloc_ros.errors import ConfigError, GeolocError
from geoloc_ros.geo.quaternion import matrix_from_xyzw
from geoloc_ros.geo.wgs84 import LocalTangentPlane, ecef_from_geodetic
from geoloc_ros.io.bag import BagReader
from geoloc_ros.io.convert import gnss_from_msg, imu_from_msg, navstate_from_odometry, stamp_of
from geoloc_ros.io.importers import IMPORTERS, SourceError
from geoloc_ros.io.importers.cli import add_parsers
from test.conftest import SHARED_DATA

GEOLOC = Path(sys.prefix) / "bin" / "geoloc"
COMMA = SHARED_DATA / "comma2k19_seg40"
EUROC = SHARED_DATA / "micro_euroc"


def _read(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with BagReader(path) as bag:
        for m in bag.messages():
            out.setdefault(m.topic, []).append(m)
    return out


def _import(name: str, src: Path, out: Path, **options) -> tuple:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sensor data not found at {SHARED_DATA} (developer checkouts only)")
    summary = IMPORTERS[name](**options).run(src, out, progress=False)
    return summary, _read(out)


def _comma(name: str) -> np.ndarray:
    return np.load(COMMA / name, allow_pickle=False)


@pytest.fixture(scope="module")
def comma(tmp_path_factory):
    return _import("comma2k19", COMMA, tmp_path_factory.mktemp("comma") / "c.mcap")


@pytest.fixture(scope="module")
def euroc(tmp_path_factory):
    return _import("euroc", EUROC, tmp_path_factory.mktemp("euroc") / "e.mcap")


# --- comma2k19 ---------------------------------------------------------------------------


def test_comma2k19_topics_rates_and_utc_stamps(shared_data, comma):
    summary, bag = comma
    want = {"/imu", "/fix", "/wheel_odom", "/ground_truth/odom", "/tf_static"}
    assert want | {"/geoloc/source_info"} <= set(bag)
    assert summary.counts["/imu"] == len(bag["/imu"]) == 6256
    for topic, rate, tol in (("/imu", 104.3, 1.0), ("/fix", 9.7, 0.5), ("/wheel_odom", 82.9, 2)):
        t = np.array([stamp_of(m.msg) for m in bag[topic]])
        assert np.all(np.diff(t) > 0)
        assert (len(t) - 1) / (t[-1] - t[0]) == pytest.approx(rate, abs=tol)
        assert 1.53e9 < t[0] < t[-1] < 1.54e9  # UTC, 2018
        assert np.allclose(t, [m.t_log_s for m in bag[topic]], atol=1e-6)
    info = json.loads(bag["/geoloc/source_info"][0].msg.data)
    assert info["dataset"] == "comma2k19"
    assert info["time_offset_s"] == pytest.approx(1533180079.646, abs=0.01)
    tfs = bag["/tf_static"][0].msg.transforms
    assert {(t.header.frame_id, t.child_frame_id) for t in tfs} == {
        ("base_link", "imu_link"),
        ("base_link", "gnss_link"),
    }


def test_comma2k19_imu_is_flu_and_matches_the_source(shared_data, comma):
    _, bag = comma
    imu = [imu_from_msg(m.msg) for m in bag["/imu"]]
    accel = np.array([s.accel_mps2 for s in imu])
    assert accel[:, 2].mean() == pytest.approx(9.8, abs=0.5)  # up: +g in FLU
    assert np.abs(accel[:, 1]).mean() < 1.0
    assert all(s.q_xyzw is None and s.frame_id == "imu_link" for s in imu)
    assert imu[0].cov_accel_3x3 is not None and imu[0].cov_gyro_3x3 is not None
    offset = json.loads(bag["/geoloc/source_info"][0].msg.data)["time_offset_s"]
    raw_t, raw_a = (
        _comma("processed_log/IMU/accelerometer/t"),
        _comma("processed_log/IMU/accelerometer/value"),
    )
    raw_g = _comma("processed_log/IMU/gyro/value")
    flu = np.array([1.0, -1.0, -1.0])
    assert np.allclose([s.t_s for s in imu], raw_t + offset, atol=1e-6)
    assert np.allclose(accel, raw_a * flu)
    assert np.allclose([s.gyro_radps for s in imu], raw_g * flu)  # same times here


def _truth(bag) -> tuple[np.ndarray, list]:
    gt = [navstate_from_odometry(m.msg) for m in bag["/ground_truth/odom"]]
    return np.array([s.t_s for s in gt]), gt


def test_comma2k19_ground_truth_against_gnss_velocity_and_source(shared_data, comma):
    _, bag = comma
    t_gt, gt = _truth(bag)
    assert all(s.frame_id == "earth" and s.child_frame_id == "base_link" for s in gt)
    p = np.array([s.p_m for s in gt])
    v = np.array([s.v_mps for s in gt])
    assert np.allclose(p, _comma("global_pose/frame_positions"), atol=1e-6)
    assert np.allclose(v, _comma("global_pose/frame_velocities"), atol=1e-6)
    # body x axis (forward) along the velocity: the camera FRD -> base FLU handling
    fwd = np.array([matrix_from_xyzw(s.q_xyzw)[:, 0] for s in gt])
    up = np.array([matrix_from_xyzw(s.q_xyzw)[:, 2] for s in gt])
    cos = np.einsum("ij,ij->i", fwd, v) / np.linalg.norm(v, axis=1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 5.0
    assert np.einsum("ij,ij->i", up, p / np.linalg.norm(p, axis=1)[:, None]).min() > 0.99
    fixes = [gnss_from_msg(m.msg) for m in bag["/fix"]]
    t_fix = np.array([f.t_s for f in fixes])
    keep = (t_fix > t_gt[0]) & (t_fix < t_gt[-1])
    p_at = np.stack([np.interp(t_fix[keep], t_gt, p[:, k]) for k in range(3)], axis=1)
    lat, lon, alt = (
        np.array([getattr(f, a) for f in fixes])[keep] for a in ("lat_deg", "lon_deg", "alt_m")
    )
    ltp = LocalTangentPlane(float(lat[0]), float(lon[0]), float(alt[0]))
    d = ltp.enu_from_ecef(ecef_from_geodetic(lat, lon, alt)) - ltp.enu_from_ecef(p_at)
    horiz = np.linalg.norm(d[:, :2], axis=1)
    assert horiz.max() < 5.0 and np.sqrt(np.mean(horiz**2)) < 2.0
    wheel = [navstate_from_odometry(m.msg) for m in bag["/wheel_odom"]]
    t_w = np.array([s.t_s for s in wheel])
    speed = np.array([s.v_mps[0] for s in wheel])
    gt_speed = np.interp(t_w, t_gt, np.linalg.norm(v, axis=1))
    assert np.mean(np.abs(speed - gt_speed)) < 0.5


def test_comma2k19_ground_truth_rates_follow_the_gyro(shared_data, comma):
    """Finite-difference body rates and the FLU gyro agree in sign and shape, per axis."""
    _, bag = comma
    t_gt, gt = _truth(bag)
    imu = [imu_from_msg(m.msg) for m in bag["/imu"]]
    t = np.array([s.t_s for s in imu])
    gyro = np.array([s.gyro_radps for s in imu])
    w = np.array([s.w_radps for s in gt])
    m = (t > t_gt[0]) & (t < t_gt[-1])
    for k in range(3):
        assert np.corrcoef(np.interp(t[m], t_gt, w[:, k]), gyro[m, k])[0, 1] > 0.6


# --- EuRoC ---------------------------------------------------------------------------------


def test_euroc_images_camera_info_and_extrinsics(shared_data, euroc):
    from geoloc_ros.io.importers.euroc import read_sensor_yaml

    _, bag = euroc
    cam = read_sensor_yaml(EUROC / "mav0" / "cam0" / "sensor.yaml")
    images, infos = bag["/image"], bag["/camera_info"]
    assert len(images) == len(infos) == 95
    assert {(m.msg.width, m.msg.height, m.msg.encoding) for m in images} == {(752, 480, "mono8")}
    assert {m.msg.header.frame_id for m in images} == {"camera_optical_frame"}
    fu, fv, cu, cv = cam["intrinsics"]
    assert np.allclose(infos[0].msg.k, [fu, 0, cu, 0, fv, cv, 0, 0, 1])
    assert infos[0].msg.distortion_model == "plumb_bob"
    assert np.allclose(infos[0].msg.d, [*cam["distortion_coefficients"], 0.0])
    names = [ln.split(",")[0] for ln in (EUROC / "mav0/cam0/data.csv").read_text().splitlines()]
    ns = np.array([int(n) for n in names if n and not n.startswith("#")])
    assert np.allclose([stamp_of(m.msg) for m in images], ns * 1e-9, atol=1e-6)
    (tf,) = [t for t in bag["/tf_static"][0].msg.transforms if t.child_frame_id != "imu_link"]
    assert (tf.header.frame_id, tf.child_frame_id) == ("base_link", "camera_optical_frame")
    T = np.array(cam["T_BS"]["data"]).reshape(4, 4)
    r, p = tf.transform.rotation, tf.transform.translation
    assert np.allclose(matrix_from_xyzw([r.x, r.y, r.z, r.w]), T[:3, :3], atol=1e-6)
    assert np.allclose([p.x, p.y, p.z], T[:3, 3])


def test_euroc_imu_and_ground_truth(shared_data, euroc):
    _, bag = euroc
    raw = np.loadtxt(EUROC / "mav0/imu0/data.csv", delimiter=",", comments="#")
    ns = np.loadtxt(EUROC / "mav0/imu0/data.csv", delimiter=",", usecols=0, dtype=np.int64)
    imu = [imu_from_msg(m.msg) for m in bag["/imu"]]
    t = np.array([s.t_s for s in imu])
    assert len(imu) == len(raw) == 29120
    assert (len(t) - 1) / (t[-1] - t[0]) == pytest.approx(200.0, abs=0.5)
    assert np.allclose(t, ns * 1e-9, atol=1e-6)
    assert np.allclose([s.gyro_radps for s in imu], raw[:, 1:4])
    assert np.allclose([s.accel_mps2 for s in imu], raw[:, 4:7])
    tum = np.loadtxt(EUROC / "V101_groundtruth_tum.txt", comments="#")
    t_gt, gt = _truth(bag)
    assert len(gt) == len(tum)
    assert {(s.frame_id, s.child_frame_id) for s in gt} == {("vicon", "base_link")}
    assert np.allclose(t_gt, tum[:, 0], atol=1e-6)
    assert np.allclose([s.p_m for s in gt], tum[:, 1:4])
    w = np.array([s.w_radps for s in gt])
    m = (t > t_gt[0]) & (t < t_gt[-1])
    gyro = np.array([s.gyro_radps for s in imu])
    for k in range(3):  # body = IMU: the finite-difference rates follow the gyro
        assert np.corrcoef(np.interp(t[m], t_gt, w[:, k]), gyro[m, k])[0, 1] > 0.85


# --- errors and CLI --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geoloc")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize("name", sorted(IMPORTERS))
def test_missing_source_names_it(tmp_path, name):
    args = _parser().parse_args(
        ["import", name, str(tmp_path / "nope"), "--out", str(tmp_path / "x.mcap")]
    )
    with pytest.raises(GeolocError, match="nope"):
        args.func(args)
    assert not (tmp_path / "x.mcap").exists()


def test_incomplete_sources_name_the_missing_file(tmp_path):
    acc = tmp_path / "seg" / "processed_log/IMU/accelerometer"
    acc.mkdir(parents=True)
    np.save(acc / "t.npy", np.arange(3.0))
    (acc / "t.npy").rename(acc / "t")
    with pytest.raises(SourceError, match="accelerometer/value"):
        IMPORTERS["comma2k19"]().run(tmp_path / "seg", tmp_path / "c.mcap", progress=False)
    (tmp_path / "eu" / "mav0" / "imu0").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"imu0/data\.csv"):
        IMPORTERS["euroc"]().run(tmp_path / "eu", tmp_path / "e.mcap", progress=False)


def test_output_checked_before_any_work(tmp_path):
    (tmp_path / "exists.mcap").write_bytes(b"")
    for out in (tmp_path / "exists.mcap", Path("/proc/geoloc_test/x.mcap")):
        args = _parser().parse_args(["import", "euroc", str(tmp_path / "nope"), "--out", str(out)])
        with pytest.raises(ConfigError, match=r"exists already|not writable|not a directory"):
            args.func(args)
    with pytest.raises(ConfigError, match="--topic"):
        args = _parser().parse_args(
            ["import", "rosbag1", "x.bag", "--out", "y.mcap", "--topic", "imu"]
        )
        args.func(args)


def test_geoloc_import_missing_source_is_one_line_exit_1(tmp_path):
    if subprocess.run([str(GEOLOC), "import", "--help"], capture_output=True).returncode != 0:
        pytest.skip("`geoloc import` is not wired into geoloc_ros/cli.py yet")
    out = subprocess.run(
        [str(GEOLOC), "import", "comma2k19", "/nonexistent", "--out", str(tmp_path / "x.mcap")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "/nonexistent" in out.stderr
