"""The demo table: one replay of the drive per combination of estimators, measured alike.

Rows are GNSS only (gnss_pose_node's estimator), IMU + GNSS (the fusion), and the
fusion with PoseNet, with the map localizer, and with both, each localizer in the
fusion's loop as on the vehicle (`geoloc eval --fuse`). Every row is scored the same
way against ground truth in the map's frame, on what its node publishes (fusion rows:
odometry/global, the IMU-rate state at output_rate_hz, as the live run records it):
horizontal RMSE and yaw RMSE over those poses, and the largest horizontal error inside
the GNSS outage of what the row had published last at each ground-truth stamp (GNSS
only holds its last fix there; scoring 10 Hz keyframes so would add up to 0.1 s of
motion to every error).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoloc_ros.eval import metrics
from geoloc_ros.eval.trajectory import Trajectory
from geoloc_ros.io import topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    key: str  # TUM file stem and run folder
    label: str
    fuse: tuple[str, ...] | None  # localizers in the fusion's loop; None: GNSS only, no fusion

    @property
    def needs(self) -> tuple[str, ...]:
        """Bag topics this row cannot run without."""
        need = [topics.FIX] if self.fuse is None else [topics.IMU, topics.FIX]
        if self.fuse:
            need += [topics.IMAGE, topics.CAMERA_INFO]
        return tuple(need)


ROWS = (
    Row("gnss", "GNSS only", None),
    Row("imu_gnss", "IMU + GNSS", ()),
    Row("imu_gnss_posenet", "+ PoseNet", ("posenet",)),
    Row("imu_gnss_map", "+ map localizer", ("map_localizer",)),
    Row("all", "all", ("map_localizer", "posenet")),
)


@dataclass
class RowResult:
    row: Row
    traj: Trajectory  # keyframes with covariances (fusion rows), for the plots
    wall_s: float
    report: dict[str, Any] | None = None  # the row's `geoloc eval` metrics (fusion rows)
    scores: dict[str, float | None] = field(default_factory=dict)
    published: Trajectory | None = None  # what the node publishes, if not `traj`


@dataclass(frozen=True)
class RowInputs:
    """What every row replays: the bag, its outage, configs in the map's frame."""

    bag: Path
    outage_s: tuple[float, float] | None  # from bag start
    fusion: Any  # FusionConfig with the map's datum
    posenet: Any  # PoseNetParams
    map_localizer: Any  # MapLocalizerConfig


def runnable(rows: tuple[Row, ...], present: set[str]) -> tuple[list[Row], dict[str, list[str]]]:
    """The rows the bag can feed, and for the others the topics they miss."""
    ok, missing = [], {}
    for row in rows:
        lack = [t for t in row.needs if t not in present]
        if lack:
            missing[row.key] = lack
        else:
            ok.append(row)
    return ok, missing


def run_row(row: Row, inp: RowInputs, out: Path, progress: bool) -> RowResult:
    """Replay the bag for one row; its full eval report goes to out/runs/<key>/."""
    t0 = time.perf_counter()
    if row.fuse is None:
        traj = _gnss_only(inp.bag, inp.fusion.datum, progress)
        traj.write_tum(out / f"{row.key}.tum")
        return RowResult(row, traj, time.perf_counter() - t0)
    from geoloc_ros.eval.report import PUBLISHED_TUM, run_eval  # noqa: PLC0415

    run_dir = out / "runs" / row.key
    rep = run_eval(inp.bag, run_dir, inp.fusion, ["fusion", "gnss"], inp.outage_s,
                   progress=progress, posenet=inp.posenet, map_localizer=inp.map_localizer,
                   fuse=list(row.fuse))  # fmt: skip
    shutil.copyfile(run_dir / PUBLISHED_TUM, out / f"{row.key}.tum")
    traj = Trajectory.from_tum(run_dir / "fusion.tum")
    cov_fused = _fused_covariances(run_dir)
    if cov_fused is not None and len(cov_fused) == len(traj):
        traj.cov_p_3x3 = cov_fused
    published = Trajectory.from_tum(run_dir / PUBLISHED_TUM)
    return RowResult(row, traj, time.perf_counter() - t0, rep, published=published)


def score(res: RowResult, gt: Trajectory, outage_abs: tuple[float, float] | None) -> None:
    """Horizontal RMSE, yaw RMSE and outage max error of one row, into res.scores."""
    traj = res.published if res.published is not None and len(res.published) else res.traj
    e = metrics.align(traj, gt)
    res.scores = {
        "rmse_h_m": float(np.sqrt(np.mean(e.err_h_m**2))) if len(e.est) else None,
        "yaw_rmse_deg": metrics.yaw_rmse_deg(e),
        "outage_max_h_m": held_max_error(traj, gt, outage_abs),
        "poses": len(traj),
        "wall_s": res.wall_s,
    }


def held_max_error(
    est: Trajectory, gt: Trajectory, window: tuple[float, float] | None
) -> float | None:
    """Largest horizontal error inside `window` of the last pose published before each
    ground-truth stamp (what a consumer of the estimate believed then)."""
    if window is None or len(est) == 0:
        return None
    m = (gt.t_s >= window[0]) & (gt.t_s < window[1]) & (gt.t_s >= est.t_s[0])
    if not m.any():
        return None
    i = np.searchsorted(est.t_s, gt.t_s[m], side="right") - 1
    return float(np.linalg.norm(est.p_m[i, :2] - gt.p_m[m, :2], axis=1).max())


def _gnss_only(bag: Path, datum: list[float], progress: bool) -> Trajectory:
    """gnss_pose_node's estimator over the bag's IMU and fixes, in the map frame."""
    from tqdm import tqdm  # noqa: PLC0415

    from geoloc_ros.errors import InputRejected  # noqa: PLC0415
    from geoloc_ros.fusion.gnss_pose import GnssPoseConfig, GnssPoseEstimator  # noqa: PLC0415
    from geoloc_ros.io.bag import BagReader  # noqa: PLC0415
    from geoloc_ros.io.convert import gnss_from_msg, imu_from_msg  # noqa: PLC0415

    est = GnssPoseEstimator(GnssPoseConfig(datum=list(datum)))
    states = []
    with BagReader(bag) as reader:
        wanted = [topics.IMU, topics.FIX]
        total = sum(t.count for t in reader.topics() if t.topic in wanted)
        for m in tqdm(reader.messages(wanted), total=total, desc="GNSS only", unit="msg",
                      disable=not progress, leave=False):  # fmt: skip
            try:
                if m.topic == topics.IMU:
                    est.on_imu(imu_from_msg(m.msg))
                else:
                    s = est.on_fix(gnss_from_msg(m.msg))
                    if s is not None:
                        states.append(s)
            except InputRejected as exc:
                log.debug("GNSS only: %s", exc)
    return Trajectory.from_states(states)


def _fused_covariances(run_dir: Path) -> np.ndarray | None:
    """Position covariances of the row's fusion poses, saved beside its TUM file."""
    path = run_dir / "fusion.cov_p_3x3.npy"
    return np.load(path, allow_pickle=False) if path.is_file() else None
