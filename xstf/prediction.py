"""A prediction on target dates: which dates, checked the same way for every method, and
the ``(time, y, x)`` DataArray every method returns.

Two functions make the contract shared by the window-based fusion methods
(:mod:`xstf.fusion`) and meant for the deep models too:

- :func:`resolve_targets` / :func:`resolve_dates`: the dates to predict (and the pair
  dates to predict from), with the coverage checks: a target with no valid coarse pixel
  is a :class:`~xstf.errors.CubeError` whatever the method, and explicit targets are
  checked the same way as the default ones. The cube's coverage is computed once.
- :func:`wrap_prediction`: a numpy or dask array of per-date predictions into a
  DataArray on the cube's grid, with ``method``/``parameters`` attrs and the reference
  pairs of each date as coordinates ``reference_pair_1``, ``reference_pair_2``... along
  ``time``.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from . import cube as _cube
from ._docs import fill_doc
from .errors import CubeError

__all__ = ["as_dates", "resolve_dates", "resolve_targets", "wrap_prediction"]


def as_dates(values: Any, times: pd.DatetimeIndex, what: str) -> pd.DatetimeIndex:
    """``values`` (one date or many) as a sorted DatetimeIndex of dates of the cube.

    Parameters
    ----------
    values : datetime-like or sequence
        Dates (strings, numpy/pandas datetimes, a DataArray).
    times : pandas.DatetimeIndex
        The cube's time axis.
    what : str
        What the dates are (``"targets"``, ``"pairs"``), for the error message.

    Returns
    -------
    pandas.DatetimeIndex
        Sorted, duplicates removed, named ``time``.

    Raises
    ------
    TypeError
        Not dates.
    CubeError
        A date that is not on the cube's time axis (the message lists them).

    Examples
    --------
    >>> times = pd.date_range("2021-01-01", periods=3)
    >>> [str(d.date()) for d in as_dates(["2021-01-03", "2021-01-01"], times, "targets")]
    ['2021-01-01', '2021-01-03']
    """
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


def _check_targets(
    targets_idx: pd.DatetimeIndex, times: pd.DatetimeIndex, ccov: np.ndarray, coarse: Hashable
) -> None:
    empty = [str(t.date()) for t in targets_idx if ccov[times.get_loc(t)] == 0.0]
    if empty:
        raise CubeError(
            f"target date(s) {empty[:5]} have no valid {coarse!r} pixel: nothing to "
            "predict from; drop them from targets"
        )


def resolve_targets(
    ds: xr.Dataset,
    targets: Any = None,
    coarse: Hashable = "coarse",
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    fine: Hashable | None = "fine",
    *,
    scan: _cube.CubeScan | None = None,
) -> pd.DatetimeIndex:
    """The dates to predict, checked: every one has valid coarse pixels.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    targets : datetime-like or sequence, optional
        Explicit dates (a pair date is allowed: leave-one-out). Default: the dates where
        ``coarse`` covers at least ``min_coverage`` and ``fine`` does not
        (:func:`xstf.cube.target_dates`); with ``fine=None``, every date where
        ``coarse`` covers at least ``min_coverage``.
    coarse, fine : hashable
        Variable names (``fine`` may be None).
    min_coverage : float
        Share of valid pixels for a date to count as observed.
    scan : xstf.cube.CubeScan, optional
        The cube's coverage already computed (:func:`xstf.cube.scan`, e.g. by
        :func:`resolve_dates`), so that the cube is not read again.

    Returns
    -------
    pandas.DatetimeIndex
        The target dates, increasing.

    Raises
    ------
    CubeError
        A date not in the cube, a target with no valid coarse pixel, no target date.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=20, cloud_fraction=0.0)
    >>> len(resolve_targets(ds)), len(resolve_targets(ds, ds.time[:2]))
    (18, 2)
    """
    found = scan if scan is not None else _cube.scan(ds, fine, coarse, check=False)
    if targets is None:
        idx = found.target_dates(min_coverage)
        if len(idx) == 0:
            raise CubeError(
                f"the cube has no target dates (dates where {coarse!r} covers >= "
                f"{min_coverage:.0%}{'' if fine is None else f' and {fine!r} does not'}): pass "
                "targets=[...] explicitly (a pair date is predicted leave-one-out)"
            )
        return idx
    idx = as_dates(targets, found.time, "targets")
    _check_targets(idx, found.time, found.coverage[coarse], coarse)
    return idx


@fill_doc
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
    """Validate the cube and return ``(targets, pairs)`` for a pair-based method.

    The cube's coverage comes from the validation's one pass over both variables (on
    numpy data too) and serves the default pairs (:func:`xstf.cube.pair_dates`), the
    default targets (:func:`xstf.cube.target_dates`) and the checks of explicit ones.

    Parameters
    ----------
    %(cube)s
    targets, pairs : datetime-like or sequence, optional
        Explicit dates, or None for the defaults.
    min_coverage : float
        Share of valid pixels for a date to count as observed.
    n_pairs : int
        Pairs the method needs.
    method : str
        Method name, for the messages.

    Returns
    -------
    (pandas.DatetimeIndex, pandas.DatetimeIndex)
        Target dates and pair dates.

    Raises
    ------
    CubeError
        Not a valid cube, too few pairs, a pair date with no valid pixel, a date not in
        the cube, a target with no valid coarse pixel, no target date.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=20, cloud_fraction=0.0)
    >>> t, p = resolve_dates(ds, "fine", "coarse", None, None, 0.5, 2, "ESTARFM")
    >>> len(t), len(p)
    (18, 2)
    """
    # validate's pass gives the coverage: one pass over a numpy cube, cached for dask
    require = n_pairs if pairs is None else 0
    found = _cube.scan(ds, fine, coarse, min_coverage=min_coverage, require_pairs=require)
    cov, times = found.coverage, found.time
    if pairs is None:
        pairs_idx = found.pair_dates(min_coverage)
    else:
        pairs_idx = as_dates(pairs, times, "pairs")
        empty = [
            str(t.date())
            for t in pairs_idx
            if cov[fine][times.get_loc(t)] == 0.0 or cov[coarse][times.get_loc(t)] == 0.0
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
    targets_idx = resolve_targets(ds, targets, coarse, min_coverage, fine, scan=found)
    return targets_idx, pairs_idx


def wrap_prediction(
    data: Any,
    ds: xr.Dataset,
    targets: pd.DatetimeIndex,
    method: str,
    parameters: dict[str, Any],
    reference_pairs: Sequence[Sequence[Any]] | None = None,
    coarse: Hashable = "coarse",
) -> xr.DataArray:
    """Per-date predictions as a ``(time, y, x)`` DataArray on the cube's grid.

    Parameters
    ----------
    data : numpy or dask array, or a list of 2-D arrays
        ``(len(targets), ny, nx)`` predictions in K (a list is stacked).
    ds : xarray.Dataset
        The cube (coordinates are taken from ``ds[coarse]`` on the target dates).
    targets : pandas.DatetimeIndex
        The dates predicted.
    method : str
        Method name (attr ``method``; the lower-cased name is the DataArray's name).
    parameters : dict
        The method's parameters (attr ``parameters``, JSON).
    reference_pairs : sequence of sequences of dates, optional
        Per target, the pair dates used: coordinates ``reference_pair_1``,
        ``reference_pair_2``... along ``time`` (NaT where a date used fewer).
    coarse : hashable
        Name of the coarse variable.

    Returns
    -------
    xarray.DataArray
        Lazy when ``data`` is a dask array.

    Examples
    --------
    >>> import numpy as np, xstf
    >>> ds = xstf.datasets.synthetic(size=16, days=5, cloud_fraction=0.0)
    >>> t = pd.DatetimeIndex(ds.time.values[2:3])
    >>> da = wrap_prediction(np.zeros((1, 16, 16), "f4"), ds, t, "Demo", {}, [[ds.time.values[0]]])
    >>> da.name, str(da.reference_pair_1.values[0])[:10]
    ('demo', '2021-01-01')
    """
    if isinstance(data, (list, tuple)):
        if any(dask.is_dask_collection(r) for r in data):
            import dask.array as dsa

            data = dsa.stack(list(data))
        else:
            data = np.stack(data)
    template = ds[coarse].sel(time=targets)
    out = xr.DataArray(data, coords=template.coords, dims=template.dims, name=method.lower())
    used = [list(u) for u in reference_pairs] if reference_pairs is not None else []
    npair = max((len(u) for u in used), default=0)
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
