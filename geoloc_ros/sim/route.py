"""Routes through a layout's road graph: lane-centre polylines for the simulated car.

A seeded random walk that never U-turns and stays inside the world. Right-hand
traffic: the route follows the right lane, goes counter-clockwise around
roundabouts, and some junction approaches carry a stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString

from geoloc_ros.errors import ConfigError
from geoloc_ros.sim.layout import Layout


@dataclass(frozen=True)
class Route:
    xy_m: np.ndarray  # (M, 2) lane-centre polyline, sharp at junctions (the car smooths it)
    stops_s_m: tuple[float, ...]  # arc lengths where the car stops
    length_m: float


def _lane_offset_m(width_m: float) -> float:
    return 1.75 if width_m < 9.0 else 1.6  # arterials: the inner of two lanes


def plan_route(layout: Layout, rng: np.random.Generator, min_length_m: float) -> Route:
    """A random drive of at least `min_length_m` along the roads inside the world."""
    half = layout.size_m / 2
    inside = {n for n, p in layout.nodes_m.items() if np.max(np.abs(p)) < half - 5.0}
    adj = layout.adjacency()
    usable = [i for i, r in enumerate(layout.roads) if r.a in inside and r.b in inside]
    if not usable:
        raise ConfigError("the world has no road inside it to drive on")
    edge = usable[int(rng.integers(len(usable)))]
    node = layout.roads[edge].b if rng.random() < 0.5 else layout.roads[edge].a
    prev_node = layout.roads[edge].a if node == layout.roads[edge].b else layout.roads[edge].b
    pieces: list[np.ndarray] = []
    stops: list[float] = []
    length = 0.0
    while length < min_length_m:
        road = layout.roads[edge]
        line = road.centerline_m if road.a == prev_node else road.centerline_m[::-1]
        lane = LineString(line).offset_curve(-_lane_offset_m(road.width_m))
        lane = max(getattr(lane, "geoms", [lane]), key=lambda g: g.length)
        trim_a = _junction_trim(layout, adj, prev_node)
        trim_b = _junction_trim(layout, adj, node)
        if lane.length <= trim_a + trim_b + 2.0:
            seg = np.asarray(lane.coords)
        else:
            from shapely.ops import substring  # noqa: PLC0415

            seg = np.asarray(substring(lane, trim_a, lane.length - trim_b).coords)
        if prev_node in layout.roundabouts and pieces:
            seg = np.concatenate([_ring_arc(layout, prev_node, pieces[-1][-1], seg[0]), seg])
        pieces.append(seg)
        length += float(np.sum(np.linalg.norm(np.diff(seg, axis=0), axis=1)))
        if len(adj[node]) >= 3 and node not in layout.roundabouts and rng.random() < 0.35:
            stops.append(length)
        nxt = [i for i in adj[node] if i != edge and _other(layout, i, node) in inside]
        if not nxt:
            nxt = [edge]  # dead end: turn around
        edge = nxt[int(rng.integers(len(nxt)))]
        prev_node, node = node, _other(layout, edge, node)
    xy = np.concatenate(pieces)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 0.05])
    xy = xy[keep]
    total = float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))
    return Route(xy, tuple(s for s in stops if s < total - 20.0), total)


def _other(layout: Layout, edge: int, node: int) -> int:
    r = layout.roads[edge]
    return r.b if r.a == node else r.a


def _junction_trim(layout: Layout, adj, node: int) -> float:
    if node in layout.roundabouts:
        return layout.roundabouts[node] + 3.0
    if len(adj[node]) < 3:
        return 0.0
    return 0.5 * max(layout.roads[i].width_m for i in adj[node]) + 2.0


def _ring_arc(layout: Layout, node: int, p_in: np.ndarray, p_out: np.ndarray) -> np.ndarray:
    """Counter-clockwise arc on the ring from the entry to the exit direction."""
    c = layout.nodes_m[node]
    r = layout.roundabouts[node]
    a0 = np.arctan2(*(p_in - c)[::-1])
    a1 = np.arctan2(*(p_out - c)[::-1])
    a0 += 0.35  # join the ring a little downstream of the entry
    a1 -= 0.35
    while a1 <= a0:
        a1 += 2 * np.pi
    n = max(3, int((a1 - a0) * r / 2.0))
    ang = np.linspace(a0, a1, n)
    return c + r * np.stack([np.cos(ang), np.sin(ang)], -1)
