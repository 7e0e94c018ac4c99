"""Pinhole cameras and their mounts for the simulated platforms.

Pixel convention as OpenCV and sensor_msgs/CameraInfo: the centre of pixel
(col, row) is at (u, v) = (col, row). Optical frame: x right, y down, z forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_rpy

# base_link (FLU) <- camera_optical_frame (RDF) for a camera looking along base x
R_FLU_RDF = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class PinholeCamera:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float) -> PinholeCamera:
        if width < 8 or height < 8 or not 10.0 <= hfov_deg <= 150.0:
            raise ConfigError(f"impossible camera {width}x{height}, hfov {hfov_deg} deg")
        f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
        return cls(width, height, f, f, (width - 1) / 2, (height - 1) / 2)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    @cached_property
    def rays_cam(self) -> np.ndarray:
        """(H*W, 3) unit ray directions in the optical frame, row-major."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        d = np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], -1)
        d = d.reshape(-1, 3)
        return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)

    def project(self, p_cam_m: np.ndarray) -> np.ndarray:
        """(N, 3) optical-frame points -> (N, 2) pixel coordinates (u, v)."""
        p = np.atleast_2d(p_cam_m)
        return np.stack(
            [self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy], -1
        )


@dataclass(frozen=True)
class CameraMount:
    """Where the camera sits on base_link: translation and tilt below the horizon."""

    xyz_m: tuple[float, float, float]
    pitch_down_deg: float  # 0 = looking forward, 90 = nadir

    @property
    def T_base_cam(self) -> np.ndarray:
        """4x4 pose of camera_optical_frame in base_link."""
        R_tilt = matrix_from_xyzw(xyzw_from_rpy(0.0, np.radians(self.pitch_down_deg), 0.0))
        T = np.eye(4)
        T[:3, :3] = R_tilt @ R_FLU_RDF
        T[:3, 3] = self.xyz_m
        return T


CAR_CAMERA = PinholeCamera.from_hfov(320, 240, 90.0)
CAR_MOUNT = CameraMount((1.2, 0.0, 1.5), 3.0)
DRONE_CAMERA = PinholeCamera.from_hfov(320, 240, 75.0)
DRONE_NADIR_MOUNT = CameraMount((0.1, 0.0, -0.15), 90.0)
DRONE_OBLIQUE_MOUNT = CameraMount((0.1, 0.0, -0.15), 45.0)


def check_drone_altitude(altitude_m: tuple[float, float]) -> None:
    """A simulated drone's (min, max) metres above ground, as drives and datasets take it."""
    lo, hi = altitude_m
    if not 30.0 <= lo <= hi <= 150.0:
        raise ConfigError(
            f"drone altitude {lo}-{hi} m above ground is outside 30-150 m "
            "(below that it would hit buildings and trees)"
        )
