"""6x6 pose covariances: validation, ROS <-> GTSAM conventions, composition.

The Monte-Carlo tests use GTSAM's own retraction and plain matrix algebra as the reference,
independent of the formulas in geoloc_ros.geo.covariance.
"""

from __future__ import annotations

import gtsam
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.covariance import (
    adjoint_gtsam,
    check_covariance,
    cov_gtsam_from_ros,
    cov_ros_from_gtsam,
    cov_ros_of_composition,
    rotate_cov_ros,
)

N_SAMPLES = 20_000
REL_TOL = 0.05  # Monte-Carlo: ~1-2 % sampling noise at 20000 samples, plus 2nd-order terms


@st.composite
def rotations(draw) -> np.ndarray:
    q = draw(arrays(np.float64, 4, elements=st.floats(-1.0, 1.0)))
    n = np.linalg.norm(q)
    assume(n > 0.1)
    return Rotation.from_quat(q / n).as_matrix()


@st.composite
def spd6(draw) -> np.ndarray:
    A = draw(arrays(np.float64, (6, 6), elements=st.floats(-2.0, 2.0)))
    return A @ A.T + 0.1 * np.eye(6)


@st.composite
def poses(draw) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = draw(rotations())
    T[:3, 3] = draw(arrays(np.float64, 3, elements=st.floats(-50.0, 50.0)))
    return T


def _random_rotation(rng) -> np.ndarray:
    return Rotation.random(random_state=rng).as_matrix()


def _small_cov(rng, lo=1e-3, hi=1e-2) -> np.ndarray:
    """Correlated 6x6 covariance with standard deviations in [lo, hi]."""
    sig = rng.uniform(lo, hi, 6)
    A = rng.normal(size=(6, 6))
    corr = A @ A.T + 0.5 * np.eye(6)
    d = np.sqrt(np.diag(corr))
    corr = corr / np.outer(d, d)
    return corr * np.outer(sig, sig)


def _rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _ros_errors(T, T_hat) -> np.ndarray:
    """ROS-convention [t - t_hat, rotvec(R R_hat^T)] of a batch of transforms (N, 4, 4)."""
    dp = T[:, :3, 3] - T_hat[:3, 3]
    dR = T[:, :3, :3] @ T_hat[:3, :3].T
    return np.concatenate([dp, Rotation.from_matrix(dR).as_rotvec()], axis=1)


# --- check_covariance -------------------------------------------------------------------


@settings(max_examples=50)
@given(c=spd6())
def test_check_accepts_spd(c):
    out = check_covariance(c.ravel(), 6)
    assert out.shape == (6, 6)
    np.testing.assert_array_equal(out, c)


def test_check_accepts_psd_and_ros_flat_list():
    c = np.diag([1.0, 1.0, 1.0, 1e-6, 1e-6, 1e-6])
    c[0, 1] = c[1, 0] = 1.0  # rank-deficient but PSD
    assert check_covariance(c.ravel().tolist(), 6).shape == (6, 6)
    assert check_covariance(np.eye(3) * 2.0, 3).shape == (3, 3)


def _bad(kind: str) -> np.ndarray:
    c = np.eye(6)
    if kind == "nan":
        c[2, 2] = np.nan
    elif kind == "inf":
        c[1, 4] = c[4, 1] = np.inf
    elif kind == "asymmetric":
        c[0, 1] = 0.5
    elif kind == "zero_variance":
        c[3, 3] = 0.0
    elif kind == "negative_variance":
        c[5, 5] = -1.0
    elif kind == "indefinite":
        c[0, 1] = c[1, 0] = 2.0  # eigenvalues -1 and 3
    elif kind == "all_zero":
        c = np.zeros((6, 6))
    return c


@pytest.mark.parametrize(
    "kind",
    ["nan", "inf", "asymmetric", "zero_variance", "negative_variance", "indefinite", "all_zero"],
)
def test_check_rejects(kind):
    with pytest.raises(InputRejected) as info:
        check_covariance(_bad(kind), 6)
    assert info.value.reason == "covariance"


@pytest.mark.parametrize("shape", [(5, 5), (35,), (37,), (3, 3), (0,)])
def test_check_rejects_wrong_size(shape):
    with pytest.raises(InputRejected):
        check_covariance(np.ones(shape), 6)


@settings(max_examples=50)
@given(c=spd6(), i=st.integers(0, 5), j=st.integers(0, 5))
def test_check_rejects_asymmetric_perturbation(c, i, j):
    assume(i != j)
    c = c.copy()
    c[i, j] += 1e-3 * np.abs(c).max()
    with pytest.raises(InputRejected):
        check_covariance(c, 6)


# --- ROS <-> GTSAM ----------------------------------------------------------------------


@settings(max_examples=100)
@given(c=spd6(), R=rotations())
def test_ros_gtsam_round_trip(c, R):
    tol = 1e-12 * np.abs(c).max()
    ros = cov_ros_from_gtsam(c, R)
    np.testing.assert_allclose(cov_gtsam_from_ros(ros, R), c, rtol=0, atol=tol)
    np.testing.assert_allclose(cov_ros_from_gtsam(cov_gtsam_from_ros(c, R), R), c, atol=tol)
    np.testing.assert_allclose(ros, ros.T, atol=tol)
    # Blocks trade places: ROS position variance is the rotated GTSAM translation block.
    np.testing.assert_allclose(ros[:3, :3], R @ c[3:, 3:] @ R.T, atol=tol)
    np.testing.assert_allclose(ros[3:, 3:], R @ c[:3, :3] @ R.T, atol=tol)
    np.testing.assert_allclose(ros[:3, 3:], R @ c[3:, :3] @ R.T, atol=tol)


def test_ros_from_gtsam_identity_swaps_blocks():
    c = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(
        np.diag(cov_ros_from_gtsam(c, np.eye(3))), [4.0, 5.0, 6.0, 1.0, 2.0, 3.0]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ros_from_gtsam_monte_carlo(seed):
    rng = np.random.default_rng(seed)
    R_hat = _random_rotation(rng)
    t_hat = rng.uniform(-100.0, 100.0, 3)
    T_hat = gtsam.Pose3(gtsam.Rot3(R_hat), t_hat)
    C = _small_cov(rng)
    xi = rng.multivariate_normal(np.zeros(6), C, size=N_SAMPLES)
    T = np.stack([T_hat.retract(x).matrix() for x in xi])
    errs = _ros_errors(T, T_hat.matrix())
    emp = np.cov(errs, rowvar=False)
    expected = cov_ros_from_gtsam(C, R_hat)
    assert _rel_err(emp, expected) < REL_TOL
    # The test can tell the conventions apart: the unrotated or unswapped versions are far off.
    assert _rel_err(emp, cov_ros_from_gtsam(C, R_hat.T)) > 4 * REL_TOL
    assert _rel_err(emp, C) > 4 * REL_TOL


@settings(max_examples=100)
@given(T=poses())
def test_adjoint_matches_gtsam(T):
    expected = gtsam.Pose3(T).AdjointMap()
    np.testing.assert_allclose(adjoint_gtsam(T), expected, rtol=0, atol=1e-12)


@settings(max_examples=50)
@given(T=poses(), xi=arrays(np.float64, 6, elements=st.floats(-1.0, 1.0)))
def test_adjoint_moves_tangent_vectors(T, xi):
    """T Exp(xi) T^-1 == Exp(Ad(T) xi): the defining property, through GTSAM's Expmap."""
    P = gtsam.Pose3(T)
    lhs = (P * gtsam.Pose3.Expmap(xi) * P.inverse()).matrix()
    rhs = gtsam.Pose3.Expmap(adjoint_gtsam(T) @ xi).matrix()
    np.testing.assert_allclose(lhs, rhs, atol=1e-9)


# --- composition ------------------------------------------------------------------------


def _compose_case(rng, lever_m=2.0):
    T_a_b = np.eye(4)
    T_a_b[:3, :3] = _random_rotation(rng)
    T_a_b[:3, 3] = rng.uniform(-50.0, 50.0, 3)
    T_b_c = np.eye(4)
    T_b_c[:3, :3] = _random_rotation(rng)
    v = rng.normal(size=3)
    T_b_c[:3, 3] = lever_m * v / np.linalg.norm(v)
    return T_a_b, T_b_c


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_composition_monte_carlo(seed):
    rng = np.random.default_rng(seed)
    T_a_b, T_b_c = _compose_case(rng)
    cov_ros = _small_cov(rng)  # [p, theta] about a's axes
    errs_ab = rng.multivariate_normal(np.zeros(6), cov_ros, size=N_SAMPLES)
    # Perturb T_a_b in the ROS convention, then compose with the exact extrinsic.
    T = np.repeat(T_a_b[None], N_SAMPLES, axis=0)
    T[:, :3, 3] += errs_ab[:, :3]
    T[:, :3, :3] = Rotation.from_rotvec(errs_ab[:, 3:]).as_matrix() @ T_a_b[:3, :3]
    T_a_c = T_a_b @ T_b_c
    errs_ac = _ros_errors(T @ T_b_c, T_a_c)
    emp = np.cov(errs_ac, rowvar=False)
    expected = cov_ros_of_composition(T_a_b, cov_ros, T_b_c)
    assert _rel_err(emp, expected) < REL_TOL
    # The lever arm matters: ignoring it (plain copy of the covariance) is far off.
    assert _rel_err(emp, cov_ros) > 4 * REL_TOL


def test_composition_lever_arm_known_answer():
    """Pure yaw uncertainty about a's z with a 1 m lever along x: y position variance."""
    var_yaw = 1e-4
    cov = np.diag([1e-9, 1e-9, 1e-9, 1e-9, 1e-9, var_yaw])
    T_b_c = np.eye(4)
    T_b_c[0, 3] = 1.0
    out = cov_ros_of_composition(np.eye(4), cov, T_b_c)
    assert out[1, 1] == pytest.approx(1e-9 + var_yaw, rel=1e-9)
    assert out[1, 5] == pytest.approx(var_yaw, rel=1e-9)  # d_y = +1 m * d_yaw
    assert out[0, 0] == pytest.approx(1e-9, rel=1e-6)
    assert out[5, 5] == pytest.approx(var_yaw, rel=1e-9)


@settings(max_examples=50)
@given(T=poses(), c=spd6())
def test_composition_with_identity_returns_input(T, c):
    out = cov_ros_of_composition(T, c, np.eye(4))
    np.testing.assert_allclose(out, c, rtol=0, atol=1e-9 * np.abs(c).max())


@settings(max_examples=50)
@given(T=poses(), c=spd6(), R=rotations())
def test_composition_pure_rotation_extrinsic_keeps_covariance(T, c, R):
    """A rotation-only extrinsic leaves the ROS covariance unchanged (parent-frame errors)."""
    T_b_c = np.eye(4)
    T_b_c[:3, :3] = R
    out = cov_ros_of_composition(T, c, T_b_c)
    np.testing.assert_allclose(out, c, rtol=0, atol=1e-9 * np.abs(c).max())


# --- rotate_cov_ros ---------------------------------------------------------------------


@settings(max_examples=100)
@given(c=spd6(), R=rotations())
def test_rotate_cov_keeps_eigenvalues(c, R):
    out = rotate_cov_ros(c, R)
    scale = np.abs(c).max()
    np.testing.assert_allclose(np.linalg.eigvalsh(out), np.linalg.eigvalsh(c), atol=1e-9 * scale)
    # Each 3x3 block keeps its own eigenvalues (no mixing of position and rotation).
    np.testing.assert_allclose(
        np.linalg.eigvalsh(out[:3, :3]), np.linalg.eigvalsh(c[:3, :3]), atol=1e-9 * scale
    )
    np.testing.assert_allclose(out[:3, :3], R @ c[:3, :3] @ R.T, atol=1e-9 * scale)
    np.testing.assert_allclose(rotate_cov_ros(out, R.T), c, atol=1e-9 * scale)


def test_rotate_cov_known_answer():
    c = np.diag([4.0, 1.0, 9.0, 0.1, 0.2, 0.3])
    Rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = rotate_cov_ros(c, Rz90)
    np.testing.assert_allclose(np.diag(out), [1.0, 4.0, 9.0, 0.2, 0.1, 0.3], atol=1e-15)
