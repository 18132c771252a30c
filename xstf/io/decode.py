"""What the stored numbers mean: Landsat C2 L2 and MOD11A1 DN -> Kelvin, QA/QC bits -> masks.

One place for the product constants and bit rules, used by :func:`xstf.io.open_landsat`,
:func:`xstf.io.open_modis` and :func:`xstf.io.load_stac`. Every function works on numpy,
dask and xarray arrays alike and returns the same kind (dask in -> dask out, nothing
computed). Only numpy and xarray are imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "DEFAULT_MAX_LST_ERROR",
    "DEFAULT_QA_BITS",
    "LANDSAT_ST_FILL",
    "LANDSAT_ST_OFFSET",
    "LANDSAT_ST_SCALE",
    "MODIS_LST_FILL",
    "MODIS_LST_SCALE",
    "MODIS_LST_VALID_RANGE",
    "MODIS_SINUSOIDAL",
    "MODIS_SPHERE_RADIUS",
    "landsat_qa_mask",
    "landsat_st_to_kelvin",
    "modis_lst_to_kelvin",
    "modis_qc_mask",
    "scale_dn",
]

#: Collection 2 Level-2 surface temperature (``ST_B10`` / STAC ``lwir11``): K = DN × scale + offset.
LANDSAT_ST_SCALE = 0.00341802
LANDSAT_ST_OFFSET = 149.0
#: ``ST_B10`` fill value.
LANDSAT_ST_FILL = 0
#: ``QA_PIXEL`` bits that reject a pixel by default: 1 dilated cloud, 2 cirrus, 3 cloud,
#: 4 cloud shadow (5 snow is kept).
DEFAULT_QA_BITS: tuple[int, ...] = (1, 2, 3, 4)

#: MOD11A1/MYD11A1 ``LST_Day_1km``/``LST_Night_1km``: K = DN × 0.02, 0 = fill,
#: valid DN 7500-65535 (the HDF layer's ``scale_factor``, ``_FillValue``, ``valid_range``).
MODIS_LST_SCALE = 0.02
MODIS_LST_FILL = 0
MODIS_LST_VALID_RANGE: tuple[int, int] = (7500, 65535)
#: Default upper bound of the QC LST-error flag, in K (bits 6-7: 0 = ≤1 K, 1 = ≤2 K, 2 = ≤3 K).
DEFAULT_MAX_LST_ERROR = 2.0
#: Radius (m) of the sphere the MODIS sinusoidal grid is defined on (not WGS 84).
MODIS_SPHERE_RADIUS = 6371007.181
#: The MODIS sinusoidal projection on that sphere.
MODIS_SINUSOIDAL = f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={MODIS_SPHERE_RADIUS} +units=m +no_defs"


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _where_not(values: Any, bad: Any) -> Any:
    """``values`` with NaN where ``bad`` (xarray: ``.where``; numpy/dask: ``np.where``)."""
    if isinstance(values, xr.DataArray):
        return values.where(~bad)
    return np.where(bad, np.nan, values)


def scale_dn(
    dn: Any,
    scale: float,
    offset: float = 0.0,
    *,
    fill: float | None = None,
    nodata: float | None = None,
    valid_range: tuple[float, float] | None = None,
) -> Any:
    """Decode stored integers as ``DN × scale + offset`` in float32, NaN where missing.

    The product is computed in double precision and rounded once to float32. A pixel is
    missing where it equals ``fill`` or ``nodata``, lies outside ``valid_range``, or is
    already NaN (a float input resampled with its nodata masked).

    Parameters
    ----------
    dn : numpy, dask or xarray array
        Stored values (integers, or floats holding integers).
    scale, offset : float
        Linear decoding.
    fill, nodata : float, optional
        Values that mark missing pixels.
    valid_range : (float, float), optional
        Inclusive range of valid stored values.

    Returns
    -------
    array of float32
        Same kind as ``dn``.

    Examples
    --------
    >>> import numpy as np
    >>> scale_dn(np.array([0, 100, 200]), 0.5, 10.0, fill=0).tolist()
    [nan, 60.0, 110.0]
    """
    vals = dn.astype("float64")
    bad = vals != vals  # NaN already in a float input
    for v in (fill, nodata):
        if v is not None and not _is_nan(v):
            bad = bad | (dn == v)
    if valid_range is not None:
        lo, hi = valid_range
        bad = bad | (vals < lo) | (vals > hi)
    return _where_not(vals * scale + offset, bad).astype("float32")


def landsat_st_to_kelvin(
    dn: Any,
    *,
    scale: float = LANDSAT_ST_SCALE,
    offset: float = LANDSAT_ST_OFFSET,
    fill: float | None = LANDSAT_ST_FILL,
    nodata: float | None = None,
) -> Any:
    """Landsat Collection 2 Level-2 surface temperature DN (``ST_B10``, ``lwir11``) -> K.

    ``K = DN × 0.00341802 + 149.0`` (USGS Landsat 8-9 C2 L2 product guide), DN 0 = fill.

    Parameters
    ----------
    dn : numpy, dask or xarray array of integers
        The stored band.
    scale, offset : float
        Decoding (the defaults are the product's; STAC ``raster:bands`` carry the same).
    fill : int or None
        Fill value.
    nodata : float, optional
        A second missing-value marker (e.g. a file's nodata tag).

    Returns
    -------
    array of float32
        Kelvin, NaN at fill; same kind as ``dn``.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(landsat_st_to_kelvin(np.array([0, 43000, 50000], "uint16")), 3).tolist()
    [nan, 295.975, 319.901]
    """
    return scale_dn(dn, scale, offset, fill=fill, nodata=nodata)


def _bit_mask(bits: Sequence[int], width: int) -> int:
    mask = 0
    for b in bits:
        if not 0 <= int(b) < width:
            raise ValueError(f"QA bit {b} is out of range 0..{width - 1}")
        mask |= 1 << int(b)
    return mask


def landsat_qa_mask(qa_pixel: Any, bits: Sequence[int] = DEFAULT_QA_BITS) -> Any:
    """True where a Landsat C2 ``QA_PIXEL`` value rejects the pixel (any of ``bits`` set).

    Bits of ``QA_PIXEL``: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow,
    5 snow, 6 clear, 7 water. The default rejects 1-4.

    Parameters
    ----------
    qa_pixel : numpy, dask or xarray array of integers
        The QA band.
    bits : sequence of int
        Bits (0-15) that reject a pixel.

    Returns
    -------
    array of bool
        Same kind as ``qa_pixel``.

    Examples
    --------
    >>> import numpy as np
    >>> qa = np.array([1 << 6, 1 << 3 | 1 << 6, 1 << 5 | 1 << 6, 1 << 4], "uint16")
    >>> landsat_qa_mask(qa).tolist()  # clear, cloud, snow (kept), shadow
    [False, True, False, True]
    >>> landsat_qa_mask(qa, bits=(5,)).tolist()
    [False, False, True, False]
    """
    mask = _bit_mask(bits, 16)
    return (qa_pixel.astype("uint16") & np.uint16(mask)) != 0


def modis_lst_to_kelvin(
    dn: Any,
    *,
    scale: float = MODIS_LST_SCALE,
    offset: float = 0.0,
    fill: float | None = MODIS_LST_FILL,
    valid_range: tuple[float, float] | None = MODIS_LST_VALID_RANGE,
    nodata: float | None = None,
) -> Any:
    """MOD11A1/MYD11A1 ``LST_Day_1km``/``LST_Night_1km`` DN -> K (× 0.02, 0 = fill).

    Parameters
    ----------
    dn : numpy, dask or xarray array
        Stored values (a float input may hold NaN for missing, e.g. after resampling).
    scale, offset : float
        Decoding (the HDF layer's ``scale_factor``/``add_offset``).
    fill : int or None
        Fill value.
    valid_range : (float, float) or None
        Valid stored values (7500-65535, i.e. 150-1310.7 K).
    nodata : float, optional
        A second missing-value marker (e.g. a file's nodata tag).

    Returns
    -------
    array of float32
        Kelvin, NaN at fill or outside the valid range; same kind as ``dn``.

    Examples
    --------
    >>> import numpy as np
    >>> modis_lst_to_kelvin(np.array([0, 100, 14500, 15000], "uint16")).tolist()
    [nan, nan, 290.0, 300.0]
    """
    return scale_dn(dn, scale, offset, fill=fill, nodata=nodata, valid_range=valid_range)


def modis_qc_mask(qc: Any, max_lst_error: float | None = DEFAULT_MAX_LST_ERROR) -> Any:
    """True where a MOD11A1 ``QC_Day``/``QC_Night`` value rejects the pixel (default filter).

    A pixel is kept when the mandatory QA flag (bits 0-1) is ``00`` (good) or ``01``
    (produced, other quality) and the LST error flag (bits 6-7) is at most
    ``max_lst_error`` (1, 2 or 3 K; ``None`` skips that test). Bits 2-5 (data quality,
    emissivity error) are not used.

    Parameters
    ----------
    qc : numpy, dask or xarray array of uint8
        The QC layer.
    max_lst_error : float or None
        Largest accepted LST error in K.

    Returns
    -------
    array of bool
        Same kind as ``qc``.

    Examples
    --------
    >>> import numpy as np
    >>> # good; other quality with error <= 2 K; error <= 3 K; cloud (bits 0-1 = 10)
    >>> qc = np.array([0b00000000, 0b01000001, 0b10000001, 0b00000010], dtype=np.uint8)
    >>> modis_qc_mask(qc).tolist()
    [False, False, True, True]
    >>> modis_qc_mask(qc, max_lst_error=3).tolist()
    [False, False, False, True]
    """
    q = qc.astype("uint8")
    reject = (q & np.uint8(0b11)) > 1
    if max_lst_error is not None:
        if max_lst_error < 1:
            raise ValueError(
                f"max_lst_error must be >= 1 K (the flag's finest class), got {max_lst_error}"
            )
        code = min(int(np.floor(max_lst_error)) - 1, 3)
        reject = reject | (((q >> np.uint8(6)) & np.uint8(0b11)) > code)
    return reject
