"""Inputs shared by the trajectory and sensor tests: a lane-centre route and gentle hills."""

from __future__ import annotations

import numpy as np

from geoloc_ros.sim.terrain import Terrain

# straight, 90-degree left turn, straight; unevenly spaced points (lane centre)
ROUTE = np.array([(0, 0), (37, 0), (41, 0), (300, 0), (300, 120.5), (300, 250)], float)

# z = 2 sin(x/80) + 1.5 cos(y/60), with exact gradients (the simulator's own Terrain)
HILLS = Terrain(
    amplitudes_m=(2.0, 1.5),
    wavevectors_radpm=((1.0 / 80.0, 0.0), (0.0, 1.0 / 60.0)),
    phases_rad=(0.0, np.pi / 2),
)
