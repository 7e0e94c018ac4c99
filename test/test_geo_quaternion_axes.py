"""Quaternion orders (ROS xyzw vs GTSAM wxyz) and REP-103 axis conventions."""

from __future__ import annotations

import math

import gtsam
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.axes import (
    R_ENU_NED,
    R_FLU_FRD,
    enu_from_ned,
    flu_from_frd,
    frd_from_flu,
    ned_from_enu,
    q_enu_flu_from_q_ned_frd,
    q_ned_frd_from_q_enu_flu,
)
from geoloc_ros.geo.quaternion import (
    matrix_from_xyzw,
    normalized_xyzw,
    rot3_from_xyzw,
    wxyz_from_xyzw,
    xyzw_from_matrix,
    xyzw_from_rot3,
    xyzw_from_rpy,
    xyzw_from_wxyz,
    yaw_from_xyzw,
)

S45 = math.sqrt(0.5)
Q_Z90 = np.array([0.0, 0.0, S45, S45])  # xyzw of +90 deg about z
R_Z90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)
vec4 = arrays(np.float64, 4, elements=finite)
vec3 = arrays(np.float64, 3, elements=finite)
batch4 = arrays(np.float64, st.tuples(st.integers(1, 5), st.just(4)), elements=finite)


@st.composite
def unit_quats(draw):
    """Unit quaternions (xyzw), either sign of w."""
    q = draw(arrays(np.float64, 4, elements=st.floats(-1.0, 1.0)))
    n = np.linalg.norm(q)
    assume(n > 0.1)
    return q / n


def _same_rotation(q1, q2, atol=1e-12):
    return np.allclose(q1, q2, atol=atol) or np.allclose(q1, -np.asarray(q2), atol=atol)


# --- xyzw <-> wxyz ---------------------------------------------------------------------


def test_order_known_values():
    np.testing.assert_array_equal(wxyz_from_xyzw([1.0, 2.0, 3.0, 4.0]), [4.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(xyzw_from_wxyz([4.0, 1.0, 2.0, 3.0]), [1.0, 2.0, 3.0, 4.0])


@settings(max_examples=100)
@given(q=vec4)
def test_xyzw_wxyz_round_trip(q):
    np.testing.assert_array_equal(xyzw_from_wxyz(wxyz_from_xyzw(q)), q)
    np.testing.assert_array_equal(wxyz_from_xyzw(xyzw_from_wxyz(q)), q)
    np.testing.assert_array_equal(wxyz_from_xyzw(q), [q[3], q[0], q[1], q[2]])


@settings(max_examples=50)
@given(q=batch4)
def test_xyzw_wxyz_batched(q):
    w = wxyz_from_xyzw(q)
    assert w.shape == q.shape
    np.testing.assert_array_equal(w[:, 0], q[:, 3])
    np.testing.assert_array_equal(w[:, 1:], q[:, :3])
    np.testing.assert_array_equal(xyzw_from_wxyz(w), q)


# --- matrices, GTSAM --------------------------------------------------------------------


def test_z90_matrix_and_gtsam_agree():
    np.testing.assert_allclose(matrix_from_xyzw(Q_Z90), R_Z90, atol=1e-15)
    # x axis of the child is y of the parent (active rotation R_parent_child).
    np.testing.assert_allclose(matrix_from_xyzw(Q_Z90) @ [1.0, 0, 0], [0, 1, 0], atol=1e-15)
    rot = rot3_from_xyzw(Q_Z90)
    np.testing.assert_allclose(rot.matrix(), R_Z90, atol=1e-15)
    np.testing.assert_allclose(rot.matrix(), gtsam.Rot3.Rz(math.pi / 2).matrix(), atol=1e-15)
    np.testing.assert_allclose(xyzw_from_rot3(rot), Q_Z90, atol=1e-15)
    assert yaw_from_xyzw(Q_Z90) == pytest.approx(math.pi / 2, abs=1e-15)


def test_non_symmetric_rotation_order():
    """A rotation whose quaternion components are all different, so any swap shows."""
    q = np.array([0.1, 0.2, 0.3, 0.9])
    q = q / np.linalg.norm(q)
    x, y, z, w = q
    rot = gtsam.Rot3.Quaternion(w, x, y, z)
    np.testing.assert_allclose(rot3_from_xyzw(q).matrix(), rot.matrix(), atol=1e-15)
    np.testing.assert_allclose(matrix_from_xyzw(q), rot.matrix(), atol=1e-14)
    gq = rot.toQuaternion()
    np.testing.assert_allclose([gq.x(), gq.y(), gq.z(), gq.w()], q, atol=1e-14)


@settings(max_examples=100)
@given(q=unit_quats())
def test_rot3_matches_matrix(q):
    rot = rot3_from_xyzw(q)
    np.testing.assert_allclose(rot.matrix(), matrix_from_xyzw(q), atol=1e-12)
    back = xyzw_from_rot3(rot)
    assert back[3] >= 0.0
    assert _same_rotation(back, q, atol=1e-12)
    np.testing.assert_allclose(xyzw_from_matrix(matrix_from_xyzw(q)), back, atol=1e-12)


@settings(max_examples=100)
@given(q=unit_quats(), v=vec3)
def test_matrix_is_hamilton_active_rotation(q, v):
    """R(q) v equals the Hamilton product q * (v, 0) * q^-1, computed by hand."""

    def mul(a, b):  # xyzw Hamilton product
        ax, ay, az, aw = a
        bx, by, bz, bw = b
        return np.array(
            [
                aw * bx + ax * bw + ay * bz - az * by,
                aw * by - ax * bz + ay * bw + az * bx,
                aw * bz + ax * by - ay * bx + az * bw,
                aw * bw - ax * bx - ay * by - az * bz,
            ]
        )

    q_conj = np.array([-q[0], -q[1], -q[2], q[3]])
    expected = mul(mul(q, [*v, 0.0]), q_conj)[:3]
    np.testing.assert_allclose(matrix_from_xyzw(q) @ v, expected, atol=1e-9)


# --- yaw, rpy ---------------------------------------------------------------------------


@settings(max_examples=100)
@given(
    roll=st.floats(-math.pi, math.pi),
    pitch=st.floats(-1.5, 1.5),
    yaw=st.floats(-math.pi + 1e-6, math.pi - 1e-6),
)
def test_yaw_from_rpy(roll, pitch, yaw):
    q = xyzw_from_rpy(roll, pitch, yaw)
    assert q[3] >= 0.0
    assert yaw_from_xyzw(q) == pytest.approx(yaw, abs=1e-9)
    # REP-103 fixed axes: R = Rz(yaw) Ry(pitch) Rx(roll).
    cr, sr, cp, sp, cy, sy = (
        math.cos(roll),
        math.sin(roll),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(yaw),
        math.sin(yaw),
    )
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    np.testing.assert_allclose(matrix_from_xyzw(q), Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(
        rot3_from_xyzw(q).matrix(), gtsam.Rot3.Ypr(yaw, pitch, roll).matrix(), atol=1e-12
    )


def test_yaw_known_values():
    assert yaw_from_xyzw([0.0, 0.0, 0.0, 1.0]) == 0.0
    assert yaw_from_xyzw(xyzw_from_rpy(0.0, 0.0, -0.3)) == pytest.approx(-0.3, abs=1e-15)
    assert abs(yaw_from_xyzw([0.0, 0.0, 1.0, 0.0])) == pytest.approx(math.pi, abs=1e-15)


# --- normalisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    [
        [np.nan, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, np.inf],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 2.0],
        [0.5, 0.5, 0.5, 0.4],
    ],
)
def test_normalized_rejects(q):
    with pytest.raises(InputRejected) as info:
        normalized_xyzw(q)
    assert info.value.reason == "quaternion"


@settings(max_examples=100)
@given(q=unit_quats(), scale=st.floats(0.9995, 1.0005))
def test_normalized_unit_w_nonnegative(q, scale):
    out = normalized_xyzw(q * scale)
    assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-15)
    assert out[3] >= 0.0
    assert _same_rotation(out, q, atol=1e-12)
    if q[3] < 0:
        np.testing.assert_allclose(out, -q, atol=1e-12)


def test_normalized_flips_sign():
    np.testing.assert_array_equal(normalized_xyzw([0.0, 0.0, -S45, -S45]), [0.0, 0.0, S45, S45])
    np.testing.assert_array_equal(normalized_xyzw([0.0, 0.0, 0.0, -1.0]), [0.0, 0.0, 0.0, 1.0])


# --- axes -------------------------------------------------------------------------------


def test_axis_matrices_are_half_turns():
    """Both changes keep right-handedness: they are 180 deg rotations, their own inverses."""
    for M in (R_ENU_NED, R_FLU_FRD):
        np.testing.assert_array_equal(M @ M, np.eye(3))
        np.testing.assert_array_equal(M, M.T)
        assert np.linalg.det(M) == pytest.approx(1.0)
        assert np.trace(M) == pytest.approx(-1.0)  # rotation angle pi


def test_known_vectors():
    np.testing.assert_array_equal(enu_from_ned([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0])  # north
    np.testing.assert_array_equal(enu_from_ned([0.0, 1.0, 0.0]), [1.0, 0.0, 0.0])  # east
    np.testing.assert_array_equal(enu_from_ned([0.0, 0.0, 1.0]), [0.0, 0.0, -1.0])  # down
    np.testing.assert_array_equal(ned_from_enu([0.0, 0.0, 1.0]), [0.0, 0.0, -1.0])  # up
    np.testing.assert_array_equal(ned_from_enu([1.0, 2.0, 3.0]), [2.0, 1.0, -3.0])
    np.testing.assert_array_equal(flu_from_frd([1.0, 0.0, 0.0]), [1.0, 0.0, 0.0])  # forward
    np.testing.assert_array_equal(flu_from_frd([0.0, 1.0, 0.0]), [0.0, -1.0, 0.0])  # right
    np.testing.assert_array_equal(flu_from_frd([0.0, 0.0, 1.0]), [0.0, 0.0, -1.0])  # down
    np.testing.assert_array_equal(frd_from_flu([1.0, 2.0, 3.0]), [1.0, -2.0, -3.0])


@settings(max_examples=100)
@given(v=arrays(np.float64, st.tuples(st.integers(1, 4), st.just(3)), elements=finite))
def test_axis_maps_are_involutions(v):
    np.testing.assert_array_equal(ned_from_enu(enu_from_ned(v)), v)
    np.testing.assert_array_equal(enu_from_ned(ned_from_enu(v)), v)
    np.testing.assert_array_equal(frd_from_flu(flu_from_frd(v)), v)
    np.testing.assert_array_equal(flu_from_frd(frd_from_flu(v)), v)
    assert enu_from_ned(v).shape == v.shape
    np.testing.assert_array_equal(enu_from_ned(v)[:, 2], -v[:, 2])
    np.testing.assert_array_equal(enu_from_ned(v)[:, 0], v[:, 1])


def test_identity_ned_frd_is_facing_north_in_enu():
    q = q_enu_flu_from_q_ned_frd([0.0, 0.0, 0.0, 1.0])
    assert yaw_from_xyzw(q) == pytest.approx(math.pi / 2, abs=1e-12)
    np.testing.assert_allclose(q, Q_Z90, atol=1e-12)
    # The body's forward axis points north, its left axis west, its up axis up.
    R = matrix_from_xyzw(q)
    np.testing.assert_allclose(R @ [1.0, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [0, 1.0, 0], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [0, 0, 1.0], [0, 0, 1], atol=1e-12)


@pytest.mark.parametrize(
    ("heading_ned_deg", "yaw_enu_deg"),
    [(0.0, 90.0), (90.0, 0.0), (180.0, -90.0), (-90.0, 180.0), (45.0, 45.0), (30.0, 60.0)],
)
def test_heading_conversion(heading_ned_deg, yaw_enu_deg):
    """NED heading is clockwise from north; ENU yaw is counter-clockwise from east."""
    q_ned = Rotation.from_euler("z", heading_ned_deg, degrees=True).as_quat()
    yaw = math.degrees(yaw_from_xyzw(q_enu_flu_from_q_ned_frd(q_ned)))
    assert (yaw - yaw_enu_deg + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=100)
@given(q=unit_quats(), v=vec3)
def test_attitude_conversion_consistent_with_vectors(q, v):
    """Rotating a body vector then changing axes equals changing axes then rotating."""
    q_enu = q_enu_flu_from_q_ned_frd(q)
    assert q_enu[3] >= 0.0
    lhs = enu_from_ned(matrix_from_xyzw(q) @ v)  # FRD body vector -> NED -> ENU
    rhs = matrix_from_xyzw(q_enu) @ flu_from_frd(v)  # FRD -> FLU -> ENU
    np.testing.assert_allclose(lhs, rhs, atol=1e-9)
    back = q_ned_frd_from_q_enu_flu(q_enu)
    assert _same_rotation(back, q, atol=1e-12)
    # Up to sign: with w == 0 both q and -q have w >= 0.
    assert _same_rotation(q_enu_flu_from_q_ned_frd(q_ned_frd_from_q_enu_flu(q_enu)), q_enu)
