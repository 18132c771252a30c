"""Landsat 8/9 land-surface temperature: Collection 2 Level-2 ``ST_B10`` or scaled exports."""

from __future__ import annotations

import re
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import xarray as xr

from . import _raster as R
from ._paths import PathsLike, expand_paths, parse_date
from .decode import DEFAULT_QA_BITS, landsat_qa_mask, landsat_st_to_kelvin

__all__ = ["DEFAULT_QA_BITS", "open_landsat"]

_ST_B10 = re.compile(r"ST_B10", re.IGNORECASE)


def _sibling_qa(path: Path) -> Path | None:
    if not _ST_B10.search(path.name):
        return None
    for cand in {_ST_B10.sub("QA_PIXEL", path.name), _ST_B10.sub("qa_pixel", path.name)}:
        q = path.with_name(cand)
        if q.is_file():
            return q
    return None


def _qa_files(
    qa: Any, files: Sequence[Path], times: Sequence[pd.Timestamp], kind: str
) -> list[Path | None]:
    if qa is None or qa is False:
        return [None] * len(files)
    if isinstance(qa, str) and qa == "auto":
        found = [_sibling_qa(p) for p in files]
        missing = [p.name for p, q in zip(files, found, strict=True) if q is None]
        if kind == "dn" and missing:
            warnings.warn(
                f"no QA_PIXEL file next to {len(missing)} ST_B10 file(s) (e.g. {missing[0]}): clouds "
                "in those are NOT masked. Pass qa=[...QA_PIXEL files...] or qa=None to silence",
                UserWarning,
                stacklevel=3,
            )
        return found
    qa_paths = expand_paths(qa)
    by_date: dict[pd.Timestamp, Path] = {}
    for q in qa_paths:
        d = parse_date(q.name)
        if d is None:
            raise ValueError(f"cannot read a date from the QA file name {q.name}")
        by_date[d] = q
    out: list[Path | None] = []
    for p, t in zip(files, times, strict=True):
        if t not in by_date:
            raise ValueError(
                f"no QA file for {p.name} (date {t.date()}) among the {len(qa_paths)} given; "
                f"QA dates: {sorted(str(d.date()) for d in by_date)[:5]}..."
            )
        out.append(by_date[t])
    return out


def open_landsat(
    paths: PathsLike,
    *,
    band: int = 1,
    kind: Literal["auto", "dn", "scaled"] = "auto",
    units: str | None = None,
    zero_is_missing: bool | None = None,
    qa: Any = "auto",
    qa_bits: Sequence[int] = DEFAULT_QA_BITS,
    dates: Sequence[Any] | None = None,
    chunks: Any = None,
    crs: Any = None,
    name: Hashable = "lst",
    return_qc: bool = False,
) -> xr.DataArray | xr.Dataset:
    """Read Landsat 8/9 LST GeoTIFFs into a lazy ``(time, y, x)`` float32 DataArray in Kelvin.

    Two kinds of file are understood:

    - ``kind="dn"``: Collection 2 Level-2 ``ST_B10`` raw integers, decoded as
      ``DN × 0.00341802 + 149.0`` K with DN 0 = fill. Clouds are masked with the matching
      ``QA_PIXEL`` file (found next to each ``ST_B10`` file when ``qa="auto"``, or given):
      a pixel is dropped when any of ``qa_bits`` is set (default: dilated cloud 1, cirrus 2,
      cloud 3, cloud shadow 4).
    - ``kind="scaled"``: exports already in °C or K (Earth Engine, like the Orléans files),
      one band picked with ``band=``; units from ``units=`` or a ``units`` tag. When 0 marks
      missing pixels (``zero_is_missing=True``, or the file's nodata is 0 and
      ``zero_is_missing`` is left at ``None``), zeros become NaN and, for °C products, a
      warning says that real 0 °C pixels are masked with them.

    ``kind="auto"`` picks ``"dn"`` for integer files and ``"scaled"`` for float ones.
    Dates come from the file names (``LC08_199027_20170119.tif``, product IDs, ``2017_01_19``),
    else from metadata tags, else ``dates=``. Files must share one grid.

    Parameters
    ----------
    paths : str, path-like or list
        Files, a folder or a glob pattern.
    band : int
        Band to read (1-based), e.g. 1 = LST in the Orléans 4-band exports.
    kind : {"auto", "dn", "scaled"}
        How values are stored (see above).
    units : str, optional
        Units of scaled files (``"degC"``, ``"K"``...), when no tag says.
    zero_is_missing : bool, optional
        Whether 0 marks missing pixels in scaled files (default: when the nodata tag is 0).
    qa : "auto", None, or paths
        ``QA_PIXEL`` files for ``kind="dn"`` (matched by date); ``None`` for no QA masking.
    qa_bits : sequence of int
        ``QA_PIXEL`` bits that reject a pixel.
    dates : sequence of datetime-like, optional
        One date per file (sorted like the file names), overriding the names.
    chunks : dict, None or False
        Dask chunks for ``y``/``x`` (default 1024 × 1024, one date per chunk); ``False``
        reads eagerly into numpy.
    crs : optional
        CRS to use instead of the files' tag (anything rioxarray's ``write_crs`` accepts).
    name : hashable
        Name of the returned DataArray (of the LST variable with ``return_qc=True``).
    return_qc : bool
        Return a Dataset with the LST (``name``) and ``qc_mask`` — True where a pixel that had
        a value was rejected by QA — instead of the LST DataArray alone.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        ``(time, y, x)`` float32 LST in K, NaN where missing or rejected, CRS written with
        rioxarray, attrs ``units``, ``standard_name``, ``sensor``, ``qc``.

    Raises
    ------
    FileNotFoundError
        If ``paths`` matches nothing.
    ValueError
        Unknown units, no date, two files on one date, files on different grids.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, xarray as xr, rioxarray
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> dn = xr.DataArray(np.array([[0, 43000], [44000, 45000]], "uint16"), dims=("y", "x"),
    ...                   coords={"y": [15.0, -15.0], "x": [15.0, 45.0]}).rio.write_crs(32631)
    >>> dn.rio.to_raster(d / "LC08_L2SP_199027_20170119_20200905_02_T1_ST_B10.TIF")
    >>> lst = open_landsat(d, qa=None)
    >>> lst.dims, str(lst.time.dt.date[0].values), lst.attrs["units"]
    (('time', 'y', 'x'), '2017-01-19', 'K')
    >>> np.round(lst.values[0], 2).tolist()
    [[nan, 295.97], [299.39, 302.81]]
    """
    series = R.open_series(
        paths, band=band, kind=kind, units=units, zero_is_missing=zero_is_missing,
        dates=dates, chunks=chunks, sensor="open_landsat",
    )  # fmt: skip
    files, times, k, unit, zero = (
        series.files, series.times, series.kind, series.units, series.zero_is_missing
    )  # fmt: skip
    qa_files = _qa_files(qa, files, times, k)
    frames, masks = [], []
    for p, raw, q in zip(files, series.raws, qa_files, strict=True):
        if k == "dn":
            val = landsat_st_to_kelvin(raw, nodata=raw.rio.nodata)
        else:
            val = R.decode_scaled(raw, unit, zero_is_missing=zero)
        if q is not None:
            qa_raw = R.open_band(q, 1, chunks)
            if qa_raw.shape != raw.shape:
                raise ValueError(f"{q.name} has shape {qa_raw.shape} but {p.name} has {raw.shape}")
            reject = landsat_qa_mask(qa_raw, qa_bits).assign_coords(x=raw.x, y=raw.y)
            # QA fill (bit 0) pixels are already NaN through DN 0.
            masks.append(reject & val.notnull())
            val = val.where(~reject)
        else:
            masks.append(xr.zeros_like(val, dtype=bool))
        frames.append(val)
    out = R.stack(frames, times, files)
    qc_desc = (
        f"QA_PIXEL bits {sorted(int(b) for b in qa_bits)} set -> NaN"
        if any(q is not None for q in qa_files)
        else "none applied"
    )
    attrs = {
        "units": "K",
        "standard_name": "surface_temperature",
        "long_name": "Landsat land surface temperature",
        "sensor": "Landsat 8/9 TIRS",
        "source_units": unit,
        "zero_is_missing": int(zero),
        "qc": qc_desc,
        "n_files": len(files),
    }
    out = R.finish(
        out, name=name, crs=crs if crs is not None else series.raws[0].rio.crs, attrs=attrs
    )
    if not return_qc:
        return out
    mask = R.stack(masks, times, files).rename("qc_mask")
    mask.attrs = {"long_name": "pixel had a value but was rejected by QA", "qc": qc_desc}
    return xr.Dataset({name: out, "qc_mask": mask.assign_coords(out.coords)})
