"""Triangle mesh of a town layout: terrain, extruded buildings, trees and poles.

One mesh with per-triangle semantic class and instance id, and per-vertex (u, v)
facade coordinates in metres (distance along the wall, height above its base), so
the renderer can shade any hit without knowing where the triangle came from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import shapely
import trimesh
from shapely.geometry import Polygon

from geoloc_ros.sim.layout import Building, Layout, Pole, Surface, Tree
from geoloc_ros.sim.terrain import Terrain


class Material(enum.IntEnum):
    """How a triangle is shaded; separate from its semantic class (a trunk is TREE)."""

    TERRAIN = 0
    BUILDING = 1
    FOLIAGE = 2
    BARK = 3
    METAL = 4


@dataclass(frozen=True)
class SceneMesh:
    vertices_m: np.ndarray  # (V, 3) float64, world ENU
    faces: np.ndarray  # (F, 3) int32
    tri_class: np.ndarray  # (F,) uint8, Surface
    tri_material: np.ndarray  # (F,) uint8, Material
    tri_instance: np.ndarray  # (F,) int32: building or tree index, -1 for terrain
    uv_m: np.ndarray  # (V, 2) float32, facade coordinates
    building_style: np.ndarray  # (n_buildings,) int: facade style of each building

    @property
    def n_triangles(self) -> int:
        return len(self.faces)


class _Builder:
    def __init__(self) -> None:
        self.v: list[np.ndarray] = []
        self.f: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.m: list[np.ndarray] = []
        self.i: list[np.ndarray] = []
        self.uv: list[np.ndarray] = []
        self.nv = 0

    def add(self, v, f, cls: Surface, mat: Material, inst: int, uv=None) -> None:
        v = np.asarray(v, np.float64)
        f = np.asarray(f, np.int64)
        self.v.append(v)
        self.f.append(f + self.nv)
        self.c.append(np.full(len(f), int(cls), np.uint8))
        self.m.append(np.full(len(f), int(mat), np.uint8))
        self.i.append(np.full(len(f), inst, np.int32))
        self.uv.append(np.zeros((len(v), 2), np.float32) if uv is None else np.asarray(uv))
        self.nv += len(v)

    def build(self, building_style: np.ndarray) -> SceneMesh:
        return SceneMesh(
            np.concatenate(self.v),
            np.concatenate(self.f).astype(np.int32),
            np.concatenate(self.c),
            np.concatenate(self.m),
            np.concatenate(self.i),
            np.concatenate(self.uv).astype(np.float32),
            np.asarray(building_style, np.int64),
        )


def terrain_axis(half_m: float, fine_m: float = 2.0, outer_m: float = 1500.0) -> np.ndarray:
    """Grid lines: fine inside the world, coarsening outwards to the horizon skirt."""
    inner = np.arange(-half_m - 60, half_m + 60 + 1e-9, fine_m)
    steps = fine_m * 1.25 ** np.arange(1, 60)
    outer = half_m + 60 + np.cumsum(steps)
    outer = outer[outer < outer_m]
    return np.concatenate([-outer[::-1], inner, outer])


def _terrain(b: _Builder, terrain: Terrain, half_m: float) -> None:
    ax = terrain_axis(half_m)
    X, Y = np.meshgrid(ax, ax, indexing="xy")
    Z = terrain.height(X, Y)
    n = len(ax)
    v = np.stack([X.ravel(), Y.ravel(), Z.ravel()], -1)
    idx = np.arange(n * n).reshape(n, n)
    a, bb, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    f = np.concatenate(
        [np.stack([a, bb, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
    )
    b.add(
        v, f, Surface.VOID, Material.TERRAIN, -1
    )  # ground class comes from the texture, not the mesh


def _walls(b: _Builder, ring: np.ndarray, z0: float, z1: float, inst: int) -> None:
    ring = ring[:-1] if np.allclose(ring[0], ring[-1]) else ring
    nxt = np.roll(ring, -1, axis=0)
    seg = np.linalg.norm(nxt - ring, axis=1)
    s0 = np.concatenate([[0.0], np.cumsum(seg)[:-1]])
    k = len(ring)
    v = np.empty((4 * k, 3))
    v[0::4, :2], v[1::4, :2], v[2::4, :2], v[3::4, :2] = ring, nxt, nxt, ring
    v[0::4, 2] = v[1::4, 2] = z0
    v[2::4, 2] = v[3::4, 2] = z1
    uv = np.empty((4 * k, 2))
    uv[0::4] = np.stack([s0, np.zeros(k)], -1)
    uv[1::4] = np.stack([s0 + seg, np.zeros(k)], -1)
    uv[2::4] = np.stack([s0 + seg, np.full(k, z1 - z0)], -1)
    uv[3::4] = np.stack([s0, np.full(k, z1 - z0)], -1)
    base = 4 * np.arange(k)[:, None]
    f = np.concatenate([base + np.array([0, 1, 2]), base + np.array([0, 2, 3])])
    b.add(v, f, Surface.BUILDING, Material.BUILDING, inst, uv)


def _flat_roof(b: _Builder, poly: Polygon, z: float, inst: int) -> None:
    tris = shapely.constrained_delaunay_triangles(poly)
    pts = np.array([np.asarray(t.exterior.coords)[:3] for t in tris.geoms])  # (T, 3, 2)
    v = np.concatenate([pts.reshape(-1, 2), np.full((pts.size // 2, 1), z)], 1)
    f = np.arange(len(v)).reshape(-1, 3)
    b.add(v, f, Surface.BUILDING, Material.BUILDING, inst)


def _building(b: _Builder, bld: Building, inst: int) -> None:
    top = bld.base_z_m + bld.height_m
    if bld.roof == "gable":
        rect = np.asarray(bld.footprint.minimum_rotated_rectangle.exterior.coords)[:4]
        e0, e1 = rect[1] - rect[0], rect[2] - rect[1]
        if np.linalg.norm(e0) < np.linalg.norm(e1):
            rect = np.roll(rect, -1, axis=0)
            e0, e1 = e1, rect[2] - rect[1]
        rise = min(0.35 * np.linalg.norm(e1), 0.4 * bld.height_m)
        eave = top - rise
        _walls(b, np.asarray(bld.footprint.exterior.coords), bld.base_z_m, eave, inst)
        r0, r1 = rect[0] + e1 / 2, rect[1] + e1 / 2  # ridge along the long side
        p = rect
        v = np.array(
            [
                [*p[0], eave],
                [*p[1], eave],
                [*r1, top],
                [*r0, top],
                [*p[2], eave],
                [*p[3], eave],
                [*r0, top],
                [*r1, top],
                [*p[1], eave],
                [*p[2], eave],
                [*r1, top],
                [*p[3], eave],
                [*p[0], eave],
                [*r0, top],
            ]
        )
        f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [8, 9, 10], [11, 12, 13]])
        b.add(v, f, Surface.BUILDING, Material.BUILDING, inst)
        return
    _walls(b, np.asarray(bld.footprint.exterior.coords), bld.base_z_m, top, inst)
    for hole in bld.footprint.interiors:
        _walls(b, np.asarray(hole.coords), bld.base_z_m, top, inst)
    _flat_roof(b, bld.footprint, top, inst)


_ICO = trimesh.creation.icosphere(subdivisions=1)
_CONE = trimesh.creation.cone(radius=1.0, height=1.0, sections=9)
_CYL = trimesh.creation.cylinder(radius=1.0, height=1.0, sections=6)
_BOX = trimesh.creation.box(extents=(1.0, 1.0, 1.0))


def _prim(b, prim, scale, offset, cls: Surface, mat: Material, inst: int, R=None) -> None:
    v = np.asarray(prim.vertices) * scale
    if R is not None:
        v = v @ R.T
    b.add(v + offset, np.asarray(prim.faces), cls, mat, inst)


def _tree(b: _Builder, t: Tree, inst: int) -> None:
    x, y, z = t.xyz_m
    _prim(
        b,
        _CYL,
        (0.18, 0.18, t.trunk_m),
        (x, y, z + t.trunk_m / 2),
        Surface.TREE,
        Material.BARK,
        inst,
    )
    if t.kind == "conifer":
        base = z + 0.5 * t.trunk_m
        r, h = t.crown_radius_m, t.crown_height_m
        _prim(b, _CONE, (r, r, h), (x, y, base), Surface.TREE, Material.FOLIAGE, inst)
    else:
        r, h = t.crown_radius_m, t.crown_height_m
        _prim(
            b,
            _ICO,
            (r, r, h / 2),
            (x, y, z + t.trunk_m + h / 2 - 0.3),
            Surface.TREE,
            Material.FOLIAGE,
            inst,
        )


def _pole(b: _Builder, p: Pole, inst: int) -> None:
    x, y, z = p.xyz_m
    _prim(
        b,
        _CYL,
        (0.09, 0.09, p.height_m),
        (x, y, z + p.height_m / 2),
        Surface.POLE,
        Material.METAL,
        inst,
    )
    c, s = np.cos(p.arm_yaw_rad), np.sin(p.arm_yaw_rad)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    if p.kind == "streetlight":
        arm = np.array([x, y, z + p.height_m]) + R @ [0.9, 0, 0]
        _prim(b, _BOX, (1.8, 0.12, 0.12), arm, Surface.POLE, Material.METAL, inst, R)
        lamp = np.array([x, y, z + p.height_m - 0.1]) + R @ [1.7, 0, 0]
        _prim(b, _BOX, (0.6, 0.3, 0.15), lamp, Surface.POLE, Material.METAL, inst, R)
    else:
        plate = np.array([x, y, z + p.height_m - 0.3])
        _prim(b, _BOX, (0.05, 0.7, 0.7), plate, Surface.POLE, Material.METAL, inst, R)


def build_mesh(layout: Layout, terrain: Terrain) -> SceneMesh:
    """The renderable scene; deterministic for a given layout and terrain."""
    b = _Builder()
    _terrain(b, terrain, layout.size_m / 2)
    for i, bld in enumerate(layout.buildings):
        _building(b, bld, i)
    for i, t in enumerate(layout.trees):
        _tree(b, t, i)
    for i, p in enumerate(layout.poles):
        _pole(b, p, i)
    return b.build(np.array([bld.style for bld in layout.buildings], np.int64))
