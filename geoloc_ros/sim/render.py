"""Ray-cast renderer of the scene mesh (Embree) with procedural shading.

Every pixel is a ray through its centre, intersected exactly with the triangles, so
occlusion and geometry are right for any pose and intrinsics. Shading: ground from
the texture, facades from procedural windows in wall coordinates, Lambertian sun
with cast shadows, sky light, haze, white balance, exposure and sensor noise.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from embreex import rtcore_scene as rtcs
from embreex.mesh_construction import TriangleMesh

from geoloc_ros.sim.appearance import Appearance
from geoloc_ros.sim.camera import PinholeCamera
from geoloc_ros.sim.groundtex import GroundTexture
from geoloc_ros.sim.mesh import Material, SceneMesh
from geoloc_ros.sim.noise import hash01

# facade styles: wall reflectance, glass reflectance, floor height, window pitch, size
FACADES = (
    ((0.62, 0.55, 0.45), (0.10, 0.12, 0.15), 2.9, 3.2, 1.1, 1.3),  # houses: plaster
    ((0.55, 0.30, 0.22), (0.12, 0.12, 0.14), 2.9, 2.8, 1.0, 1.4),  # houses: brick
    ((0.70, 0.68, 0.62), (0.10, 0.13, 0.16), 3.0, 3.0, 1.4, 1.6),  # apartments: light
    ((0.45, 0.42, 0.40), (0.08, 0.10, 0.12), 3.0, 2.6, 1.2, 1.7),  # apartments: concrete
    ((0.35, 0.40, 0.45), (0.10, 0.16, 0.22), 3.6, 1.8, 1.5, 2.6),  # offices: glass bands
    ((0.75, 0.75, 0.78), (0.09, 0.12, 0.18), 3.6, 2.2, 1.6, 2.2),  # offices: white frame
)
# the facade rows as one array: wall RGB, glass RGB, floor height, pitch, window w, h
_FACADE_TABLE = np.array([[*w, *g, *rest] for w, g, *rest in FACADES], np.float32)
ROOFS = ((0.30, 0.30, 0.31), (0.45, 0.44, 0.42), (0.42, 0.20, 0.14), (0.25, 0.27, 0.30))
TRUNK = (0.30, 0.22, 0.15)
POLE = (0.40, 0.40, 0.42)
NO_HIT = -1


@dataclass(frozen=True)
class Hits:
    t_m: np.ndarray  # (N,) distance along the unit ray, inf where nothing was hit
    prim: np.ndarray  # (N,) triangle index or -1
    u: np.ndarray
    v: np.ndarray
    normal: np.ndarray  # (N, 3) unit geometric normal facing the ray origin


@dataclass(frozen=True)
class RenderOutput:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_m: np.ndarray  # (H, W) float32 z-depth in the optical frame, inf for sky
    semantic: np.ndarray  # (H, W) uint8 Surface (VOID for sky)


class Renderer:
    """Renders camera views and orthophoto samples of one world's mesh and ground texture."""

    def __init__(self, mesh: SceneMesh, ground: GroundTexture) -> None:
        self.mesh = mesh
        self.ground = ground
        self._scene = rtcs.EmbreeScene()
        tri = mesh.vertices_m[mesh.faces].astype(np.float32)
        TriangleMesh(self._scene, tri)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="embree")

    def _run(self, o: np.ndarray, d: np.ndarray, output: int):
        """Embree releases the GIL: split large batches over two threads."""
        n = len(o)
        if n < 20000:
            return self._scene.run(o, d, output=output)
        h = n // 2
        parts = list(
            self._pool.map(
                lambda s: self._scene.run(o[s], d[s], output=output), [slice(0, h), slice(h, n)]
            )
        )
        if not output:
            return np.concatenate(parts)
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def cast(self, origins_m: np.ndarray, dirs: np.ndarray) -> Hits:
        """First hit of each ray (unit directions)."""
        o = np.ascontiguousarray(origins_m, dtype=np.float32)
        d = np.ascontiguousarray(dirs, dtype=np.float32)
        res = self._run(o, d, output=1)
        prim = res["primID"].astype(np.int64)
        prim[res["geomID"] < 0] = NO_HIT
        t = res["tfar"].astype(np.float32)
        t[prim < 0] = np.inf
        n = np.asarray(res["Ng"], dtype=np.float32)
        n /= np.maximum(np.sqrt((n * n).sum(axis=1, keepdims=True)), 1e-12)
        flip = (n * d).sum(axis=1) > 0
        n[flip] *= -1.0
        return Hits(t, prim, res["u"], res["v"], n)

    def occluded(self, origins_m: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o = np.ascontiguousarray(origins_m, dtype=np.float32)
        d = np.ascontiguousarray(dirs, dtype=np.float32)
        return self._run(o, d, output=0) >= 0

    # -- shading -------------------------------------------------------------------------
    def _reflectance(self, p: np.ndarray, hits: Hits, look: Appearance) -> tuple:
        """Reflectance (N, 3) and semantic class (N,) of hit points."""
        n = len(p)
        rgb = np.zeros((n, 3), np.float32)
        cls = np.zeros(n, np.uint8)
        hit = hits.prim >= 0
        prim = np.where(hit, hits.prim, 0)
        mat = np.where(hit, self.mesh.tri_material[prim], 255)
        cls[hit] = self.mesh.tri_class[prim[hit]]
        inst = self.mesh.tri_instance[prim]

        ground = mat == Material.TERRAIN
        if ground.any():
            g_rgb, g_cls = self.ground.lookup(p[ground, 0], p[ground, 1])
            rgb[ground] = look.ground_reflectance(g_rgb, g_cls, p[ground])
            cls[ground] = g_cls
        bld = mat == Material.BUILDING
        if bld.any():
            rgb[bld] = self._facade(hits, bld, prim, inst)
        leaf = mat == Material.FOLIAGE
        if leaf.any():
            rgb[leaf] = look.foliage(p[leaf], inst[leaf])
        rgb[mat == Material.BARK] = TRUNK
        rgb[mat == Material.METAL] = POLE
        return rgb, cls

    def _facade(self, hits: Hits, sel: np.ndarray, prim: np.ndarray, inst: np.ndarray):
        f = self.mesh.faces[prim[sel]]
        w0 = (1.0 - hits.u[sel] - hits.v[sel])[:, None]
        uv = self.mesh.uv_m
        uvp = w0 * uv[f[:, 0]] + hits.u[sel, None] * uv[f[:, 1]] + hits.v[sel, None] * uv[f[:, 2]]
        i = inst[sel]
        st = _FACADE_TABLE[self.mesh.building_style[i]]
        wall, glass = st[:, 0:3], st[:, 3:6]
        floor_h, pitch, win_w, win_h = st[:, 6], st[:, 7], st[:, 8], st[:, 9]
        s, h = uvp[:, 0], uvp[:, 1]
        fu = np.mod(s, pitch) - pitch / 2
        fv = np.mod(h, floor_h)
        window = (np.abs(fu) < win_w / 2) & (fv > 0.9) & (fv < 0.9 + win_h) & (h > 0.5)
        tint = 0.8 + 0.4 * np.stack([hash01(i, 1), hash01(i, 2), hash01(i, 3)], -1).astype(
            np.float32
        )
        tint = 0.5 * tint + 0.5 * tint.mean(axis=1, keepdims=True)
        roof = hits.normal[sel, 2] > 0.3
        roof_rgb = np.array(ROOFS, np.float32)[(i * 7 + 3) % len(ROOFS)]
        out = np.where(window[:, None], glass, wall * tint)
        return np.where(roof[:, None], roof_rgb * (0.85 + 0.3 * tint), out)

    def shade(self, origins_m, dirs, hits: Hits, look: Appearance) -> tuple:
        """Linear radiance (N, 3) and class (N,) for cast rays."""
        hit = hits.prim >= 0
        t = np.where(hit, hits.t_m, 0.0).astype(np.float32)
        p = origins_m.astype(np.float64) + dirs * t[:, None]
        refl, cls = self._reflectance(p, hits, look)
        sun = look.sun_dir_enu
        lit = hit & (hits.normal @ sun > 0)
        shadow = np.zeros(len(p), bool)
        if lit.any() and look.sun_elevation_deg > 0:
            o = p[lit] + hits.normal[lit] * 0.05
            shadow[lit] = self.occluded(o, np.broadcast_to(sun, o.shape))
        cos_sun = np.clip(hits.normal @ sun, 0.0, None) * (~shadow)
        sky_fill = 0.6 + 0.4 * hits.normal[:, 2]
        light = look.sun_rgb * cos_sun[:, None] + look.ambient_rgb * sky_fill[:, None]
        rad = refl * light
        if not hit.all():
            rad[~hit] = look.sky_radiance(dirs[~hit])
        if look.haze_visibility_m < np.inf:
            a = np.exp(-np.where(hit, hits.t_m, np.inf) * 3.0 / look.haze_visibility_m)
            rad = rad * a[:, None] + look.haze_rgb * (1.0 - a[:, None])
        return rad.astype(np.float32), cls

    # -- public -------------------------------------------------------------------------
    def render(
        self,
        camera: PinholeCamera,
        T_world_cam: np.ndarray,
        look: Appearance,
        rng: np.random.Generator | None = None,
    ) -> RenderOutput:
        """One camera image; `T_world_cam` is the optical frame's pose in world ENU."""
        R, t = T_world_cam[:3, :3], T_world_cam[:3, 3]
        rays = camera.rays_cam
        dirs = rays @ R.T.astype(np.float32)
        origins = np.broadcast_to(t, dirs.shape)
        hits = self.cast(origins, dirs)
        rad, cls = self.shade(origins, dirs, hits, look)
        img = look.to_display(rad, rng).reshape(camera.height, camera.width, 3)
        depth = (hits.t_m * rays[:, 2]).reshape(camera.height, camera.width).astype(np.float32)
        return RenderOutput(img, depth, cls.reshape(camera.height, camera.width))

    def render_ortho(self, x_m: np.ndarray, y_m: np.ndarray, look: Appearance, top_m: float):
        """Looking straight down at (x, y): display RGB (N, 3) uint8, surface z, class."""
        o = np.stack([x_m, y_m, np.full_like(x_m, top_m)], -1)
        d = np.broadcast_to(np.array([0.0, 0.0, -1.0]), o.shape)
        hits = self.cast(o, d)
        rad, cls = self.shade(o, d, hits, look)
        z = np.where(hits.prim >= 0, top_m - hits.t_m, np.nan)
        return look.to_display(rad, None), z, cls
