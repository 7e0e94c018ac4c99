"""Training samples from `geoloc sim dataset` folders: a frame, a map crop, the true cell.

The map crop is cut from the world's orthophoto resampled to the `map` grid (the
same raster `geoloc map build` encodes), at a random offset so the true pose lands
anywhere among the crop's `positions` x `positions` candidate cells.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import matrix_from_xyzw
from geoloc_ros.neuralmap.config import NeuralMapConfig
from geoloc_ros.neuralmap.frame import prepare_frame
from geoloc_ros.neuralmap.geometry import bev_cell_centres
from geoloc_ros.neuralmap.raster import MapRaster, resample_to_map

log = logging.getLogger(__name__)


def rpy_from_matrix(R: np.ndarray) -> tuple[float, float, float]:
    """ZYX roll, pitch, yaw (rad) of a rotation matrix."""
    pitch = float(np.arcsin(np.clip(-R[2, 0], -1.0, 1.0)))
    roll = float(np.arctan2(R[2, 1], R[2, 2]))
    yaw = float(np.arctan2(R[1, 0], R[0, 0]))
    return roll, pitch, yaw


@dataclass
class Sample:
    image_path: Path
    K: np.ndarray
    T_base_cam: np.ndarray
    xy_m: np.ndarray
    roll_pitch_yaw: tuple[float, float, float]
    height_above_ground_m: float
    world: int  # index into SimData.worlds


def world_dir(dataset: Path, meta: dict) -> Path:
    p = Path(meta["world"]["path"])
    for cand in (p, dataset.parent / p.name, dataset / p):
        if (cand / "ortho.tif").is_file():
            return cand
    raise ConfigError(f"the world {p} of dataset {dataset} is not found (need its ortho.tif)")


class SimData:
    """The samples of one split over several datasets (each may be another world)."""

    def __init__(self, datasets: list[str | Path], split: str, cfg: NeuralMapConfig,
                 worlds: dict | None = None) -> None:  # fmt: skip
        """`worlds` (layout sha256 -> (map raster, terrain)) is shared between splits so each
        world is loaded and resampled once."""
        from geoloc_ros.sim.dataset import read_split  # noqa: PLC0415
        from geoloc_ros.sim.world import World  # noqa: PLC0415

        self.cfg = cfg
        self.worlds: list[MapRaster] = []
        self.samples: list[Sample] = []
        keys: dict[str, int] = {}
        worlds = {} if worlds is None else worlds
        for ds in map(Path, datasets):
            meta_path = ds / "dataset.json"
            if not meta_path.is_file():
                raise ConfigError(f"{ds} is not a `geoloc sim dataset` folder")
            meta = json.loads(meta_path.read_text())
            if meta["config"]["platform"] != cfg.platform:
                raise ConfigError(
                    f"{ds} is a {meta['config']['platform']} dataset, not {cfg.platform}"
                )
            wdir = world_dir(ds, meta)
            key = meta["world"]["layout_sha256"]
            if key not in worlds:
                world = World.load(wdir)
                h = world.half_m
                raster = resample_to_map(
                    wdir / "ortho.tif", world.cfg.datum, cfg.res_m, (-h, -h, h, h)
                )
                worlds[key] = (raster, world.terrain)
            raster, terrain = worlds[key]
            if key not in keys:
                keys[key] = len(self.worlds)
                self.worlds.append(raster)
            T_base_cam = np.array(meta["T_base_cam"])
            for rec in read_split(ds, split):
                T = np.array(rec["T_world_cam"])
                R_wb = matrix_from_xyzw(np.array(rec["q_base_xyzw"]))
                p = np.array(rec["p_base_enu_m"])
                self.samples.append(Sample(
                    image_path=ds / split / rec["image"],
                    K=np.array(rec["K"]),
                    T_base_cam=T_base_cam,
                    xy_m=p[:2],
                    roll_pitch_yaw=rpy_from_matrix(R_wb),
                    height_above_ground_m=float(T[2, 3] - terrain.height(T[0, 3], T[1, 3])),
                    world=keys[key],
                ))  # fmt: skip
        if not self.samples:
            raise ConfigError(f"no {split} samples in {datasets}")


def load_rgb(path: Path) -> np.ndarray:
    import cv2  # noqa: PLC0415

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConfigError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def jitter_colors(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random per-channel gain, offset and gamma: the map's season is not the query's."""
    x = img.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.7, 1.4) * rng.uniform(0.7, 1.3, 3) + rng.uniform(-0.1, 0.1, 3)
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def aligned_crop(raster, rc: np.ndarray, yaw_rad: float, yaw_bins: int, at_rc: tuple[int, int],
                 size: int) -> tuple[np.ndarray, int]:  # fmt: skip
    """A (size, size) map crop in which the vehicle sits exactly on cell `at_rc` with its
    yaw exactly on the centre of its bin; returns (crop, bin).

    The world is rotated about the vehicle by the sub-bin residual and shifted by the
    sub-cell one (bilinear), so the training target is the truth, not the truth rounded
    to the grid: with rounding a model learns to ignore yaw within half a bin (5.6 deg
    at 32 bins) and position within half a cell.
    """
    import cv2  # noqa: PLC0415

    step = 2 * np.pi / yaw_bins
    k = int(np.round(yaw_rad / step))
    delta = yaw_rad - k * step  # rotate the world by -delta: the heading becomes k * step
    m = int(np.ceil(size * abs(np.sin(delta)))) + 2
    r_int, c_int = np.floor(rc).astype(int)
    big_r0, big_c0 = r_int - size, c_int - size
    big = raster.window(big_r0 - m, big_c0 - m, 2 * (size + m))
    src = np.array([rc[1] - (big_c0 - m), rc[0] - (big_r0 - m)])  # (col, row) in big
    dst = np.array([at_rc[1], at_rc[0]], float)
    # ENU rotation by -delta is a rotation by +delta in (col, row) (the row axis points south)
    A = np.array([[np.cos(delta), -np.sin(delta)], [np.sin(delta), np.cos(delta)]])
    M = np.hstack([A, (dst - A @ src)[:, None]])
    crop = cv2.warpAffine(big, M, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    return crop.reshape(size, size, -1), k % yaw_bins


CENTRE_BAND_HALF_WIDTH_M = 3.5  # the car's lane and the markings ahead of it


def drop_centre_band(valid: np.ndarray, cfg: NeuralMapConfig, half_width_m: float) -> np.ndarray:
    """A car BEV's validity (nx, ny) with the cells within `half_width_m` of the car's
    axis made invalid: the template then has only the sides to place the frame with."""
    _, y_m = bev_cell_centres(cfg)
    out = valid.copy()
    out[np.abs(y_m) < half_width_m] = 0.0
    return out


class TrainingSet:
    """torch-style dataset: item i of epoch e is deterministic in (seed, e, i).

    `centre_drop`: the share of car frames whose BEV centre band is dropped from the
    template (`drop_centre_band`), so the sides must learn to place a frame alone.
    """

    def __init__(self, data: SimData, positions: int, yaw_bins: int, seed: int, augment: bool,
                 centre_drop: float = 0.0):  # fmt: skip
        self.data = data
        self.positions = positions
        self.yaw_bins = yaw_bins
        self.seed = seed
        self.augment = augment
        self.centre_drop = centre_drop if data.cfg.platform == "car" else 0.0
        self.epoch = 0
        self.crop = data.cfg.template_size + positions - 1

    def __len__(self) -> int:
        return len(self.data.samples)

    def __getitem__(self, i: int) -> dict:
        import torch  # noqa: PLC0415

        cfg = self.data.cfg
        s = self.data.samples[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        rgb = load_rgb(s.image_path)
        if self.augment:
            rgb = jitter_colors(rgb, rng)
        frame = prepare_frame(rgb, s.K, cfg, s.roll_pitch_yaw[:2], s.T_base_cam,
                              s.height_above_ground_m)  # fmt: skip
        raster = self.data.worlds[s.world]
        rc = raster.cell_of(s.xy_m)
        h = cfg.template_size // 2
        j = rng.integers(0, self.positions, 2)
        crop, k = aligned_crop(raster, rc, s.roll_pitch_yaw[2], self.yaw_bins,
                               (int(h + j[0]), int(h + j[1])), self.crop)  # fmt: skip
        if self.augment:
            crop = jitter_colors(crop, rng)
        valid = frame.valid
        if self.centre_drop and rng.random() < self.centre_drop:
            valid = drop_centre_band(valid, cfg, CENTRE_BAND_HALF_WIDTH_M)
        true_rc = j.astype(float)  # exactly on a candidate cell, by construction
        return {
            "image": torch.from_numpy(frame.image),
            "grid": torch.from_numpy(frame.grid),
            "valid": torch.from_numpy(valid),
            "elevation": torch.from_numpy(frame.elevation),
            "map": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            "target": torch.tensor([k, *np.clip(j, 0, self.positions - 1)], dtype=torch.long),
            "true_rc": torch.from_numpy(true_rc.astype(np.float32)),
            "yaw": torch.tensor(s.roll_pitch_yaw[2], dtype=torch.float32),
        }
