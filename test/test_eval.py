"""geoloc eval: replay through the fusion, TUM files in one frame, evo metrics, plots, errors.

The synthetic tests use the analytic figure-eight bag (seconds to write); the real-data
test replays comma2k19 and skips without ../shared/data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geoloc_ros.cli import main
from geoloc_ros.errors import GeolocError
from geoloc_ros.eval.report import fusion_config, run_eval
from geoloc_ros.eval.tum import read_tum
from geoloc_ros.io.importers import IMPORTERS
from geoloc_ros.sim.quickdrive_bag import write_quickdrive_bag

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CONFIGS = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "figure8.mcap"
    write_quickdrive_bag(path, duration_s=60.0, seed=3, progress=False)
    return path


@pytest.fixture(scope="module")
def report(bag, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval_out")
    assert main(["eval", str(bag), "--out", str(out), "-q", "--gnss-outage", "30:10"]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_eval_writes_tum_files_metrics_and_plots(report):
    out, m = report
    for name in ("fusion.tum", "gnss.tum", "ground_truth.tum", "trajectories.png", "errors.png"):
        assert (out / name).stat().st_size > 0, name
    t_f, p_f, q_f = read_tum(out / "fusion.tum")
    t_g, p_g, _ = read_tum(out / "ground_truth.tum")
    assert np.all(np.diff(t_f) > 0) and len(t_f) > 400  # 10 Hz keyframes over ~55 s
    np.testing.assert_allclose(np.linalg.norm(q_f, axis=1), 1.0, atol=1e-6)
    # one frame: the fused track starts where the truth is, in the same local ENU
    i = np.argmin(np.abs(t_g - t_f[0]))
    assert np.linalg.norm(p_f[0, :2] - p_g[i, :2]) < 3.0
    assert m["ground_truth"]["alignment"] == "none"


def test_odometry_tum_is_the_imu_rate_output_fusion_node_publishes(report):
    """odometry.tum: the IMU-rate state at output_rate_hz (50 Hz), as odometry/global
    carries it; at the keyframes it is the keyframe estimate propagated by the IMU."""
    out, _ = report
    t_o, p_o, q_o = read_tum(out / "odometry.tum")
    t_f, p_f, _ = read_tum(out / "fusion.tum")
    assert np.median(np.diff(t_o)) == pytest.approx(0.02, abs=2e-3)
    assert len(t_o) > 4 * len(t_f)
    np.testing.assert_allclose(np.linalg.norm(q_o, axis=1), 1.0, atol=1e-6)
    gap = np.linalg.norm(np.stack([np.interp(t_f, t_o, p_o[:, k]) for k in range(3)], -1)
                         - p_f, axis=1)  # fmt: skip
    assert np.median(gap) < 0.2 and gap.max() < 5.0, (np.median(gap), gap.max())


def test_fusion_beats_raw_gnss_and_rides_through_the_outage(report):
    _, m = report
    fus, raw = m["estimates"]["fusion"], m["estimates"]["gnss"]
    assert fus["ape_horizontal_m"]["rmse"] < 0.7 * raw["ape_horizontal_m"]["rmse"]
    assert m["withheld_fixes"] == pytest.approx(50, abs=1)  # 10 s of 5 Hz fixes
    assert fus["max_horizontal_in_outage_m"] < 5.0
    assert m["gnss_outage_s"] == [30.0, 10.0]
    nees = fus["nees_position"]
    assert 0.0 <= nees["fraction_inside"] <= 1.0 and nees["dof"] == 3


def test_no_gnss_dead_reckons_from_the_origin_and_aligns_truth_there(bag, tmp_path):
    rep = run_eval(bag, tmp_path, fusion_config(None), no_gnss=True, progress=False)
    assert rep["ground_truth"]["alignment"] == "origin"
    assert "gnss" not in rep["estimates"]
    assert rep["fusion_config"]["start_at_origin"] is True
    t, p, _ = read_tum(tmp_path / "fusion.tum")
    assert np.linalg.norm(p[0]) < 0.5  # starts at the map origin
    assert len(t) > 400


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--estimators", "fusion,bogus"], "unknown estimator 'bogus'"),
        (["--set", "no_such_key=1"], "unknown fusion parameter 'no_such_key'"),
        (["--set", "keyframe_period_s=5"], "keyframe_period_s"),
        (["--config", "/nonexistent.yaml"], "not found"),
    ],
)
def test_bad_eval_options_are_one_line_exit_1(bag, tmp_path, capsys, args, says):
    assert main(["eval", str(bag), "--out", str(tmp_path), "-q", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1


def test_a_missing_bag_is_one_line_exit_1(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.mcap"), "--out", str(tmp_path)]) == 1
    assert "bag not found" in capsys.readouterr().err


def test_bad_outage_window_is_a_usage_error(bag, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(bag), "--out", str(tmp_path), "--gnss-outage", "20"])
    assert exc.value.code == 2


def test_comma2k19_fusion_beats_the_ublox_on_real_data(tmp_path):
    src = SHARED_DATA / "comma2k19_seg40"
    if not src.is_dir():
        pytest.skip(f"real sensor data not found at {src} (developer checkouts only)")
    bag = tmp_path / "c.mcap"
    IMPORTERS["comma2k19"]().run(src, bag, progress=False)
    cfg = fusion_config(CONFIGS / "datasets" / "comma2k19.yaml")
    rep = run_eval(bag, tmp_path / "out", cfg, progress=False)
    fus = rep["estimates"]["fusion"]["ape_horizontal_m"]["rmse"]
    raw = rep["estimates"]["gnss"]["ape_horizontal_m"]["rmse"]
    assert raw == pytest.approx(1.47, abs=0.05)  # the data README's figure
    assert fus < 0.65  # measured 0.55; the latency model is what buys most of it


def test_husky_dead_reckoning_ends_where_the_upstream_ekf_regression_expects(tmp_path, shared_data):
    """robot_localization's own regression test on test1.bag (IMU + wheel odometry, no
    GNSS) expects its EKF to end within 1.05 m of (-40.05, -76.99, -2.70) in odom."""
    src = shared_data / "robot_localization_bag" / "test1.bag"
    bag = tmp_path / "t.mcap"
    IMPORTERS["rosbag1"]().run(src, bag, progress=False)
    cfg = fusion_config(CONFIGS / "datasets" / "husky_test1.yaml")
    rep = run_eval(bag, tmp_path / "out", cfg, ["fusion"], no_gnss=True, progress=False)
    final = np.array(rep["estimates"]["fusion"]["final_position_m"])
    assert np.linalg.norm(final - [-40.05, -76.99, -2.70]) < 1.05, final  # measured 0.86


def test_estimators_the_bag_cannot_feed_are_named_and_the_rest_run(bag, tmp_path, caplog):
    """The figure-eight bag has IMU and fixes but no camera: PoseNet and the map
    localizer are skipped by name with their missing topics; the fusion still runs."""
    rep = run_eval(bag, tmp_path, fusion_config(None), ["fusion", "gnss", "posenet"],
                   progress=False, fuse=["map_localizer"])  # fmt: skip
    assert rep["skipped"] == {"posenet": ["/image"], "map_localizer": ["/image", "/camera_info"]}
    assert set(rep["estimates"]) == {"fusion", "gnss"} and not rep["fused"]
    assert "posenet: the bag has no /image; running fusion, gnss" in caplog.text
    with pytest.raises(GeolocError, match="no estimator can run: posenet needs /image"):
        run_eval(bag, tmp_path / "x", fusion_config(None), ["posenet"], progress=False)


def test_rejections_csv_names_the_input_and_why(tmp_path):
    """Standing repeats are visual fixes refused for repeating a view, not a gate."""
    import csv
    from types import SimpleNamespace

    from geoloc_ros.eval.report import _write_rejections
    from geoloc_ros.types import Decision

    res = SimpleNamespace(rejections=[], decisions=[
        Decision(1.0, False, "gate", 30.0), Decision(2.0, False, "pose3_gate", 20.0),
        Decision(3.0, False, "standing_repeat"), Decision(4.0, True, "pose3"),
    ])  # fmt: skip
    _write_rejections(tmp_path / "r.csv", res)
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [(r["input"], r["reason"]) for r in rows] == [
        ("fix", "gate"),
        ("pose_fix", "pose3_gate"),
        ("pose_fix", "standing_repeat"),
    ]
    assert rows[1]["message"] == "Mahalanobis gate"
    assert "visual_standstill_period_s" in rows[2]["message"]


def test_jump_response_measures_how_far_a_burst_moved_the_track():
    """A 0.8 m constant error is not a move; a 1.5 m pull during the burst is, a drift
    that began before the burst counts only from the burst's start, and a burst that
    ends an outage is no move of its own."""
    from geoloc_ros.eval.metrics import Errors, jump_response
    from geoloc_ros.eval.trajectory import Trajectory

    t = np.arange(0.0, 20.0, 0.1)
    q = np.tile([0.0, 0.0, 0.0, 1.0], (len(t), 1))
    truth = np.c_[t, np.zeros((len(t), 2))]

    def errors(offset_m: np.ndarray) -> Errors:
        p = truth + offset_m
        return Errors(
            Trajectory(t, p, q), Trajectory(t, truth, q), np.linalg.norm(offset_m[:, :2], axis=1)
        )

    burst = (t >= 8.0) & (t < 11.0)
    raw = np.zeros((len(t), 3))
    raw[burst, 0] = 20.0
    still = np.tile([0.8, 0.0, 0.0], (len(t), 1))
    pulled = still.copy()
    pulled[burst, 0] += 1.5 * (t[burst] - 8.0) / 3.0
    drift = np.c_[0.1 * t, np.zeros((len(t), 2))]  # 0.1 m/s: 0.35 m more by 11.5 s
    rep_still = jump_response(errors(still), errors(raw))
    assert rep_still["episodes"] == 1 and rep_still["raw_max_error_m"] == pytest.approx(20.0)
    assert rep_still["fused_max_shift_m"] == pytest.approx(0.0, abs=1e-9)
    assert rep_still["fused_max_error_m"] == pytest.approx(0.8)
    assert jump_response(errors(pulled), errors(raw))["fused_max_shift_m"] == pytest.approx(
        1.5, abs=0.06
    )
    assert jump_response(errors(drift), errors(raw))["fused_max_shift_m"] == pytest.approx(
        0.35, abs=0.02
    )
    gap = ~((t >= 3.0) & (t < 8.0))  # no fixes for 5 s before the burst
    raw_after_gap = Errors(Trajectory(t[gap], truth[gap] + raw[gap], q[gap]),
                           Trajectory(t[gap], truth[gap], q[gap]), raw[gap, 0])  # fmt: skip
    rep = jump_response(errors(pulled), raw_after_gap)
    assert rep["episodes"] == 1 and rep["fused_max_shift_m"] is None


def test_error_autocorrelation_reads_back_the_correlation_time_of_a_stream():
    """An exponentially correlated stream (tau 2 s) sampled at 5 Hz with every third
    sample missing: the autocorrelation at each lag is exp(-lag / tau); white noise
    gives ~0. This is what the fusion's *_error_tau_s are read from."""
    from geoloc_ros.eval.metrics import error_autocorrelation

    rng = np.random.default_rng(0)
    dt, tau, n = 0.2, 2.0, 20000
    a = np.exp(-dt / tau)
    x = np.zeros((n, 2))
    for k in range(1, n):
        x[k] = a * x[k - 1] + np.sqrt(1 - a * a) * rng.standard_normal(2)
    t = np.arange(n) * dt
    keep = np.arange(n) % 3 != 2
    ac = error_autocorrelation(t[keep], x[keep] * [0.5, 3.0])  # scale does not matter
    for lag, r in zip(ac["lags_s"], ac["autocorrelation"], strict=True):
        assert r == pytest.approx(np.exp(-lag / tau), abs=0.05), (lag, r)
    assert {1.0, 2.0, 5.0, 10.0} <= set(ac["lags_s"])
    white = error_autocorrelation(t, rng.standard_normal(n))
    assert max(abs(r) for r in white["autocorrelation"]) < 0.05
