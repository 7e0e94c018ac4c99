"""`geoloc demo`: the whole pipeline on a drive the project simulates, as one table.

World, drive and map come from the cache (made on the first run); then every row of
the table replays the bag offline through the same objects the nodes run, and the
report folder gets the table, one TUM file per row, ground truth and two figures.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoloc_ros.config import load_node_config, node_section, platform_config, read_yaml
from geoloc_ros.demo import report
from geoloc_ros.demo.rows import ROWS, RowInputs, RowResult, run_row, runnable, score
from geoloc_ros.demo.scenario import DemoInputs, DemoScenario, prepare
from geoloc_ros.errors import ConfigError, GeolocError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """Where things are and which models run (defaults: the shipped ones)."""

    out: Path
    cache: Path = Path("out/cache")
    config: Path | None = None  # default config/<platform>.yaml
    map_model: Path | None = None
    posenet_model: Path | None = None
    progress: bool = True
    live: bool = False  # also replay over DDS into the node processes and compare
    live_rate: float = 1.0  # bag time / wall time of the live replay
    live_domain_id: int | None = None  # ROS_DOMAIN_ID of the live run (default: the env's)
    jobs: int = 0  # rows replayed at once, one process each; 0 = one per core, at most 4


@dataclass
class DemoResult:
    out: Path
    results: list[RowResult]
    skipped: dict[str, list[str]]
    summary: dict[str, Any]


def run_demo(scn: DemoScenario, opt: DemoOptions) -> DemoResult:
    """Prepare the inputs, replay every row that can run, score, write the report."""
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    cfg_path = opt.config or platform_config(scn.platform)
    fusion, mcfg, pcfg = _configs(cfg_path, scn.platform, opt)
    t0 = time.perf_counter()
    inputs = prepare(scn, opt.cache, Path(mcfg.model), opt.progress)
    stages["inputs"] = time.perf_counter() - t0
    out = opt.out
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped = _rows(inputs, pcfg is not None)
    from geoloc_ros.neuralmap.tiles import MapStore  # noqa: PLC0415

    store = MapStore(inputs.map_dir)
    datum = list(store.datum)
    inp = RowInputs(inputs.bag, scn.outage_s, dataclasses.replace(fusion, datum=datum), pcfg,
                    dataclasses.replace(mcfg, map=str(inputs.map_dir)))  # fmt: skip
    results = run_rows(rows, inp, out, opt.jobs or min(os.cpu_count() or 1, 4), opt.progress)
    stages.update({r.row.key: r.wall_s for r in results})
    gt, bag_t0, outage_abs = _truth(out, results, scn, inputs.bag)
    for r in results:
        score(r, gt, outage_abs)
    t0 = time.perf_counter()
    _figures(out, results, gt, bag_t0, outage_abs, store, fusion.gnss_latency_s)
    store.close()
    stages["report"] = time.perf_counter() - t0
    live = None
    if opt.live:
        live = _live(scn, opt, inputs, cfg_path, datum, inp, results, gt, outage_abs)
        stages["live"] = live["wall_s"]
    summary = {
        "platform": scn.platform, "world": scn.world_name, "seed": scn.seed,
        "duration_s": scn.duration_s, "outage_s": list(scn.outage_s), "bag": str(inputs.bag),
        "map": str(inputs.map_dir), "config": str(cfg_path), "made": list(inputs.made),
        "wall_s": time.perf_counter() - t_start, "stage_wall_s": stages, "live": live,
    }  # fmt: skip
    report.write_report(out, results, summary, skipped)
    return DemoResult(out, results, skipped, summary)


def run_rows(rows, inp: RowInputs, out: Path, jobs: int, progress: bool) -> list[RowResult]:
    """Every row, in table order; with jobs > 1 in worker processes (rows are independent
    replays of one bag), the heaviest first, torch on one thread each."""
    if jobs <= 1 or len(rows) <= 1:
        results = []
        for row in rows:
            log.info("row %s (%s)", row.key, row.label)
            results.append(run_row(row, inp, out, progress))
        return results
    import multiprocessing  # noqa: PLC0415
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    one = dataclasses.replace(inp, map_localizer=dataclasses.replace(inp.map_localizer, threads=1))
    heavy_first = sorted(rows, key=lambda r: -len(r.fuse or ()) - 2 * (r.fuse is not None))
    done: dict[str, RowResult] = {}
    ctx = multiprocessing.get_context("spawn")  # no forked torch or GTSAM state
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_one_thread) as pool:
        futures = {r.key: pool.submit(run_row, r, one, out, False) for r in heavy_first}
        for key, fut in futures.items():
            done[key] = fut.result()
            if progress:
                print(f"row {key}: {done[key].wall_s:.0f} s", file=sys.stderr)
    return [done[r.key] for r in rows]


def _one_thread() -> None:
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)


def _live(scn, opt, inputs, cfg_path, datum, inp, results, gt, outage_abs) -> dict[str, Any]:
    """The full pipeline over DDS (nodes.live), scored like the rows, next to offline "all"."""
    from geoloc_ros.demo.rows import ROWS, RowResult  # noqa: PLC0415
    from geoloc_ros.nodes.live import node_processes, run_live  # noqa: PLC0415

    offline = next(r for r in results if r.row.fuse and "map_localizer" in r.row.fuse
                   and ("posenet" in r.row.fuse) == (inp.posenet is not None))  # fmt: skip
    pmodel = None if inp.posenet is None else inp.posenet.model
    procs = node_processes(opt.out / "live", cfg_path, datum, inputs.map_dir,
                           inp.map_localizer.model, pmodel)  # fmt: skip
    run = run_live(inputs.bag, opt.out / "live", procs, opt.live_rate, opt.live_domain_id,
                   opt.progress)  # fmt: skip
    run.traj.write_tum(opt.out / "live.tum")
    res = RowResult(ROWS[-1], run.traj, run.wall_s)
    score(res, gt, outage_abs)
    diff = {k: _rel(res.scores[k], offline.scores[k])
            for k in ("rmse_h_m", "outage_max_h_m", "yaw_rmse_deg")}  # fmt: skip
    c = offline.report["fusion_counts"] if offline.report else {}
    return {"scores": res.scores, "offline_row": offline.row.key, "relative_difference": diff,
            "received": run.counts, "nodes": run.nodes, "rate": opt.live_rate,
            "wall_s": run.wall_s, "bag": str(run.bag), "player_cpu_s": run.player_cpu_s,
            "why": live_summary(run.diagnostics),
            "offline_fixes_used": c.get("pose3_used", 0) + c.get("pose6_used", 0)}  # fmt: skip


def live_summary(diag: dict[str, dict[str, str]]) -> dict[str, float]:
    """What explains live against offline: IMU the fusion got, fixes it used, frames the
    busy localizers dropped (their last /diagnostics values)."""
    fusion = diag.get("fusion_node: fusion", {})
    imu = diag.get("fusion_node: imu", {})
    out = {
        "imu_received": imu.get("received"),
        "imu_gaps": fusion.get("imu_gaps"),
        "imu_missing_s": fusion.get("imu_missing_s"),
        "fixes_used": sum(int(fusion.get(f"count/{k}_used", 0)) for k in ("pose3", "pose6")),
        "map_frames_dropped": diag.get("map_localizer_node: map_localizer", {}).get("dropped"),
        "posenet_frames_dropped": diag.get("posenet_node: posenet", {}).get("dropped"),
    }
    return {k: float(v) for k, v in out.items() if v is not None}


def _rel(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else (a - b) / b


def _configs(path: Path, platform: str, opt: DemoOptions):
    """fusion_node, map_localizer_node and posenet_node sections of the platform's YAML;
    PoseNet is None where the file names no model and none ships for the platform."""
    from geoloc_ros.eval.report import fusion_config  # noqa: PLC0415
    from geoloc_ros.neuralmap.inputs import MapLocalizerConfig  # noqa: PLC0415
    from geoloc_ros.neuralmap.localizer import shipped_model_dir  # noqa: PLC0415
    from geoloc_ros.posenet.localizer import PoseNetNodeConfig  # noqa: PLC0415

    fusion = fusion_config(path)
    mcfg = load_node_config(MapLocalizerConfig, path, "map_localizer_node")
    if mcfg.platform != platform:
        raise ConfigError(f"{path}: map_localizer_node.platform is {mcfg.platform}, not {platform}")
    model = opt.map_model or mcfg.model or shipped_model_dir(platform)
    mcfg = dataclasses.replace(mcfg, model=str(model))
    pcfg = None
    if node_section(read_yaml(path), "posenet_node", str(path)) is not None:
        node = load_node_config(PoseNetNodeConfig, path, "posenet_node")
        model = str(opt.posenet_model or node.model)
        if node.platform != platform:
            raise ConfigError(f"{path}: posenet_node.platform is {node.platform}, not {platform}")
        from geoloc_ros.posenet.localizer import shipped_model_dir as posenet_dir  # noqa: PLC0415

        if model or (posenet_dir(platform) / "posenet.json").is_file():
            pcfg = dataclasses.replace(node, model=model)
    return fusion, mcfg, pcfg


def _rows(inputs: DemoInputs, have_posenet: bool):
    from geoloc_ros.io.bag import BagReader  # noqa: PLC0415

    with BagReader(inputs.bag) as bag:
        present = {t.topic for t in bag.topics()}
    rows, skipped = runnable(ROWS, present)
    if not have_posenet:
        for r in [r for r in rows if r.fuse and "posenet" in r.fuse]:
            rows.remove(r)
            skipped[r.key] = ["PoseNet model for this platform (posenet_node.model)"]
    if not any(r.fuse is not None for r in rows):
        raise GeolocError(f"{inputs.bag}: no fusion row can run (missing {skipped})")
    return rows, skipped


def _truth(out: Path, results: list[RowResult], scn: DemoScenario, bag: Path):
    """Ground truth in the map frame (from the first fusion row's run), the bag's start
    and the outage in absolute stamps."""
    from geoloc_ros.eval.trajectory import Trajectory  # noqa: PLC0415
    from geoloc_ros.io.bag import BagReader  # noqa: PLC0415

    first = next(r for r in results if r.report is not None)
    src = out / "runs" / first.row.key / "ground_truth.tum"
    if not src.is_file():
        raise GeolocError("the demo bag has no ground truth (/ground_truth/odom)")
    shutil.copyfile(src, out / "ground_truth.tum")
    with BagReader(bag) as reader:
        bag_t0 = reader.start_s
    a, d = scn.outage_s
    return Trajectory.from_tum(src), bag_t0, (bag_t0 + a, bag_t0 + a + d)


def _figures(out, results, gt, bag_t0, outage_abs, store, latency_s) -> None:
    from geoloc_ros.eval.trajectory import Trajectory  # noqa: PLC0415

    rgb, res, x_west, y_south = store.ortho_rgb(1600)
    h, w = rgb.shape[:2]
    ortho = (rgb, (x_west, x_west + w * res, y_south, y_south + h * res))
    last = next(r for r in reversed(results) if r.report is not None)
    run_dir = out / "runs" / last.row.key
    gnss = Trajectory.from_tum(run_dir / "gnss.tum")
    rejected_t, rejected_p = report.rejected_fixes(run_dir, gnss, latency_s)
    report.write_figures(out, results, gt, outage_abs, bag_t0, ortho, rejected_p, rejected_t)


__all__ = ["DemoOptions", "DemoResult", "DemoScenario", "GeolocError", "run_demo"]
