"""The demo's outputs: the table, metrics.json, two figures and report.md that shows them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from geoloc_ros.demo.rows import RowResult
from geoloc_ros.eval import metrics, plots
from geoloc_ros.eval.report import json_default
from geoloc_ros.eval.trajectory import Trajectory


def _f(v: Any, fmt: str = ".2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def table_rows(results: list[RowResult]) -> list[list[str]]:
    head = ["estimate", "RMSE horiz [m]", "max in outage [m]", "yaw RMSE [deg]",
            "visual fixes used/gated/withheld"]  # fmt: skip
    body = [[r.row.label, _f(r.scores["rmse_h_m"]), _f(r.scores["outage_max_h_m"]),
             _f(r.scores["yaw_rmse_deg"]), visual_fixes(r)] for r in results]  # fmt: skip
    return [head, *body]


def visual_fixes(r: RowResult) -> str:
    """What the localizers gave this row's fusion: used, gated by it, withheld by the nodes'
    own rules (multi-modal, too uncertain); '-' for rows without localizers."""
    if not r.row.fuse or r.report is None:
        return "-"
    c = r.report["fusion_counts"]
    used = c.get("pose3_used", 0) + c.get("pose6_used", 0)
    gated = c.get("pose3_gated", 0) + c.get("pose6_gated", 0)
    held = sum(sum(f["withheld"].values()) for f in r.report["fused"].values())
    return f"{used}/{gated}/{held}"


def format_table(results: list[RowResult]) -> str:
    rows = table_rows(results)
    w = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    lines = ["".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r))
             for r in rows]  # fmt: skip
    return "\n".join(lines)


def markdown_table(results: list[RowResult]) -> str:
    rows = table_rows(results)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def format_live(live: dict[str, Any]) -> str:
    """Live (over DDS) next to the offline row it reruns, and what happened to the nodes."""
    sc, d = live["scores"], live["relative_difference"]
    pct = {k: "-" if v is None else f"{100 * v:+.0f} %" for k, v in d.items()}
    lines = [
        f"live over DDS ({live['rate']:g}x): RMSE {_f(sc['rmse_h_m'])} m ({pct['rmse_h_m']}), "
        f"max in outage {_f(sc['outage_max_h_m'])} m ({pct['outage_max_h_m']}), "
        f"yaw RMSE {_f(sc['yaw_rmse_deg'])} deg ({pct['yaw_rmse_deg']}) against offline "
        f"'{live['offline_row']}'",
        "received: " + ", ".join(f"{k} {v}" for k, v in live["received"].items()),
    ]
    why = {k: f"{v:.2f}" if k == "imu_missing_s" else f"{v:.0f}"
           for k, v in live.get("why", {}).items()}  # fmt: skip
    if why:
        w = lambda k: why.get(k, "?")  # noqa: E731
        lines.append(
            f"fusion got {w('imu_received')} IMU samples ({w('imu_gaps')} gaps, "
            f"{w('imu_missing_s')} s missing) and used {w('fixes_used')} visual fixes (offline "
            f"{live.get('offline_fixes_used', '?')}); frames the busy localizers dropped: "
            f"map {w('map_frames_dropped')}, PoseNet {w('posenet_frames_dropped')}"
        )
    cpu = {name: n.get("cpu_s") for name, n in live["nodes"].items()}
    cpu["player + recorder"] = live.get("player_cpu_s")
    if any(v is not None for v in cpu.values()):
        lines.append(f"CPU seconds over {live['wall_s']:.0f} s wall: " + ", ".join(
            f"{k} {v:.0f}" for k, v in cpu.items() if v is not None))  # fmt: skip
    for name, n in live["nodes"].items():
        if n["died_at_bag_s"] is not None:
            lines.append(f"{name} DIED at {n['died_at_bag_s']:.1f} s of the bag (exit "
                         f"{n['exit_code']}): {' / '.join(n['log_tail'][-2:])}")  # fmt: skip
    return "\n".join(lines)


def rejected_fixes(
    run_dir: Path, gnss: Trajectory, latency_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (N,) and raw positions (N, 3) of the fixes one row's fusion rejected."""
    path = run_dir / "rejections.csv"
    none = (np.zeros(0), np.zeros((0, 3)))
    if not path.is_file() or len(gnss) == 0:
        return none
    with path.open() as f:
        t = np.array([float(r["t_s"]) for r in csv.DictReader(f) if r["input"] == "fix"])
    if not len(t):
        return none
    # decisions carry the latency-corrected stamp; match each to its raw fix
    idx = np.abs(gnss.t_s[:, None] - (t + latency_s)[None, :]).argmin(0)
    return t, gnss.p_m[idx]


def write_figures(
    out: Path,
    results: list[RowResult],
    gt: Trajectory,
    outage_abs: tuple[float, float] | None,
    t0_s: float,
    ortho: tuple[np.ndarray, tuple[float, float, float, float]] | None,
    rejected_p_m: np.ndarray,
    rejected_t_s: np.ndarray,
) -> None:
    """trajectory.png over the orthophoto and errors.png with the full pipeline's band."""
    outage_p = None
    if outage_abs is not None:
        m = (gt.t_s >= outage_abs[0]) & (gt.t_s < outage_abs[1])
        outage_p = gt.p_m[m]
    tracks = {r.row.label: r.traj.p_m for r in results}
    plots.plot_trajectories(out / "trajectory.png", gt.p_m, tracks, rejected_p_m, outage_p, ortho)
    errors = {r.row.label: metrics.align(r.traj, gt) for r in results if len(r.traj)}
    last = results[-1].row.label
    plots.plot_errors(out / "errors.png", errors, t0_s, outage_abs, rejected_t_s, bands=(last,))


def write_report(
    out: Path,
    results: list[RowResult],
    summary: dict[str, Any],
    skipped: dict[str, list[str]],
) -> None:
    """metrics.json (every number) and report.md (table, figures, what ran)."""
    doc = {**summary, "rows": {r.row.key: {"label": r.row.label, **r.scores} for r in results},
           "skipped_rows": skipped}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(doc, indent=2, default=json_default) + "\n")
    lines = [
        f"# geoloc demo: {summary['platform']}, {summary['duration_s']:g} s",
        "",
        f"Simulated {summary['platform']} on the `{summary['world']}` world (seed "
        f"{summary['seed']}), GNSS with multipath bursts and an outage from "
        f"{summary['outage_s'][0]:g} s for {summary['outage_s'][1]:g} s. Each row replays the "
        "same bag; localizers run in the fusion's loop with its state as their prior.",
        "",
        markdown_table(results),
        "",
        "RMSE over each row's own poses; *max in outage*: the largest horizontal error, inside "
        "the outage, of what the row had published last (GNSS only holds its last fix).",
        "",
        "![trajectories over the orthophoto](trajectory.png)",
        "",
        "![horizontal error over time](errors.png)",
        "",
        "## What ran",
        "",
        f"- bag: `{summary['bag']}`; map: `{summary['map']}`",
        f"- made this run: {', '.join(summary['made']) or 'nothing (all reused from the cache)'}",
        f"- wall time: {summary['wall_s']:.0f} s in all; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in summary["stage_wall_s"].items()),
        "- per-row `geoloc eval` reports (metrics, rejections, plots): `runs/<row>/`",
        "- TUM files here: "
        + ", ".join(f"`{r.row.key}.tum`" for r in results)
        + ", `ground_truth.tum`",
    ]
    for key, lack in skipped.items():
        lines.append(f"- row `{key}` skipped: needs {', '.join(lack)}")
    if summary.get("live"):
        lines += ["", "## Live over DDS", "", "```", format_live(summary["live"]), "```", "",
                  "The nodes ran as processes with use_sim_time on the bag replayed with /clock;"
                  " their outputs are in `live/outputs.mcap` and `live.tum`, their logs in "
                  "`live/`."]  # fmt: skip
    (out / "report.md").write_text("\n".join(lines) + "\n")
