"""Height search for nadir views: the drone's height above ground, measured by the match.

A nadir BEV is ortho-rectified with the height above ground; at a wrong height the view
is scaled against the map and the match slides and splits (demo flight, 100-170 s: at
1.1-1.3x the true height fixes were 2-12 m off against 0.2-1.9 m). Without GNSS the
fused height drifts (the inertial vertical channel: 42 m in the demo's 60 s outage), so
the localizer tries heights (1 + step)^k times the prior's, k = -n..n with n covering
HEIGHT_SEARCH_SIGMAS of the prior's height sigma, and keeps the one whose volume holds
the most evidence (log-sum-exp of its logits). On that flight the match score peaked at
0.95-1.0x the true height on the frames read, once a second from 131 to 170 s (0.90
twice, at 50 m): docs/neuralmap.md, "The height a nadir view measures".
"""

from __future__ import annotations

import numpy as np

HEIGHT_SEARCH_SIGMAS = 2.0  # the searched heights cover the prior's height +- this many sigma
# floor on the measured height's sigma, as a share of the height: the evidence's
# curvature alone claims far less, and terrain relief is not in the flat-ground model
MIN_HEIGHT_SIGMA_FRACTION = 0.04


def height_factors(height_m: float, sigma_m: float, step: float, max_steps: int) -> np.ndarray:
    """Scale factors of the prior height to try, 1.0 first: (1 + step)^k, |k| <= n, n the
    steps HEIGHT_SEARCH_SIGMAS sigma reach (rounded, at most max_steps); [1.0] alone when
    that is 0 or the search is off (step or max_steps 0). Searching only once the sigma
    passed a whole step let the demo flight's height drift 16 m before it was measured
    again (map row 2.13 / 2.88 m RMSE / outage max against 1.85 / 2.00, docs/neuralmap.md)."""
    if not (step > 0 and max_steps > 0 and height_m > 0 and sigma_m > 0):
        return np.ones(1)
    reach = np.log1p(HEIGHT_SEARCH_SIGMAS * sigma_m / height_m) / np.log1p(step)
    n = min(int(np.round(reach)), max_steps)
    k = np.array([0, *[s * i for i in range(1, n + 1) for s in (-1, 1)]], dtype=float)
    return (1.0 + step) ** k


def refine_height(factors: np.ndarray, log_evidence: np.ndarray) -> tuple[int, float, float]:
    """(index of the best factor, its factor refined by a parabola through the evidence in
    log-height, variance of the log-height); at the edge of the searched range, or with one
    factor, the factor itself."""
    factors = np.asarray(factors, float)
    ev = np.asarray(log_evidence, float)
    best = int(np.argmax(ev))
    u = np.log(factors)
    order = np.argsort(u)
    pos = int(np.where(order == best)[0][0])
    floor = np.log1p(MIN_HEIGHT_SIGMA_FRACTION) ** 2
    if pos == 0 or pos == len(u) - 1:
        return best, float(factors[best]), floor
    i0, i1, i2 = order[pos - 1], order[pos], order[pos + 1]
    du = u[i2] - u[i1]  # log-spaced: the same on both sides
    curv = (ev[i2] - 2.0 * ev[i1] + ev[i0]) / du**2
    if not curv < 0:
        return best, float(factors[best]), floor
    shift = float(np.clip(-(ev[i2] - ev[i0]) / (2.0 * du * curv), -du / 2, du / 2))
    return best, float(np.exp(u[i1] + shift)), max(-1.0 / curv, floor)
