"""geoloc eval --estimators posenet on a simulated drive: one pose per image, area checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoloc_ros.errors import ConfigError
from geoloc_ros.eval.report import fusion_config, run_eval
from geoloc_ros.eval.tum import read_tum
from geoloc_ros.posenet.localizer import PoseNetParams
from geoloc_ros.posenet.train import TrainConfig, train_posenet
from geoloc_ros.sim.dataset import DatasetConfig, write_dataset
from geoloc_ros.sim.drive import DriveConfig, simulate_drive
from geoloc_ros.sim.layout import LayoutConfig
from geoloc_ros.sim.world import WorldConfig, write_world
from test.posenet_fixtures import write_posed_folder


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    world, _ = write_world(
        WorldConfig.for_seed(0, layout=LayoutConfig(size_m=200.0)), root / "w", progress=False
    )
    bag = root / "car.mcap"
    simulate_drive(world, DriveConfig("car", 3.0, seed=4), bag, progress=False)
    data = root / "ds"
    write_dataset(world, DatasetConfig(samples=60, split_by="sample", seed=1), data, progress=False)
    model = root / "model"
    tc = TrainConfig(epochs=1, batch=8, input_hw=(32, 48), mc_samples=8)
    train_posenet(data, model, tc, progress=False)
    longer = root / "car8.mcap"  # the fusion needs ~5 s of GNSS before it has a state
    simulate_drive(world, DriveConfig("car", 8.0, seed=4), longer, progress=False)
    return bag, model, world, longer


def test_eval_writes_one_posenet_pose_per_image_in_the_map_frame(sim, tmp_path):
    bag, model, world, _ = sim
    params = PoseNetParams(model=str(model), samples=8, max_sigma_m=1e6)
    rep = run_eval(bag, tmp_path, fusion_config(None), ["fusion", "posenet"], progress=False,
                   posenet=params)  # fmt: skip
    pn = rep["estimates"]["posenet"]
    assert (
        pn["images"] == 31 and pn["withheld"] == 0 and pn["rejected"] == 0
    )  # 3 s at 10 Hz, both ends
    t, _, _ = read_tum(tmp_path / "posenet.tum")
    assert len(t) == 31
    # the map frame is the model's (the world's datum), shared by ground_truth.tum
    assert rep["datum"] == pytest.approx(list(world.cfg.datum))
    _, p_gt, _ = read_tum(tmp_path / "ground_truth.tum")
    assert np.abs(p_gt[:, :2]).max() < 150.0  # inside the 200 m world around its datum
    assert np.isfinite(pn["median_position_m"]) and 0.0 <= pn["coverage95_position"] <= 1.0
    ac = pn["error_autocorrelation"]  # 31 images 0.1 s apart: >= 10 pairs up to 2 s
    assert ac["z"]["lags_s"] == ac["horizontal"]["lags_s"] == [0.5, 1.0, 2.0]
    assert all(
        -1.0 <= r <= 1.0 for r in ac["horizontal"]["autocorrelation"] + ac["z"]["autocorrelation"]
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["estimates"]["posenet"]


def test_eval_refuses_a_posenet_model_of_another_area(sim, tmp_path):
    bag, _, _, _ = sim
    other = write_posed_folder(tmp_path / "posed")
    model = tmp_path / "m"
    train_posenet(other, model, TrainConfig(epochs=1, batch=8, input_hw=(32, 48), mc_samples=8),
                  progress=False)  # fmt: skip
    card = json.loads((model / "posenet.json").read_text())
    card["area"]["layout_sha256"] = "0" * 64  # a sim world that is not this bag's
    (model / "posenet.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="not this world"):
        run_eval(bag, tmp_path / "out", fusion_config(None), ["posenet"], progress=False,
                 posenet=PoseNetParams(model=str(model)))  # fmt: skip


def test_fusing_posenet_runs_it_in_the_loop_and_withholds_uncertain_fixes(sim, tmp_path):
    _, model, _, bag = sim
    params = PoseNetParams(model=str(model), samples=8, max_sigma_m=1e6)
    rep = run_eval(bag, tmp_path / "all", fusion_config(None), ["fusion", "gnss"],
                   progress=False, posenet=params, fuse=["posenet"])  # fmt: skip
    fused = rep["fused"]["posenet/fix"]
    assert fused["fixes_to_fusion"] == 81 and not fused["withheld"]  # 8 s at 10 Hz
    counts = rep["fusion_counts"]
    # 6-DoF fixes: before the fusion starts they are too loose to start it; after, used or gated
    used = counts.get("pose6_used", 0) + counts.get("pose6_gated", 0)
    assert used >= 1 and 80 <= used + counts.get("pose_too_loose_to_init", 0) <= 81
    assert "posenet" not in rep["estimates"]  # fused only, not evaluated on its own
    strict = PoseNetParams(model=str(model), samples=8, max_sigma_m=1e-6)
    rep = run_eval(bag, tmp_path / "none", fusion_config(None), ["fusion"], progress=False,
                   posenet=strict, fuse=["posenet"])  # fmt: skip
    fused = rep["fused"]["posenet/fix"]
    assert fused["fixes_to_fusion"] == 0 and fused["withheld"] == {"uncertain": 81}
    assert fused["latency_ms_median"] > 0.0


def test_eval_takes_posenet_node_settings_from_config_and_flags_override_them():
    """`geoloc eval --config config/drone.yaml --fuse posenet` must run the drone model at
    the node's rate, as on the vehicle, not the car model on every frame."""
    from geoloc_ros.cli import build_parser
    from geoloc_ros.eval.cli import posenet_config

    def parse(*extra):
        return build_parser().parse_args(["eval", "b.mcap", "--out", "o", *extra])

    drone = posenet_config(parse("--config", "config/drone.yaml"))
    assert (drone.platform, drone.max_rate_hz, drone.backend) == ("drone", 5.0, "torch")
    assert posenet_config(parse()).platform == "car"
    flags = parse("--config", "config/drone.yaml", "--posenet-model", "m", "--platform", "car",
                  "--posenet-backend", "onnxruntime")  # fmt: skip
    cfg = posenet_config(flags)
    assert (cfg.model, cfg.platform, cfg.backend, cfg.max_rate_hz) == (
        "m",
        "car",
        "onnxruntime",
        5.0,
    )
