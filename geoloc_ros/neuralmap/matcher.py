"""Exhaustive (x, y, yaw) matching of a BEV template against a neural-map window.

The BEV is rotated into K north-up templates (one per yaw bin), each correlated with
the map window by FFT; scores over all positions and yaws form one log-softmax volume.
Volume index (k, r, c): yaw bin k (yaw = 2 pi k / K, ENU, counter-clockwise from
east), base_link on map-window cell (r + h, c + h) with h = T // 2 the template's
half size. Map windows are north-up: row 0 is the north edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from geoloc_ros.neuralmap.config import NeuralMapConfig
from geoloc_ros.neuralmap.geometry import template_grids


def yaw_bins(k: int) -> np.ndarray:
    return 2 * np.pi * np.arange(k) / k


class TemplateRotator:
    """Caches the per-yaw sampling grids of one config and bin count."""

    def __init__(self, cfg: NeuralMapConfig, k: int, yaws_rad: np.ndarray | None = None) -> None:
        self.cfg = cfg
        self.yaws_rad = yaw_bins(k) if yaws_rad is None else np.asarray(yaws_rad, dtype=float)
        self._grid = torch.from_numpy(template_grids(cfg, self.yaws_rad))
        self._grids: dict[torch.device, torch.Tensor] = {}

    def subset(self, indices: np.ndarray) -> TemplateRotator:
        """A rotator for some of this one's yaws, sharing its grids (no geometry redone)."""
        sub = TemplateRotator.__new__(TemplateRotator)
        sub.cfg = self.cfg
        sub.yaws_rad = self.yaws_rad[indices]
        sub._grid = self._grid[torch.from_numpy(np.asarray(indices, dtype=np.int64))]
        sub._grids = {}
        return sub

    def grid(self, device: torch.device) -> torch.Tensor:
        if device not in self._grids:
            self._grids[device] = self._grid.to(device)
        return self._grids[device]

    def __call__(self, feat: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
        """(B, M, nx, ny), (B, 1, nx, ny) -> templates (B, K, M, T, T), feature x confidence,
        normalised so a perfect match scores 1."""
        b, m, nx, ny = feat.shape
        k = len(self.yaws_rad)
        x = (feat * conf).unsqueeze(1).expand(b, k, m, nx, ny).reshape(b * k, m, nx, ny)
        g = self.grid(feat.device).unsqueeze(0).expand(b, -1, -1, -1, -1).flatten(0, 1)
        t = F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        t = t.view(b, k, m, t.shape[-2], t.shape[-1])
        norm = conf.flatten(1).sum(1).clamp_min(1.0)
        return t / norm[:, None, None, None, None]


def correlate(map_feat: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Valid cross-correlation by FFT: (B, M, H, W) x (B, K, M, T, T) -> (B, K, H-T+1, W-T+1)."""
    h, w = map_feat.shape[-2:]
    t = templates.shape[-1]
    fm = torch.fft.rfft2(map_feat, s=(h, w))  # (B, M, H, W/2+1)
    ft = torch.fft.rfft2(templates, s=(h, w))  # (B, K, M, H, W/2+1)
    prod = (fm.unsqueeze(1) * ft.conj()).sum(2)
    corr = torch.fft.irfft2(prod, s=(h, w))
    return corr[..., : h - t + 1, : w - t + 1]


def volume_logits(scores: torch.Tensor, log_scale: torch.Tensor, log_prior=None) -> torch.Tensor:
    """Scores (B, K, Ho, Wo) -> the volume's unnormalised log-probabilities; their
    log-sum-exp is the evidence a search (e.g. over heights) compares."""
    x = scores * log_scale.exp()
    if log_prior is not None:
        x = x + log_prior[:, None]
    return x


def log_volume(scores: torch.Tensor, log_scale: torch.Tensor, log_prior=None) -> torch.Tensor:
    """Scores (B, K, Ho, Wo) -> log-probabilities normalised over the whole volume."""
    x = volume_logits(scores, log_scale, log_prior)
    return torch.log_softmax(x.flatten(1), 1).view_as(x)


@dataclass
class MatchResult:
    """A pose in the map window: cells and radians, with covariance in metres and radians."""

    row: float  # base_link's map-window row (fractional)
    col: float
    yaw_rad: float
    cov_xy_m2: np.ndarray  # 2x2, ENU x/y
    var_yaw_rad2: float
    peak_prob: float
    second_peak_ratio: float  # second separated position peak / best, in (0, 1]
    multimodal: bool
    peak_index: tuple[int, int, int] = (0, 0, 0)  # argmax of the volume: (yaw bin, row, col)
    # second moments of the whole window's position marginal about the mode (ENU x/y, m^2):
    # what a multi-modal fix's position is uncertain by, every hypothesis included
    cov_xy_volume_m2: np.ndarray | None = None
    mode_mass: float = 1.0  # share of the position marginal within the mode's support


LOCAL_RADIUS_M = 8.0  # the mode's support: its covariance is the moments within this
LOCAL_YAW_RAD = np.pi / 4  # ... and within this of the mode's yaw
YAW_SUPPORT_RADIUS_M = 1.0  # the yaw estimate: yaw marginal of positions this close to the mode
YAW_PARABOLA_SPACING_RAD = np.radians(4.0)  # ... refined through bins this far apart (default)


def refine(
    log_vol: np.ndarray,
    yaws_rad: np.ndarray,
    half_template: int,
    res_m: float,
    local_radius_m: float = LOCAL_RADIUS_M,
    separation_m: float = 6.0,
    multimodal_ratio: float = 0.5,
    yaw_spacing_rad: float = YAW_PARABOLA_SPACING_RAD,
) -> MatchResult:
    """Mode of one volume (K, Ho, Wo), refined to sub-cell by a parabola through the log
    position marginal (sum over yaw), the yaw by one through bins `yaw_spacing_rad` apart
    (`_refine_yaw`).

    Position covariance and yaw variance are the volume's moments within
    `local_radius_m` of the mode (the rest is another hypothesis, reported by the
    second-peak ratio rather than smeared into one wide Gaussian).
    """
    prob = np.exp((log_vol - log_vol.max()).astype(np.float64))
    _, ho, wo = prob.shape
    kk, r0, c0 = np.unravel_index(int(np.argmax(prob)), prob.shape)
    pos = prob.sum(0)
    pos = pos / pos.sum()
    rad = max(1, round(local_radius_m / res_m))
    rs = slice(max(0, r0 - rad), min(ho, r0 + rad + 1))
    cs = slice(max(0, c0 - rad), min(wo, c0 + rad + 1))
    lpos = np.log(np.maximum(pos, 1e-300))
    r_mean = r0 + _parabola_peak(
        lpos[max(r0 - 1, 0), c0], lpos[r0, c0], lpos[min(r0 + 1, ho - 1), c0]
    )
    c_mean = c0 + _parabola_peak(
        lpos[r0, max(c0 - 1, 0)], lpos[r0, c0], lpos[r0, min(c0 + 1, wo - 1)]
    )
    local = pos[rs, cs]
    rr, cc = np.mgrid[rs, cs]
    mass = local.sum()
    dr, dc = rr - r_mean, cc - c_mean
    # ENU: x grows with columns, y shrinks with rows
    sxx = (local * dc * dc).sum() / mass
    syy = (local * dr * dr).sum() / mass
    sxy = -(local * dc * dr).sum() / mass
    cov = np.array([[sxx, sxy], [sxy, syy]]) * res_m**2
    cov_volume = _moments_about(pos, r_mean, c_mean) * res_m**2
    yaw_hat, var_yaw = _refine_yaw(prob, yaws_rad, int(kk), (r0, c0), (rs, cs),
                                   max(1, round(YAW_SUPPORT_RADIUS_M / res_m)),
                                   yaw_spacing_rad)  # fmt: skip
    # second separated peak of the position marginal
    sep = max(1, round(separation_m / res_m))
    masked = pos.copy()
    masked[max(0, r0 - sep) : r0 + sep + 1, max(0, c0 - sep) : c0 + sep + 1] = 0.0
    t = torch.from_numpy(masked)[None, None]
    peaks = (F.max_pool2d(t, 2 * sep + 1, 1, sep) == t) & (t > 0)
    second = float(t[peaks].max()) if bool(peaks.any()) else 0.0
    ratio = second / max(float(pos[r0, c0]), 1e-30)
    return MatchResult(
        row=r_mean + half_template,
        col=c_mean + half_template,
        yaw_rad=yaw_hat,
        cov_xy_m2=cov,
        var_yaw_rad2=var_yaw,
        peak_prob=float(np.exp(log_vol.max())),
        second_peak_ratio=float(min(ratio, 1.0)),
        multimodal=bool(ratio > multimodal_ratio),
        peak_index=(int(kk), int(r0), int(c0)),
        cov_xy_volume_m2=cov_volume,
        mode_mass=float(mass),
    )


def _moments_about(pos: np.ndarray, r: float, c: float) -> np.ndarray:
    """2x2 ENU (x, y) second moments, in cells^2, of a normalised (rows, cols) marginal
    about the cell (r, c)."""
    rows = np.arange(pos.shape[0]) - r
    cols = np.arange(pos.shape[1]) - c
    pr, pc = pos.sum(1), pos.sum(0)
    sxx = float(pc @ cols**2)
    syy = float(pr @ rows**2)
    sxy = -float(rows @ pos @ cols)  # ENU: x grows with columns, y shrinks with rows
    return np.array([[sxx, sxy], [sxy, syy]])


def _refine_yaw(prob: np.ndarray, yaws_rad: np.ndarray, k_mode: int, rc_mode, window,
                radius_cells: int, spacing_rad: float = YAW_PARABOLA_SPACING_RAD,
                ) -> tuple[float, float]:  # fmt: skip
    """Yaw estimate and variance of the mode.

    Estimate: a parabola through the log yaw marginal of positions within `radius_cells`
    of the mode, at its best bin and the bins `spacing_rad` either side (at least the
    next ones). Through adjacent bins of a fine volume (256 bins, 1.4 deg) it
    fits the marginal's bin-to-bin ripple, not its shape: car, 117 frames of worlds
    41-44 (stage 4), 1 deg recall 50 % through adjacent bins, 66 % through bins 4.2 deg
    apart, and 58 % with 64 bins either way (docs/neuralmap.md). Variance: second moment
    about the estimate of the yaw marginal over `window` (the mode's support), within
    LOCAL_YAW_RAD.
    """
    k, ho, wo = prob.shape
    r0, c0 = rc_mode
    rr, cc = np.mgrid[max(0, r0 - radius_cells) : min(ho, r0 + radius_cells + 1),
                      max(0, c0 - radius_cells) : min(wo, c0 + radius_cells + 1)]  # fmt: skip
    disk = (rr - r0) ** 2 + (cc - c0) ** 2 <= radius_cells**2
    near = prob[:, rr[disk], cc[disk]].sum(1)
    kb = int(np.argmax(near))
    yaw_hat = float(yaws_rad[kb])
    if k > 2:
        steps = np.angle(np.exp(1j * np.diff(yaws_rad)))
        step = float(steps[0])
        if np.allclose(steps, step, atol=1e-9):  # equally spaced (a yaw prior's range or all)
            s = max(1, round(spacing_rad / abs(step)))
            full = abs(abs(step) * k - 2 * np.pi) < 1e-6  # the bins wrap around the circle
            lo, hi = kb - s, kb + s
            if full or (lo >= 0 and hi < k):
                ly = np.log(np.maximum(near / near.sum(), 1e-300))
                yaw_hat += s * step * _parabola_peak(ly[lo % k], ly[kb], ly[hi % k])
    yaw_hat = float(np.angle(np.exp(1j * yaw_hat)))
    rs, cs = window
    marg = prob[:, rs, cs].sum((1, 2))
    marg = marg * (np.abs(np.angle(np.exp(1j * (yaws_rad - yaws_rad[k_mode])))) <= LOCAL_YAW_RAD)
    e = np.angle(np.exp(1j * (yaws_rad - yaw_hat)))
    return yaw_hat, float((marg * e**2).sum() / marg.sum())


def _parabola_peak(left: float, centre: float, right: float) -> float:
    """Offset in (-0.5, 0.5) of the vertex of a parabola through three equally spaced values."""
    den = left - 2 * centre + right
    if not np.isfinite(den) or den >= -1e-12:
        return 0.0
    return float(np.clip(0.5 * (left - right) / den, -0.5, 0.5))
