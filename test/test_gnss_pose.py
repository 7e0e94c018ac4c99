"""The GNSS-only baseline estimator: datum, covariance, attitude, rejection."""

from __future__ import annotations

import numpy as np
import pytest

from geoloc_ros.errors import InputRejected
from geoloc_ros.fusion.gnss_pose import (
    DEFAULT_FIX_VARIANCE_M2,
    GnssPoseConfig,
    GnssPoseEstimator,
)
from geoloc_ros.geo.quaternion import xyzw_from_rpy, yaw_from_xyzw
from geoloc_ros.types import GnssFix, GnssStatus, ImuSample


def test_first_fix_is_the_datum_and_north_is_plus_y():
    est = GnssPoseEstimator(GnssPoseConfig())
    s0 = est.on_fix(GnssFix(0.0, 47.0, 8.0, 500.0))
    s1 = est.on_fix(GnssFix(1.0, 47.001, 8.0, 500.0))
    np.testing.assert_allclose(s0.p_m, 0.0, atol=1e-9)
    assert s1.p_m[1] == pytest.approx(111.2, abs=0.2) and abs(s1.p_m[0]) < 1e-6
    assert s1.cov_pose_6x6[0, 0] == DEFAULT_FIX_VARIANCE_M2  # no covariance reported


def test_imu_attitude_and_mounting_are_applied():
    q_base_imu = list(xyzw_from_rpy(0.0, 0.0, np.pi / 2))  # IMU yawed 90 deg on the vehicle
    est = GnssPoseEstimator(GnssPoseConfig(datum=[47.0, 8.0, 500.0], q_base_imu=q_base_imu))
    est.on_imu(ImuSample(0.0, [0, 0, 0], [0, 0, 9.8], q_xyzw=xyzw_from_rpy(0, 0, 1.0)))
    s = est.on_fix(GnssFix(0.1, 47.0, 8.0, 500.0, cov_enu_3x3=np.eye(3)))
    assert yaw_from_xyzw(s.q_xyzw) == pytest.approx(1.0 - np.pi / 2)
    est.reset()
    s = est.on_fix(GnssFix(0.2, 47.0, 8.0, 500.0, cov_enu_3x3=np.eye(3)))
    assert s.cov_pose_6x6[5, 5] >= 1e5  # attitude unknown after a reset


def test_no_fix_gives_nothing_and_absurd_jump_is_rejected():
    est = GnssPoseEstimator(GnssPoseConfig(datum=[47.0, 8.0, 500.0]))
    assert est.on_fix(GnssFix(0.0, float("nan"), 8.0, 500.0, status=GnssStatus.NO_FIX)) is None
    with pytest.raises(InputRejected) as err:
        est.on_fix(GnssFix(1.0, -47.0, 8.0, 500.0))  # the other hemisphere
    assert err.value.reason == "range"


def test_config_rejects_bad_datum_and_mounting():
    with pytest.raises(ValueError, match="datum"):
        GnssPoseConfig(datum=[1.0, 2.0])
    with pytest.raises(ValueError, match="unit quaternion"):
        GnssPoseConfig(q_base_imu=[0.0, 0.0, 0.0, 2.0])
