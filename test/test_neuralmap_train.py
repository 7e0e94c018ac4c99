"""Training the neural map localizer: two-process DDP (gloo), exact resume, map build from a
world. Tiny settings: these check the machinery, `geoloc bench neuralmap` measures accuracy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from geoloc_ros.neuralmap.train import TrainConfig, train_neuralmap
from geoloc_ros.sim.dataset import DatasetConfig, write_dataset
from geoloc_ros.sim.layout import LayoutConfig
from geoloc_ros.sim.world import WorldConfig, write_world


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("nm")
    world, _ = write_world(
        WorldConfig.for_seed(0, layout=LayoutConfig(size_m=200.0)), root / "w", progress=False
    )
    cfg = DatasetConfig(platform="car", samples=16, seed=0, fractions=(0.5, 0.25, 0.25),
                        guard_m=10.0)  # fmt: skip
    write_dataset(world, cfg, root / "ds", progress=False)
    return root


TINY = dict(platform="car", epochs=2, batch=2, max_train=4, val_samples=2, positions=4,
            yaw_bins=8, workers=0, threads=1, checkpoint_every=1)  # fmt: skip


def test_resumed_training_ends_with_the_same_weights(tiny, tmp_path):
    tc = TrainConfig(**TINY)
    whole = train_neuralmap([tiny / "ds"], tmp_path / "a", tc, progress=False)
    assert whole.training["train_samples"] == 4
    part = train_neuralmap([tiny / "ds"], tmp_path / "b", TrainConfig(**TINY, stop_after=3),
                           progress=False)  # fmt: skip
    assert part is None and (tmp_path / "b" / "checkpoint.pt").is_file()
    with pytest.raises(Exception, match="already holds"):
        train_neuralmap([tiny / "ds"], tmp_path / "b", tc, progress=False)
    resumed = train_neuralmap([tiny / "ds"], tmp_path / "b", tc, resume=True, progress=False)
    a = load_file(str(tmp_path / "a" / "neuralmap.safetensors"))
    b = load_file(str(tmp_path / "b" / "neuralmap.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    log = (tmp_path / "b" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("step,epoch,loss") and len(log) >= 3
    assert resumed.training["processes"] == 1


def test_two_process_ddp_with_gloo_trains_one_model(tiny, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "geoloc_ros.cli", "train", "neuralmap", "--data", str(tiny / "ds"),
           "--out", str(out), "--epochs", "1", "--batch", "1", "--max-train", "4",
           "--positions", "4", "--yaw-bins", "8", "--workers", "0", "--threads", "1",
           "--val-samples", "2", "-q"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    card = json.loads((out / "neuralmap.json").read_text())
    assert card["training"]["processes"] == 2
    # two processes x one sample per step: 2 steps cover the 4 samples once
    log = (out / "train_log.csv").read_text().splitlines()
    assert log[-1].split(",")[0] == "2"


def test_map_build_from_a_simulated_world(tiny, tmp_path):
    from geoloc_ros.cli import main

    model = tmp_path / "m"
    train_neuralmap([tiny / "ds"], model, TrainConfig(**{**TINY, "epochs": 1}), progress=False)
    rc = main(["map", "build", "--world", str(tiny / "w"), "--model", str(model),
               "--out", str(tmp_path / "map"), "-q"])  # fmt: skip
    assert rc == 0
    import json

    card = json.loads((tmp_path / "map" / "map.json").read_text())
    assert card["width"] == card["height"] == 200 and card["res_m"] == 1.0
    assert main(["map", "build", "--ortho", str(tmp_path / "nope.tif"), "--model", str(model),
                 "--out", str(tmp_path / "m2")]) == 1  # fmt: skip


def test_init_starts_from_a_saved_model_and_refuses_another_platform(tiny, tmp_path):
    from geoloc_ros.errors import ConfigError

    base = train_neuralmap([tiny / "ds"], tmp_path / "a", TrainConfig(**{**TINY, "epochs": 1}),
                           progress=False)  # fmt: skip
    zero_lr = TrainConfig(**{**TINY, "epochs": 1, "lr": 1e-12, "weight_decay": 0.0,
                             "init": str(tmp_path / "a")})  # fmt: skip
    tuned = train_neuralmap([tiny / "ds"], tmp_path / "b", zero_lr, progress=False)
    learned = [k for k in base.state if "running_" not in k and "num_batches" not in k]
    for k in learned:  # a vanishing learning rate keeps the initial weights (not BN statistics)
        np.testing.assert_allclose(tuned.state[k], base.state[k], rtol=0, atol=1e-5, err_msg=k)
    scratch = TrainConfig(**{**TINY, "epochs": 1, "lr": 1e-12, "weight_decay": 0.0, "seed": 1})
    fresh = train_neuralmap([tiny / "ds"], tmp_path / "c", scratch, progress=False)
    assert any(not np.allclose(fresh.state[k], base.state[k]) for k in learned)
    import dataclasses

    from geoloc_ros.neuralmap.bundle import NeuralMapBundle, state_of
    from geoloc_ros.neuralmap.config import NeuralMapConfig
    from geoloc_ros.neuralmap.model import NeuralMapNet

    other = dataclasses.replace(NeuralMapConfig.for_platform("car"), match_channels=4)
    NeuralMapBundle(other, state_of(NeuralMapNet(other))).save(tmp_path / "other")
    wrong = TrainConfig(**{**TINY, "init": str(tmp_path / "other")})
    with pytest.raises(ConfigError, match="car model with another configuration"):
        train_neuralmap([tiny / "ds"], tmp_path / "d", wrong, progress=False)


def test_the_along_street_loss_changes_the_training_and_is_recorded(tiny, tmp_path):
    from geoloc_ros.errors import ConfigError

    one = {**TINY, "epochs": 1}
    plain = train_neuralmap([tiny / "ds"], tmp_path / "a", TrainConfig(**one), progress=False)
    along = train_neuralmap([tiny / "ds"], tmp_path / "b", TrainConfig(**one, along_weight=1.0),
                            progress=False)  # fmt: skip
    assert along.training["config"]["along_weight"] == 1.0
    assert plain.training["config"]["along_weight"] == 0.0
    learned = [k for k in plain.state if "running_" not in k and "num_batches" not in k]
    assert any(not np.allclose(along.state[k], plain.state[k]) for k in learned)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ConfigError, match="along_weight"):
            TrainConfig(**one, along_weight=bad)


def test_init_fine_tunes_at_another_input_size(tiny, tmp_path):
    """The encoders are convolutional: a model trained at one input size starts a training
    at another, and the new model's card records the size it was trained at."""
    base = train_neuralmap([tiny / "ds"], tmp_path / "a", TrainConfig(**{**TINY, "epochs": 1}),
                           progress=False)  # fmt: skip
    bigger = TrainConfig(**{**TINY, "epochs": 1, "lr": 1e-12, "weight_decay": 0.0,
                            "init": str(tmp_path / "a"), "input_hw": (160, 224)})  # fmt: skip
    tuned = train_neuralmap([tiny / "ds"], tmp_path / "b", bigger, progress=False)
    assert base.config.input_hw != (160, 224) and tuned.config.input_hw == (160, 224)
    conv = [k for k in base.state if k.endswith("weight")]
    for k in conv:
        np.testing.assert_allclose(tuned.state[k], base.state[k], rtol=0, atol=1e-5, err_msg=k)
    from geoloc_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="input_hw"):
        TrainConfig(**{**TINY, "input_hw": (100, 150)}).model_config()
    # a fine-tune that names no size keeps the init's (it used to fall back to the default)
    keep = TrainConfig(**{**TINY, "init": str(tmp_path / "b")}).model_config()
    assert keep.input_hw == (160, 224)


def test_init_extends_a_car_bev_farther_ahead(tiny, tmp_path):
    """--bev-depth 48 from a 32 m model: the 32 shared depth bins keep their weights, and
    the far bins start with the old last bin's probability shared among them, so every
    pixel's depth distribution over the first 31 m is unchanged."""
    import torch

    from geoloc_ros.errors import ConfigError
    from geoloc_ros.neuralmap.bundle import build_net

    base = train_neuralmap([tiny / "ds"], tmp_path / "a", TrainConfig(**{**TINY, "epochs": 1}),
                           progress=False)  # fmt: skip
    far = TrainConfig(**{**TINY, "epochs": 1, "lr": 1e-12, "weight_decay": 0.0,
                         "init": str(tmp_path / "a"), "bev_depth_m": 48.0})  # fmt: skip
    tuned = train_neuralmap([tiny / "ds"], tmp_path / "b", far, progress=False)
    assert (tuned.config.depth_max_m, tuned.config.depth_bins) == (48.0, 48)
    assert tuned.config.bev_shape[0] == 48 and base.config.bev_shape[0] == 32
    nets = [build_net(b).eval() for b in (base, tuned)]
    feat = torch.randn(1, base.config.image_channels, 6, 8)
    elev = torch.rand(1, 1, 6, 8)
    with torch.inference_mode():
        p_old, p_new = (torch.softmax(n.lifter.depth(torch.cat([feat, elev], 1)), 1)
                        for n in nets)  # fmt: skip
    torch.testing.assert_close(p_new[:, :31], p_old[:, :31], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(p_new[:, 31:].sum(1), p_old[:, 31], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(p_new[:, 40], p_new[:, 47])  # the far range is uninformed
    with pytest.raises(ConfigError, match="car's forward camera only"):
        TrainConfig(**{**TINY, "platform": "drone", "bev_depth_m": 48.0}).model_config()


def test_bench_writes_the_recall_table_and_every_frame(tiny, tmp_path):
    """`geoloc bench neuralmap` on a tiny model: the JSON's frame count matches the
    per-frame arrays in the .npz beside it, and the node's multi-modal threshold is used."""
    import json

    from geoloc_ros.benchmarks.neuralmap import node_matcher_settings, run

    train_neuralmap([tiny / "ds"], tmp_path / "m", TrainConfig(**{**TINY, "epochs": 1}),
                    progress=False)  # fmt: skip
    out = tmp_path / "bench.json"
    res = run(str(tmp_path / "m"), [str(tiny / "ds")], out, split="all", frames=4,
              latency_frames=0, prior_sigma_m=2.0, eval_window_m=24.0, eval_yaw_bins=16,
              threads=1, maps_dir=tmp_path / "maps", progress=False)  # fmt: skip
    assert res["protocol"]["multimodal_ratio"] == node_matcher_settings("car")["multimodal_ratio"]
    assert res["protocol"]["multimodal_ratio"] == 0.2
    assert res["protocol"]["yaw_refine_spacing_deg"] == 4.0
    assert node_matcher_settings("drone") == {"multimodal_ratio": 0.5,
                                              "yaw_refine_spacing_deg": 2.8}  # fmt: skip
    acc = json.loads(out.read_text())["datasets"][str(tiny / "ds")]["accuracy"]
    frames = np.load(out.with_suffix(".npz"))
    n = acc["frames"]
    assert n + acc["rejected"] == 4 and n > 0
    assert frames["ds/err_xy_m"].shape == (n, 2) and frames["ds/cov_volume_xy"].shape == (n, 2, 2)
    d = np.linalg.norm(frames["ds/err_xy_m"], axis=1)
    assert acc["recall_position"]["5m"] == pytest.approx(np.mean(d <= 5))
    assert np.all((frames["ds/mode_mass"] > 0) & (frames["ds/mode_mass"] <= 1 + 1e-9))
    offset = np.linalg.norm(frames["ds/prior_offset_xy_m"], axis=1)  # prior drawn at 2 m sigma
    assert offset.shape == (n,) and np.all((offset > 0) & (offset < 20))
    assert frames["ds/truth_yaw_rad"].shape == (n,)


def test_the_centre_band_is_dropped_from_the_share_of_frames_asked_and_recorded(tiny, tmp_path):
    """`centre_drop` leaves the cells within 3.5 m of the car's axis out of the template of
    that share of frames, the same ones for a seed, and changes what is learned."""
    from geoloc_ros.errors import ConfigError
    from geoloc_ros.neuralmap.data import SimData, TrainingSet, drop_centre_band

    tc = TrainConfig(**TINY)
    cfg = tc.model_config()
    data = SimData([tiny / "ds"], "train", cfg)
    y_m = cfg.bev_origin_m[1] + (np.arange(cfg.bev_shape[1]) + 0.5) * cfg.res_m
    band = np.abs(y_m) < 3.5
    full = np.ones(cfg.bev_shape, np.float32)
    cut = drop_centre_band(full, cfg, 3.5)
    assert band.sum() == 6 and (cut[:, band] == 0).all() and (cut[:, ~band] == 1).all()
    assert (full == 1).all()  # the input is not modified
    always = TrainingSet(data, 4, 8, 0, True, centre_drop=1.0)
    never = TrainingSet(data, 4, 8, 0, True, centre_drop=0.0)
    half = TrainingSet(data, 4, 8, 0, True, centre_drop=0.5)
    n = len(never)
    v_never = [never[i]["valid"].numpy() for i in range(n)]
    v_always = [always[i]["valid"].numpy() for i in range(n)]
    assert any(v[:, band].any() for v in v_never)
    assert all(not v[:, band].any() for v in v_always)
    for a, b in zip(v_always, v_never, strict=True):
        np.testing.assert_array_equal(a[:, ~band], b[:, ~band])
    dropped = [not half[i]["valid"].numpy()[:, band].any() for i in range(n)]
    assert dropped == [not half[i]["valid"].numpy()[:, band].any() for i in range(n)]
    assert 0 < sum(dropped) < n
    one = {**TINY, "epochs": 1}
    plain = train_neuralmap([tiny / "ds"], tmp_path / "a", TrainConfig(**one), progress=False)
    drop = train_neuralmap([tiny / "ds"], tmp_path / "b", TrainConfig(**one, centre_drop=1.0),
                           progress=False)  # fmt: skip
    assert drop.training["config"]["centre_drop"] == 1.0
    learned = [k for k in plain.state if "running_" not in k and "num_batches" not in k]
    assert any(not np.allclose(drop.state[k], plain.state[k]) for k in learned)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="centre_drop"):
            TrainConfig(**one, centre_drop=bad)


def test_a_checkpoint_from_before_an_option_existed_resumes(tiny, tmp_path):
    """A checkpoint whose stored config lacks an option added later resumes when that
    option is at its default, and is refused when it is not."""
    import torch

    from geoloc_ros.errors import ConfigError

    tc = TrainConfig(**TINY, stop_after=1)
    train_neuralmap([tiny / "ds"], tmp_path / "a", tc, progress=False)
    ckpt = tmp_path / "a" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    del state["train_config"]["centre_drop"]
    torch.save(state, ckpt)
    with pytest.raises(ConfigError, match="another training config"):
        train_neuralmap([tiny / "ds"], tmp_path / "a", TrainConfig(**TINY, centre_drop=0.5),
                        resume=True, progress=False)  # fmt: skip
    done = train_neuralmap([tiny / "ds"], tmp_path / "a", TrainConfig(**TINY), resume=True,
                           progress=False)  # fmt: skip
    assert done is not None and done.training["train_samples"] == 4
