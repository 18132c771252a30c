"""Shared plumbing of the window-based fusion methods: dates, checks, dask and xarray.

The kernels work on one padded numpy block (a halo of ``w`` pixels, NaN beyond the
scene) and return its interior. This module

- (dates and the output DataArray are :mod:`xstf.prediction`'s job),
- builds, per target, the stack of layers a kernel needs,
- runs a kernel over a numpy scene (row strips on a thread pool) or lazily over a
  dask array, in memory bounded by the chunks: each block gets its halo from its
  neighbours' thin rims (cut from a second read of the layers) rather than from their
  whole chunks; chunks smaller than the halo are merged first, explicitly (see
  :func:`_run_dask`),
- computes whole-scene statistics (:func:`scene_std`) from their own read of the date.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..errors import CubeError

__all__ = [
    "as_float32_threshold",
    "check_half_window",
    "progress_dates",
    "run_kernel",
    "scene_std",
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


def scene_std(da2d: Any) -> Any:
    """Sample standard deviation (ddof=1) of the finite pixels of one date, in float64.

    numpy in -> numpy scalar array; dask in -> a lazy 0-d dask array, computed from its
    own read of the date (:func:`xstf._dask.fresh_copy`) when the date spans several
    chunks: the kernels that need it then do not keep the date's chunks in memory
    while it is being reduced.
    """
    if _is_dask(da2d):
        import dask.array as dsa

        from .._dask import fresh_copy, spans_several_chunks

        # a date in one chunk: the block needs that chunk anyway, a second read would
        # only repeat the work upstream
        (own,) = fresh_copy(da2d) if spans_several_chunks(da2d) else (da2d,)
        return dsa.nanstd(own.astype(np.float64), ddof=1)
    return np.asarray(np.nanstd(np.asarray(da2d, dtype=np.float64), ddof=1))


def progress_dates(
    dates: Sequence[Any], method: str, progress: bool | None, lazy: bool
) -> Iterable[Any]:
    """``dates``, wrapped in a tqdm bar when the run is eager and ``progress`` asks for it.

    ``progress=None`` (the default of the methods): a bar for eager (numpy) runs of more
    than one date when stderr is a terminal, so scripts and tests stay quiet. Lazy runs
    never get one here: the work happens at compute time (use dask's diagnostics).
    """
    show = (not lazy) and (
        bool(progress) if progress is not None else (len(dates) > 1 and sys.stderr.isatty())
    )
    if not show:
        return dates
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm missing: no bar
        return dates
    return tqdm(dates, desc=method, unit="date")


def _is_dask(a: Any) -> bool:
    return dask.is_dask_collection(a)


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
    stats = list(stats) or [0.0]  # kernels without whole-scene statistics
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
    """The lazy path of :func:`run_kernel`, in memory bounded by the chunks.

    The halo comes from :func:`xstf._dask.overlap_rims`: each block gets its own read of
    the layers and the ``halo``-pixel rims of its neighbours (cut from a second read),
    and these reads are this call's own, shared with no other target date and no
    whole-scene statistic (see :func:`scene_std`). With ``dask.array.overlap`` on reads
    shared by every user, dask keeps a neighbour's chunk from the moment its halo is
    taken until its own block runs (a band of chunks as wide as the scene), and a chunk
    shared with a statistic or another target until every user has run: the peak grew
    with the scene.
    """
    import dask.array as dsa

    from .._dask import overlap_rims

    ref = next(a for a in layers if _is_dask(a)) if any(_is_dask(a) for a in layers) else None
    ny, nx = np.shape(layers[0])
    chunks: tuple[tuple[int, ...], tuple[int, ...]]
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
    ov = overlap_rims(stacked, halo, boundary=np.nan)
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
