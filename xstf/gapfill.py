"""Gap filling of cloud holes: progressive focal mean, temporal interpolation, or both.

Filled pixels are never silent: each filled variable gets a boolean ``<var>_filled``
companion (True where a value was filled in), its attrs record the method, and a
``UserWarning`` says how many pixels were filled (or, for lazy dask input, where to count
them), so scores can exclude filled pixels.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from numba import njit

from .errors import CubeError

__all__ = ["DEFAULT_MAX_GAP", "fill_gaps", "focal_fill"]

Method = Literal["focal", "temporal", "focal+temporal"]


@njit(nogil=True, cache=True)
def _focal_fill_2d(a, max_half, min_valid, out):  # pragma: no cover - numba
    ny, nx = a.shape
    for i in range(ny):
        for j in range(nx):
            v = a[i, j]
            if v == v:
                out[i, j] = v
                continue
            out[i, j] = np.nan
            for h in range(1, max_half + 1):
                s = 0.0
                n = 0
                for ii in range(max(0, i - h), min(ny, i + h + 1)):
                    for jj in range(max(0, j - h), min(nx, j + h + 1)):
                        w = a[ii, jj]
                        if w == w:
                            s += w
                            n += 1
                if n >= min_valid:
                    out[i, j] = s / n
                    break


def _focal_block(block: np.ndarray, max_half: int, min_valid: int) -> np.ndarray:
    """Fill one ``(..., y, x)`` numpy block, plane by plane."""
    arr = np.ascontiguousarray(block, dtype=np.float64)
    planes = arr.reshape(-1, *arr.shape[-2:])
    out = np.empty_like(planes)
    for k in range(planes.shape[0]):
        _focal_fill_2d(planes[k], max_half, min_valid, out[k])
    return out.reshape(arr.shape).astype(block.dtype, copy=False)


def focal_fill(da: xr.DataArray, max_window: int = 15, min_valid: int = 1) -> xr.DataArray:
    """Progressive focal mean: each NaN pixel gets the mean of the valid pixels of the
    smallest window (3 × 3, 5 × 5, ... up to ``max_window``) holding at least ``min_valid``.

    Only originally valid pixels enter the means (filled values are not reused), so a
    pixel's value does not depend on the order of filling nor on dask chunks (a halo of
    ``max_window // 2`` pixels is exchanged). Pixels with too few valid neighbours even
    in the largest window stay NaN.

    Parameters
    ----------
    da : xarray.DataArray
        ``(..., y, x)`` values with NaN gaps (numpy or dask).
    max_window : int
        Largest (odd) window side, in pixels.
    min_valid : int
        Valid pixels a window needs to provide a mean.

    Returns
    -------
    xarray.DataArray
        Same shape, dtype, coords and attrs; lazy for dask input.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0], [7.0, 8.0, 9.0]]), dims=("y", "x"))
    >>> float(focal_fill(a)[1, 1])
    5.0
    """
    if max_window < 3 or max_window % 2 == 0:
        raise ValueError(f"max_window must be an odd number >= 3, got {max_window}")
    if min_valid < 1:
        raise ValueError(f"min_valid must be >= 1, got {min_valid}")
    if not {"y", "x"} <= set(da.dims):
        raise ValueError(f"{da.name!r} has dims {da.dims}; focal filling needs 'y' and 'x'")
    half = max_window // 2
    order = [d for d in da.dims if d not in ("y", "x")] + ["y", "x"]
    src = da.transpose(*order)
    if src.chunks is None:
        data: Any = _focal_block(src.values, half, min_valid)
    else:
        arr = src.data
        ys, xs = arr.chunks[-2], arr.chunks[-1]
        if min(ys) < half or min(xs) < half:  # halo deeper than a chunk: make chunks bigger
            arr = arr.rechunk({arr.ndim - 2: max(half, max(ys)), arr.ndim - 1: max(half, max(xs))})
        depth = {arr.ndim - 2: half, arr.ndim - 1: half}
        data = arr.map_overlap(
            _focal_block,
            depth=depth,
            boundary=np.nan,
            dtype=arr.dtype,
            meta=np.array((), dtype=arr.dtype),
            max_half=half,
            min_valid=min_valid,
        )
    return src.copy(data=data).transpose(*da.dims)


@njit(nogil=True, cache=True)
def _interp_series(a, t, max_gap, out):  # pragma: no cover - numba
    """Linear interpolation of NaNs along the last axis of a 2-D ``(pixels, time)`` array."""
    npix, nt = a.shape
    for p in range(npix):
        prev = -1
        for k in range(nt):
            out[p, k] = a[p, k]
        for k in range(nt):
            if a[p, k] == a[p, k]:
                if prev >= 0 and k - prev > 1 and t[k] - t[prev] <= max_gap:
                    w = t[k] - t[prev]
                    for m in range(prev + 1, k):
                        f = (t[m] - t[prev]) / w
                        out[p, m] = a[p, prev] * (1.0 - f) + a[p, k] * f
                prev = k


def _interp_block(block: np.ndarray, t: np.ndarray, max_gap: float) -> np.ndarray:
    flat = np.ascontiguousarray(block.reshape(-1, block.shape[-1]), dtype=np.float64)
    out = np.empty_like(flat)
    _interp_series(flat, t, max_gap, out)
    return out.reshape(block.shape).astype(block.dtype, copy=False)


def _temporal(da: xr.DataArray, max_gap: Any) -> xr.DataArray:
    t = pd.DatetimeIndex(da["time"].values)
    days = np.asarray((t - t[0]) / pd.Timedelta(days=1), dtype=np.float64)
    gap = np.inf if max_gap is None else pd.Timedelta(max_gap) / pd.Timedelta(days=1)
    src = da.chunk({"time": -1}) if da.chunks is not None else da
    out = xr.apply_ufunc(
        _interp_block,
        src,
        input_core_dims=[["time"]],
        output_core_dims=[["time"]],
        kwargs={"t": days, "max_gap": float(gap)},
        dask="parallelized",
        output_dtypes=[da.dtype],
        keep_attrs=True,
    ).transpose(*da.dims)
    if da.chunks is not None:
        out = out.chunk(dict(zip(da.dims, da.chunks, strict=True)))
    return out


#: Default longest time gap (days) that temporal interpolation bridges: two Landsat revisits.
DEFAULT_MAX_GAP = "32D"


def fill_gaps(
    ds: xr.Dataset,
    method: Method = "focal",
    variables: Sequence[Hashable] = ("fine", "coarse"),
    *,
    max_window: int = 15,
    min_valid: int = 1,
    max_gap: Any = DEFAULT_MAX_GAP,
    fill_empty_dates: bool = False,
    suffix: str = "_filled",
    warn: bool = True,
) -> xr.Dataset:
    """Fill NaN gaps of cube variables, adding a boolean ``<var>_filled`` mask for each.

    - ``"focal"``: the progressive focal mean of the STF-LST pipeline
      (:func:`focal_fill`): growing windows 3 × 3, 5 × 5, ... up to ``max_window`` until a
      window holds ``min_valid`` valid pixels.
    - ``"temporal"``: per-pixel linear interpolation in time between the nearest valid
      dates before and after (weights from the actual dates; no extrapolation before the
      first or after the last valid date; gaps longer than ``max_gap`` stay NaN).
    - ``"focal+temporal"``: focal first (small holes, same date), then temporal for what
      is left (dates clouded over more than ``max_window``).

    By default no image is invented: a date on which a variable has no valid pixel at
    all (no overpass, or clouded over) stays empty (``fill_empty_dates=False``), and
    temporal interpolation only bridges observations at most ``max_gap`` (32 days) apart.
    Filling the cube's Landsat variable on every day would turn target dates into fake
    pairs.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (or any Dataset with ``(time, y, x)`` variables).
    method : {"focal", "temporal", "focal+temporal"}
        See above.
    variables : sequence of hashable
        Variables to fill.
    max_window : int
        Largest focal window (odd, pixels).
    min_valid : int
        Valid pixels a focal window needs.
    max_gap : str, timedelta or None
        Longest time gap between two observations of a pixel that temporal interpolation
        bridges (default ``"32D"``: two Landsat revisits); ``None``: any gap.
    fill_empty_dates : bool
        Also fill dates on which the variable has no valid pixel (temporal methods only:
        this invents whole images). Default False.
    suffix : str
        Suffix of the mask variables.
    warn : bool
        Emit the ``UserWarning`` that reports the filling.

    Returns
    -------
    xarray.Dataset
        A copy with the variables filled, ``<var><suffix>`` boolean masks added, and attrs
        ``gap_filled`` on each filled variable (and ``n_filled``, the number of filled
        pixels, on each mask for in-memory data). Lazy for dask input.

    Raises
    ------
    CubeError
        A variable is missing or has no ``time``/``y``/``x`` dims.

    Examples
    --------
    >>> import warnings, xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=20, cloud_fraction=0.3)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     out = xstf.fill_gaps(ds, method="focal", variables=["fine"])
    >>> bool(out.fine_filled.any()), bool((out.fine_filled & ds.fine.notnull()).any())
    (True, False)
    >>> out.fine_filled.attrs["n_filled"] == int(out.fine_filled.sum())
    True
    """
    if method not in ("focal", "temporal", "focal+temporal"):
        raise ValueError(f"method must be 'focal', 'temporal' or 'focal+temporal', got {method!r}")
    if max_gap is not None:
        try:
            gap = pd.Timedelta(max_gap)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"max_gap must be a time span such as '32D' or None, got {max_gap!r}"
            ) from err
        if gap <= pd.Timedelta(0):
            raise ValueError(f"max_gap must be positive, got {max_gap!r}")
    out = ds.copy()
    report = []
    for name in variables:
        if name not in ds.data_vars:
            raise CubeError(
                f"fill_gaps: no variable {name!r} (variables: {sorted(map(str, ds.data_vars))}); "
                "pass variables=[...]"
            )
        da = ds[name]
        need = {"y", "x"} if method == "focal" else {"time", "y", "x"}
        if not need <= set(da.dims):
            raise CubeError(
                f"fill_gaps: {name!r} has dims {da.dims}; {method} filling needs {sorted(need)}"
            )
        res = da
        steps = []
        if method in ("focal", "focal+temporal"):
            res = focal_fill(res, max_window=max_window, min_valid=min_valid)
            steps.append(f"focal mean, windows 3..{max_window}, min_valid={min_valid}")
        if method in ("temporal", "focal+temporal"):
            res = _temporal(res, max_gap)
            steps.append(f"temporal linear interpolation, max_gap={max_gap}")
            if not fill_empty_dates:
                # a date with no valid pixel (no overpass) stays empty: lazy for dask input
                observed = da.notnull().any(("y", "x"))
                res = res.where(observed)
                steps.append("dates with no valid pixel left empty")
        mask = (da.isnull() & res.notnull()).rename(f"{name}{suffix}")
        mask.attrs = {"long_name": f"{name} value filled by fill_gaps ({method})", "units": "1"}
        res.attrs = {**da.attrs, "gap_filled": "; ".join(steps), "gap_mask": f"{name}{suffix}"}
        res.encoding = dict(da.encoding)
        if mask.chunks is None:
            n = int(mask.sum())
            mask.attrs["n_filled"] = n
            report.append(f"{name}: {n} pixel(s) filled ({n / max(mask.size, 1):.2%})")
        else:
            report.append(f"{name}: count with int(ds['{name}{suffix}'].sum()) (lazy)")
        out[name] = res
        out[f"{name}{suffix}"] = mask
    hist = f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%dT%H:%M:%SZ} xstf.fill_gaps(method={method!r})"
    out.attrs = {**ds.attrs, "history": "\n".join(filter(None, [ds.attrs.get("history"), hist]))}
    if warn:
        warnings.warn(
            f"fill_gaps ({method}) filled gaps: " + "; ".join(report), UserWarning, stacklevel=2
        )
    return out
