"""The eval report's figures: where the estimates went, and how wrong they were when."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geoloc_ros.eval.metrics import Errors


def _pyplot():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


_POINTS = dict(ls="", marker=".", ms=3, color="tab:orange", alpha=0.7)


def _is_raw(name: str) -> bool:
    """Raw GNSS fixes are drawn as points: a line would cross the outage as if measured."""
    return name.lower().startswith("gnss")


def plot_trajectories(
    path: Path,
    gt_p_m: np.ndarray | None,
    estimates: dict[str, np.ndarray],
    rejected_p_m: np.ndarray,
    outage_p_m: np.ndarray | None = None,
    background: tuple[np.ndarray, tuple[float, float, float, float]] | None = None,
) -> None:
    """Top view in the map frame: truth, each estimate, gated fixes as red crosses;
    `background` = (image north row first, (west, east, south, north) in metres)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    if background is not None:
        ax.imshow(background[0], extent=background[1], origin="upper", alpha=0.75, zorder=-1,
                  cmap="gray" if background[0].ndim == 2 else None)  # fmt: skip
    if gt_p_m is not None and len(gt_p_m):
        ax.plot(gt_p_m[:, 0], gt_p_m[:, 1], "k-", lw=2.0, label="ground truth", zorder=1)
    for name, p in estimates.items():
        kw = _POINTS if _is_raw(name) else dict(lw=1.2)
        ax.plot(p[:, 0], p[:, 1], label=name, zorder=2, **kw)
    if outage_p_m is not None and len(outage_p_m):
        ax.plot(outage_p_m[:, 0], outage_p_m[:, 1], lw=6, color="tab:gray", alpha=0.3,
                label="GNSS withheld", zorder=0)  # fmt: skip
    if len(rejected_p_m):
        ax.plot(rejected_p_m[:, 0], rejected_p_m[:, 1], "x", color="red", ms=6,
                label=f"rejected fixes ({len(rejected_p_m)})", zorder=3)  # fmt: skip
    ax.set(xlabel="east [m]", ylabel="north [m]", title="trajectories in the map frame (ENU)")
    if background is not None and gt_p_m is not None and len(gt_p_m):
        lo, hi = gt_p_m[:, :2].min(0) - 40.0, gt_p_m[:, :2].max(0) + 40.0
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        ax.set_aspect("equal", adjustable="box")
    else:
        ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_errors(
    path: Path,
    errors: dict[str, Errors],
    t0_s: float,
    outage_s: tuple[float, float] | None,
    rejected_t_s: np.ndarray,
    bands: tuple[str, ...] | None = None,
) -> None:
    """Horizontal error over time; 2-sigma bands (of `bands`, default every estimate with
    covariances); outage shaded; rejections as red ticks."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name, e in errors.items():
        t = e.t_s - t0_s
        kw = dict(ls="", marker=".", ms=2) if _is_raw(name) else dict(lw=1.2)
        ax.plot(t, e.err_h_m, label=f"{name} (RMSE {np.sqrt(np.mean(e.err_h_m**2)):.2f} m)", **kw)
        cov = e.est.cov_p_3x3
        if cov is not None and (bands is None or name in bands):
            sigma_h = np.sqrt(cov[:, 0, 0] + cov[:, 1, 1])
            ax.fill_between(t, 0, 2 * sigma_h, alpha=0.2, label=f"{name} 2-sigma (horizontal)")
    if outage_s is not None:
        ax.axvspan(outage_s[0] - t0_s, outage_s[1] - t0_s, color="gray", alpha=0.2,
                   label="GNSS withheld")  # fmt: skip
    for i, t in enumerate(rejected_t_s - t0_s):
        ax.axvline(t, color="red", lw=0.5, alpha=0.5, label="rejected fix" if i == 0 else None)
    ax.set(xlabel="time since bag start [s]", ylabel="horizontal error [m]",
           title="horizontal error against ground truth")  # fmt: skip
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
