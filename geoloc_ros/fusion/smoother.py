"""Fixed-lag smoothing on iSAM2 that leaves the elimination order to iSAM2.

GTSAM's IncrementalFixedLagSmoother re-orders on every update: it marks the variables
leaving the window, with every cache below them, and constrains them to be eliminated
first. On a chain of keyframes that re-eliminates most of the window each time (about
250 of 320 variables after some relinearizations, ~8 ms). Here iSAM2 orders its
incremental updates itself (newly observed variables last); every `batch_s` the window
is re-eliminated once in time order, which makes the old variables the leaves that
`marginalizeLeaves` requires, and they are dropped together.

That re-elimination must not take iSAM2's batch path: when an update touches 65 % of
the variables or more (a constant in GTSAM's ISAM2.cpp), iSAM2 relinearizes every
factor, Python CustomFactors included, at the point it already has. The batch update
brings a block of anchor variables (keys `ANCHOR`, in no factor with the window's):
iSAM2 counts them when it picks its path but has no tree to re-eliminate for them, so
it takes the incremental path, which re-eliminates the window from the cached linear
factors: the same linear system and the same estimates, ~5x cheaper per batch on the
comma2k19 drive (benchmarks/README). The same marginalizeLeaves drops them again. They
are not kept: every Python CustomFactor call gets a copy of iSAM2's whole Values
(pybind11 casts the const reference by value; seen in perf), ~0.1 us per variable.
"""

from __future__ import annotations

import math

import gtsam
import numpy as np

ANCHOR = "a"  # symbol character reserved for the anchor variables
GTSAM_BATCH_SHARE = 0.65  # ISAM2::recalculate's kBatchThreshold
ANCHOR_MARGIN = 1.1  # on the share: the batch update's own new keys, rounding
ANCHOR_SLACK = 8
ANCHOR_BLOCK = 16  # anchors per factor
_ANCHOR_NOISE = gtsam.noiseModel.Isotropic.Sigma(1, 1.0)


class FixedLagSmoother:
    """iSAM2 over the variables stamped within `lag_s` of the newest; older ones are
    marginalized in batches, every `batch_s`, so the window spans lag_s to
    lag_s + batch_s. The estimate and marginal accessors are iSAM2's."""

    def __init__(
        self,
        lag_s: float,
        params: gtsam.ISAM2Params,
        batch_s: float = 2.0,
        use_anchors: bool = True,
    ) -> None:
        self.lag_s = lag_s
        self.batch_s = batch_s
        self.isam = gtsam.ISAM2(params)
        self._stamp_s: dict[int, float] = {}  # key -> newest time it was stamped with
        self._t_newest_s = float("-inf")
        self._t_marginalized_s = float("-inf")
        self.batches = 0
        self.relinearized_batches = 0  # batches that took iSAM2's batch path all the same
        self._use_anchors = use_anchors
        self.last_anchors = 0  # anchors the last batch took
        self._blocks: dict[int, tuple[gtsam.NonlinearFactorGraph, gtsam.Values, list[int]]] = {}

    @property
    def window_size(self) -> int:
        """Variables in the window (the anchors not counted)."""
        return len(self._stamp_s)

    def update(
        self, graph: gtsam.NonlinearFactorGraph, values: gtsam.Values, stamps_s: dict[int, float]
    ) -> None:
        """Add factors and new variables; stamps move each key's time forward."""
        for key, t in stamps_s.items():
            self._stamp_s[key] = max(t, self._stamp_s.get(key, t))
            self._t_newest_s = max(self._t_newest_s, t)
        t_cut = self._t_newest_s - self.lag_s
        old = []
        if t_cut - self._t_marginalized_s >= self.batch_s:
            self._t_marginalized_s = t_cut
            old = [key for key, t in self._stamp_s.items() if t < t_cut]
        if not old:
            self.isam.update(graph, values)
            return
        self.batches += 1
        anchors: list[int] = []
        if self._use_anchors:
            graph, values, anchors = self._with_anchors(graph, values)
        result = self.isam.update(graph, values, self._time_ordered(t_cut))
        self.relinearized_batches += int(result.getBatchReorderTriggered())
        self.last_anchors = len(anchors)
        keys = gtsam.KeyList()
        for key in old:
            keys.push_back(key)
            del self._stamp_s[key]
        for key in anchors:  # roots of their own small trees: leaves too
            keys.push_back(key)
        self.isam.marginalizeLeaves(keys)

    def _with_anchors(
        self, graph: gtsam.NonlinearFactorGraph, values: gtsam.Values
    ) -> tuple[gtsam.NonlinearFactorGraph, gtsam.Values, list[int]]:
        """The batch update's graph and values with enough anchors added. iSAM2 counts
        them among its variables when it picks its path, but they are in no tree yet,
        so they are not among the variables the update re-eliminates."""
        share = 1.0 / GTSAM_BATCH_SHARE - 1.0
        n = math.ceil(len(self._stamp_s) * share * ANCHOR_MARGIN) + ANCHOR_SLACK
        block_graph, block_values, keys = self._anchor_block(n)
        graph = gtsam.NonlinearFactorGraph(graph)  # the caller's stay as they were
        graph.push_back(block_graph)
        values = gtsam.Values(values)
        values.insert(block_values)
        return graph, values, keys

    def _anchor_block(self, n: int) -> tuple[gtsam.NonlinearFactorGraph, gtsam.Values, list[int]]:
        """n anchors, built once: a window of steady size asks for the same number every
        batch, and the keys are free again once the last batch has marginalized them."""
        if n not in self._blocks:
            graph = gtsam.NonlinearFactorGraph()
            values = gtsam.Values()
            keys = [gtsam.symbol(ANCHOR, j) for j in range(n)]
            for i in range(0, n, ANCHOR_BLOCK):  # small dense blocks: cheap to eliminate
                lin = gtsam.GaussianFactorGraph()
                at = gtsam.Values()
                for key in keys[i : i + ANCHOR_BLOCK]:
                    values.insert(key, np.zeros(1))
                    at.insert(key, np.zeros(1))
                    lin.add(gtsam.JacobianFactor(key, np.eye(1), np.zeros(1), _ANCHOR_NOISE))
                graph.add(gtsam.LinearContainerFactor(gtsam.JacobianFactor(lin), at))
            if len(self._blocks) >= 4:
                self._blocks.clear()
            self._blocks[n] = (graph, values, keys)
        return self._blocks[n]

    def _time_ordered(self, t_cut: float) -> gtsam.ISAM2UpdateParams:
        """Re-eliminate the whole window oldest first: the keys leaving it become the
        leaves marginalizeLeaves needs, and the newest state the root, so the next
        updates re-eliminate only the few newest cliques they touch."""
        # CCOLAMD wants labels 0..n-1 without gaps (else it fails or worse): the keys
        # leaving share 0, the others count up by time
        stays = sorted({t for t in self._stamp_s.values() if t >= t_cut})
        ranks = {t: i + 1 for i, t in enumerate(stays)}
        groups = gtsam.KeyGroupMap()
        everything = gtsam.KeyList()
        for key, t in self._stamp_s.items():
            groups.insert2(key, 0 if t < t_cut else ranks[t])
            everything.push_back(key)
        params = gtsam.ISAM2UpdateParams()
        params.constrainedKeys = groups
        params.extraReelimKeys = everything
        return params

    # -- estimates, as on gtsam.IncrementalFixedLagSmoother ------------------------------
    def calculateEstimatePose3(self, key: int) -> gtsam.Pose3:
        return self.isam.calculateEstimatePose3(key)

    def calculateEstimateVector(self, key: int):
        return self.isam.calculateEstimateVector(key)

    def calculateEstimateConstantBias(self, key: int) -> gtsam.imuBias.ConstantBias:
        return self.isam.calculateEstimateConstantBias(key)

    def marginalCovariance(self, key: int):
        return self.isam.marginalCovariance(key)
