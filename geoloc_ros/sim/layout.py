"""Procedural town layout in the world ENU frame: roads, junctions, blocks, buildings, trees, poles.

Pure geometry (shapely and NumPy), no rendering. The road graph starts as a jittered
grid; edges are dropped (T junctions), diagonals added (Y and five-way junctions),
many edges are curved, and one four-way junction becomes a roundabout. Blocks are
what the roads leave; each is built up, a park or a parking lot.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon, box
from shapely.ops import substring, unary_union

from geoloc_ros.sim.terrain import Terrain


class Surface(enum.IntEnum):
    """Semantic classes shared by the ground texture, the mesh and semantic.tif."""

    VOID = 0
    ROAD = 1
    MARKING = 2
    SIDEWALK = 3
    GRASS = 4
    PARKING = 5
    BUILDING = 6
    TREE = 7
    POLE = 8
    GRAVEL = 9
    FIELD = 10


@dataclass(frozen=True)
class LayoutConfig:
    size_m: float = 500.0
    block_m: float = 105.0  # mean junction spacing
    jitter_m: float = 14.0
    drop_edge_prob: float = 0.18
    diagonal_prob: float = 0.12
    curved_prob: float = 0.5
    arterial_width_m: float = 12.0
    local_width_m: float = 7.0
    sidewalk_m: float = 2.5
    roundabout_radius_m: float = 16.0
    park_prob: float = 0.15
    parking_prob: float = 0.15


@dataclass(frozen=True)
class Road:
    a: int
    b: int
    centerline_m: np.ndarray  # (M, 2) from node a to node b
    width_m: float
    kind: str  # "arterial" | "local"


@dataclass(frozen=True)
class Building:
    footprint: Polygon
    base_z_m: float
    height_m: float
    style: int  # facade style index, see render.FACADES
    roof: str  # "flat" | "gable"


@dataclass(frozen=True)
class Tree:
    xyz_m: tuple[float, float, float]
    trunk_m: float
    crown_radius_m: float
    crown_height_m: float
    kind: str  # "broadleaf" | "conifer"


@dataclass(frozen=True)
class Pole:
    xyz_m: tuple[float, float, float]
    height_m: float
    kind: str  # "streetlight" | "sign"
    arm_yaw_rad: float


@dataclass
class Layout:
    size_m: float
    nodes_m: dict[int, np.ndarray]
    roads: list[Road]
    roundabouts: dict[int, float]  # node -> radius of the ring's centre line
    ground: dict[Surface, shapely.Geometry]
    buildings: list[Building] = field(default_factory=list)
    trees: list[Tree] = field(default_factory=list)
    poles: list[Pole] = field(default_factory=list)

    def junction_kinds(self) -> dict[str, int]:
        """Count junctions by kind (degree, roundabout) for the manifest."""
        deg: dict[int, int] = {}
        for r in self.roads:
            deg[r.a] = deg.get(r.a, 0) + 1
            deg[r.b] = deg.get(r.b, 0) + 1
        half = self.size_m / 2
        kinds: dict[str, int] = {}
        for n, d in deg.items():
            if np.max(np.abs(self.nodes_m[n])) > half:
                continue
            name = "roundabout" if n in self.roundabouts else f"{d}-way" if d >= 3 else "bend"
            kinds[name] = kinds.get(name, 0) + 1
        return kinds

    def adjacency(self) -> dict[int, list[int]]:
        """node -> indices into `roads` of the edges touching it."""
        adj: dict[int, list[int]] = {}
        for i, r in enumerate(self.roads):
            adj.setdefault(r.a, []).append(i)
            adj.setdefault(r.b, []).append(i)
        return adj


def _bezier(p0, p1, p2, p3, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _road_graph(cfg: LayoutConfig, rng: np.random.Generator):
    n = max(2, round(cfg.size_m / cfg.block_m))
    spacing = cfg.size_m / n
    half = cfg.size_m / 2
    # interior junctions plus one ring outside the world so roads run off the map
    coords = [-half - 80.0] + [-half + (i + 0.5) * spacing for i in range(n)]
    coords += [half + 80.0]
    m = len(coords)
    nodes: dict[int, np.ndarray] = {}
    for i in range(m):
        for j in range(m):
            inner = 0 < i < m - 1 and 0 < j < m - 1
            jit = rng.uniform(-cfg.jitter_m, cfg.jitter_m, 2) if inner else np.zeros(2)
            nodes[i * m + j] = np.array([coords[i], coords[j]]) + jit
    edges: set[tuple[int, int]] = set()
    for i in range(m):
        for j in range(m):
            border_i, border_j = i in (0, m - 1), j in (0, m - 1)
            if i + 1 < m and not border_j:  # along x; skip the outer frame itself
                edges.add((i * m + j, (i + 1) * m + j))
            if j + 1 < m and not border_i:
                edges.add((i * m + j, i * m + j + 1))
    arterial_rows = {int(rng.integers(1, m - 1))}
    arterial_cols = {int(rng.integers(1, m - 1))}

    def is_arterial(a: int, b: int) -> bool:
        (ia, ja), (ib, jb) = divmod(a, m), divmod(b, m)
        return (ja == jb and ja in arterial_rows) or (ia == ib and ia in arterial_cols)

    def degree(e_set, node):
        return sum(node in e for e in e_set)

    for e in sorted(edges):
        (ia, ja), (ib, jb) = divmod(e[0], m), divmod(e[1], m)
        inner = all(0 < k < m - 1 for k in (ia, ja, ib, jb))
        if not inner or is_arterial(*e) or rng.random() >= cfg.drop_edge_prob:
            continue
        trial = edges - {e}
        if degree(trial, e[0]) >= 2 and degree(trial, e[1]) >= 2 and _connected(trial):
            edges = trial
    for i in range(1, m - 2):
        for j in range(1, m - 2):
            if rng.random() < cfg.diagonal_prob:
                a, b = (
                    (i * m + j, (i + 1) * m + j + 1)
                    if rng.random() < 0.5
                    else (
                        (i + 1) * m + j,
                        i * m + j + 1,
                    )
                )
                edges.add((min(a, b), max(a, b)))
    return nodes, sorted(edges), is_arterial, m


def _connected(edges: set[tuple[int, int]]) -> bool:
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    start = next(iter(adj))
    seen, stack = {start}, [start]
    while stack:
        for nb in adj[stack.pop()]:
            if nb not in seen:
                seen.add(nb)
                stack.append(nb)
    return len(seen) == len(adj)


def _make_roads(cfg, rng, nodes, edges, is_arterial) -> list[Road]:
    roads: list[Road] = []
    lines: list[LineString] = []
    for a, b in edges:
        pa, pb = nodes[a], nodes[b]
        d = pb - pa
        length = float(np.hypot(*d))
        normal = np.array([-d[1], d[0]]) / length
        pts = np.stack([pa, pb])
        if rng.random() < cfg.curved_prob and not is_arterial(a, b):
            b1, b2 = rng.normal(0.0, 0.12 * length, 2)
            b1, b2 = np.clip([b1, b2], -0.2 * length, 0.2 * length)
            cand = _bezier(pa, pa + d / 3 + b1 * normal, pb - d / 3 + b2 * normal, pb, 40)
            line = LineString(cand)
            near_a, near_b = Point(pa).buffer(1.0), Point(pb).buffer(1.0)
            if all(
                line.difference(near_a).difference(near_b).distance(other) > 15.0
                or other.touches(line)
                or other.intersection(line).within(near_a.union(near_b))
                for other in lines
            ):
                pts = cand
        if len(pts) == 2:
            pts = np.linspace(pa, pb, max(2, int(length // 5) + 1))
        width = cfg.arterial_width_m if is_arterial(a, b) else cfg.local_width_m
        kind = "arterial" if is_arterial(a, b) else "local"
        roads.append(Road(a, b, pts, width, kind))
        lines.append(LineString(pts))
    return roads


def _markings(cfg: LayoutConfig, roads: list[Road], junction_zones, rng) -> shapely.Geometry:
    parts = []
    for r in roads:
        line = LineString(r.centerline_m)
        if r.kind == "arterial":
            for off in (-0.15, 0.15):  # double solid centre line
                parts.append(line.offset_curve(off).buffer(0.075, cap_style="flat"))
            for off in (-r.width_m / 4, r.width_m / 4):  # dashed lane dividers
                parts.extend(_dashes(line.offset_curve(off), 3.0, 6.0))
        else:
            parts.extend(_dashes(line, 3.0, 5.0))
        for off in (-r.width_m / 2 + 0.3, r.width_m / 2 - 0.3):  # edge lines
            parts.append(line.offset_curve(off).buffer(0.06, cap_style="flat"))
        for end in (0, 1):  # zebra crossings on some approaches
            if rng.random() < 0.35:
                parts.extend(_zebra(r, end, junction_zones))
    return unary_union(parts).difference(junction_zones)


def _dashes(line: LineString, dash_m: float, gap_m: float) -> list[shapely.Geometry]:
    out = []
    for part in getattr(line, "geoms", [line]):  # offset curves can split
        s = gap_m / 2
        while s + dash_m < part.length:
            out.append(substring(part, s, s + dash_m).buffer(0.075, cap_style="flat"))
            s += dash_m + gap_m
    return out


def _zebra(r: Road, end: int, junction_zones) -> list[shapely.Geometry]:
    line = LineString(r.centerline_m if end == 0 else r.centerline_m[::-1])
    s0 = r.width_m / 2 + 4.0
    if line.length < 2 * s0 + 10:
        return []
    p = np.array(line.interpolate(s0).coords[0])
    q = np.array(line.interpolate(s0 + 1.0).coords[0])
    t = (q - p) / np.linalg.norm(q - p)
    nrm = np.array([-t[1], t[0]])
    stripes = []
    for k in np.arange(-r.width_m / 2 + 0.5, r.width_m / 2 - 0.4, 1.0):
        c = p + nrm * (k + 0.25)
        corners = [c - t * 1.5 - nrm * 0.25, c + t * 1.5 - nrm * 0.25]
        corners += [c + t * 1.5 + nrm * 0.25, c - t * 1.5 + nrm * 0.25]
        stripes.append(Polygon(corners))
    return stripes


def generate_layout(cfg: LayoutConfig, terrain: Terrain, rng: np.random.Generator) -> Layout:
    """The whole town; deterministic for a given config, terrain and generator state."""
    nodes, edges, is_arterial, _ = _road_graph(cfg, rng)
    roads = _make_roads(cfg, rng, nodes, edges, is_arterial)
    half = cfg.size_m / 2
    extent = box(-half - 60, -half - 60, half + 60, half + 60)

    deg: dict[int, int] = {}
    for r in roads:
        deg[r.a] = deg.get(r.a, 0) + 1
        deg[r.b] = deg.get(r.b, 0) + 1
    four_way = [
        n for n, d in sorted(deg.items()) if d == 4 and np.max(np.abs(nodes[n])) < half - 60
    ]
    roundabouts: dict[int, float] = {}
    if four_way:
        roundabouts[int(rng.choice(four_way))] = cfg.roundabout_radius_m - 3.5

    road = unary_union([LineString(r.centerline_m).buffer(r.width_m / 2) for r in roads])
    islands = []
    for n in roundabouts:
        road = road.union(Point(nodes[n]).buffer(cfg.roundabout_radius_m))
        islands.append(Point(nodes[n]).buffer(cfg.roundabout_radius_m - 7.0))
    road = road.buffer(4.0).buffer(-4.0)  # curb radius at junction corners
    island = unary_union(islands) if islands else Polygon()
    road = road.difference(island)
    sidewalk = (
        road.buffer(cfg.sidewalk_m).buffer(-2.0).buffer(2.0).difference(road).difference(island)
    )
    junction_zones = unary_union(
        [
            Point(nodes[n]).buffer(
                max(r.width_m for r in roads if n in (r.a, r.b)) * 0.75
                + (cfg.roundabout_radius_m if n in roundabouts else 0.0)
            )
            for n, d in deg.items()
            if d >= 3
        ]
    )
    marking = _markings(cfg, roads, junction_zones, rng).intersection(road)

    ground: dict[Surface, shapely.Geometry] = {
        Surface.ROAD: road.intersection(extent),
        Surface.SIDEWALK: sidewalk.intersection(extent),
        Surface.MARKING: marking.intersection(extent),
        Surface.GRASS: island,
    }
    layout = Layout(cfg.size_m, nodes, roads, roundabouts, ground)
    blocks = extent.difference(road.union(sidewalk).buffer(0.01))
    _fill_blocks(cfg, layout, blocks, terrain, rng)
    _street_furniture(cfg, layout, road, terrain, rng)
    return layout


def _polys(geom) -> list[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]


def _footprint(rng: np.random.Generator, w: float, d: float) -> tuple[Polygon, str]:
    """A footprint in local coordinates (x along the street, y away from it)."""
    shape = rng.choice(["rect", "rect", "L", "U", "T", "court"])
    base = box(-w / 2, 0, w / 2, d)
    if shape == "L":
        base = base.difference(box(0, d * 0.5, w / 2, d))
    elif shape == "U" and w > 14:
        base = base.difference(box(-w / 6, d * 0.45, w / 6, d))
    elif shape == "T":
        base = box(-w / 2, 0, w / 2, d * 0.45).union(box(-w / 5, 0, w / 5, d))
    elif shape == "court" and w > 18 and d > 16:
        base = base.difference(box(-w / 2 + 5, 5, w / 2 - 5, d - 5))
    else:
        shape = "rect"
    return base, str(shape)


def _fill_blocks(cfg, layout: Layout, blocks, terrain: Terrain, rng) -> None:
    half = cfg.size_m / 2
    grass, parking, gravel = [], [], []
    for blk in sorted(_polys(blocks), key=lambda p: (p.centroid.x, p.centroid.y)):
        if blk.area < 60:
            grass.append(blk)
            continue
        use = rng.random()
        if use < cfg.park_prob and blk.area > 800:
            grass.append(blk)
            path = LineString(
                [blk.centroid, blk.exterior.interpolate(rng.uniform(0, 1), normalized=True)]
            )
            gravel.append(path.buffer(1.2).intersection(blk))
            _scatter_trees(layout, blk.buffer(-2.0), terrain, rng, density=1 / 180)
        elif use < cfg.park_prob + cfg.parking_prob and blk.area > 800:
            lot = blk.buffer(-1.0)
            parking.append(lot)
            grass.append(blk.difference(lot))
            layout.ground.setdefault(Surface.MARKING, Polygon())
            layout.ground[Surface.MARKING] = layout.ground[Surface.MARKING].union(
                _parking_bays(lot, rng)
            )
        else:
            grass.append(blk)
            _buildings_along(cfg, layout, blk, terrain, rng)
            if blk.area > 3000:
                _scatter_trees(layout, blk.buffer(-3.0), terrain, rng, density=1 / 900)
    ground = layout.ground
    ground[Surface.GRASS] = unary_union([ground[Surface.GRASS], *grass])
    ground[Surface.PARKING] = unary_union(parking) if parking else Polygon()
    ground[Surface.GRAVEL] = unary_union(gravel) if gravel else Polygon()
    inside = box(-half, -half, half, half)
    for b in list(layout.buildings):
        if not b.footprint.intersects(inside):
            layout.buildings.remove(b)


def _parking_bays(lot: Polygon, rng: np.random.Generator) -> shapely.Geometry:
    """White bay lines every 2.6 m across the lot's long axis."""
    rect = lot.minimum_rotated_rectangle
    xy = np.asarray(rect.exterior.coords)[:4]
    e0, e1 = xy[1] - xy[0], xy[2] - xy[1]
    along, across = (e0, e1) if np.linalg.norm(e0) > np.linalg.norm(e1) else (e1, e0)
    la, lc = np.linalg.norm(along), np.linalg.norm(across)
    ua, uc = along / la, across / lc
    origin = xy[0] if np.linalg.norm(e0) > np.linalg.norm(e1) else xy[1]
    lines = []
    for row in np.arange(2.0, lc - 5.0, 13.0):  # rows of 5 m bays facing a 3 m aisle
        for s in np.arange(1.0, la - 1.0, 2.6):
            p = origin + ua * s + uc * row
            lines.append(LineString([p, p + uc * 5.0]).buffer(0.06))
    return unary_union(lines).intersection(lot.buffer(-0.5)) if lines else Polygon()


def _buildings_along(cfg, layout: Layout, blk: Polygon, terrain: Terrain, rng) -> None:
    ring = blk.buffer(-rng.uniform(1.0, 4.0))
    for inset in _polys(ring):
        if inset.area < 150:
            continue
        occupied: list[Polygon] = []
        boundary = inset.exterior
        s = rng.uniform(0, 8)
        while s < boundary.length:
            w, d = rng.uniform(10, 28), rng.uniform(9, 22)
            p = np.array(boundary.interpolate(s).coords[0])
            q = np.array(boundary.interpolate(min(s + 1.0, boundary.length - 1e-6)).coords[0])
            t = q - p
            if np.linalg.norm(t) < 1e-6:
                break
            t /= np.linalg.norm(t)
            inward = np.array([-t[1], t[0]])  # exterior rings are CCW after buffer: left is in
            if not inset.contains(Point(p + inward * 2.0)):
                inward = -inward
            local, _shape = _footprint(rng, w, d)
            R = np.array([[t[0], inward[0]], [t[1], inward[1]]])
            shift = p + t * w / 2 + inward * 0.5
            coords = np.asarray(local.exterior.coords) @ R.T + shift
            holes = [np.asarray(h.coords) @ R.T + shift for h in local.interiors]
            fp = shapely.make_valid(Polygon(coords, holes))
            if (
                isinstance(fp, Polygon)
                and inset.contains(fp)
                and all(fp.distance(o) > 1.5 for o in occupied)
            ):
                occupied.append(fp)
                _add_building(layout, fp, _shape, terrain, rng)
            s += w + rng.uniform(2.0, 10.0)


def _add_building(layout: Layout, fp: Polygon, shape: str, terrain: Terrain, rng) -> None:
    xy = np.asarray(fp.exterior.coords)
    base = float(terrain.height(xy[:, 0], xy[:, 1]).min()) - 0.3
    kind = rng.random()
    if kind < 0.45:
        height, style = rng.uniform(6, 13), int(rng.integers(0, 2))  # houses
    elif kind < 0.85:
        height, style = rng.uniform(12, 26), int(rng.integers(2, 4))  # apartments
    else:
        height, style = rng.uniform(26, 55), int(rng.integers(4, 6))  # offices
    roof = "gable" if shape == "rect" and height < 14 and rng.random() < 0.6 else "flat"
    layout.buildings.append(Building(fp, base, float(height), style, roof))


def _scatter_trees(layout: Layout, area, terrain: Terrain, rng, density: float) -> None:
    for poly in _polys(area):
        n = rng.poisson(poly.area * density)
        minx, miny, maxx, maxy = poly.bounds
        for _ in range(n):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if poly.contains(Point(x, y)):
                _add_tree(layout, x, y, terrain, rng)


def _add_tree(layout: Layout, x: float, y: float, terrain: Terrain, rng) -> None:
    conifer = rng.random() < 0.25
    layout.trees.append(
        Tree(
            (float(x), float(y), float(terrain.height(x, y))),
            trunk_m=float(rng.uniform(1.8, 3.0)),
            crown_radius_m=float(rng.uniform(1.2, 2.2) if conifer else rng.uniform(2.0, 4.0)),
            crown_height_m=float(rng.uniform(6, 11) if conifer else rng.uniform(3.5, 7.0)),
            kind="conifer" if conifer else "broadleaf",
        )
    )


def _street_furniture(cfg, layout: Layout, road, terrain: Terrain, rng) -> None:
    """Street lights along the kerbs, street trees in the sidewalk, sign poles at junctions."""
    half = cfg.size_m / 2
    buildings = unary_union([b.footprint.buffer(1.0) for b in layout.buildings])
    inside = box(-half, -half, half, half)
    for r in layout.roads:
        line = LineString(r.centerline_m)
        for side in (-1, 1):
            kerb = line.offset_curve(side * (r.width_m / 2 + 0.6))
            if kerb.is_empty or kerb.length < 20:
                continue
            light_step = rng.uniform(25, 35)
            for s in np.arange(
                light_step / 2 + (side > 0) * light_step / 2, kerb.length, light_step
            ):
                p = kerb.interpolate(s)
                if road.distance(p) < 0.3 or not inside.contains(p):
                    continue
                tangent = np.subtract(kerb.interpolate(s + 0.5).coords[0], p.coords[0])
                arm = np.arctan2(tangent[1], tangent[0]) - side * np.pi / 2 * np.sign(1)
                layout.poles.append(
                    Pole(
                        (p.x, p.y, float(terrain.height(p.x, p.y))), 8.0, "streetlight", float(arm)
                    )
                )
            if rng.random() < 0.5:  # an avenue of street trees on this side
                trees_line = line.offset_curve(side * (r.width_m / 2 + cfg.sidewalk_m - 0.8))
                for s in np.arange(rng.uniform(4, 10), trees_line.length, rng.uniform(9, 14)):
                    p = trees_line.interpolate(s)
                    if road.distance(p) > 0.8 and not buildings.contains(p) and inside.contains(p):
                        _add_tree(layout, p.x, p.y, terrain, rng)
    adj = layout.adjacency()
    for n, idx in adj.items():
        if len(idx) < 3 or not inside.contains(Point(layout.nodes_m[n])):
            continue
        w = max(layout.roads[i].width_m for i in idx)
        for ang in rng.uniform(0, 2 * np.pi, 2):
            p = layout.nodes_m[n] + (w / 2 + cfg.sidewalk_m + 1.5) * np.array(
                [np.cos(ang), np.sin(ang)]
            )
            if road.distance(Point(p)) > 0.5:
                z = float(terrain.height(p[0], p[1]))
                layout.poles.append(Pole((float(p[0]), float(p[1]), z), 3.0, "sign", float(ang)))
