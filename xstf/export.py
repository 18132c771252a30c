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
import uuid
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

__all__ = [
    "incomplete_message",
    "open_zarr",
    "prepare",
    "repair_zarr",
    "to_geotiff",
    "to_netcdf",
    "to_zarr",
]

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
        var_chunks = ds[v].chunks
        if var_chunks is None:
            continue
        fix = {
            d: max(c) for d, c in zip(ds[v].dims, var_chunks, strict=True) if not _regular(tuple(c))
        }
        if fix:  # Zarr needs regular chunks: rechunk that variable only
            ds[v] = ds[v].chunk(fix)
    # small non-index coordinates (per-date flags...) are written from memory, unchunked
    small = [c for c in ds.coords if c not in ds.indexes and ds[c].chunks is not None]
    ds = ds.assign_coords({c: ds[c].load() for c in small})
    return ds


def _exists(store: Any) -> bool:
    return isinstance(store, (str, os.PathLike)) and Path(store).exists()


#: Group attribute recording the state of a store written by :func:`to_zarr`.
STATUS_ATTR = "xstf_write_status"
#: Group attribute: number of dates that were complete when an append started.
APPEND_FROM_ATTR = "xstf_dates_before_append"
_STATUS_KEYS = (STATUS_ATTR, APPEND_FROM_ATTR)
_TMP_TAG = ".xstf-tmp-"
_OLD_TAG = ".xstf-old-"


def _set_status(store: Any, status: str, **extra: Any) -> None:
    """Write the status attrs into the group (and its consolidated metadata) — last step of a write."""
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        group = zarr.open_group(store, mode="r+")
        attrs = dict(group.attrs)
        for k in _STATUS_KEYS:
            attrs.pop(k, None)
        group.attrs.put({**attrs, STATUS_ATTR: status, **extra})
        try:
            zarr.consolidate_metadata(store)
        except Exception:  # stores that cannot hold consolidated metadata  # pragma: no cover
            pass


def _status(attrs: Mapping[str, Any]) -> str | None:
    status = attrs.get(STATUS_ATTR)
    return None if status is None else str(status)


def incomplete_message(store: Any, attrs: Mapping[str, Any]) -> str | None:
    """Why a store written by :func:`to_zarr` is not complete, with the fix; ``None`` if it is.

    Stores written by other tools (no ``xstf_write_status`` attribute) count as complete.

    Parameters
    ----------
    store : str, path-like or zarr store
        The store (named in the message).
    attrs : mapping
        Its group attributes (``xr.open_zarr(store).attrs``).

    Returns
    -------
    str or None

    Examples
    --------
    >>> incomplete_message("c.zarr", {"xstf_write_status": "complete"}) is None
    True
    >>> print(incomplete_message("c.zarr", {"xstf_write_status": "writing"}))  # doctest: +ELLIPSIS
    the Zarr store c.zarr is incomplete: its write was interrupted ...
    """
    status = _status(attrs)
    if status in (None, "complete"):
        return None
    if status == "appending":
        n = attrs.get(APPEND_FROM_ATTR, "?")
        return (
            f"the Zarr store {store} is incomplete: an append was interrupted (its first {n} "
            "date(s) were complete before it; the appended dates may be partly missing, read "
            "back as NaN). Recover the complete dates with xstf.export.repair_zarr(store) "
            "(drops the interrupted dates), then append them again"
        )
    return (
        f"the Zarr store {store} is incomplete: its write was interrupted (status {status!r}), so "
        "missing chunks would read back as NaN. Write it again with "
        "xstf.to_zarr(..., overwrite=True); open_zarr(store, incomplete='warn') reads it anyway"
    )


def _array_dims(arr: Any) -> tuple[str, ...]:
    names = getattr(arr.metadata, "dimension_names", None)
    if names is None:
        names = arr.attrs.get("_ARRAY_DIMENSIONS", ())
    return tuple(str(n) for n in names)


def repair_zarr(store: str | os.PathLike) -> Path:
    """Make a store left by an interrupted :func:`to_zarr` usable again, losing nothing complete.

    - an interrupted **append**: every array along ``time`` is cut back to the dates that
      were complete before the append (recorded in the store), and the store is marked
      complete; append the dropped dates again;
    - an interrupted **overwrite** killed between its two renames (the store missing, a
      complete temporary sibling ``.{name}.xstf-tmp-*`` present): the new store is moved
      into place; leftover temporary and old siblings are removed;
    - an interrupted **first write** cannot be repaired (there is no complete version):
      a ``ValueError`` says to write it again.

    Parameters
    ----------
    store : str or path-like
        The store's path.

    Returns
    -------
    pathlib.Path
        The store's path.

    Raises
    ------
    ValueError
        The store was never completely written.
    FileNotFoundError
        No store and no complete temporary copy.

    Examples
    --------
    >>> import tempfile, os, xstf
    >>> store = os.path.join(tempfile.mkdtemp(), "c.zarr")
    >>> _ = xstf.to_zarr(xstf.datasets.synthetic(size=16, days=2), store)
    >>> repair_zarr(store).name  # a complete store is left as it is
    'c.zarr'
    """
    import zarr

    path = Path(store)
    siblings = sorted(path.parent.glob(f".{path.name}{_TMP_TAG}*")) if path.parent.exists() else []
    olds = sorted(path.parent.glob(f".{path.name}{_OLD_TAG}*")) if path.parent.exists() else []
    if not path.exists():
        done = [s for s in siblings if _read_status(s) == "complete"]
        if not done:
            raise FileNotFoundError(
                f"{store} does not exist and no complete temporary copy was found"
            )
        os.rename(done[-1], path)
        siblings = [s for s in siblings if s != done[-1]]
    for leftover in [*siblings, *olds]:
        shutil.rmtree(leftover, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        group = zarr.open_group(path, mode="r+")
        attrs: dict[str, Any] = dict(group.attrs)
        status = _status(attrs)
        if status in (None, "complete"):
            return path
        if status != "appending":
            raise ValueError(incomplete_message(store, attrs))
        n = int(attrs[APPEND_FROM_ATTR])
        for _, arr in group.arrays():
            dims = _array_dims(arr)
            if "time" in dims:
                axis = dims.index("time")
                shape = list(arr.shape)
                shape[axis] = min(n, shape[axis])
                arr.resize(tuple(shape))
    _set_status(path, "complete")
    return path


def _read_status(store: Any) -> str | None:
    import zarr

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
            return _status(zarr.open_group(store, mode="r").attrs)
    except Exception:
        return None


def _check_append(ds: xr.Dataset, store: Any, append_dim: str) -> xr.Dataset:
    """Check ``ds`` against the store exactly; return it ready to append (units converted)."""
    from .cube import grid_mismatch
    from .units import convert_units, normalise_units

    old = open_zarr(store, incomplete="raise")
    if append_dim not in old.dims:
        raise ValueError(
            f"the store {store} has no {append_dim!r} dim to append to (dims {dict(old.sizes)})"
        )
    for d in ds.dims:
        if d != append_dim and d in old.coords and d in ds.coords:
            if old.sizes[d] != ds.sizes[d]:
                raise ValueError(
                    f"cannot append: {d!r} differs from the store's ({old.sizes[d]} vs {ds.sizes[d]} "
                    "values); append data on the same grid"
                )
            apart = grid_mismatch(old, ds, d)
            if apart:
                raise ValueError(
                    f"cannot append: {d!r} differs from the store's (store vs new: {apart}): "
                    "append data on the store's grid (reproject it, or assign the store's "
                    "coordinates if the difference is only rounding)"
                )
    missing = sorted(map(str, set(old.data_vars) ^ set(ds.data_vars)))
    if missing:
        raise ValueError(f"cannot append: variables differ from the store's ({missing})")
    old_crs, new_crs = old.rio.crs, ds.rio.crs
    if (old_crs is None) != (new_crs is None) or (old_crs is not None and old_crs != new_crs):
        raise ValueError(
            f"cannot append: the CRS differs from the store's ({_crs_name(new_crs)} vs "
            f"{_crs_name(old_crs)}): reproject the data onto the store's grid first"
        )
    for key in ("method", "parameters"):
        for where, old_attrs, new_attrs in [("the dataset", old.attrs, ds.attrs)] + [
            (f"variable {v!r}", old[v].attrs, ds[v].attrs) for v in ds.data_vars
        ]:
            if (key in old_attrs or key in new_attrs) and old_attrs.get(key) != new_attrs.get(key):
                raise ValueError(
                    f"cannot append: {where} has {key}={_short(new_attrs.get(key))} but the store "
                    f"has {key}={_short(old_attrs.get(key))}; results of another method or other "
                    "parameters go to another store (or another variable name)"
                )
    static = []
    for v in list(ds.data_vars):
        ou, nu = old[v].attrs.get("units"), ds[v].attrs.get("units")
        if ou != nu:
            try:
                temps = ("K", "degC")
                same_kind = normalise_units(str(ou)) in temps and normalise_units(str(nu)) in temps
            except ValueError:
                same_kind = False
            if not same_kind:
                raise ValueError(
                    f"cannot append: variable {v!r} is in {nu!r} but the store's is in {ou!r}: "
                    "convert it first"
                )
            warnings.warn(
                f"appending variable {v!r} in {nu!r} to a store in {ou!r}: converted to {ou!r}",
                UserWarning,
                stacklevel=3,
            )
            assert ou is not None  # normalise_units(str(None)) raised above
            conv = convert_units(ds[v], ou)
            conv.attrs["units"] = ou
            ds[v] = conv
        if append_dim not in ds[v].dims:
            a, b = old[v].values, ds[v].values
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                n = (
                    a.size
                    if a.shape != b.shape
                    else int(np.count_nonzero(~((a == b) | (a != a) & (b != b))))
                )
                raise ValueError(
                    f"cannot append: the static variable {v!r} (no {append_dim!r} dim) differs from "
                    f"the store's ({n} of {a.size} values): it would replace the store's for every "
                    f"date. Drop it (ds.drop_vars({v!r})) if the store's is right, or write "
                    "another store"
                )
            static.append(v)
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
    out = ds.drop_vars(static)  # equal to the store's: not rewritten
    out.attrs = {
        **{k: v for k, v in ds.attrs.items() if k not in _STATUS_KEYS},
        **{k: v for k, v in old.attrs.items() if k not in _STATUS_KEYS},
        STATUS_ATTR: "appending",
        APPEND_FROM_ATTR: int(old.sizes[append_dim]),
    }
    return out


def _crs_name(crs: Any) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else str(crs.to_string())[:60]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
    """Write a cube or a fused DataArray to Zarr, chunk by chunk, safely.

    The CRS goes in a CF ``spatial_ref`` grid mapping, attrs are CF (no
    ``scale_factor``/``add_offset``/``_FillValue`` in attrs), dask chunks become the store's
    chunks (made regular where needed). Read it back with :func:`open_zarr`.

    Safety (see the "Data safety" guide):

    - the store records its state in the group attribute ``xstf_write_status``:
      ``"writing"`` (or ``"appending"``) from the first byte, ``"complete"`` written last;
      :func:`open_zarr` and :func:`xstf.validate` refuse a store that is not complete;
    - ``overwrite=True`` on a local path writes a temporary sibling
      (``.{name}.xstf-tmp-*``) and swaps it in only once it is complete, so the old store
      is never deleted before the new data are written (and a source read lazily from
      the destination itself is read in full first);
    - ``append_dim="time"`` adds later dates without rewriting: same grid (coordinates
      equal to 1e-3 pixel), CRS, variables, ``method``/``parameters`` attrs and static
      variables (e.g. ``landcover``) as the store; temperatures in °C going into a Kelvin
      store are converted with a warning. An interrupted append is undone by
      :func:`repair_zarr`.

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
        ``False`` returns a dask delayed object; computing it writes the data, marks the
        store complete (and swaps it in for ``overwrite=True``).
    **kwargs
        Passed to :meth:`xarray.Dataset.to_zarr`.

    Returns
    -------
    pathlib.Path or store or dask.delayed.Delayed
        The store's path for a local store (the store object otherwise), or a delayed
        object with ``compute=False``.

    Raises
    ------
    FileExistsError
        ``store`` exists and neither ``overwrite=True`` nor ``append_dim`` was given.
    ValueError
        Appending dates that are not new, on another grid or CRS, with other variables,
        other units (not temperatures), another static variable or another method's
        attrs; appending to (or opening) an incomplete store.

    Examples
    --------
    >>> import tempfile, os, xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=6)
    >>> store = os.path.join(tempfile.mkdtemp(), "cube.zarr")
    >>> xstf.to_zarr(ds.isel(time=slice(0, 4)), store).name
    'cube.zarr'
    >>> _ = xstf.to_zarr(ds.isel(time=slice(4, 6)), store, append_dim="time")
    >>> back = xstf.export.open_zarr(store)
    >>> back.sizes["time"], back.rio.crs == ds.rio.crs, back.attrs["xstf_write_status"]
    (6, True, 'complete')
    """
    ds = prepare(obj, name=name, chunks=chunks)
    for k in _STATUS_KEYS:
        ds.attrs.pop(k, None)
    exists = _exists(store)
    if mode in ("w",) and exists and not overwrite:
        raise FileExistsError(f"{store} exists: pass overwrite=True to replace it")
    if append_dim is not None:
        if exists:
            ds = _check_append(ds, store, append_dim)
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
    if zarr_format is not None:
        kwargs["zarr_format"] = zarr_format
    if mode != "a":
        ds.attrs[STATUS_ATTR] = "writing"
    target = store
    swap = mode == "w" and exists and isinstance(store, (str, os.PathLike))
    if swap:  # write a sibling, swap it in once complete: the old store survives a failure
        path = Path(store)
        target = path.parent / f".{path.name}{_TMP_TAG}{uuid.uuid4().hex[:8]}"
        mode = "w-"
    if mode == "a":
        # the state goes first, so that a kill during the append is detectable
        _set_status(store, "appending", **{APPEND_FROM_ATTR: ds.attrs[APPEND_FROM_ATTR]})
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
            # xarray's overloads want Literal mode/compute; ours are validated str/bool
            result = ds.to_zarr(  # type: ignore[call-overload]
                target, mode=mode, append_dim=append_dim, compute=compute, **kwargs
            )
    except Exception:  # an error (not a kill): undo, so that the store is as it was
        if mode == "a":
            repair_zarr(store)  # back to the dates complete before the append
        elif isinstance(target, (str, os.PathLike)) and (swap or not exists):
            shutil.rmtree(target, ignore_errors=True)  # ours: a new store or the sibling
        raise
    if compute:
        _finish(target, store if swap else None)
        return Path(store) if isinstance(store, (str, os.PathLike)) else store
    import dask

    return dask.delayed(_finish)(target, store if swap else None, result)


def _finish(target: Any, swap_into: Any = None, _written: Any = None) -> Any:
    """Mark ``target`` complete; for an overwrite, swap it in place of ``swap_into``."""
    _set_status(target, "complete")
    if swap_into is None:
        return Path(target) if isinstance(target, (str, os.PathLike)) else target
    dest = Path(swap_into)
    old = dest.parent / f".{dest.name}{_OLD_TAG}{uuid.uuid4().hex[:8]}"
    os.rename(dest, old)
    os.rename(target, dest)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()
    return dest


def _replace_after(_written: Any, tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)


def open_zarr(store: Any, *, incomplete: str = "raise", **kwargs: Any) -> xr.Dataset:
    """Open a store written by :func:`to_zarr`, refusing one whose write did not finish.

    ``decode_coords="all"`` keeps ``spatial_ref`` as a coordinate.

    Parameters
    ----------
    store : str, path-like or zarr store
        The store.
    incomplete : {"raise", "warn"}
        What to do with a store whose ``xstf_write_status`` is not ``"complete"`` (an
        interrupted write or append): raise a ``ValueError`` naming the fix (default), or
        warn and open it anyway (missing chunks read as NaN; :func:`xstf.validate` still
        refuses it). Stores written by other tools (no status) open normally.
    **kwargs
        Passed to :func:`xarray.open_zarr`.

    Returns
    -------
    xarray.Dataset
        Lazy (dask) dataset.

    Raises
    ------
    ValueError
        The store is incomplete and ``incomplete="raise"``.

    Examples
    --------
    >>> import tempfile, os, xstf
    >>> store = os.path.join(tempfile.mkdtemp(), "c.zarr")
    >>> _ = xstf.to_zarr(xstf.datasets.synthetic(size=32, days=3), store)
    >>> "spatial_ref" in xstf.export.open_zarr(store).coords
    True
    """
    if incomplete not in ("raise", "warn"):
        raise ValueError(f"incomplete must be 'raise' or 'warn', got {incomplete!r}")
    kwargs.setdefault("decode_coords", "all")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        ds = xr.open_zarr(store, **kwargs)
    problem = incomplete_message(store, ds.attrs)
    if problem is not None:
        if incomplete == "raise":
            raise ValueError(problem)
        warnings.warn(problem, UserWarning, stacklevel=2)
    return ds


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
    The file is written next to ``path`` (``.{name}.xstf-tmp-*``) and renamed into place
    once complete, so an interrupted write never leaves a truncated file under ``path``
    nor destroys the file it replaces.

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
    dest = Path(path)
    tmp = dest.parent / f".{dest.name}{_TMP_TAG}{uuid.uuid4().hex[:8]}"
    try:
        # xarray's overloads want a Literal engine and compute; ours are plain str/bool
        written = ds.to_netcdf(  # type: ignore[call-overload]
            tmp, mode="w", engine=engine, compute=compute, **kwargs
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if compute:
        os.replace(tmp, dest)  # atomic: the old file stays whole until the new one is
        return None
    import dask

    return dask.delayed(_replace_after)(written, tmp, dest)


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
