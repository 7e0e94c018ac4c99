"""geoloc eval --estimators map_localizer on a simulated drone flight: one pose per image
beside ground_truth.tum, the prior drawn from the truth with --prior-sigma or taken from
GNSS, the camera mount from /tf_static, and clear refusals without a map."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoloc_ros.errors import ConfigError
from geoloc_ros.eval.report import fusion_config, run_eval
from geoloc_ros.eval.tum import read_tum
from geoloc_ros.neuralmap.inputs import MapLocalizerConfig
from geoloc_ros.neuralmap.localizer import shipped_model_dir
from geoloc_ros.neuralmap.tiles import build_map
from geoloc_ros.sim.drive import DriveConfig, simulate_drive
from geoloc_ros.sim.layout import LayoutConfig
from geoloc_ros.sim.world import WorldConfig, write_world

IMAGES = 21  # 2 s at 10 Hz, both ends


@pytest.fixture(scope="module")
def flight(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflight")
    world, _ = write_world(
        WorldConfig.for_seed(2, layout=LayoutConfig(size_m=240.0)), root / "w", progress=False
    )
    bag = root / "drone.mcap"
    simulate_drive(world, DriveConfig("drone", 2.0, seed=5), bag, progress=False)
    build_map(root / "map", shipped_model_dir("drone"), world=root / "w", progress=False)
    longer = root / "drone8.mcap"  # the fusion needs ~5 s of GNSS before it has a state
    simulate_drive(world, DriveConfig("drone", 8.0, seed=5), longer, progress=False)
    return bag, root / "map", world, longer


def _cfg(map_dir) -> MapLocalizerConfig:
    return MapLocalizerConfig(map=str(map_dir), platform="drone", camera_pitch_down_deg=0.0,
                              window_m=48.0)  # fmt: skip


def test_eval_writes_one_map_fix_per_image_from_a_noisy_true_prior(flight, tmp_path):
    bag, map_dir, world, _ = flight
    rep = run_eval(bag, tmp_path, fusion_config(None), ["map_localizer"], progress=False,
                   map_localizer=_cfg(map_dir), prior_sigma_m=20.0, seed=3)  # fmt: skip
    ml = rep["estimates"]["map_localizer"]
    # a tiny world: a 20 m prior noise can land off the map, which is a counted rejection
    assert ml["images"] == IMAGES and ml["prior"] == "truth+noise"
    assert set(ml["rejected"]) <= {"image/outside_map"} and ml["fixes"] >= IMAGES // 2
    # the config says a forward camera; the bag's /tf_static says nadir and must win
    assert ml["camera_mount"] == "tf_static"
    assert ml["attitude"] == "orientation"  # the simulated IMU reports its AHRS orientation
    t, p, _ = read_tum(tmp_path / "map_localizer.tum")
    assert len(t) == ml["fixes"] and np.all(np.isfinite(p))
    assert (tmp_path / "ground_truth.tum").is_file()
    assert rep["datum"] == pytest.approx(list(world.cfg.datum))  # the map's frame
    # a 20 m prior alone would leave a median of ~24 m; the map pulls it to a few metres
    # (the AHRS tilt error times the flying height bounds it from below)
    assert ml["median_m"] < 8.0, ml
    assert set(ml["recall_position"]) == {"1m", "3m", "5m"}
    assert 0.0 <= ml["coverage95_xy"] <= 1.0
    assert set(ml["error_autocorrelation"]) == {"xy", "yaw"}  # too short for any lag here
    assert json.loads((tmp_path / "metrics.json").read_text())["map_localizer"]["seed"] == 3


def test_eval_without_a_prior_flag_uses_the_gnss_fixes(flight, tmp_path):
    bag, map_dir, _, _ = flight
    rep = run_eval(bag, tmp_path, fusion_config(None), ["gnss", "map_localizer"],
                   progress=False, map_localizer=_cfg(map_dir))  # fmt: skip
    ml = rep["estimates"]["map_localizer"]
    assert ml["prior"] == "gnss" and ml["fixes"] + sum(ml["rejected"].values()) == IMAGES
    assert ml["fixes"] >= IMAGES - 2  # the first image may come before the first fix


def test_eval_cli_refuses_map_localizer_without_a_map(flight, tmp_path, capsys):
    from geoloc_ros.cli import main

    bag, _, _, _ = flight
    rc = main(["eval", str(bag), "--estimators", "map_localizer", "--out", str(tmp_path / "o"),
               "-q"])  # fmt: skip
    assert rc == 1 and "needs a map folder (--map)" in capsys.readouterr().err


def test_drone_fixes_carry_the_ahrs_tilt_error_in_their_covariance(flight):
    from geoloc_ros.eval.map_replay import replay_map_localizer
    from geoloc_ros.neuralmap.localizer import MapLocalizer

    bag, map_dir, _, _ = flight
    cfg = _cfg(map_dir)
    run = replay_map_localizer(bag, MapLocalizer(cfg.params()), cfg, None, progress=False)
    assert run.attitude == "orientation" and len(run.fixes) >= IMAGES - 2
    # the simulated drone AHRS reports 0.02 rad of roll/pitch 1-sigma: at ~85 m above the
    # ground a footprint shift of 1.7 m 1-sigma, which the volume alone cannot see
    # (the height the search measured, where the GNSS prior's height sigma made it search)
    h = np.array([f.height_m if f.height_m is not None else z - 0.15
                  for f, z in zip(run.fixes, run.z_m, strict=True)])  # fmt: skip
    floor = (h * np.tan(0.02)) ** 2
    var_x = np.array([f.cov_xyyaw[0, 0] for f in run.fixes])
    assert np.all(var_x >= floor - 1e-9) and np.median(h) > 40.0


def test_fusing_the_map_localizer_runs_it_in_the_loop(flight, tmp_path):
    _, map_dir, _, bag = flight
    rep = run_eval(bag, tmp_path, fusion_config(None, ["visual_gate_chi2=16.3"]),
                   ["fusion", "gnss"], progress=False, map_localizer=_cfg(map_dir),
                   fuse=["map_localizer"])  # fmt: skip
    fused = rep["fused"]["map_localizer/fix"]
    assert fused["fixes_to_fusion"] >= 1
    counts = rep["fusion_counts"]
    # every fix that reached the fusion was used or gated against its state, none lost
    assert counts.get("pose3_used", 0) + counts.get("pose3_gated", 0) >= 1
    assert "map_localizer" not in rep["estimates"]  # fused only, not evaluated on its own
    with pytest.raises(ConfigError, match="cannot fuse 'gnss'"):
        run_eval(bag, tmp_path, fusion_config(None), ["fusion"], progress=False,
                 map_localizer=_cfg(map_dir), fuse=["gnss"])  # fmt: skip


def test_before_the_fusion_has_a_state_the_loop_takes_the_gnss_prior_as_the_node_does(
    flight, tmp_path
):
    """The node falls back from odometry/global to fix; the offline loop must too, or a
    live run starts from map fixes the offline run never saw."""
    _, map_dir, _, bag = flight
    cfg = fusion_config(None, ["visual_gate_chi2=16.3"])
    fused = run_eval(bag, tmp_path / "f", cfg, ["fusion"], progress=False,
                     map_localizer=_cfg(map_dir), fuse=["map_localizer"])  # fmt: skip
    run_eval(bag, tmp_path / "g", cfg, ["fusion"], progress=False)
    t_fused, _, _ = read_tum(tmp_path / "f" / "fusion.tum")
    t_gnss, _, _ = read_tum(tmp_path / "g" / "fusion.tum")
    assert t_fused[0] < t_gnss[0] - 1.0  # a map fix from the GNSS prior started the fusion
    assert fused["fusion_counts"].get("pose3_used", 0) >= 1
    rows = (tmp_path / "f" / "rejections.csv").read_text().splitlines()[1:]
    no_prior = [r for r in rows if ",prior," in r]
    assert len(no_prior) <= 2  # only images before the first GNSS fix


def test_a_nadir_view_measures_its_height_when_the_prior_height_is_uncertain(flight):
    """The inertial height drifts without GNSS (42 m in the demo's 60 s outage); a nadir
    view rectified at a wrong height is scaled against the map and its fix slides. Given
    the height's sigma the localizer searches heights and reports the one that matches."""
    from geoloc_ros.eval.sources import BagFrameLocalizer
    from geoloc_ros.geo.wgs84 import LocalTangentPlane
    from geoloc_ros.io import topics
    from geoloc_ros.io.bag import BagReader
    from geoloc_ros.io.convert import gnss_from_msg
    from geoloc_ros.neuralmap.inputs import prior_from_gnss
    from geoloc_ros.neuralmap.localizer import MapLocalizer

    bag, map_dir, _, _ = flight
    cfg = _cfg(map_dir)
    frames = BagFrameLocalizer(MapLocalizer(cfg.params()), cfg)
    ltp = LocalTangentPlane(*frames.loc.store.datum)
    gnss, out, n = None, [], 0
    with BagReader(bag) as b:
        for m in b.messages([*frames.topics, topics.FIX, topics.IMAGE]):
            if m.topic == topics.FIX:
                gnss = prior_from_gnss(gnss_from_msg(m.msg), ltp) or gnss
            elif m.topic != topics.IMAGE:
                frames.consume(m.topic, m.msg)
            elif gnss is not None and (n := n + 1) % 4 == 0:
                pr = gnss[1]._replace(sigma_z_m=0.0)  # the GNSS height taken as given
                _, at_gnss, _ = frames.localize(m.msg, lambda t, p=pr: p)
                high = pr._replace(z_m=pr.z_m * 1.15)  # 15 % too high ...
                _, blind, _ = frames.localize(m.msg, lambda t, p=high: p)
                searched = high._replace(sigma_z_m=0.1 * pr.z_m)  # ... with its sigma
                _, found, _ = frames.localize(m.msg, lambda t, p=searched: p)
                out.append((pr.z_m, at_gnss, blind, found))
    assert len(out) >= 4
    h = np.array([z for z, *_ in out])
    assert all(a.height_m is None and b.height_m is None for _, a, b, _ in out)
    h_found = np.array([f.height_m for *_, f in out])
    assert np.median(h) > 40.0 and np.all(np.abs(h_found / (h + 0.15) - 1.0) < 0.05)
    assert all(f.var_height_m2 > 0 for *_, f in out)
    off = [(np.linalg.norm(b.xy_m - a.xy_m), np.linalg.norm(f.xy_m - a.xy_m)) for _, a, b, f in out]
    blind_m, found_m = np.median(np.array(off), axis=0)
    assert found_m < 1.0 and found_m < blind_m, off
