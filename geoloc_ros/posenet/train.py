"""`geoloc train posenet`: fit, calibrate on val, evaluate on test, write a model folder.

Deterministic for a seed (shuffles and augmentation come from seeded generators, one
per epoch, so a resumed run continues exactly). A checkpoint is written after every
epoch (`checkpoint.pt`, loaded with weights_only=True); `train_log.csv` has one row
per epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.modelcard import read_card
from geoloc_ros.posenet.bundle import CARD, FORMAT, PoseNetBundle, state_of
from geoloc_ros.posenet.data import load_splits, to_tensor_batch
from geoloc_ros.posenet.evaluate import errors, features, predict, summary
from geoloc_ros.posenet.halfturn import check_half_turn, half_turn_poses
from geoloc_ros.posenet.mc import Calibration, fit_calibration
from geoloc_ros.posenet.model import HomoscedasticPoseLoss, PoseNet, PoseNetConfig
from geoloc_ros.posenet.novelty import fit_novelty
from geoloc_ros.trainlog import TrainLog

log = logging.getLogger(__name__)

LOG_FIELDS = ["epoch", "loss", "l_p", "l_q", "l_c", "s_p", "s_q", "s_c", "lr", "val_median_m",
              "val_median_deg", "seconds"]  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 0  # 0 = torch's default
    input_hw: tuple[int, int] = (120, 160)
    channels: int = 3
    dropout: float = 0.3
    mc_samples: int = 32
    anchors: int = 256  # 0 = direct position regression (original PoseNet)
    max_train: int = 0  # 0 = all training samples (a smaller number for quick checks)
    half_turn: bool = False  # nadir cameras: each image also shown turned 180 deg (halfturn.py)
    init: str = ""  # model folder to start from (fine-tuning; keeps its anchors and scaling)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 2 or not self.lr > 0:
            raise ConfigError(f"need epochs >= 1, batch >= 2, lr > 0: {self}")


def _augment(x, g):
    """Light photometric jitter (brightness, colour balance, noise) in place.

    Light on purpose: the simulated images already vary sun, season, haze and exposure
    per sample, and stronger jitter (with input dropout) kept the network from fitting.
    """
    import torch  # noqa: PLC0415

    b = x.shape[0]
    gain = 1.0 + 0.15 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 2
    tint = 1.0 + 0.05 * (torch.rand(b, x.shape[1], 1, 1, generator=g) - 0.5) * 2
    bias = 0.1 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 2
    x.mul_(gain * tint).add_(bias)
    x.add_(0.02 * torch.randn(x.shape, generator=g))
    return x.clamp_(-1.5, 1.5)


def train_posenet(data, out: str | Path, tc: TrainConfig, resume: bool = False,
                  progress: bool = True, command: str = "") -> PoseNetBundle:  # fmt: skip
    """Train on `data` (one dataset folder, or a list of folders of the same area)."""
    import torch  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    train = load_splits(data, "train", tc.input_hw, tc.channels, progress)
    val = load_splits(data, "val", tc.input_hw, tc.channels, progress)
    n_train = len(train) if not tc.max_train else min(tc.max_train, len(train))
    if tc.init:
        cfg, model = _initial_model(tc, train.area)
    else:
        p_mean = train.p_m.mean(0)
        p_scale = np.maximum(train.p_m.std(0), 1.0)
        anchors, anchor_scale = _anchors(train.p_m[:, :2], tc.anchors, tc.seed)
        cfg = PoseNetConfig(
            input_hw=tc.input_hw, channels=tc.channels, dropout=tc.dropout,
            p_mean_m=tuple(float(v) for v in p_mean), p_scale_m=tuple(float(v) for v in p_scale),
            anchors_xy_m=anchors, anchor_scale_m=anchor_scale,
        )  # fmt: skip
        model = PoseNet(cfg)
    crit = HomoscedasticPoseLoss(cfg)
    opt = torch.optim.AdamW([*model.parameters(), *crit.parameters()], lr=tc.lr,
                            weight_decay=tc.weight_decay)  # fmt: skip
    steps = tc.epochs * ((n_train + tc.batch - 1) // tc.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, tc.lr, total_steps=steps, pct_start=0.15)
    ckpt = out / "checkpoint.pt"
    start = 0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        if state["train_config"] != _tc_dict(tc):
            raise ConfigError(f"{ckpt} was made with another training config; use a new --out")
        model.load_state_dict(state["model"])
        crit.load_state_dict(state["loss"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["epoch"])
        log.info("resuming %s after epoch %d", ckpt, start)
    elif ckpt.is_file():
        raise ConfigError(f"{out} already holds a training run; pass --resume or a new --out")
    rec = TrainLog(out / "train_log.csv", LOG_FIELDS, fresh=start == 0)
    t_start = time.monotonic()
    p_all = torch.from_numpy(train.p_m).float()
    q_all = torch.from_numpy(train.q_xyzw).float()
    if tc.half_turn:
        check_half_turn(train.camera)
        p_turn, q_turn = half_turn_poses(train.p_m, train.q_xyzw, train.camera["T_base_cam"])
        p_turn, q_turn = torch.from_numpy(p_turn).float(), torch.from_numpy(q_turn).float()
    for epoch in range(start, tc.epochs):
        t0 = time.monotonic()
        g = torch.Generator().manual_seed(tc.seed * 100_003 + epoch)
        model.train()
        perm = torch.randperm(len(train), generator=g)[:n_train]
        sums = np.zeros(4)
        batches = range(0, n_train, tc.batch)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not progress,
                   leave=False)  # fmt: skip
        for a in bar:
            idx = perm[a : a + tc.batch]
            x = _augment(to_tensor_batch(train.images[idx.numpy()]), g)
            p_b, q_b = p_all[idx], q_all[idx]
            if tc.half_turn:
                turn = torch.rand(len(idx), generator=g) < 0.5
                x[turn] = x[turn].flip(2, 3)
                p_b = torch.where(turn[:, None], p_turn[idx], p_b)
                q_b = torch.where(turn[:, None], q_turn[idx], q_b)
            loss, l_p, l_q, l_c = crit(model(x, g), p_b, q_b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums += [loss.item(), l_p.item(), l_q.item(), l_c.item()]
            bar.set_postfix(loss=f"{sums[0] / (a // tc.batch + 1):.3f}")
        k = len(batches)
        model.eval()
        v_p, v_r = _deterministic_errors(model, val)
        row = {
            "epoch": epoch + 1, "loss": sums[0] / k, "l_p": sums[1] / k, "l_q": sums[2] / k,
            "l_c": sums[3] / k, "s_p": crit.s_p.item(), "s_q": crit.s_q.item(),
            "s_c": crit.s_c.item(), "lr": sched.get_last_lr()[0],
            "val_median_m": float(np.median(v_p)), "val_median_deg": float(np.median(v_r)),
            "seconds": time.monotonic() - t0,
        }  # fmt: skip
        rec.row(row)
        log.info(
            "epoch %d: loss %.3f, val median %.2f m %.2f deg, %.0f s", epoch + 1, row["loss"],
            row["val_median_m"], row["val_median_deg"], row["seconds"],
        )  # fmt: skip
        _save_checkpoint(ckpt, model, crit, opt, sched, epoch + 1, tc)
    train_s = time.monotonic() - t_start
    return _finish(model.eval(), cfg, tc, data, out, train, val, train_s, progress, command)


def _initial_model(tc: TrainConfig, area: dict):
    """The config and weights of `tc.init` (sha256-checked), if they fit this run.

    Its anchors and position scaling are kept (`tc.anchors` is not used): the weights
    only mean something with the anchors they were trained against.
    """
    from geoloc_ros.posenet.bundle import build_torch_model, load_bundle  # noqa: PLC0415

    base = load_bundle(tc.init)
    cfg = base.config
    if tuple(cfg.input_hw) != tuple(tc.input_hw) or cfg.channels != tc.channels:
        raise ConfigError(
            f"--init {tc.init} takes {cfg.channels}-channel {cfg.input_hw[0]}x{cfg.input_hw[1]} "
            f"input, this run {tc.channels}-channel {tc.input_hw[0]}x{tc.input_hw[1]}"
        )
    base.check_area(area.get("datum"), area.get("layout_sha256"))
    return cfg, build_torch_model(base).train()


def _data_names(data) -> str:
    return str(data) if isinstance(data, (str, Path)) else " ".join(str(d) for d in data)


def _anchors(xy_m: np.ndarray, k: int, seed: int):
    """K k-means anchors of the training positions and the offset unit (their spacing)."""
    if not k:
        return (), 1.0
    from scipy.cluster.vq import kmeans2  # noqa: PLC0415
    from scipy.spatial import cKDTree  # noqa: PLC0415

    k = min(k, len(xy_m) // 4)
    if k < 2:
        raise ConfigError(f"{len(xy_m)} training poses are too few for anchors; use --anchors 0")
    centres, _ = kmeans2(xy_m, k, minit="++", seed=seed)
    d, _ = cKDTree(centres).query(centres, k=2)
    scale = float(max(np.median(d[:, 1]), 1.0))
    return tuple((float(x), float(y)) for x, y in centres), scale


def _tc_dict(tc: TrainConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(tc).items()}


def _save_checkpoint(path: Path, model, crit, opt, sched, epoch: int, tc: TrainConfig) -> None:
    import torch  # noqa: PLC0415

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "loss": crit.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch, "train_config": _tc_dict(tc)}, tmp)  # fmt: skip
    tmp.replace(path)


def _deterministic_errors(model, split, batch: int = 128):
    """Position [m] and rotation [deg] errors of the dropout-free pass."""
    import torch  # noqa: PLC0415

    from geoloc_ros.posenet.mc import decode, rotation_errors  # noqa: PLC0415

    cfg = model.cfg
    outs = []
    with torch.inference_mode():
        for a in range(0, len(split), batch):
            x = to_tensor_batch(split.images[a : a + batch])
            f = model.backbone(x)
            outs.append(model.head(f, torch.ones(len(f), cfg.hidden)).numpy())
    s = decode(np.concatenate(outs), cfg)
    e_p = np.linalg.norm(split.p_m - s.p_m, axis=1)
    e_r = np.degrees(np.linalg.norm(rotation_errors(split.q_xyzw, s.q_xyzw), axis=1))
    return e_p, e_r


def _finish(model, cfg, tc, data, out, train, val, train_s, progress, command) -> PoseNetBundle:
    """Calibrate on val, evaluate on test, write the model folder and its metrics."""
    from geoloc_ros.runtime.posenet_backends import TorchRunner  # noqa: PLC0415

    bundle = PoseNetBundle(cfg, train.area, Calibration(), state_of(model))
    runner = TorchRunner(bundle)
    sub = np.random.default_rng(tc.seed).permutation(len(train))[:4000]
    nov = fit_novelty(features(runner, train.images[np.sort(sub)]), features(runner, val.images))
    bundle.state.update(nov.tensors())
    pv = predict(runner, cfg, val.images, tc.mc_samples, tc.seed + 1, progress, nov)
    e_p, e_r = errors(pv, val.p_m, val.q_xyzw)
    bundle.calibration = fit_calibration(e_p, e_r, pv.cov_raw, Calibration())
    metrics = {"val": summary(pv, val.p_m, val.q_xyzw, bundle.calibration)}
    try:
        test = load_splits(data, "test", tc.input_hw, tc.channels, progress)
    except ConfigError as exc:
        log.warning("no test split: %s", exc)
    else:
        pt = predict(runner, cfg, test.images, tc.mc_samples, tc.seed + 2, progress, nov)
        metrics["test"] = summary(pt, test.p_m, test.q_xyzw, bundle.calibration)
    bundle.metrics = metrics
    bundle.training = {
        "command": command, "data": _data_names(data), "train_samples": len(train),
        "val_samples": len(val), "config": _tc_dict(tc), "seconds": round(train_s, 1),
    }  # fmt: skip
    if tc.init:  # the run it started from, and so on back: the whole recipe in one card
        bundle.training["init"] = read_card(Path(tc.init) / CARD, "posenet", FORMAT,
                                            "PoseNet model").get("training", {})  # fmt: skip
    bundle.save(out)
    return bundle
