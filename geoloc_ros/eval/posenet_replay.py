"""Replay a bag's camera through the PoseNetLocalizer posenet_node runs: one fix per image."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoloc_ros.errors import BagError, InputRejected
from geoloc_ros.eval.replay import read_sim_info
from geoloc_ros.eval.trajectory import Trajectory
from geoloc_ros.fusion.pipeline import Rejection
from geoloc_ros.io import topics
from geoloc_ros.io.bag import BagReader
from geoloc_ros.io.convert import camera_frame_from_msgs, stamp_of
from geoloc_ros.posenet.localizer import PoseNetLocalizer, PoseNetParams
from geoloc_ros.types import PoseFix

log = logging.getLogger(__name__)


@dataclass
class PoseNetRun:
    fixes: list[PoseFix] = field(default_factory=list)
    withheld: list[bool] = field(default_factory=list)
    sigma_h_m: list[float] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    datum: list[float] | None = None  # the model's map origin
    wall_s: float = 0.0

    def trajectory(self, published_only: bool = False) -> Trajectory:
        keep = [f for f, w in zip(self.fixes, self.withheld, strict=True)
                if not (published_only and w)]  # fmt: skip
        if not keep:
            return Trajectory(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)))
        return Trajectory(
            np.array([f.t_s for f in keep]),
            np.array([f.p_m for f in keep]),
            np.array([f.q_xyzw for f in keep]),
            np.array([f.cov_pose_6x6[:3, :3] for f in keep]),
        )


def posenet_localizer(bag_path: str | Path, params: PoseNetParams) -> PoseNetLocalizer:
    """The localizer, refusing a model of another area than the bag's simulated world."""
    loc = PoseNetLocalizer.from_params(params)
    info = read_sim_info(bag_path)
    if info is not None:
        w = info.get("world", {})
        loc.bundle.check_area(w.get("datum"), w.get("layout_sha256"))
    return loc


def replay_posenet(
    bag_path: str | Path, loc: PoseNetLocalizer, progress: bool = True
) -> PoseNetRun:
    """Every image of the bag through `loc` (camera_info, when present, must match it)."""
    from tqdm import tqdm  # noqa: PLC0415

    run = PoseNetRun(datum=loc.bundle.area.get("datum"))
    with BagReader(bag_path) as bag:
        present = {t.topic: t.count for t in bag.topics()}
        if topics.IMAGE not in present:
            raise BagError(f"{bag_path}: no {topics.IMAGE} topic; PoseNet needs camera images")
        info = None
        t0 = time.perf_counter()
        wanted = [t for t in (topics.CAMERA_INFO, topics.IMAGE) if t in present]
        bar = tqdm(bag.messages(wanted), total=sum(present[t] for t in wanted), unit="msg",
                   desc="posenet", disable=not progress, leave=False)  # fmt: skip
        for m in bar:
            if m.topic == topics.CAMERA_INFO:
                info = m.msg
                continue
            try:
                frame = camera_frame_from_msgs(m.msg, info)
                res = loc.localize(frame.image, frame.t_s)
            except InputRejected as exc:
                run.rejections.append(Rejection(stamp_of(m.msg), "image", exc.reason, str(exc)))
                continue
            run.fixes.append(res.fix)
            run.withheld.append(res.withheld)
            run.sigma_h_m.append(res.sigma_h_m)
        run.wall_s = time.perf_counter() - t0
    return run


def posenet_metrics(run: PoseNetRun, errors) -> dict:
    """Median position / rotation error, 95 % coverage, withheld and rejected counts."""
    from geoloc_ros.eval.metrics import error_autocorrelation, nees, nees_series  # noqa: PLC0415
    from geoloc_ros.posenet.mc import CHI2_95_3DOF, rotation_errors  # noqa: PLC0415

    out = {
        "images": len(run.fixes) + len(run.rejections),
        "withheld": int(np.sum(run.withheld)),
        "rejected": len(run.rejections),
        "median_sigma_h_m": float(np.median(run.sigma_h_m)) if run.sigma_h_m else None,
        "wall_s": run.wall_s,
    }
    if errors is None or len(errors.est) == 0:
        return out
    e_p = np.linalg.norm(errors.est.p_m - errors.ref.p_m, axis=1)
    e_r = np.degrees(np.linalg.norm(rotation_errors(errors.ref.q_xyzw, errors.est.q_xyzw), axis=1))
    out.update(
        median_position_m=float(np.median(e_p)),
        median_horizontal_m=float(np.median(errors.err_h_m)),
        median_rotation_deg=float(np.median(e_r)),
        p90_position_m=float(np.quantile(e_p, 0.9)),
        nees_position=nees(errors),
        coverage95_position=float(np.mean(nees_series(errors) <= CHI2_95_3DOF)),
    )
    e = errors.est.p_m - errors.ref.p_m
    sigma = np.sqrt(np.diagonal(errors.est.cov_p_3x3, axis1=1, axis2=2))
    out["error_autocorrelation"] = {
        "horizontal": error_autocorrelation(errors.t_s, e[:, :2] / sigma[:, :2]),
        "z": error_autocorrelation(errors.t_s, e[:, 2] / sigma[:, 2]),
    }
    return out
