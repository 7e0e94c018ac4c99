"""A tiny posed-image folder and a PoseNet trained on it in seconds (shape and code checks only).

Each image is a smooth colour pattern whose phase follows the pose, so a network can
learn something, but nothing here measures accuracy: the benchmark does that.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from geoloc_ros.geo.quaternion import xyzw_from_rpy
from geoloc_ros.posenet.data import CSV_HEADER

DATUM = [47.3769, 8.5417, 408.0]
IMAGE_HW = (48, 64)


def pattern(x_m: float, y_m: float, yaw_rad: float, hw=IMAGE_HW) -> np.ndarray:
    v, u = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    r = 127 + 120 * np.sin(u / 7.0 + x_m / 9.0 + yaw_rad)
    g = 127 + 120 * np.sin(v / 5.0 + y_m / 11.0)
    b = 127 + 120 * np.cos((u + v) / 9.0 + yaw_rad * 2)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def write_posed_folder(root: Path, n: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = [",".join(CSV_HEADER)]
    for i in range(n):
        x, y = rng.uniform(-20, 20, 2)
        yaw = rng.uniform(-np.pi, np.pi)
        name = f"img_{i:03d}.png"
        cv2.imwrite(str(root / name), cv2.cvtColor(pattern(x, y, yaw), cv2.COLOR_RGB2BGR))
        q = xyzw_from_rpy(0.0, 0.0, yaw)
        rows.append(",".join([name, *(f"{v:.6f}" for v in (x, y, 0.0, *q))]))
    (root / "poses.csv").write_text("\n".join(rows) + "\n")
    (root / "area.json").write_text(
        json.dumps({"name": "test patterns", "datum": DATUM, "split": [0.6, 0.2, 0.2]})
    )
    return root
