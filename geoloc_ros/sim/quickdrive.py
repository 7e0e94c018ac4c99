"""An analytic figure-eight drive with exactly consistent IMU and noisy GNSS.

The smallest honest data source: a C-infinity trajectory on flat ground at a real
datum, its noise-free IMU (specific force and rate in FLU body axes), and GNSS fixes
with the noise they report. The road-network simulator supersedes it for the demo;
tests keep it because its truth is known in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoloc_ros.geo.quaternion import xyzw_from_rpy
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.types import CovarianceType, GnssFix, GnssStatus, ImuSample, NavState

GRAVITY_MPS2 = 9.80665
DEFAULT_DATUM = (47.3769, 8.5417, 408.0)  # Zurich, WGS84 ellipsoidal height


@dataclass(frozen=True)
class FigureEight:
    """x = A sin(w t), y = B sin(2 w t) in the map ENU frame, heading along the velocity."""

    a_m: float = 120.0
    b_m: float = 60.0
    period_s: float = 120.0

    def state(self, t_s: np.ndarray) -> dict[str, np.ndarray]:
        """Position, velocity, acceleration (map frame), yaw and yaw rate at times t_s."""
        t = np.asarray(t_s, dtype=np.float64)
        w = 2.0 * np.pi / self.period_s
        A, B = self.a_m, self.b_m
        p = np.stack([A * np.sin(w * t), B * np.sin(2 * w * t), np.zeros_like(t)], -1)
        v = np.stack([A * w * np.cos(w * t), 2 * B * w * np.cos(2 * w * t), np.zeros_like(t)], -1)
        a = np.stack(
            [-A * w**2 * np.sin(w * t), -4 * B * w**2 * np.sin(2 * w * t), np.zeros_like(t)], -1
        )
        yaw = np.arctan2(v[:, 1], v[:, 0])
        speed2 = v[:, 0] ** 2 + v[:, 1] ** 2
        yaw_rate = (v[:, 0] * a[:, 1] - v[:, 1] * a[:, 0]) / speed2
        return {"p": p, "v": v, "a": a, "yaw": yaw, "yaw_rate": yaw_rate}


def truth(traj: FigureEight, t_s: np.ndarray, frame_id: str = "map") -> list[NavState]:
    s = traj.state(t_s)
    return [
        NavState(
            t_s=float(t),
            p_m=s["p"][i],
            q_xyzw=xyzw_from_rpy(0.0, 0.0, s["yaw"][i]),
            v_mps=s["v"][i],
            w_radps=np.array([0.0, 0.0, s["yaw_rate"][i]]),
            frame_id=frame_id,
        )
        for i, t in enumerate(np.asarray(t_s))
    ]


def imu(traj: FigureEight, t_s: np.ndarray, t0_s: float = 0.0) -> list[ImuSample]:
    """Noise-free IMU in base_link (FLU): f = R^T (a + g_up), w = (0, 0, yaw rate)."""
    s = traj.state(t_s)
    out = []
    for i, t in enumerate(np.asarray(t_s)):
        c, sn = np.cos(s["yaw"][i]), np.sin(s["yaw"][i])
        a_map = s["a"][i] + np.array([0.0, 0.0, GRAVITY_MPS2])
        f_body = np.array([c * a_map[0] + sn * a_map[1], -sn * a_map[0] + c * a_map[1], a_map[2]])
        out.append(
            ImuSample(
                t_s=t0_s + float(t),
                gyro_radps=np.array([0.0, 0.0, s["yaw_rate"][i]]),
                accel_mps2=f_body,
                frame_id="base_link",
                q_xyzw=xyzw_from_rpy(0.0, 0.0, s["yaw"][i]),
                cov_orientation_3x3=np.eye(3) * 1e-4,
            )
        )
    return out


def gnss(
    traj: FigureEight,
    t_s: np.ndarray,
    ltp: LocalTangentPlane,
    rng: np.random.Generator,
    sigma_h_m: float = 1.5,
    sigma_v_m: float = 3.0,
    t0_s: float = 0.0,
) -> list[GnssFix]:
    """Fixes with white Gaussian noise matching the covariance they report (open sky)."""
    s = traj.state(t_s)
    sig = np.array([sigma_h_m, sigma_h_m, sigma_v_m])
    noisy = s["p"] + rng.normal(size=s["p"].shape) * sig
    lat, lon, alt = ltp.geodetic_from_enu(noisy)
    cov = np.diag(sig**2)
    return [
        GnssFix(
            t_s=t0_s + float(t),
            lat_deg=float(lat[i]),
            lon_deg=float(lon[i]),
            alt_m=float(alt[i]),
            status=GnssStatus.FIX,
            cov_enu_3x3=cov,
            covariance_type=CovarianceType.DIAGONAL_KNOWN,
            frame_id="base_link",
        )
        for i, t in enumerate(np.asarray(t_s))
    ]
