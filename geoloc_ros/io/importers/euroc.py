"""EuRoC MAV (ASL folder format) -> DESIGN bag: IMU, cam0 images + CameraInfo, Vicon truth.

Conventions (also recorded on /geoloc/source_info):
- Stamps are the files' nanosecond stamps as UTC epoch seconds; log time = stamp.
- IMU: mav0/imu0/data.csv in `imu_link`; base_link is EuRoC's body frame, and
  /tf_static carries base_link->imu_link = T_BS of imu0/sensor.yaml (identity when absent;
  it is identity in EuRoC). Covariances from sensor.yaml's noise densities, discretised at
  the IMU rate (sigma = density * sqrt(rate_hz), Kalibr's convention).
- Camera: mav0/cam0 PNGs as mono8 Image in `camera_optical_frame` with CameraInfo
  (K from [fu, fv, cu, cv]; radial-tangential -> plumb_bob [k1, k2, p1, p2, 0],
  equidistant -> equidistant [k1..k4]); base_link->camera_optical_frame = T_BS of cam0.
- Ground truth: a TUM file (`t tx ty tz qx qy qz qw`, t in s; ns detected) found in the
  data-set folder: Odometry vicon->base_link (the body, = IMU), twist in base_link from
  central differences. EuRoC's truth is the body in the Vicon room: no Earth frame, no GNSS.
- Span: every stream keeps its full span (IMU and truth ~146 s; images only where the
  folder has them), so inertial-only runs can use all of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from geoloc_ros.io import topics
from geoloc_ros.io.bag import check_output
from geoloc_ros.io.importers.base import (
    SOURCE_INFO_TYPE,
    Event,
    Importer,
    ImportSummary,
    SourceError,
    require_dir,
    require_file,
    string_msg,
    summary,
    write_bag,
)

GT_FRAME = "vicon"
CAMERA_FRAME = "camera_optical_frame"


def read_sensor_yaml(path: Path) -> dict:
    """An ASL sensor.yaml (OpenCV's `%YAML:1.0` header tolerated) as a dict."""
    import yaml  # noqa: PLC0415

    require_file(path, "sensor.yaml")
    text = path.read_text(encoding="utf-8")
    if text.startswith("%YAML:"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceError(f"cannot parse {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path} is not a YAML mapping")
    return data


def _floats(data: dict, key: str, n: int, path: Path) -> np.ndarray:
    raw = data.get(key)
    if isinstance(raw, dict):  # OpenCV matrix: {rows, cols, data}
        raw = raw.get("data")
    try:
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise SourceError(f"{path}: {key} is not a list of numbers") from None
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise SourceError(f"{path}: {key} must hold {n} finite numbers, got {arr.size}")
    return arr


def T_body_sensor(data: dict, path: Path) -> np.ndarray:
    """T_BS (sensor-to-body 4x4) of a sensor.yaml, checked to be a rigid transform."""
    T = _floats(data, "T_BS", 16, path).reshape(4, 4)
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or not np.allclose(T[3], [0, 0, 0, 1]):
        raise SourceError(f"{path}: T_BS is not a rigid transform")
    return T


def _read_csv(path: Path, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(stamps [ns] int64, values (N, cols-1) float64) of an ASL data.csv."""
    require_file(path, "ASL data.csv")
    try:
        ns = np.loadtxt(path, delimiter=",", comments="#", usecols=0, dtype=np.int64, ndmin=1)
        vals = np.loadtxt(path, delimiter=",", comments="#", usecols=range(1, cols), ndmin=2)
    except (ValueError, IndexError) as exc:
        raise SourceError(f"cannot parse {path}: {exc}") from None
    if len(ns) == 0 or not np.all(np.diff(ns) > 0) or not np.isfinite(vals).all():
        raise SourceError(f"{path}: no rows, NaN values, or stamps not strictly increasing")
    return ns, vals


def read_cam_csv(path: Path) -> list[tuple[int, str]]:
    """(stamp [ns], file name) rows of cam0/data.csv."""
    rows = []
    for i, line in enumerate(require_file(path, "cam0 data.csv").read_text().splitlines()):
        if not line.strip() or line.startswith("#"):
            continue
        parts = [x.strip() for x in line.split(",")]
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1]:
            raise SourceError(f"{path}:{i + 1}: expected 'timestamp_ns,filename', got {line!r}")
        rows.append((int(parts[0]), parts[1]))
    if any(b[0] <= a[0] for a, b in itertools.pairwise(rows)):
        raise SourceError(f"{path}: stamps are not strictly increasing")
    return rows


def find_ground_truth(root: Path) -> Path | None:
    """The one TUM ground-truth file (`*groundtruth*.txt`) in the data-set folder, if any."""
    found = sorted(root.glob("*groundtruth*.txt"))
    if len(found) > 1:
        raise SourceError(f"several ground-truth files in {root}: {[p.name for p in found]}")
    return found[0] if found else None


def read_tum(path: Path, t_ref_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t [s], p (N,3), q_xyzw (N,4)); stamps in ns are recognised by size against t_ref_s."""
    try:
        a = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError as exc:
        raise SourceError(f"cannot parse {path}: {exc}") from None
    if a.shape[1] != 8 or len(a) < 2 or not np.isfinite(a).all():
        raise SourceError(f"{path}: expected finite rows 't tx ty tz qx qy qz qw'")
    t = a[:, 0] * (1e-9 if a[0, 0] > 1e3 * max(t_ref_s, 1.0) else 1.0)
    if abs(t[0] - t_ref_s) > 86400.0:
        raise SourceError(f"{path}: stamps ({t[0]:.0f} s) are not near the IMU's ({t_ref_s:.0f})")
    q = a[:, 4:8] / np.linalg.norm(a[:, 4:8], axis=1, keepdims=True)
    return t, a[:, 1:4], q


class EurocImporter(Importer):
    name = "euroc"
    describe = "EuRoC MAV ASL folder (mav0/ and a TUM ground-truth file) -> DESIGN bag"
    source_help = "folder holding mav0/ (or mav0/ itself)"

    def run(self, src: str | Path, out: str | Path, progress: bool = True) -> ImportSummary:
        from geoloc_ros.geo.quaternion import xyzw_from_matrix  # noqa: PLC0415
        from geoloc_ros.io.convert import transform_msg  # noqa: PLC0415
        from geoloc_ros.io.msgtypes import RosbagsTypes  # noqa: PLC0415

        src, out = Path(src), Path(out)
        check_output(out)
        require_dir(src, "EuRoC folder")
        mav = src if src.name == "mav0" else require_dir(src / "mav0", "EuRoC mav0 folder")
        root = mav.parent
        imu_yaml = mav / "imu0" / "sensor.yaml"
        imu_cfg = read_sensor_yaml(imu_yaml) if imu_yaml.is_file() else {}
        T_imu = T_body_sensor(imu_cfg, imu_yaml) if "T_BS" in imu_cfg else np.eye(4)
        imu_ns, imu_vals = _read_csv(mav / "imu0" / "data.csv", 7)
        cam_yaml = mav / "cam0" / "sensor.yaml"
        cam_cfg = read_sensor_yaml(cam_yaml)
        T_cam = T_body_sensor(cam_cfg, cam_yaml)
        K, dist, model, size_wh = _intrinsics(cam_cfg, cam_yaml)
        cam_rows = read_cam_csv(mav / "cam0" / "data.csv")
        gt_path = find_ground_truth(root)
        gt = read_tum(gt_path, imu_ns[0] * 1e-9) if gt_path else None
        types = RosbagsTypes()
        streams = [
            _imu_events(imu_ns, imu_vals, _imu_cov(imu_cfg), types),
            _camera_events(mav / "cam0" / "data", cam_rows, K, dist, model, size_wh, types),
        ]
        if gt is not None:
            streams.append(_truth_events(*gt, types))
        starts = [imu_ns[0] * 1e-9] + ([cam_rows[0][0] * 1e-9] if cam_rows else [])
        t0 = float(min([*starts, gt[0][0]] if gt else starts))
        tfs = [
            transform_msg(t0, "base_link", name, T[:3, 3], xyzw_from_matrix(T[:3, :3]), types)
            for name, T in (("imu_link", T_imu), (CAMERA_FRAME, T_cam))
        ]
        info = {
            "dataset": self.name,
            "source": str(root.resolve()),
            "ground_truth_file": str(gt_path.resolve()) if gt_path else None,
            "T_base_imu": T_imu.tolist(),
            "T_base_camera_optical": T_cam.tolist(),
            "imu_covariance": "sensor.yaml noise density * sqrt(rate_hz), squared",
            "ground_truth": f"frame {GT_FRAME} -> base_link (EuRoC body = IMU); twist in "
            "base_link from central differences",
            "span": "full span of every stream (images only where present)",
        }
        first = [
            (t0, -2, topics.SOURCE_INFO, string_msg(types, info)),
            (t0, -1, topics.TF_STATIC, types.get("tf2_msgs/msg/TFMessage")(transforms=tfs)),
        ]
        names = [topics.IMU, topics.IMAGE, topics.CAMERA_INFO, topics.TF_STATIC]
        names += [topics.GROUND_TRUTH] if gt is not None else []
        topic_types = {t: topics.TYPES[t] for t in names}
        topic_types[topics.SOURCE_INFO] = SOURCE_INFO_TYPE
        total = 2 + len(imu_ns) + 2 * len(cam_rows) + (len(gt[0]) if gt else 0)
        latched = (topics.TF_STATIC, topics.SOURCE_INFO)
        counts, t_first, t_last = write_bag(
            out, topic_types, latched, first, streams, progress, total, self.name
        )
        return summary(self.name, root, out, counts, t_first, t_last)


def _intrinsics(cfg: dict, path: Path) -> tuple[np.ndarray, np.ndarray, str, tuple[int, int]]:
    if cfg.get("camera_model", "pinhole") != "pinhole":
        raise SourceError(f"{path}: camera_model {cfg.get('camera_model')!r} is not pinhole")
    fu, fv, cu, cv = _floats(cfg, "intrinsics", 4, path)
    K = np.array([[fu, 0.0, cu], [0.0, fv, cv], [0.0, 0.0, 1.0]])
    kind = cfg.get("distortion_model")
    if kind == "radial-tangential":
        dist, model = np.r_[_floats(cfg, "distortion_coefficients", 4, path), 0.0], "plumb_bob"
    elif kind == "equidistant":
        dist, model = _floats(cfg, "distortion_coefficients", 4, path), "equidistant"
    else:
        raise SourceError(f"{path}: unsupported distortion_model {kind!r}")
    w, h = (int(x) for x in _floats(cfg, "resolution", 2, path))
    return K, dist, model, (w, h)


def _imu_cov(cfg: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(gyro, accel) 3x3 per-sample covariances from the noise densities, or None."""
    rate = cfg.get("rate_hz")
    out = []
    for key in ("gyroscope_noise_density", "accelerometer_noise_density"):
        d = cfg.get(key)
        numbers = isinstance(d, (int, float)) and isinstance(rate, (int, float))
        ok = numbers and d > 0 and rate > 0
        out.append(np.eye(3) * (d * d * rate) if ok else None)
    return out[0], out[1]


def _imu_events(ns: np.ndarray, vals: np.ndarray, cov: tuple, types: Any) -> Iterator[Event]:
    from geoloc_ros.io.convert import msg_from_imu  # noqa: PLC0415
    from geoloc_ros.types import ImuSample  # noqa: PLC0415

    for t_ns, row in zip(ns, vals, strict=True):
        t = int(t_ns) * 1e-9
        s = ImuSample(t, row[0:3], row[3:6], "imu_link", None, cov[0], cov[1])
        yield t, 0, topics.IMU, msg_from_imu(s, types)


def _camera_events(img_dir: Path, rows, K, dist, model, size_wh, types) -> Iterator[Event]:
    import cv2  # noqa: PLC0415

    from geoloc_ros.io.convert import msg_from_camera_info  # noqa: PLC0415
    from geoloc_ros.io.image import msg_from_image  # noqa: PLC0415
    from geoloc_ros.types import CameraFrame  # noqa: PLC0415

    for t_ns, name in rows:
        path = img_dir / name
        img = cv2.imread(str(require_file(path, "cam0 image")), cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint8:
            raise SourceError(f"cannot read {path} as an 8-bit image")
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if (img.shape[1], img.shape[0]) != size_wh:
            raise SourceError(
                f"{path} is {img.shape[1]}x{img.shape[0]}, sensor.yaml says {size_wh}"
            )
        t = t_ns * 1e-9
        frame = CameraFrame(t, img, K, dist, model, CAMERA_FRAME)
        yield t, 1, topics.CAMERA_INFO, msg_from_camera_info(frame, types)
        yield t, 2, topics.IMAGE, msg_from_image(img, t, CAMERA_FRAME, types, "mono8")


def _truth_events(t_s, p_m, q_xyzw, types) -> Iterator[Event]:
    from scipy.spatial.transform import Rotation  # noqa: PLC0415

    from geoloc_ros.io.convert import odometry_from_navstate  # noqa: PLC0415
    from geoloc_ros.io.importers.kinematics import body_rates, velocity_parent  # noqa: PLC0415
    from geoloc_ros.types import NavState  # noqa: PLC0415

    v = velocity_parent(t_s, p_m)
    w = body_rates(t_s, Rotation.from_quat(q_xyzw).as_matrix())
    for i, t in enumerate(t_s):
        s = NavState(float(t), p_m[i], q_xyzw[i], v[i], w[i], None, None, GT_FRAME, "base_link")
        yield float(t), 3, topics.GROUND_TRUTH, odometry_from_navstate(s, types)
