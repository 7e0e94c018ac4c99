"""Smooth analytic terrain: a few long-wavelength sinusoids with exact gradients.

Analytic so that the car's height, slope and the IMU derived from them are
consistent to machine precision, and so the mesh, the DSM and the trajectories
all sample the same surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Terrain:
    """z(x, y) = sum_k a_k sin(kx_k x + ky_k y + phase_k), in the world ENU frame [m]."""

    amplitudes_m: tuple[float, ...] = ()
    wavevectors_radpm: tuple[tuple[float, float], ...] = ()
    phases_rad: tuple[float, ...] = ()

    @classmethod
    def random(cls, rng: np.random.Generator, relief_m: float, n_waves: int = 4) -> Terrain:
        """Gentle hills: wavelengths 250-900 m, total peak-to-peak about `relief_m`."""
        if relief_m <= 0.0:
            return cls()
        wavelengths = rng.uniform(250.0, 900.0, n_waves)
        angles = rng.uniform(0.0, np.pi, n_waves)
        k = 2.0 * np.pi / wavelengths
        amps = rng.uniform(0.5, 1.0, n_waves)
        amps *= 0.5 * relief_m / amps.sum()
        return cls(
            amplitudes_m=tuple(float(a) for a in amps),
            wavevectors_radpm=tuple(
                (float(kk * np.cos(a)), float(kk * np.sin(a)))
                for kk, a in zip(k, angles, strict=True)
            ),
            phases_rad=tuple(float(p) for p in rng.uniform(0.0, 2 * np.pi, n_waves)),
        )

    def __call__(self, x_m, y_m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z, dz/dx, dz/dy) at the given points, same shape as the inputs."""
        x = np.asarray(x_m, dtype=np.float64)
        y = np.asarray(y_m, dtype=np.float64)
        z = np.zeros(np.broadcast(x, y).shape)
        dzdx = np.zeros_like(z)
        dzdy = np.zeros_like(z)
        for a, (kx, ky), ph in zip(
            self.amplitudes_m, self.wavevectors_radpm, self.phases_rad, strict=True
        ):
            arg = kx * x + ky * y + ph
            z += a * np.sin(arg)
            c = a * np.cos(arg)
            dzdx += kx * c
            dzdy += ky * c
        return z, dzdx, dzdy

    def height(self, x_m, y_m) -> np.ndarray:
        return self(x_m, y_m)[0]

    def to_json(self) -> dict:
        return {
            "amplitudes_m": list(self.amplitudes_m),
            "wavevectors_radpm": [list(k) for k in self.wavevectors_radpm],
            "phases_rad": list(self.phases_rad),
        }

    @classmethod
    def from_json(cls, d: dict) -> Terrain:
        return cls(
            amplitudes_m=tuple(d["amplitudes_m"]),
            wavevectors_radpm=tuple(tuple(k) for k in d["wavevectors_radpm"]),
            phases_rad=tuple(d["phases_rad"]),
        )
