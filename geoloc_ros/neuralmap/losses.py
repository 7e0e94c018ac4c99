"""Training losses over the (yaw, row, col) log volume of a map crop.

`nll` is the localizer's objective: -log p(true yaw bin, true cell) in the whole volume.
`along_street_nll` adds weight to the negatives a forward camera confuses most: the
same street one dash period ahead or behind, and the street seen the other way round.
It is -log of the truth's share among the cells on the line through the truth along
its heading, in the true yaw bin and in the reversed one. On the simulator's unseen
worlds those two kinds were 10.7 % and 4.8 % of all frames (docs/neuralmap.md): the
BEV's confidence sits on the road's centre, whose markings repeat every few metres.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F  # noqa: N812

ALONG_REACH_CELLS = 32  # the line's half-length
ALONG_NEAR_CELLS = 3  # cells this close to the truth are not negatives (the nll's business)


def nll(log_vol: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, K, P, P) log volume, (B, 3) long (yaw bin, row, col) -> (B,) -log p(target)."""
    b = torch.arange(len(target))
    return -log_vol[b, target[:, 0], target[:, 1], target[:, 2]]


def along_street_nll(
    log_vol: torch.Tensor,
    target: torch.Tensor,
    reach: int = ALONG_REACH_CELLS,
    near: int = ALONG_NEAR_CELLS,
) -> torch.Tensor:
    """(B,) -log of the truth's probability among the cells along its heading.

    Yaw bin k is the ENU heading 2 pi k / K; a step d cells along it moves the volume
    index by (-d sin, d cos) in (row, col), the template convention of
    `geometry.template_grids`. Off-grid points are read bilinearly, points outside
    the crop are left out, and so are those within `near` cells of the truth.
    """
    bsz, k, p, _ = log_vol.shape
    idx = torch.arange(bsz, device=log_vol.device)
    kt, r0, c0 = target[:, 0], target[:, 1].float(), target[:, 2].float()
    rev = (kt + k // 2) % k
    lines = torch.stack([log_vol[idx, kt], log_vol[idx, rev]], 1)  # (B, 2, P, P)
    d = torch.arange(-reach, reach + 1, device=log_vol.device, dtype=torch.float32)
    theta = kt.float() * (2 * math.pi / k)
    rows = r0[:, None] - d[None] * torch.sin(theta)[:, None]  # (B, L)
    cols = c0[:, None] + d[None] * torch.cos(theta)[:, None]
    inside = (rows >= 0) & (rows <= p - 1) & (cols >= 0) & (cols <= p - 1)
    grid = torch.stack([cols, rows], -1) * (2.0 / (p - 1)) - 1.0  # align_corners=True
    vals = F.grid_sample(lines, grid[:, None], mode="bilinear", align_corners=True)[:, :, 0]
    far = (d.abs() >= near)[None].expand(bsz, -1)
    keep = torch.stack([inside & far, inside], 1)  # the reversed heading: every point counts
    truth = log_vol[idx, kt, target[:, 1], target[:, 2]]
    vals = vals.masked_fill(~keep, float("-inf")).flatten(1)
    return torch.logsumexp(torch.cat([vals, truth[:, None]], 1), 1) - truth
