"""Readers: Landsat and MODIS land-surface temperature files -> lazy ``(time, y, x)`` Kelvin.

- :func:`open_landsat`: Landsat 8/9 Collection 2 Level-2 ``ST_B10`` (with ``QA_PIXEL``
  cloud masking) or already-scaled exports (°C or K, e.g. from Earth Engine).
- :func:`open_modis`: MOD11A1/MYD11A1 HDF4-EOS granules (``LST_Day_1km`` /
  ``LST_Night_1km`` with ``QC_Day`` / ``QC_Night`` filtering, sinusoidal grid built from
  the StructMetadata) or GeoTIFF/COG exports.

Both return float32 Kelvin with NaN for missing, dates parsed from the file names (or
metadata), the CRS written with rioxarray, and the QC mask on request (``return_qc=True``).
Put them onto one grid with :func:`xstf.build_cube`.
"""

from __future__ import annotations

from ._paths import expand_paths, parse_date
from .landsat import open_landsat
from .modis import MODIS_SINUSOIDAL, open_modis

__all__ = ["MODIS_SINUSOIDAL", "expand_paths", "open_landsat", "open_modis", "parse_date"]
