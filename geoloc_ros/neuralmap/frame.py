"""One camera frame made ready for the network: resized, levelled, with its BEV grid.

Shared by training and inference so both see identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.neuralmap.config import NeuralMapConfig
from geoloc_ros.neuralmap.geometry import CameraGeometry, ortho_grid, polar_to_bev_grid


@dataclass
class FrameInput:
    image: np.ndarray  # (3, H, W) uint8, rectified for cars
    grid: np.ndarray  # (nx, ny, 2) float32
    valid: np.ndarray  # (nx, ny) float32
    elevation: np.ndarray  # (1, h, w) float32: tan of each feature row's angle below horizon


def prepare_frame(
    rgb: np.ndarray,
    K: np.ndarray,
    cfg: NeuralMapConfig,
    roll_pitch: tuple[float, float],
    T_base_cam: np.ndarray,
    height_above_ground_m: float | None = None,
) -> FrameInput:
    """RGB (H, W, 3) uint8 + calibration + gravity -> network inputs.

    Cars: the image is warped to a virtual camera levelled by gravity, whose columns
    are vertical slices of the world. Drones: the image stays as is and the grid
    projects the ground `height_above_ground_m` below the camera into it.
    """
    import cv2  # noqa: PLC0415

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputRejected(
            f"need an 8-bit RGB image, got {rgb.dtype} {rgb.shape}", reason="encoding"
        )
    if min(rgb.shape[:2]) < 32:
        raise InputRejected(f"image {rgb.shape[1]}x{rgb.shape[0]} is too small", reason="size")
    h_in, w_in = cfg.input_hw
    cam = CameraGeometry.create(K, (rgb.shape[1], rgb.shape[0]), cfg, roll_pitch, T_base_cam)
    img = cv2.resize(rgb, (w_in, h_in), interpolation=cv2.INTER_AREA)
    s = cfg.feat_stride
    hf = h_in // s
    if cfg.platform == "car":
        H = cam.rectifying_homography()
        img = cv2.warpPerspective(img, H, (w_in, h_in), flags=cv2.INTER_LINEAR)
        grid, valid = polar_to_bev_grid(cfg, cam)
    else:
        if height_above_ground_m is None:
            raise InputRejected("a drone frame needs its height above ground", reason="height")
        grid, valid = ortho_grid(cfg, cam, height_above_ground_m)
    v = (np.arange(hf) + 0.5) * s - 0.5
    tan = ((v - cam.K[1, 2]) / cam.K[1, 1]).astype(np.float32)
    elevation = np.broadcast_to(tan[None, :, None], (1, hf, w_in // s)).copy()
    return FrameInput(np.ascontiguousarray(img.transpose(2, 0, 1)), grid, valid, elevation)
