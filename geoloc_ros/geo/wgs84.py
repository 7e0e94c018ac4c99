"""WGS84 geodetic <-> ECEF <-> local ENU, vectorised over leading dimensions.

Angles in degrees at the API (as NavSatFix), metres everywhere. Agreement with PROJ
is tested to < 1 mm (test/test_geo_wgs84.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geoloc_ros.errors import InputRejected

A_M = 6378137.0  # semi-major axis
F = 1.0 / 298.257223563  # flattening
B_M = A_M * (1.0 - F)
E2 = F * (2.0 - F)  # first eccentricity squared


def ecef_from_geodetic(lat_deg, lon_deg, alt_m) -> np.ndarray:
    """ECEF [m], shape (..., 3), from latitude/longitude [deg] and ellipsoidal height [m]."""
    if type(lat_deg) is float and type(lon_deg) is float and type(alt_m) is float:
        return _ecef_from_geodetic_1(lat_deg, lon_deg, alt_m)
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    alt = np.asarray(alt_m, dtype=np.float64)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    n = A_M / np.sqrt(1.0 - E2 * sin_lat**2)
    x = (n + alt) * cos_lat * np.cos(lon)
    y = (n + alt) * cos_lat * np.sin(lon)
    z = (n * (1.0 - E2) + alt) * sin_lat
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def _ecef_from_geodetic_1(lat_deg: float, lon_deg: float, alt_m: float) -> np.ndarray:
    """One point, with the math module: a tenth of numpy's per-call cost (every fix)."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    sin_lat, cos_lat = math.sin(lat), math.cos(lat)
    n = A_M / math.sqrt(1.0 - E2 * sin_lat * sin_lat)
    return np.array(
        [
            (n + alt_m) * cos_lat * math.cos(lon),
            (n + alt_m) * cos_lat * math.sin(lon),
            (n * (1.0 - E2) + alt_m) * sin_lat,
        ]
    )


def geodetic_from_ecef(p_ecef_m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lat_deg, lon_deg, alt_m) from ECEF (..., 3) by fixed-point iteration on latitude.

    Six iterations converge below 1e-9 m for heights from the Earth's surface to orbit;
    the height formula stays well conditioned at the poles.
    """
    p = np.asarray(p_ecef_m, dtype=np.float64)
    if p.shape[-1] != 3:
        raise InputRejected(f"ECEF points must have shape (..., 3), got {p.shape}", "shape")
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    rho = np.hypot(x, y)
    lon = np.arctan2(y, x)
    lat = np.arctan2(z, rho * (1.0 - E2))
    for _ in range(6):
        sin_lat = np.sin(lat)
        n = A_M / np.sqrt(1.0 - E2 * sin_lat**2)
        h = rho * np.cos(lat) + z * sin_lat - A_M * np.sqrt(1.0 - E2 * sin_lat**2)
        lat = np.arctan2(z, rho * (1.0 - E2 * n / (n + h)))
    sin_lat = np.sin(lat)
    h = rho * np.cos(lat) + z * sin_lat - A_M * np.sqrt(1.0 - E2 * sin_lat**2)
    return np.degrees(lat), np.degrees(lon), h


def R_enu_ecef(lat_deg: float, lon_deg: float) -> np.ndarray:
    """Rotation taking ECEF vectors into the ENU frame at (lat, lon): v_enu = R @ v_ecef."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    sl, cl = np.sin(lat), np.cos(lat)
    so, co = np.sin(lon), np.cos(lon)
    return np.array(
        [
            [-so, co, 0.0],
            [-sl * co, -sl * so, cl],
            [cl * co, cl * so, sl],
        ]
    )


@dataclass(frozen=True)
class LocalTangentPlane:
    """The `map` frame of REP-105 here: an ENU tangent plane at a WGS84 datum.

    >>> ltp = LocalTangentPlane(37.4, -122.1, 10.0)
    >>> ltp.enu_from_geodetic(37.4, -122.1, 10.0).round(6).tolist()
    [0.0, 0.0, 0.0]
    """

    lat0_deg: float
    lon0_deg: float
    alt0_m: float = 0.0

    def __post_init__(self) -> None:
        lat, lon, alt = self.lat0_deg, self.lon0_deg, self.alt0_m
        if not (np.isfinite([lat, lon, alt]).all() and -90 <= lat <= 90 and -180 <= lon <= 360):
            raise InputRejected(f"datum ({lat}, {lon}, {alt}) is not a valid position", "datum")

    @property
    def p0_ecef_m(self) -> np.ndarray:
        return ecef_from_geodetic(self.lat0_deg, self.lon0_deg, self.alt0_m)

    @property
    def R_enu_ecef(self) -> np.ndarray:
        return R_enu_ecef(self.lat0_deg, self.lon0_deg)

    def enu_from_ecef(self, p_ecef_m) -> np.ndarray:
        """ENU [m] (..., 3) of ECEF points."""
        d = np.asarray(p_ecef_m, dtype=np.float64) - self.p0_ecef_m
        return d @ self.R_enu_ecef.T

    def ecef_from_enu(self, p_enu_m) -> np.ndarray:
        """ECEF [m] (..., 3) of ENU points."""
        return np.asarray(p_enu_m, dtype=np.float64) @ self.R_enu_ecef + self.p0_ecef_m

    def enu_from_geodetic(self, lat_deg, lon_deg, alt_m) -> np.ndarray:
        return self.enu_from_ecef(ecef_from_geodetic(lat_deg, lon_deg, alt_m))

    def geodetic_from_enu(self, p_enu_m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return geodetic_from_ecef(self.ecef_from_enu(p_enu_m))

    def R_enu_ecef_at(self, lat_deg: float, lon_deg: float) -> np.ndarray:
        """Rotation from the ENU frame at another point into this map's ENU frame.

        A GNSS covariance is reported in the ENU plane at the fix; far from the datum
        the two planes differ by the angle subtended at the Earth's centre.
        """
        return self.R_enu_ecef @ R_enu_ecef(lat_deg, lon_deg).T
