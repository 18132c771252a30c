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
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

__all__ = ["fresh_copy"]


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
