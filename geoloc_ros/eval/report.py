"""`geoloc eval`: replay a bag, measure every estimate against ground truth, write a report.

Output folder: metrics.json, one TUM file per estimate plus ground_truth.tum (all in
the run's local ENU map frame), NAME.cov_p_3x3.npy (position covariances, one per TUM
pose, where the estimate has them), rejections.csv, trajectories.png and errors.png.
`fusion.tum` holds the keyframes; `odometry.tum` what fusion_node would have published
on odometry/global (the IMU-rate state at output_rate_hz).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from geoloc_ros.config import flatten, from_mapping, load_node_config
from geoloc_ros.errors import BagError, ConfigError, GeolocError
from geoloc_ros.eval import metrics, plots
from geoloc_ros.eval.posenet_replay import posenet_localizer, posenet_metrics, replay_posenet
from geoloc_ros.eval.replay import ReplayResult, replay_fusion
from geoloc_ros.eval.trajectory import Trajectory
from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.io import topics
from geoloc_ros.posenet.localizer import PoseNetParams

if TYPE_CHECKING:
    from geoloc_ros.neuralmap.inputs import MapLocalizerConfig

ESTIMATORS = ("fusion", "gnss", "posenet", "map_localizer")
"""What `--estimators` can name."""
DEFAULT_ESTIMATORS = ("fusion", "gnss")
FUSABLE = ("map_localizer", "posenet")
"""Visual localizers `--fuse` can put in the fusion's loop."""

FUSION_NODE = "fusion_node"
PUBLISHED_TUM = "odometry.tum"  # what fusion_node would have published on odometry/global

log = logging.getLogger(__name__)


def fusion_config(path: str | Path | None, overrides: Sequence[str] = ()) -> FusionConfig:
    """The fusion_node section of a ROS parameter file, then `key=value` overrides (YAML values)."""
    cfg = load_node_config(FusionConfig, path, FUSION_NODE) if path else FusionConfig()
    values = flatten(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key not in values:
            raise ConfigError(f"--set: unknown fusion parameter '{key}'")
        values[key] = _scalar(raw)
    return from_mapping(FusionConfig, values, "fusion parameters")


def _scalar(raw: str) -> Any:
    """A --set value: a number if it reads as one (YAML 1.1 leaves '1e-6' a string)."""
    try:
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        return yaml.safe_load(raw)


def parse_estimators(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown or not names:
        raise GeolocError(f"unknown estimator {unknown[0] if unknown else text!r}; "
                          f"available: {', '.join(ESTIMATORS)}")  # fmt: skip
    return names


def run_eval(
    bag: str | Path,
    out_dir: str | Path,
    cfg: FusionConfig,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    gnss_outage_s: tuple[float, float] | None = None,
    no_gnss: bool = False,
    progress: bool = True,
    posenet: PoseNetParams | None = None,
    map_localizer: MapLocalizerConfig | None = None,
    prior_sigma_m: float | None = None,
    seed: int = 0,
    fuse: Sequence[str] = (),
) -> dict[str, Any]:
    """Replay, measure, write the report; returns what metrics.json holds.

    With posenet or map_localizer, the map frame is the model's or the map's (its datum
    becomes the fusion's when none is configured), so every TUM file shares one frame.
    `fuse` names visual localizers whose fixes the fusion consumes in the loop (the
    fusion state is their prior, as on the vehicle): "map_localizer", "posenet".
    """
    unknown = [f for f in fuse if f not in FUSABLE]
    if unknown:
        raise ConfigError(f"cannot fuse {unknown[0]!r}; available: {', '.join(FUSABLE)}")
    estimators, fuse, skipped = runnable_estimators(bag, estimators, fuse)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if no_gnss:
        cfg = dataclasses.replace(cfg, start_at_origin=True)
    loc = None
    if "posenet" in estimators or "posenet" in fuse:
        loc = posenet_localizer(bag, posenet or PoseNetParams())
        if cfg.datum:
            loc.bundle.check_area(list(cfg.datum))
        elif loc.bundle.area.get("datum"):
            cfg = dataclasses.replace(cfg, datum=list(loc.bundle.area["datum"]))
    mloc = None
    if "map_localizer" in estimators or "map_localizer" in fuse:
        mloc, cfg = _map_localizer(map_localizer, cfg)
    sources = []
    if "map_localizer" in fuse:
        from geoloc_ros.eval.sources import MapLocalizerSource  # noqa: PLC0415

        sources.append(MapLocalizerSource(mloc, map_localizer))
    if "posenet" in fuse:
        from geoloc_ros.eval.sources import PoseNetSource  # noqa: PLC0415

        # a PoseNetNodeConfig (posenet_node's YAML) also carries the frame-rate budget
        sources.append(PoseNetSource(loc, max_rate_hz=getattr(posenet, "max_rate_hz", 0.0)))
    res = replay_fusion(bag, cfg, gnss_outage_s, no_gnss, progress, sources)
    ltp = LocalTangentPlane(*res.datum) if res.datum else None
    trajs: dict[str, Trajectory] = {}
    if "fusion" in estimators:
        trajs["fusion"] = res.fusion_trajectory()
    if "gnss" in estimators and res.fixes_enu:
        trajs["gnss"] = res.gnss_trajectory()
    pn = None
    if "posenet" in estimators:
        pn = replay_posenet(bag, loc, progress)
        trajs["posenet"] = pn.trajectory()
    gt, alignment = _ground_truth(res, ltp)
    mrun = None
    if "map_localizer" in estimators:
        from geoloc_ros.eval.map_replay import replay_map_localizer  # noqa: PLC0415

        truth = gt if alignment == "none" else None
        mrun = replay_map_localizer(bag, mloc, map_localizer, truth, prior_sigma_m, seed, progress)
        trajs["map_localizer"] = mrun.trajectory()
    for name, traj in trajs.items():
        traj.write_tum(out / f"{name}.tum")
        if traj.cov_p_3x3 is not None:  # TUM has no covariance: position blocks beside it
            np.save(out / f"{name}.cov_p_3x3.npy", traj.cov_p_3x3, allow_pickle=False)
    if "fusion" in estimators:  # fusion.tum has the keyframes; this, what the node sends
        res.published_trajectory().write_tum(out / PUBLISHED_TUM)
    report: dict[str, Any] = {
        "bag": str(bag),
        "duration_s": res.duration_s,
        "replay_wall_s": res.wall_s,
        "realtime_factor": res.duration_s / res.wall_s if res.wall_s > 0 else None,
        "datum": list(res.datum) if res.datum else None,
        "gnss_outage_s": list(gnss_outage_s) if gnss_outage_s else None,
        "no_gnss": no_gnss,
        "fusion_config": flatten(cfg),
        "ground_truth": None,
        "estimates": {},
        "fusion_counts": res.counts,
        "resets": res.resets,
        "withheld_fixes": res.withheld_fixes,
        "rejections": _rejection_counts(res),
        "fused": {src.input_name: _source_report(src) for src in sources},
        "skipped": skipped,
    }
    errors: dict[str, metrics.Errors] = {}
    if gt is not None and len(gt) > 1:
        gt.write_tum(out / "ground_truth.tum")
        report["ground_truth"] = {"poses": len(gt), "alignment": alignment}
        for name, traj in trajs.items():
            if len(traj):
                errors[name] = metrics.align(traj, gt, alignment)
    for name, traj in trajs.items():
        report["estimates"][name] = _estimate_report(name, traj, errors, res)
    if pn is not None:
        report["estimates"]["posenet"].update(posenet_metrics(pn, errors.get("posenet")))
    if mrun is not None:
        from geoloc_ros.eval.map_replay import map_localizer_metrics  # noqa: PLC0415

        truth = gt if alignment == "none" else None
        report["estimates"]["map_localizer"].update(
            map_localizer_metrics(mrun, truth, mloc.bundle.calibration)
        )
        report["map_localizer"] = {"map": map_localizer.map, "prior_sigma_m": prior_sigma_m,
                                   "seed": seed, "yaw_bins": map_localizer.yaw_bins,
                                   "window_m": map_localizer.window_m}  # fmt: skip
    if "fusion" in trajs and len(trajs["fusion"]):
        fused = trajs["fusion"]
        report["estimates"]["fusion"]["final_position_m"] = fused.p_m[-1].tolist()
        report["estimates"]["fusion"]["accepted_fix_residual_h_m"] = _fix_residuals(res, fused)
    _write_rejections(out / "rejections.csv", res)
    _plots(out, res, trajs, gt, errors)
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=json_default))
    return report


NEEDS = {
    "fusion": (topics.IMU,),
    "gnss": (topics.FIX,),
    "posenet": (topics.IMAGE,),
    "map_localizer": (topics.IMAGE, topics.CAMERA_INFO),
}
"""Bag topics each estimator (or fused localizer) cannot run without."""


def runnable_estimators(
    bag: str | Path, estimators: Sequence[str], fuse: Sequence[str]
) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The estimators and fused localizers the bag can feed, and what the others miss;
    the skipped ones are logged by name with their missing topics."""
    from geoloc_ros.io.bag import BagReader  # noqa: PLC0415

    with BagReader(bag) as reader:
        present = {t.topic for t in reader.topics()}
    skipped: dict[str, list[str]] = {}
    for name in dict.fromkeys([*estimators, *fuse]):
        lack = [t for t in NEEDS[name] if t not in present]
        if lack:
            skipped[name] = lack
    keep = [e for e in estimators if e not in skipped]
    keep_fuse = [f for f in fuse if f not in skipped]
    if not keep:
        raise BagError(f"{bag}: no estimator can run: " + "; ".join(
            f"{k} needs {', '.join(v)}" for k, v in skipped.items()))  # fmt: skip
    for name, lack in skipped.items():
        log.warning("%s: the bag has no %s; running %s", name, ", ".join(lack),
                    ", ".join(keep + [f"fused {f}" for f in keep_fuse]))  # fmt: skip
    return keep, keep_fuse, skipped


def _source_report(src) -> dict[str, Any]:
    lat = src.log.latency_ms
    return {"fixes_to_fusion": len(src.log.fixes),
            "withheld": dict(src.log.withheld),
            "latency_ms_median": float(np.median(lat)) if lat else None}  # fmt: skip


def _map_localizer(mcfg: MapLocalizerConfig | None, cfg: FusionConfig):
    """The map localizer, and the fusion config in the map's frame (its datum)."""
    from geoloc_ros.neuralmap.localizer import MapLocalizer  # noqa: PLC0415

    if mcfg is None or not mcfg.map:
        raise ConfigError("the map_localizer estimator needs a map folder (--map)")
    loc = MapLocalizer(mcfg.params())
    datum = list(loc.store.datum)
    if cfg.datum and not np.allclose(list(cfg.datum), datum, atol=1e-9):
        raise ConfigError(f"the fusion datum {list(cfg.datum)} is not the map's {datum}: "
                          "leave fusion_node.datum empty or build the map there")  # fmt: skip
    return loc, dataclasses.replace(cfg, datum=datum)


def _ground_truth(
    res: ReplayResult, ltp: LocalTangentPlane | None
) -> tuple[Trajectory | None, str]:
    """Ground truth in the map frame, and the alignment its comparison needs."""
    if not res.ground_truth:
        return None, "none"
    in_earth = res.ground_truth[0].frame_id == "earth"
    if in_earth and ltp is not None:
        return Trajectory.ground_truth(res.ground_truth, ltp), "none"
    if in_earth:  # no datum (no GNSS): a tangent plane at the first true pose, origin-aligned
        from geoloc_ros.geo.wgs84 import geodetic_from_ecef  # noqa: PLC0415

        lat, lon, alt = geodetic_from_ecef(res.ground_truth[0].p_m)
        local = LocalTangentPlane(float(lat), float(lon), float(alt))
        return Trajectory.ground_truth(res.ground_truth, local), "origin"
    return Trajectory.ground_truth(res.ground_truth, None), "se3"  # a local frame of its own


def _estimate_report(
    name: str, traj: Trajectory, errors: dict[str, metrics.Errors], res: ReplayResult
) -> dict[str, Any]:
    rep: dict[str, Any] = {"poses": len(traj), "tum": f"{name}.tum"}
    e = errors.get(name)
    if e is None or len(e.est) == 0:
        return rep
    rep["ape_horizontal_m"] = metrics.ape(e, horizontal=True)
    rep["ape_3d_m"] = metrics.ape(e, horizontal=False)
    rep["max_horizontal_in_outage_m"] = metrics.window_max(e, res.outage_s)
    if name != "gnss":  # raw fixes carry no heading
        rep["yaw_rmse_deg"] = metrics.yaw_rmse_deg(e)
    if name == "fusion":
        if "gnss" in errors:
            rep["multipath_response"] = metrics.jump_response(e, errors["gnss"])
        rep["nees_position"] = metrics.nees(e)
    return rep


def _fix_residuals(res: ReplayResult, fused: Trajectory) -> dict[str, float] | None:
    """Horizontal distance from the fused track to the fixes the gate accepted (no truth)."""
    accepted = np.array([d.t_s for d in res.decisions if d.accepted and d.reason == ""])
    if not res.fixes_enu or not len(accepted) or len(fused) < 2:
        return None
    t_fix = np.array([f[0] for f in res.fixes_enu]) - res.latency_s
    p_fix = np.array([f[1] for f in res.fixes_enu])
    keep = np.isin(np.round(t_fix, 6), np.round(accepted, 6))
    track, ok = fused.at(t_fix[keep])
    d = np.linalg.norm(track.p_m[:, :2] - p_fix[keep][ok][:, :2], axis=1)
    if not len(d):
        return None
    return {"rms": float(np.sqrt(np.mean(d**2))), "max": float(d.max()), "fixes": len(d)}


def _rejection_counts(res: ReplayResult) -> dict[str, int]:
    counts = Counter(f"{r.input}/{r.reason}" for r in res.rejections)
    counts.update(f"fix/{d.reason}" for d in res.decisions if not d.accepted)
    return dict(sorted(counts.items()))


DECISION_MESSAGES = {  # visual-fix refusals that are not a gate
    "standing_repeat": "repeats a view its source gave within visual_standstill_period_s",
}


def _write_rejections(path: Path, res: ReplayResult) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "input", "reason", "nis", "message"])
        for r in res.rejections:
            w.writerow([f"{r.t_s:.6f}", r.input, r.reason, "", r.message])
        for d in res.decisions:
            if not d.accepted:  # GNSS "gate"; visual "pose3_gate", "pose6_gate", "standing_repeat"
                visual = d.reason.startswith("pose") or d.reason in DECISION_MESSAGES
                msg = DECISION_MESSAGES.get(d.reason, "Mahalanobis gate")
                w.writerow([f"{d.t_s:.6f}", "pose_fix" if visual else "fix", d.reason,
                            f"{d.nis:.2f}", msg])  # fmt: skip


def _plots(out: Path, res: ReplayResult, trajs, gt, errors) -> None:
    gated_t = np.array([d.t_s for d in res.decisions if not d.accepted and d.reason == "gate"])
    rejected_p = np.zeros((0, 3))
    if "gnss" in trajs and len(gated_t):
        g = trajs["gnss"]
        # decisions carry the latency-corrected time; match each to its nearest raw fix
        idx = np.abs(g.t_s[:, None] - gated_t[None, :] - res.latency_s).argmin(0)
        rejected_p = g.p_m[idx]
    outage_p = None
    if res.outage_s is not None and gt is not None:
        m = (gt.t_s >= res.outage_s[0]) & (gt.t_s < res.outage_s[1])
        outage_p = gt.p_m[m]
    plots.plot_trajectories(
        out / "trajectories.png",
        gt.p_m if gt is not None else None,
        {k: v.p_m for k, v in trajs.items()},
        rejected_p,
        outage_p,
    )
    if errors:
        plots.plot_errors(out / "errors.png", errors, res.bag_start_s, res.outage_s, gated_t)


def json_default(o: Any) -> Any:
    """json.dumps `default` for report values: numpy scalars and arrays, paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
