"""Write cubes and fused results: Zarr (v2/v3), NetCDF, one Cloud-Optimised GeoTIFF per date.

All writers refuse to replace existing files unless ``overwrite=True``, write the CRS as
a CF ``spatial_ref`` grid mapping (rioxarray), keep CF attributes, and leave no
``scale_factor``/``add_offset``/``_FillValue`` in ``.attrs`` (values are already decoded;
such attrs would be applied a second time on reading). Dask-backed data are written chunk
by chunk, without loading the whole cube.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

__all__ = ["open_zarr", "prepare", "to_geotiff", "to_netcdf", "to_zarr"]

_STALE_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value", "_Unsigned")
_KEEP_ENCODING = ("grid_mapping", "units", "calendar", "dtype")
_DEFAULT_CHUNKS = {"time": 1, "y": 1024, "x": 1024}


def _as_dataset(obj: xr.Dataset | xr.DataArray, name: Hashable) -> xr.Dataset:
    if isinstance(obj, xr.DataArray):
        return obj.to_dataset(name=obj.name if obj.name is not None else name, promote_attrs=False)
    if isinstance(obj, xr.Dataset):
        return obj
    raise TypeError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")


def _regular(chunks: tuple[int, ...]) -> bool:
    """Zarr needs equal chunks along a dim, except a smaller last one."""
    return len(chunks) <= 1 or (len(set(chunks[:-1])) == 1 and chunks[-1] <= chunks[0])


def prepare(
    obj: xr.Dataset | xr.DataArray,
    *,
    name: Hashable = "lst",
    chunks: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Dataset ready to write: CF attrs, CRS as ``spatial_ref``, clean attrs, regular chunks.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A cube or a fused result (a DataArray is named ``obj.name`` or ``name``).
    name : hashable
        Variable name for an unnamed DataArray.
    chunks : dict, optional
        Chunks to impose (default: keep dask chunks, made regular where needed;
        numpy data are chunked ``{"time": 1, "y": 1024, "x": 1024}``).

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> import xarray as xr, numpy as np
    >>> da = xr.DataArray(np.zeros((2, 2), "float32"), dims=("y", "x"), name="lst",
    ...                   attrs={"units": "K", "scale_factor": 0.02})
    >>> ds = prepare(da)
    >>> "scale_factor" in ds["lst"].attrs, ds.attrs["Conventions"]
    (False, 'CF-1.8')
    """
    ds = _as_dataset(obj, name).copy()
    crs = ds.rio.crs if ds.rio.crs is not None else None
    for v in list(ds.variables):
        var = ds[v].variable
        var.attrs = {k: val for k, val in var.attrs.items() if k not in _STALE_ATTRS}
        var.encoding = {k: val for k, val in var.encoding.items() if k in _KEEP_ENCODING}
        if var.dtype.kind == "U":  # fixed-width unicode has no Zarr v3 spec: store as vlen UTF-8
            ds[v] = ds[v].astype(object)
        units = str(ds[v].attrs.get("units", ""))
        if v in ds.data_vars and units in ("K", "degC") and "standard_name" not in ds[v].attrs:
            ds[v].attrs["standard_name"] = "surface_temperature"
    if crs is not None:
        ds = ds.rio.write_crs(crs)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in _STALE_ATTRS}
    ds.attrs.setdefault("Conventions", "CF-1.8")
    want = dict(chunks or {})
    if not want and any(ds[v].chunks is None for v in ds.data_vars):
        want = {d: c for d, c in _DEFAULT_CHUNKS.items() if d in ds.dims}
    if want:
        ds = ds.chunk({d: c for d, c in want.items() if d in ds.dims})
    for v in list(ds.variables):
        if ds[v].chunks is None:
            continue
        fix = {
            d: max(c)
            for d, c in zip(ds[v].dims, ds[v].chunks, strict=True)
            if not _regular(tuple(c))
        }
        if fix:  # Zarr needs regular chunks: rechunk that variable only
            ds[v] = ds[v].chunk(fix)
    # small non-index coordinates (per-date flags...) are written from memory, unchunked
    small = [c for c in ds.coords if c not in ds.indexes and ds[c].chunks is not None]
    ds = ds.assign_coords({c: ds[c].load() for c in small})
    return ds


def _exists(store: Any) -> bool:
    return isinstance(store, (str, os.PathLike)) and Path(store).exists()


def _check_append(ds: xr.Dataset, store: Any, append_dim: str) -> None:
    old = xr.open_zarr(store, decode_coords="all")
    if append_dim not in old.dims:
        raise ValueError(
            f"the store {store} has no {append_dim!r} dim to append to (dims {dict(old.sizes)})"
        )
    for d in ds.dims:
        if d != append_dim and d in old.coords and d in ds.coords:
            if old.sizes[d] != ds.sizes[d] or not np.allclose(old[d].values, ds[d].values):
                raise ValueError(
                    f"cannot append: {d!r} differs from the store's ({old.sizes[d]} vs {ds.sizes[d]} "
                    "values); append data on the same grid"
                )
    missing = sorted(map(str, set(old.data_vars) ^ set(ds.data_vars)))
    if missing:
        raise ValueError(f"cannot append: variables differ from the store's ({missing})")
    if append_dim == "time":
        last = pd.Timestamp(old["time"].values.max())
        new = pd.DatetimeIndex(ds["time"].values)
        clash = new[new <= last]
        if len(clash):
            raise ValueError(
                f"cannot append {len(clash)} date(s) not after the store's last date {last.date()}: "
                f"{[str(d.date()) for d in clash[:5]]}. Append only new, later dates (dates are never "
                "rewritten), or rewrite the store with overwrite=True"
            )


def to_zarr(
    obj: xr.Dataset | xr.DataArray,
    store: Any,
    *,
    mode: str | None = None,
    append_dim: str | None = None,
    overwrite: bool = False,
    chunks: Mapping[str, int] | None = None,
    name: Hashable = "lst",
    zarr_format: int | None = None,
    compute: bool = True,
    **kwargs: Any,
) -> Any:
    """Write a cube or a fused DataArray to Zarr, chunk by chunk.

    The CRS goes in a CF ``spatial_ref`` grid mapping, attrs are CF (no
    ``scale_factor``/``add_offset``/``_FillValue`` in attrs), dask chunks become the store's
    chunks (made regular where needed). ``append_dim="time"`` adds later dates to an existing
    store without rewriting it (same grid and variables; dates must all be after the
    store's last date). Read it back with ``xstf.export.open_zarr`` (``xr.open_zarr`` with
    ``decode_coords="all"``, so ``spatial_ref`` comes back as a coordinate).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        What to write.
    store : str, path-like or zarr store
        Destination.
    mode : str, optional
        Zarr mode; default ``"w-"`` (create), ``"w"`` with ``overwrite=True``, ``"a"`` with
        ``append_dim``.
    append_dim : str, optional
        Dim to append along (``"time"``).
    overwrite : bool
        Replace an existing store. Without it an existing store is never touched (except
        to append).
    chunks : dict, optional
        Chunks to write (see :func:`prepare`).
    name : hashable
        Variable name for an unnamed DataArray.
    zarr_format : int, optional
        2 or 3 (default: zarr-python's, 3 for zarr 3).
    compute : bool
        ``False`` returns a dask delayed object to compute later.
    **kwargs
        Passed to :meth:`xarray.Dataset.to_zarr`.

    Returns
    -------
    The result of :meth:`xarray.Dataset.to_zarr`.

    Raises
    ------
    FileExistsError
        ``store`` exists and neither ``overwrite=True`` nor ``append_dim`` was given.
    ValueError
        Appending dates that are not new, on another grid, or with other variables.

    Examples
    --------
    >>> import tempfile, os, xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=6)
    >>> store = os.path.join(tempfile.mkdtemp(), "cube.zarr")
    >>> _ = xstf.to_zarr(ds.isel(time=slice(0, 4)), store)
    >>> _ = xstf.to_zarr(ds.isel(time=slice(4, 6)), store, append_dim="time")
    >>> back = xstf.export.open_zarr(store)
    >>> back.sizes["time"], back.rio.crs == ds.rio.crs
    (6, True)
    """
    ds = prepare(obj, name=name, chunks=chunks)
    exists = _exists(store)
    if mode in ("w",) and exists and not overwrite:
        raise FileExistsError(f"{store} exists: pass overwrite=True to replace it")
    if append_dim is not None:
        if exists:
            _check_append(ds, store, append_dim)
            mode = "a"
            kwargs.setdefault("align_chunks", True)
        else:
            mode = mode or "w-"
            append_dim = None
    elif exists and not overwrite:
        raise FileExistsError(
            f"{store} exists: pass overwrite=True to replace it, or append_dim='time' to add new dates"
        )
    if mode is None:
        mode = "w" if overwrite else "w-"
    if mode == "w" and exists and overwrite and Path(store).is_dir():
        shutil.rmtree(store)
    if zarr_format is not None:
        kwargs["zarr_format"] = zarr_format
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        return ds.to_zarr(store, mode=mode, append_dim=append_dim, compute=compute, **kwargs)


def open_zarr(store: Any, **kwargs: Any) -> xr.Dataset:
    """Open a store written by :func:`to_zarr` (``decode_coords="all"`` keeps ``spatial_ref``).

    Parameters
    ----------
    store : str, path-like or zarr store
        The store.
    **kwargs
        Passed to :func:`xarray.open_zarr`.

    Returns
    -------
    xarray.Dataset
        Lazy (dask) dataset.

    Examples
    --------
    >>> import tempfile, os, xstf
    >>> store = os.path.join(tempfile.mkdtemp(), "c.zarr")
    >>> _ = xstf.to_zarr(xstf.datasets.synthetic(size=32, days=3), store)
    >>> "spatial_ref" in xstf.export.open_zarr(store).coords
    True
    """
    kwargs.setdefault("decode_coords", "all")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        return xr.open_zarr(store, **kwargs)


def to_netcdf(
    obj: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    engine: str = "netcdf4",
    name: Hashable = "lst",
    compute: bool = True,
    **kwargs: Any,
) -> Any:
    """Write a cube or a fused DataArray to NetCDF-4 (CF attrs, ``spatial_ref`` grid mapping).

    Boolean masks (``fine_filled``...) are stored as int8 and decoded back to bool by xarray.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        What to write.
    path : str or path-like
        Destination file.
    overwrite : bool
        Replace an existing file.
    engine : str
        xarray engine (``"netcdf4"``).
    name : hashable
        Variable name for an unnamed DataArray.
    compute : bool
        ``False`` returns a dask delayed object.
    **kwargs
        Passed to :meth:`xarray.Dataset.to_netcdf`.

    Returns
    -------
    None or dask.delayed.Delayed

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile, os, xarray as xr, xstf
    >>> path = os.path.join(tempfile.mkdtemp(), "cube.nc")
    >>> xstf.export.to_netcdf(xstf.datasets.synthetic(size=32, days=3), path)
    >>> xr.open_dataset(path, decode_coords="all").rio.crs.to_epsg()
    32631
    """
    if _exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
    ds = prepare(obj, name=name)
    return ds.to_netcdf(path, mode="w", engine=engine, compute=compute, **kwargs)


def to_geotiff(
    da: xr.DataArray,
    folder: str | os.PathLike,
    *,
    prefix: str = "",
    overwrite: bool = False,
    driver: str = "COG",
    compress: str = "DEFLATE",
    date_format: str = "%Y_%m_%d",
) -> list[Path]:
    """Write one Cloud-Optimised GeoTIFF per date (``{prefix}{date}.tif``), float32, NaN nodata.

    Dates are computed and written one at a time, so memory holds one date. The file names
    carry the date in a form :func:`xstf.io.open_landsat` / :func:`xstf.io.open_modis` parse
    back, and the ``units`` tag is written (``K``).

    Parameters
    ----------
    da : xarray.DataArray
        ``(time, y, x)`` or ``(y, x)`` with a CRS.
    folder : str or path-like
        Destination folder (created if needed).
    prefix : str
        File-name prefix.
    overwrite : bool
        Replace existing files; otherwise no file is written if any target exists.
    driver : str
        GDAL driver (``"COG"``; ``"GTiff"`` for plain GeoTIFFs).
    compress : str
        Compression.
    date_format : str
        :meth:`~pandas.Timestamp.strftime` format of the date in file names.

    Returns
    -------
    list of pathlib.Path
        The files written, by date.

    Raises
    ------
    FileExistsError
        Some target files exist and ``overwrite`` is False (none written).
    ValueError
        No CRS, or dims other than ``(time,) y, x``.

    Examples
    --------
    >>> import tempfile, xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=2)
    >>> files = xstf.export.to_geotiff(ds.fine, tempfile.mkdtemp(), prefix="fine_")
    >>> [f.name for f in files]
    ['fine_2021_01_01.tif', 'fine_2021_01_02.tif']
    """
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"to_geotiff writes a DataArray, got {type(da).__name__}")
    if da.rio.crs is None:
        raise ValueError("the array has no CRS: write one with da.rio.write_crs('EPSG:...')")
    if "time" not in da.dims:
        if "time" in da.coords:
            da = da.expand_dims("time")
        else:
            raise ValueError("to_geotiff needs a 'time' coordinate to name the files")
    if set(da.dims) != {"time", "y", "x"}:
        raise ValueError(f"to_geotiff needs dims (time, y, x), got {da.dims}")
    da = da.transpose("time", "y", "x")
    folder = Path(folder)
    times = pd.DatetimeIndex(da["time"].values)
    paths = [folder / f"{prefix}{t.strftime(date_format)}.tif" for t in times]
    if len(set(paths)) != len(paths):
        raise ValueError(f"date_format={date_format!r} gives the same file name to several dates")
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} of the {len(paths)} files exist (e.g. {existing[0]}): pass "
            "overwrite=True to replace them, or another folder/prefix"
        )
    folder.mkdir(parents=True, exist_ok=True)
    crs = da.rio.crs
    attrs = {
        k: v
        for k, v in da.attrs.items()
        if k not in _STALE_ATTRS and isinstance(v, (str, int, float))
    }
    for t, p in zip(times, paths, strict=True):
        one = da.sel(time=t).drop_vars([c for c in da.coords if c not in ("y", "x")]).load()
        one = one.astype("float32")
        one.attrs = {**attrs, "date": str(t.date())}
        one.encoding = {}
        one = one.rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
        one.rio.to_raster(p, driver=driver, compress=compress)
    return paths
