"""A generated world: config, layout, mesh, renderer, and its geo-referenced rasters on disk.

A world directory holds `manifest.json`, `layout.json` (vector data in the world's
local ENU frame) and GeoTIFFs in the UTM zone of the datum: `ortho.tif` (RGB),
`dsm.tif` (float32 surface height above the WGS84 ellipsoid) and `semantic.tif`
(uint8 `Surface` classes). Loading regenerates the layout from the recorded config
and checks it against the recorded fingerprint, so a world cannot silently drift.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from geoloc_ros.checksum import sha256_of
from geoloc_ros.errors import ConfigError, GeolocError
from geoloc_ros.geo.utm import UtmProjection
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.sim.appearance import Appearance
from geoloc_ros.sim.layout import Layout, LayoutConfig, Surface, generate_layout
from geoloc_ros.sim.terrain import Terrain

log = logging.getLogger(__name__)

WORLD_FORMAT = 1
GENERATOR_VERSION = "1.0"
# real town centres; a seed picks one unless a datum is given (the demo: Zurich)
DATUMS = (
    (47.3769, 8.5417, 408.0),
    (48.1374, 11.5755, 519.0),
    (45.7640, 4.8357, 217.0),
    (45.0703, 7.6869, 288.0),
    (50.9375, 6.9603, 100.0),
    (52.3676, 4.9041, 43.0),
)
PRESETS = {"demo": {"seed": 7, "datum": DATUMS[0]}}


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    datum: tuple[float, float, float] = DATUMS[0]  # lat [deg], lon [deg], ellipsoidal alt [m]
    gsd_m: float = 0.2
    terrain_relief_m: float = 4.0
    layout: LayoutConfig = field(default_factory=LayoutConfig)

    def __post_init__(self) -> None:
        lat, lon, alt = self.datum
        if not (-80.0 <= lat <= 84.0 and -180.0 <= lon <= 180.0 and -500 < alt < 9000):
            raise ConfigError(f"datum {self.datum} is not a place UTM covers")
        if not 0.05 <= self.gsd_m <= 0.25:
            raise ConfigError(f"gsd_m={self.gsd_m}: the orthophoto needs 0.05-0.25 m/px")
        if not 0.0 <= self.terrain_relief_m <= 50.0:
            raise ConfigError(f"terrain_relief_m={self.terrain_relief_m} must be in [0, 50]")
        if not 200.0 <= self.layout.size_m <= 2000.0:
            raise ConfigError(f"size_m={self.layout.size_m} must be in [200, 2000]")

    @classmethod
    def for_seed(cls, seed: int, **kw) -> WorldConfig:
        if seed < 0:
            raise ConfigError(f"seed must be non-negative, got {seed}")
        kw.setdefault("datum", DATUMS[seed % len(DATUMS)])
        return cls(seed=seed, **kw)

    @classmethod
    def preset(cls, name: str) -> WorldConfig:
        if name not in PRESETS:
            raise ConfigError(f"unknown world preset {name!r}; one of {sorted(PRESETS)}")
        return cls(**PRESETS[name])

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> WorldConfig:
        d = dict(d)
        d["datum"] = tuple(d["datum"])
        d["layout"] = LayoutConfig(**d["layout"])
        return cls(**d)


class World:
    """Everything about one world that rendering and simulation need, built lazily."""

    def __init__(self, cfg: WorldConfig, path: Path | None = None) -> None:
        self.cfg = cfg
        self.path = path
        rng = np.random.default_rng(cfg.seed)
        self.terrain = Terrain.random(rng, cfg.terrain_relief_m)
        self.layout: Layout = generate_layout(cfg.layout, self.terrain, rng)
        self.ltp = LocalTangentPlane(*cfg.datum)
        self.utm = UtmProjection.for_point(cfg.datum[0], cfg.datum[1])

    @property
    def half_m(self) -> float:
        return self.cfg.layout.size_m / 2

    @cached_property
    def mesh(self):
        from geoloc_ros.sim.mesh import build_mesh  # noqa: PLC0415 (trimesh only when rendering)

        return build_mesh(self.layout, self.terrain)

    @cached_property
    def ground(self):
        from geoloc_ros.sim.groundtex import build_ground_texture  # noqa: PLC0415

        return build_ground_texture(self.layout, self.cfg.seed)

    @cached_property
    def renderer(self):
        from geoloc_ros.sim.render import Renderer  # noqa: PLC0415 (embree only when rendering)

        return Renderer(self.mesh, self.ground)

    def top_m(self) -> float:
        """A height above everything in the world (for downward rays)."""
        h = [b.base_z_m + b.height_m for b in self.layout.buildings] or [0.0]
        return float(max(h) + 50.0)

    def ground_height_m(self, x_m, y_m) -> np.ndarray:
        return self.terrain.height(x_m, y_m)

    def multipath_exposure(self, p_enu_m: np.ndarray) -> np.ndarray:
        """1 next to buildings taller than 15 m (street canyons), fading to 0 by 40 m away."""
        p = np.atleast_2d(p_enu_m)
        tall = [b for b in self.layout.buildings if b.height_m > 15.0]
        if not tall:
            return np.zeros(len(p))
        import shapely  # noqa: PLC0415

        pts = shapely.points(p[:, 0], p[:, 1])
        tree = shapely.STRtree([b.footprint for b in tall])
        idx = tree.query_nearest(pts, all_matches=False, return_distance=True)
        d = np.full(len(p), np.inf)
        d[idx[0][0]] = idx[1]
        return np.clip((40.0 - d) / 30.0, 0.0, 1.0)

    def raster_px_from_enu(self, p_enu_m: np.ndarray, transform) -> np.ndarray:
        """(col, row) in a UTM raster with this affine `transform` (pixel centres at
        integers, as OpenCV samples), of ENU points (..., 3)."""
        lat, lon, _ = self.ltp.geodetic_from_enu(p_enu_m)
        en = self.utm.en_from_geodetic(lat, lon)
        inv = ~transform
        col = inv.a * en[..., 0] + inv.b * en[..., 1] + inv.c - 0.5
        row = inv.d * en[..., 0] + inv.e * en[..., 1] + inv.f - 0.5
        return np.stack([col, row], -1)

    def identity(self) -> dict:
        """Which world this is, for the records of bags and datasets made from it."""
        return {
            "path": str(self.path) if self.path else None,
            "seed": self.cfg.seed,
            "layout_sha256": self.fingerprint(),
            "datum": list(self.cfg.datum),
            "crs": f"EPSG:{self.utm.epsg}",
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(_dumps(layout_json(self)).encode()).hexdigest()

    # -- persistence -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> World:
        path = Path(path)
        mf = path / "manifest.json"
        if not mf.is_file():
            raise GeolocError(f"{path} is not a world directory (no manifest.json)")
        try:
            manifest = json.loads(mf.read_text())
            cfg = WorldConfig.from_json(manifest["config"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GeolocError(f"{mf} is corrupt: {exc}") from None
        world = cls(cfg, path)
        if world.fingerprint() != manifest.get("layout_sha256"):
            raise GeolocError(
                f"{path} was made by generator {manifest.get('generator')}, which lays out "
                f"seed {cfg.seed} differently from this version ({GENERATOR_VERSION}); "
                "regenerate it with `geoloc sim world`"
            )
        return world


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _r(x, nd=3):
    return np.round(np.asarray(x, dtype=np.float64), nd).tolist()


def layout_json(world: World) -> dict:
    lay = world.layout
    return {
        "frame": "local ENU at the manifest datum, metres",
        "terrain": world.terrain.to_json(),
        "nodes": {str(k): _r(v) for k, v in sorted(lay.nodes_m.items())},
        "roads": [
            {
                "a": r.a,
                "b": r.b,
                "kind": r.kind,
                "width_m": r.width_m,
                "centerline": _r(r.centerline_m),
            }
            for r in lay.roads
        ],
        "roundabouts": {str(k): v for k, v in lay.roundabouts.items()},
        "buildings": [
            {
                "footprint": _r(np.asarray(b.footprint.exterior.coords)),
                "holes": [_r(np.asarray(h.coords)) for h in b.footprint.interiors],
                "base_z_m": round(b.base_z_m, 3),
                "height_m": round(b.height_m, 3),
                "style": b.style,
                "roof": b.roof,
            }
            for b in lay.buildings
        ],
        "trees": [
            {
                "xyz": _r(t.xyz_m),
                "kind": t.kind,
                "trunk_m": round(t.trunk_m, 3),
                "crown_radius_m": round(t.crown_radius_m, 3),
                "crown_height_m": round(t.crown_height_m, 3),
            }
            for t in lay.trees
        ],
        "poles": [{"xyz": _r(p.xyz_m), "kind": p.kind, "height_m": p.height_m} for p in lay.poles],
    }


def _contents(world: World) -> dict:
    lay = world.layout
    heights = [b.height_m for b in lay.buildings]
    areas = {
        s.name.lower(): round(float(g.area), 1) for s, g in lay.ground.items() if not g.is_empty
    }
    return {
        "roads": {k: sum(r.kind == k for r in lay.roads) for k in ("arterial", "local")},
        "curved_roads": sum(len(r.centerline_m) == 40 for r in lay.roads),
        "junctions": lay.junction_kinds(),
        "buildings": len(heights),
        "building_height_m": [round(min(heights), 1), round(max(heights), 1)] if heights else [],
        "facade_styles": len({b.style for b in lay.buildings}),
        "gable_roofs": sum(b.roof == "gable" for b in lay.buildings),
        "trees": {k: sum(t.kind == k for t in lay.trees) for k in ("broadleaf", "conifer")},
        "poles": {k: sum(p.kind == k for p in lay.poles) for k in ("streetlight", "sign")},
        "ground_area_m2": areas,
    }


def raster_grid(world: World) -> tuple[float, float, int, int]:
    """(west easting, north northing, width, height) of the UTM grid covering the world."""
    h = world.half_m
    corners = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], float)
    lat, lon, _ = world.ltp.geodetic_from_enu(corners)
    en = world.utm.en_from_geodetic(lat, lon)
    g = world.cfg.gsd_m
    e0, n1 = np.floor(en[:, 0].min() / g) * g, np.ceil(en[:, 1].max() / g) * g
    w = int(np.ceil((en[:, 0].max() - e0) / g))
    ht = int(np.ceil((n1 - en[:, 1].min()) / g))
    return float(e0), float(n1), w, ht


def write_world(cfg: WorldConfig, out: str | Path, progress: bool = True) -> tuple[World, bool]:
    """Generate and write a world; returns (world, created). An identical world is reused."""
    out = Path(out)
    if (out / "manifest.json").is_file():
        existing = json.loads((out / "manifest.json").read_text())
        if existing.get("config") == json.loads(_dumps(cfg.to_json())):
            log.info("world %s already exists with this config; nothing to do", out)
            return World.load(out), False
        raise ConfigError(
            f"{out} holds a different world (seed {existing.get('config', {}).get('seed')}); "
            "choose another --out or delete it"
        )
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not an empty directory or a world")
    t0 = time.perf_counter()
    world = World(cfg, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".world-", dir=out.parent))
    try:
        (tmp / "layout.json").write_text(_dumps(layout_json(world)))
        files = _write_rasters(world, tmp, progress)
        manifest = {
            "format": WORLD_FORMAT,
            "generator": GENERATOR_VERSION,
            "config": json.loads(_dumps(cfg.to_json())),
            "datum": {"lat_deg": cfg.datum[0], "lon_deg": cfg.datum[1], "alt_m": cfg.datum[2]},
            "crs": f"EPSG:{world.utm.epsg}",
            "gsd_m": cfg.gsd_m,
            "extent_enu_m": [-world.half_m, -world.half_m, world.half_m, world.half_m],
            "classes": {s.name.lower(): int(s) for s in Surface},
            "heights": "dsm.tif: surface height above the WGS84 ellipsoid "
            "(tangent-plane z + datum alt)",
            "layout_sha256": world.fingerprint(),
            "contents": _contents(world),
            "files": {
                name: {"sha256": sha256_of(tmp / name), "bytes": (tmp / name).stat().st_size}
                for name in ["layout.json", *files]
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if out.exists():
            out.rmdir()
        tmp.chmod(0o755)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    world.path = out
    log.info("world written to %s in %.1f s", out, time.perf_counter() - t0)
    return world, True


def _write_rasters(world: World, out: Path, progress: bool) -> list[str]:
    import rasterio  # noqa: PLC0415
    from rasterio.transform import from_origin  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    e0, n1, w, h = raster_grid(world)
    g = world.cfg.gsd_m
    transform = from_origin(e0, n1, g, g)
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "crs": world.utm.crs.to_wkt(),
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    look = Appearance.orthophoto()
    top = world.top_m()
    alt0 = world.cfg.datum[2]
    names = ["ortho.tif", "dsm.tif", "semantic.tif"]
    with (
        rasterio.open(
            out / names[0], "w", count=3, dtype="uint8", photometric="RGB", **profile
        ) as ortho,
        rasterio.open(
            out / names[1], "w", count=1, dtype="float32", nodata=np.nan, **profile
        ) as dsm,
        rasterio.open(out / names[2], "w", count=1, dtype="uint8", **profile) as sem,
    ):
        rows = 256
        e = e0 + (np.arange(w) + 0.5) * g
        for r0 in tqdm(range(0, h, rows), desc="orthophoto", unit="strip", disable=not progress):
            nr = min(rows, h - r0)
            n = n1 - (r0 + np.arange(nr) + 0.5) * g
            E, N = np.meshgrid(e, n)
            lat, lon = world.utm.geodetic_from_en(E.ravel(), N.ravel())
            enu = world.ltp.enu_from_geodetic(lat, lon, np.full(lat.shape, alt0))
            rgb, z, cls = world.renderer.render_ortho(enu[:, 0], enu[:, 1], look, top)
            win = rasterio.windows.Window(0, r0, w, nr)
            ortho.write(np.moveaxis(rgb.reshape(nr, w, 3), -1, 0), window=win)
            dsm.write((z + alt0).reshape(1, nr, w).astype(np.float32), window=win)
            sem.write(cls.reshape(1, nr, w), window=win)
    return names
