"""ROS messages <-> core types, both ways, for rosbags and rclpy messages alike.

Reading validates: NaN, impossible covariances and malformed fields raise
`InputRejected` with a reason slug; "not reported" conventions of the message
definitions become `None` (Imu: covariance[0] == -1 or all zeros; NavSatFix:
COVARIANCE_TYPE_UNKNOWN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.covariance import check_covariance
from geoloc_ros.geo.quaternion import matrix_from_xyzw, normalized_xyzw
from geoloc_ros.io.msgtypes import MessageTypes, header_msg
from geoloc_ros.timeutil import s_to_stamp, stamp_to_s
from geoloc_ros.types import (
    CovarianceType,
    GnssFix,
    GnssStatus,
    ImuSample,
    NavState,
    PoseFix,
)

# --- helpers ---------------------------------------------------------------------------


def stamp_of(msg: Any) -> float:
    """Header stamp of a message in float seconds."""
    return stamp_to_s(int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))


def _xyz(v: Any) -> np.ndarray:
    return np.array([v.x, v.y, v.z], dtype=np.float64)


def _finite(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise InputRejected(f"{what} contains NaN or inf: {arr.tolist()}", "nan")
    return arr


def _vector3(types: MessageTypes, v: np.ndarray) -> Any:
    return types.get("geometry_msgs/msg/Vector3")(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _quat_msg(types: MessageTypes, q: np.ndarray) -> Any:
    Q = types.get("geometry_msgs/msg/Quaternion")
    return Q(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def _pose_msg(types: MessageTypes, p: np.ndarray, q: np.ndarray) -> Any:
    Point = types.get("geometry_msgs/msg/Point")
    return types.get("geometry_msgs/msg/Pose")(
        position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])), orientation=_quat_msg(types, q)
    )


def _imu_cov(values: Any, what: str) -> np.ndarray | None:
    c = np.asarray(values, dtype=np.float64).reshape(-1)
    if c.size != 9:
        raise InputRejected(f"{what} must have 9 elements, got {c.size}", "shape")
    if c[0] == -1.0 or (np.isfinite(c).all() and not c.any()):
        return None
    return check_covariance(c, 3, what)


_RATE_COVS: dict[tuple[int, bytes], tuple[np.ndarray | None, np.ndarray | None]] = {}
_RATE_COVS_MAX = 64


def _imu_rate_covs(gyro: Any, accel: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gyro and accelerometer covariances, validated once per distinct pair: a driver
    repeats the same two for hours, at 100-400 Hz. The arrays returned are read-only."""
    g = np.asarray(gyro, dtype=np.float64)
    a = np.asarray(accel, dtype=np.float64)
    key = (g.size, g.tobytes() + a.tobytes())
    if key not in _RATE_COVS:
        covs = tuple(
            None if c is None else np.array(c)  # a copy: not a view of this message's buffer
            for c in (
                _imu_cov(g, "angular_velocity_covariance"),
                _imu_cov(a, "linear_acceleration_covariance"),
            )
        )  # raises before anything is cached
        for c in covs:
            if c is not None:
                c.setflags(write=False)
        if len(_RATE_COVS) >= _RATE_COVS_MAX:
            _RATE_COVS.clear()
        _RATE_COVS[key] = covs
    return _RATE_COVS[key]


def _cov_field(cov: np.ndarray | None, n: int, unknown: float = 0.0) -> np.ndarray:
    if cov is None:
        out = np.zeros(n * n)
        out[0] = unknown
        return out
    return np.asarray(cov, dtype=np.float64).reshape(-1).copy()


# --- sensor_msgs/Imu -------------------------------------------------------------------


def imu_from_msg(msg: Any) -> ImuSample:
    """ImuSample of a sensor_msgs/Imu; NaN rates or accelerations reject the message."""
    w, a = msg.angular_velocity, msg.linear_acceleration
    rates = np.array([w.x, w.y, w.z, a.x, a.y, a.z], dtype=np.float64)  # one check for both
    if not np.isfinite(rates).all():
        _finite(rates[:3], "angular_velocity")
        _finite(rates[3:], "linear_acceleration")
    cov_gyro, cov_accel = _imu_rate_covs(
        msg.angular_velocity_covariance, msg.linear_acceleration_covariance
    )
    cov_q = np.asarray(msg.orientation_covariance, dtype=np.float64).reshape(-1)
    q = None
    cov_orientation = None
    if cov_q.size and cov_q[0] != -1.0:
        o = msg.orientation
        q_raw = np.array([o.x, o.y, o.z, o.w], dtype=np.float64)
        if np.isnan(q_raw).any() or q_raw.any():
            q = normalized_xyzw(_finite(q_raw, "orientation"))
            cov_orientation = _imu_cov(cov_q, "orientation_covariance")
    return ImuSample(
        t_s=stamp_of(msg),
        gyro_radps=rates[:3],
        accel_mps2=rates[3:],
        frame_id=str(msg.header.frame_id),
        q_xyzw=q,
        cov_gyro_3x3=cov_gyro,
        cov_accel_3x3=cov_accel,
        cov_orientation_3x3=cov_orientation,
    )


def msg_from_imu(s: ImuSample, types: MessageTypes) -> Any:
    """sensor_msgs/Imu of an ImuSample (orientation_covariance[0] = -1 when no orientation)."""
    q = s.q_xyzw if s.q_xyzw is not None else np.array([0.0, 0.0, 0.0, 1.0])
    return types.get("sensor_msgs/msg/Imu")(
        header=header_msg(types, s.t_s, s.frame_id),
        orientation=_quat_msg(types, q),
        orientation_covariance=_cov_field(
            s.cov_orientation_3x3, 3, unknown=-1.0 if s.q_xyzw is None else 0.0
        ),
        angular_velocity=_vector3(types, s.gyro_radps),
        angular_velocity_covariance=_cov_field(s.cov_gyro_3x3, 3),
        linear_acceleration=_vector3(types, s.accel_mps2),
        linear_acceleration_covariance=_cov_field(s.cov_accel_3x3, 3),
    )


# --- sensor_msgs/NavSatFix ---------------------------------------------------------------


def gnss_from_msg(msg: Any) -> GnssFix:
    """GnssFix of a sensor_msgs/NavSatFix.

    NO_FIX messages are kept (status NO_FIX; position may be NaN): an outage is
    information. A fix claiming a position must have a finite, valid one.
    """
    status_raw = int(msg.status.status)
    try:
        status = GnssStatus(status_raw)
    except ValueError:
        raise InputRejected(f"unknown NavSatStatus {status_raw}", "status") from None
    lat, lon, alt = float(msg.latitude), float(msg.longitude), float(msg.altitude)
    cov_type_raw = int(msg.position_covariance_type)
    try:
        cov_type = CovarianceType(cov_type_raw)
    except ValueError:
        raise InputRejected(
            f"unknown position_covariance_type {cov_type_raw}", "covariance"
        ) from None
    t_s = stamp_of(msg)
    frame_id = str(msg.header.frame_id)
    if status == GnssStatus.NO_FIX:
        return GnssFix(t_s, lat, lon, alt, status, None, CovarianceType.UNKNOWN, frame_id)
    if not all(math.isfinite(v) for v in (lat, lon, alt)):
        raise InputRejected(f"fix position is not finite: ({lat}, {lon}, {alt})", "nan")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 360.0):
        raise InputRejected(f"fix position out of range: ({lat}, {lon})", "range")
    cov = None
    raw = np.asarray(msg.position_covariance, dtype=np.float64).reshape(-1)
    if cov_type == CovarianceType.DIAGONAL_KNOWN:
        cov = check_covariance(np.diag(raw[[0, 4, 8]]), 3, "position_covariance")
    elif cov_type != CovarianceType.UNKNOWN:
        cov = check_covariance(raw, 3, "position_covariance")
    return GnssFix(t_s, lat, lon, alt, status, cov, cov_type, frame_id)


def msg_from_gnss(fix: GnssFix, types: MessageTypes) -> Any:
    """sensor_msgs/NavSatFix of a GnssFix (service: GPS)."""
    status = types.get("sensor_msgs/msg/NavSatStatus")(status=int(fix.status), service=1)
    cov_type = fix.covariance_type if fix.cov_enu_3x3 is not None else CovarianceType.UNKNOWN
    return types.get("sensor_msgs/msg/NavSatFix")(
        header=header_msg(types, fix.t_s, fix.frame_id),
        status=status,
        latitude=float(fix.lat_deg),
        longitude=float(fix.lon_deg),
        altitude=float(fix.alt_m),
        position_covariance=_cov_field(fix.cov_enu_3x3, 3),
        position_covariance_type=int(cov_type),
    )


# --- geometry_msgs/PoseWithCovarianceStamped --------------------------------------------


def posefix_from_msg(msg: Any, dof: int = 6, source: str = "") -> PoseFix:
    """PoseFix of a PoseWithCovarianceStamped; the covariance must be a valid 6x6."""
    pose = msg.pose.pose
    p = _finite(_xyz(pose.position), "position")
    q = normalized_xyzw(
        [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    )
    cov = check_covariance(msg.pose.covariance, 6, "pose covariance")
    return PoseFix(stamp_of(msg), p, q, cov, str(msg.header.frame_id), "base_link", dof, source)


def msg_from_posefix(fix: PoseFix, types: MessageTypes) -> Any:
    """PoseWithCovarianceStamped of a PoseFix (frame_id = the fix's parent frame)."""
    PwC = types.get("geometry_msgs/msg/PoseWithCovariance")
    return types.get("geometry_msgs/msg/PoseWithCovarianceStamped")(
        header=header_msg(types, fix.t_s, fix.frame_id),
        pose=PwC(
            pose=_pose_msg(types, fix.p_m, fix.q_xyzw), covariance=_cov_field(fix.cov_pose_6x6, 6)
        ),
    )


# --- nav_msgs/Odometry -------------------------------------------------------------------


def navstate_from_odometry(msg: Any) -> NavState:
    """NavState of a nav_msgs/Odometry; the twist (child frame) is rotated into the parent."""
    pose = msg.pose.pose
    p = _finite(_xyz(pose.position), "position")
    q = normalized_xyzw(
        [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    )
    v_body = _finite(_xyz(msg.twist.twist.linear), "twist.linear")
    w_body = _finite(_xyz(msg.twist.twist.angular), "twist.angular")
    cov_pose = np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6)
    cov_twist = np.asarray(msg.twist.covariance, dtype=np.float64).reshape(6, 6)
    return NavState(
        t_s=stamp_of(msg),
        p_m=p,
        q_xyzw=q,
        v_mps=matrix_from_xyzw(q) @ v_body,
        w_radps=w_body,
        cov_pose_6x6=check_covariance(cov_pose, 6, "pose covariance") if cov_pose.any() else None,
        cov_twist_6x6=check_covariance(cov_twist, 6, "twist covariance")
        if cov_twist.any()
        else None,
        frame_id=str(msg.header.frame_id),
        child_frame_id=str(msg.child_frame_id),
    )


def odometry_from_navstate(s: NavState, types: MessageTypes) -> Any:
    """nav_msgs/Odometry of a NavState (twist expressed in the child frame, as REP-105 says)."""
    v_body = matrix_from_xyzw(s.q_xyzw).T @ s.v_mps
    Twist = types.get("geometry_msgs/msg/Twist")
    return types.get("nav_msgs/msg/Odometry")(
        header=header_msg(types, s.t_s, s.frame_id),
        child_frame_id=s.child_frame_id,
        pose=types.get("geometry_msgs/msg/PoseWithCovariance")(
            pose=_pose_msg(types, s.p_m, s.q_xyzw), covariance=_cov_field(s.cov_pose_6x6, 6)
        ),
        twist=types.get("geometry_msgs/msg/TwistWithCovariance")(
            twist=Twist(linear=_vector3(types, v_body), angular=_vector3(types, s.w_radps)),
            covariance=_cov_field(s.cov_twist_6x6, 6),
        ),
    )


def fill_odometry(msg: Any, s: NavState) -> Any:
    """Write a NavState into an existing nav_msgs/Odometry, as odometry_from_navstate
    builds one: a node refilling one message per output skips building ~15 nested ones."""
    fill_header(msg.header, s.t_s, s.frame_id)
    msg.child_frame_id = s.child_frame_id
    _fill_xyz(msg.pose.pose.position, s.p_m)
    _fill_quat(msg.pose.pose.orientation, s.q_xyzw)
    msg.pose.covariance = _cov_field(s.cov_pose_6x6, 6)
    _fill_xyz(msg.twist.twist.linear, matrix_from_xyzw(s.q_xyzw).T @ s.v_mps)
    _fill_xyz(msg.twist.twist.angular, s.w_radps)
    msg.twist.covariance = _cov_field(s.cov_twist_6x6, 6)
    return msg


def fill_transform(msg: Any, t_s: float, p_m: Any, q_xyzw: Any) -> Any:
    """Write T_parent_child into an existing TransformStamped (frames left as they are)."""
    fill_header(msg.header, t_s)
    _fill_xyz(msg.transform.translation, p_m)
    _fill_quat(msg.transform.rotation, q_xyzw)
    return msg


def fill_header(header: Any, t_s: float, frame_id: str | None = None) -> None:
    """Set an existing std_msgs/Header's stamp (and frame, if given) in place."""
    header.stamp.sec, header.stamp.nanosec = s_to_stamp(t_s)
    if frame_id is not None:
        header.frame_id = frame_id


def _fill_xyz(v: Any, xyz: Any) -> None:
    v.x, v.y, v.z = float(xyz[0]), float(xyz[1]), float(xyz[2])


def _fill_quat(q: Any, xyzw: Any) -> None:
    q.x, q.y, q.z, q.w = float(xyzw[0]), float(xyzw[1]), float(xyzw[2]), float(xyzw[3])


# --- geometry_msgs/TransformStamped --------------------------------------------------------


def transform_msg(
    t_s: float, parent: str, child: str, p_m: Any, q_xyzw: Any, types: MessageTypes
) -> Any:
    """TransformStamped for T_parent_child (translation and ROS-order rotation)."""
    p = np.asarray(p_m, dtype=np.float64)
    return types.get("geometry_msgs/msg/TransformStamped")(
        header=header_msg(types, t_s, parent),
        child_frame_id=child,
        transform=types.get("geometry_msgs/msg/Transform")(
            translation=_vector3(types, p), rotation=_quat_msg(types, np.asarray(q_xyzw, float))
        ),
    )


# --- nav_msgs/OccupancyGrid (an orthophoto for RViz's Map display) -------------------------


def occupancy_grid_from_grey(grey: np.ndarray, res_m: float, x_west_m: float, y_south_m: float,
                             frame_id: str, t_s: float, types: MessageTypes) -> Any:  # fmt: skip
    """OccupancyGrid whose cells carry grey levels 0..255 (RViz Map, colour scheme "raw").

    `grey` is north row first, as images are; the grid starts at its south-west corner.
    """
    g = np.ascontiguousarray(np.asarray(grey, np.uint8)[::-1])
    h, w = g.shape
    info = types.get("nav_msgs/msg/MapMetaData")(
        map_load_time=types.get("builtin_interfaces/msg/Time")(sec=int(t_s), nanosec=0),
        resolution=float(res_m), width=w, height=h,
        origin=_pose_msg(types, np.array([x_west_m, y_south_m, 0.0]), np.array([0, 0, 0, 1.0])),
    )  # fmt: skip
    return types.get("nav_msgs/msg/OccupancyGrid")(
        header=header_msg(types, t_s, frame_id), info=info, data=g.view(np.int8).ravel()
    )


# --- sensor_msgs/Image (+ CameraInfo) ----------------------------------------------------


def camera_frame_from_msgs(image_msg: Any, info_msg: Any | None = None, want: str = "auto"):
    """CameraFrame of an Image or CompressedImage and, if given, its CameraInfo.

    The CameraInfo must describe an image of the same size; K must be a finite pinhole
    matrix with positive focal lengths.
    """
    from geoloc_ros.io.image import image_from_msg  # noqa: PLC0415  (cv2 only when images)
    from geoloc_ros.types import CameraFrame  # noqa: PLC0415

    img = image_from_msg(image_msg, want)
    K = None
    distortion = np.zeros(0)
    model = ""
    if info_msg is not None:
        h, w = img.shape[:2]
        if (int(info_msg.height), int(info_msg.width)) != (h, w):
            raise InputRejected(
                f"camera_info is {info_msg.width}x{info_msg.height} but the image is {w}x{h}",
                "camera_info",
            )
        K = np.asarray(info_msg.k, dtype=np.float64).reshape(3, 3)
        if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
            raise InputRejected(
                f"camera_info K is not a pinhole matrix: {K.tolist()}", "camera_info"
            )
        distortion = np.asarray(info_msg.d, dtype=np.float64)
        model = str(info_msg.distortion_model)
    return CameraFrame(
        t_s=stamp_of(image_msg),
        image=img,
        K_3x3=K,
        distortion=distortion,
        distortion_model=model,
        frame_id=str(image_msg.header.frame_id),
    )


def msg_from_camera_info(frame: Any, types: MessageTypes) -> Any:
    """sensor_msgs/CameraInfo of a CameraFrame with intrinsics (P = [K | 0], no rectification)."""
    if frame.K_3x3 is None:
        raise InputRejected("CameraFrame has no intrinsics to publish", "camera_info")
    w, h = frame.size_wh
    P = np.zeros((3, 4))
    P[:, :3] = frame.K_3x3
    return types.get("sensor_msgs/msg/CameraInfo")(
        header=header_msg(types, frame.t_s, frame.frame_id),
        height=h,
        width=w,
        distortion_model=frame.distortion_model or "plumb_bob",
        d=np.array(frame.distortion, dtype=np.float64) if len(frame.distortion) else np.zeros(5),
        k=np.array(frame.K_3x3, dtype=np.float64).reshape(-1),
        r=np.eye(3).reshape(-1),
        p=P.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=types.get("sensor_msgs/msg/RegionOfInterest")(
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )
