"""Replay a bag's camera through the MapLocalizer map_localizer_node runs: one fix per image.

The prior is what the issue's protocol asks for: with `prior_sigma_m`, the true position
plus seeded isotropic Gaussian noise of that sigma (and that sigma as the prior's); else
the bag's newest GNSS fix (no older than max_prior_age_s) with its own sigma, as the node
does without odometry. Gravity comes from the bag's IMU through the node's GravityFilter;
the camera mount from /tf_static when it holds base_link -> the image's frame, else from
the config. Every problem is a counted rejection, never an exception out of the loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoloc_ros.errors import BagError, InputRejected
from geoloc_ros.eval.sources import BagFrameLocalizer
from geoloc_ros.eval.trajectory import Trajectory
from geoloc_ros.fusion.pipeline import Rejection
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.io import topics
from geoloc_ros.io.bag import BagReader
from geoloc_ros.io.convert import gnss_from_msg, stamp_of
from geoloc_ros.neuralmap.inputs import ImagePrior, MapLocalizerConfig, prior_from_gnss
from geoloc_ros.neuralmap.localizer import MapFix, MapLocalizer


@dataclass
class MapLocalizerRun:
    t_s: list[float] = field(default_factory=list)
    fixes: list[MapFix] = field(default_factory=list)
    z_m: list[float] = field(default_factory=list)  # the prior's height, for the TUM file
    rejections: list[Rejection] = field(default_factory=list)
    prior: str = "gnss"  # "truth+noise" or "gnss"
    camera_mount: str = "config"  # "tf_static" or "config"
    attitude: str = "none"  # roll/pitch source: "orientation" (the IMU's AHRS) or "accelerometer"
    wall_s: float = 0.0

    def trajectory(self, published_only: bool = False, publish_multimodal: bool = False):
        """x, y, yaw of the fixes (z: the prior's); `published_only` drops withheld ones."""
        from geoloc_ros.geo.quaternion import xyzw_from_rpy  # noqa: PLC0415

        keep = [i for i, f in enumerate(self.fixes)
                if not (published_only and f.multimodal and not publish_multimodal)]  # fmt: skip
        p = np.array([[*self.fixes[i].xy_m, self.z_m[i]] for i in keep]).reshape(-1, 3)
        q = np.array([xyzw_from_rpy(0.0, 0.0, self.fixes[i].yaw_rad) for i in keep]).reshape(-1, 4)
        cov = np.zeros((len(keep), 3, 3))
        for j, i in enumerate(keep):
            cov[j, :2, :2] = self.fixes[i].cov_xyyaw[:2, :2]
            cov[j, 2, 2] = 1e6
        return Trajectory(np.array([self.t_s[i] for i in keep]), p, q, cov)


def replay_map_localizer(
    bag_path: str | Path,
    loc: MapLocalizer,
    cfg: MapLocalizerConfig,
    truth: Trajectory | None,
    prior_sigma_m: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> MapLocalizerRun:
    """Every image of the bag through `loc`; `truth` (map frame) is needed with prior_sigma_m."""
    from tqdm import tqdm  # noqa: PLC0415

    if prior_sigma_m is not None and (truth is None or len(truth) < 2):
        raise BagError(f"{bag_path}: --prior-sigma needs ground truth, and the bag has none")
    if prior_sigma_m is not None and not prior_sigma_m > 0:
        raise BagError(f"--prior-sigma must be positive, got {prior_sigma_m}")
    rng = np.random.default_rng(seed)
    ltp = LocalTangentPlane(*loc.store.datum)
    frames = BagFrameLocalizer(loc, cfg)
    run = MapLocalizerRun(prior="truth+noise" if prior_sigma_m is not None else "gnss")
    gnss = None  # the newest usable fix as a prior: (t_s, xy, z, sigma)

    def prior(t_s: float):
        if prior_sigma_m is not None:
            return _truth_prior(truth, t_s, prior_sigma_m, rng)
        return _latest_gnss(gnss, t_s, cfg)

    with BagReader(bag_path) as bag:
        present = {t.topic: t.count for t in bag.topics()}
        if topics.IMAGE not in present:
            raise BagError(f"{bag_path}: no {topics.IMAGE} topic; the map localizer needs images")
        wanted = [t for t in (*frames.topics, topics.FIX, topics.IMAGE) if t in present]
        t0 = time.perf_counter()
        bar = tqdm(bag.messages(wanted), total=sum(present[t] for t in wanted), unit="msg",
                   desc="map_localizer", disable=not progress, leave=False)  # fmt: skip
        for m in bar:
            try:
                if m.topic == topics.FIX:
                    gnss = prior_from_gnss(gnss_from_msg(m.msg), ltp) or gnss
                elif m.topic == topics.IMAGE:
                    t_s, fix, used = frames.localize(m.msg, prior)
                    run.t_s.append(t_s)
                    run.fixes.append(fix)
                    run.z_m.append(used.z_m)
                else:
                    frames.consume(m.topic, m.msg)
            except InputRejected as exc:
                name = m.topic.lstrip("/")
                run.rejections.append(Rejection(_stamp(m), name, exc.reason, str(exc)))
        run.wall_s = time.perf_counter() - t0
    run.attitude = frames.gravity.source
    run.camera_mount = frames.camera_mount
    return run


def _stamp(m) -> float:
    try:
        return stamp_of(m.msg)
    except Exception:  # a message without a usable header: its log time will do
        return m.t_log_s


def _latest_gnss(gnss, t_s: float, cfg: MapLocalizerConfig):
    if gnss is None:
        raise InputRejected("no GNSS fix yet for the prior", "prior")
    t_fix, pr = gnss
    if abs(t_s - t_fix) > cfg.max_prior_age_s:
        raise InputRejected(f"the GNSS prior is {t_s - t_fix:.1f} s from the image", "prior")
    return pr._replace(sigma_m=cfg.prior_sigma(pr.sigma_m))


def _truth_prior(truth: Trajectory, t_s: float, sigma_m: float, rng: np.random.Generator):
    at, ok = truth.at(np.array([t_s]))
    noise = rng.normal(0.0, sigma_m, 2)  # drawn for every image: the seed fixes the sequence
    if not ok[0]:
        raise InputRejected("no ground truth at this image's stamp", "prior")
    return ImagePrior(at.p_m[0, :2] + noise, float(at.p_m[0, 2]), float(sigma_m))  # true height


def map_localizer_metrics(run: MapLocalizerRun, truth: Trajectory | None, cal) -> dict:
    """Recall at 1/3/5 m and deg, coverage of the 95 % region, multi-modal share, latency."""
    from collections import Counter  # noqa: PLC0415

    from geoloc_ros.neuralmap.evaluate import Runs, summary, volume_cov_of  # noqa: PLC0415

    out = {
        "images": len(run.fixes) + sum(r.input == "image" for r in run.rejections),
        "fixes": len(run.fixes),
        "multimodal": int(sum(f.multimodal for f in run.fixes)),
        "prior": run.prior,
        "camera_mount": run.camera_mount,
        "attitude": run.attitude,
        "rejected": dict(Counter(f"{r.input}/{r.reason}" for r in run.rejections)),
        "wall_s": run.wall_s,
    }
    if run.fixes:
        total = [f.timing_ms["total"] for f in run.fixes]
        out["latency_ms"] = {"median": float(np.median(total)),
                             "p95": float(np.quantile(total, 0.95))}  # fmt: skip
    if truth is None or len(truth) < 2 or not run.fixes:
        return out
    at, ok = truth.at(np.array(run.t_s))
    fixes = [f for f, k in zip(run.fixes, ok, strict=True) if k]
    if not fixes:
        return out
    from geoloc_ros.geo.quaternion import yaw_from_xyzw  # noqa: PLC0415

    yaw_true = np.array([yaw_from_xyzw(q) for q in at.q_xyzw])
    runs = Runs(
        np.array([f.xy_m for f in fixes]) - at.p_m[:, :2],
        np.angle(np.exp(1j * (np.array([f.yaw_rad for f in fixes]) - yaw_true))),
        np.array([f.cov_raw_xyyaw for f in fixes]),
        np.array([f.multimodal for f in fixes], bool),
        [f.timing_ms for f in fixes],
        0,
        np.array([volume_cov_of(f) for f in fixes]).reshape(-1, 2, 2),
        np.array([f.second_peak_ratio for f in fixes], float),
        np.array([f.mode_mass for f in fixes], float),
    )
    s = summary(runs, cal)
    s.pop("rejected", None)
    # coverage of the covariance the fixes carry (calibrated, plus the tilt term for drones)
    from geoloc_ros.neuralmap.evaluate import CHI2_95_2DOF, mahalanobis2_xy  # noqa: PLC0415

    cov = np.array([f.cov_xyyaw for f in fixes])
    inside = mahalanobis2_xy(runs.err_xy_m, cov) <= CHI2_95_2DOF
    s["coverage95_xy"] = float(inside.mean())
    uni = ~runs.multimodal
    s["coverage95_xy_unimodal"] = float(inside[uni].mean()) if uni.any() else None
    # what the fusion is given: unimodal fixes, errors over their own calibrated sigmas
    from geoloc_ros.eval.metrics import error_autocorrelation  # noqa: PLC0415

    t_fix = np.asarray(run.t_s)[ok][uni]
    err = np.column_stack([runs.err_xy_m, runs.err_yaw_rad])[uni]
    sigma = np.sqrt(np.diagonal(cov[uni], axis1=1, axis2=2))
    s["error_autocorrelation"] = {
        "xy": error_autocorrelation(t_fix, err[:, :2] / sigma[:, :2]),
        "yaw": error_autocorrelation(t_fix, err[:, 2] / sigma[:, 2]),
    }
    out.update(s)
    return out
