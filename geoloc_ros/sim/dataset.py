"""Learning data: posed camera images with map crops, split by geographic area.

On-disk format (documented in docs/simulator.md)::

    DATASET/dataset.json               config, world, camera, splits, counts
    DATASET/<split>/samples.jsonl      one JSON object per sample
    DATASET/<split>/images/NNNNNN.png  the camera image (RGB)
    DATASET/<split>/maps/NNNNNN.png    orthophoto crop, north-up, around a noisy prior
    DATASET/<split>/maps/NNNNNN_sem.png semantic classes of the same crop

With `split_by="sample"` every split covers the whole world with independent
random poses (PoseNet's known-area setting). Otherwise splits are east-west bands
of the world separated by `guard_m`: no sample of one
split is posed within that distance of another split's samples. Map crops and far
views may still reach across a boundary (the map is public knowledge at inference
time; the pose-image pairs are what must not leak). For a strict test, use a world
of another seed. Each sample's randomness derives from
(seed, split, index): an interrupted run resumes where it stopped with identical
results, and a different config refuses to mix into an existing dataset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix, xyzw_from_rpy
from geoloc_ros.sim.appearance import Appearance
from geoloc_ros.sim.camera import (
    CAR_CAMERA,
    CAR_MOUNT,
    DRONE_CAMERA,
    DRONE_NADIR_MOUNT,
    DRONE_OBLIQUE_MOUNT,
    check_drone_altitude,
)
from geoloc_ros.sim.world import World

log = logging.getLogger(__name__)

DATASET_FORMAT = 1
SPLITS = ("train", "val", "test")
MIN_BAND_M = 20.0  # narrowest east-west band a split may have
DRONE_HEADINGS = ("any", "survey")
SURVEY_TRANSIT_FRACTION = 0.1  # of survey-heading samples flown at any heading
SURVEY_YAW_SIGMA_RAD = np.radians(6.0)  # wind and line changes around east / west


@dataclass(frozen=True)
class DatasetConfig:
    platform: str = "car"
    samples: int = 2000
    seed: int = 0
    drone_camera: str = "nadir"
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # of the world's width and samples
    guard_m: float = 40.0  # gap between the bands where samples of two splits are posed
    crop_m: float = 128.0
    crop_res_m: float = 0.5
    prior_sigma_m: float = 15.0
    prior_max_m: float = 32.0
    # area: splits are east-west bands (the map localizer must generalise to unseen areas);
    # sample: every split covers the whole world (PoseNet learns one known area)
    split_by: str = "area"
    # any: uniform yaw; survey: the simulator's survey flights (lines east or west, a few
    # transit legs at any heading), the distribution a PoseNet of the area is used on
    drone_heading: str = "any"
    # metres above ground the drone's samples fly at (uniform); a narrower band trains
    # the heights a user flies, or the low flights where the localizer errs most
    drone_altitude_m: tuple[float, float] = (50.0, 120.0)
    # share of car samples posed along planned drives (sim.route) instead of on a road
    # with its heading: turns at junctions, stops and starts, as a drive meets them. At 0
    # the demo world's PoseNet was 12-225 m off (3 s medians) through the held-out drive's
    # turns against about 1 m between them (docs/posenet.md)
    car_route_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.split_by not in ("area", "sample"):
            raise ConfigError(f"split_by must be area or sample, got {self.split_by!r}")
        if self.drone_heading not in DRONE_HEADINGS:
            raise ConfigError(
                f"drone heading must be one of {DRONE_HEADINGS}, got {self.drone_heading!r}"
            )
        check_drone_altitude(self.drone_altitude_m)
        if not 0.0 <= self.car_route_fraction <= 1.0:
            raise ConfigError(
                f"car_route_fraction must be in [0, 1], got {self.car_route_fraction}"
            )
        if self.platform not in ("car", "drone"):
            raise ConfigError(f"unknown platform {self.platform!r}; car or drone")
        if self.drone_camera not in ("nadir", "oblique"):
            raise ConfigError(f"drone camera must be nadir or oblique, got {self.drone_camera!r}")
        if not 3 <= self.samples <= 1_000_000:
            raise ConfigError(f"samples must be in [3, 1e6], got {self.samples}")
        if self.seed < 0:
            raise ConfigError(f"seed must be non-negative, got {self.seed}")
        if abs(sum(self.fractions) - 1.0) > 1e-9 or min(self.fractions) <= 0:
            raise ConfigError(f"split fractions must be positive and sum to 1: {self.fractions}")

    @property
    def camera(self):
        return CAR_CAMERA if self.platform == "car" else DRONE_CAMERA

    @property
    def mount(self):
        if self.platform == "car":
            return CAR_MOUNT
        return DRONE_NADIR_MOUNT if self.drone_camera == "nadir" else DRONE_OBLIQUE_MOUNT


def split_bands(world: World, cfg: DatasetConfig) -> dict[str, tuple[float, float]]:
    """East-west bands [x_min, x_max] (world ENU) where each split's samples are posed."""
    half = world.half_m
    if cfg.split_by == "sample":
        return {name: (-half, half) for name in SPLITS}
    edges = -half + np.cumsum([0.0, *cfg.fractions]) * 2 * half
    bands = {}
    for i, name in enumerate(SPLITS):
        lo = edges[i] + (cfg.guard_m / 2 if i > 0 else 0.0)
        hi = edges[i + 1] - (cfg.guard_m / 2 if i < 2 else 0.0)
        if hi - lo < MIN_BAND_M:
            need = (MIN_BAND_M + cfg.guard_m) / (2 * half)  # a middle band loses two guards
            raise ConfigError(
                f"split {name} band is only {hi - lo:.0f} m wide (needs {MIN_BAND_M:.0f} m): "
                f"in this {2 * half:.0f} m world give each split a fraction >= {need:.2f} "
                f"(--fractions), or use a larger world"
            )
        bands[name] = (float(lo), float(hi))
    return bands


class OrthoSampler:
    """North-up ENU crops of the world's orthophoto and semantic GeoTIFFs."""

    def __init__(self, world: World) -> None:
        import rasterio  # noqa: PLC0415

        if world.path is None:
            raise ConfigError("the world has no directory; write it with `geoloc sim world`")
        with rasterio.open(world.path / "ortho.tif") as f:
            self.rgb = np.moveaxis(f.read(), 0, -1)
            self.transform = f.transform
        with rasterio.open(world.path / "semantic.tif") as f:
            self.sem = f.read(1)
        self.world = world

    def crop(self, center_xy_m, size_m: float, res_m: float) -> tuple[np.ndarray, np.ndarray]:
        """(rgb HxWx3, semantic HxW) of a square ENU window; row 0 is the north edge."""
        import cv2  # noqa: PLC0415

        n = round(size_m / res_m)
        off = (np.arange(n) + 0.5) * res_m - size_m / 2
        x = center_xy_m[0] + off[None, :]
        y = center_xy_m[1] - off[:, None]
        X, Y = np.broadcast_arrays(x, y)
        px = self.world.raster_px_from_enu(np.stack([X, Y, np.zeros_like(X)], -1), self.transform)
        mx = px[..., 0].astype(np.float32)
        my = px[..., 1].astype(np.float32)
        rgb = cv2.remap(self.rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        sem = cv2.remap(self.sem, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        return rgb, sem


def _car_pose(world: World, band, rng: np.random.Generator) -> np.ndarray:
    roads = [
        r
        for r in world.layout.roads
        if (band[0] <= r.centerline_m[:, 0]).any() and (r.centerline_m[:, 0] <= band[1]).any()
    ]
    for _ in range(1000):
        r = roads[int(rng.integers(len(roads)))]
        c = r.centerline_m
        k = int(rng.integers(len(c) - 1))
        a = rng.uniform()
        p = c[k] + a * (c[k + 1] - c[k])
        d = (c[k + 1] - c[k]) / np.linalg.norm(c[k + 1] - c[k])
        if rng.random() < 0.5:
            d = -d
        lane = (1.75 if r.width_m < 9 else rng.choice([1.6, 4.3])) + rng.normal(0, 0.3)
        p = p + lane * np.array([d[1], -d[0]])  # right-hand traffic
        if band[0] <= p[0] <= band[1] and abs(p[1]) < world.half_m - 5:
            yaw = np.arctan2(d[1], d[0]) + rng.normal(0.0, np.radians(4.0))
            z, gx, gy = (float(v) for v in world.terrain(p[0], p[1]))
            c_, s_ = np.cos(yaw), np.sin(yaw)
            pitch = -np.arctan(gx * c_ + gy * s_)
            roll = np.arctan(-gx * s_ + gy * c_)
            T = np.eye(4)
            T[:3, :3] = matrix_from_xyzw(xyzw_from_rpy(roll, pitch, yaw))
            T[:3, 3] = (p[0], p[1], z)
            return T
    raise ConfigError(f"no road inside the band {band}")


ROUTE_SAMPLE_LENGTH_M = 150.0  # a route pose's drive: a road or two and a junction between


def _route_pose(world: World, band, rng: np.random.Generator) -> np.ndarray:
    """base_link at a random time of a short planned drive (the drives' own planner and
    car model): turning through junctions, waiting at stops, as often as a drive does."""
    from geoloc_ros.sim.route import plan_route  # noqa: PLC0415
    from geoloc_ros.sim.trajectory import CarTrajectory  # noqa: PLC0415

    for _ in range(200):
        route = plan_route(world.layout, rng, ROUTE_SAMPLE_LENGTH_M)
        traj = CarTrajectory.from_route(route.xy_m, world.terrain, stops_s_m=route.stops_s_m)
        st = traj.state(np.array([rng.uniform(traj.t0_s, traj.t1_s)]))
        x, y = st.p_m[0, :2]
        if band[0] <= x <= band[1] and abs(y) < world.half_m - 5:
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = st.R_world_base[0], st.p_m[0]
            return T
    raise ConfigError(f"no planned drive passes through the band {band}")


def _drone_pose(
    world: World, band, rng: np.random.Generator, heading: str, altitude_m: tuple[float, float]
) -> np.ndarray:
    x = rng.uniform(*band)
    y = rng.uniform(-world.half_m + 10, world.half_m - 10)
    z = float(world.terrain.height(x, y)) + rng.uniform(*altitude_m)
    roll, pitch = rng.normal(0.0, np.radians(3.0), 2)
    yaw = rng.uniform(-np.pi, np.pi)
    if heading == "survey" and rng.uniform() >= SURVEY_TRANSIT_FRACTION:
        yaw = np.pi * int(rng.integers(2)) + rng.normal(0.0, SURVEY_YAW_SIGMA_RAD)
    T = np.eye(4)
    T[:3, :3] = matrix_from_xyzw(xyzw_from_rpy(roll, pitch, yaw))
    T[:3, 3] = (x, y, z)
    return T


def write_dataset(world: World, cfg: DatasetConfig, out: Path, progress: bool = True) -> dict:
    """Write (or finish) the dataset; returns samples per split."""
    import cv2  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    bands = split_bands(world, cfg)
    meta = {
        "format": DATASET_FORMAT,
        "config": json.loads(json.dumps(asdict(cfg))),
        "world": world.identity(),
        "frame": "world ENU at the datum (x east, y north, z up), metres",
        "camera": {**asdict(cfg.camera), "K": cfg.camera.K.tolist()},
        "T_base_cam": cfg.mount.T_base_cam.tolist(),
        "splits": {k: {"x_range_m": list(v)} for k, v in bands.items()},
    }
    mf = out / "dataset.json"
    if mf.is_file():
        old = json.loads(mf.read_text())
        # keys added since an old dataset was made take their defaults
        old["config"] = {**json.loads(json.dumps(asdict(DatasetConfig()))), **old["config"]}
        if {k: old.get(k) for k in ("config", "world")} != {
            k: meta[k] for k in ("config", "world")
        }:
            raise ConfigError(f"{out} holds a dataset made with another config or world")
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: round(f * cfg.samples) for s, f in zip(SPLITS, cfg.fractions, strict=True)}
    meta["counts"] = counts
    mf.write_text(json.dumps(meta, indent=1))
    sampler = OrthoSampler(world)
    renderer = world.renderer
    total = sum(counts.values())
    bar = tqdm(total=total, desc="dataset", unit="sample", disable=not progress)
    for si, split in enumerate(SPLITS):
        d = out / split
        (d / "images").mkdir(parents=True, exist_ok=True)
        (d / "maps").mkdir(parents=True, exist_ok=True)
        lines_path = d / "samples.jsonl"
        done = lines_path.read_text().splitlines() if lines_path.exists() else []
        bar.update(len(done))
        with lines_path.open("a") as lines:
            for i in range(len(done), counts[split]):
                rec = _sample(world, cfg, bands[split], sampler, renderer, si, i, d, cv2)
                lines.write(json.dumps(rec) + "\n")
                lines.flush()
                bar.update(1)
    bar.close()
    return counts


def _sample(world, cfg: DatasetConfig, band, sampler, renderer, si: int, i: int, d: Path, cv2):
    rng = np.random.default_rng([cfg.seed, si, i])
    if cfg.platform == "drone":
        T_world_base = _drone_pose(world, band, rng, cfg.drone_heading, cfg.drone_altitude_m)
    elif cfg.car_route_fraction > 0 and rng.random() < cfg.car_route_fraction:
        T_world_base = _route_pose(world, band, rng)
    else:
        T_world_base = _car_pose(world, band, rng)
    T_world_cam = T_world_base @ cfg.mount.T_base_cam
    look = Appearance.random(rng)
    img = renderer.render(cfg.camera, T_world_cam, look, rng).rgb
    offset = np.clip(rng.normal(0.0, cfg.prior_sigma_m, 2), -cfg.prior_max_m, cfg.prior_max_m)
    center = T_world_base[:2, 3] + offset
    rgb, sem = sampler.crop(center, cfg.crop_m, cfg.crop_res_m)
    name = f"{i:06d}"
    cv2.imwrite(str(d / "images" / f"{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "maps" / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "maps" / f"{name}_sem.png"), sem)
    lat, lon, alt = world.ltp.geodetic_from_enu(T_world_base[:3, 3])
    g_cam = T_world_cam[:3, :3].T @ np.array([0.0, 0.0, -1.0])
    return {
        "id": name,
        "image": f"images/{name}.png",
        "map": f"maps/{name}.png",
        "map_semantic": f"maps/{name}_sem.png",
        "K": cfg.camera.K.tolist(),
        "width": cfg.camera.width,
        "height": cfg.camera.height,
        "T_world_cam": np.round(T_world_cam, 6).tolist(),
        "p_base_enu_m": np.round(T_world_base[:3, 3], 4).tolist(),
        "q_base_xyzw": np.round(xyzw_from_matrix(T_world_base[:3, :3]), 8).tolist(),
        "gravity_cam": np.round(g_cam, 8).tolist(),
        "lat_lon_alt": [float(lat), float(lon), float(alt)],
        "map_center_enu_m": np.round(center, 4).tolist(),
        "map_res_m": cfg.crop_res_m,
        "map_size_px": round(cfg.crop_m / cfg.crop_res_m),
        "appearance": asdict(look),
    }


def read_split(dataset: Path, split: str) -> list[dict]:
    """The sample records of one split (paths are relative to the split folder)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; one of {SPLITS}")
    path = Path(dataset) / split / "samples.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {dataset} a `geoloc sim dataset` folder?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
