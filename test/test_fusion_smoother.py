"""The fixed-lag smoother: bounded window, and exact marginalization on a linear chain."""

from __future__ import annotations

import gtsam
import numpy as np
from gtsam.symbol_shorthand import X

from geoloc_ros.fusion.smoother import FixedLagSmoother

STEP = gtsam.noiseModel.Isotropic.Sigma(2, 0.1)
FIX = gtsam.noiseModel.Isotropic.Sigma(2, 1.0)


def _chain(n: int, seed: int = 0):
    """A 2-D random walk with noisy absolute fixes: factors per step, and its values."""
    rng = np.random.default_rng(seed)
    truth = np.cumsum(rng.normal(0, 0.1, (n, 2)), axis=0)
    steps = []
    for k in range(n):
        g = gtsam.NonlinearFactorGraph()
        if k:
            g.add(gtsam.BetweenFactorPoint2(X(k - 1), X(k), truth[k] - truth[k - 1], STEP))
        g.add(gtsam.PriorFactorPoint2(X(k), truth[k] + rng.normal(0, 1.0, 2), FIX))
        steps.append(g)
    return steps, truth


def test_newest_estimate_and_covariance_match_the_batch_solution() -> None:
    """Marginalizing a linear Gaussian chain loses nothing about the newest state."""
    n, period = 300, 0.1
    steps, truth = _chain(n)
    sm = FixedLagSmoother(2.0, gtsam.ISAM2Params(), batch_s=0.5)
    full = gtsam.NonlinearFactorGraph()
    init = gtsam.Values()
    for k, g in enumerate(steps):
        v = gtsam.Values()
        v.insert(X(k), truth[k])
        sm.update(g, v, {X(k): k * period})
        full.push_back(g)
        init.insert(X(k), truth[k])
    batch = gtsam.LevenbergMarquardtOptimizer(full, init).optimize()
    newest = X(n - 1)
    np.testing.assert_allclose(
        sm.isam.calculateEstimatePoint2(newest), batch.atPoint2(newest), atol=1e-6
    )
    cov_batch = gtsam.Marginals(full, batch).marginalCovariance(newest)
    np.testing.assert_allclose(sm.marginalCovariance(newest), cov_batch, rtol=1e-6)
    assert sm.batches > 0


def test_window_stays_between_lag_and_lag_plus_batch() -> None:
    n, period, lag, batch = 400, 0.1, 3.0, 1.0
    steps, truth = _chain(n, seed=1)
    sm = FixedLagSmoother(lag, gtsam.ISAM2Params(), batch_s=batch)
    sizes = []
    for k, g in enumerate(steps):
        v = gtsam.Values()
        v.insert(X(k), truth[k])
        sm.update(g, v, {X(k): k * period})
        sizes.append(sm.isam.getLinearizationPoint().size())
    late = np.asarray(sizes[100:])
    assert late.max() <= round((lag + batch) / period) + 1
    assert late.min() >= round(lag / period)
    assert not sm.isam.valueExists(X(0))
