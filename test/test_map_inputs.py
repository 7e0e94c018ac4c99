"""Inputs of the map localizer: static transform chains (/tf_static) and the gravity source."""

from __future__ import annotations

import numpy as np
import pytest

from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.geo.quaternion import xyzw_from_rpy
from geoloc_ros.io.convert import transform_msg
from geoloc_ros.io.msgtypes import RosbagsTypes, default_typestore
from geoloc_ros.io.tf import StaticTransforms
from geoloc_ros.neuralmap.inputs import GravityFilter, MapLocalizerConfig
from geoloc_ros.sim.drive import DriveConfig, _tf_static
from geoloc_ros.sim.sensors import GnssConfig, ImuConfig


@pytest.mark.parametrize("platform", ["car", "drone"])
def test_the_simulators_tf_static_chain_gives_the_camera_mount(platform):
    cfg = DriveConfig(platform, 1.0)
    msg = _tf_static(cfg, ImuConfig(), GnssConfig(), RosbagsTypes(default_typestore()))
    tf = StaticTransforms()
    assert tf.add_message(msg) == 4
    T = tf.lookup("base_link", "camera_optical_frame")
    np.testing.assert_allclose(T, cfg.mount.T_base_cam, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("camera_link", "camera_link"), np.eye(4))
    with pytest.raises(InputRejected, match="no static transform chain"):
        tf.lookup("base_link", "lidar")


def test_bad_transforms_are_skipped_not_kept():
    types = RosbagsTypes(default_typestore())
    good = transform_msg(0.0, "base_link", "cam", [1, 0, 0], [0, 0, 0, 1], types)
    nan = transform_msg(0.0, "base_link", "gps", [np.nan, 0, 0], [0, 0, 0, 1], types)
    zero_q = transform_msg(0.0, "base_link", "imu", [0, 0, 0], [0, 0, 0, 0], types)
    msg = types.get("tf2_msgs/msg/TFMessage")(transforms=[good, nan, zero_q])
    tf = StaticTransforms()
    assert tf.add_message(msg) == 1 and len(tf) == 1


def test_gravity_prefers_the_ahrs_orientation_over_a_braking_accelerometer():
    g = GravityFilter(0.5)
    pitch = np.radians(4.0)
    q = xyzw_from_rpy(0.0, pitch, 0.0)
    # braking at 3 m/s^2 while pitched 4 deg: the accelerometer alone would be ~13 deg off
    g.update(0.0, [-3.0, 0.0, 9.81], q)
    roll, p = g.roll_pitch()
    assert g.source == "orientation" and p == pytest.approx(pitch, abs=1e-9)
    assert abs(roll) < 1e-9


def test_gravity_from_the_accelerometer_low_passes_and_restarts_when_time_goes_back():
    g = GravityFilter(0.5)
    with pytest.raises(InputRejected, match="no IMU yet"):
        g.roll_pitch()
    g.update(1.0, [0.0, 0.0, 9.81])
    g.update(1.1, [0.0, 9.81, 0.0])  # a 0.1 s spike moves it a fifth of the way
    roll, _ = g.roll_pitch()
    assert g.source == "accelerometer" and np.degrees(abs(roll)) == pytest.approx(14.0, abs=1.0)
    g.update(0.5, [0.0, 0.0, 9.81])  # time went back: restart from this sample
    assert g.roll_pitch() == pytest.approx((0.0, 0.0), abs=1e-9)
    with pytest.raises(InputRejected):
        g.update(2.0, [np.nan, 0.0, 9.81])


def test_config_rejects_a_bad_imu_mount_and_prior_bounds():
    with pytest.raises(ConfigError, match="q_base_imu"):
        MapLocalizerConfig(q_base_imu=[0.0, 0.0, 0.0, 2.0])
    with pytest.raises(ConfigError, match="min_prior_sigma_m"):
        MapLocalizerConfig(min_prior_sigma_m=50.0)


def test_the_tilt_sigma_follows_the_source_of_roll_and_pitch():
    g = GravityFilter(0.5, accel_tilt_sigma_rad=np.radians(3.0))
    g.update(0.0, [0.0, 0.0, 9.81])
    assert g.tilt_sigma_rad == pytest.approx(np.radians(3.0))
    g.update(0.1, [0.0, 0.0, 9.81], [0.0, 0.0, 0.0, 1.0], np.diag([4e-4, 1e-4, 1e-2]))
    assert g.tilt_sigma_rad == pytest.approx(0.02)  # the larger of roll and pitch


def test_a_fused_state_is_a_prior_with_yaw_only_when_its_3_sigma_fits_the_search():
    from geoloc_ros.neuralmap.inputs import posefix_of, prior_from_state
    from geoloc_ros.types import NavState

    cfg = MapLocalizerConfig(yaw_prior_deg=15.0, max_prior_sigma_m=40.0)
    cov = np.diag([9.0, 4.0, 1.0, 0.01, 0.01, np.radians(4.0) ** 2])
    s = NavState(1.0, np.array([3.0, 4.0, 5.0]), xyzw_from_rpy(0, 0, 0.5), cov_pose_6x6=cov)
    xy, z, sigma, yaw, sigma_z = prior_from_state(s, cfg)
    assert xy.tolist() == [3.0, 4.0] and z == 5.0 and sigma == 3.0 and yaw == pytest.approx(0.5)
    assert sigma_z == 1.0  # the height's sigma: a nadir view searches that far
    cov[5, 5] = np.radians(6.0) ** 2  # 3 sigma = 18 deg: the truth may lie outside +-15
    assert prior_from_state(s, cfg)[3] is None
    cov[5, 5] = np.radians(30.0) ** 2
    cov[0, 0] = 1e4
    _, _, sigma, yaw, _ = prior_from_state(s, cfg)
    assert yaw is None and sigma == 40.0  # clipped to max_prior_sigma_m
    cov[0, 0] = np.nan
    with pytest.raises(InputRejected, match="finite"):
        prior_from_state(s, cfg)

    class Fix:
        xy_m, yaw_rad = np.array([1.0, 2.0]), 0.3
        cov_xyyaw = np.diag([0.25, 0.36, 0.01])
        height_m = None

    p = posefix_of(2.0, Fix, 7.0, "map")
    assert p.dof == 3 and p.p_m.tolist() == [1.0, 2.0, 7.0] and p.frame_id == "map"
    c = p.cov_pose_6x6
    assert c[0, 0] == 0.25 and c[1, 1] == 0.36 and c[5, 5] == 0.01 and c[2, 2] == 1e6


def test_priors_prefer_a_fresh_fused_state_then_a_fresh_gnss_fix_then_refuse():
    from geoloc_ros.geo.wgs84 import LocalTangentPlane
    from geoloc_ros.neuralmap.inputs import Priors
    from geoloc_ros.types import GnssFix, NavState

    cfg = MapLocalizerConfig(max_prior_age_s=2.0, min_prior_sigma_m=2.0)
    ltp = LocalTangentPlane(48.0, 11.0, 500.0)
    p = Priors()
    with pytest.raises(InputRejected, match="no prior yet"):
        p.for_image(10.0, cfg)
    lat, lon, alt = ltp.geodetic_from_enu(np.array([20.0, -5.0, 1.0]))
    fix = GnssFix(10.0, lat, lon, alt, cov_enu_3x3=np.diag([0.25, 0.25, 1.0]))
    p = p.with_gnss(fix, ltp)
    xy, _, sigma, yaw, sigma_z = p.for_image(11.0, cfg)
    assert np.allclose(xy, [20.0, -5.0], atol=1e-6) and sigma == 2.0 and yaw is None  # clipped
    assert sigma_z == 1.0  # the fix's vertical sigma
    assert p.with_gnss(GnssFix(10.5, lat, lon, alt), ltp) == p  # no covariance: kept
    cov = np.diag([9.0, 9.0, 1.0, 0.01, 0.01, np.radians(2.0) ** 2])
    state = NavState(10.0, np.array([3.0, 4.0, 0.0]), xyzw_from_rpy(0, 0, 0.5), cov_pose_6x6=cov)
    q = p.with_state(state, cfg)
    assert p.state is None and q.for_image(11.0, cfg)[0].tolist() == [3.0, 4.0]  # immutable
    later = q.with_gnss(GnssFix(13.0, lat, lon, alt, cov_enu_3x3=np.eye(3)), ltp)
    assert np.allclose(later.for_image(13.5, cfg)[0], [20.0, -5.0], atol=1e-6)  # state stale
    with pytest.raises(InputRejected, match=r"prior is 3\.0 s from the image"):
        later.for_image(16.0, cfg)
    reset = later.with_state(None, cfg)  # the fusion reset: GNSS at once, not the old state
    assert later.for_image(11.5, cfg)[0].tolist() == [3.0, 4.0]
    assert reset.state is None and np.allclose(reset.for_image(11.5, cfg)[0], [20.0, -5.0])
