"""MC-dropout predictions over a whole split, accuracy and calibration statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from geoloc_ros.posenet.data import to_input_array
from geoloc_ros.posenet.mc import (
    CHI2_95_3DOF,
    Calibration,
    mahalanobis2,
    rotation_errors,
)


@dataclass
class SplitPrediction:
    p_m: np.ndarray  # (M, 3) MC mean positions
    q_xyzw: np.ndarray  # (M, 4)
    cov_raw: np.ndarray  # (M, 6, 6) MC sample covariances (times novelty inflation), ROS order
    inflation: np.ndarray  # (M,) novelty variance factor already in cov_raw (1 = none)
    anchor_pmax: np.ndarray | None = None  # (M,) top MC-mean anchor probability
    anchor_agreement: np.ndarray | None = None  # (M,) share of samples on the modal anchor


def predict(runner, cfg, images_u8: np.ndarray, samples: int, seed: int = 0, progress=False,
            novelty=None):  # fmt: skip
    """MC-dropout mean pose and raw covariance of every image (backbone batched by 64)."""
    from tqdm import tqdm  # noqa: PLC0415

    from geoloc_ros.posenet.localizer import mc_pose_outputs  # noqa: PLC0415
    from geoloc_ros.posenet.mc import anchor_confidence  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    P, Q, C, infl, conf = [], [], [], [], []
    for a in tqdm(range(0, len(images_u8), 64), desc="MC dropout", disable=not progress):
        feats = runner.features(to_input_array(images_u8[a : a + 64]))
        gain = novelty.inflation(feats) if novelty is not None else np.ones(len(feats))
        infl.extend(gain)
        for f, g in zip(feats, gain, strict=True):
            p, q, cov, out = mc_pose_outputs(runner, cfg, f[None], rng, samples)
            conf.append(anchor_confidence(out, cfg))
            P.append(p)
            Q.append(q)
            C.append(cov * g)
    conf = np.array(conf).reshape(-1, 2)
    return SplitPrediction(np.array(P), np.array(Q), np.array(C), np.array(infl),
                           conf[:, 0], conf[:, 1])  # fmt: skip


def features(runner, images_u8: np.ndarray, batch: int = 64) -> np.ndarray:
    """Deterministic backbone features of every image."""
    return np.concatenate([runner.features(to_input_array(images_u8[a : a + batch]))
                           for a in range(0, len(images_u8), batch)])  # fmt: skip


def errors(pred: SplitPrediction, p_true_m: np.ndarray, q_true_xyzw: np.ndarray):
    """Position errors (M, 3) and parent-frame rotation errors (M, 3) [rad], true - estimate."""
    e_p = p_true_m - pred.p_m
    e_r = rotation_errors(q_true_xyzw, pred.q_xyzw)
    return e_p, e_r


def summary(pred: SplitPrediction, p_true, q_true, cal: Calibration) -> dict:
    """Accuracy, coverage of the 95 % regions (raw and calibrated), sigma-error correlation."""
    e_p, e_r = errors(pred, p_true, q_true)
    err_p = np.linalg.norm(e_p, axis=1)
    err_r = np.degrees(np.linalg.norm(e_r, axis=1))
    raw = Calibration(1.0, 1.0, cal.floor_p_m, cal.floor_r_rad).apply_batch(pred.cov_raw)
    calib = cal.apply_batch(pred.cov_raw)
    sigma = np.sqrt(np.trace(calib[:, :3, :3], axis1=1, axis2=2) / 3)
    rho = _spearman(sigma, err_p)

    def cov95(c, e, sl):
        return float(np.mean(mahalanobis2(e, c[:, sl, sl]) <= CHI2_95_3DOF))

    pos, rot = slice(0, 3), slice(3, 6)
    return {
        "n": len(err_p),
        "median_m": float(np.median(err_p)),
        "mean_m": float(np.mean(err_p)),
        "p90_m": float(np.quantile(err_p, 0.9)),
        "median_h_m": float(np.median(np.linalg.norm(e_p[:, :2], axis=1))),
        "median_deg": float(np.median(err_r)),
        "p90_deg": float(np.quantile(err_r, 0.9)),
        "coverage95_position_raw": cov95(raw, e_p, pos),
        "coverage95_position": cov95(calib, e_p, pos),
        "coverage95_rotation_raw": cov95(raw, e_r, rot),
        "coverage95_rotation": cov95(calib, e_r, rot),
        "spearman_sigma_error": float(rho),
        "median_sigma_m": float(np.median(sigma)),
        "inflated_fraction": float(np.mean(pred.inflation > 1.0)),
        "spearman_by_signal": signal_ranks(pred, err_p),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def signal_ranks(pred: SplitPrediction, err_p_m: np.ndarray) -> dict:
    """Spearman of each per-frame uncertainty signal against the position error.

    The MC spread is what the fix's covariance carries; the anchor statistics and the
    novelty score are there to show whether another signal would rank errors better.
    """
    spread = np.trace(pred.cov_raw[:, :3, :3], axis1=1, axis2=2) / pred.inflation
    out = {"mc_spread": _spearman(spread, err_p_m),
           "novelty_inflation": _spearman(pred.inflation, err_p_m)}  # fmt: skip
    if pred.anchor_pmax is not None:
        out["anchor_1_minus_pmax"] = _spearman(1.0 - pred.anchor_pmax, err_p_m)
        out["anchor_disagreement"] = _spearman(1.0 - pred.anchor_agreement, err_p_m)
    return out
