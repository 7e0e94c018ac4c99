"""Posed images for PoseNet: the simulator's dataset or a folder of posed images.

Two layouts are read:

* `geoloc sim dataset --split-by sample` output (dataset.json, <split>/samples.jsonl);
  the pose is base_link in the world's ENU frame at its datum.
* A posed-image folder (documented in docs/posenet.md)::

      DIR/area.json   {"name": "...", "datum": [lat, lon, alt] or null,
                       "frame": "what x, y, z are", "split": [0.6, 0.1, 0.3]}
      DIR/poses.csv   header `image,x_m,y_m,z_m,qx,qy,qz,qw`, one row per image, in time
                      order; the pose of the body (base_link) in the area frame
      DIR/<image>     the images the CSV names (PNG or JPEG)

  Splits are chronological blocks (train, val, test) of the given fractions. Image
  paths are relative to DIR or absolute.
* A EuRoC ASL folder (mav0/cam0 + a `*groundtruth*.txt` TUM file): the body pose is
  interpolated at each cam0 stamp; chronological splits 0.55 / 0.15 / 0.3 (train and
  val are the first 70 %).

Images are resized to the network input once and cached as uint8 arrays
(`cache_posenet_<h>x<w>.npz` in the split folder), so epochs never decode PNGs.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError, InputRejected

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EUROC_SPLIT = (0.55, 0.15, 0.30)  # val (for calibration) comes out of the first 70 %
CSV_HEADER = ["image", "x_m", "y_m", "z_m", "qx", "qy", "qz", "qw"]


@dataclass
class PosedImages:
    """One split in memory: images (N, H, W, C) uint8 at the network size, poses."""

    images: np.ndarray
    p_m: np.ndarray  # (N, 3) base_link position in the area frame
    q_xyzw: np.ndarray  # (N, 4) unit, w >= 0 not assumed
    names: list[str]
    area: dict  # {"name", "datum", "layout_sha256"?}: what the poses are relative to
    camera: dict | None = None  # simulator datasets: {"K", "width", "height", "T_base_cam"}

    def __len__(self) -> int:
        return len(self.p_m)


def prepare_image(img: np.ndarray, input_hw: tuple[int, int], channels: int) -> np.ndarray:
    """Camera image (H, W[, C]) uint8 -> network-size uint8 (h, w, channels).

    Raises InputRejected when the channel count does not match the model's (a mono
    camera on a colour model, or the reverse): guessing would give a confident,
    wrong pose.
    """
    import cv2  # noqa: PLC0415

    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.dtype != np.uint8:
        raise InputRejected(
            f"PoseNet needs an 8-bit mono or RGB image, got shape {img.shape} {img.dtype}",
            "encoding",
        )
    if img.shape[2] != channels:
        kind = {1: "mono", 3: "RGB"}
        raise InputRejected(
            f"this PoseNet model takes {kind[channels]} images, got {kind[img.shape[2]]}",
            "encoding",
        )
    h, w = input_hw
    if img.shape[0] < h // 2 or img.shape[1] < w // 2:
        raise InputRejected(f"image {img.shape[1]}x{img.shape[0]} is too small", "size")
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return out.reshape(h, w, channels)


def to_input_array(images_u8: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> float32 (N, C, H, W) in about [-1, 1], the network's input.

    NumPy on purpose: the onnxruntime backends never touch torch, whose thread pool
    fights onnxruntime's spinning workers (a 0.05 ms conversion took 19 ms beside them).
    """
    x = np.ascontiguousarray(np.transpose(images_u8, (0, 3, 1, 2)), dtype=np.float32)
    x /= np.float32(127.5)
    x -= np.float32(1.0)
    return x


def to_tensor_batch(images_u8: np.ndarray):
    """(N, H, W, C) uint8 -> float32 torch (N, C, H, W) in about [-1, 1] (training)."""
    import torch  # noqa: PLC0415

    return torch.from_numpy(to_input_array(images_u8))


def load_split(
    root: str | Path, split: str, input_hw: tuple[int, int], channels: int, progress=True
) -> PosedImages:
    """Read one split of either layout, resizing (and caching) its images."""
    root = Path(root)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; one of {SPLITS}")
    camera = None
    if (root / "dataset.json").is_file():
        recs, area, base = _sim_records(root, split)
        camera = _sim_camera(root)
    elif (root / "poses.csv").is_file():
        recs, area, base = _folder_records(root, split)
    elif (root / "mav0" / "cam0" / "data.csv").is_file():
        recs, area, base = _euroc_records(root, split)
    else:
        raise ConfigError(
            f"{root} is neither a `geoloc sim dataset` folder (dataset.json) nor a posed-image "
            "folder (poses.csv + area.json); see docs/posenet.md"
        )
    if not recs:
        raise ConfigError(f"split {split} of {root} is empty")
    images = _cached_images(root, split, base, [r[0] for r in recs], input_hw, channels, progress)
    p = np.array([r[1] for r in recs], dtype=np.float64)
    q = np.array([r[2] for r in recs], dtype=np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return PosedImages(images, p, q, [r[0] for r in recs], area, camera)


def load_splits(
    roots, split: str, input_hw: tuple[int, int], channels: int, progress=True
) -> PosedImages:
    """One split of several datasets of the same area, concatenated (more posed images).

    The areas must agree (name, datum and, for simulated worlds, the layout hash): poses
    of two areas share no frame, and a model can only know one.
    """
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    if not roots:
        raise ConfigError("no dataset given")
    parts = [load_split(r, split, input_hw, channels, progress) for r in roots]
    area = parts[0].area
    for r, part in zip(roots[1:], parts[1:], strict=True):
        if part.area != area:
            raise ConfigError(
                f"{r} is of another area ({part.area.get('name')}) than {roots[0]} "
                f"({area.get('name')}): train one model per area"
            )
    if len(parts) == 1:
        return parts[0]
    names = [f"{r}/{n}" for r, part in zip(roots, parts, strict=True) for n in part.names]
    camera = parts[0].camera if all(p.camera == parts[0].camera for p in parts) else None
    return PosedImages(
        np.concatenate([p.images for p in parts]), np.concatenate([p.p_m for p in parts]),
        np.concatenate([p.q_xyzw for p in parts]), names, area, camera,
    )  # fmt: skip


def _sim_records(root: Path, split: str):
    meta = json.loads((root / "dataset.json").read_text())
    if meta.get("config", {}).get("split_by") != "sample":
        log.warning(
            "%s splits by area: PoseNet only knows places it was trained on, so its test "
            "split is out of area; make the dataset with --split-by sample",
            root,
        )
    path = root / split / "samples.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} not found")
    recs = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            recs.append((r["image"], r["p_base_enu_m"], r["q_base_xyzw"]))
    w = meta["world"]
    area = {"name": f"sim world seed {w['seed']}", "datum": w["datum"]}
    area["layout_sha256"] = w["layout_sha256"]
    return recs, area, root / split


def _sim_camera(root: Path) -> dict:
    meta = json.loads((root / "dataset.json").read_text())
    cam = meta["camera"]
    return {"K": cam["K"], "width": cam["width"], "height": cam["height"],
            "T_base_cam": meta["T_base_cam"]}  # fmt: skip


def _folder_records(root: Path, split: str):
    area_path = root / "area.json"
    if not area_path.is_file():
        raise ConfigError(f"{area_path} not found: a posed-image folder needs it (docs/posenet.md)")
    area_in = json.loads(area_path.read_text())
    fractions = area_in.get("split", [0.6, 0.1, 0.3])
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"area.json split must be 3 fractions summing to 1, got {fractions}")
    with (root / "poses.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != CSV_HEADER:
        raise ConfigError(f"{root / 'poses.csv'} must start with the header {','.join(CSV_HEADER)}")
    recs = []
    for k, row in enumerate(rows[1:], start=2):
        try:
            vals = [float(v) for v in row[1:8]]
        except ValueError:
            raise ConfigError(f"poses.csv line {k}: not numbers: {row}") from None
        if len(row) != 8 or not np.isfinite(vals).all():
            raise ConfigError(f"poses.csv line {k}: want 8 finite fields, got {row}")
        recs.append((row[0], vals[:3], vals[3:]))
    area = {"name": area_in.get("name", root.name), "datum": area_in.get("datum")}
    return _chronological(recs, fractions, split), area, root


def _chronological(recs: list, fractions, split: str) -> list:
    edges = np.round(np.cumsum([0.0, *fractions]) * len(recs)).astype(int)
    i = SPLITS.index(split)
    return recs[edges[i] : edges[i + 1]]


def _euroc_records(root: Path, split: str):
    from scipy.spatial.transform import Rotation, Slerp  # noqa: PLC0415

    from geoloc_ros.io.importers.euroc import find_ground_truth, read_cam_csv, read_tum  # noqa: PLC0415

    rows = read_cam_csv(root / "mav0" / "cam0" / "data.csv")
    gt_path = find_ground_truth(root)
    if gt_path is None:
        raise ConfigError(f"{root} has no *groundtruth*.txt: PoseNet needs poses to learn")
    t_img = np.array([ns * 1e-9 for ns, _ in rows])
    t, p, q = read_tum(gt_path, float(t_img[0]))
    ok = (t_img >= t[0]) & (t_img <= t[-1])
    slerp = Slerp(t, Rotation.from_quat(q))
    p_i = np.stack([np.interp(t_img[ok], t, p[:, k]) for k in range(3)], -1)
    q_i = slerp(t_img[ok]).as_quat()
    names = [f"mav0/cam0/data/{name}" for (_, name), keep in zip(rows, ok, strict=True) if keep]
    recs = [(n, pp.tolist(), qq.tolist()) for n, pp, qq in zip(names, p_i, q_i, strict=True)]
    area = {"name": f"EuRoC {root.name} (Vicon frame)", "datum": None}
    return _chronological(recs, EUROC_SPLIT, split), area, root


def _cached_images(root, split, base: Path, names, input_hw, channels, progress) -> np.ndarray:
    import cv2  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    h, w = input_hw
    cache = (
        root / split if (root / split).is_dir() else root
    ) / f"cache_posenet_{split}_{h}x{w}x{channels}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["names"]) == list(names):
                return z["images"]
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    out = np.empty((len(names), h, w, channels), np.uint8)
    for k, name in enumerate(tqdm(names, desc=f"images {split}", disable=not progress)):
        img = cv2.imread(str(base / name), flag)
        if img is None:
            raise ConfigError(f"cannot read image {base / name}")
        if channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        out[k] = prepare_image(img, input_hw, channels)
    try:
        np.savez(cache, images=out, names=np.array(names))
    except OSError as exc:  # a read-only dataset still trains, only slower next time
        log.warning("could not cache resized images at %s: %s", cache, exc)
    return out
