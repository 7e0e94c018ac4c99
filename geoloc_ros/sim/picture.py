"""The simulator at a glance: orthophoto with a car drive and a drone flight, and their views."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geoloc_ros.sim.appearance import Appearance
from geoloc_ros.sim.drive import T0_S, DriveConfig, camera_pose, make_trajectory
from geoloc_ros.sim.world import World


def make_picture(world: World, out: Path, seed: int = 0, duration_s: float = 90.0) -> Path:
    """Write the PNG; the views use another appearance than the map (the cross-time gap)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import cv2  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import rasterio  # noqa: PLC0415

    with rasterio.open(world.path / "ortho.tif") as f:
        ortho = np.moveaxis(f.read(), 0, -1)
        transform = f.transform
    scale = 1000.0 / max(ortho.shape[:2])
    small = cv2.resize(ortho, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

    rng = np.random.default_rng(seed)
    runs = {}
    for name, cfg in (
        ("car", DriveConfig("car", duration_s, seed)),
        ("drone", DriveConfig("drone", duration_s, seed, drone_camera="oblique")),
    ):
        traj = make_trajectory(world, cfg, rng)
        t = T0_S + np.linspace(0.0, min(duration_s, traj.duration_s), 400)
        t_view = t[len(t) // 2]
        view = world.renderer.render(
            cfg.camera, camera_pose(traj, cfg.mount, [t_view])[0], Appearance.random(rng), rng
        ).rgb
        runs[name] = (traj.state(t).p_m, traj.state(np.array([t_view])).p_m[0], view)

    fig = plt.figure(figsize=(15, 7.6), constrained_layout=True)
    gs = fig.add_gridspec(2, 2, width_ratios=[1.0, 0.72])
    ax = fig.add_subplot(gs[:, 0])
    ax.imshow(small)
    for name, colour in (("car", "#e8202a"), ("drone", "#1f6fff")):
        path, at, _ = runs[name]
        xy = (world.raster_px_from_enu(path, transform) + 0.5) * scale - 0.5
        ax.plot(xy[:, 0], xy[:, 1], "-", color=colour, lw=2, label=f"{name} ({duration_s:g} s)")
        p = (world.raster_px_from_enu(at, transform) + 0.5) * scale - 0.5
        ax.plot(p[0], p[1], "o", ms=10, mfc="none", mec=colour, mew=2.5)
    ax.legend(loc="lower right")
    ax.set_title(
        f"orthophoto, EPSG:{world.utm.epsg}, {world.cfg.gsd_m} m/px "
        f"(world seed {world.cfg.seed}, {2 * world.half_m:.0f} m square)"
    )
    ax.set_axis_off()
    for i, (name, title) in enumerate(
        (("car", "car camera, 1.5 m, 90 deg HFOV"), ("drone", "drone oblique camera"))
    ):
        a = fig.add_subplot(gs[i, 1])
        a.imshow(runs[name][2])
        a.set_title(f"{title} (circled): another day and season", fontsize=10)
        a.set_axis_off()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
