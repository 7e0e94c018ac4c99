"""Message <-> core-type conversion, both ways, on rosbags messages (rclpy in test_node_dds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.quaternion import xyzw_from_rpy
from geoloc_ros.io import convert
from geoloc_ros.io.image import compressed_msg_from_image, image_from_msg, msg_from_image
from geoloc_ros.io.msgtypes import RosbagsTypes
from geoloc_ros.types import CovarianceType, GnssFix, GnssStatus, ImuSample, NavState, PoseFix

TYPES = RosbagsTypes()


def imu_sample(**kw) -> ImuSample:
    base = dict(
        t_s=1700000000.123456789,
        gyro_radps=[0.1, -0.2, 0.3],
        accel_mps2=[0.5, 0.1, 9.8],
        q_xyzw=xyzw_from_rpy(0.1, 0.2, 0.3),
        cov_gyro_3x3=np.eye(3) * 1e-4,
        cov_orientation_3x3=np.eye(3) * 1e-3,
    )
    base.update(kw)
    return ImuSample(**base)


def test_imu_round_trip_keeps_values_and_unknowns():
    s = imu_sample()
    back = convert.imu_from_msg(convert.msg_from_imu(s, TYPES))
    assert back.t_s == pytest.approx(s.t_s, abs=1e-9)
    np.testing.assert_allclose(back.gyro_radps, s.gyro_radps)
    np.testing.assert_allclose(back.q_xyzw, s.q_xyzw, atol=1e-12)
    np.testing.assert_allclose(back.cov_gyro_3x3, s.cov_gyro_3x3)
    assert back.cov_accel_3x3 is None  # all zeros in the message means unknown


def test_imu_without_orientation_sets_minus_one():
    msg = convert.msg_from_imu(imu_sample(q_xyzw=None, cov_orientation_3x3=None), TYPES)
    assert msg.orientation_covariance[0] == -1.0
    assert convert.imu_from_msg(msg).q_xyzw is None


@pytest.mark.parametrize("field", ["angular_velocity", "linear_acceleration"])
def test_imu_nan_is_rejected_with_reason(field):
    msg = convert.msg_from_imu(imu_sample(), TYPES)
    getattr(msg, field).y = math.nan
    with pytest.raises(InputRejected) as err:
        convert.imu_from_msg(msg)
    assert err.value.reason == "nan"


def test_imu_impossible_covariance_is_rejected():
    msg = convert.msg_from_imu(imu_sample(), TYPES)
    msg.angular_velocity_covariance[0] = -3.0
    with pytest.raises(InputRejected, match="variance <= 0"):
        convert.imu_from_msg(msg)


def test_imu_covariances_are_validated_per_distinct_pair_not_remembered_wrongly():
    """The rate covariances are validated once per distinct pair: the same pair comes
    back (read-only, so samples can share it), a changed one is checked again."""
    good = convert.msg_from_imu(imu_sample(), TYPES)
    first = convert.imu_from_msg(good)
    again = convert.imu_from_msg(good)
    np.testing.assert_array_equal(first.cov_gyro_3x3, again.cov_gyro_3x3)
    assert not again.cov_gyro_3x3.flags.writeable
    kept = first.cov_gyro_3x3.copy()
    good.angular_velocity_covariance[4] = 0.0  # a zero variance on y: impossible
    with pytest.raises(InputRejected, match="variance <= 0"):
        convert.imu_from_msg(good)
    np.testing.assert_array_equal(first.cov_gyro_3x3, kept)  # not a view of the message
    bigger = convert.msg_from_imu(imu_sample(cov_gyro_3x3=np.eye(3) * 4e-4), TYPES)
    np.testing.assert_allclose(convert.imu_from_msg(bigger).cov_gyro_3x3, np.eye(3) * 4e-4)


def fix(**kw) -> GnssFix:
    base = dict(
        t_s=100.5,
        lat_deg=47.3769,
        lon_deg=8.5417,
        alt_m=408.0,
        status=GnssStatus.FIX,
        cov_enu_3x3=np.diag([1.0, 2.0, 9.0]),
        covariance_type=CovarianceType.DIAGONAL_KNOWN,
    )
    base.update(kw)
    return GnssFix(**base)


def test_navsatfix_round_trip():
    f = fix()
    back = convert.gnss_from_msg(convert.msg_from_gnss(f, TYPES))
    assert (back.lat_deg, back.lon_deg, back.alt_m) == (f.lat_deg, f.lon_deg, f.alt_m)
    assert back.covariance_type == CovarianceType.DIAGONAL_KNOWN
    np.testing.assert_allclose(back.cov_enu_3x3, f.cov_enu_3x3)


def test_navsatfix_unknown_covariance_is_none_and_round_trips_as_unknown():
    msg = convert.msg_from_gnss(fix(cov_enu_3x3=None), TYPES)
    assert msg.position_covariance_type == 0
    assert convert.gnss_from_msg(msg).cov_enu_3x3 is None


def test_navsatfix_diagonal_known_ignores_off_diagonal_garbage():
    msg = convert.msg_from_gnss(fix(), TYPES)
    msg.position_covariance[1] = 123.0  # asymmetric, but only the diagonal is claimed
    back = convert.gnss_from_msg(msg)
    np.testing.assert_allclose(back.cov_enu_3x3, np.diag([1.0, 2.0, 9.0]))


def test_navsatfix_no_fix_is_kept_as_no_fix_even_with_nan():
    msg = convert.msg_from_gnss(fix(status=GnssStatus.NO_FIX), TYPES)
    msg.latitude = math.nan
    back = convert.gnss_from_msg(msg)
    assert back.status == GnssStatus.NO_FIX and not back.has_fix


@pytest.mark.parametrize(
    ("attr", "value", "reason"),
    [
        ("latitude", math.nan, "nan"),
        ("latitude", 91.0, "range"),
        ("position_covariance_type", 7, "covariance"),
    ],
)
def test_navsatfix_bad_fields_rejected(attr, value, reason):
    msg = convert.msg_from_gnss(fix(), TYPES)
    setattr(msg, attr, value)
    with pytest.raises(InputRejected) as err:
        convert.gnss_from_msg(msg)
    assert err.value.reason == reason


def test_navsatfix_known_covariance_must_be_symmetric():
    msg = convert.msg_from_gnss(fix(covariance_type=CovarianceType.KNOWN), TYPES)
    msg.position_covariance_type = 3
    msg.position_covariance[1] = 0.5
    with pytest.raises(InputRejected, match="not symmetric"):
        convert.gnss_from_msg(msg)


def test_posefix_round_trip_and_rejects_bad_covariance():
    cov = np.diag([1.0, 1.0, 100.0, 100.0, 100.0, 0.01])
    pf = PoseFix(5.0, [1.0, 2.0, 3.0], xyzw_from_rpy(0, 0, 1.0), cov, dof=3, source="map")
    msg = convert.msg_from_posefix(pf, TYPES)
    back = convert.posefix_from_msg(msg, dof=3)
    np.testing.assert_allclose(back.p_m, pf.p_m)
    np.testing.assert_allclose(back.cov_pose_6x6, cov)
    msg.pose.covariance[:] = 0.0
    with pytest.raises(InputRejected, match="variance <= 0"):
        convert.posefix_from_msg(msg)


def test_odometry_twist_is_in_child_frame():
    q = xyzw_from_rpy(0.0, 0.0, math.pi / 2)  # facing north
    s = NavState(1.0, [0, 0, 0], q, v_mps=[0.0, 3.0, 0.0])  # moving north
    msg = convert.odometry_from_navstate(s, TYPES)
    assert msg.twist.twist.linear.x == pytest.approx(3.0)  # forward in base_link
    assert msg.twist.twist.linear.y == pytest.approx(0.0, abs=1e-12)
    back = convert.navstate_from_odometry(msg)
    np.testing.assert_allclose(back.v_mps, [0.0, 3.0, 0.0], atol=1e-12)


def test_image_round_trips_rgb_and_mono():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    mono = rgb[..., 0].copy()
    np.testing.assert_array_equal(image_from_msg(msg_from_image(rgb, 1.0, "cam", TYPES)), rgb)
    np.testing.assert_array_equal(image_from_msg(msg_from_image(mono, 1.0, "cam", TYPES)), mono)
    bgr_msg = msg_from_image(rgb[..., ::-1], 1.0, "cam", TYPES, encoding="bgr8")
    np.testing.assert_array_equal(image_from_msg(bgr_msg), rgb)
    as_rgb = image_from_msg(msg_from_image(mono, 1.0, "cam", TYPES), want="rgb8")
    assert as_rgb.shape == (24, 32, 3)


def test_compressed_image_decodes():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (255, 0, 0)
    out = image_from_msg(compressed_msg_from_image(rgb, 1.0, "cam", TYPES, fmt="png"))
    np.testing.assert_array_equal(out, rgb)


def test_bad_images_are_rejected_not_crashing():
    msg = msg_from_image(np.zeros((4, 4), np.uint8), 1.0, "cam", TYPES)
    msg.encoding = "unknown_enc"
    with pytest.raises(InputRejected):
        image_from_msg(msg)
    truncated = msg_from_image(np.zeros((4, 4), np.uint8), 1.0, "cam", TYPES)
    truncated.data = truncated.data[:5]
    with pytest.raises(InputRejected):
        image_from_msg(truncated)
    with pytest.raises(InputRejected, match="does not match"):
        msg_from_image(np.zeros((4, 4), np.uint8), 1.0, "cam", TYPES, encoding="rgb8")


def test_camera_frame_from_image_and_camera_info_round_trip():
    from geoloc_ros.types import CameraFrame

    K = np.array([[200.0, 0.0, 160.0], [0.0, 200.0, 120.0], [0.0, 0.0, 1.0]])
    img = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    frame = CameraFrame(3.0, img, K, np.zeros(5), "plumb_bob", "camera_optical_frame")
    info = convert.msg_from_camera_info(frame, TYPES)
    back = convert.camera_frame_from_msgs(
        msg_from_image(img, 3.0, "camera_optical_frame", TYPES), info
    )
    np.testing.assert_array_equal(back.image, img)
    np.testing.assert_allclose(back.K_3x3, K)
    assert back.size_wh == (320, 240) and back.frame_id == "camera_optical_frame"


def test_camera_info_of_another_size_or_bad_k_is_rejected():
    from geoloc_ros.types import CameraFrame

    K = np.array([[200.0, 0.0, 16.0], [0.0, 200.0, 12.0], [0.0, 0.0, 1.0]])
    frame = CameraFrame(3.0, np.zeros((24, 32), np.uint8), K)
    info = convert.msg_from_camera_info(frame, TYPES)
    small = msg_from_image(np.zeros((12, 16), np.uint8), 3.0, "cam", TYPES)
    with pytest.raises(InputRejected, match="camera_info is 32x24"):
        convert.camera_frame_from_msgs(small, info)
    info.k[0] = math.nan
    with pytest.raises(InputRejected, match="not a pinhole"):
        convert.camera_frame_from_msgs(
            msg_from_image(np.zeros((24, 32), np.uint8), 3.0, "c", TYPES), info
        )


def test_fill_odometry_in_place_matches_a_built_message():
    """fusion_node refills one Odometry per output; every field must be the new state's."""
    a = NavState(1.0, [1, 2, 3], xyzw_from_rpy(0.1, 0.0, 1.0), v_mps=[1.0, 2.0, 0.0],
                 w_radps=[0.0, 0.0, 0.3], cov_pose_6x6=np.diag([1.0, 2, 3, 4, 5, 6]),
                 frame_id="map", child_frame_id="base_link")  # fmt: skip
    b = NavState(2.5, [-4, 5, 0.5], xyzw_from_rpy(0.0, 0.2, -2.0), v_mps=[0.0, -3.0, 0.1],
                 frame_id="map", child_frame_id="base_link")  # fmt: skip
    msg = convert.fill_odometry(convert.odometry_from_navstate(a, TYPES), b)
    want = convert.odometry_from_navstate(b, TYPES)
    assert msg.header.stamp == want.header.stamp and msg.header.frame_id == "map"
    back, expected = convert.navstate_from_odometry(msg), convert.navstate_from_odometry(want)
    for field in ("t_s", "p_m", "q_xyzw", "v_mps", "w_radps"):
        np.testing.assert_allclose(getattr(back, field), getattr(expected, field), atol=1e-12)
    np.testing.assert_array_equal(msg.pose.covariance, want.pose.covariance)  # b has none


def test_fill_transform_keeps_frames_and_sets_stamp_and_pose():
    msg = convert.transform_msg(0.0, "map", "odom", [0, 0, 0], [0, 0, 0, 1], TYPES)
    q = xyzw_from_rpy(0.0, 0.0, 0.5)
    convert.fill_transform(msg, 12.25, [1.0, -2.0, 3.0], q)
    assert (msg.header.frame_id, msg.child_frame_id) == ("map", "odom")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 250_000_000)
    t, r = msg.transform.translation, msg.transform.rotation
    assert (t.x, t.y, t.z) == (1.0, -2.0, 3.0)
    np.testing.assert_allclose([r.x, r.y, r.z, r.w], q)
