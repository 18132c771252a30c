"""Dask helpers shared by the kernels' plumbing (fusion, scoring).

:func:`fresh_copy` gives a whole-scene statistic its own reads of the inputs. A kernel
that needs a statistic of the whole scene (ESTARFM's scene standard deviation, the
metrics' data range) cannot start on any block before the statistic is known; when the
statistic and the kernel read the same dask keys, dask keeps every input chunk of the
scene in memory from the statistic's read until the kernel's, so the peak grows with the
scene. Computing the statistic from a copy of the input graph under new keys (a second
read of the source: Zarr chunks read twice) lets each chunk go as soon as its partial
sums are taken, and the peak stays bounded by the chunks.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import dask
import dask.array as dsa
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

__all__ = ["fresh_copy", "overlap_rims", "spans_several_chunks"]


def _renamer(token: str) -> Any:
    def rename(key: Hashable) -> Hashable:
        if isinstance(key, tuple):
            return (f"{key[0]}-fresh-{token}", *key[1:])
        return f"{key}-fresh-{token}"

    return rename


def fresh_copy(*arrays: dsa.Array, salt: str = "") -> tuple[dsa.Array, ...]:
    """Copies of dask arrays whose graphs share no key with the originals (nor with any
    other graph): the same tasks, computed again, under new keys.

    The arrays are copied together (a task they share is copied once); copies of the
    same arrays with different ``salt`` share no key either. On a dask
    without task-spec graphs (before 2024.12) the arrays are returned as they are: the
    results are the same, only the memory saving is lost.

    Examples
    --------
    >>> import dask.array as dsa
    >>> x = dsa.arange(6, chunks=3) * 2
    >>> (y,) = fresh_copy(x)
    >>> y.name != x.name, bool(y.sum().compute() == x.sum().compute())
    (True, True)
    >>> set(dict(x.__dask_graph__())).isdisjoint(dict(y.__dask_graph__()))
    True
    """
    try:
        from dask._task_spec import Alias, GraphNode, convert_legacy_graph
    except ImportError:  # pragma: no cover - dask < 2024.12: tuple tasks, share the reads
        return tuple(arrays)
    keys = {k for a in arrays for k in dask.core.flatten(a.__dask_keys__())}
    graphs = [a.__dask_graph__() for a in arrays]
    merged = graphs[0] if len(graphs) == 1 else HighLevelGraph.merge(*graphs)
    culled = merged.cull(keys) if hasattr(merged, "cull") else merged
    dsk = convert_legacy_graph(dict(culled))
    if not all(isinstance(v, GraphNode) for v in dsk.values()):  # pragma: no cover
        return tuple(arrays)
    rename = _renamer(tokenize(*[a.name for a in arrays], "fresh", salt))
    subs = {k: rename(k) for k in dsk}
    new = {}
    for k, node in dsk.items():
        if isinstance(node, Alias) and node.target not in subs:  # pragma: no cover
            return tuple(arrays)
        new[subs[k]] = node.substitute(subs, key=subs[k])
    return tuple(dsa.Array(new, str(rename(a.name)), a.chunks, meta=a._meta) for a in arrays)


def spans_several_chunks(*arrays: dsa.Array) -> bool:
    """Whether any array has more than one chunk over its last two (spatial) axes.

    Only then do separate reads pay: with one spatial chunk per date there is no
    neighbour to hold for a halo, and a whole-scene statistic holds the one chunk its
    block needs anyway, so a second read would only repeat the work (a lazy prediction
    computed twice or three times).

    Examples
    --------
    >>> import dask.array as dsa
    >>> spans_several_chunks(dsa.zeros((4, 8, 8), chunks=(1, 8, 8)))
    False
    >>> spans_several_chunks(dsa.zeros((4, 8, 8), chunks=(1, 4, 8)))
    True
    """
    return any(len(a.chunks[-1]) * len(a.chunks[-2]) > 1 for a in arrays)


#: The pieces of a block's rim that its neighbours need (see :func:`_rim`).
_TOP, _BOTTOM, _LEFT, _RIGHT, _TOP_LEFT, _TOP_RIGHT, _BOTTOM_LEFT, _BOTTOM_RIGHT = range(8)


def _rim(block: np.ndarray, w: int, m: int) -> np.ndarray:
    """The ``w``-pixel rim of a ``(..., h, wd)`` block, as ``(..., 1, 1, 8, w, m)``.

    Pieces (copies, NaN-padded to ``m``): the top and bottom ``w`` rows, the left and
    right ``w`` columns (transposed to ``(w, h)``), and the four ``w x w`` corners.
    """
    *lead, h, wd = block.shape
    out = np.full((*lead, 1, 1, 8, w, m), np.nan, dtype=block.dtype)
    r = out[..., 0, 0, :, :, :]
    r[..., _TOP, :, :wd] = block[..., :w, :]
    r[..., _BOTTOM, :, :wd] = block[..., h - w :, :]
    r[..., _LEFT, :, :h] = np.swapaxes(block[..., :w], -1, -2)
    r[..., _RIGHT, :, :h] = np.swapaxes(block[..., wd - w :], -1, -2)
    r[..., _TOP_LEFT, :, :w] = block[..., :w, :w]
    r[..., _TOP_RIGHT, :, :w] = block[..., :w, wd - w :]
    r[..., _BOTTOM_LEFT, :, :w] = block[..., h - w :, :w]
    r[..., _BOTTOM_RIGHT, :, :w] = block[..., h - w :, wd - w :]
    return out


#: The eight neighbours of a block, as (rows, cols) offsets in blocks.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _with_rims(core: np.ndarray, *rims: np.ndarray, w: int) -> np.ndarray:
    """A ``(..., h, wd)`` block with a ``w``-pixel halo cut from its neighbours' rims.

    ``rims``: the ``(..., 1, 1, 8, w, m)`` rims of the eight neighbours, in the order
    of ``_NEIGHBOURS`` (NaN beyond the scene).
    """
    *lead, h, wd = core.shape
    nw, n, ne, we, ea, sw, s, se = (r[..., 0, 0, :, :, :] for r in rims)
    out = np.empty((*lead, h + 2 * w, wd + 2 * w), dtype=core.dtype)
    out[..., w : w + h, w : w + wd] = core
    out[..., :w, w : w + wd] = n[..., _BOTTOM, :, :wd]
    out[..., w + h :, w : w + wd] = s[..., _TOP, :, :wd]
    out[..., w : w + h, :w] = np.swapaxes(we[..., _RIGHT, :, :h], -1, -2)
    out[..., w : w + h, w + wd :] = np.swapaxes(ea[..., _LEFT, :, :h], -1, -2)
    out[..., :w, :w] = nw[..., _BOTTOM_RIGHT, :, :w]
    out[..., :w, w + wd :] = ne[..., _BOTTOM_LEFT, :, :w]
    out[..., w + h :, :w] = sw[..., _TOP_RIGHT, :, :w]
    out[..., w + h :, w + wd :] = se[..., _TOP_LEFT, :, :w]
    return out


def overlap_rims(x: dsa.Array, depth: int, boundary: Any = np.nan) -> dsa.Array:
    """``dask.array.overlap.overlap`` over the last two axes, in memory bounded by the chunks.

    Each block gets a ``depth``-pixel halo from its neighbours: the same values as
    ``overlap(x, depth={-2: depth, -1: depth}, boundary=...)`` (other axes untouched),
    but the halo is cut from a second read of ``x`` (:func:`fresh_copy`) as thin rims,
    each chunk of that read dropped as soon as its rim is copied, and the blocks' own
    chunks come from a third read, used by that block only (with a single chunk over the
    last two axes there is no neighbour, and this is ``overlap`` itself). With ``overlap``, a chunk
    read for a neighbour's halo stays in memory until its own block runs: a band of
    chunks as wide as the scene (or all of them, when another whole-scene computation
    shares the reads). The price is reading (computing) ``x`` twice.

    Parameters
    ----------
    x : dask.array.Array
        At least 2-D, float; every chunk of the last two axes at least ``depth`` wide.
    depth : int
        Halo width (pixels, > 0).
    boundary : float or "none"
        Beyond the scene: filled with this constant (NaN by default), or ``"none"``: no
        halo there (the edge blocks are ``depth`` smaller on that side, as ``overlap``).

    Returns
    -------
    dask.array.Array
        Blocks of ``(..., h + 2·depth, wd + 2·depth)`` (less at the scene's edge with
        ``"none"``), one task each.

    Examples
    --------
    >>> import dask.array as dsa, numpy as np
    >>> x = dsa.arange(36.0, chunks=9).reshape(6, 6).rechunk(3)
    >>> a = overlap_rims(x, 1, boundary="none")
    >>> b = dsa.overlap.overlap(x, depth=1, boundary="none")
    >>> a.chunks == b.chunks, bool((a.compute() == b.compute()).all())
    (True, True)
    """
    w = int(depth)
    if w < 1:
        raise ValueError(f"depth must be >= 1 pixel, got {depth}")
    cy, cx = x.chunks[-2], x.chunks[-1]
    if min(*cy, *cx) < w:
        raise ValueError(f"chunks {cy} x {cx} are smaller than the halo ({w} px): rechunk first")
    nlead = x.ndim - 2
    if isinstance(boundary, str) and boundary != "none":
        raise ValueError(f"boundary must be a number or 'none', got {boundary!r}")
    if not isinstance(boundary, str) and not (isinstance(boundary, float) and np.isnan(boundary)):
        raise ValueError(f"boundary must be NaN or 'none', got {boundary!r}")
    if not spans_several_chunks(x):  # no neighbour to hold: dask's overlap, one read
        return dsa.overlap.overlap(
            x,
            depth={**dict.fromkeys(range(nlead), 0), nlead: w, nlead + 1: w},
            boundary={**dict.fromkeys(range(nlead), "none"), nlead: boundary, nlead + 1: boundary},
        )
    lead = "".join(chr(ord("a") + i) for i in range(nlead))
    (core,) = fresh_copy(x, salt="core")
    (edge,) = fresh_copy(x, salt="rim")
    m = max(*cy, *cx)
    rims = dsa.blockwise(
        _rim, lead + "yxkpq", edge, lead + "yx",
        w=w, m=m, new_axes={"k": 8, "p": w, "q": m},
        adjust_chunks={"y": (1,) * len(cy), "x": (1,) * len(cx)},
        dtype=x.dtype, meta=np.empty((0,) * (nlead + 5), dtype=x.dtype),
    )  # fmt: skip
    # each neighbour's rim, aligned with the block (a NaN rim beyond the scene): whole
    # blocks of the padded rims, referenced, not copied
    ny_b, nx_b = len(cy), len(cx)
    pad = [(0, 0)] * nlead + [(1, 1), (1, 1)] + [(0, 0)] * 3
    padded = dsa.pad(rims, pad, mode="constant", constant_values=np.nan)
    padded = padded.rechunk({nlead: 1, nlead + 1: 1})
    around = [
        padded[
            (Ellipsis, slice(1 + dy, 1 + dy + ny_b), slice(1 + dx, 1 + dx + nx_b))
            + (slice(None),) * 3
        ]
        for dy, dx in _NEIGHBOURS
    ]
    args: list[Any] = [core, lead + "yx"]
    for a in around:
        args += [a, lead + "yxkpq"]
    out = dsa.blockwise(
        _with_rims, lead + "yx", *args,
        w=w, concatenate=True, align_arrays=False,
        adjust_chunks={"y": tuple(c + 2 * w for c in cy), "x": tuple(c + 2 * w for c in cx)},
        dtype=x.dtype, meta=np.empty((0,) * x.ndim, dtype=x.dtype),
    )  # fmt: skip
    if isinstance(boundary, str):
        return out[..., w:-w, w:-w]
    return out
