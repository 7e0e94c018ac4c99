"""`geoloc train neuralmap`: negative log-likelihood of the true (x, y, yaw) in the volume.

Each sample is a camera frame and a map crop holding `positions` x `positions`
candidate cells; the loss is -log p(true yaw bin, true cell). Deterministic for a
seed; `checkpoint.pt` (weights_only) is written every `checkpoint_every` steps and
at each epoch end, and `--resume` continues exactly where it stopped.

Several processes (torchrun) train one model with DistributedDataParallel: each
takes every world_size-th sample of the epoch's permutation; gloo on CPU, NCCL on
GPUs. Only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.neuralmap.config import NeuralMapConfig
from geoloc_ros.trainlog import TrainLog

log = logging.getLogger(__name__)

LOG_FIELDS = ["step", "epoch", "loss", "lr", "scale", "val_loss", "val_r1m", "val_r3m",
              "val_r3deg", "seconds"]  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    platform: str = "car"
    epochs: int = 6
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 0
    positions: int = 48  # candidate cells per axis in a training crop
    yaw_bins: int = 64
    workers: int = 1
    max_train: int = 0
    val_samples: int = 200
    checkpoint_every: int = 100
    device: str = "cpu"
    stop_after: int = 0  # end this run after so many steps (0 = never); --resume continues
    init: str = ""  # model folder whose weights start the training (fine-tuning)
    # network input; None = the --init model's, else the platform's default (stages 4-6 of
    # the drone model silently went 240x320 -> 176x240 when None meant the platform's)
    input_hw: tuple[int, int] | None = None
    bev_depth_m: float | None = None  # car BEV reach ahead; None = the platform's default
    along_weight: float = 0.0  # weight of losses.along_street_nll beside the volume's nll
    centre_drop: float = 0.0  # share of car frames trained without their BEV centre band

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1 or not self.lr > 0 or self.positions < 4:
            raise ConfigError(f"need epochs >= 1, batch >= 1, lr > 0, positions >= 4: {self}")
        if not 0.0 <= self.along_weight < float("inf"):
            raise ConfigError(f"along_weight must be >= 0, got {self.along_weight}")
        if not 0.0 <= self.centre_drop <= 1.0:
            raise ConfigError(f"centre_drop must be in [0, 1], got {self.centre_drop}")

    def model_config(self) -> NeuralMapConfig:
        """The architecture this training builds: the platform's defaults, the input size
        (given, else the --init model's), and for cars the BEV's reach (one depth bin per
        cell)."""
        kw: dict = {}
        if self.input_hw is not None:
            kw["input_hw"] = tuple(self.input_hw)
        elif self.init:
            from geoloc_ros.neuralmap.bundle import load_bundle  # noqa: PLC0415

            kw["input_hw"] = tuple(load_bundle(self.init).config.input_hw)
        if self.bev_depth_m is not None:
            if self.platform != "car":
                raise ConfigError("bev_depth_m applies to the car's forward camera only")
            res = NeuralMapConfig.for_platform(self.platform).res_m
            kw["depth_max_m"] = float(self.bev_depth_m)
            kw["depth_bins"] = max(4, round(self.bev_depth_m / res))
        return NeuralMapConfig.for_platform(self.platform, **kw)


def _tc_dict(tc: TrainConfig) -> dict:
    """The config a checkpoint must match to resume (stop_after is per run)."""
    d = dataclasses.asdict(tc)
    d.pop("stop_after")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def make_step_module(cfg: NeuralMapConfig, yaw_bins: int):
    """nn.Module: batch -> log volume (B, K, P, P); DDP wraps it whole."""
    from torch import nn  # noqa: PLC0415

    from geoloc_ros.neuralmap.matcher import TemplateRotator, correlate, log_volume  # noqa: PLC0415
    from geoloc_ros.neuralmap.model import NeuralMapNet  # noqa: PLC0415

    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = NeuralMapNet(cfg)
            self.rotator = TemplateRotator(cfg, yaw_bins)

        def forward(self, image, grid, valid, elevation, raster):
            feat, conf = self.net.bev(image, grid, valid, elevation)
            fmap = self.net.map_features(raster)
            scores = correlate(fmap, self.rotator(feat, conf))
            return log_volume(scores, self.net.log_scale)

    return Step()


def _dist():
    """(rank, world_size), initialising torch.distributed under torchrun."""
    import torch.distributed as dist  # noqa: PLC0415

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if os.environ.get("GEOLOC_DDP_BACKEND") == "nccl" else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def train_neuralmap(datasets: list[str], out: str | Path, tc: TrainConfig, resume: bool = False,
                    progress: bool = True, command: str = ""):  # fmt: skip
    """Train; returns the saved NeuralMapBundle (rank 0) or None (other ranks)."""
    import torch  # noqa: PLC0415
    from torch.utils.data import DataLoader  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from geoloc_ros.neuralmap.data import SimData, TrainingSet  # noqa: PLC0415
    from geoloc_ros.neuralmap.losses import along_street_nll, nll  # noqa: PLC0415

    rank, world = _dist()
    out = Path(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    cfg = tc.model_config()
    device = torch.device(tc.device)
    worlds: dict = {}  # each world loaded and resampled once for both splits
    train_data = SimData(datasets, "train", cfg, worlds)
    train = TrainingSet(train_data, tc.positions, tc.yaw_bins, tc.seed, True, tc.centre_drop)
    val_data = SimData(datasets, "val", cfg, worlds)
    val_idx = np.random.default_rng(tc.seed).permutation(len(val_data.samples))[: tc.val_samples]
    val_data.samples = [val_data.samples[i] for i in sorted(val_idx)]
    val = TrainingSet(val_data, tc.positions, tc.yaw_bins, tc.seed + 1, False)
    n_train = min(tc.max_train or len(train), len(train))
    per_epoch = n_train // (tc.batch * world)
    if per_epoch < 1:
        raise ConfigError(f"{n_train} samples are fewer than one batch per process")
    model = make_step_module(cfg, tc.yaw_bins)
    if tc.init:
        _init_from(model, tc.init, cfg)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    total = tc.epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, tc.lr, total_steps=total, pct_start=0.1)
    step = _load_checkpoint(out / "checkpoint.pt", resume, tc, model, opt, sched)
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model)
    rec = TrainLog(out / "train_log.csv", LOG_FIELDS, fresh=step == 0) if rank == 0 else None
    t_start = time.monotonic()
    bar = tqdm(total=total, initial=step, desc="train neuralmap", unit="step",
               disable=not progress or rank != 0)  # fmt: skip
    losses: list[float] = []
    end = min(total, step + tc.stop_after) if tc.stop_after else total
    while step < end:
        epoch, first = divmod(step, per_epoch)
        train.epoch = epoch
        g = torch.Generator().manual_seed(tc.seed * 100_003 + epoch)
        perm = torch.randperm(len(train), generator=g)[:n_train].tolist()
        mine = perm[rank::world][first * tc.batch : per_epoch * tc.batch]
        loader = DataLoader(train, batch_size=tc.batch, sampler=mine, num_workers=tc.workers,
                            persistent_workers=False)  # fmt: skip
        model.train()
        for batch in loader:
            b = {k: v.to(device) for k, v in batch.items()}
            lv = ddp(b["image"], b["grid"], b["valid"], b["elevation"], b["map"])
            loss = nll(lv, b["target"]).mean()
            if tc.along_weight:
                loss = loss + tc.along_weight * along_street_nll(lv, b["target"]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            last = step >= end or step % per_epoch == 0
            if rank == 0 and (step % tc.checkpoint_every == 0 or last):
                _save_checkpoint(out / "checkpoint.pt", model, opt, sched, step, tc)
            if step % per_epoch == 0 or step >= end:
                break
        if rank == 0:
            v = validate(model, val, device)
            loss_epoch = float(np.mean(losses[-per_epoch:]))
            scale = float(model.net.log_scale.detach().exp())
            rec.row({"step": step, "epoch": step / per_epoch, "loss": loss_epoch,
                     "lr": sched.get_last_lr()[0], "scale": scale,
                     **v, "seconds": time.monotonic() - t_start})  # fmt: skip
            log.info("step %d: val loss %.3f, recall 1 m %.0f%%, 3 m %.0f%%, 3 deg %.0f%%",
                     step, v["val_loss"], 100 * v["val_r1m"], 100 * v["val_r3m"],
                     100 * v["val_r3deg"])  # fmt: skip
    bar.close()
    if rank != 0 or step < total:
        return None
    from geoloc_ros.neuralmap.bundle import NeuralMapBundle, state_of  # noqa: PLC0415

    bundle = NeuralMapBundle(cfg, state_of(model.net))
    bundle.training = {
        "command": command, "datasets": [str(d) for d in datasets], "train_samples": n_train,
        "processes": world, "config": _tc_dict(tc),
        "seconds": round(time.monotonic() - t_start, 1),
    }  # fmt: skip
    bundle.save(out)
    return bundle


DEPTH_LOGITS = "lifter.depth.2"  # the car lifter's last conv: one output per depth bin


def _init_from(model, directory: str, cfg: NeuralMapConfig) -> None:
    """Copy a saved model's weights (sha256-checked safetensors) into the step module.

    The input size may differ (the encoders are convolutional, so fine-tuning at a new
    resolution starts from the old weights), and so may a car BEV's reach: the depth
    bins both have keep their weights, and new farther bins start as copies of the old
    last bin with its probability shared among them (`extend_depth_bins`). Every other
    architecture field must match.
    """
    from geoloc_ros.neuralmap.bundle import build_net, load_bundle  # noqa: PLC0415

    b = load_bundle(directory)
    same = dataclasses.replace(b.config, input_hw=cfg.input_hw, depth_max_m=cfg.depth_max_m,
                               depth_bins=cfg.depth_bins)  # fmt: skip
    if same != cfg or (b.config.depth_bins != cfg.depth_bins
                       and abs(b.config.depth_max_m / b.config.depth_bins
                               - cfg.depth_max_m / cfg.depth_bins) > 1e-9):  # fmt: skip
        raise ConfigError(f"--init {directory} is a {b.config.platform} model with another "
                          "configuration than this training's (only the input size and, at "
                          "the same bin size, the car BEV's depth may differ)")  # fmt: skip
    state = build_net(b).state_dict()
    if b.config.depth_bins != cfg.depth_bins:
        for kind in ("weight", "bias"):
            key = f"{DEPTH_LOGITS}.{kind}"
            state[key] = extend_depth_bins(state[key], cfg.depth_bins, kind == "bias")
    model.net.load_state_dict(state)


def extend_depth_bins(t, bins: int, is_bias: bool):
    """Depth-logit parameters (old_bins, ...) -> (bins, ...): the first bins kept; added
    ones copy the old last bin, their bias lowered by log(1 + added) so that the old last
    bin's probability is shared among it and them (the far range starts uninformed)."""
    import math  # noqa: PLC0415

    import torch  # noqa: PLC0415

    old = t.shape[0]
    if bins <= old:
        return t[:bins].clone()
    out = torch.cat([t, t[-1:].expand(bins - old, *t.shape[1:])]).clone()
    if is_bias:
        out[old - 1 :] -= math.log(1 + bins - old)
    return out


def validate(model, val, device) -> dict:
    """Mean NLL and argmax recall on the val crops (same protocol as training)."""
    import torch  # noqa: PLC0415

    from geoloc_ros.neuralmap.losses import nll  # noqa: PLC0415

    model.eval()
    res = val.data.cfg.res_m
    nlls, ep, ey = [], [], []
    with torch.inference_mode():
        for a in range(0, len(val), 8):
            items = [val[i] for i in range(a, min(a + 8, len(val)))]
            b = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
            lv = model(b["image"], b["grid"], b["valid"], b["elevation"], b["map"])
            nlls.append(nll(lv, b["target"]).cpu().numpy())
            k, ho, wo = lv.shape[1:]
            idx = lv.flatten(1).argmax(1).cpu().numpy()
            kk, r, c = np.unravel_index(idx, (k, ho, wo))
            d = np.stack([r, c], 1) - b["true_rc"].cpu().numpy()
            ep.append(np.linalg.norm(d, axis=1) * res)
            yaw = 2 * np.pi * kk / k
            ey.append(np.degrees(np.abs(np.angle(np.exp(1j * (yaw - b["yaw"].cpu().numpy()))))))
    ep, ey = np.concatenate(ep), np.concatenate(ey)
    model.train()
    return {"val_loss": float(np.concatenate(nlls).mean()), "val_r1m": float((ep <= 1).mean()),
            "val_r3m": float((ep <= 3).mean()), "val_r3deg": float((ey <= 3).mean())}  # fmt: skip


def _save_checkpoint(path: Path, model, opt, sched, step: int, tc: TrainConfig) -> None:
    import torch  # noqa: PLC0415

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "step": step,
                "train_config": _tc_dict(tc)}, tmp)  # fmt: skip
    tmp.replace(path)


def _load_checkpoint(path: Path, resume: bool, tc: TrainConfig, model, opt, sched) -> int:
    import torch  # noqa: PLC0415

    if not path.is_file():
        return 0
    if not resume:
        raise ConfigError(
            f"{path.parent} already holds a training run; pass --resume or a new --out"
        )
    state = torch.load(path, weights_only=True, map_location="cpu")
    # an option added after the checkpoint was written counts as at its default
    stored = {**_tc_dict(TrainConfig()), **state["train_config"]}
    if stored != _tc_dict(tc):
        raise ConfigError(f"{path} was made with another training config; use a new --out")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    log.info("resuming %s at step %d", path, state["step"])
    return int(state["step"])
