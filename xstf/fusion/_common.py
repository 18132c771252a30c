"""Shared plumbing of the window-based fusion methods: dates, checks, dask and xarray.

The kernels work on one padded numpy block (a halo of ``w`` pixels, NaN beyond the
scene) and return its interior. This module

- resolves and checks the pair and target dates (:func:`resolve_dates`),
- builds, per target, the stack of layers a kernel needs,
- runs a kernel over a numpy scene (row strips on a thread pool) or lazily over a
  dask array (``overlap`` with a NaN boundary + ``blockwise``; chunks smaller than
  the halo are merged first, explicitly),
- and wraps the result into a ``(time, y, x)`` DataArray with the reference pairs
  of each date as coordinates ``reference_pair_1``, ``reference_pair_2``... along time.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .. import cube as _cube
from ..errors import CubeError

__all__ = [
    "as_float32_threshold",
    "check_half_window",
    "resolve_dates",
    "run_kernel",
    "scene_std",
    "wrap_result",
]


def as_float32_threshold(value: float) -> np.float32:
    """The smallest float32 >= ``value``.

    For float32 inputs ``a``, ``b`` of similar magnitude (LST in K), ``a - b`` is exact
    in float32, and ``|a - b| < t32`` holds exactly when ``|a - b| < value`` does: the
    float32 kernels select the same candidates as a float64 computation.
    """
    t = np.float32(value)
    if np.isfinite(t) and float(t) < value:
        t = np.nextafter(t, np.float32(np.inf))
    return np.float32(t)


def check_half_window(ds: xr.Dataset, half_window: Any, name: str = "half_window") -> int:
    """``half_window`` as a positive int that fits the scene, else a clear error."""
    if isinstance(half_window, bool) or not isinstance(half_window, (int, np.integer)):
        raise TypeError(f"{name} must be an int (pixels), got {type(half_window).__name__}")
    w = int(half_window)
    if w < 1:
        raise ValueError(f"{name} must be >= 1 pixel, got {w}")
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    if 2 * w + 1 > min(ny, nx):
        raise CubeError(
            f"the window ({2 * w + 1} x {2 * w + 1} pixels, {name}={w}) is larger than the "
            f"scene ({ny} x {nx}): use {name} <= {(min(ny, nx) - 1) // 2}"
        )
    return w


def _as_dates(values: Any, times: pd.DatetimeIndex, what: str) -> pd.DatetimeIndex:
    if isinstance(values, (xr.DataArray, pd.Series)):
        values = values.values
    try:
        if isinstance(values, str) or np.ndim(values) == 0:
            values = [pd.Timestamp(values if isinstance(values, str) else np.asarray(values)[()])]
        if not isinstance(values, (np.ndarray, pd.Index)):
            values = list(values)
        idx = pd.DatetimeIndex(pd.to_datetime(values))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be dates (datetime-like), got {values!r}: {err}") from None
    missing = idx[~idx.isin(times)]
    if len(missing):
        raise CubeError(
            f"{len(missing)} of the {what} are not dates of the cube: "
            f"{[str(d.date()) for d in missing[:5]]}; the cube's time runs "
            f"{times[0].date()}..{times[-1].date()} ({len(times)} dates)"
        )
    return pd.DatetimeIndex(sorted(set(idx)), name="time")


def resolve_dates(
    ds: xr.Dataset,
    fine: Hashable,
    coarse: Hashable,
    targets: Any,
    pairs: Any,
    min_coverage: float,
    n_pairs: int,
    method: str,
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Validate the cube and return ``(targets, pairs)``.

    Default pairs: :func:`xstf.cube.pair_dates`; default targets:
    :func:`xstf.cube.target_dates` (usable coarse, no usable fine).
    """
    _cube.validate(ds, fine, coarse, min_coverage, require_pairs=n_pairs if pairs is None else 0)
    times = pd.DatetimeIndex(ds["time"].values)
    if pairs is None:
        pairs_idx = _cube.pair_dates(ds, fine, coarse, min_coverage)
    else:
        pairs_idx = _as_dates(pairs, times, "pairs")
        sub = ds[[fine, coarse]].sel(time=pairs_idx)
        cov = _cube.coverage(sub, fine, coarse).compute()
        empty = [
            str(pd.Timestamp(t).date())
            for t, a, b in zip(pairs_idx, cov[fine].values, cov[coarse].values, strict=True)
            if a == 0.0 or b == 0.0
        ]
        if empty:
            raise CubeError(
                f"pair date(s) {empty} have no valid {fine!r} or {coarse!r} pixel: "
                "choose other pairs"
            )
    if len(pairs_idx) < n_pairs:
        raise CubeError(
            f"{method} needs at least {n_pairs} pair(s) (dates where both {fine!r} and "
            f"{coarse!r} cover >= {min_coverage:.0%}); found {len(pairs_idx)}: "
            f"{[str(d.date()) for d in pairs_idx]}. Lower min_coverage, fill gaps or add dates"
        )
    if targets is None:
        targets_idx = _cube.target_dates(ds, fine, coarse, min_coverage)
        if len(targets_idx) == 0:
            raise CubeError(
                f"the cube has no target dates (dates where {coarse!r} covers >= "
                f"{min_coverage:.0%} and {fine!r} does not): pass targets=[...] explicitly "
                "(a pair date is predicted leave-one-out)"
            )
    else:
        targets_idx = _as_dates(targets, times, "targets")
        cov = ds[coarse].sel(time=targets_idx).notnull().mean(("y", "x")).compute().values
        empty = [str(t.date()) for t, c in zip(targets_idx, cov, strict=True) if c == 0.0]
        if empty:
            raise CubeError(
                f"target date(s) {empty[:5]} have no valid {coarse!r} pixel: nothing to "
                "predict from; drop them from targets"
            )
    return targets_idx, pairs_idx


def scene_std(da2d: Any) -> Any:
    """Sample standard deviation (ddof=1) of the finite pixels of one date, in float64.

    numpy in -> numpy scalar array; dask in -> a lazy 0-d dask array.
    """
    if _is_dask(da2d):
        import dask.array as dsa

        return dsa.nanstd(da2d.astype(np.float64), ddof=1)
    return np.asarray(np.nanstd(np.asarray(da2d, dtype=np.float64), ddof=1))


def _is_dask(a: Any) -> bool:
    return type(a).__module__.startswith("dask")


def _even_chunks(n: int, chunks: Sequence[int], minimum: int) -> tuple[int, ...]:
    """Chunks along one axis, each >= ``minimum`` (merging small ones, keeping big ones)."""
    if all(c >= minimum for c in chunks):
        return tuple(chunks)
    if n <= minimum:
        return (n,)
    size = max(minimum, max(chunks))
    out = [size] * (n // size)
    rest = n - size * len(out)
    if rest:
        if rest >= minimum or not out:
            out.append(rest)
        else:
            out[-1] += rest
    return tuple(out)


def _strips(n: int, w: int, parts: int) -> list[tuple[int, int]]:
    step = max(w, 16, -(-n // parts))
    return list(itertools.pairwise([*range(0, n, step), n]))


def run_kernel(
    call: Callable[..., np.ndarray],
    layers: Sequence[Any],
    halo: int,
    stats: Sequence[Any],
    **kwargs: Any,
) -> Any:
    """Run ``call(block, stats, **kwargs)`` over a scene given as 2-D layers.

    ``block`` is a ``(len(layers), h + 2·halo, wd + 2·halo)`` float32 C-contiguous array (NaN
    halo beyond the scene), ``stats`` a float64 array (whole-scene statistics). Any dask
    layer -> lazy dask result with the spatial chunks of the first dask layer (merged
    where smaller than ``halo``); all numpy -> numpy, computed now on row strips in threads.
    """
    if any(_is_dask(a) for a in layers) or any(_is_dask(s) for s in stats):
        return _run_dask(call, layers, halo, stats, **kwargs)
    block = np.stack([np.asarray(a, dtype=np.float32) for a in layers])
    block = np.pad(block, ((0, 0), (halo, halo), (halo, halo)), constant_values=np.nan)
    st = np.asarray([float(s) for s in stats], dtype=np.float64)
    ny = block.shape[1] - 2 * halo
    strips = _strips(ny, halo, 2 * (os.cpu_count() or 1))

    def one(bounds: tuple[int, int]) -> np.ndarray:
        a, b = bounds
        return call(np.ascontiguousarray(block[:, a : b + 2 * halo]), st, **kwargs)

    if len(strips) == 1:
        return one(strips[0])
    with ThreadPoolExecutor(max_workers=min(len(strips), os.cpu_count() or 1)) as pool:
        parts = list(pool.map(one, strips))
    return np.concatenate(parts, axis=0)


def _block_call(block: np.ndarray, stats: np.ndarray, call: Callable, **kwargs: Any) -> np.ndarray:
    return call(
        np.ascontiguousarray(block, dtype=np.float32), np.asarray(stats, np.float64), **kwargs
    )


def _run_dask(
    call: Callable, layers: Sequence[Any], halo: int, stats: Sequence[Any], **kwargs: Any
):
    import dask.array as dsa

    ref = next(a for a in layers if _is_dask(a)) if any(_is_dask(a) for a in layers) else None
    ny, nx = np.shape(layers[0])
    if ref is None:
        chunks = ((ny,), (nx,))
    else:
        chunks = (
            _even_chunks(ny, ref.chunks[0], halo),
            _even_chunks(nx, ref.chunks[1], halo),
        )
    arrs = [
        (a if _is_dask(a) else dsa.from_array(np.asarray(a), chunks=-1))
        .astype(np.float32)
        .rechunk(chunks)
        for a in layers
    ]
    stacked = dsa.stack(arrs).rechunk({0: -1})
    ov = dsa.overlap.overlap(
        stacked, depth={0: 0, 1: halo, 2: halo}, boundary={0: "none", 1: np.nan, 2: np.nan}
    )
    st = dsa.stack([dsa.asarray(s, dtype=np.float64).reshape(()) for s in stats])
    return dsa.blockwise(
        _block_call,
        "yx",
        ov,
        "lyx",
        st,
        "s",
        call=call,
        concatenate=True,
        dtype=np.float32,
        adjust_chunks={"y": chunks[0], "x": chunks[1]},
        meta=np.empty((0, 0), dtype=np.float32),
        **kwargs,
    )


def wrap_result(
    ds: xr.Dataset,
    coarse: Hashable,
    targets: pd.DatetimeIndex,
    results: list[Any],
    used: list[list[pd.Timestamp]],
    method: str,
    parameters: dict[str, Any],
) -> xr.DataArray:
    """Stack per-date results into a ``(time, y, x)`` DataArray on the cube's grid."""
    if any(_is_dask(r) for r in results):
        import dask.array as dsa

        data = dsa.stack(results)
    else:
        data = np.stack(results)
    template = ds[coarse].sel(time=targets)
    out = xr.DataArray(data, coords=template.coords, dims=template.dims, name=method.lower())
    npair = max(len(u) for u in used)
    for k in range(npair):
        ref = np.full(len(targets), np.datetime64("NaT"), dtype="datetime64[ns]")
        for i, u in enumerate(used):
            if k < len(u):
                ref[i] = np.datetime64(pd.Timestamp(u[k]).to_datetime64(), "ns")
        name = f"reference_pair_{k + 1}"
        out = out.assign_coords({name: ("time", ref)})
        out[name].attrs["long_name"] = f"reference pair {k + 1} (in date order) used for each date"
    out.attrs = {
        "units": "K",
        "standard_name": "surface_temperature",
        "long_name": f"fine-scale LST predicted by {method}",
        "method": method,
        "parameters": json.dumps(parameters, sort_keys=True, default=str),
    }
    return out
