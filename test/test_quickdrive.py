"""The analytic drive's IMU is consistent with its trajectory (strapdown integration)."""

from __future__ import annotations

import numpy as np

from geoloc_ros.geo.quaternion import matrix_from_xyzw
from geoloc_ros.sim import quickdrive


def test_integrating_noise_free_imu_reproduces_the_trajectory():
    traj = quickdrive.FigureEight()
    dt = 0.005
    t = np.arange(0.0, 60.0 + dt, dt)
    imu = quickdrive.imu(traj, t)
    s = traj.state(t)
    p, v = s["p"][0].copy(), s["v"][0].copy()
    yaw = s["yaw"][0]
    g = np.array([0.0, 0.0, -quickdrive.GRAVITY_MPS2])
    for k in range(len(t) - 1):  # trapezoidal strapdown on the IMU readings only
        c0, s0 = np.cos(yaw), np.sin(yaw)
        R0 = np.array([[c0, -s0, 0], [s0, c0, 0], [0, 0, 1]])
        yaw1 = yaw + 0.5 * (imu[k].gyro_radps[2] + imu[k + 1].gyro_radps[2]) * dt
        c1, s1 = np.cos(yaw1), np.sin(yaw1)
        R1 = np.array([[c1, -s1, 0], [s1, c1, 0], [0, 0, 1]])
        a0 = R0 @ imu[k].accel_mps2 + g
        a1 = R1 @ imu[k + 1].accel_mps2 + g
        p = p + v * dt + (a0 / 3 + a1 / 6) * dt**2
        v = v + 0.5 * (a0 + a1) * dt
        yaw = yaw1
    assert np.linalg.norm(p - s["p"][-1]) < 0.1  # the simulator issue's 60 s criterion
    R_true = matrix_from_xyzw(imu[-1].q_xyzw)
    assert abs(np.arctan2(R_true[1, 0], R_true[0, 0]) - np.arctan2(np.sin(yaw), np.cos(yaw))) < 1e-3
