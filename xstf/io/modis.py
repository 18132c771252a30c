"""MODIS MOD11A1/MYD11A1 land-surface temperature: HDF4-EOS granules or GeoTIFF/COG exports."""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from . import _raster as R
from ._paths import PathsLike, expand_paths
from .decode import (
    DEFAULT_MAX_LST_ERROR,
    MODIS_LST_SCALE,
    MODIS_SINUSOIDAL,
    MODIS_SPHERE_RADIUS,
    modis_lst_to_kelvin,
    modis_qc_mask,
)

__all__ = ["DEFAULT_MAX_LST_ERROR", "MODIS_SINUSOIDAL", "open_modis"]

_HDF_LOCK = threading.Lock()  # the HDF4 library is not thread-safe
_KINDS = ("auto", "dn", "scaled")


def __getattr__(name: str) -> Any:
    # the former name of xstf.io.modis_qc_mask: still found, with a DeprecationWarning
    if name == "modis_qc_reject":
        warnings.warn(
            "xstf.io.modis.modis_qc_reject is deprecated and will be removed: use "
            "xstf.io.modis_qc_mask (the same function)",
            DeprecationWarning,
            stacklevel=2,
        )
        return modis_qc_mask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- HDF4-EOS ------------------------------------------------------------------------------------
def _hdf_read(path: str, layer: str) -> np.ndarray:
    from pyhdf.SD import SD, SDC

    with _HDF_LOCK:
        sd = SD(path, SDC.READ)
        try:
            return np.asarray(sd.select(layer)[:])
        finally:
            sd.end()


def _hdf_info(path: Path, layer: str) -> dict[str, Any]:
    try:
        from pyhdf.SD import SD, SDC
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading MODIS HDF4 granules needs pyhdf: pip install 'xstf[hdf4]' (or read GeoTIFF/COG "
            "exports, e.g. from the Planetary Computer collection modis-11A1-061)"
        ) from err
    with _HDF_LOCK:
        sd = SD(str(path), SDC.READ)
        try:
            names = list(sd.datasets())
            if layer not in names:
                raise ValueError(f"{path.name} has no layer {layer!r}; layers: {names}")
            sds = sd.select(layer)
            _, _, shape, _, _ = sds.info()
            attrs = sds.attributes()
            dtype = np.dtype(sds[0:1, 0:1].dtype)
            gattrs = sd.attributes()
        finally:
            sd.end()
    meta = str(gattrs.get("StructMetadata.0", ""))
    blocks = [b for b in re.split(r"GROUP=GRID_\d+", meta)[1:] if f'"{layer}"' in b]
    if not blocks:
        raise ValueError(f"{path.name}: no HDF-EOS grid in StructMetadata.0 holds {layer!r}")
    g = blocks[0]

    def num(key: str) -> list[float]:
        m = re.search(rf"{key}=\(([^)]*)\)", g)
        if not m:
            raise ValueError(f"{path.name}: StructMetadata.0 has no {key}")
        return [float(v) for v in m.group(1).split(",")]

    if "GCTP_SNSOID" not in g:
        raise ValueError(f"{path.name}: the grid of {layer!r} is not sinusoidal (GCTP_SNSOID)")
    ulx, uly = num("UpperLeftPointMtrs")
    lrx, lry = num("LowerRightMtrs")
    radius = num("ProjParams")[0] or MODIS_SPHERE_RADIUS
    ny, nx = shape
    core = str(gattrs.get("CoreMetadata.0", ""))
    m = re.search(r"RANGEBEGINNINGDATE.*?VALUE\s*=\s*\"([\d-]+)\"", core, re.S)
    return {
        "shape": (ny, nx),
        "dtype": dtype,
        "attrs": attrs,
        "x": ulx + (np.arange(nx) + 0.5) * (lrx - ulx) / nx,
        "y": uly - (np.arange(ny) + 0.5) * (uly - lry) / ny,
        "crs": f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={radius} +units=m +no_defs",
        "tags": {"RANGEBEGINNINGDATE": m.group(1)} if m else {},
    }


def _hdf_layer(path: Path, layer: str, info: dict[str, Any], chunks: Any) -> xr.DataArray:
    ny, nx = info["shape"]
    arr: Any
    if chunks is False:
        arr = _hdf_read(str(path), layer)
    else:
        arr = dsa.from_delayed(
            dask.delayed(_hdf_read, pure=True)(str(path), layer), (ny, nx), dtype=info["dtype"]
        )
        c = R.DEFAULT_CHUNKS if chunks is None else chunks
        arr = arr.rechunk((c.get("y", ny), c.get("x", nx)) if isinstance(c, dict) else c)
    return xr.DataArray(arr, dims=("y", "x"), coords={"y": info["y"], "x": info["x"]})


def _qc_layer_name(layer: str) -> str | None:
    if "Day" in layer:
        return "QC_Day"
    if "Night" in layer:
        return "QC_Night"
    return None


def _open_hdf(files, layer, qc, max_lst_error, dates, chunks):
    infos = [_hdf_info(p, layer) for p in files]
    times = R.dates_for(files, [i["tags"] for i in infos], dates)
    R.check_duplicates(files, times)
    qc_name = _qc_layer_name(layer)
    frames, masks = [], []
    for p, info in zip(files, infos, strict=True):
        raw = _hdf_layer(p, layer, info, chunks).rio.write_crs(info["crs"])
        a = info["attrs"]
        vr = a.get("valid_range")
        val = modis_lst_to_kelvin(
            raw,
            scale=float(a.get("scale_factor", MODIS_LST_SCALE)),
            offset=float(a.get("add_offset", 0.0)),
            fill=a.get("_FillValue", 0),
            valid_range=(vr[0], vr[1]) if vr is not None else None,
        )
        if qc is not None and qc_name is not None:
            qcl = _hdf_layer(p, qc_name, _hdf_info(p, qc_name), chunks)
            reject = modis_qc_mask(qcl, max_lst_error)
            masks.append(reject & val.notnull())
            val = val.where(~reject)
        else:
            masks.append(xr.zeros_like(val, dtype=bool))
        frames.append(val)
    return frames, masks, times, infos[0]["crs"], "K", qc_name if qc is not None else None


def _qc_sibling(path: Path) -> Path | None:
    for word, qc_word in (("LST_Day_1km", "QC_Day"), ("LST_Night_1km", "QC_Night")):
        if word in path.name:
            cand = path.with_name(path.name.replace(word, qc_word))
            return cand if cand.is_file() else None
    return None


def _open_tif(files, band, kind, units, zero_is_missing, qc, max_lst_error, dates, chunks):
    series = R.open_series(
        files, band=band, kind=kind, units=units, zero_is_missing=zero_is_missing,
        dates=dates, chunks=chunks, sensor="open_modis",
    )  # fmt: skip
    qc_used = None
    frames, masks = [], []
    for p, raw in zip(files, series.raws, strict=True):
        if series.kind == "dn":
            val = modis_lst_to_kelvin(raw, nodata=raw.rio.nodata)
        else:
            val = R.decode_scaled(raw, series.units, zero_is_missing=series.zero_is_missing)
        sib = _qc_sibling(p) if qc is not None else None
        if sib is not None:
            qc_used = "QC sibling files"
            qcl = R.open_band(sib, 1, chunks).assign_coords(x=raw.x, y=raw.y)
            reject = modis_qc_mask(qcl, max_lst_error)
            masks.append(reject & val.notnull())
            val = val.where(~reject)
        else:
            if qc is not None and series.kind == "dn":
                warnings.warn(
                    f"no QC_Day/QC_Night file next to {p.name}: its LST is not quality-filtered "
                    "(pass qc=None to silence)",
                    UserWarning,
                    stacklevel=3,
                )
            masks.append(xr.zeros_like(val, dtype=bool))
        frames.append(val)
    crs = series.raws[0].rio.crs
    return frames, masks, series.times, crs, series.units, qc_used, series.zero_is_missing


def open_modis(
    paths: PathsLike,
    *,
    layer: str = "LST_Day_1km",
    qc: Literal["default"] | None = "default",
    max_lst_error: float | None = DEFAULT_MAX_LST_ERROR,
    band: int = 1,
    kind: Literal["auto", "dn", "scaled"] = "auto",
    units: str | None = None,
    zero_is_missing: bool | None = None,
    dates: Sequence[Any] | None = None,
    chunks: Any = None,
    crs: Any = None,
    name: Hashable = "lst",
    return_qc: bool = False,
) -> xr.DataArray | xr.Dataset:
    """Read MODIS MOD11A1/MYD11A1 LST into a lazy ``(time, y, x)`` float32 DataArray in Kelvin.

    - HDF4-EOS granules (``*.hdf``, needs ``pyhdf``: the ``xstf[hdf4]`` extra): ``layer``
      (``LST_Day_1km`` or ``LST_Night_1km``) decoded with its ``scale_factor`` (0.02),
      ``_FillValue`` (0) and ``valid_range``; the grid is the tile's sinusoidal grid from the
      HDF-EOS ``StructMetadata.0`` (``UpperLeftPointMtrs``/``LowerRightMtrs``) on the MODIS
      sphere (:data:`MODIS_SINUSOIDAL`). With ``qc="default"`` the matching ``QC_Day`` /
      ``QC_Night`` layer filters pixels (:func:`xstf.io.decode.modis_qc_mask`: mandatory QA bits 0-1 in
      {00, 01} and LST error bits 6-7 ≤ ``max_lst_error`` K).
    - GeoTIFF/COG exports: integer files are raw DN (× 0.02, 0 = fill; QC from a
      ``QC_Day`` file next to a ``..LST_Day_1km..`` file when there is one), float files are
      already scaled (°C or K, ``units=``; 0-as-missing as in :func:`open_landsat`). The CRS
      is taken as tagged: a sinusoidal CRS tagged on the WGS 84 ellipsoid (a common export
      mistake) is detected and fixed by :func:`xstf.build_cube`, or pass ``crs=``.

    Dates come from the file names (``MOD11A1.A2019305...`` = year + day of year,
    ``2017_01_19.tif``), else from metadata (``RANGEBEGINNINGDATE``), else ``dates=``.

    Parameters
    ----------
    paths : str, path-like or list
        Files, a folder or a glob pattern.
    layer : str
        HDF layer to read.
    qc : {"default"} or None
        QC filter (``None``: none).
    max_lst_error : float or None
        Largest accepted LST error (K) in the default filter.
    band : int
        Band of GeoTIFF files (1-based).
    kind : {"auto", "dn", "scaled"}
        How GeoTIFF values are stored (``auto``: integers are DN).
    units : str, optional
        Units of scaled GeoTIFFs when no tag says.
    zero_is_missing : bool, optional
        Whether 0 marks missing pixels in scaled GeoTIFFs (default: when nodata is 0).
    dates : sequence, optional
        One date per file (in file-name order).
    chunks : dict, None or False
        Dask chunks for ``y``/``x`` (default 1024); ``False`` reads eagerly.
    crs : optional
        CRS overriding the file's.
    name : hashable
        Name of the LST DataArray.
    return_qc : bool
        Return a Dataset with the LST and ``qc_mask`` (True where QC rejected a pixel that
        had a value).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        ``(time, y, x)`` float32 LST in K, NaN where missing or rejected.

    Examples
    --------
    A MOD11A1 GeoTIFF export of raw DN (× 0.02 K, 0 = fill), named with year + day of year:

    >>> import tempfile, pathlib, numpy as np, xarray as xr, rioxarray
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> dn = xr.DataArray(np.array([[0, 14500], [15000, 15250]], "uint16"), dims=("y", "x"),
    ...                   coords={"y": [1500.0, 500.0], "x": [500.0, 1500.0]}).rio.write_crs(MODIS_SINUSOIDAL)
    >>> dn.rio.to_raster(d / "MOD11A1.A2019305.h18v04.061.tif")
    >>> lst = open_modis(d, qc=None)
    >>> str(lst.time.dt.date[0].values), lst.values[0].tolist()
    ('2019-11-01', [[nan, 290.0], [300.0, 305.0]])

    HDF4 granules as NASA distributes them: ``open_modis("MOD11A1.A2019305.h14v09.006.hdf")``.
    """
    files = expand_paths(paths)
    hdf = [p.suffix.lower() in (".hdf", ".h4", ".hdf4") for p in files]
    if any(hdf) and not all(hdf):
        raise ValueError("the files mix HDF granules and GeoTIFFs: read them separately")
    if qc not in ("default", None):
        raise ValueError(f"qc must be 'default' or None, got {qc!r}")
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'auto', 'dn' or 'scaled', got {kind!r}")
    if all(hdf):
        frames, masks, times, file_crs, unit, qc_used = _open_hdf(
            files, layer, qc, max_lst_error, dates, chunks
        )
        zero = True
    else:
        frames, masks, times, file_crs, unit, qc_used, zero = _open_tif(
            files, band, kind, units, zero_is_missing, qc, max_lst_error, dates, chunks
        )
    out = R.stack(frames, times, files)
    qc_desc = (
        f"{qc_used}: mandatory QA (bits 0-1) in {{00, 01}}, LST error (bits 6-7) <= {max_lst_error} K"
        if qc_used
        else "none applied"
    )
    attrs = {
        "units": "K",
        "standard_name": "surface_temperature",
        "long_name": f"MODIS {layer}",
        "sensor": "MODIS",
        "source_units": unit,
        "zero_is_missing": int(zero),
        "qc": qc_desc,
        "n_files": len(files),
    }
    out = R.finish(out, name=name, crs=crs if crs is not None else file_crs, attrs=attrs)
    if not return_qc:
        return out
    mask = R.stack(masks, times, files).rename("qc_mask")
    mask.attrs = {"long_name": "pixel had a value but was rejected by QC", "qc": qc_desc}
    return xr.Dataset({name: out, "qc_mask": mask.assign_coords(out.coords)})
