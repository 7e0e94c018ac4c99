"""The training losses over a log volume: which cells the along-street loss counts as
the truth's rivals, in the matcher's own (row, col) convention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoloc_ros.neuralmap.config import NeuralMapConfig
from geoloc_ros.neuralmap.geometry import template_grids
from geoloc_ros.neuralmap.losses import along_street_nll, nll

K, P = 16, 48


def volume(peaks: list[tuple[int, int, int]]) -> torch.Tensor:
    """A (1, K, P, P) log volume: equal peaks at the given cells, a far lower floor."""
    x = torch.full((1, K, P, P), -30.0)
    for k, r, c in peaks:
        x[0, k, r, c] = 0.0
    return torch.log_softmax(x.flatten(1), 1).view_as(x)


def ahead(k: int, d: float) -> tuple[float, float]:
    """(row, col) step of d cells along yaw bin k, as `template_grids` lays out the world."""
    th = 2 * math.pi * k / K
    return -d * math.sin(th), d * math.cos(th)


def test_a_rival_ahead_on_the_street_costs_log_two_one_across_costs_nothing():
    k, r, c = 4, 24, 24  # yaw bin 4 of 16: heading north, rows decrease ahead
    t = torch.tensor([[k, r, c]])
    dr, dc = ahead(k, 8)
    on_street = volume([(k, r, c), (k, round(r + dr), round(c + dc))])
    across = volume([(k, r, c), (k, r, c + 8)])
    assert along_street_nll(on_street, t).item() == pytest.approx(math.log(2), abs=1e-3)
    assert along_street_nll(across, t).item() < 1e-3
    # the whole volume's nll sees both rivals alike
    assert nll(on_street, t).item() == pytest.approx(nll(across, t).item())


def test_the_reversed_heading_is_a_rival_and_near_cells_are_not():
    k, r, c = 3, 20, 30
    t = torch.tensor([[k, r, c]])
    reversed_here = volume([(k, r, c), ((k + K // 2) % K, r, c)])
    assert along_street_nll(reversed_here, t).item() == pytest.approx(math.log(2), abs=1e-3)
    dr, dc = ahead(0, 1)
    one_cell_ahead = volume([(0, r, c), (0, r, c + 1)])
    assert along_street_nll(one_cell_ahead, torch.tensor([[0, r, c]])).item() < 1e-3
    assert dr == pytest.approx(0.0) and dc == pytest.approx(1.0)


def test_the_line_follows_the_heading_the_templates_use():
    """A BEV point 10 m ahead of base_link lands, in the rotated template, on the
    (row, col) offset the loss steps along."""
    cfg = NeuralMapConfig.for_platform("car")
    yaws = 2 * np.pi * np.arange(K) / K
    g = template_grids(cfg, yaws)  # (K, T, T, 2): (gx ~ BEV y, gy ~ BEV x) in [-1, 1]
    nx, ny = cfg.bev_shape
    x0, y0 = cfg.bev_origin_m
    xb = (g[..., 1] + 1) / 2 * nx * cfg.res_m + x0
    yb = (g[..., 0] + 1) / 2 * ny * cfg.res_m + y0
    h = cfg.template_size // 2
    for k in (1, 3, 6, 11):
        r, c = np.unravel_index(np.argmin(np.hypot(xb[k] - 10.0, yb[k])), xb[k].shape)
        dr, dc = ahead(k, 10.0 / cfg.res_m)
        assert abs((r - h) - dr) <= 1.0 and abs((c - h) - dc) <= 1.0, k


def test_a_truth_at_the_crop_corner_gives_a_finite_loss_and_gradient():
    x = torch.randn(2, K, P, P, requires_grad=True)
    lv = torch.log_softmax(x.flatten(1), 1).view_as(x)
    t = torch.tensor([[0, 0, 0], [7, P - 1, P - 1]])
    loss = along_street_nll(lv, t)
    assert torch.isfinite(loss).all() and (loss >= 0).all()
    loss.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
