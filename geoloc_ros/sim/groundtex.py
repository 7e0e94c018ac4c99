"""Ground texture: semantic classes and reflectance rasterised from the layout at 0.125 m.

Roads, markings, sidewalks, grass, parking and gravel are flat paint on the terrain,
so they live in a texture rather than in the mesh. Outside the town the ground is a
patchwork of fields reaching to the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.features import rasterize
from rasterio.transform import Affine

from geoloc_ros.sim.layout import Layout, Surface
from geoloc_ros.sim.noise import hash01, value_noise

TEXTURE_RES_M = 0.125
BORDER_M = 60.0

# linear reflectance per class (R, G, B)
ALBEDO = {
    Surface.ROAD: (0.20, 0.20, 0.21),
    Surface.MARKING: (0.80, 0.80, 0.76),
    Surface.SIDEWALK: (0.50, 0.48, 0.45),
    Surface.GRASS: (0.22, 0.38, 0.12),
    Surface.PARKING: (0.27, 0.27, 0.28),
    Surface.GRAVEL: (0.55, 0.50, 0.40),
    Surface.FIELD: (0.35, 0.40, 0.18),
}


@dataclass(frozen=True)
class GroundTexture:
    x0_m: float  # west edge
    y1_m: float  # north edge
    res_m: float
    classes: np.ndarray  # (H, W) uint8 Surface
    albedo: np.ndarray  # (H, W, 3) uint8, linear reflectance * 255

    def lookup(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reflectance (N, 3) float32 in 0..1, bilinear; class (N,) uint8, nearest texel)."""
        fc = (x_m - self.x0_m) / self.res_m - 0.5
        fr = (self.y1_m - y_m) / self.res_m - 0.5
        h, w = self.classes.shape
        inside = (fc >= 0) & (fc < w - 1) & (fr >= 0) & (fr < h - 1)
        fc, fr = np.where(inside, fc, 0.0), np.where(inside, fr, 0.0)
        c0, r0 = fc.astype(np.int64), fr.astype(np.int64)
        ac, ar = (fc - c0).astype(np.float32)[:, None], (fr - r0).astype(np.float32)[:, None]
        a = self.albedo
        rgb = (1 - ar) * ((1 - ac) * a[r0, c0] + ac * a[r0, c0 + 1]) + ar * (
            (1 - ac) * a[r0 + 1, c0] + ac * a[r0 + 1, c0 + 1]
        )
        rgb = rgb.astype(np.float32) / 255.0
        cls = self.classes[np.rint(fr).astype(np.int64), np.rint(fc).astype(np.int64)]
        if not inside.all():
            out = ~inside
            rgb[out] = _fields(x_m[out], y_m[out])
            cls = np.where(inside, cls, np.uint8(Surface.FIELD))
        return rgb, cls


def _fields(x_m: np.ndarray, y_m: np.ndarray) -> np.ndarray:
    """Farmland beyond the town: 80 m parcels of varied crops, hashed from the cell."""
    cx, cy = np.floor(x_m / 80.0), np.floor(y_m / 80.0)
    h = hash01(cx, cy)
    base = np.array(ALBEDO[Surface.FIELD], np.float32)
    tint = np.stack([0.8 + 0.6 * h, 0.85 + 0.3 * (1 - h), 0.7 + 0.5 * h], -1).astype(np.float32)
    return base * tint


def build_ground_texture(layout: Layout, seed: int) -> GroundTexture:
    """Rasterise the layout's ground polygons and paint them with noise."""
    half = layout.size_m / 2 + BORDER_M
    n = round(2 * half / TEXTURE_RES_M)
    transform = Affine(TEXTURE_RES_M, 0.0, -half, 0.0, -TEXTURE_RES_M, half)
    order = [
        Surface.GRASS,
        Surface.PARKING,
        Surface.GRAVEL,
        Surface.SIDEWALK,
        Surface.ROAD,
        Surface.MARKING,
    ]
    shapes = [
        (layout.ground[s], int(s))
        for s in order
        if s in layout.ground and not layout.ground[s].is_empty
    ]
    classes = rasterize(
        shapes, out_shape=(n, n), transform=transform, fill=int(Surface.GRASS), dtype="uint8"
    )
    rng = np.random.default_rng(seed)
    px = 1.0 / TEXTURE_RES_M
    coarse = value_noise((n, n), 40 * px, rng)
    mid = value_noise((n, n), 6 * px, rng)
    fine = rng.standard_normal((n, n)).astype(np.float32)
    lut = np.zeros((256, 3), np.float32)
    for s, c in ALBEDO.items():
        lut[int(s)] = c
    rgb = lut[classes]
    vegetation = (classes == Surface.GRASS)[..., None]
    grain = np.where(vegetation, 0.10 * mid[..., None] + 0.08 * fine[..., None], 0.0)
    grain += 0.08 * coarse[..., None] + 0.04 * fine[..., None]
    repair = (mid > 1.1) & ((classes == Surface.ROAD) | (classes == Surface.PARKING))
    rgb = rgb * (1.0 + grain)
    rgb[repair] *= 0.75  # darker asphalt patches: stable landmarks for matching
    yy, xx = np.mgrid[0:n, 0:n]
    tiles = ((xx % 4 == 0) | (yy % 4 == 0)) & (classes == Surface.SIDEWALK)
    rgb[tiles] *= 0.8  # 0.5 m paving joints
    albedo = np.clip(rgb * 255.0, 0, 255).astype(np.uint8)
    return GroundTexture(-half, half, TEXTURE_RES_M, classes, albedo)
