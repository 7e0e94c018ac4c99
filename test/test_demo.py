"""geoloc demo on a small world and a short drive: every row runs, the report is complete,
the map frame is shared, the cache is reused with identical numbers, and rows whose
topics a bag lacks are skipped by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoloc_ros.demo.report import visual_fixes
from geoloc_ros.demo.rows import ROWS, runnable
from geoloc_ros.demo.run import DemoOptions, run_demo
from geoloc_ros.demo.scenario import DemoScenario
from geoloc_ros.errors import ConfigError
from geoloc_ros.eval.tum import read_tum
from geoloc_ros.io import topics
from geoloc_ros.posenet.train import TrainConfig, train_posenet
from geoloc_ros.sim.dataset import DatasetConfig, write_dataset
from geoloc_ros.sim.layout import LayoutConfig
from geoloc_ros.sim.world import WorldConfig, write_world

TINY = WorldConfig.for_seed(0, layout=LayoutConfig(size_m=240.0))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    world, _ = write_world(TINY, root / "cache" / "worlds" / "tiny", progress=False)
    data = root / "ds"
    write_dataset(world, DatasetConfig(samples=60, split_by="sample", seed=1), data, progress=False)
    model = root / "posenet"
    tc = TrainConfig(epochs=1, batch=8, input_hw=(32, 48), mc_samples=8)
    train_posenet(data, model, tc, progress=False)
    scn = DemoScenario(duration_s=30.0, seed=4, outage_s=(22.0, 4.0), world=TINY, world_name="tiny")
    opt = DemoOptions(out=root / "out", cache=root / "cache", posenet_model=model, progress=False)
    return scn, opt, run_demo(scn, opt)


def test_every_row_runs_and_writes_its_tum_file_in_the_map_frame(demo):
    _, opt, r = demo
    assert [x.row.key for x in r.results] == [row.key for row in ROWS] and not r.skipped
    t_gt, p_gt, _ = read_tum(opt.out / "ground_truth.tum")
    for row in ROWS:
        t, p, q = read_tum(opt.out / f"{row.key}.tum")
        assert len(t) > 10 and np.all(np.diff(t) > 0), row.key
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
        i = np.searchsorted(t_gt, t[-1])
        # one frame for every file: each ends near where the truth is (not ECEF, not shifted)
        assert np.linalg.norm(p[-1, :2] - p_gt[min(i, len(t_gt) - 1), :2]) < 15.0, row.key
    assert (opt.out / "runs" / "all" / "metrics.json").is_file()  # the full eval of each row


def test_the_fusion_rides_through_the_outage_where_gnss_alone_stands_still(demo):
    _, opt, r = demo
    rows = json.loads((opt.out / "metrics.json").read_text())["rows"]
    # GNSS only holds its last fix for 4 s of driving; the fusion keeps moving with the IMU
    assert rows["gnss"]["outage_max_h_m"] > 2.0 * rows["imu_gnss"]["outage_max_h_m"]
    for key in ("imu_gnss", "imu_gnss_map", "all"):
        assert rows[key]["rmse_h_m"] < 5.0 and rows[key]["yaw_rmse_deg"] < 10.0, key
    fused = r.results[-1].report["fused"]
    assert fused["map_localizer/fix"]["fixes_to_fusion"] > 10
    used, gated, held = (int(v) for v in visual_fixes(r.results[-1]).split("/"))
    # every fix that reached the fusion has a counted fate: used, gated, a standing repeat,
    # too old, or (before the fusion started) too loose to start it; a few stay pending
    c = r.results[-1].report["fusion_counts"]
    fates = sum(c.get(k, 0) for k in ("pose_standing_repeat", "pose_too_loose_to_init",
                                      "pose_too_old"))  # fmt: skip
    sent = sum(f["fixes_to_fusion"] for f in fused.values())
    assert sent - 5 <= used + gated + fates + c.get("initialized", 0) <= sent and held >= 0
    assert visual_fixes(r.results[1]) == "-"  # IMU + GNSS: no localizer
    assert "posenet/fix" in fused


def test_the_report_shows_the_table_and_both_figures(demo):
    _, opt, _ = demo
    md = (opt.out / "report.md").read_text()
    for text in ("| GNSS only |", "| + map localizer |", "| all |", "trajectory.png", "errors.png"):
        assert text in md, text
    for png in ("trajectory.png", "errors.png"):
        assert (opt.out / png).stat().st_size > 20_000, png


def test_a_second_run_reuses_the_cache_and_gives_the_same_numbers(demo, tmp_path):
    scn, opt, first = demo
    again = run_demo(scn, DemoOptions(out=tmp_path, cache=opt.cache,
                                      posenet_model=opt.posenet_model, progress=False))  # fmt: skip
    assert again.summary["made"] == []
    for a, b in zip(first.results, again.results, strict=True):
        assert a.scores["rmse_h_m"] == pytest.approx(b.scores["rmse_h_m"], abs=1e-9), a.row.key


def test_rows_a_bag_cannot_feed_are_named_with_the_missing_topics():
    ok, missing = runnable(ROWS, {topics.IMU, topics.FIX})
    assert [r.key for r in ok] == ["gnss", "imu_gnss"]
    assert missing["imu_gnss_map"] == [topics.IMAGE, topics.CAMERA_INFO]
    assert set(missing) == {"imu_gnss_posenet", "imu_gnss_map", "all"}


def test_an_outage_past_the_end_of_the_drive_is_refused():
    with pytest.raises(ConfigError, match="must end inside"):
        DemoScenario(duration_s=60.0, outage_s=(50.0, 20.0))


@pytest.mark.ros
def test_live_over_dds_matches_offline_and_reports_a_node_that_dies(demo, tmp_path):
    """The nodes as processes on the bag replayed with /clock; posenet_node is killed
    half-way: the fusion and the map localizer keep going and the run says what died."""
    pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")
    import random

    from geoloc_ros.config import platform_config
    from geoloc_ros.demo.rows import score
    from geoloc_ros.neuralmap.localizer import shipped_model_dir
    from geoloc_ros.nodes.live import node_processes, run_live

    _, opt, r = demo
    inputs_bag = next(opt.cache.glob("drives/*.mcap"))
    map_dir = next(opt.cache.glob("maps/*"))
    datum = json.loads((opt.out / "runs" / "all" / "metrics.json").read_text())["datum"]
    procs = node_processes(tmp_path, platform_config("car"), datum, map_dir,
                           str(shipped_model_dir("car")), str(opt.posenet_model))  # fmt: skip
    posenet = next(p for p in procs if p.name == "posenet_node")

    def kill_half_way(t_bag: float) -> None:
        if t_bag > 15.0 and posenet.alive():
            posenet.proc.kill()

    run = run_live(inputs_bag, tmp_path, procs, rate=1.0, domain_id=random.randint(101, 160),
                   progress=False, on_bag_time=kill_half_way)  # fmt: skip
    assert run.nodes["posenet_node"]["died_at_bag_s"] is not None
    assert run.nodes["fusion_node"]["died_at_bag_s"] is None
    assert run.counts["/map_localizer/fix"] > 50 and run.counts["/odometry/global"] > 500
    from geoloc_ros.demo.run import live_summary

    why = live_summary(run.diagnostics)  # what the nodes said on /diagnostics at the end
    assert why["imu_received"] > 1000 and why["fixes_used"] > 50 and "imu_gaps" in why
    assert run.nodes["fusion_node"]["cpu_s"] > 1.0 and run.player_cpu_s > 1.0
    assert run.nodes["posenet_node"]["cpu_s"] is None  # killed: nothing to read
    gt = r.results[-1]
    live = type(gt)(gt.row, run.traj, run.wall_s)
    from geoloc_ros.eval.trajectory import Trajectory
    from geoloc_ros.eval.tum import read_tum

    t, p, q = read_tum(opt.out / "ground_truth.tum")
    score(live, Trajectory(t, p, q), None)
    # live and offline agree: the same objects, the same bag, frames dropped live
    assert live.scores["rmse_h_m"] < 2.0 * gt.scores["rmse_h_m"] + 0.5
