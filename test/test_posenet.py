"""PoseNet: MC statistics, calibration, training/resume, model bundle safety, ONNX parity."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.posenet.bundle import load_bundle
from geoloc_ros.posenet.data import load_split, load_splits
from geoloc_ros.posenet.localizer import PoseNetLocalizer, PoseNetParams, shipped_model_dir
from geoloc_ros.posenet.mc import (
    CHI2_95_3DOF,
    Calibration,
    PoseSamples,
    coverage,
    fit_calibration,
    mean_pose,
    sample_covariance,
)
from geoloc_ros.posenet.train import TrainConfig, train_posenet
from geoloc_ros.runtime.posenet_backends import export_onnx, make_runner
from test.posenet_fixtures import DATUM, pattern, write_posed_folder

TINY = TrainConfig(epochs=2, batch=8, input_hw=(32, 48), mc_samples=8, seed=3)


@pytest.fixture(scope="module")
def posed(tmp_path_factory):
    return write_posed_folder(tmp_path_factory.mktemp("posed") / "area")


@pytest.fixture(scope="module")
def tiny_model(posed, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    train_posenet(posed, out, TINY, progress=False)
    return out


def _samples(p0, q0, cov6, n, rng):
    d = rng.multivariate_normal(np.zeros(6), cov6, n)
    q = (Rotation.from_rotvec(d[:, 3:]) * Rotation.from_quat(q0)).as_quat()
    return PoseSamples(p0 + d[:, :3], q)


def test_mc_statistics_recover_mean_and_parent_frame_covariance():
    rng = np.random.default_rng(0)
    p0 = np.array([10.0, -5.0, 2.0])
    q0 = Rotation.from_euler("z", 90, degrees=True).as_quat()  # body x = parent y
    cov = np.diag([1.0, 4.0, 0.25, 1e-4, 1e-2, 1e-6])
    cov[0, 1] = cov[1, 0] = 1.2
    cov[1, 5] = cov[5, 1] = 5e-5
    s = _samples(p0, q0, cov, 40000, rng)
    p, q = mean_pose(s)
    assert np.allclose(p, p0, atol=0.05)
    assert np.degrees((Rotation.from_quat(q).inv() * Rotation.from_quat(q0)).magnitude()) < 0.2
    got = sample_covariance(s, p, q)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(got - cov) <= 0.04 * scale)
    # the rotation block is about the parent's axes: in the body frame x and y would swap
    assert got[4, 4] > 50 * got[3, 3]


def test_quaternion_mean_is_sign_invariant():
    q = Rotation.from_euler("z", [[170], [-170], [180]], degrees=True).as_quat()
    q[1] *= -1  # the same rotation from the other hemisphere
    _, qm = mean_pose(PoseSamples(np.zeros((3, 3)), q))
    assert abs(abs(Rotation.from_quat(qm).as_euler("zyx", degrees=True)[0]) - 180) < 0.01


def test_calibration_scales_overconfident_covariances_to_95_percent():
    rng = np.random.default_rng(1)
    n = 4000
    cov = np.tile(np.diag([0.25, 0.25, 0.04, 1e-4, 1e-4, 4e-4]), (n, 1, 1))
    true_scale = 3.0  # errors are 3x bigger than the samples say
    e = rng.multivariate_normal(np.zeros(6), cov[0] * true_scale**2, n)
    base = Calibration(floor_p_m=0.0, floor_r_rad=0.0)
    assert coverage(e[:, :3], cov[:, :3, :3]) < 0.5
    cal = fit_calibration(e[:2000, :3], e[:2000, 3:], cov[:2000], base)
    assert cal.scale_p == pytest.approx(true_scale, rel=0.08)
    assert cal.scale_r == pytest.approx(true_scale, rel=0.08)
    held_out = cal.apply_batch(cov[2000:])
    assert 0.93 <= coverage(e[2000:, :3], held_out[:, :3, :3]) <= 0.97
    assert pytest.approx(7.8147, abs=1e-3) == CHI2_95_3DOF


def test_training_writes_a_checked_model_and_resume_is_exact(posed, tiny_model, tmp_path):
    card = json.loads((tiny_model / "posenet.json").read_text())
    assert set(card["metrics"]) == {"val", "test"}
    assert card["area"]["datum"] == DATUM
    log_rows = (tiny_model / "train_log.csv").read_text().splitlines()
    assert len(log_rows) == 1 + TINY.epochs
    # one epoch, stop, resume for the second: the same weights as the straight run
    straight = load_bundle(tiny_model).state
    resumed_dir = tmp_path / "resumed"
    import torch

    from geoloc_ros.posenet import train as train_mod

    cfg = TINY
    # stop after the first epoch's checkpoint, as a Ctrl-C would
    calls = {"n": 0}
    real = train_mod._save_checkpoint

    def stop_after_first(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    train_mod._save_checkpoint = stop_after_first
    try:
        with pytest.raises(KeyboardInterrupt):
            train_posenet(posed, resumed_dir, cfg, progress=False)
    finally:
        train_mod._save_checkpoint = real
    with pytest.raises(ConfigError, match="--resume"):
        train_posenet(posed, resumed_dir, cfg, progress=False)
    train_posenet(posed, resumed_dir, cfg, resume=True, progress=False)
    resumed = load_bundle(resumed_dir).state
    for k, v in straight.items():
        assert torch.allclose(torch.from_numpy(v), torch.from_numpy(resumed[k]), atol=1e-6), k


def test_bundle_refuses_corrupt_weights_other_areas_and_unknown_keys(tiny_model, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(tiny_model, m)
    b = load_bundle(m)
    with pytest.raises(ConfigError, match="another area"):
        b.check_area([48.8566, 2.3522, 35.0])  # Paris, not the datum it was trained at
    b.check_area(DATUM)
    b.area = dict(b.area, layout_sha256="a" * 64)
    with pytest.raises(ConfigError, match="not this world"):
        b.check_area(DATUM, "b" * 64)
    card = json.loads((m / "posenet.json").read_text())
    card["config"]["dropuot"] = 0.2
    (m / "posenet.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="unknown PoseNet config keys"):
        load_bundle(m)
    card = json.loads((tiny_model / "posenet.json").read_text())
    (m / "posenet.json").write_text(json.dumps({**card, "format": 1}))  # input-dropout era
    with pytest.raises(ConfigError, match="not a format-2 PoseNet"):
        load_bundle(m)
    shutil.copy(tiny_model / "posenet.json", m / "posenet.json")
    raw = bytearray((m / "posenet.safetensors").read_bytes())
    raw[-10] ^= 0xFF
    (m / "posenet.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="corrupt or was replaced"):
        load_bundle(m)


def test_onnx_export_matches_torch(tiny_model, posed, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(tiny_model, m)
    b = load_bundle(m)
    export_onnx(b)
    b = load_bundle(m)  # the card now names and hashes the ONNX files
    torch_r, ort_r = make_runner(b, "torch"), make_runner(b, "onnxruntime")
    from geoloc_ros.posenet.data import to_input_array

    test = load_split(posed, "test", b.config.input_hw, 3, progress=False)
    x = to_input_array(test.images)
    f_t, f_o = torch_r.features(x), ort_r.features(x)
    assert np.abs(f_t - f_o).max() <= 1e-4
    loc = PoseNetLocalizer(b, torch_r, PoseNetParams(samples=16))
    masks = loc.masks(16)
    one_frame = torch_r.head(f_t[:1], masks)  # one frame broadcast to its 16 samples
    assert one_frame.shape == (16, b.config.out_dim)
    assert np.abs(one_frame - ort_r.head(f_t[:1], masks)).max() <= 1e-4
    # a batch of frames, one mask each, gives each frame its own sample
    f4 = f_t[:4]
    assert np.abs(torch_r.head(f4, masks[:4]) - ort_r.head(f4, masks[:4])).max() <= 1e-4
    assert np.allclose(torch_r.head(f4, masks[:4])[1], torch_r.head(f4[1:2], masks[1:2])[0],
                       atol=1e-5)  # fmt: skip
    with pytest.raises(ConfigError, match="TensorrtExecutionProvider"):
        make_runner(b, "tensorrt")


def test_localizer_rejects_wrong_images_and_withholds_uncertain_fixes(tiny_model):
    loc = PoseNetLocalizer.from_params(PoseNetParams(model=str(tiny_model), samples=8))
    img = pattern(3.0, 4.0, 0.5)
    res = loc.localize(img, 12.5)
    assert res.fix.t_s == 12.5 and res.fix.dof == 6 and res.fix.source == "posenet"
    assert np.all(np.linalg.eigvalsh(res.fix.cov_pose_6x6) > 0)
    with pytest.raises(InputRejected, match="RGB"):
        loc.localize(img[:, :, 0], 1.0)  # a mono camera on a colour model
    with pytest.raises(InputRejected, match="8-bit"):
        loc.localize(img.astype(np.float32), 1.0)
    with pytest.raises(InputRejected, match="too small"):
        loc.localize(img[:4, :4], 1.0)
    strict = PoseNetLocalizer.from_params(
        PoseNetParams(model=str(tiny_model), samples=8, max_sigma_m=1e-3)
    )
    assert strict.localize(img, 1.0).withheld


def test_posed_folder_format_errors_are_clear(tmp_path, posed):
    bad = tmp_path / "bad"
    shutil.copytree(posed, bad)
    (bad / "poses.csv").write_text("img,x,y\n")
    with pytest.raises(ConfigError, match="header"):
        load_split(bad, "train", (32, 48), 3, progress=False)
    (bad / "area.json").unlink()
    with pytest.raises(ConfigError, match=r"area\.json"):
        load_split(bad, "train", (32, 48), 3, progress=False)
    with pytest.raises(ConfigError, match="neither"):
        load_split(tmp_path / "nothing", "train", (32, 48), 3, progress=False)


def test_several_datasets_of_one_area_concatenate_and_other_areas_are_refused(posed, tmp_path):
    more = write_posed_folder(tmp_path / "more", n=40, seed=5)
    one = load_split(posed, "train", (32, 48), 3, progress=False)
    two = load_split(more, "train", (32, 48), 3, progress=False)
    both = load_splits([posed, more], "train", (32, 48), 3, progress=False)
    assert len(both) == len(one) + len(two)
    assert np.array_equal(both.images[len(one) :], two.images)
    assert np.array_equal(both.p_m[: len(one)], one.p_m)
    other = write_posed_folder(tmp_path / "other", n=20, seed=6)
    area = json.loads((other / "area.json").read_text())
    (other / "area.json").write_text(json.dumps({**area, "datum": [48.0, 9.0, 300.0]}))
    with pytest.raises(ConfigError, match="another area"):
        load_splits([posed, other], "train", (32, 48), 3, progress=False)


def test_euroc_folder_gives_chronological_posed_splits(shared_data):
    root = shared_data / "micro_euroc"
    splits = {s: load_split(root, s, (48, 64), 1, progress=False) for s in ("train", "val", "test")}
    n = sum(len(v) for v in splits.values())
    assert n >= 90  # 95 cam0 frames inside the Vicon record
    assert len(splits["test"]) == pytest.approx(0.3 * n, abs=1)
    assert splits["train"].images.shape[1:] == (48, 64, 1)
    assert splits["train"].names[-1] < splits["val"].names[0] < splits["test"].names[0]
    with pytest.raises(InputRejected, match="mono"):
        from geoloc_ros.posenet.data import prepare_image

        prepare_image(np.zeros((480, 752), np.uint8), (48, 64), 3)


def test_anchor_head_decodes_best_anchor_plus_offset_and_loss_targets_it():
    import torch

    from geoloc_ros.posenet.mc import decode
    from geoloc_ros.posenet.model import HomoscedasticPoseLoss, PoseNetConfig

    cfg = PoseNetConfig(anchors_xy_m=((0.0, 0.0), (100.0, 0.0)), anchor_scale_m=10.0,
                        p_mean_m=(0.0, 0.0, 2.0), p_scale_m=(1.0, 1.0, 4.0))  # fmt: skip
    assert cfg.out_dim == 3 * 2 + 5
    out = np.array([[0.0, 5.0, 9.0, 9.0, 0.5, -0.2, 0.25, 0.0, 0.0, 0.0, 2.0]])
    s = decode(out, cfg)
    assert s.p_m[0] == pytest.approx([105.0, -2.0, 3.0])
    assert s.q_xyzw[0] == pytest.approx([0, 0, 0, 1.0])
    crit = HomoscedasticPoseLoss(cfg)
    perfect = torch.tensor([[-20.0, 20.0, 9.0, 9.0, 0.5, -0.2, 0.25, 0.0, 0.0, 0.0, 1.0]])
    _, l_p, l_q, l_c = crit(
        perfect, torch.tensor([[105.0, -2.0, 3.0]]), torch.tensor([[0, 0, 0, 1.0]])
    )
    assert float(l_p) == pytest.approx(0.0, abs=1e-6) and float(l_q) < 1e-6 and float(l_c) < 1e-6
    wrong = perfect.clone()
    wrong[0, :2] = torch.tensor([20.0, -20.0])  # confident in the other anchor
    assert (
        float(crit(wrong, torch.tensor([[105.0, -2.0, 3.0]]), torch.tensor([[0, 0, 0, 1.0]]))[3])
        > 30
    )


def test_anchor_confidence_and_signal_ranks_order_frames_by_how_unsure_they_are():
    from geoloc_ros.posenet.evaluate import SplitPrediction, signal_ranks
    from geoloc_ros.posenet.mc import anchor_confidence
    from geoloc_ros.posenet.model import PoseNetConfig

    cfg = PoseNetConfig(anchors_xy_m=((0.0, 0.0), (100.0, 0.0)), anchor_scale_m=10.0,
                        p_mean_m=(0.0, 0.0, 2.0), p_scale_m=(1.0, 1.0, 4.0))  # fmt: skip
    out = np.zeros((4, cfg.out_dim))
    out[:, :2] = [20.0, 0.0]  # every sample sure of anchor 0
    assert anchor_confidence(out, cfg) == pytest.approx((1.0, 1.0))
    out[2:, :2] = [0.0, 20.0]  # half the samples on the other anchor
    pmax, agree = anchor_confidence(out, cfg)
    assert pmax == pytest.approx(0.5) and agree == pytest.approx(0.5)

    # frames whose spread and anchor doubt grow with the error rank it perfectly;
    # a novelty score that does not vary with it does not
    err = np.arange(1.0, 21.0)
    cov = np.stack([np.eye(6) * e for e in err])
    pred = SplitPrediction(np.zeros((20, 3)), np.tile([0, 0, 0, 1.0], (20, 1)), cov,
                           np.ones(20), 1.0 - err / 100, 1.0 - err / 50)  # fmt: skip
    ranks = signal_ranks(pred, err)
    assert ranks["mc_spread"] == pytest.approx(1.0)
    assert ranks["anchor_1_minus_pmax"] == pytest.approx(1.0)
    assert ranks["anchor_disagreement"] == pytest.approx(1.0)
    assert np.isnan(ranks["novelty_inflation"])  # constant: no ranking at all
    shuffled = signal_ranks(pred, err[::-1])
    assert shuffled["mc_spread"] == pytest.approx(-1.0)


@pytest.mark.parametrize("platform", ["car", "drone"])
def test_shipped_model_loads_and_is_small(platform):
    d = shipped_model_dir(platform)
    if not (d / "posenet.json").is_file():
        pytest.fail(f"the shipped PoseNet model is missing from {d}")
    b = load_bundle(d)  # checks sha256 of the weights
    size = sum(p.stat().st_size for p in d.iterdir())
    assert size <= 20 * 2**20
    assert b.area.get("layout_sha256"), "the shipped model must name the world it knows"
    for name in b.files:
        b.path(name)  # every file the card names exists and matches its hash


def test_platform_names_the_shipped_model_and_bad_parameters_are_refused():
    assert shipped_model_dir("car").name == "posenet_demo"
    assert shipped_model_dir("drone").name == "posenet_demo_drone"
    with pytest.raises(ConfigError, match="platform"):
        PoseNetParams(platform="boat")
    with pytest.raises(ConfigError, match="threads"):
        PoseNetParams(threads=-1)


def test_the_onnxruntime_backend_runs_the_shipped_model_without_importing_torch():
    """Model card, calibration, novelty and the ONNX graphs need no torch: a node on
    onnxruntime saves its import (about 2 s) and its thread pool."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from geoloc_ros.posenet.localizer import PoseNetLocalizer, PoseNetParams\n"
        "loc = PoseNetLocalizer.from_params(PoseNetParams(backend='onnxruntime', threads=1))\n"
        "r = loc.localize(np.zeros((240, 320, 3), np.uint8), 0.0)\n"
        "assert np.isfinite(r.fix.p_m).all()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_fine_tuning_starts_from_the_given_model_and_refuses_one_that_does_not_fit(
    posed, tiny_model, tmp_path
):
    import dataclasses

    base = load_bundle(tiny_model)
    still = dataclasses.replace(TINY, epochs=1, lr=1e-9, init=str(tiny_model))
    train_posenet(posed, tmp_path / "tuned", still, progress=False)
    train_posenet(posed, tmp_path / "fresh", dataclasses.replace(still, init=""), progress=False)
    tuned, fresh = load_bundle(tmp_path / "tuned"), load_bundle(tmp_path / "fresh")
    assert tuned.config.anchors_xy_m == base.config.anchors_xy_m
    assert tuned.training["init"] == base.training  # the card carries the recipe it started from
    assert "init" not in fresh.training
    weights = [k for k in base.state if k.endswith("weight") and base.state[k].ndim > 1]
    assert weights
    for k in weights:  # at lr 1e-9 the weights stay the init's, not a fresh draw
        assert np.allclose(tuned.state[k], base.state[k], atol=1e-6), k
    assert not all(np.allclose(fresh.state[k], base.state[k], atol=1e-3) for k in weights)
    with pytest.raises(ConfigError, match="input"):
        train_posenet(posed, tmp_path / "bad_hw", dataclasses.replace(still, input_hw=(40, 48)),
                      progress=False)  # fmt: skip
    other = tmp_path / "other_area"
    shutil.copytree(posed, other)
    area = json.loads((other / "area.json").read_text())
    area["datum"] = [DATUM[0] + 0.01, DATUM[1], DATUM[2]]
    (other / "area.json").write_text(json.dumps(area))
    with pytest.raises(ConfigError, match="another area"):
        train_posenet(other, tmp_path / "bad_area", still, progress=False)
