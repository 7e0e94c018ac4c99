"""`geoloc eval --compare RUN...`: several eval report folders side by side.

One table row per run and estimate (horizontal RMSE and max, outage max, poses) and one
figure with every run's chosen estimate overlaid on the first run's ground truth, and
its horizontal error over time. Runs must share a map frame to overlay meaningfully;
a run with another datum is refused rather than drawn in the wrong place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoloc_ros.errors import GeolocError


def load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise GeolocError(f"{run_dir} is not a geoloc eval report (no metrics.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GeolocError(f"{path}: not JSON ({exc})") from None


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path,
                 estimate: str = "fusion") -> dict[str, Any]:  # fmt: skip
    """Table of every run's estimates and compare.png of `estimate`; returns compare.json."""
    from geoloc_ros.eval.tum import read_tum  # noqa: PLC0415

    dirs = [Path(d) for d in run_dirs]
    if len(dirs) < 2:
        raise GeolocError("--compare needs at least two report folders")
    runs = {str(d): load_run(d) for d in dirs}
    datums = {json.dumps(r.get("datum")) for r in runs.values()}
    if len(datums) > 1:
        raise GeolocError(f"the runs are in different map frames (datums {sorted(datums)})")
    rows = []
    for name, rep in runs.items():
        for est, e in rep["estimates"].items():
            h = e.get("ape_horizontal_m", {})
            rows.append({"run": name, "estimate": est, "rmse_h_m": h.get("rmse"),
                         "max_h_m": h.get("max"), "poses": e.get("poses"),
                         "outage_max_h_m": e.get("max_horizontal_in_outage_m")})  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tracks = {}
    for d in dirs:
        f = d / f"{estimate}.tum"
        if f.is_file():
            tracks[str(d)] = read_tum(f)
    gt_file = dirs[0] / "ground_truth.tum"
    gt = read_tum(gt_file) if gt_file.is_file() else None
    if tracks:
        _plot(out / "compare.png", tracks, gt, estimate)
    result = {"estimate": estimate, "runs": list(runs), "rows": rows,
              "plotted": list(tracks)}  # fmt: skip
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    return result


def format_rows(rows: list[dict[str, Any]]) -> str:
    def f(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, (int, float)) else "-"

    width = max(len(r["run"]) for r in rows)
    lines = [f"{'run':<{width}}  {'estimate':<14}{'RMSE_h [m]':>11}{'max_h [m]':>11}"
             f"{'outage max':>12}{'poses':>8}"]  # fmt: skip
    for r in rows:
        cells = f"{f(r['rmse_h_m']):>11}{f(r['max_h_m']):>11}{f(r['outage_max_h_m']):>12}"
        lines.append(f"{r['run']:<{width}}  {r['estimate']:<14}{cells}{r['poses'] or 0:>8}")
    return "\n".join(lines)


def _plot(path: Path, tracks: dict, gt, estimate: str) -> None:
    from geoloc_ros.eval.plots import _pyplot  # noqa: PLC0415

    plt = _pyplot()
    fig, (ax, ax_e) = plt.subplots(1, 2, figsize=(13, 5.5))
    if gt is not None:
        ax.plot(gt[1][:, 0], gt[1][:, 1], "k-", lw=2, label="ground truth")
    point_like = estimate in ("gnss", "posenet", "map_localizer")  # single-frame fixes
    for name, (t, p, _) in tracks.items():
        style = dict(ls="", marker=".", ms=3) if point_like else dict(lw=1.2)
        ax.plot(p[:, 0], p[:, 1], label=name, **style)
        if gt is not None and len(gt[0]) > 1:
            ok = (t >= gt[0][0]) & (t <= gt[0][-1])
            ref = np.stack([np.interp(t[ok], gt[0], gt[1][:, k]) for k in (0, 1)], 1)
            err = np.linalg.norm(p[ok, :2] - ref, axis=1)
            ax_e.plot(t[ok] - gt[0][0], err, lw=1, label=name)
    ax.set(xlabel="east [m]", ylabel="north [m]", title=f"{estimate}: runs overlaid")
    ax.axis("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax_e.set(xlabel="time [s]", ylabel="horizontal error [m]", title="error against the truth")
    ax_e.grid(alpha=0.3)
    ax_e.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
