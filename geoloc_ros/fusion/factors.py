"""Custom GTSAM factors the built-in set lacks, with analytic Jacobians.

Conventions: Pose3 tangent is [rotation, translation] with both perturbations in the
body frame (R' = R Exp(w), t' = t + R dt), as GTSAM retracts them; velocities are in
the map frame, as CombinedImuFactor keeps them.
"""

from __future__ import annotations

from functools import partial

import gtsam
import numpy as np

from geoloc_ros.geo.se3 import skew


def _antenna_error(lever_m: np.ndarray, dt_s: float, z_m: np.ndarray, this, values, H):
    key_x, key_v = this.keys()
    pose = values.atPose3(key_x)
    v = values.atVector(key_v)
    R = pose.rotation().matrix()
    pred = pose.translation() + R @ lever_m + v * dt_s
    if H is not None:
        H[0] = np.hstack([-R @ skew(lever_m), R])
        H[1] = np.eye(3) * dt_s
    return pred - z_m


def antenna_position_factor(
    key_x: int, key_v: int, z_map_m, lever_base_m, dt_s: float, noise
) -> gtsam.CustomFactor:
    """GNSS antenna at lever arm `lever_base_m`, `dt_s` after the keyframe: p + R l + v dt = z."""
    fn = partial(
        _antenna_error, np.asarray(lever_base_m, float), float(dt_s), np.asarray(z_map_m, float)
    )
    return gtsam.CustomFactor(noise, [key_x, key_v], fn)


def _biased_antenna_error(lever_m: np.ndarray, z_m: np.ndarray, this, values, H):
    key_x, key_g = this.keys()
    pose = values.atPose3(key_x)
    R = pose.rotation().matrix()
    if H is not None:
        H[0] = np.hstack([-R @ skew(lever_m), R])
        H[1] = np.eye(3)
    return pose.translation() + R @ lever_m + values.atVector(key_g) - z_m


def biased_antenna_factor(key_x: int, key_g: int, z_map_m, lever_base_m, noise):
    """GNSS with a slowly varying error state g (multipath-free bias): p + R l + g = z."""
    fn = partial(_biased_antenna_error, np.asarray(lever_base_m, float), np.asarray(z_map_m, float))
    return gtsam.CustomFactor(noise, [key_x, key_g], fn)


def _body_velocity_error(speed_mps: float, this, values, H):
    key_x, key_v, key_s = this.keys()
    R = values.atPose3(key_x).rotation().matrix()
    v_body = R.T @ values.atVector(key_v)
    scale = values.atVector(key_s)[0]
    if H is not None:
        H[0] = np.hstack([skew(v_body), np.zeros((3, 3))])
        H[1] = R.T
        H[2] = np.array([[-speed_mps], [0.0], [0.0]])
    return v_body - np.array([scale * speed_mps, 0.0, 0.0])


def body_velocity_factor(
    key_x: int, key_v: int, key_scale: int, speed_mps: float, noise
) -> gtsam.CustomFactor:
    """Wheel speed with an estimated scale, plus the non-holonomic constraint:
    R^T v = (scale * speed, 0, 0)."""
    fn = partial(_body_velocity_error, float(speed_mps))
    return gtsam.CustomFactor(noise, [key_x, key_v, key_scale], fn)


def _nhc_error(this, values, H):
    key_x, key_v = this.keys()
    R = values.atPose3(key_x).rotation().matrix()
    v_body = R.T @ values.atVector(key_v)
    if H is not None:
        H[0] = np.hstack([skew(v_body), np.zeros((3, 3))])[1:]
        H[1] = R.T[1:]
    return v_body[1:]


def nonholonomic_factor(key_x: int, key_v: int, noise) -> gtsam.CustomFactor:
    """A car does not slide sideways or jump: body-frame velocity y and z are zero."""
    return gtsam.CustomFactor(noise, [key_x, key_v], _nhc_error)


def _wrap(a: float) -> float:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _planar(pose: gtsam.Pose3, with_z: bool = False) -> np.ndarray:
    R = pose.rotation().matrix()
    t = pose.translation()
    yaw = np.arctan2(R[1, 0], R[0, 0])
    return np.array([t[0], t[1], t[2], yaw] if with_z else [t[0], t[1], yaw])


def _planar_error(z: np.ndarray, this, values, H):
    pose = values.atPose3(this.keys()[0])
    with_z = len(z) == 4
    e = _planar(pose, with_z) - z
    e[-1] = _wrap(e[-1])
    if H is not None:
        n = len(z)
        J = np.zeros((n, 6))
        R = pose.rotation().matrix()
        J[: n - 1, 3:] = R[: n - 1, :]  # position rows: Pose3 retracts t by R dt
        for i in range(3):  # yaw w.r.t. the body rotation: central differences
            d = np.zeros(6)
            d[i] = 1e-6
            yp = _planar(pose.retract(d))[2]
            ym = _planar(pose.retract(-d))[2]
            J[-1, i] = _wrap(yp - ym) / 2e-6
        H[0] = J
    return e


def planar_pose_factor(key_x: int, xy_yaw, noise) -> gtsam.CustomFactor:
    """A map-localizer fix: x, y and yaw of base_link, z, roll and pitch left free; or
    x, y, z and yaw (4 values) when the fix measured its height (a nadir view's scale)."""
    z = np.asarray(xy_yaw, float)
    if len(z) not in (3, 4):
        raise ValueError(f"a planar fix has 3 or 4 values, got {len(z)}")
    return gtsam.CustomFactor(noise, [key_x], partial(_planar_error, z))


def gauss_markov_factor(key_a: int, key_b: int, phi: float, cov_q: np.ndarray):
    """A first-order Gauss-Markov step of a 3-vector: g_b = phi g_a + w, w ~ N(0, cov_q).

    The relation is linear, so it is GTSAM's own JacobianFactor in a LinearContainerFactor
    (linearised at zero: exact everywhere), with no Python callback to relinearise. A
    BetweenFactor (phi = 1) would be a random walk, whose variance grows without bound.
    """
    noise = gtsam.noiseModel.Gaussian.Covariance(np.asarray(cov_q, float))
    jf = gtsam.JacobianFactor(key_a, -phi * np.eye(3), key_b, np.eye(3), np.zeros(3), noise)
    at = gtsam.Values()
    at.insert(key_a, np.zeros(3))
    at.insert(key_b, np.zeros(3))
    return gtsam.LinearContainerFactor(jf, at)
