"""Neural-map folders: building them from rasters, and reading windows around a prior.

    MAPDIR/map.json       datum, CRS, grid, the encoding model's sha256, file hashes
    MAPDIR/features.tif   float32 GeoTIFF, one band per matching channel, tiled 256 x 256,
                          in the `map` grid (raster.py), so GIS tools can show it
    MAPDIR/ortho.tif      the orthophoto resampled to the same grid (for RViz and checks)

`MapStore.window()` reads only the tiles a window touches (rasterio windowed read).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from geoloc_ros.checksum import sha256_of, verify_sha256
from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.modelcard import read_card
from geoloc_ros.neuralmap.raster import MapRaster, map_crs, resample_to_map, window_overlap

MAP_CARD = "map.json"
FEATURES = "features.tif"
ORTHO = "ortho.tif"
FORMAT = 1
TILE = 256


def encode_raster(net, raster: MapRaster, tile: int = TILE, margin: int = 24,
                  progress: bool = False) -> np.ndarray:  # fmt: skip
    """(M, H, W) matching features of a whole raster, tile by tile with overlapping margins."""
    import torch  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    h, w = raster.data.shape[:2]
    out = np.zeros((net.cfg.match_channels, h, w), np.float32)
    jobs = [(r, c) for r in range(0, h, tile) for c in range(0, w, tile)]
    with torch.inference_mode():
        for r, c in tqdm(jobs, desc="encode map", unit="tile", disable=not progress):
            win = raster.window(r - margin, c - margin, tile + 2 * margin)
            x = torch.from_numpy(np.ascontiguousarray(win.transpose(2, 0, 1)))[None]
            f = net.map_features(x)[0].numpy()
            hh, ww = min(tile, h - r), min(tile, w - c)
            out[:, r : r + hh, c : c + ww] = f[:, margin : margin + hh, margin : margin + ww]
    return out


def _ortho_centre_datum(path: Path) -> tuple[float, float, float]:
    import rasterio  # noqa: PLC0415
    from rasterio.warp import transform  # noqa: PLC0415

    with rasterio.open(path) as f:
        if f.crs is None:
            raise ConfigError(f"{path} has no CRS: a geo-referenced GeoTIFF is required")
        b = f.bounds
        lon, lat = transform(f.crs, "EPSG:4326", [(b.left + b.right) / 2], [(b.top + b.bottom) / 2])
    return float(lat[0]), float(lon[0]), 0.0


def build_map(
    out: str | Path,
    model: str | Path | None = None,
    world: str | Path | None = None,
    ortho: str | Path | None = None,
    datum=None,
    progress: bool = True,
) -> dict:
    """Encode a world's or a user's orthophoto into a map folder; returns the card."""
    import rasterio  # noqa: PLC0415
    from rasterio.transform import from_origin  # noqa: PLC0415

    from geoloc_ros.neuralmap.bundle import build_net, load_bundle  # noqa: PLC0415
    from geoloc_ros.neuralmap.localizer import shipped_model_dir  # noqa: PLC0415

    bundle = load_bundle(model or shipped_model_dir("car"))
    cfg = bundle.config
    bounds = None
    if world is not None:
        from geoloc_ros.sim.world import World  # noqa: PLC0415

        w = World.load(world)
        datum = datum or tuple(w.cfg.datum)
        src = Path(world) / "ortho.tif"
        bounds = (-w.half_m, -w.half_m, w.half_m, w.half_m)
    elif ortho is not None:
        src = Path(ortho)
        if not src.is_file():
            raise ConfigError(f"orthophoto {src} not found")
        datum = datum or _ortho_centre_datum(src)
    else:
        raise ConfigError("give --world or --ortho")
    raster = resample_to_map(src, datum, cfg.res_m, bounds)
    feats = encode_raster(build_net(bundle), raster, progress=progress)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    m, h, w_ = feats.shape
    profile = {
        "driver": "GTiff", "width": w_, "height": h, "crs": map_crs(datum).to_wkt(),
        "transform": from_origin(raster.x_west_m, raster.y_north_m, cfg.res_m, cfg.res_m),
        "tiled": True, "blockxsize": TILE, "blockysize": TILE, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(d / FEATURES, "w", count=m, dtype="float32", **profile) as f:
        f.write(feats)
    with rasterio.open(d / ORTHO, "w", count=3, dtype="uint8", **profile) as f:
        f.write(raster.data.transpose(2, 0, 1))
    card = {
        "format": FORMAT, "kind": "neuralmap-tiles", "datum": list(datum), "res_m": cfg.res_m,
        "width": w_, "height": h, "x_west_m": raster.x_west_m, "y_north_m": raster.y_north_m,
        "channels": m, "model_sha256": bundle.weights_sha256, "platform": cfg.platform,
        "source": str(src), "files": {n: sha256_of(d / n) for n in (FEATURES, ORTHO)},
    }  # fmt: skip
    (d / MAP_CARD).write_text(json.dumps(card, indent=1))
    return card


class MapStore:
    """A map folder, opened once; `window()` reads features around a position."""

    def __init__(self, directory: str | Path, model_sha256: str | None = None) -> None:
        import rasterio  # noqa: PLC0415

        d = Path(directory)
        card = read_card(d / MAP_CARD, "neuralmap-tiles", FORMAT, "neural map",
                         hint="build the map with `geoloc map build`")  # fmt: skip
        if model_sha256 and card["model_sha256"] != model_sha256:
            raise ConfigError(
                f"the map {d} was encoded by model {card['model_sha256'][:12]}, not the one "
                f"loaded ({model_sha256[:12]}): rebuild it with `geoloc map build --model`"
            )
        verify_sha256(d / FEATURES, card["files"][FEATURES])
        try:
            self._ds = rasterio.open(d / FEATURES)
        except rasterio.errors.RasterioIOError as exc:
            raise ConfigError(f"cannot read {d / FEATURES}: {exc}") from None
        self.card = card
        self.directory = d
        self.grid = MapRaster(np.zeros((0, 0, 0)), card["x_west_m"], card["y_north_m"],
                              card["res_m"])  # fmt: skip
        self.datum = tuple(card["datum"])

    def contains(self, xy_m) -> bool:
        r, c = self.grid.cell_of(xy_m)
        return 0 <= r < self.card["height"] and 0 <= c < self.card["width"]

    def window(self, row0: int, col0: int, size: int) -> np.ndarray:
        """(M, size, size) features from map cell (row0, col0); zeros outside the map.

        Reads only the part inside the raster and pads it here: rasterio's `boundless`
        read goes through a VRT and was 16x slower (18 ms against 1.1 ms a window).
        """
        from rasterio.windows import Window  # noqa: PLC0415

        out = np.zeros((self.card["channels"], size, size), np.float32)
        ov = window_overlap(row0, col0, size, self.card["height"], self.card["width"])
        if ov is None:
            return out
        (rows, cols), dst = ov
        try:
            part = self._ds.read(window=Window.from_slices(rows, cols))
        except Exception as exc:  # rasterio raises several types for corrupt tiles
            raise InputRejected(f"map tiles unreadable: {exc}", reason="map") from None
        out[(slice(None), *dst)] = part
        return out

    def ortho_rgb(self, max_cells: int = 2048) -> tuple[np.ndarray, float, float, float]:
        """The map's orthophoto, north row first, at most `max_cells` a side; returns
        (rgb uint8 (H, W, 3), cell size m, x_west_m, y_south_m) in the map frame."""
        import rasterio  # noqa: PLC0415

        path = self.directory / ORTHO
        try:
            with rasterio.open(path) as f:
                step = max(1, int(np.ceil(max(f.width, f.height) / max_cells)))
                shape = (f.count, f.height // step, f.width // step)
                rgb = f.read(out_shape=shape, resampling=rasterio.enums.Resampling.average)
        except rasterio.errors.RasterioIOError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        res = self.card["res_m"] * step
        y_south = self.card["y_north_m"] - rgb.shape[1] * res
        return rgb[:3].transpose(1, 2, 0), float(res), float(self.card["x_west_m"]), float(y_south)

    def ortho_gray(self, max_cells: int = 2048) -> tuple[np.ndarray, float, float, float]:
        """ortho_rgb as grey levels (for RViz's Map display)."""
        rgb, res, x_west, y_south = self.ortho_rgb(max_cells)
        return np.round(rgb.astype(np.float32).mean(2)).astype(np.uint8), res, x_west, y_south

    def close(self) -> None:
        self._ds.close()
