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
        assert sm.window_size == sizes[-1]
    late = np.asarray(sizes[100:])
    assert late.max() <= round((lag + batch) / period) + 1
    assert late.min() >= round(lag / period)
    assert not sm.isam.valueExists(X(0))


def _pose2_chain(n: int, seed: int = 2):
    """A planar drive with odometry and noisy position fixes: nonlinear in the heading."""
    rng = np.random.default_rng(seed)
    step = gtsam.Pose2(0.5, 0.0, 0.05)
    odo = gtsam.noiseModel.Diagonal.Sigmas(np.array([0.05, 0.05, 0.02]))
    fix = gtsam.noiseModel.Diagonal.Sigmas(np.array([1.0, 1.0, 10.0]))
    truth = [gtsam.Pose2()]
    for _ in range(n - 1):
        truth.append(truth[-1].compose(step))
    steps = []
    for k in range(n):
        g = gtsam.NonlinearFactorGraph()
        if k:
            g.add(gtsam.BetweenFactorPose2(X(k - 1), X(k), step, odo))
        z = truth[k].translation() + rng.normal(0, 1.0, 2)
        g.add(gtsam.PriorFactorPose2(X(k), gtsam.Pose2(z[0], z[1], truth[k].theta()), fix))
        steps.append(g)
    return steps, truth


def test_anchors_keep_batches_off_the_relinearizing_path_and_change_nothing() -> None:
    """The anchors make the window's re-elimination reuse the cached linear factors;
    estimates agree with a smoother without them (relinearizing at every update, so the
    two see the same linearization points)."""
    n, period = 400, 0.1
    steps, truth = _pose2_chain(n)
    params = gtsam.ISAM2Params()
    params.relinearizeSkip = 1
    smoothers = [
        FixedLagSmoother(3.0, params, batch_s=1.0, use_anchors=anchors) for anchors in (True, False)
    ]
    most = 0.0
    for k, g in enumerate(steps):
        for sm in smoothers:
            v = gtsam.Values()
            v.insert(X(k), truth[k].retract(np.array([0.3, -0.2, 0.1])))
            sm.update(g, v, {X(k): k * period})
        most = max(most, smoothers[0].last_anchors / smoothers[0].window_size)
    with_anchors, without = smoothers
    assert with_anchors.batches == without.batches > 5
    assert with_anchors.relinearized_batches == 0
    assert without.relinearized_batches == without.batches
    assert most > 0.5  # enough for the batches ...
    size = with_anchors.isam.getLinearizationPoint().size()
    assert size == with_anchors.window_size  # ... and gone after them
    assert without.last_anchors == 0
    newest = X(n - 1)
    a = with_anchors.isam.calculateEstimatePose2(newest)
    b = without.isam.calculateEstimatePose2(newest)
    np.testing.assert_allclose([a.x(), a.y(), a.theta()], [b.x(), b.y(), b.theta()], atol=1e-9)
    np.testing.assert_allclose(
        with_anchors.marginalCovariance(newest), without.marginalCovariance(newest), rtol=1e-9
    )
