"""Fusion latency and throughput, through fusion_node's own message handler.

Three measurements in one run, on this machine:
- per-message latency of FusionNode.on_message (rclpy in-process, outputs published,
  no DDS transport) over a simulated car drive: IMU samples without a keyframe, and
  IMU samples that close a keyframe (the smoother update);
- offline eval speed (FusionPipeline replay) of the comma2k19 bag, if the data exists;
- resident memory every simulated minute over a long drive replayed at full speed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.eval.replay import BAG_INPUTS
from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.io.bag import BagReader

PATH_PUBLISH_HZ = 1.0  # fusion_node's; not imported from it, that would import rclpy

SHARED_COMMA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "comma2k19_seg40"
CAR_CONFIG = Path(__file__).resolve().parents[2] / "config" / "car.yaml"
COMMA_CONFIG = Path(__file__).resolve().parents[2] / "config" / "datasets" / "comma2k19.yaml"


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def simulate(world_dir: Path, out: Path, duration_s: float, seed: int) -> Path:
    """A camera-less car drive (IMU, GNSS with multipath, wheel speed)."""
    from geoloc_ros.sim.drive import DriveConfig, simulate_drive  # noqa: PLC0415
    from geoloc_ros.sim.world import World  # noqa: PLC0415

    cfg = DriveConfig(platform="car", duration_s=duration_s, seed=seed, camera_rate_hz=0.0)
    simulate_drive(World.load(world_dir), cfg, out, progress=False)
    return out


def _make_handler(config: Path) -> tuple[Any, Any, str, Any]:
    """FusionNode.on_message if rclpy is importable, else FusionPipeline.handle.

    The fourth item is the node's path timer callback (None without rclpy)."""
    try:
        from geoloc_ros.nodes.fusion_node import in_process  # noqa: PLC0415  (imports rclpy)
    except ImportError:
        from geoloc_ros.config import load_node_config  # noqa: PLC0415
        from geoloc_ros.fusion.pipeline import FusionPipeline  # noqa: PLC0415

        pipe = FusionPipeline(load_node_config(FusionConfig, config, "fusion_node"))

        def handle(name, msg):
            with contextlib.suppress(InputRejected):  # rejections are part of the data
                pipe.handle(name, msg)

        return handle, pipe, "FusionPipeline.handle (rclpy not importable)", None
    node = in_process(str(config))
    path = "FusionNode.on_message (rclpy, in-process)"
    return node.on_message, node.pipeline, path, node.publish_path


def node_latency(bag: Path, config: Path = CAR_CONFIG) -> dict[str, Any]:
    """Per-message cost of the node's handler; keyframe closings are timed separately.

    The path timer does not fire without spinning, so it is called here at its own rate
    (PATH_PUBLISH_HZ of drive time) and timed on its own: it delays whatever message
    arrives while it runs, but it is not part of any message's handling."""
    handle, pipe, path, publish_path = _make_handler(config)
    imu_ms, kf_ms, other_ms, path_ms = [], [], [], []
    next_path_s = -np.inf
    with BagReader(bag) as reader:
        msgs = [(BAG_INPUTS[m.topic], m.msg) for m in reader.messages(list(BAG_INPUTS))]
    gc.collect()
    for name, msg in msgs:
        k_before = pipe.estimator._k
        t0 = time.perf_counter()
        handle(name, msg)
        dt_ms = (time.perf_counter() - t0) * 1e3
        if name != "imu":
            other_ms.append(dt_ms)
        elif pipe.estimator._k != k_before and pipe.estimator.initialized:
            kf_ms.append(dt_ms)
        else:
            imu_ms.append(dt_ms)
        state = pipe.output_state
        if publish_path is not None and state is not None and state.t_s >= next_path_s:
            next_path_s = state.t_s + 1.0 / PATH_PUBLISH_HZ
            t0 = time.perf_counter()
            publish_path()
            path_ms.append((time.perf_counter() - t0) * 1e3)
    imu, kf, other, paths = (np.asarray(x) for x in (imu_ms, kf_ms, other_ms, path_ms))
    return {
        "code_path": path,
        "messages": len(msgs),
        "imu_sample_ms": _stats(imu),
        "keyframe_update_ms": _stats(kf),
        "other_inputs_ms": _stats(other),
        "path_publish_ms": _stats(paths),
        "keyframes": len(kf),
    }


def _stats(a: np.ndarray) -> dict[str, float]:
    if not len(a):
        return {}
    q = np.percentile(a, [50, 95, 99])
    return {"n": len(a), "median": q[0], "p95": q[1], "p99": q[2], "max": float(a.max())}


def eval_speed(comma_dir: Path = SHARED_COMMA, rounds: int = 2) -> dict[str, Any] | None:
    """geoloc eval's replay of the 60 s comma2k19 segment: seconds of data per second,
    as `geoloc eval` runs it (bag decoded in a reader process where there is a second
    core) and, alternating with it, all in this process; the best of `rounds` each."""
    from geoloc_ros.eval.readahead import reader_process_available  # noqa: PLC0415
    from geoloc_ros.eval.replay import replay_fusion  # noqa: PLC0415
    from geoloc_ros.eval.report import fusion_config  # noqa: PLC0415
    from geoloc_ros.io.importers import IMPORTERS  # noqa: PLC0415

    if not comma_dir.is_dir():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "comma2k19.mcap"
        IMPORTERS["comma2k19"]().run(comma_dir, bag, progress=False)
        cfg = fusion_config(COMMA_CONFIG)
        walls: dict[bool | None, list[float]] = {None: [], False: []}
        for _ in range(rounds):
            for mode, w in walls.items():
                t0 = time.perf_counter()
                res = replay_fusion(bag, cfg, progress=False, reader_process=mode)
                w.append(time.perf_counter() - t0)
    wall, inline = min(walls[None]), min(walls[False])
    return {
        "data_s": res.duration_s, "wall_s": wall, "realtime_factor": res.duration_s / wall,
        "reader_process": reader_process_available(),
        "in_process_wall_s": inline, "in_process_realtime_factor": res.duration_s / inline,
    }  # fmt: skip


def memory_over_drive(bag: Path, config: Path = CAR_CONFIG) -> dict[str, Any]:
    """RSS after every simulated minute of a long drive replayed through the pipeline."""
    from geoloc_ros.config import load_node_config  # noqa: PLC0415
    from geoloc_ros.fusion.pipeline import FusionPipeline  # noqa: PLC0415

    pipe = FusionPipeline(load_node_config(FusionConfig, config, "fusion_node"))
    rss, t_data = [], []
    t_next = None
    t0 = time.perf_counter()
    with BagReader(bag) as reader:
        for m in reader.messages(list(BAG_INPUTS)):
            with contextlib.suppress(InputRejected):  # rejections are part of the data
                pipe.handle(BAG_INPUTS[m.topic], m.msg)
            pipe.take_decisions()  # what the node does each diagnostics period
            if t_next is None:
                t_next = m.t_log_s
            if m.t_log_s >= t_next:
                rss.append(_rss_mb())
                t_data.append(m.t_log_s)
                t_next += 60.0
    wall = time.perf_counter() - t0
    minutes = (np.asarray(t_data) - t_data[0]) / 60.0
    rss = np.asarray(rss)
    late = minutes >= 5.0  # after warm-up: the window fills within the first lag seconds
    slope = float(np.polyfit(minutes[late], rss[late], 1)[0] * 60.0) if late.sum() > 2 else None
    return {
        "data_min": float(minutes[-1]),
        "wall_s": wall,
        "rss_mb": rss.round(1).tolist(),
        "rss_mb_at_5_min": float(rss[minutes >= 5.0][0]) if late.any() else None,
        "rss_mb_at_end": float(rss[-1]),
        "rss_slope_mb_per_hour_after_5_min": slope,
    }


def run(world_dir: Path, out: Path, latency_s: float, memory_s: float, seed: int) -> dict:
    """All three measurements; JSON to `out`."""
    result: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "config": str(CAR_CONFIG.name),
    }
    with tempfile.TemporaryDirectory() as tmp:
        bag = simulate(world_dir, Path(tmp) / "latency.mcap", latency_s, seed)
        result["node_latency"] = node_latency(bag)
        result["node_latency"]["drive_s"] = latency_s
        result["eval_comma2k19"] = eval_speed()
        if memory_s > 0:
            long_bag = simulate(world_dir, Path(tmp) / "memory.mcap", memory_s, seed + 1)
            result["memory"] = memory_over_drive(long_bag)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    return result
