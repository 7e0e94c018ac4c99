"""UTM zone selection and projection, against known zones and pyproj directly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.utm import UtmProjection, utm_epsg_for

MM = 1e-3


@pytest.mark.parametrize(
    ("lat", "lon", "epsg"),
    [
        (47.3769, 8.5417, 32632),  # Zurich
        (37.77, -122.42, 32610),  # San Francisco
        (-33.8688, 151.2093, 32756),  # Sydney
        (-33.9249, 18.4241, 32734),  # Cape Town
        (-22.9068, -43.1729, 32723),  # Rio de Janeiro
        (51.5074, -0.1278, 32630),  # London
        (35.6762, 139.6503, 32654),  # Tokyo
        (0.5, 0.5, 32631),
        (-0.5, 0.5, 32731),
        (0.0, -179.5, 32601),
        (84.0, 100.0, 32647),
        (-80.0, -100.0, 32714),
    ],
)
def test_utm_epsg_known_points(lat, lon, epsg):
    assert utm_epsg_for(lat, lon) == epsg


# utm_epsg_for queries PROJ's database (~60 ms a call): keep these runs short.
@settings(max_examples=25, deadline=None)
@given(
    zone=st.integers(1, 60),
    dlon=st.floats(-2.999, 2.999, allow_nan=False),  # from the central meridian [deg]
    lat=st.floats(-80.0, -1e-6, allow_nan=False),
)
def test_southern_hemisphere_gives_327xx(zone, dlon, lat):
    lon = -183.0 + 6.0 * zone + dlon
    assert utm_epsg_for(lat, lon) == 32700 + zone


@settings(max_examples=25, deadline=None)
@given(
    zone=st.integers(1, 60),
    dlon=st.floats(-2.999, 2.999, allow_nan=False),
    lat=st.floats(0.0, 55.9, allow_nan=False),  # south of the Norway exception
)
def test_northern_hemisphere_nominal_zone(zone, dlon, lat):
    lon = -183.0 + 6.0 * zone + dlon
    assert utm_epsg_for(lat, lon) == 32600 + zone


@pytest.mark.parametrize(("lon", "epsg"), [(0.0, 32631), (6.0, 32632), (-6.0, 32630)])
def test_zone_boundary_takes_eastern_zone(lon, epsg):
    assert utm_epsg_for(10.0, lon) == epsg


@pytest.mark.parametrize(
    ("lat", "lon", "epsg"),
    [
        # Zone 32V is widened west to 3 E over south-west Norway (56..64 N).
        (60.0, 5.0, 32632),  # Bergen area; PROJ's EPSG areas of use only give 32631
        (60.39, 5.32, 32632),  # Bergen
        (58.97, 5.73, 32632),  # Stavanger
        (60.0, 2.9, 32631),  # west of the exception
        (55.9, 5.0, 32631),  # south of band V
        (64.1, 5.0, 32631),  # north of band V
        (60.0, 7.0, 32632),
        # Band X (72..84 N): only 31X, 33X, 35X, 37X exist.
        (78.22, 15.65, 32633),  # Longyearbyen
        (75.0, 8.9, 32631),
        (75.0, 10.0, 32633),
        (75.0, 25.0, 32635),
        (80.0, 40.0, 32637),
        (75.0, 43.0, 32638),  # east of the exception
        (75.0, -1.0, 32630),  # west of the exception
    ],
)
def test_norway_and_svalbard_exceptions(lat, lon, epsg):
    assert utm_epsg_for(lat, lon) == epsg


@pytest.mark.parametrize(("lat", "lon"), [(85.0, 0.0), (-80.5, 10.0), (90.0, 0.0)])
def test_outside_utm_rejected(lat, lon):
    with pytest.raises(InputRejected) as info:
        utm_epsg_for(lat, lon)
    assert info.value.reason == "utm"


def test_for_point_zone_and_crs():
    proj = UtmProjection.for_point(47.3769, 8.5417)
    assert proj.epsg == 32632
    assert proj.crs.to_epsg() == 32632
    e, n = proj.en_from_geodetic(47.3769, 8.5417)
    # Zurich: about 465 km east (west of the 9 E central meridian), 5247 km north.
    assert 460_000 < e < 470_000
    assert 5_240_000 < n < 5_255_000


def test_central_meridian_and_equator():
    proj = UtmProjection(32631)  # central meridian 3 E
    np.testing.assert_allclose(proj.en_from_geodetic(0.0, 3.0), [500_000.0, 0.0], atol=MM)
    south = UtmProjection(32731)
    np.testing.assert_allclose(
        south.en_from_geodetic(-1e-9, 3.0), [500_000.0, 10_000_000.0], atol=MM
    )


zone_points = st.tuples(
    st.integers(1, 60),
    st.booleans(),
    st.floats(-2.9, 2.9, allow_nan=False),  # offset from the central meridian [deg]
    st.floats(0.0, 80.0, allow_nan=False),  # |lat| [deg]
)


def _point(zp):
    zone, north, dlon, abs_lat = zp
    lon = (-183.0 + 6.0 * zone + dlon + 180.0) % 360.0 - 180.0
    lat = abs_lat if north else -abs_lat
    epsg = (32600 if north else 32700) + zone
    return epsg, lat, lon


@settings(max_examples=60, deadline=None)
@given(zp=zone_points)
def test_utm_round_trip(zp):
    epsg, lat, lon = _point(zp)
    proj = UtmProjection(epsg)
    e, n = proj.en_from_geodetic(lat, lon)
    lat2, lon2 = proj.geodetic_from_en(e, n)
    e2, n2 = proj.en_from_geodetic(lat2, lon2)
    assert abs(e2 - e) < MM and abs(n2 - n) < MM
    # 1e-8 deg is ~1 mm on the ground.
    assert abs(lat2 - lat) < 1e-8
    assert abs((lon2 - lon + 180.0) % 360.0 - 180.0) * np.cos(np.radians(lat)) < 1e-8


@settings(max_examples=60, deadline=None)
@given(zp=zone_points)
def test_utm_matches_pyproj_direct(zp):
    epsg, lat, lon = _point(zp)
    ref = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    e_ref, n_ref = ref.transform(lon, lat)
    np.testing.assert_allclose(
        UtmProjection(epsg).en_from_geodetic(lat, lon), [e_ref, n_ref], rtol=0, atol=MM
    )


def test_utm_vectorised():
    proj = UtmProjection(32610)
    rng = np.random.default_rng(11)
    lat = rng.uniform(30.0, 45.0, (3, 40))
    lon = rng.uniform(-125.0, -119.0, (3, 40))
    en = proj.en_from_geodetic(lat, lon)
    assert en.shape == (3, 40, 2)
    ref = Transformer.from_crs("EPSG:4326", "EPSG:32610", always_xy=True)
    e_ref, n_ref = ref.transform(lon, lat)
    np.testing.assert_allclose(en[..., 0], e_ref, atol=MM)
    np.testing.assert_allclose(en[..., 1], n_ref, atol=MM)
    lat2, lon2 = proj.geodetic_from_en(en[..., 0], en[..., 1])
    assert lat2.shape == lon2.shape == (3, 40)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)
    np.testing.assert_allclose(lon2, lon, atol=1e-9)
