"""Simulated drives and flights: the bag's topics, frames and truth, reproducibility, the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Point

from geoloc_ros.geo.quaternion import matrix_from_xyzw
from geoloc_ros.io import topics
from geoloc_ros.io.bag import BagReader
from geoloc_ros.io.convert import gnss_from_msg, navstate_from_odometry, stamp_of
from geoloc_ros.sim.drive import T0_S, DriveConfig, simulate_drive
from geoloc_ros.sim.layout import LayoutConfig, Surface
from geoloc_ros.sim.world import World, WorldConfig, write_world
from test.conftest import REPO

GEOLOC = Path(sys.prefix) / "bin" / "geoloc"
DURATION_S = 3.0
LATENCY_S = 0.1  # GnssConfig.latency_s: stamps are measurement time + latency


# layout.py passes shapely's `normalized` positionally (parks); harmless, reported upstream
def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(GEOLOC), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    cfg = WorldConfig.for_seed(0, layout=LayoutConfig(size_m=200.0))
    world, _ = write_world(cfg, tmp_path_factory.mktemp("world") / "w", progress=False)
    return world


def _drive(world: World, tmp_path_factory, platform: str, seed: int = 0, **kw) -> Path:
    cfg = DriveConfig(platform=platform, duration_s=DURATION_S, seed=seed, **kw)
    out = tmp_path_factory.mktemp(f"{platform}{seed}") / "drive.mcap"  # one name everywhere
    summary = simulate_drive(world, cfg, out, progress=False)
    assert summary.bag == out and summary.bytes == out.stat().st_size
    return out


@pytest.fixture(scope="module")
def car_bag(world, tmp_path_factory) -> Path:
    return _drive(world, tmp_path_factory, "car")


@pytest.fixture(scope="module")
def drone_bag(world, tmp_path_factory) -> Path:
    return _drive(world, tmp_path_factory, "drone")


def read(bag: Path) -> tuple[dict[str, str], dict[str, list]]:
    """(topic -> type, topic -> [(log time, message)])"""
    with BagReader(bag) as reader:
        types = {t.topic: t.msgtype for t in reader.topics()}
        msgs: dict[str, list] = {}
        for m in reader.messages():
            msgs.setdefault(m.topic, []).append((m.t_log_s, m.msg))
    return types, msgs


def _T(tf) -> np.ndarray:
    t, q = tf.transform.translation, tf.transform.rotation
    T = np.eye(4)
    T[:3, :3] = matrix_from_xyzw([q.x, q.y, q.z, q.w])
    T[:3, 3] = (t.x, t.y, t.z)
    return T


@pytest.mark.parametrize("platform", ["car", "drone"])
def test_bag_has_the_design_topics_frames_and_truth(platform, world, car_bag, drone_bag):
    bag = car_bag if platform == "car" else drone_bag
    cfg = DriveConfig(platform=platform, duration_s=DURATION_S, seed=0)
    types, msgs = read(bag)
    want = {t: m for t, m in topics.TYPES.items() if platform == "car" or t != topics.WHEEL_ODOM}
    assert types == want
    assert set(msgs) == set(want)  # every topic carries messages

    # camera: 320x240 rgb8 at 10 Hz, CameraInfo with the camera's K
    images = msgs[topics.IMAGE]
    assert len(images) == int(DURATION_S * 10) + 1
    for _, img in images:
        assert (img.width, img.height, img.encoding) == (320, 240, "rgb8")
        assert img.step == 3 * 320 and len(img.data) == 3 * 320 * 240
        assert img.header.frame_id == "camera_optical_frame"
    stamps = np.array([stamp_of(img) for _, img in images])
    assert stamps[0] == pytest.approx(T0_S)
    assert np.diff(stamps) == pytest.approx(0.1, abs=1e-6)
    assert np.array([t for t, _ in images]) == pytest.approx(stamps, abs=1e-6)
    pixels = np.frombuffer(bytes(images[0][1].data), np.uint8)
    assert pixels.std() > 5  # a picture, not a blank
    infos = msgs[topics.CAMERA_INFO]
    assert len(infos) == len(images)
    for _, info in infos:
        assert (info.width, info.height) == (320, 240)
        assert np.asarray(info.k).reshape(3, 3) == pytest.approx(cfg.camera.K)
        assert info.header.frame_id == "camera_optical_frame"

    # extrinsics: base_link -> imu, gnss, camera_link -> optical frame (REP-103 chain)
    ((_, tf_msg),) = msgs[topics.TF_STATIC]
    tfs = {(tf.header.frame_id, tf.child_frame_id): tf for tf in tf_msg.transforms}
    assert set(tfs) == {
        ("base_link", "imu_link"),
        ("base_link", "gnss_link"),
        ("base_link", "camera_link"),
        ("camera_link", "camera_optical_frame"),
    }
    T_base_link = _T(tfs["base_link", "camera_link"])
    T_base_opt = T_base_link @ _T(tfs["camera_link", "camera_optical_frame"])
    assert T_base_opt == pytest.approx(cfg.mount.T_base_cam, abs=1e-9)
    lever = _T(tfs["base_link", "gnss_link"])[:3, 3]

    ((_, info_msg),) = msgs[topics.SIM_INFO]
    info = json.loads(info_msg.data)
    assert info["world"]["layout_sha256"] == world.fingerprint()
    assert info["world"]["seed"] == world.cfg.seed
    assert info["world"]["path"] == str(world.path)
    assert info["drive"]["seed"] == 0 and info["drive"]["platform"] == platform
    assert info["gnss"]["lever_arm_base_m"] == pytest.approx(lever)

    # ground truth: ECEF in frame earth, on the road (car) or above the town (drone)
    truth = [navstate_from_odometry(m) for _, m in msgs[topics.GROUND_TRUTH]]
    assert len(truth) == int(DURATION_S * 50) + 1
    assert {(s.frame_id, s.child_frame_id) for s in truth} == {("earth", "base_link")}
    assert truth[0].t_s == pytest.approx(T0_S)
    assert np.linalg.norm(truth[0].p_m) > 6.3e6  # geocentric, not map
    t_truth = np.array([s.t_s for s in truth])
    p_enu = world.ltp.enu_from_ecef(np.array([s.p_m for s in truth]))
    R_enu_ecef = world.ltp.R_enu_ecef
    R_world_base = np.array([R_enu_ecef @ matrix_from_xyzw(s.q_xyzw) for s in truth])
    assert np.abs(p_enu[:, :2]).max() < world.half_m
    ground = world.terrain.height(p_enu[:, 0], p_enu[:, 1])
    if platform == "car":
        assert np.abs(p_enu[:, 2] - ground).max() < 0.05
        road = world.layout.ground[Surface.ROAD]
        assert all(road.contains(Point(p)) for p in p_enu[:, :2])
        assert R_world_base[:, 2, 2].min() > 0.99  # upright on gentle terrain
    else:
        assert np.all((p_enu[:, 2] - ground > 45.0) & (p_enu[:, 2] - ground < 125.0))
    speed = np.linalg.norm(np.diff(p_enu, axis=0), axis=1) / np.diff(t_truth)
    assert speed.max() < 30.0  # continuous (the car may start from standing still)

    # GNSS: the antenna (base + R lever) at the measurement time, within 5 sigma in open sky
    fixes = [gnss_from_msg(m) for _, m in msgs[topics.FIX]]
    assert len(fixes) >= int(DURATION_S * 5)
    t_meas = np.array([f.t_s for f in fixes]) - LATENCY_S
    idx = np.searchsorted(t_truth, t_meas - 1e-6)
    assert np.abs(t_truth[idx] - t_meas).max() < 1e-6  # truth at 50 Hz covers every epoch
    p_ant = p_enu[idx] + R_world_base[idx] @ lever
    fix_enu = np.array([world.ltp.enu_from_geodetic(f.lat_deg, f.lon_deg, f.alt_m) for f in fixes])
    sigma = np.sqrt(np.array([np.diag(f.cov_enu_3x3) for f in fixes]))
    # open sky: the nominal reported sigma (a multipath burst inflates the covariance)
    g = info["gnss"]
    open_sky = np.all(np.isclose(sigma, [g["sigma_h_m"], g["sigma_h_m"], g["sigma_v_m"]]), axis=1)
    assert open_sky.mean() > 0.7
    z = (fix_enu - p_ant)[open_sky] / sigma[open_sky]
    assert np.abs(z).max() < 5.0, np.abs(z).max()
    assert np.abs(fix_enu - p_ant).max() > 0.01  # noisy, not the truth copied


def test_same_seed_same_bytes_other_seed_other_bytes(world, car_bag, tmp_path_factory):
    again = _drive(world, tmp_path_factory, "car")
    assert again != car_bag and again.name == car_bag.name
    assert sha256(again) == sha256(car_bag)
    other = _drive(world, tmp_path_factory, "car", seed=1)
    assert sha256(other) != sha256(car_bag)


def test_gnss_outage_from_the_cli_drops_the_fixes_measured_in_it(world, tmp_path):
    out = tmp_path / "outage.mcap"
    args = ["sim", "drive", "--world", str(world.path), "--duration", str(DURATION_S)]
    res = run(*args, "--gnss-outage", "1:1", "--out", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert "5 epochs lost to outages" in res.stdout
    _, msgs = read(out)
    t_meas = np.array([stamp_of(m) for _, m in msgs[topics.FIX]]) - LATENCY_S - T0_S
    # 5 Hz epochs at 0, 0.2, ... 3.0 s of measurement time, less those in [1, 2)
    grid = np.round(np.arange(0.0, DURATION_S + 1e-9, 0.2), 6)
    assert np.round(t_meas, 6).tolist() == [t for t in grid if not 1.0 <= t < 2.0]
    assert len(msgs[topics.IMAGE]) == 31  # the rest of the bag is unaffected


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--duration", "-1"], "duration"),
        (["--platform", "boat"], "platform"),
        (["--platform", "drone", "--drone-altitude", "5:20"], "altitude"),
        (["--gnss-outage", "abc"], "--gnss-outage"),
        (["--gnss-outage", "9:1", "--duration", "5"], "outage"),
        # an unusable --out is refused before the world loads: the (also bad) --world
        # would otherwise be the one complained about
        (["--out", "{blocker}/x.mcap", "--world", "{tmp}/missing"], "not a directory"),
        (["--out", "/proc/x.mcap", "--world", "{tmp}/missing"], "/proc is not writable"),
        (["--out", "{world}/..", "--world", "{tmp}/missing"], "exists already"),
        (["--world", "{tmp}"], "not a world directory"),
        (["--world", "{tmp}/missing"], "not a world directory"),
    ],
)
def test_bad_drive_input_is_one_line_exit_1_before_any_work(world, tmp_path, args, says):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fill = {"blocker": str(blocker), "world": str(world.path), "tmp": str(tmp_path)}
    args = [a.format(**fill) for a in args]
    out = str(tmp_path / "drive.mcap")
    base = {"--world": str(world.path), "--out": out}
    for k in base:
        if k in args:
            base[k] = args.pop(args.index(k) + 1)
            args.remove(k)
    cmd = ["sim", "drive", *(x for kv in base.items() for x in kv), *args, "-q"]
    t0 = time.perf_counter()
    res = run(*cmd, timeout=60)
    took = time.perf_counter() - t0
    assert res.returncode == 1, (cmd, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoloc: error:"), res.stderr
    assert says in lines[0]
    assert took < 5.0, took  # refused before any rendering
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written
    assert not Path("/proc/x.mcap").exists()


def test_bad_world_seed_is_one_line_exit_1(tmp_path):
    res = run("sim", "world", "--seed", "-1", "--out", str(tmp_path / "w"), "-q", timeout=60)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoloc: error:") and "seed" in lines[0]
    assert list(tmp_path.iterdir()) == []
