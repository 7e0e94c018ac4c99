"""The figure-eight drive written as a rosbag2 mcap with DESIGN.md's topic names.

Tests use it where a bag must exist in seconds and its truth is known in closed form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.io.bag import BagWriter
from geoloc_ros.io.convert import msg_from_gnss, msg_from_imu, odometry_from_navstate
from geoloc_ros.io.msgtypes import RosbagsTypes
from geoloc_ros.sim import quickdrive
from geoloc_ros.types import NavState

T0_S = 1_700_000_000.0  # bag start, so stamps look like real ROS time


def write_quickdrive_bag(path: Path, duration_s: float, seed: int, progress: bool) -> None:
    """Simulate the figure-eight drive and write it with DESIGN.md topic names."""
    from tqdm import tqdm  # noqa: PLC0415

    types = RosbagsTypes()
    traj = quickdrive.FigureEight()
    ltp = LocalTangentPlane(*quickdrive.DEFAULT_DATUM)
    rng = np.random.default_rng(seed)
    t_imu = np.arange(0.0, duration_s, 0.01)
    t_fix = np.arange(0.0, duration_s, 0.2)
    t_gt = np.arange(0.0, duration_s, 0.05)
    events = [(s.t_s, "/imu", msg_from_imu(s, types)) for s in quickdrive.imu(traj, t_imu, T0_S)]
    events += [
        (f.t_s, "/fix", msg_from_gnss(f, types))
        for f in quickdrive.gnss(traj, t_fix, ltp, rng, t0_s=T0_S)
    ]
    for s in quickdrive.truth(traj, t_gt):
        # Ground truth travels in the earth (ECEF) frame, as REP-105 names it.
        R_ecef_base = ltp.R_enu_ecef.T @ matrix_from_xyzw(s.q_xyzw)
        gt = NavState(
            t_s=T0_S + s.t_s,
            p_m=ltp.ecef_from_enu(s.p_m),
            q_xyzw=xyzw_from_matrix(R_ecef_base),
            v_mps=ltp.R_enu_ecef.T @ s.v_mps,
            w_radps=s.w_radps,
            frame_id="earth",
        )
        events.append((gt.t_s, "/ground_truth/odom", odometry_from_navstate(gt, types)))
    events.sort(key=lambda e: e[0])
    with BagWriter(path, types.typestore, overwrite=True) as bag:
        bag.add_topic("/imu", "sensor_msgs/msg/Imu")
        bag.add_topic("/fix", "sensor_msgs/msg/NavSatFix")
        bag.add_topic("/ground_truth/odom", "nav_msgs/msg/Odometry")
        for t_s, topic, msg in tqdm(events, desc="write bag", disable=not progress, leave=False):
            bag.write(topic, t_s, msg)
