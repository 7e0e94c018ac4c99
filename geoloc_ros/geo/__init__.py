"""Geodesy and frames: WGS84 / ECEF / local ENU, UTM, REP-103 axes, quaternions, covariances."""

from geoloc_ros.geo.wgs84 import (
    LocalTangentPlane,
    R_enu_ecef,
    ecef_from_geodetic,
    geodetic_from_ecef,
)

__all__ = ["LocalTangentPlane", "R_enu_ecef", "ecef_from_geodetic", "geodetic_from_ecef"]
