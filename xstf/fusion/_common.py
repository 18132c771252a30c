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
    own read of the date (:func:`xstf._dask.fresh_copy`): the kernels that need it then
    do not keep the date's chunks in memory while it is being reduced.
    """
    if _is_dask(da2d):
        import dask.array as dsa

        from .._dask import fresh_copy

        (own,) = fresh_copy(da2d)
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


#: The pieces of a block's rim that its neighbours need (see :func:`_rim`).
_TOP, _BOTTOM, _LEFT, _RIGHT, _TOP_LEFT, _TOP_RIGHT, _BOTTOM_LEFT, _BOTTOM_RIGHT = range(8)


def _rim(block: np.ndarray, w: int, m: int) -> np.ndarray:
    """The ``w``-pixel rim of a ``(layers, h, wd)`` block, as ``(1, 1, layers, 8, w, m)``.

    Pieces (copies, NaN-padded to ``m``): the top and bottom ``w`` rows, the left and
    right ``w`` columns (transposed to ``(w, h)``), and the four ``w x w`` corners.
    """
    n, h, wd = block.shape
    out = np.full((1, 1, n, 8, w, m), np.nan, dtype=np.float32)
    r = out[0, 0]
    r[:, _TOP, :, :wd] = block[:, :w]
    r[:, _BOTTOM, :, :wd] = block[:, h - w :]
    r[:, _LEFT, :, :h] = block[:, :, :w].transpose(0, 2, 1)
    r[:, _RIGHT, :, :h] = block[:, :, wd - w :].transpose(0, 2, 1)
    r[:, _TOP_LEFT, :, :w] = block[:, :w, :w]
    r[:, _TOP_RIGHT, :, :w] = block[:, :w, wd - w :]
    r[:, _BOTTOM_LEFT, :, :w] = block[:, h - w :, :w]
    r[:, _BOTTOM_RIGHT, :, :w] = block[:, h - w :, wd - w :]
    return out


def _padded(core: np.ndarray, rims: np.ndarray, w: int) -> np.ndarray:
    """A block with its ``w``-pixel halo from its neighbours' rims.

    ``core`` is ``(layers, h, wd)``, ``rims`` the ``(3, 3, layers, 8, w, m)`` rims of the
    block and its eight neighbours (NaN beyond the scene).
    """
    n, h, wd = core.shape
    out = np.empty((n, h + 2 * w, wd + 2 * w), dtype=np.float32)
    out[:, w : w + h, w : w + wd] = core
    out[:, :w, w : w + wd] = rims[0, 1, :, _BOTTOM, :, :wd]
    out[:, w + h :, w : w + wd] = rims[2, 1, :, _TOP, :, :wd]
    out[:, w : w + h, :w] = rims[1, 0, :, _RIGHT, :, :h].transpose(0, 2, 1)
    out[:, w : w + h, w + wd :] = rims[1, 2, :, _LEFT, :, :h].transpose(0, 2, 1)
    out[:, :w, :w] = rims[0, 0, :, _BOTTOM_RIGHT, :, :w]
    out[:, :w, w + wd :] = rims[0, 2, :, _BOTTOM_LEFT, :, :w]
    out[:, w + h :, :w] = rims[2, 0, :, _TOP_RIGHT, :, :w]
    out[:, w + h :, w + wd :] = rims[2, 2, :, _TOP_LEFT, :, :w]
    return out


def _block_call(
    core: np.ndarray,
    rims: np.ndarray,
    stats: np.ndarray,
    call: Callable,
    halo: int,
    **kwargs: Any,
) -> np.ndarray:
    block = _padded(np.asarray(core, dtype=np.float32), rims, halo)
    return call(block, np.asarray(stats, np.float64), **kwargs)


def _run_dask(
    call: Callable, layers: Sequence[Any], halo: int, stats: Sequence[Any], **kwargs: Any
):
    """The lazy path of :func:`run_kernel`, in memory bounded by the chunks.

    Each output block is computed from its own chunk of the layers and the ``halo``-pixel
    rims of its eight neighbours. The chunks and the rims come from two separate reads of
    the layers (:func:`xstf._dask.fresh_copy`), each its own per call: a chunk read for
    the rims is dropped as soon as its rim (a thin copy) is cut, one read for the core is
    dropped once its block is computed, and no read is shared with another call (another
    target date) or with a whole-scene statistic. With a single read, dask would keep a
    neighbour's chunk from the moment its halo is taken until its own block runs (a band
    of chunks as wide as the scene), and a chunk shared with a statistic or another
    target until every user has run.
    """
    import dask.array as dsa

    from .._dask import fresh_copy

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
    (core,) = fresh_copy(stacked, salt="core")
    (edge,) = fresh_copy(stacked, salt="rim")
    m = max(*chunks[0], *chunks[1])
    rims = dsa.blockwise(
        _rim, "yxlkab", edge, "lyx",
        w=halo, m=m, new_axes={"k": 8, "a": halo, "b": m},
        adjust_chunks={"y": (1,) * len(chunks[0]), "x": (1,) * len(chunks[1])},
        dtype=np.float32, meta=np.empty((0,) * 6, dtype=np.float32),
    )  # fmt: skip
    hood = dsa.overlap.overlap(
        rims,
        depth={0: 1, 1: 1, 2: 0, 3: 0, 4: 0, 5: 0},
        boundary={0: np.nan, 1: np.nan, 2: "none", 3: "none", 4: "none", 5: "none"},
    )
    st = dsa.stack([dsa.asarray(s, dtype=np.float64).reshape(()) for s in stats])
    return dsa.blockwise(
        _block_call, "yx", core, "lyx", hood, "yxlkab", st, "s",
        call=call, halo=halo, concatenate=True, align_arrays=False,
        adjust_chunks={"y": chunks[0], "x": chunks[1]},
        dtype=np.float32, meta=np.empty((0, 0), dtype=np.float32), **kwargs,
    )  # fmt: skip
