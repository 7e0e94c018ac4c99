"""Generated worlds: files on disk, georeferencing, and the renderer's geometric accuracy.

The two accuracy criteria of the simulator issue are checked here: a 3-D building
corner projects where the renderer draws it (<= 1 px), and a nadir image over flat
ground, rectified onto the orthophoto grid, matches the orthophoto (<= 1 px).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from scipy.spatial.transform import Rotation
from shapely.geometry import Point

from geoloc_ros.errors import ConfigError, GeolocError
from geoloc_ros.posenet.halfturn import check_half_turn, half_turn_poses
from geoloc_ros.sim.appearance import Appearance
from geoloc_ros.sim.camera import CAR_CAMERA, DRONE_CAMERA, DRONE_NADIR_MOUNT
from geoloc_ros.sim.dataset import DatasetConfig, _car_pose, _drone_pose, _route_pose
from geoloc_ros.sim.layout import Building, LayoutConfig, Surface
from geoloc_ros.sim.world import World, WorldConfig, write_world

# seed 32 at 200 m: 3-, 4- and 5-way junctions, 30 buildings up to 53 m, Lyon (UTM 31N)
SEED = 32
SIZE_M = 200.0
RASTERS = ("ortho.tif", "dsm.tif", "semantic.tif")


# layout.py passes shapely's `normalized` positionally (parks); harmless, reported upstream
class Rasters:
    """The three GeoTIFFs of a world read into memory, with ENU <-> pixel helpers."""

    def __init__(self, world: World, path: Path) -> None:
        self.world = world
        with rasterio.open(path / "ortho.tif") as src:
            self.ortho = np.moveaxis(src.read(), 0, -1)
            self.transform = src.transform
        with rasterio.open(path / "dsm.tif") as src:
            self.dsm = src.read(1)
        with rasterio.open(path / "semantic.tif") as src:
            self.sem = src.read(1)
        self.alt0 = world.cfg.datum[2]

    def rowcol(self, xy_enu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the orthophoto pixel holding each ENU point (x, y)."""
        xy = np.atleast_2d(xy_enu)
        lat, lon, _ = self.world.ltp.geodetic_from_enu(np.c_[xy, np.zeros(len(xy))])
        en = self.world.utm.en_from_geodetic(lat, lon)
        t = self.transform  # north-up (asserted below): no rotation terms
        col, row = (en[:, 0] - t.c) / t.a, (en[:, 1] - t.f) / t.e
        inside = (row >= 0) & (row < self.sem.shape[0]) & (col >= 0) & (col < self.sem.shape[1])
        assert inside.all(), "point outside the rasters"
        return np.floor(row).astype(int), np.floor(col).astype(int)

    def enu_of_pixel(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """ENU (x, y) of pixel centres (the height is irrelevant at mm level)."""
        t = self.transform
        e, n = t.c + (np.asarray(col) + 0.5) * t.a, t.f + (np.asarray(row) + 0.5) * t.e
        lat, lon = self.world.utm.geodetic_from_en(e, n)
        return self.world.ltp.enu_from_geodetic(lat, lon, np.full(np.shape(lat), self.alt0))[
            ..., :2
        ]


def _write(tmp_path_factory, relief_m: float) -> tuple[World, Path]:
    cfg = WorldConfig.for_seed(SEED, layout=LayoutConfig(size_m=SIZE_M), terrain_relief_m=relief_m)
    out = tmp_path_factory.mktemp("world") / f"seed{SEED}"
    world, created = write_world(cfg, out, progress=False)
    assert created and world.path == out
    return world, out


@pytest.fixture(scope="module")
def hilly(tmp_path_factory) -> tuple[World, Path]:
    return _write(tmp_path_factory, 4.0)


@pytest.fixture(scope="module")
def hilly_rasters(hilly) -> Rasters:
    return Rasters(*hilly)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- files ---------------------------------------------------------------------------------


def test_world_files_are_georeferenced_utm_rasters_and_a_manifest(hilly, hilly_rasters):
    world, path = hilly
    manifest = json.loads((path / "manifest.json").read_text())
    lat0, lon0, alt0 = world.cfg.datum
    zone = int((lon0 + 180.0) // 6.0) + 1
    epsg = (32600 if lat0 >= 0 else 32700) + zone
    assert manifest["crs"] == f"EPSG:{epsg}"
    gsd = manifest["gsd_m"]
    assert gsd == world.cfg.gsd_m <= 0.25

    shapes = set()
    for name in RASTERS:
        with rasterio.open(path / name) as src:
            assert src.crs.to_epsg() == epsg, name
            t = src.transform
            assert (t.a, t.b, t.d, t.e) == pytest.approx((gsd, 0.0, 0.0, -gsd)), name  # north-up
            # the grid is aligned to multiples of the gsd (tiles of several worlds line up)
            assert t.c / gsd == pytest.approx(round(t.c / gsd), abs=1e-6)
            assert t.f / gsd == pytest.approx(round(t.f / gsd), abs=1e-6)
            shapes.add((src.width, src.height, tuple(t)))
            if name == "ortho.tif":
                assert src.count == 3 and src.dtypes == ("uint8",) * 3
            elif name == "dsm.tif":
                assert src.count == 1 and src.dtypes == ("float32",)
            else:
                assert src.count == 1 and src.dtypes == ("uint8",)
    assert len(shapes) == 1  # one grid for all three

    r = hilly_rasters
    # the grid covers the whole world square, with less than 2 px to spare beyond the
    # corners of the (slightly rotated: meridian convergence) square
    h = world.half_m
    corners = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    rows, cols = r.rowcol(corners)
    H, W = r.sem.shape
    assert rows.min() >= 0 and cols.min() >= 0 and rows.max() < H and cols.max() < W
    assert min(rows.min(), cols.min(), H - 1 - rows.max(), W - 1 - cols.max()) <= 2
    assert r.ortho.std() > 10  # an image, not a blank
    assert np.isfinite(r.dsm).all()
    classes, counts = np.unique(r.sem, return_counts=True)
    assert set(classes.tolist()) <= {int(s) for s in Surface}
    share = dict(zip(classes.tolist(), counts / r.sem.size, strict=True))
    for s in (Surface.ROAD, Surface.BUILDING, Surface.GRASS, Surface.SIDEWALK, Surface.MARKING):
        assert share.get(int(s), 0.0) > 0.002, s.name

    # DSM on roads is the terrain height + the datum altitude
    pts = []
    for road in world.layout.roads:
        c = road.centerline_m
        seg = np.linalg.norm(np.diff(c, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        q = np.arange(0.0, s[-1], 3.0)
        pts.append(np.c_[np.interp(q, s, c[:, 0]), np.interp(q, s, c[:, 1])])
    pts = np.concatenate(pts)
    pts = pts[np.abs(pts).max(axis=1) < h - 2.0]
    rows, cols = r.rowcol(pts)
    cls = r.sem[rows, cols]
    on_road = cls == Surface.ROAD
    # centre lines are road or paint; the rest is trees, poles, roundabout islands
    assert np.isin(cls, [Surface.ROAD, Surface.MARKING]).mean() > 0.8
    assert on_road.sum() > 50
    xy = r.enu_of_pixel(rows[on_road], cols[on_road])
    expect = world.terrain.height(xy[:, 0], xy[:, 1]) + alt0
    err = r.dsm[rows[on_road], cols[on_road]] - expect
    assert np.abs(err).max() < 0.05, np.abs(err).max()
    # the terrain is not flat, so this did test the heights (not just the datum altitude)
    assert np.ptp(expect) > 0.5

    c = manifest["contents"]
    assert len(c["junctions"]) >= 3 and {"3-way", "4-way"} <= set(c["junctions"])
    assert c["buildings"] == len(world.layout.buildings) > 10
    assert c["facade_styles"] > 1 and len({b.style for b in world.layout.buildings}) > 1
    assert sum(c["trees"].values()) == len(world.layout.trees) > 0
    assert sum(c["poles"].values()) == len(world.layout.poles) > 0
    assert manifest["classes"]["building"] == Surface.BUILDING

    files = manifest["files"]
    assert set(files) == {"layout.json", *RASTERS}
    for name, info in files.items():
        assert info["sha256"] == _sha256(path / name), name
        assert info["bytes"] == (path / name).stat().st_size, name


def test_small_worlds_can_have_a_roundabout():
    """Junction kinds beyond the grid's: seed 3 puts a roundabout in a 200 m town."""
    world = World(WorldConfig.for_seed(3, layout=LayoutConfig(size_m=SIZE_M)))
    kinds = world.layout.junction_kinds()
    assert kinds.get("roundabout") == 1
    (node, radius) = next(iter(world.layout.roundabouts.items()))
    centre = Point(world.layout.nodes_m[node])
    # the ring is road, the island inside it grass
    assert world.layout.ground[Surface.GRASS].contains(centre)
    ring = centre.buffer(radius + 1.0).difference(centre.buffer(radius - 1.0))
    assert world.layout.ground[Surface.ROAD].intersection(ring).area > 0.9 * ring.area


def test_rewriting_is_a_no_op_and_tampering_is_detected(hilly, tmp_path):
    world, path = hilly
    before = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    again, created = write_world(world.cfg, path, progress=False)
    assert created is False
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == before
    assert again.fingerprint() == world.fingerprint()

    other = WorldConfig.for_seed(SEED + 1, layout=LayoutConfig(size_m=SIZE_M))
    with pytest.raises(ConfigError, match="different world"):
        write_world(other, path, progress=False)
    with pytest.raises(ConfigError):
        write_world(replace(world.cfg, gsd_m=0.25), path, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == before

    manifest = json.loads((path / "manifest.json").read_text())
    loaded = World.load(path)
    assert loaded.fingerprint() == world.fingerprint() == manifest["layout_sha256"]
    assert loaded.cfg == world.cfg

    tampered = tmp_path / "tampered"
    tampered.mkdir()
    bad = dict(manifest, layout_sha256="0" * 64)
    (tampered / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(GeolocError, match="regenerate"):
        World.load(tampered)
    # a manifest whose config was edited no longer matches its fingerprint either
    edited = json.loads(json.dumps(manifest))
    edited["config"]["seed"] = SEED + 1
    (tampered / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(GeolocError):
        World.load(tampered)
    with pytest.raises(GeolocError, match="not a world directory"):
        World.load(tmp_path / "nowhere")
    # and an intact copy of the manifest loads
    shutil.copy(path / "manifest.json", tampered / "manifest.json")
    assert World.load(tampered).fingerprint() == world.fingerprint()


# -- georeferencing ------------------------------------------------------------------------


def _above_trees(world: World) -> list[Building]:
    """Flat-roof buildings taller than every tree and pole: nothing hangs over their roofs."""
    tallest = max(
        [t.xyz_m[2] + t.trunk_m + t.crown_height_m for t in world.layout.trees]
        + [p.xyz_m[2] + p.height_m for p in world.layout.poles]
    )
    return [
        b
        for b in world.layout.buildings
        if b.roof == "flat" and b.base_z_m + b.height_m > tallest + 1.0
    ]


def _convex_corners(b: Building) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(corner, unit edge to the previous vertex, unit edge to the next) of convex corners."""
    ring = np.asarray(b.footprint.exterior.coords)[:-1]
    sign = 1.0 if b.footprint.exterior.is_ccw else -1.0
    out = []
    for i in range(len(ring)):
        p, prev, nxt = ring[i], ring[i - 1], ring[(i + 1) % len(ring)]
        e_in, e_out = p - prev, nxt - p
        if sign * (e_in[0] * e_out[1] - e_in[1] * e_out[0]) > 1e-6:  # left turn on a ccw ring
            out.append((p, -e_in / np.linalg.norm(e_in), e_out / np.linalg.norm(e_out)))
    return out


def test_rasters_agree_with_the_vector_layout(hilly, hilly_rasters):
    """Footprints mapped ENU -> WGS84 -> UTM -> pixel land on BUILDING pixels, exactly."""
    world, _ = hilly
    r = hilly_rasters
    buildings = _above_trees(world)
    assert len(buildings) >= 5
    probes = 0
    for b in buildings:
        top = b.base_z_m + b.height_m
        for p, a1, a2 in _convex_corners(b):
            if np.abs(p).max() > world.half_m - 1.0:
                continue  # the rasters end at the world's edge
            inward = (a1 + a2) / np.linalg.norm(a1 + a2)
            (ri, ro), (ci, co) = r.rowcol(np.array([p + 0.5 * inward, p - 0.5 * inward]))
            assert r.sem[ri, ci] == Surface.BUILDING, (p, b.height_m)
            assert r.sem[ro, co] != Surface.BUILDING, (p, b.height_m)
            assert r.dsm[ri, ci] == pytest.approx(top + r.alt0, abs=0.05)
            assert r.dsm[ro, co] < top + r.alt0 - 1.0
            probes += 1
    assert probes >= 20

    # Sub-pixel: walk across each wall at its midpoint and find where BUILDING ends. A
    # correct georeference puts the transition within half a pixel diagonal of the wall
    # and is unbiased on average; a shift of a quarter pixel would show.
    offsets = []
    steps = np.arange(-0.6, 0.6, 0.01)
    for b in buildings:
        ring = np.asarray(b.footprint.exterior.coords)
        sign = 1.0 if b.footprint.exterior.is_ccw else -1.0
        for p, q in itertools.pairwise(ring):
            if np.abs((p + q) / 2).max() > world.half_m - 1.0:
                continue
            t = (q - p) / np.linalg.norm(q - p)
            outward = sign * np.array([t[1], -t[0]])
            walk = (p + q) / 2 + steps[:, None] * outward
            rows, cols = r.rowcol(walk)
            inside = r.sem[rows, cols] == Surface.BUILDING
            if not inside[0] or inside[-1] or np.count_nonzero(np.diff(inside)) != 1:
                continue  # something else next to the wall (a neighbouring wing)
            offsets.append(steps[np.argmin(inside)])
    offsets = np.array(offsets)
    print(
        f"wall transitions: n={len(offsets)}, mean {offsets.mean():+.3f} m, "
        f"max |.| {np.abs(offsets).max():.3f} m"
    )
    assert len(offsets) >= 20
    gsd = world.cfg.gsd_m
    assert np.abs(offsets).max() <= gsd / np.sqrt(2) + 0.02
    assert abs(offsets.mean()) < 0.25 * gsd


# -- the renderer's geometry -----------------------------------------------------------------


def _pose_through(camera, C: np.ndarray, P: np.ndarray, u0: int, v0: int, roll_rad: float):
    """T_world_cam at C whose ray through the centre of pixel (u0, v0) passes through P."""
    d = (P - C) / np.linalg.norm(P - C)
    r_cam = np.array([(u0 - camera.cx) / camera.fx, (v0 - camera.cy) / camera.fy, 1.0])
    r_cam /= np.linalg.norm(r_cam)
    # a level camera looking along d (optical x right, y down, z forward) ...
    x = np.cross(d, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    R0 = np.stack([x, np.cross(d, x), d], axis=1)
    # ... turned so the pixel's ray becomes its optical axis, then rolled about d
    Q = Rotation.align_vectors([[0.0, 0.0, 1.0]], [r_cam])[0].as_matrix()
    R = Rotation.from_rotvec(d * roll_rad).as_matrix() @ R0 @ Q
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, C
    return T


def _cross2(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def _corner_holds(sem, depth, corner, step, z_p) -> bool:
    """The building fills the pixel one step into the wedge, sky (or far) one step out."""
    (ui, vi), (uo, vo) = corner + step, corner - step
    inside = sem[vi, ui] == Surface.BUILDING and abs(depth[vi, ui] / z_p - 1.0) < 0.05
    outside = not np.isfinite(depth[vo, uo]) or depth[vo, uo] > 1.2 * z_p
    return bool(inside and outside)


def test_building_corners_project_where_the_renderer_draws_them(hilly):
    world, _ = hilly
    cam = CAR_CAMERA
    look = Appearance.orthophoto()
    rng = np.random.default_rng(4)
    clear_of = [Point(t.xyz_m[:2]).buffer(t.crown_radius_m + 1.0) for t in world.layout.trees]
    clear_of += [b.footprint.buffer(2.0) for b in world.layout.buildings]
    buildings = sorted(_above_trees(world), key=lambda b: -b.height_m)
    cases, errors = [], []
    for b in buildings:
        top = b.base_z_m + b.height_m
        n_here = 0
        for p, a1, a2 in _convex_corners(b):
            if n_here == 3:
                break
            P = np.array([*p, top])
            outward = -(a1 + a2) / np.linalg.norm(a1 + a2)
            c_xy = p + outward * rng.uniform(30.0, 40.0)
            if any(g.contains(Point(c_xy)) for g in clear_of):
                continue
            C = np.array([*c_xy, float(world.terrain.height(*c_xy)) + 1.5])
            dist = np.linalg.norm(P - C)
            hit = world.renderer.cast(C[None], ((P - C) / dist)[None])
            if hit.t_m[0] < dist - 0.05:
                continue  # something stands between the camera and the corner
            u0, v0 = int(rng.integers(80, 240)), int(rng.integers(60, 180))
            roll = np.radians(rng.uniform(3.0, 20.0)) * rng.choice([-1.0, 1.0])
            T = _pose_through(cam, C, P, u0, v0, roll)
            R, t = T[:3, :3], T[:3, 3]

            def px(X, R=R, t=t):
                return cam.project((np.atleast_2d(X) - t) @ R)[0]

            assert px(P) == pytest.approx([u0, v0], abs=1e-6)
            z_p = float(R[:, 2] @ (P - C))
            out = world.renderer.render(cam, T, look)
            # image directions of the two roof edges leaving P; their bisector points
            # into the building's silhouette, snapped to one of the 8 neighbours
            e1 = px(P + 2.0 * np.r_[a1, 0.0]) - [u0, v0]
            e2 = px(P + 2.0 * np.r_[a2, 0.0]) - [u0, v0]
            e1, e2 = e1 / np.linalg.norm(e1), e2 / np.linalg.norm(e2)
            bis = (e1 + e2) / np.linalg.norm(e1 + e2)
            k = np.round(np.arctan2(bis[1], bis[0]) / (np.pi / 4))
            step = np.round([np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)]).astype(int)
            corner = np.array([u0, v0])
            assert _corner_holds(out.semantic, out.depth_m, corner, step, z_p), (b, P, u0, v0)
            # teeth: a corner expected 3 px off along the bisector fails the same check
            assert not _corner_holds(out.semantic, out.depth_m, corner + 3 * step, step, z_p)

            # sub-pixel: every pixel of an 11x11 window is building exactly when its
            # centre lies inside the analytic wedge between the two projected edges
            vv, uu = np.mgrid[v0 - 5 : v0 + 6, u0 - 5 : u0 + 6]
            q = np.stack([uu - u0, vv - v0], -1).astype(float)
            n1 = np.array([-e1[1], e1[0]]) * np.sign(_cross2(e1, e2))
            n2 = np.array([-e2[1], e2[0]]) * np.sign(_cross2(e2, e1))
            s = np.minimum(q @ n1, q @ n2)  # > 0 inside the wedge, |s| <= distance to it
            win_sem = out.semantic[v0 - 5 : v0 + 6, u0 - 5 : u0 + 6]
            win_z = out.depth_m[v0 - 5 : v0 + 6, u0 - 5 : u0 + 6]
            drawn = (win_sem == Surface.BUILDING) & (np.abs(win_z / z_p - 1.0) < 0.05)
            wrong = drawn != (s > 0)
            errors.append(float(np.abs(s[wrong]).max()) if wrong.any() else 0.0)
            cases.append((round(b.height_m, 1), u0, v0, round(float(np.degrees(roll)), 1)))
            n_here += 1
        if len(cases) >= 6 and len({c[0] for c in cases}) >= 2:
            break
    print(f"corner cases (height, u0, v0, roll): {cases}")
    print(f"largest distance of a misdrawn pixel from the analytic silhouette [px]: {errors}")
    assert len(cases) >= 5 and len({c[0] for c in cases}) >= 2
    # ray casting through pixel centres is exact: no pixel is misdrawn, not even those a
    # few hundredths of a pixel from an edge (a renderer off by 1/4 px fails here)
    assert max(errors) < 0.05


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> tuple[World, Path]:
    return _write(tmp_path_factory, 0.0)


def test_nadir_view_rectified_onto_the_orthophoto_matches_it(flat):
    world, path = flat
    r = Rasters(world, path)
    half_win = 150  # 60 m x 60 m of orthophoto
    ground = np.abs(r.dsm - r.alt0) < 0.3
    best = None
    for x in np.arange(-70.0, 70.1, 10.0):
        for y in np.arange(-70.0, 70.1, 10.0):
            (row,), (col,) = r.rowcol(np.array([x, y]))
            win = ground[row - half_win : row + half_win, col - half_win : col + half_win]
            if best is None or win.mean() > best[0]:
                best = (win.mean(), x, y)
    frac, x0, y0 = best
    assert frac >= 0.9, best

    cam = DRONE_CAMERA
    look = Appearance.orthophoto()
    assert look.noise_sigma == 0.0
    yaw = 0.7

    def pose(x, y):
        T_world_base = np.eye(4)
        T_world_base[:3, :3] = Rotation.from_euler("z", yaw).as_matrix()
        T_world_base[:3, 3] = (x, y, 60.0)
        return T_world_base @ DRONE_NADIR_MOUNT.T_base_cam

    T = pose(x0, y0)
    assert T[:3, 2] @ [0, 0, -1.0] == pytest.approx(1.0)  # looking straight down

    # the orthophoto crop: 256 x 256 px (51 m) around the nadir point
    (row,), (col,) = r.rowcol(T[:2, 3])
    rows, cols = np.mgrid[row - 128 : row + 128, col - 128 : col + 128]
    xy = r.enu_of_pixel(rows, cols)
    p = np.concatenate([xy, np.zeros((*xy.shape[:2], 1))], -1).reshape(-1, 3)
    crop = r.ortho[row - 128 : row + 128, col - 128 : col + 128]
    # ground the camera sees: flat in the DSM and not hidden behind anything from above
    to_cam = T[:3, 3] - p
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    hidden = world.renderer.occluded(p + np.array([0.0, 0.0, 0.05]), to_cam).reshape(rows.shape)
    mask = ground[rows, cols] & ~hidden
    assert mask.mean() > 0.8

    def rectify(T_assumed, image):
        R, t = T_assumed[:3, :3], T_assumed[:3, 3]
        uv = cam.project((p - t) @ R).reshape(*rows.shape, 2).astype(np.float32)
        return cv2.remap(image, uv[..., 0], uv[..., 1], cv2.INTER_LINEAR)

    def gray(img):
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)

    hann = cv2.createHanningWindow(crop.shape[1::-1], cv2.CV_32F)
    nadir = world.renderer.render(cam, T, look).rgb
    rect = rectify(T, nadir)
    (dx, dy), _ = cv2.phaseCorrelate(gray(crop), gray(rect), hann)
    mad = np.abs(gray(crop) - gray(rect))[mask].mean()

    # teeth: the camera 0.6 m (3 orthophoto px) to its right, rectified as if it were not
    side = T[:3, 0] * 0.6
    moved = world.renderer.render(cam, pose(x0 + side[0], y0 + side[1]), look).rgb
    (mx, my), _ = cv2.phaseCorrelate(gray(crop), gray(rectify(T, moved)), hann)
    print(
        f"nadir at ({x0:.0f}, {y0:.0f}), {frac:.0%} flat: phase-correlation shift "
        f"({dx:+.3f}, {dy:+.3f}) px, mean |diff| {mad:.2f} grey levels on {mask.mean():.0%} "
        f"of the crop; camera moved 0.6 m: shift ({mx:+.2f}, {my:+.2f}) px"
    )
    assert np.hypot(dx, dy) <= 0.5  # the issue asks <= 1 px; half a camera pixel fails this
    assert mad < 8.0
    assert np.hypot(mx, my) >= 2.0


def test_a_nadir_image_turned_half_round_is_the_half_turn_pose_view(hilly):
    """posenet/halfturn.py: PoseNet's --half-turn labels must be where the view comes from."""
    world, _ = hilly
    cam, T_bc = DRONE_CAMERA, DRONE_NADIR_MOUNT.T_base_cam
    check_half_turn({"K": cam.K.tolist(), "width": cam.width, "height": cam.height})
    look = Appearance.orthophoto()
    R = Rotation.from_euler("xyz", [0.04, -0.03, 0.9])  # tilted: roll/pitch must carry over
    p = np.array([20.0, -35.0, float(world.terrain.height(20.0, -35.0)) + 60.0])
    (p2,), (q2,) = half_turn_poses(p[None], R.as_quat()[None], T_bc)

    def view(p_m, R_world_base):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R_world_base, p_m
        return world.renderer.render(cam, T @ T_bc, look).rgb.astype(np.float32)

    turned = view(p, R.as_matrix())[::-1, ::-1]
    exact = np.abs(view(p2, Rotation.from_quat(q2).as_matrix()) - turned).mean()
    # teeth: the body turned about its own origin instead (the lens swings 0.2 m)
    naive = (R * Rotation.from_euler("z", np.pi)).as_matrix()
    wrong = np.abs(view(p, naive) - turned).mean()
    print(f"mean |diff| half-turn pose {exact:.2f}, body turned about its origin {wrong:.2f}")
    assert exact < 0.5
    assert wrong > 4 * exact + 0.5
    off = {"K": [[200, 0, 150], [0, 200, 119.5], [0, 0, 1]], "width": 320, "height": 240}
    with pytest.raises(ConfigError, match="principal point"):
        check_half_turn(off)
    with pytest.raises(ConfigError, match="simulator datasets"):
        check_half_turn(None)


def test_survey_headings_fly_east_west_lines_and_any_is_uniform(hilly):
    world, _ = hilly
    band = (-world.half_m, world.half_m)

    def near_line_fraction(heading: str) -> float:
        yaw = []
        for i in range(600):
            T = _drone_pose(world, band, np.random.default_rng([3, i]), heading, (50.0, 120.0))
            yaw.append(np.arctan2(T[1, 0], T[0, 0]))
        off = np.abs(np.angle(np.exp(2j * np.asarray(yaw)))) / 2  # to the nearest of 0, pi
        return float(np.mean(off < np.radians(20.0)))

    survey, anywhere = near_line_fraction("survey"), near_line_fraction("any")
    assert survey > 0.85  # 90 % on the lines (6 deg sigma), a few transit legs
    assert 0.12 < anywhere < 0.33  # uniform: 40 of 180 deg
    with pytest.raises(ConfigError, match="drone heading"):
        DatasetConfig(platform="drone", drone_heading="north")


def test_drone_samples_fly_inside_the_altitude_band(hilly):
    world, _ = hilly
    band = (-world.half_m, world.half_m)
    agl = []
    for i in range(300):
        T = _drone_pose(world, band, np.random.default_rng([5, i]), "any", (50.0, 70.0))
        agl.append(T[2, 3] - float(world.terrain.height(T[0, 3], T[1, 3])))
    assert min(agl) >= 50.0 and max(agl) <= 70.0
    assert max(agl) - min(agl) > 15.0  # spread over the band, not pinned to one end
    with pytest.raises(ConfigError, match="altitude"):
        DatasetConfig(platform="drone", drone_altitude_m=(10.0, 70.0))
    with pytest.raises(ConfigError, match="altitude"):
        DatasetConfig(platform="drone", drone_altitude_m=(90.0, 70.0))


def test_route_poses_turn_through_junctions_where_road_poses_never_do(hilly):
    """Road poses follow a road's heading (4 deg sigma); poses along planned drives also
    turn through junctions, as the drives a PoseNet is used on do. Both stay on roads."""
    from shapely.geometry import LineString

    world, _ = hilly
    band = (-world.half_m, world.half_m)
    lines = [LineString(r.centerline_m) for r in world.layout.roads]

    def off_axis_deg(T: np.ndarray) -> tuple[float, float]:
        """(distance to the nearest road, heading off the axis of the closest-aligned
        road within 8 m: at a junction a car on either road counts as on-axis)."""
        p = Point(T[0, 3], T[1, 3])
        yaw = np.arctan2(T[1, 0], T[0, 0])
        off = []
        for line in (ln for ln in lines if ln.distance(p) < 8.0):
            a = line.interpolate(max(line.project(p) - 1.0, 0.0))
            b = line.interpolate(min(line.project(p) + 1.0, line.length))
            d = np.angle(np.exp(2j * (yaw - np.arctan2(b.y - a.y, b.x - a.x))))
            off.append(np.degrees(np.abs(d)) / 2)
        return min(ln.distance(p) for ln in lines), min(off, default=90.0)

    road = np.array([off_axis_deg(_car_pose(world, band, np.random.default_rng([7, i])))
                     for i in range(150)])  # fmt: skip
    route = np.array([off_axis_deg(_route_pose(world, band, np.random.default_rng([8, i])))
                      for i in range(150)])  # fmt: skip
    widest = max(r.width_m for r in world.layout.roads)
    assert road[:, 0].max() < widest and np.percentile(route[:, 0], 90) < widest
    turning = float(np.mean(route[:, 1] > 15.0))
    print(f"share more than 15 deg off every nearby road's axis: road poses "
          f"{np.mean(road[:, 1] > 15.0):.1%}, route poses {turning:.1%}")  # fmt: skip
    assert np.mean(road[:, 1] > 15.0) < 0.02 and turning > 0.05
    with pytest.raises(ConfigError, match="car_route_fraction"):
        DatasetConfig(car_route_fraction=1.5)


def test_a_split_band_too_narrow_names_the_fraction_that_fits(hilly):
    """A split too narrow for this world says which --fractions would fit, and that
    fraction does fit."""
    from geoloc_ros.sim.dataset import MIN_BAND_M, split_bands

    world, _ = hilly
    cfg = DatasetConfig(fractions=(0.9, 0.05, 0.05))
    with pytest.raises(ConfigError, match=r"split val band .* fraction >= (\d\.\d\d)") as exc:
        split_bands(world, cfg)
    need = float(str(exc.value).split(">= ")[1].split(" ")[0])
    rest = (1.0 - need) / 2
    bands = split_bands(world, DatasetConfig(fractions=(rest, need + 0.01, rest - 0.01)))
    lo, hi = bands["val"]
    assert hi - lo >= MIN_BAND_M
