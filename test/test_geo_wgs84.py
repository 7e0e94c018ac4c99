"""WGS84 geodetic <-> ECEF <-> ENU against PROJ (pyproj), plus round trips and frames."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.wgs84 import (
    LocalTangentPlane,
    R_enu_ecef,
    ecef_from_geodetic,
    geodetic_from_ecef,
)

MM = 1e-3

lats = st.floats(-89.9, 89.9, allow_nan=False)
lats_full = st.floats(-90.0, 90.0, allow_nan=False)
lons = st.floats(-180.0, 180.0, allow_nan=False)
alts = st.floats(-500.0, 50_000.0, allow_nan=False)


@functools.cache
def _geo_to_ecef() -> Transformer:
    return Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


@functools.cache
def _ecef_to_geo() -> Transformer:
    return Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


@functools.cache
def _topocentric(lat0: float, lon0: float, h0: float) -> Transformer:
    return Transformer.from_pipeline(
        "+proj=pipeline +step +proj=cart +ellps=WGS84 "
        f"+step +proj=topocentric +ellps=WGS84 +lat_0={lat0!r} +lon_0={lon0!r} +h_0={h0!r}"
    )


def _proj_ecef(lat, lon, alt) -> np.ndarray:
    x, y, z = _geo_to_ecef().transform(lon, lat, alt)
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def _proj_enu(lat0, lon0, h0, lat, lon, alt) -> np.ndarray:
    e, n, u = _topocentric(lat0, lon0, h0).transform(lon, lat, alt)
    return np.stack(np.broadcast_arrays(e, n, u), axis=-1)


def _dlon_deg(a, b) -> np.ndarray:
    """Signed longitude difference wrapped to [-180, 180)."""
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0


# --- ECEF <-> geodetic ----------------------------------------------------------------


def test_ecef_known_points():
    a, b = 6378137.0, 6356752.314245179
    np.testing.assert_allclose(ecef_from_geodetic(0.0, 0.0, 0.0), [a, 0, 0], atol=MM)
    np.testing.assert_allclose(ecef_from_geodetic(0.0, 90.0, 0.0), [0, a, 0], atol=MM)
    np.testing.assert_allclose(ecef_from_geodetic(0.0, 180.0, 10.0), [-a - 10, 0, 0], atol=MM)
    np.testing.assert_allclose(ecef_from_geodetic(90.0, 0.0, 0.0), [0, 0, b], atol=MM)
    np.testing.assert_allclose(ecef_from_geodetic(-90.0, 33.0, 5.0), [0, 0, -b - 5], atol=MM)


@settings(max_examples=100, deadline=None)
@given(lat=lats, lon=lons, alt=alts)
def test_ecef_from_geodetic_matches_proj(lat, lon, alt):
    ours = ecef_from_geodetic(lat, lon, alt)
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours, _proj_ecef(lat, lon, alt), rtol=0, atol=MM)


@settings(max_examples=100, deadline=None)
@given(lat=lats, lon=lons, alt=alts)
def test_geodetic_from_ecef_matches_proj(lat, lon, alt):
    x, y, z = _proj_ecef(lat, lon, alt)
    lon_p, lat_p, alt_p = _ecef_to_geo().transform(x, y, z)
    lat_o, lon_o, alt_o = geodetic_from_ecef([x, y, z])
    # Compare positions on the ground: 1e-8 deg is ~1 mm of latitude at the equator.
    assert abs(lat_o - lat_p) < 1e-8
    assert abs(_dlon_deg(lon_o, lon_p)) * np.cos(np.radians(lat)) < 1e-8
    assert abs(alt_o - alt_p) < MM


@settings(max_examples=50, deadline=None)
@given(lat=lats, lon=lons, alt=alts)
def test_one_point_path_matches_the_vectorised_one(lat, lon, alt):
    """Python floats take a math-module path; it agrees with numpy's to rounding."""
    one = ecef_from_geodetic(float(lat), float(lon), float(alt))
    vec = ecef_from_geodetic(np.array([lat]), np.array([lon]), np.array([alt]))[0]
    np.testing.assert_allclose(one, vec, rtol=0, atol=1e-8)


def test_vectorised_matches_proj():
    rng = np.random.default_rng(7)
    shape = (4, 50)
    lat = rng.uniform(-89.9, 89.9, shape)
    lon = rng.uniform(-180.0, 180.0, shape)
    alt = rng.uniform(-500.0, 50_000.0, shape)
    ours = ecef_from_geodetic(lat, lon, alt)
    assert ours.shape == (*shape, 3)
    ref = _proj_ecef(lat, lon, alt)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=MM)
    # Each element is the scalar result: no mixing along the leading axes.
    np.testing.assert_array_equal(
        ours[2, 17], ecef_from_geodetic(lat[2, 17], lon[2, 17], alt[2, 17])
    )

    lat_o, lon_o, alt_o = geodetic_from_ecef(ref)
    assert lat_o.shape == lon_o.shape == alt_o.shape == shape
    np.testing.assert_allclose(lat_o, lat, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_dlon_deg(lon_o, lon), 0.0, atol=1e-9)
    np.testing.assert_allclose(alt_o, alt, rtol=0, atol=MM)


def test_broadcasting_scalar_altitude():
    lat = np.array([0.0, 45.0, -30.0])
    lon = np.array([10.0, -20.0, 170.0])
    ours = ecef_from_geodetic(lat, lon, 100.0)
    assert ours.shape == (3, 3)
    np.testing.assert_allclose(ours, _proj_ecef(lat, lon, np.full(3, 100.0)), atol=MM)


def _assert_round_trip(lat, lon, alt):
    lat_o, lon_o, alt_o = geodetic_from_ecef(ecef_from_geodetic(lat, lon, alt))
    assert abs(lat_o - lat) < 1e-9
    if abs(lat) < 90.0:  # longitude is undefined at the poles
        assert abs(_dlon_deg(lon_o, lon)) < 1e-9
    assert abs(alt_o - alt) < MM


@settings(max_examples=100, deadline=None)
@given(lat=lats_full, lon=lons, alt=alts)
def test_round_trip_geodetic_ecef(lat, lon, alt):
    _assert_round_trip(lat, lon, alt)


@pytest.mark.parametrize("lat", [90.0, -90.0, 0.0, 89.9999999, -89.9999999, 1e-12])
@pytest.mark.parametrize("lon", [0.0, 179.999, -180.0, 42.0])
@pytest.mark.parametrize("alt", [-500.0, 0.0, 50_000.0])
def test_round_trip_poles_and_equator(lat, lon, alt):
    _assert_round_trip(lat, lon, alt)


@pytest.mark.parametrize("alt", [400e3, 20_200e3, 35_786e3])  # LEO, GNSS, geostationary
@pytest.mark.parametrize("lat", [-60.0, 0.3, 45.0, 80.0])
def test_round_trip_orbit(lat, alt):
    """The docstring promises convergence from the surface to orbit.

    Only the forward map is compared with PROJ here: PROJ's closed-form inverse is itself
    off by ~1e-7 deg at these heights.
    """
    np.testing.assert_allclose(
        ecef_from_geodetic(lat, 10.0, alt), _proj_ecef(lat, 10.0, alt), rtol=0, atol=MM
    )
    _assert_round_trip(lat, 10.0, alt)


def test_geodetic_from_ecef_exact_pole_axis():
    b = 6356752.314245179
    lat, _lon, alt = geodetic_from_ecef([0.0, 0.0, b + 123.0])
    assert lat == pytest.approx(90.0, abs=1e-12)
    assert alt == pytest.approx(123.0, abs=MM)
    lat, _lon, alt = geodetic_from_ecef([0.0, 0.0, -b])
    assert lat == pytest.approx(-90.0, abs=1e-12)
    assert alt == pytest.approx(0.0, abs=MM)


def test_geodetic_from_ecef_rejects_bad_shape():
    with pytest.raises(InputRejected):
        geodetic_from_ecef([1.0, 2.0])


# --- Local tangent plane (ENU) ----------------------------------------------------------


def test_proj_topocentric_pipeline_sanity():
    """The PROJ reference itself: datum -> origin, 100 m up -> (0, 0, 100), degrees in."""
    np.testing.assert_allclose(_proj_enu(47.0, 8.0, 400.0, 47.0, 8.0, 400.0), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        _proj_enu(47.0, 8.0, 400.0, 47.0, 8.0, 500.0), [0, 0, 100], atol=1e-6
    )
    e, n, _u = _proj_enu(47.0, 8.0, 400.0, 47.0, 8.001, 400.0)
    assert 70.0 < e < 80.0 and abs(n) < 0.1  # 0.001 deg of longitude at 47 N is ~76 m east


def test_ltp_known_directions():
    ltp = LocalTangentPlane(47.0, 8.0, 400.0)
    np.testing.assert_allclose(ltp.enu_from_geodetic(47.0, 8.0, 400.0), 0.0, atol=1e-9)
    np.testing.assert_allclose(ltp.enu_from_geodetic(47.0, 8.0, 500.0), [0, 0, 100], atol=1e-6)
    e, n, u = ltp.enu_from_geodetic(47.001, 8.0, 400.0)
    assert 100.0 < n < 120.0 and abs(e) < 1e-6 and u < 0.0  # north, curving down
    e, n, u = ltp.enu_from_geodetic(47.0, 7.999, 400.0)
    assert e < -70.0 and u < 0.0  # west


datums = st.tuples(
    st.floats(-89.0, 89.0, allow_nan=False),
    st.floats(-180.0, 180.0, allow_nan=False),
    st.floats(-500.0, 5_000.0, allow_nan=False),
)
# East, north [m] within ~15 km of the datum, and a height offset [m].
offsets = st.tuples(
    st.floats(-15_000.0, 15_000.0, allow_nan=False),
    st.floats(-15_000.0, 15_000.0, allow_nan=False),
    st.floats(-1_000.0, 3_000.0, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(datum=datums, off=offsets)
def test_enu_from_geodetic_matches_proj_topocentric(datum, off):
    lat0, lon0, h0 = datum
    de, dn, du = off
    lat = float(np.clip(lat0 + dn / 111_000.0, -90.0, 90.0))
    lon = lon0 + de / (111_000.0 * np.cos(np.radians(lat0)))
    alt = h0 + du
    ltp = LocalTangentPlane(lat0, lon0, h0)
    ours = ltp.enu_from_geodetic(lat, lon, alt)
    assert np.linalg.norm(ours[:2]) < 25_000.0
    np.testing.assert_allclose(ours, _proj_enu(lat0, lon0, h0, lat, lon, alt), rtol=0, atol=MM)


def test_enu_vectorised_matches_proj():
    lat0, lon0, h0 = -33.86, 151.21, 30.0
    rng = np.random.default_rng(3)
    lat = lat0 + rng.uniform(-0.15, 0.15, 200)
    lon = lon0 + rng.uniform(-0.2, 0.2, 200)
    alt = h0 + rng.uniform(-100.0, 2_000.0, 200)
    ours = LocalTangentPlane(lat0, lon0, h0).enu_from_geodetic(lat, lon, alt)
    assert ours.shape == (200, 3)
    np.testing.assert_allclose(ours, _proj_enu(lat0, lon0, h0, lat, lon, alt), atol=MM)


@settings(max_examples=100, deadline=None)
@given(
    datum=datums,
    enu=st.tuples(
        st.floats(-20_000.0, 20_000.0, allow_nan=False),
        st.floats(-20_000.0, 20_000.0, allow_nan=False),
        st.floats(-1_000.0, 5_000.0, allow_nan=False),
    ),
)
def test_enu_round_trip(datum, enu):
    ltp = LocalTangentPlane(*datum)
    p = np.array(enu)
    lat, lon, alt = ltp.geodetic_from_enu(p)
    np.testing.assert_allclose(ltp.enu_from_geodetic(lat, lon, alt), p, rtol=0, atol=MM)
    np.testing.assert_allclose(ltp.enu_from_ecef(ltp.ecef_from_enu(p)), p, rtol=0, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(lat=lats_full, lon=lons)
def test_R_enu_ecef_is_a_rotation(lat, lon):
    R = R_enu_ecef(lat, lon)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    # Its up row is the ellipsoid normal: the direction of d(ECEF)/d(alt).
    d_up = ecef_from_geodetic(lat, lon, 1.0) - ecef_from_geodetic(lat, lon, 0.0)
    np.testing.assert_allclose(R[2], d_up, atol=1e-6)


def test_R_enu_ecef_at_origin():
    R = R_enu_ecef(0.0, 0.0)
    np.testing.assert_allclose(R @ [1.0, 0, 0], [0, 0, 1], atol=1e-15)  # ECEF x -> up
    np.testing.assert_allclose(R @ [0, 1.0, 0], [1, 0, 0], atol=1e-15)  # ECEF y -> east
    np.testing.assert_allclose(R @ [0, 0, 1.0], [0, 1, 0], atol=1e-15)  # ECEF z -> north
    np.testing.assert_allclose(R_enu_ecef(90.0, 0.0) @ [0, 0, 1.0], [0, 0, 1], atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(datum=datums)
def test_R_enu_ecef_at_is_identity_at_datum(datum):
    ltp = LocalTangentPlane(*datum)
    np.testing.assert_allclose(ltp.R_enu_ecef_at(datum[0], datum[1]), np.eye(3), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(datum=datums, dlat=st.floats(-1.0, 1.0), dlon=st.floats(-1.0, 1.0))
def test_R_enu_ecef_at_rotates_covariance_consistently(datum, dlat, dlon):
    lat0, lon0, h0 = datum
    lat = float(np.clip(lat0 + dlat, -90, 90))
    lon = (lon0 + dlon + 180.0) % 360.0 - 180.0
    ltp = LocalTangentPlane(lat0, lon0, h0)
    R = ltp.R_enu_ecef_at(lat, lon)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    # A covariance reported in the ENU plane at the fix, propagated into the map frame
    # through the geodesy (Jacobian of map-ENU w.r.t. fix-ENU displacements, by finite
    # differences through a tangent plane at the fix), equals R @ C @ R.T.
    at_fix = LocalTangentPlane(lat, lon, h0)
    base = ltp.enu_from_ecef(at_fix.ecef_from_enu(np.zeros(3)))
    J = np.stack([ltp.enu_from_ecef(at_fix.ecef_from_enu(e)) - base for e in np.eye(3)], axis=1)
    cov_fix = np.array([[4.0, 1.5, 0.3], [1.5, 1.0, -0.2], [0.3, -0.2, 9.0]])
    np.testing.assert_allclose(R @ cov_fix @ R.T, J @ cov_fix @ J.T, atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(R @ cov_fix @ R.T), np.linalg.eigvalsh(cov_fix), atol=1e-9
    )


def test_R_enu_ecef_at_far_point_is_not_identity():
    ltp = LocalTangentPlane(0.0, 0.0)
    R = ltp.R_enu_ecef_at(0.0, 90.0)
    # Local up at lon 90 is ECEF y, which is this map's east.
    np.testing.assert_allclose(R @ [0, 0, 1.0], [1, 0, 0], atol=1e-12)


@pytest.mark.parametrize(
    "datum",
    [
        (np.nan, 8.0, 0.0),
        (47.0, np.nan, 0.0),
        (47.0, 8.0, np.nan),
        (47.0, 8.0, np.inf),
        (95.0, 8.0, 0.0),
        (-90.5, 8.0, 0.0),
        (47.0, -181.0, 0.0),
    ],
)
def test_invalid_datum_rejected(datum):
    with pytest.raises(InputRejected) as info:
        LocalTangentPlane(*datum)
    assert info.value.reason == "datum"


@pytest.mark.parametrize("datum", [(90.0, 0.0, 0.0), (-90.0, 180.0, -400.0), (0.0, -180.0)])
def test_edge_datums_accepted(datum):
    LocalTangentPlane(*datum)
