"""OdomFrame: map -> odom absorbs the fused corrections, odom -> base_link never jumps."""

from __future__ import annotations

import numpy as np

from geoloc_ros.fusion.pipeline import OdomFrame
from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_rpy
from geoloc_ros.types import NavState


def _compose(T_a_b, T_b_c):
    (p_ab, q_ab), (p_bc, q_bc) = T_a_b, T_b_c
    R_ab = matrix_from_xyzw(q_ab)
    return p_ab + R_ab @ p_bc, R_ab @ matrix_from_xyzw(q_bc)


def test_map_odom_times_odom_base_is_the_fused_pose_and_odom_is_continuous():
    odom = OdomFrame()
    dt, yaw_rate, speed = 0.02, 0.2, 5.0
    jumps = []
    for i in range(200):
        t = i * dt
        yaw = yaw_rate * t
        p = np.array([np.cos(yaw), np.sin(yaw), 0.0]) * 10.0
        if i >= 100:  # a correction of the fused state: 1.5 m and 3 deg at once
            p = p + np.array([1.5, 0.0, 0.0])
            yaw += np.radians(3.0)
        v = speed * np.array([np.cos(yaw), np.sin(yaw), 0.0])
        q = xyzw_from_rpy(0.0, 0.0, yaw)
        before = odom.T_odom_base[0].copy()
        odom.update(NavState(t, p, q, v_mps=v, w_radps=[0.0, 0.0, yaw_rate]))
        jumps.append(np.linalg.norm(odom.T_odom_base[0] - before))
        p_mb, R_mb = _compose(odom.T_map_odom, odom.T_odom_base)
        np.testing.assert_allclose(p_mb, p, atol=1e-9)
        np.testing.assert_allclose(R_mb, matrix_from_xyzw(q), atol=1e-9)
        assert odom.T_map_odom[1][3] >= 0 and odom.T_odom_base[1][3] >= 0  # w >= 0
    # odom -> base_link moves by speed * dt each step, also across the correction
    np.testing.assert_allclose(jumps[1:], speed * dt, rtol=1e-6)
