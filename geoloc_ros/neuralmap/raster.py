"""North-up rasters in the `map` frame (local ENU at a datum), and resampling into them.

The grid is a transverse Mercator projection centred on the datum: within a few km
of it, its coordinates equal local ENU x/y to well under a millimetre (test_neuralmap
measures it), so a cell's easting/northing *is* its `map`-frame position, and the
GeoTIFFs carry a real CRS that GIS tools understand. Any north-up or rotated source
raster (UTM orthophoto, another CRS) is resampled with rasterio's averaging.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError


def map_crs(datum: tuple[float, float, float]):
    """pyproj CRS of the `map` frame grid around `datum` (lat, lon, alt)."""
    from pyproj import CRS  # noqa: PLC0415

    lat, lon, alt = float(datum[0]), float(datum[1]), float(datum[2])
    k = 1.0 + alt / 6_371_000.0  # the ENU plane sits at the datum's height, not the ellipsoid
    return CRS.from_proj4(
        f"+proj=tmerc +lat_0={lat:.9f} +lon_0={lon:.9f} +k={k:.12f} +x_0=0 +y_0=0 "
        "+ellps=WGS84 +units=m +no_defs"
    )


@dataclass
class MapRaster:
    """(H, W, C) cells of `res_m`; cell (0, 0)'s north-west corner is at (x_west_m, y_north_m)."""

    data: np.ndarray
    x_west_m: float
    y_north_m: float
    res_m: float

    def cell_of(self, xy_m) -> np.ndarray:
        """Fractional (row, col) of map-frame points (..., 2); cell centres are integers."""
        xy = np.asarray(xy_m, dtype=float)
        col = (xy[..., 0] - self.x_west_m) / self.res_m - 0.5
        row = (self.y_north_m - xy[..., 1]) / self.res_m - 0.5
        return np.stack([row, col], -1)

    def xy_of(self, row, col) -> np.ndarray:
        x = self.x_west_m + (np.asarray(col, dtype=float) + 0.5) * self.res_m
        y = self.y_north_m - (np.asarray(row, dtype=float) + 0.5) * self.res_m
        return np.stack([x, y], -1)

    def window(self, row0: int, col0: int, size: int) -> np.ndarray:
        """(size, size, C) cells from (row0, col0); outside the raster is zero."""
        out = np.zeros((size, size, self.data.shape[2]), self.data.dtype)
        ov = window_overlap(row0, col0, size, *self.data.shape[:2])
        if ov is not None:
            src, dst = ov
            out[dst] = self.data[src]
        return out


def resample_to_map(
    src: str | Path,
    datum: tuple[float, float, float],
    res_m: float,
    bounds_m: tuple[float, float, float, float] | None = None,
    bands: tuple[int, ...] = (1, 2, 3),
) -> MapRaster:
    """Average a GeoTIFF's bands onto the `map` grid; bounds (x0, y0, x1, y1) default to
    the source's footprint."""
    import rasterio  # noqa: PLC0415
    from rasterio.transform import from_origin  # noqa: PLC0415
    from rasterio.warp import Resampling, reproject, transform_bounds  # noqa: PLC0415

    path = Path(src)
    if not path.is_file():
        raise ConfigError(f"raster {path} not found")
    crs = map_crs(datum)
    try:
        f = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise ConfigError(f"cannot read {path} as a GeoTIFF: {exc}") from None
    with f:
        if f.crs is None:
            raise ConfigError(f"{path} has no CRS: a geo-referenced GeoTIFF is required")
        if f.count < max(bands):
            raise ConfigError(f"{path} has {f.count} bands; {max(bands)} are required (RGB)")
        if bounds_m is None:
            bounds_m = transform_bounds(f.crs, crs.to_wkt(), *f.bounds)
        x0, y0, x1, y1 = bounds_m
        x0, y1 = np.floor(x0 / res_m) * res_m, np.ceil(y1 / res_m) * res_m
        w = int(np.ceil((x1 - x0) / res_m))
        h = int(np.ceil((y1 - y0) / res_m))
        if w * h > 400e6 or w < 8 or h < 8:
            raise ConfigError(f"map of {w} x {h} cells at {res_m} m is empty or too large")
        out = np.zeros((len(bands), h, w), np.uint8)
        for i, b in enumerate(bands):
            reproject(
                rasterio.band(f, b),
                out[i],
                dst_transform=from_origin(x0, y1, res_m, res_m),
                dst_crs=crs.to_wkt(),
                resampling=Resampling.average,
            )
    return MapRaster(np.moveaxis(out, 0, -1), float(x0), float(y1), float(res_m))


def window_overlap(row0: int, col0: int, size: int, height: int, width: int):
    """The part of a size x size window at (row0, col0) inside a height x width raster:
    ((rows, cols) in the raster, (rows, cols) in the window) as slices, or None."""
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + size, height), min(col0 + size, width)
    if r1 <= r0 or c1 <= c0:
        return None
    src = (slice(r0, r1), slice(c0, c1))
    dst = (slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0))
    return src, dst
