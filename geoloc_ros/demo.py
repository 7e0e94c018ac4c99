"""`geoloc demo`: the README's main job.

Until the learned localizers and the GTSAM fusion land, the demo runs the smallest
honest end-to-end path that exists: simulate an analytic drive at a real datum,
write it as a rosbag2 mcap (IMU, NavSatFix, ground truth in ECEF), read the bag
back, run the GNSS-only baseline through the same estimator object as
gnss_pose_node, and measure it against ground truth.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.fusion.gnss_pose import GnssPoseConfig, GnssPoseEstimator
from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_matrix
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.io.bag import BagReader, BagWriter
from geoloc_ros.io.convert import (
    gnss_from_msg,
    imu_from_msg,
    msg_from_gnss,
    msg_from_imu,
    navstate_from_odometry,
    odometry_from_navstate,
)
from geoloc_ros.io.msgtypes import RosbagsTypes
from geoloc_ros.sim import quickdrive
from geoloc_ros.types import NavState

log = logging.getLogger(__name__)

T0_S = 1_700_000_000.0  # bag start, so stamps look like real ROS time


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    n_fixes: int
    n_imu: int
    gnss_rmse_h_m: float
    gnss_max_h_m: float
    yaw_rmse_deg: float


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


def run_demo(out_dir: Path, duration_s: float = 120.0, seed: int = 0, progress: bool = True):
    """Write the bag, replay it through the GNSS baseline, write TUM files, metrics, plot."""
    from geoloc_ros.eval.tum import write_tum  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    bag_path = out_dir / "quickdrive.mcap"
    write_quickdrive_bag(bag_path, duration_s, seed, progress)

    ltp = LocalTangentPlane(*quickdrive.DEFAULT_DATUM)
    estimator = GnssPoseEstimator(GnssPoseConfig(datum=list(quickdrive.DEFAULT_DATUM)))
    estimates: list[NavState] = []
    truth: list[NavState] = []
    n_imu = 0
    with BagReader(bag_path) as bag:
        for m in bag.messages():
            if m.topic == "/imu":
                estimator.on_imu(imu_from_msg(m.msg))
                n_imu += 1
            elif m.topic == "/fix":
                state = estimator.on_fix(gnss_from_msg(m.msg))
                if state is not None:
                    estimates.append(state)
            elif m.topic == "/ground_truth/odom":
                gt = navstate_from_odometry(m.msg)
                R_map_base = ltp.R_enu_ecef @ matrix_from_xyzw(gt.q_xyzw)
                truth.append(
                    NavState(gt.t_s, ltp.enu_from_ecef(gt.p_m), xyzw_from_matrix(R_map_base))
                )
    write_tum(out_dir / "gnss.tum", estimates)
    write_tum(out_dir / "ground_truth.tum", truth)

    t_gt = np.array([s.t_s for s in truth])
    p_gt = np.array([s.p_m for s in truth])
    t_est = np.array([s.t_s for s in estimates])
    p_est = np.array([s.p_m for s in estimates])
    gt_xy = np.stack([np.interp(t_est, t_gt, p_gt[:, k]) for k in range(2)], -1)
    err_h = np.linalg.norm(p_est[:, :2] - gt_xy, axis=1)
    yaw_err = _yaw_errors_deg(estimates, truth)
    result = DemoResult(
        out_dir=out_dir,
        n_fixes=len(estimates),
        n_imu=n_imu,
        gnss_rmse_h_m=float(np.sqrt(np.mean(err_h**2))),
        gnss_max_h_m=float(err_h.max()),
        yaw_rmse_deg=float(np.sqrt(np.mean(yaw_err**2))),
    )
    metrics = {
        "bag": bag_path.name,
        "duration_s": duration_s,
        "seed": seed,
        "rows": {
            "gnss": {
                "rmse_h_m": result.gnss_rmse_h_m,
                "max_h_m": result.gnss_max_h_m,
                "yaw_rmse_deg": result.yaw_rmse_deg,
                "n": result.n_fixes,
            }
        },
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _plot(out_dir / "trajectory.png", p_gt, p_est, t_est - T0_S, err_h)
    return result


def _yaw_errors_deg(estimates: list[NavState], truth: list[NavState]) -> np.ndarray:
    from geoloc_ros.geo.quaternion import yaw_from_xyzw  # noqa: PLC0415

    t_gt = np.array([s.t_s for s in truth])
    out = []
    for s in estimates:
        i = int(np.argmin(np.abs(t_gt - s.t_s)))
        d = yaw_from_xyzw(s.q_xyzw) - yaw_from_xyzw(truth[i].q_xyzw)
        out.append(np.degrees((d + np.pi) % (2 * np.pi) - np.pi))
    return np.array(out)


def _plot(path: Path, p_gt: np.ndarray, p_est: np.ndarray, t_est: np.ndarray, err_h: np.ndarray):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax0.plot(p_gt[:, 0], p_gt[:, 1], "k-", lw=1.5, label="ground truth")
    ax0.plot(p_est[:, 0], p_est[:, 1], ".", ms=3, color="tab:red", label="GNSS fixes")
    ax0.set(xlabel="east [m]", ylabel="north [m]", title="map frame (ENU at datum)")
    ax0.axis("equal")
    ax0.legend()
    ax1.plot(t_est, err_h, color="tab:red")
    ax1.set(xlabel="time [s]", ylabel="horizontal error [m]", title="GNSS-only error")
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
