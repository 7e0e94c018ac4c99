"""Appearance of a rendered moment: sun, sky, season, haze, camera response, ground wear.

The orthophoto is rendered with one appearance (`Appearance.orthophoto()`), queries
with others (`Appearance.random(rng)`), so learned localizers face the cross-time gap
real aerial maps have: other shadows, other vegetation colour, repainted and worn ground.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.sim.layout import Surface
from geoloc_ros.sim.noise import hash01

SEASON_FOLIAGE = {
    "spring": (0.20, 0.45, 0.12),
    "summer": (0.12, 0.30, 0.08),
    "autumn": (0.45, 0.28, 0.08),
    "winter": (0.30, 0.26, 0.20),
}
SEASON_GRASS = {
    "spring": (1.0, 1.15, 0.9),
    "summer": (1.0, 1.0, 1.0),
    "autumn": (1.35, 1.0, 0.85),
    "winter": (1.6, 1.05, 1.2),
}


@dataclass(frozen=True)
class Appearance:
    sun_azimuth_deg: float = 160.0  # compass bearing: 0 north, 90 east
    sun_elevation_deg: float = 50.0
    sun_intensity: float = 2.2
    sky_intensity: float = 0.55
    season: str = "summer"
    haze_visibility_m: float = float("inf")
    exposure: float = 1.0
    noise_sigma: float = 0.0  # display units, 0..1
    wear_seed: int = 0
    wear_strength: float = 0.0

    def __post_init__(self) -> None:
        if self.season not in SEASON_FOLIAGE:
            raise ConfigError(f"unknown season {self.season!r}; one of {sorted(SEASON_FOLIAGE)}")
        if not -10.0 <= self.sun_elevation_deg <= 90.0 or self.exposure <= 0.0:
            raise ConfigError("sun elevation must be in [-10, 90] deg and exposure positive")
        if self.haze_visibility_m <= 0.0 or self.noise_sigma < 0.0:
            raise ConfigError("haze visibility must be positive and noise non-negative")

    @classmethod
    def orthophoto(cls) -> Appearance:
        """The look of the aerial map: summer, late morning, clear."""
        return cls()

    @classmethod
    def random(cls, rng: np.random.Generator) -> Appearance:
        """Another time, day and season than the map's."""
        elev = float(rng.uniform(12.0, 70.0))
        return cls(
            sun_azimuth_deg=float(rng.uniform(70.0, 290.0)),
            sun_elevation_deg=elev,
            sun_intensity=float(rng.uniform(1.4, 2.6)),
            sky_intensity=float(rng.uniform(0.4, 0.8)),
            season=str(rng.choice(list(SEASON_FOLIAGE))),
            haze_visibility_m=float(rng.choice([np.inf, rng.uniform(400.0, 4000.0)])),
            exposure=float(rng.uniform(0.75, 1.3)),
            noise_sigma=float(rng.uniform(0.005, 0.025)),
            wear_seed=int(rng.integers(1, 2**31)),
            wear_strength=float(rng.uniform(0.1, 0.3)),
        )

    def with_(self, **kw) -> Appearance:
        return replace(self, **kw)

    # -- light ----------------------------------------------------------------------------
    @property
    def sun_dir_enu(self) -> np.ndarray:
        az, el = np.radians(self.sun_azimuth_deg), np.radians(self.sun_elevation_deg)
        return np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])

    @property
    def sun_rgb(self) -> np.ndarray:
        """Low sun is warmer and weaker."""
        el = max(self.sun_elevation_deg, 0.0)
        warm = np.clip(1.0 - el / 40.0, 0.0, 1.0)
        colour = np.array([1.0, 1.0 - 0.25 * warm, 1.0 - 0.5 * warm])
        return (self.sun_intensity * min(1.0, 0.3 + el / 30.0) * colour).astype(np.float32)

    @property
    def ambient_rgb(self) -> np.ndarray:
        return (self.sky_intensity * np.array([0.75, 0.85, 1.0])).astype(np.float32)

    @property
    def haze_rgb(self) -> np.ndarray:
        return (0.9 * self.sky_intensity * np.array([0.9, 0.92, 0.95]) + 0.3).astype(np.float32)

    def sky_radiance(self, dirs: np.ndarray) -> np.ndarray:
        """Blue towards the zenith, pale at the horizon, brighter towards the sun."""
        up = np.clip(dirs[:, 2], 0.0, 1.0)[:, None]
        horizon = np.array([0.75, 0.82, 0.9], np.float32)
        zenith = np.array([0.25, 0.42, 0.8], np.float32)
        sky = horizon * (1 - up) + zenith * up
        glow = np.clip(dirs @ self.sun_dir_enu, 0.0, 1.0)[:, None] ** 8
        return ((sky * (0.6 + 0.6 * self.sky_intensity)) + 0.5 * glow).astype(np.float32)

    # -- materials --------------------------------------------------------------------------
    def _wear(self, p: np.ndarray) -> np.ndarray:
        if self.wear_strength == 0.0:
            return np.ones(len(p), np.float32)
        r = np.random.default_rng(self.wear_seed)
        k = r.uniform(0.02, 0.3, (6, 2)) * r.choice([-1, 1], (6, 2))
        ph = r.uniform(0, 2 * np.pi, 6)
        w = np.sin(p[:, :2] @ k.T + ph).sum(axis=1) / 3.0
        return (1.0 + self.wear_strength * np.tanh(w)).astype(np.float32)

    def ground_reflectance(self, rgb: np.ndarray, cls: np.ndarray, p: np.ndarray) -> np.ndarray:
        veg = (cls == Surface.GRASS) | (cls == Surface.FIELD)
        out = rgb * self._wear(p)[:, None]
        out[veg] *= np.array(SEASON_GRASS[self.season], np.float32)
        return np.clip(out, 0.0, 1.0)

    def foliage(self, p: np.ndarray, inst: np.ndarray) -> np.ndarray:
        base = np.array(SEASON_FOLIAGE[self.season], np.float32)
        var = 0.8 + 0.4 * hash01(inst)
        grain = 0.85 + 0.3 * (np.sin(p[:, 0] * 7.1 + p[:, 1] * 5.3 + p[:, 2] * 9.7) > 0)
        return (base * (var * grain)[:, None]).astype(np.float32)

    # -- camera ------------------------------------------------------------------------------
    def to_display(self, radiance: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Linear radiance -> 8-bit sRGB-ish display values with exposure and noise."""
        x = np.clip(radiance * (0.75 * self.exposure), 0.0, None)
        x = x / (1.0 + 0.25 * x)  # soft shoulder instead of hard clipping
        x = np.power(np.clip(x, 0.0, 1.0), 1 / 2.2)
        if rng is not None and self.noise_sigma > 0:
            x = x + self.noise_sigma * rng.standard_normal(x.shape, dtype=np.float32)
        return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
