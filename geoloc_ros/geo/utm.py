"""UTM projection through pyproj: the CRS of the project's GeoTIFF rasters."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from geoloc_ros.errors import InputRejected


def utm_epsg_for(lat_deg: float, lon_deg: float) -> int:
    """EPSG code of the WGS84 UTM zone containing (lat, lon), from PROJ's database."""
    if not (-80.0 <= lat_deg <= 84.0):
        raise InputRejected(f"latitude {lat_deg} is outside UTM coverage (-80..84)", "utm")
    infos = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(lon_deg, lat_deg, lon_deg, lat_deg),
    )
    if not infos:
        raise InputRejected(f"no UTM zone found for ({lat_deg}, {lon_deg})", "utm")
    # PROJ returns every zone whose area touches the point; prefer the nominal zone.
    nominal = int((lon_deg + 180.0) // 6.0) % 60 + 1
    # UTM grid exceptions, absent from EPSG's 6-degree areas of use: zone 32V is widened
    # over south-west Norway, and around Svalbard only 31X, 33X, 35X and 37X exist.
    exception = True
    if 56.0 <= lat_deg < 64.0 and 3.0 <= lon_deg < 12.0:
        nominal = 32
    elif lat_deg >= 72.0 and 0.0 <= lon_deg < 42.0:
        nominal = 31 if lon_deg < 9.0 else 33 if lon_deg < 21.0 else 35 if lon_deg < 33.0 else 37
    else:
        exception = False
    codes = [int(i.code) for i in infos]
    wanted = (32600 if lat_deg >= 0 else 32700) + nominal
    return wanted if exception or wanted in codes else codes[0]


@dataclass(frozen=True)
class UtmProjection:
    """Forward and inverse WGS84 <-> UTM (easting, northing) for one zone."""

    epsg: int
    _fwd: Transformer = field(init=False, repr=False, compare=False)
    _inv: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        crs = CRS.from_epsg(self.epsg)
        object.__setattr__(self, "_fwd", Transformer.from_crs(4326, crs, always_xy=True))
        object.__setattr__(self, "_inv", Transformer.from_crs(crs, 4326, always_xy=True))

    @classmethod
    def for_point(cls, lat_deg: float, lon_deg: float) -> UtmProjection:
        return cls(utm_epsg_for(lat_deg, lon_deg))

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.epsg)

    def en_from_geodetic(self, lat_deg, lon_deg) -> np.ndarray:
        """(easting, northing) [m], shape (..., 2)."""
        e, n = self._fwd.transform(np.asarray(lon_deg, float), np.asarray(lat_deg, float))
        return np.stack([e, n], axis=-1)

    def geodetic_from_en(self, easting_m, northing_m) -> tuple[np.ndarray, np.ndarray]:
        """(lat_deg, lon_deg) of UTM coordinates."""
        lon, lat = self._inv.transform(np.asarray(easting_m, float), np.asarray(northing_m, float))
        return np.asarray(lat), np.asarray(lon)
