"""Camera geometry of the localizer: gravity levelling, rectification, BEV sampling grids.

Frames: `level` is the gravity-aligned base frame (x = base heading projected on the
horizontal, z up, origin at base_link); roll and pitch come from gravity, yaw is what
the matcher finds. Pixel centres at integer (u, v) as OpenCV. Grids are returned in
PyTorch `grid_sample` convention (align_corners=False, x indexes the last axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.neuralmap.config import NeuralMapConfig


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def roll_pitch_from_gravity(g_base: np.ndarray) -> tuple[float, float]:
    """Roll and pitch (rad, ZYX) of base_link from gravity in base_link (any scale, pointing down).

    An accelerometer at rest measures the opposite (+g up): negate it first.
    """
    g = np.asarray(g_base, dtype=float)
    n = np.linalg.norm(g)
    if not np.all(np.isfinite(g)) or n < 1e-6:
        raise InputRejected(f"gravity vector {g.tolist()} is not usable", reason="gravity")
    gx, gy, gz = g / n
    # R_level_base^T @ (0, 0, -1) = g: for ZYX, g = (sin(p), -sin(r)cos(p), -cos(r)cos(p))
    pitch = float(np.arcsin(np.clip(gx, -1.0, 1.0)))
    roll = float(np.arctan2(-gy, -gz))
    return roll, pitch


@dataclass(frozen=True)
class CameraGeometry:
    """One frame's camera: intrinsics at the network input size and its level-frame pose."""

    K: np.ndarray  # 3x3 at the network input resolution
    R_level_cam: np.ndarray  # optical frame -> level frame
    t_level_cam_m: np.ndarray  # camera centre in the level frame (base_link at the origin)
    size_wh: tuple[int, int]

    @classmethod
    def create(
        cls,
        K_image: np.ndarray,
        image_wh: tuple[int, int],
        cfg: NeuralMapConfig,
        roll_pitch: tuple[float, float],
        T_base_cam: np.ndarray,
    ) -> CameraGeometry:
        """Scale K to the network input and put the camera in the level frame."""
        K = np.asarray(K_image, dtype=float)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise InputRejected("camera matrix K is not a valid 3x3 intrinsic", reason="camera")
        h_in, w_in = cfg.input_hw
        S = np.diag([w_in / image_wh[0], h_in / image_wh[1], 1.0])
        # pixel centres: u_in + 0.5 = (u + 0.5) * s
        Ks = S @ K
        Ks[0, 2] = (K[0, 2] + 0.5) * S[0, 0] - 0.5
        Ks[1, 2] = (K[1, 2] + 0.5) * S[1, 1] - 0.5
        R_level_base = rot_y(roll_pitch[1]) @ rot_x(roll_pitch[0])
        T = np.asarray(T_base_cam, dtype=float)
        return cls(Ks, R_level_base @ T[:3, :3], R_level_base @ T[:3, 3], (w_in, h_in))

    def virtual_level_rotation(self) -> np.ndarray:
        """R_level_virt: a camera at the same place looking horizontally along the optical axis."""
        z = self.R_level_cam[:, 2].copy()
        z[2] = 0.0
        if np.linalg.norm(z) < 0.2:
            raise InputRejected(
                "the camera looks nearly straight down: use the drone (ortho) model",
                reason="camera",
            )
        z /= np.linalg.norm(z)
        y = np.array([0.0, 0.0, -1.0])
        x = np.cross(y, z)
        return np.stack([x, y, z], axis=1)

    def rectifying_homography(self) -> np.ndarray:
        """3x3 H mapping input pixels to the levelled virtual camera's pixels (same K)."""
        R_virt_cam = self.virtual_level_rotation().T @ self.R_level_cam
        return self.K @ R_virt_cam @ np.linalg.inv(self.K)


def bev_cell_centres(cfg: NeuralMapConfig) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) level-frame centres of the BEV cells, each (nx, ny)."""
    nx, ny = cfg.bev_shape
    x0, y0 = cfg.bev_origin_m
    x = x0 + (np.arange(nx) + 0.5) * cfg.res_m
    y = y0 + (np.arange(ny) + 0.5) * cfg.res_m
    return np.meshgrid(x, y, indexing="ij")


def polar_to_bev_grid(cfg: NeuralMapConfig, cam: CameraGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Sampling grid (nx, ny, 2) into the polar (depth bin, column) features, and validity.

    The polar grid belongs to the levelled virtual camera: column u of the rectified
    image, depth z along its horizontal optical axis in `depth_bins` linear bins.
    """
    X, Y = bev_cell_centres(cfg)
    R_virt_level = cam.virtual_level_rotation().T
    p = np.stack([X, Y, np.zeros_like(X)], -1) - cam.t_level_cam_m
    q = p @ R_virt_level.T
    z = q[..., 2]
    zs = np.maximum(z, 1e-3)
    u = cam.K[0, 0] * q[..., 0] / zs + cam.K[0, 2]
    w = cam.size_wh[0]
    gx = (u + 0.5) / w * 2 - 1
    gy = z / cfg.depth_max_m * 2 - 1
    valid = (z > 0.5) & (np.abs(gx) <= 1) & (np.abs(gy) <= 1)
    return np.stack([gx, gy], -1).astype(np.float32), valid.astype(np.float32)


def ortho_grid(
    cfg: NeuralMapConfig, cam: CameraGeometry, height_above_ground_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling grid (nx, ny, 2) into image features for flat ground `height` below the camera."""
    if not np.isfinite(height_above_ground_m) or height_above_ground_m < 0.5:
        raise InputRejected(
            f"height above ground {height_above_ground_m} m is unusable for ortho-rectification",
            reason="height",
        )
    X, Y = bev_cell_centres(cfg)
    zg = cam.t_level_cam_m[2] - height_above_ground_m
    p = np.stack([X, Y, np.full_like(X, zg)], -1) - cam.t_level_cam_m
    q = p @ cam.R_level_cam  # level -> camera: R^T p, row-wise
    z = q[..., 2]
    zs = np.maximum(z, 1e-3)
    u = cam.K[0, 0] * q[..., 0] / zs + cam.K[0, 2]
    v = cam.K[1, 1] * q[..., 1] / zs + cam.K[1, 2]
    w, h = cam.size_wh
    gx = (u + 0.5) / w * 2 - 1
    gy = (v + 0.5) / h * 2 - 1
    valid = (z > 0.1) & (np.abs(gx) <= 1) & (np.abs(gy) <= 1)
    return np.stack([gx, gy], -1).astype(np.float32), valid.astype(np.float32)


def template_grids(cfg: NeuralMapConfig, yaws_rad: np.ndarray) -> np.ndarray:
    """(K, T, T, 2) grids that sample the BEV (nx, ny) into north-up templates per yaw.

    Template cell (row r, col c) is the world offset (dx, dy) = ((c - h) res, (h - r) res)
    from base_link; base_link sits on the centre cell h = T // 2.
    """
    T = cfg.template_size
    h = T // 2
    off = (np.arange(T) - h) * cfg.res_m
    dx = off[None, :]
    dy = -off[:, None]
    c = np.cos(yaws_rad)[:, None, None]
    s = np.sin(yaws_rad)[:, None, None]
    xb = c * dx + s * dy
    yb = -s * dx + c * dy
    nx, ny = cfg.bev_shape
    x0, y0 = cfg.bev_origin_m
    gx = (yb - y0) / (ny * cfg.res_m) * 2 - 1  # last BEV axis is y
    gy = (xb - x0) / (nx * cfg.res_m) * 2 - 1
    return np.stack([gx, gy], -1).astype(np.float32)
