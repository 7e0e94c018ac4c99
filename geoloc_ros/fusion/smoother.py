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
factor, Python CustomFactors included, at the point it already has. For the updates
around each re-elimination, a block of anchor variables outside the window (keys
`ANCHOR`, in no factor with the window's) keeps the window below that share, so the
incremental path re-eliminates it from the cached linear factors: the same linear
system and the same estimates, ~5x cheaper per batch on the comma2k19 drive
(benchmarks/README). The anchors are not kept in between: every Python CustomFactor
call gets a copy of iSAM2's whole Values (pybind11 casts the const reference by value;
seen in perf), so each variable there costs every such call ~0.1 us.
"""

from __future__ import annotations

import math

import gtsam
import numpy as np

ANCHOR = "a"  # symbol character reserved for the anchor variables
GTSAM_BATCH_SHARE = 0.65  # ISAM2::recalculate's kBatchThreshold
ANCHOR_MARGIN = 1.15  # on the share: the keys the updates up to the batch add
ANCHOR_SLACK = 8
ANCHOR_BLOCK = 16  # anchors per factor
ANCHOR_LEAD_UPDATES = 2  # anchors go in this many updates ahead of a batch
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
        self._step_s = 0.0  # the last advance of the newest stamp
        self._t_marginalized_s = float("-inf")
        self.batches = 0
        self.relinearized_batches = 0  # batches that took iSAM2's batch path all the same
        self._use_anchors = use_anchors
        self.anchors = 0  # anchor variables in iSAM2 now
        self._anchor_factors: list[int] = []  # their factors' indices in iSAM2
        self._blocks: dict[tuple[int, int], tuple[gtsam.NonlinearFactorGraph, gtsam.Values]] = {}

    @property
    def window_size(self) -> int:
        """Variables in the window (the anchors not counted)."""
        return len(self._stamp_s)

    def update(
        self, graph: gtsam.NonlinearFactorGraph, values: gtsam.Values, stamps_s: dict[int, float]
    ) -> None:
        """Add factors and new variables; stamps move each key's time forward."""
        t_before = self._t_newest_s
        for key, t in stamps_s.items():
            self._stamp_s[key] = max(t, self._stamp_s.get(key, t))
            self._t_newest_s = max(self._t_newest_s, t)
        if self._t_newest_s > t_before > float("-inf"):
            self._step_s = self._t_newest_s - t_before
        if self._batch_due(self._t_newest_s):
            self._marginalize(graph, values)
            return
        params = gtsam.ISAM2UpdateParams()
        anchored = 0
        if self._use_anchors:
            if self._batch_due(self._t_newest_s + ANCHOR_LEAD_UPDATES * self._step_s):
                graph, values, anchored = self._with_anchors(graph, values)
            elif self._anchor_factors:  # the batch is done: they leave with their factors
                params.removeFactorIndices = self._anchor_factors
                self._anchor_factors = []
                self.anchors = 0
        result = self.isam.update(graph, values, params)
        if anchored:  # added last
            self._anchor_factors += list(result.getNewFactorsIndices())[-anchored:]

    def _batch_due(self, t_newest_s: float) -> bool:
        return t_newest_s - self.lag_s - self._t_marginalized_s >= self.batch_s

    def _marginalize(self, graph: gtsam.NonlinearFactorGraph, values: gtsam.Values) -> None:
        t_cut = self._t_newest_s - self.lag_s
        self._t_marginalized_s = t_cut
        old = [key for key, t in self._stamp_s.items() if t < t_cut]
        if not old:
            self.isam.update(graph, values)
            return
        self.batches += 1
        result = self.isam.update(graph, values, self._time_ordered(t_cut))
        self.relinearized_batches += int(result.getBatchReorderTriggered())
        keys = gtsam.KeyList()
        for key in old:
            keys.push_back(key)
            del self._stamp_s[key]
        self.isam.marginalizeLeaves(keys)

    def _with_anchors(
        self, graph: gtsam.NonlinearFactorGraph, values: gtsam.Values
    ) -> tuple[gtsam.NonlinearFactorGraph, gtsam.Values, int]:
        """Enough anchors for the coming batch, added inside an ordinary update: they
        are a tree of their own (re-eliminating them touches nothing else), and no extra
        update shifts iSAM2's relinearizeSkip count, so estimates stay what they were.
        Returns the graph and values to update with, and how many factors were added."""
        share = 1.0 / GTSAM_BATCH_SHARE - 1.0
        if self.anchors >= share * len(self._stamp_s) + ANCHOR_SLACK:
            return graph, values, 0
        needed = math.ceil(len(self._stamp_s) * share * ANCHOR_MARGIN) + ANCHOR_SLACK
        block_graph, block_values = self._anchor_block(self.anchors, needed)
        graph = gtsam.NonlinearFactorGraph(graph)  # the caller's stay as they were
        graph.push_back(block_graph)
        values = gtsam.Values(values)
        values.insert(block_values)
        self.anchors = needed
        return graph, values, block_graph.size()

    def _anchor_block(
        self, first: int, stop: int
    ) -> tuple[gtsam.NonlinearFactorGraph, gtsam.Values]:
        """Anchors `first` to `stop - 1`, built once: a window of steady size asks for the
        same block every batch (the keys are free again once the last one has gone)."""
        if (first, stop) not in self._blocks:
            graph = gtsam.NonlinearFactorGraph()
            values = gtsam.Values()
            for i in range(first, stop, ANCHOR_BLOCK):  # small dense blocks: cheap to eliminate
                lin = gtsam.GaussianFactorGraph()
                at = gtsam.Values()
                for key in (gtsam.symbol(ANCHOR, j) for j in range(i, min(i + ANCHOR_BLOCK, stop))):
                    values.insert(key, np.zeros(1))
                    at.insert(key, np.zeros(1))
                    lin.add(gtsam.JacobianFactor(key, np.eye(1), np.zeros(1), _ANCHOR_NOISE))
                graph.add(gtsam.LinearContainerFactor(gtsam.JacobianFactor(lin), at))
            if len(self._blocks) >= 4:
                self._blocks.clear()
            self._blocks[(first, stop)] = (graph, values)
        return self._blocks[(first, stop)]

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
