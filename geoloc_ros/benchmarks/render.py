"""Renderer throughput: car and drone frames per second, measured in one run.

Renders frames along a real simulated drive and flight (not a fixed pose), after a
warm-up, and reports the median and mean per-frame time of each camera.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from geoloc_ros.sim.appearance import Appearance
from geoloc_ros.sim.drive import T0_S, DriveConfig, camera_pose, make_trajectory
from geoloc_ros.sim.world import World


def _time_frames(world: World, cfg: DriveConfig, frames: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    traj = make_trajectory(world, cfg, rng)
    t = T0_S + np.linspace(0.0, min(cfg.duration_s, traj.duration_s), frames + 3)
    poses = camera_pose(traj, cfg.mount, t)
    look = Appearance.random(rng)
    for T in poses[:3]:  # warm-up: caches, BVH pages
        world.renderer.render(cfg.camera, T, look, rng)
    dts = []
    for T in poses[3:]:
        t0 = time.perf_counter()
        world.renderer.render(cfg.camera, T, look, rng)
        dts.append(time.perf_counter() - t0)
    dts = np.asarray(dts)
    return {
        "resolution": [cfg.camera.width, cfg.camera.height],
        "frames": frames,
        "fps_median": float(1.0 / np.median(dts)),
        "fps_mean": float(len(dts) / dts.sum()),
        "ms_p95": float(np.percentile(dts, 95) * 1e3),
    }


def run(world_dir: Path, out: Path, frames: int = 100, seed: int = 0) -> dict:
    """Time both cameras in the same process, one after the other; write JSON to `out`."""
    world = World.load(world_dir)
    t0 = time.perf_counter()
    _ = world.renderer  # build mesh, texture and BVH outside the timed loop
    setup_s = time.perf_counter() - t0
    result = {
        "benchmark": "render",
        "world": {
            "path": str(world_dir),
            "seed": world.cfg.seed,
            "triangles": world.mesh.n_triangles,
        },
        "setup_s": setup_s,
        "car": _time_frames(world, DriveConfig("car", 120.0, seed), frames, seed),
        "drone_nadir": _time_frames(world, DriveConfig("drone", 120.0, seed), frames, seed),
        "drone_oblique": _time_frames(
            world, DriveConfig("drone", 120.0, seed, drone_camera="oblique"), frames, seed
        ),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result
