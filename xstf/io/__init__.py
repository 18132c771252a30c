"""Readers: Landsat and MODIS land-surface temperature -> lazy ``(time, y, x)`` Kelvin.

- :func:`open_landsat`: Landsat 8/9 Collection 2 Level-2 ``ST_B10`` (with ``QA_PIXEL``
  cloud masking) or already-scaled exports (°C or K, e.g. from Earth Engine).
- :func:`open_modis`: MOD11A1/MYD11A1 HDF4-EOS granules (``LST_Day_1km`` /
  ``LST_Night_1km`` with ``QC_Day`` / ``QC_Night`` filtering, sinusoidal grid built from
  the StructMetadata) or GeoTIFF/COG exports.
- :func:`load_stac`: the same products from STAC items (Planetary Computer, Earth Search,
  a static catalog) through ``odc-stac`` (the ``xstf[stac]`` extra).
- :mod:`xstf.io.decode`: the product constants and the DN -> K and QA/QC bit rules the
  three share (:func:`landsat_st_to_kelvin`, :func:`landsat_qa_mask`,
  :func:`modis_lst_to_kelvin`, :func:`modis_qc_mask`).

All return float32 Kelvin with NaN for missing, one date per image, the CRS written with
rioxarray, and the QC mask on request (``return_qc=True``). Put them onto one grid with
:func:`xstf.build_cube`.
"""

from __future__ import annotations

from ._paths import expand_paths, parse_date
from .decode import (
    MODIS_SINUSOIDAL,
    MODIS_SPHERE_RADIUS,
    landsat_qa_mask,
    landsat_st_to_kelvin,
    modis_lst_to_kelvin,
    modis_qc_mask,
)
from .landsat import open_landsat
from .modis import open_modis
from .stac import load_stac

__all__ = [
    "MODIS_SINUSOIDAL",
    "MODIS_SPHERE_RADIUS",
    "expand_paths",
    "landsat_qa_mask",
    "landsat_st_to_kelvin",
    "load_stac",
    "modis_lst_to_kelvin",
    "modis_qc_mask",
    "open_landsat",
    "open_modis",
    "parse_date",
]
