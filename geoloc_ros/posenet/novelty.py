"""Feature novelty: how far a frame's backbone features lie from the training images'.

MC dropout samples the head only, so a frame unlike anything seen in training (another
town, a truck filling the view) can still get a tight sample spread. A Gaussian fitted
to the training features (PCA subspace plus the residual, as in Lee et al., NeurIPS
2018) scores such frames; the covariance is inflated by the score's excess over its
95th percentile on held-out in-area frames, so in-area frames are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PREFIX = "novelty."


@dataclass(frozen=True)
class NoveltyModel:
    mean: np.ndarray  # (D,)
    basis: np.ndarray  # (D, k) principal directions
    inv_var: np.ndarray  # (k,) 1 / variance along each
    residual_mean: float  # mean squared residual on the training features
    threshold: float  # score at the 95th percentile of held-out in-area frames
    power: float = 2.0  # inflation = (score / threshold) ** power above the threshold

    def score(self, feat: np.ndarray) -> np.ndarray:
        """(N, D) -> (N,) ~1 for typical training frames, larger when novel."""
        c = np.atleast_2d(feat).astype(np.float64) - self.mean
        z = c @ self.basis
        d2 = (z**2 * self.inv_var).sum(1) / len(self.inv_var)
        r2 = ((c - z @ self.basis.T) ** 2).sum(1) / self.residual_mean
        return 0.5 * (d2 + r2)

    def inflation(self, feat: np.ndarray) -> np.ndarray:
        """Variance factor >= 1 per frame."""
        return np.maximum(1.0, self.score(feat) / self.threshold) ** self.power

    def tensors(self) -> dict[str, np.ndarray]:
        scalars = np.array([self.residual_mean, self.threshold, self.power])
        return {f"{PREFIX}mean": self.mean.astype(np.float32),
                f"{PREFIX}basis": self.basis.astype(np.float32),
                f"{PREFIX}inv_var": self.inv_var.astype(np.float32),
                f"{PREFIX}scalars": scalars.astype(np.float64)}  # fmt: skip

    @classmethod
    def from_tensors(cls, state: dict[str, np.ndarray]) -> NoveltyModel | None:
        if f"{PREFIX}mean" not in state:
            return None
        rm, th, pw = (float(v) for v in state[f"{PREFIX}scalars"])
        return cls(state[f"{PREFIX}mean"].astype(np.float64),
                   state[f"{PREFIX}basis"].astype(np.float64),
                   state[f"{PREFIX}inv_var"].astype(np.float64), rm, th, pw)  # fmt: skip


def fit_novelty(train_feat: np.ndarray, val_feat: np.ndarray, k: int = 32) -> NoveltyModel:
    """PCA of the training features; threshold at the held-out 95th percentile."""
    x = train_feat.astype(np.float64)
    mean = x.mean(0)
    c = x - mean
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    k = min(k, len(s) - 1)
    basis = vt[:k].T
    var = s[:k] ** 2 / (len(x) - 1)
    inv_var = 1.0 / np.maximum(var, 1e-12)
    z = c @ basis
    residual_mean = float(max(((c - z @ basis.T) ** 2).sum(1).mean(), 1e-12))
    m = NoveltyModel(mean, basis, inv_var, residual_mean, 1.0)
    threshold = float(np.quantile(m.score(val_feat), 0.95))
    return NoveltyModel(mean, basis, inv_var, residual_mean, threshold)
