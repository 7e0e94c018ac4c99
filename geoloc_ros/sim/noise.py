"""Deterministic noise for procedural textures: a stateless hash and smooth value noise."""

from __future__ import annotations

import numpy as np


def hash01(a, b=0.0) -> np.ndarray:
    """A repeatable pseudo-random value in [0, 1) per (a, b), e.g. per instance or cell."""
    h = np.sin(np.asarray(a, np.float64) * 12.9898 + np.asarray(b, np.float64) * 78.233)
    h = h * 43758.5453
    return h - np.floor(h)


def value_noise(shape: tuple[int, int], cell_px: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth zero-mean noise of unit-ish amplitude with features about `cell_px` wide."""
    import cv2  # noqa: PLC0415

    h, w = shape
    small = rng.standard_normal((max(2, int(h / cell_px) + 2), max(2, int(w / cell_px) + 2)))
    return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
