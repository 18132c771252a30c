"""Text and HTML representations of ``ds.stf`` (the cube as a fusion method sees it).

Cheap by construction: the grid, the dates and the variables come from metadata; pairs,
targets and coverage are shown only when the data are in memory (numpy arrays, or dask
arrays after ``ds.persist()``). For a lazy cube they need a pass over the data (a lazy
synthetic cube is generated again), so the representation says which call computes
them instead.
"""

from __future__ import annotations

import html
from collections.abc import Hashable
from dataclasses import dataclass, field

import pandas as pd
import xarray as xr

from ._docs import fill_doc

__all__ = ["CubeInfo", "cube_info", "cube_repr_html", "cube_repr_text"]

_SHOWN_DATES = 6


@dataclass
class CubeInfo:
    """What the representations show; ``pairs`` is None when it was not computed."""

    grid: str
    dates: str
    variables: list[str]
    pairs: pd.DatetimeIndex | None = None
    targets: pd.DatetimeIndex | None = None
    coverage: dict[str, float] = field(default_factory=dict)
    note: str = ""


def _dates(index: pd.DatetimeIndex) -> str:
    shown = ", ".join(str(d.date()) for d in index[:_SHOWN_DATES])
    return shown + (", …" if len(index) > _SHOWN_DATES else "")


def _in_memory(da: xr.DataArray) -> bool:
    """numpy data, or a persisted dask array (its graph holds nothing but its chunks)."""
    if da.chunks is None:
        return True
    arr = da.data
    return len(arr.__dask_graph__()) == arr.npartitions


@fill_doc
def cube_info(ds: xr.Dataset, fine: Hashable = "fine", coarse: Hashable = "coarse") -> CubeInfo:
    """Gather what ``repr(ds.stf)`` shows, without computing anything on dask data.

    Parameters
    ----------
    %(cube)s

    Returns
    -------
    CubeInfo

    Examples
    --------
    >>> import xstf
    >>> info = cube_info(xstf.datasets.synthetic(size=32, days=20))
    >>> info.dates, len(info.pairs)
    ('20 dates, 2021-01-01 .. 2021-01-20', 2)
    >>> lazy = xstf.datasets.synthetic(size=32, days=20, chunks={"time": 5})
    >>> cube_info(lazy).pairs is None, len(cube_info(lazy.persist()).pairs)
    (True, 2)
    """
    from . import cube

    ny, nx = ds.sizes.get("y"), ds.sizes.get("x")
    res = ds.attrs.get("fine_resolution")
    grid = f"{ny} × {nx} pixels" if ny is not None and nx is not None else "no (y, x) grid"
    if res is not None:
        grid += f" of {float(res):g} m"
    if "time" in ds.coords and ds.sizes.get("time", 0) > 0:
        times = pd.DatetimeIndex(ds["time"].values)
        dates = f"{len(times)} dates, {times[0].date()} .. {times[-1].date()}"
    else:
        dates = "no time axis"
    info = CubeInfo(grid=grid, dates=dates, variables=[str(v) for v in ds.data_vars])
    if fine not in ds.data_vars or coarse not in ds.data_vars:
        info.note = f"no {fine!r} and {coarse!r} variables: not a cube yet (see xstf.build_cube)"
        return info
    if not (_in_memory(ds[fine]) and _in_memory(ds[coarse])):
        info.note = (
            "lazy (dask) cube: pairs, targets and coverage need a pass over the data; "
            "ds.stf.summary() or ds.stf.pairs computes them (ds = ds.persist() first for "
            "a cube that fits in memory)"
        )
        return info
    try:  # one pass (cached on persisted dask data) for pairs, targets and coverage
        found = cube.scan(ds, fine, coarse, check=False, progress=False)
        info.pairs, info.targets = found.pair_dates(), found.target_dates()
        info.coverage = {str(v): float(found.coverage[v].mean()) for v in (fine, coarse)}
    except Exception as err:  # a repr never raises: say what is wrong instead
        info.note = f"cannot list pairs: {err} (ds.stf.validate() explains)"
    return info


def _rows(info: CubeInfo) -> list[tuple[str, str]]:
    rows = [("grid", info.grid), ("dates", info.dates), ("variables", ", ".join(info.variables))]
    if info.pairs is not None and info.targets is not None:
        rows.append(("pairs", f"{len(info.pairs)}: {_dates(info.pairs)}"))
        rows.append(("targets", f"{len(info.targets)}: {_dates(info.targets)}"))
    if info.coverage:
        cov = ", ".join(f"{k} {v:.0%}" for k, v in info.coverage.items())
        rows.append(("coverage", f"{cov} (mean valid share over all dates)"))
    if info.note:
        rows.append(("note", info.note))
    return rows


def cube_repr_text(ds: xr.Dataset) -> str:
    """Plain-text representation of ``ds.stf``.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.

    Returns
    -------
    str
        One header line, then one ``name : value`` line per row of :func:`cube_info`.

    Examples
    --------
    >>> import xstf
    >>> print(cube_repr_text(xstf.datasets.synthetic(size=32, days=20)))  # doctest: +ELLIPSIS
    <xstf accessor ds.stf>
      grid      : 32 × 32 pixels of 30 m
      dates     : 20 dates, 2021-01-01 .. 2021-01-20
      variables : truth, fine, coarse, landcover
      pairs     : 2: 2021-01-01, 2021-01-17
      targets   : 13: 2021-01-05, ...
      coverage  : fine 8%, coarse 74% (mean valid share over all dates)
    """
    rows = _rows(cube_info(ds))
    width = max(len(k) for k, _ in rows)
    lines = ["<xstf accessor ds.stf>"]
    lines += [f"  {k:<{width + 1}}: {v}" for k, v in rows]
    return "\n".join(lines)


def cube_repr_html(ds: xr.Dataset) -> str:
    """HTML representation of ``ds.stf`` (a small table), shown by Jupyter.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (nothing is computed on dask data).

    Returns
    -------
    str
        A ``<div>`` holding a title and a two-column ``<table>`` (values HTML-escaped).

    Examples
    --------
    >>> import xstf
    >>> "<table" in cube_repr_html(xstf.datasets.synthetic(size=32, days=20))
    True
    """
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in _rows(cube_info(ds))
    )
    return f"<div><b>xstf accessor <code>ds.stf</code></b><table>{body}</table></div>"
