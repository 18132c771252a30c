"""The LST cube convention: validation, coverage, pairs, targets and reference-pair selection.

A cube is an :class:`xarray.Dataset` with dims ``(time, y, x)`` on the *fine* grid:

- ``fine``: Landsat LST in Kelvin, NaN where not observed;
- ``coarse``: MODIS LST resampled onto the fine grid, in Kelvin, NaN where missing;
- optionally ``truth``, ``landcover`` (``(y, x)``) and QC masks.

A *pair* is a date where both ``fine`` and ``coarse`` cover at least ``min_coverage``
of the scene; a *target* is a date where ``coarse`` is usable but ``fine`` is not
(the dates fusion predicts).
"""

from __future__ import annotations

import sys
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import pandas as pd
import xarray as xr

from ._docs import fill_doc
from .errors import CubeError
from .units import normalise_units

__all__ = [
    "DEFAULT_MIN_COVERAGE",
    "DIMS",
    "GRID_TOLERANCE",
    "PROGRESS_AFTER",
    "ZERO_SPIKE_SHARE",
    "CubeScan",
    "clear_cache",
    "coordinate_offset",
    "coverage",
    "duplicated_dates",
    "from_arrays",
    "grid_mismatch",
    "pair_dates",
    "reference_pairs",
    "resolution_ratio",
    "scan",
    "summary",
    "target_dates",
    "validate",
]

#: The dims every cube variable carries, in this order.
DIMS = ("time", "y", "x")
#: Default share of valid pixels for a date to count as observed.
DEFAULT_MIN_COVERAGE = 0.5
#: Plausible LST in Kelvin (the Earth's surface, with margin).
PLAUSIBLE_K = (180.0, 360.0)
_SAMPLE_PIXELS = 256
#: Largest coordinate difference (in pixels) for two grids to count as the same grid.
GRID_TOLERANCE = 1e-3


def coordinate_offset(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference between two pixel-centre coordinate vectors, in pixels.

    The pixel size is the median step of ``a`` (else of ``b``); for single-pixel axes
    the difference is measured relative to the coordinate's magnitude (1e-9 of it counts
    as one pixel). Two grids are the same when this is at most :data:`GRID_TOLERANCE`
    (unlike :func:`numpy.allclose`, whose relative tolerance is ~53 m at a UTM northing
    of 5.3e6 m).

    Parameters
    ----------
    a, b : numpy.ndarray
        Coordinate vectors (same length).

    Returns
    -------
    float
        ``max |a - b| / pixel size`` (``inf`` if the lengths differ).

    Examples
    --------
    >>> import numpy as np
    >>> y = 5_300_000.0 - 30.0 * np.arange(4)
    >>> coordinate_offset(y, y + 30.0), coordinate_offset(y, y + 0.001)
    (1.0, 3.3333...e-05)
    """
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    step = np.abs(np.diff(a)) if a.size > 1 else np.abs(np.diff(b))
    pixel = float(np.median(step)) if step.size else 0.0
    if not pixel > 0:
        pixel = 1e-9 * max(1.0, float(np.max(np.abs(a))))
    return float(np.max(np.abs(a - b)) / pixel)


def grid_mismatch(
    a: xr.DataArray | xr.Dataset, b: xr.DataArray | xr.Dataset, dim: Hashable
) -> str | None:
    """How far the ``dim`` coordinates of ``a`` and ``b`` are apart, or None when they are
    the same grid (within :data:`GRID_TOLERANCE` pixels).

    Parameters
    ----------
    a, b : xarray.DataArray or xarray.Dataset
        Objects with a ``dim`` coordinate of the same length.
    dim : hashable
        ``"y"`` or ``"x"``.

    Returns
    -------
    str or None
        ``"<a start>.. vs <b start>..: up to <n> pixel(s) apart, tolerance <t>"`` for an
        error message, or None.

    Examples
    --------
    >>> import xarray as xr
    >>> a = xr.DataArray([0, 0], coords={"x": [15.0, 45.0]}, dims="x")
    >>> grid_mismatch(a, a.assign_coords(x=[15.0001, 45.0001]), "x") is None
    True
    >>> grid_mismatch(a, a.assign_coords(x=[30.0, 60.0]), "x")
    '15.0.. vs 30.0..: up to 0.5 pixel(s) apart, tolerance 0.001'
    """
    off = coordinate_offset(a[dim].values, b[dim].values)
    if off <= GRID_TOLERANCE:
        return None
    return (
        f"{float(a[dim][0])}.. vs {float(b[dim][0])}..: up to {off:.3g} pixel(s) apart, "
        f"tolerance {GRID_TOLERANCE:g}"
    )


def duplicated_dates(times: pd.DatetimeIndex) -> str | None:
    """The duplicated dates of ``times`` for an error message, or None when there are none.

    Parameters
    ----------
    times : pandas.DatetimeIndex
        A time axis.

    Returns
    -------
    str or None
        ``"<n> duplicated date(s): [<up to five dates>]"``, or None.

    Examples
    --------
    >>> duplicated_dates(pd.DatetimeIndex(["2020-01-09", "2020-01-09", "2020-01-10"]))
    "1 duplicated date(s): ['2020-01-09']"
    """
    dup = times[times.duplicated()]
    if not len(dup):
        return None
    return f"{len(dup)} duplicated date(s): {[str(d.date()) for d in dup[:5]]}"


def _check_var(ds: xr.Dataset, name: Hashable, role: str) -> xr.DataArray:
    if name not in ds.data_vars:
        raise CubeError(
            f"the cube has no {role} variable {name!r} (variables: {sorted(map(str, ds.data_vars))}); "
            f"pass {role}='<name>' or rename it with ds.rename({{'<name>': {name!r}}})"
        )
    da = ds[name]
    if set(da.dims) != set(DIMS) or da.ndim != 3:
        raise CubeError(
            f"variable {name!r} has dims {da.dims}; a cube variable needs dims {DIMS}. "
            "Rename them (e.g. ds.rename({'band': 'time', 'lat': 'y', 'lon': 'x'})) "
            "or transpose with ds.transpose('time', 'y', 'x')"
        )
    if da.dims != DIMS:
        raise CubeError(
            f"variable {name!r} has dims in the order {da.dims}; xstf expects {DIMS}: "
            "call ds.transpose('time', 'y', 'x') first"
        )
    if not np.issubdtype(da.dtype, np.floating):
        raise CubeError(
            f"variable {name!r} has dtype {da.dtype}: LST must be float with NaN for missing. "
            "If it holds scaled integers, decode them first (e.g. MODIS LST_Day_1km × 0.02, "
            "Landsat ST_B10 × 0.00341802 + 149.0) or read it with xstf.io"
        )
    return da


def _time_fix(t: xr.DataArray, idx: pd.Index) -> str:
    """A conversion of a non-datetime64 ``time`` that works, as code (``ds = ...``)."""
    calendar = getattr(idx, "calendar", None)
    if calendar is not None:  # a CFTimeIndex
        align = ", align_on='date'" if str(calendar) == "360_day" else ""
        return (
            f"ds = ds.convert_calendar('standard', use_cftime=False{align})` (calendar "
            f"{calendar!r}; dates that do not exist in the standard calendar, e.g. 29-30 "
            "February, are dropped: check ds.sizes['time'] before and after"
        )
    values = np.asarray(t.values)
    if np.issubdtype(values.dtype, np.integer):
        if values.size and values.min() >= 1800_01_01 and values.max() <= 2200_12_31:
            return (
                "ds = ds.assign_coords(time=pandas.to_datetime(ds.time.values.astype(str), "
                "format='%Y%m%d'))` (the values look like YYYYMMDD)"
            )
        return (
            "ds = ds.assign_coords(time=pandas.Timestamp('YYYY-MM-DD') + "
            "pandas.to_timedelta(ds.time.values, unit='D'))` with the date of day 0 (if the "
            "integers count days; pandas.to_datetime would read them as nanoseconds after 1970)"
        )
    return (
        "ds = ds.assign_coords(time=pandas.to_datetime(ds.time.values))` (if the values are "
        "date strings or datetime objects)"
    )


def _check_time(ds: xr.Dataset) -> None:
    if "time" not in ds.coords:
        raise CubeError(
            "the cube has no 'time' coordinate: assign one with ds.assign_coords(time=...)"
        )
    t = ds["time"]
    tz = getattr(t.dtype, "tz", None)
    if tz is not None:
        raise CubeError(
            f"the 'time' coordinate is time-zone aware ({tz}); xstf needs naive datetime64 "
            "(UTC): convert it with `ds = ds.assign_coords(time=ds.indexes['time']"
            ".tz_convert('UTC').tz_localize(None))`"
        )
    if not isinstance(t.dtype, np.dtype) or not np.issubdtype(t.dtype, np.datetime64):
        idx = ds.indexes["time"] if "time" in ds.indexes else pd.Index(np.asarray(t.values))
        raise CubeError(
            f"the 'time' coordinate has dtype {t.dtype}"
            + (f" ({type(idx).__name__})" if type(idx) is not pd.Index else "")
            + ", not datetime64: convert it with `"
            + _time_fix(t, idx)
        )
    idx = pd.DatetimeIndex(t.values)
    if idx.hasnans:
        raise CubeError("the 'time' coordinate has NaT values: drop or fix those dates")
    dup = duplicated_dates(idx)
    if dup:
        raise CubeError(
            f"the 'time' coordinate has {dup}; merge them (e.g. ds.groupby('time').mean()) "
            "or drop one with ds.drop_duplicates('time')"
        )
    if not idx.is_monotonic_increasing:
        raise CubeError("the 'time' coordinate is not increasing: call ds.sortby('time') first")


def _check_space(ds: xr.Dataset) -> None:
    for dim in ("y", "x"):
        if dim not in ds.coords:
            raise CubeError(
                f"the cube has no {dim!r} coordinate: assign pixel-centre coordinates "
                "(e.g. with rioxarray or ds.assign_coords)"
            )
        vals = np.asarray(ds[dim].values)
        if not np.issubdtype(vals.dtype, np.number):
            raise CubeError(f"the {dim!r} coordinate is not numeric (dtype {vals.dtype})")
        bad = int(np.count_nonzero(~np.isfinite(vals)))
        if bad:
            raise CubeError(
                f"the {dim!r} coordinate has {bad} non-finite value(s): "
                "coordinates must be finite pixel centres"
            )
        if vals.size > 1:
            step = np.diff(vals)
            if not (np.all(step > 0) or np.all(step < 0)):
                raise CubeError(
                    f"the {dim!r} coordinate is not monotonic: sort it with ds.sortby({dim!r})"
                )


@dataclass(frozen=True)
class _Scan:
    """What one pass over a cube's fine and coarse data learns (small: per-date vectors)."""

    coverage: dict[Hashable, np.ndarray]  # valid (non-NaN) share per date
    n_inf: dict[Hashable, np.ndarray]  # ±inf pixels per date
    # sample statistics: n finite, median, min, max, n outside the plausible range
    stats: dict[Hashable, tuple[int, float, float, float, int]]
    n_melt: dict[Hashable, int]  # sampled pixels at exactly 273.15 K (0 °C: a fill value?)


_SCANS: OrderedDict[str, _Scan] = OrderedDict()
_SCAN_CACHE_SIZE = 32
#: Seconds a coverage pass must last before its progress bar shows (when shown at all).
PROGRESS_AFTER = 1.0


def clear_cache() -> None:
    """Forget the cached coverage passes (see :func:`validate`).

    The cache is keyed on the dask graph tokens of ``fine`` and ``coarse``, which change
    whenever the data or the computation change; clear it only if the files behind an
    unchanged graph were rewritten in place, or a numpy array wrapped by
    ``dask.array.from_array`` was modified in place.

    Examples
    --------
    >>> clear_cache()
    """
    _SCANS.clear()


def _strided(da: xr.DataArray) -> xr.DataArray:
    """A strided spatial subsample of every date (enough for the plausibility checks)."""
    sy = max(1, da.sizes["y"] // _SAMPLE_PIXELS)
    sx = max(1, da.sizes["x"] // _SAMPLE_PIXELS)
    return da.isel(y=slice(None, None, sy), x=slice(None, None, sx))


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    if "ipykernel" in sys.modules:  # a notebook
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _scan_key(f: xr.DataArray, c: xr.DataArray) -> str | None:
    """Cache key of a scan: the dask tokens of both arrays (None for numpy data: not cached)."""
    import dask

    if not (dask.is_dask_collection(f.data) and dask.is_dask_collection(c.data)):
        return None
    return str(dask.base.tokenize(f.data, c.data))


def _scan(ds: xr.Dataset, fine: Hashable, coarse: Hashable, progress: bool | None = None) -> _Scan:
    """Coverage, ±inf counts and sample statistics of ``fine`` and ``coarse``: one pass.

    On dask data everything is computed in one ``dask.compute`` (each chunk, and each date
    of a lazy synthetic cube, is read or generated once) and cached per cube, keyed on the
    dask graph tokens of the two variables: asking again (pairs, targets, summary,
    validate, a fusion call) costs nothing until the data change.
    """
    f_da, c_da = ds[fine], ds[coarse]
    key = _scan_key(f_da, c_da)
    if key is not None and key in _SCANS:
        _SCANS.move_to_end(key)
        return _SCANS[key]
    pieces = []
    for da in (f_da, c_da):
        pieces += [
            da.notnull().mean(("y", "x"), dtype="float64").data,
            cast(xr.DataArray, np.isinf(da)).sum(("y", "x")).data,
            _strided(da).data,
        ]
    lazy = f_da.chunks is not None or c_da.chunks is not None
    if not lazy:
        done = [np.asarray(p) for p in pieces]
    else:  # one compute for everything (mixed numpy/dask too); cached when both are dask
        import dask

        if _show_progress(progress):
            from dask.diagnostics import ProgressBar

            with ProgressBar(minimum=PROGRESS_AFTER, out=sys.stderr):
                done = list(dask.compute(*pieces))
        else:
            done = list(dask.compute(*pieces))
    cov, n_inf, stats, n_melt = {}, {}, {}, {}
    for i, name in enumerate((fine, coarse)):
        cov[name] = np.asarray(done[3 * i], dtype="float64")
        n_inf[name] = np.asarray(done[3 * i + 1], dtype="int64")
        values = np.asarray(done[3 * i + 2])
        finite = values[np.isfinite(values)]
        n_melt[name] = int(np.count_nonzero(finite == np.asarray(273.15, dtype=finite.dtype)))
        if finite.size:
            outside = np.count_nonzero((finite < PLAUSIBLE_K[0]) | (finite > PLAUSIBLE_K[1]))
            stats[name] = (
                int(finite.size),
                float(np.median(finite)),
                float(finite.min()),
                float(finite.max()),
                int(outside),
            )
        else:
            stats[name] = (0, float("nan"), float("nan"), float("nan"), 0)
    out = _Scan(cov, n_inf, stats, n_melt)
    if key is not None:
        _SCANS[key] = out
        while len(_SCANS) > _SCAN_CACHE_SIZE:
            _SCANS.popitem(last=False)
    return out


@dataclass(frozen=True)
class CubeScan:
    """Which dates of a cube are observed, from one pass over its data (see :func:`scan`).

    A small record: the time axis, the two variable names and the valid share of the
    scene per date for each. Asking it for pairs or targets at any threshold reads no
    data.

    Attributes
    ----------
    time : pandas.DatetimeIndex
        The cube's dates.
    fine, coarse : hashable
        The variable names (``fine`` is None for a coarse-only scan).
    coverage : dict
        ``{name: float64 array}``: valid (non-NaN) share of the scene per date, in [0, 1].

    Examples
    --------
    >>> import xstf
    >>> s = xstf.cube.scan(xstf.datasets.synthetic(size=32, days=20, cloud_fraction=0.0))
    >>> len(s.pair_dates()), len(s.target_dates()), len(s.target_dates(include_pairs=True))
    (2, 18, 20)
    """

    time: pd.DatetimeIndex
    fine: Hashable | None
    coarse: Hashable
    coverage: Mapping[Hashable, np.ndarray]

    def pair_dates(self, min_coverage: float = DEFAULT_MIN_COVERAGE) -> pd.DatetimeIndex:
        """Dates where both variables cover at least ``min_coverage`` (see :func:`pair_dates`).

        Parameters
        ----------
        min_coverage : float
            Share of valid pixels required of each sensor.

        Returns
        -------
        pandas.DatetimeIndex
        """
        if self.fine is None:
            raise ValueError("a coarse-only scan has no pairs: scan the fine variable too")
        cov = self.coverage
        return self._where((cov[self.fine] >= min_coverage) & (cov[self.coarse] >= min_coverage))

    def target_dates(
        self, min_coverage: float = DEFAULT_MIN_COVERAGE, include_pairs: bool = False
    ) -> pd.DatetimeIndex:
        """Dates where ``coarse`` covers ``min_coverage`` and, unless ``include_pairs`` (or
        the scan is coarse-only), ``fine`` does not (see :func:`target_dates`).

        Parameters
        ----------
        min_coverage : float
            Share of valid pixels required.
        include_pairs : bool
            Also return the pair dates.

        Returns
        -------
        pandas.DatetimeIndex
        """
        ok = self.coverage[self.coarse] >= min_coverage
        if self.fine is not None and not include_pairs:
            ok = ok & ~(self.coverage[self.fine] >= min_coverage)
        return self._where(ok)

    def _where(self, mask: np.ndarray) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.time[mask], name="time")


def _check_values(
    name: Hashable, da: xr.DataArray, stats: tuple[int, float, float, float, int]
) -> None:
    units = da.attrs.get("units")
    if units is not None:
        try:
            unit_n = normalise_units(units)
        except ValueError:
            raise CubeError(
                f"variable {name!r} has units {units!r}, which is not a temperature unit xstf knows; "
                "set ds[name].attrs['units'] to 'K' or 'degC' and convert with xstf.to_kelvin"
            ) from None
        if unit_n != "K":
            raise CubeError(
                f"variable {name!r} is in {units!r}; the cube holds Kelvin: "
                f"ds[{name!r}] = xstf.to_kelvin(ds[{name!r}])"
            )
    n_finite, med, lo, hi, outside = stats
    if n_finite == 0:
        return
    if -90.0 <= med <= 75.0:
        raise CubeError(
            f"variable {name!r} looks like degrees Celsius (median {med:.1f}, range {lo:.1f}..{hi:.1f}), "
            f"not Kelvin: convert it with ds[{name!r}] = xstf.to_kelvin(ds[{name!r}], units='degC'). "
            "If 0 marks missing pixels (Earth Engine exports), mask them first: da.where(da != 0)"
        )
    if med > 1000.0:
        raise CubeError(
            f"variable {name!r} looks like scaled integers (median {med:.0f}), not Kelvin: decode it "
            "first (MODIS LST_Day_1km: × 0.02; Landsat C2 ST_B10: × 0.00341802 + 149.0), "
            "or read it with xstf.io.open_modis / xstf.io.open_landsat"
        )
    if outside > 0.01 * n_finite:
        raise CubeError(
            f"variable {name!r} has {outside} of {n_finite} sampled pixels outside the plausible "
            f"LST range {PLAUSIBLE_K[0]:.0f}..{PLAUSIBLE_K[1]:.0f} K (range {lo:.1f}..{hi:.1f}): "
            "check the scale factor, the fill value (mask it to NaN) and the units"
        )


#: Share of sampled pixels at exactly 273.15 K above which validate warns (0 °C as missing).
ZERO_SPIKE_SHARE = 0.05


def _warn_zero_spike(name: Hashable, da: xr.DataArray, n_finite: int, n_melt: int) -> None:
    if n_finite == 0 or n_melt <= ZERO_SPIKE_SHARE * n_finite:
        return
    if "zero_is_missing" in da.attrs:  # the reader or build_cube decided explicitly
        return
    warnings.warn(
        f"variable {name!r}: {n_melt / n_finite:.0%} of the sampled pixels are exactly 273.15 K "
        "(0 °C), a spike no real LST field has: 0 probably marked missing pixels in a °C source "
        "(Earth Engine exports). Mask them: xstf.build_cube(..., zero_is_missing=True), the "
        "readers' zero_is_missing=True, or da.where(da != 0) before xstf.to_kelvin; pass "
        "zero_is_missing=False to build_cube if the zeros are real",
        UserWarning,
        stacklevel=3,
    )


def validate(
    ds: xr.Dataset,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    require_pairs: int = 1,
    *,
    progress: bool | None = None,
) -> xr.Dataset:
    """Check that ``ds`` follows the cube convention and return it unchanged.

    One pass over ``fine`` and ``coarse`` (a single ``dask.compute`` on dask data)
    gives the coverage of every date, the count of ±inf pixels per date and a strided
    subsample (at most about 256 × 256 pixels per date) for the units and plausibility
    checks. The result of that pass is cached per cube (keyed on the dask graph tokens
    of the two variables), so :func:`pair_dates`, :func:`target_dates`, :func:`summary`
    and the fusion methods called next reuse it instead of reading the data again. The
    dataset returned stays lazy.

    ±inf values are **rejected** (a :class:`~xstf.CubeError` naming the variable, the
    dates and the counts), not converted: only NaN means "missing" in a cube. More than
    :data:`ZERO_SPIKE_SHARE` of the sampled pixels at exactly 273.15 K (0 °C used as a
    fill value, then converted) gives a ``UserWarning``, unless the variable's
    ``zero_is_missing`` attribute says the zeros were handled.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    fine, coarse : hashable
        Names of the fine (Landsat) and coarse (MODIS on the fine grid) variables.
    min_coverage : float
        Share of valid pixels for a date to count as observed (0–1).
    require_pairs : int
        How many pairs the cube must have (0 to skip the check).
    progress : bool, optional
        Show a progress bar (dask's, on stderr) for the pass over dask data when it lasts
        more than :data:`PROGRESS_AFTER` seconds. Default: only in a notebook or when
        stderr is a terminal (so never in tests or doctests); ``False`` turns it off.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself, for chaining.

    Raises
    ------
    CubeError
        Naming the problem and the fix: missing variable, wrong dims, time not
        datetime64 (tz-aware, cftime, integers: the message gives a conversion that
        works) / not increasing / duplicated, non-finite coordinates, ±inf values, values
        that are not plausible LST in Kelvin, an all-NaN variable, too few usable pairs,
        a cube read from an incomplete Zarr store.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40)
    >>> xstf.validate(ds) is ds
    True
    """
    _checked_scan(ds, fine, coarse, min_coverage, require_pairs, progress)
    return ds


@fill_doc
def scan(
    ds: xr.Dataset,
    fine: Hashable | None = "fine",
    coarse: Hashable = "coarse",
    *,
    check: bool = True,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    require_pairs: int = 0,
    progress: bool | None = None,
) -> CubeScan:
    """One pass over a cube: the coverage of every date, checked like :func:`validate`.

    For code that needs several answers about the same cube (pairs, targets, coverage):
    the data are read once, also for an in-memory cube (dask passes are cached anyway,
    numpy ones are not: an array modified in place has no key that changes).

    Parameters
    ----------
    %(cube)s
        ``fine=None`` (with ``check=False``): the coverage of ``coarse`` alone, with
        targets but no pairs.
    check : bool
        Run :func:`validate`'s checks on the same pass (``False``: only the coverage).
    min_coverage : float
        With ``check``, the share of valid pixels for a date to count as observed.
    require_pairs : int
        With ``check``, how many pairs the cube must have (0: no such check).
    progress : bool, optional
        Progress bar for the pass over dask data (see :func:`validate`).

    Returns
    -------
    CubeScan
        Time axis, names and coverage; ``.pair_dates()`` and ``.target_dates()``.

    Raises
    ------
    CubeError
        With ``check``: what :func:`validate` raises.
    ValueError
        ``fine=None`` with ``check=True``.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=20, cloud_fraction=0.0)
    >>> s = xstf.cube.scan(ds, require_pairs=2)
    >>> s.pair_dates().equals(xstf.cube.pair_dates(ds)), s.coverage["coarse"].shape
    (True, (20,))
    """
    times = pd.DatetimeIndex(ds["time"].values)
    if fine is None:  # coarse only (deep models without fine data): no pairs, no checks
        if check:
            raise ValueError("a coarse-only scan (fine=None) is made with check=False")
        import dask

        (share,) = dask.compute(ds[coarse].notnull().mean(("y", "x"), dtype="float64").data)
        return CubeScan(times, None, coarse, {coarse: np.asarray(share, dtype=np.float64)})
    if check:
        found = _checked_scan(ds, fine, coarse, min_coverage, require_pairs, progress)
    else:
        found = _scan(ds, fine, coarse, progress)
    cov = {name: found.coverage[name] for name in (fine, coarse)}
    return CubeScan(times, fine, coarse, cov)


def _checked_scan(
    ds: xr.Dataset,
    fine: Hashable,
    coarse: Hashable,
    min_coverage: float,
    require_pairs: int,
    progress: bool | None,
) -> _Scan:
    """:func:`validate`'s checks, made on (and returning) the one pass over the data."""
    if not isinstance(ds, xr.Dataset):
        raise CubeError(
            f"expected an xarray.Dataset cube, got {type(ds).__name__}; build one with "
            "xstf.cube.from_arrays(fine=..., coarse=...)"
        )
    if not 0.0 < min_coverage <= 1.0:
        raise CubeError(f"min_coverage must be in (0, 1], got {min_coverage}")
    if ds.attrs.get("xstf_write_status", "complete") != "complete":
        from .export import incomplete_message

        raise CubeError(incomplete_message("this cube was read from", ds.attrs))
    f_da = _check_var(ds, fine, "fine")
    c_da = _check_var(ds, coarse, "coarse")
    _check_time(ds)
    _check_space(ds)
    found = _scan(ds, fine, coarse, progress)
    cov = found.coverage
    times = pd.DatetimeIndex(ds["time"].values)
    for name, da in ((fine, f_da), (coarse, c_da)):
        if not (cov[name] > 0).any():
            raise CubeError(
                f"variable {name!r} is all NaN on all {da.sizes['time']} dates: check the fill "
                "value, the QA mask and that the sensor's dates fall in the cube's time range"
            )
        n_inf = found.n_inf[name]
        if n_inf.any():
            bad = np.flatnonzero(n_inf)
            where = ", ".join(f"{times[i].date()}: {int(n_inf[i])}" for i in bad[:5])
            raise CubeError(
                f"variable {name!r} has {int(n_inf.sum())} infinite value(s) on {bad.size} "
                f"date(s) ({where}{' ...' if bad.size > 5 else ''}); xstf treats only NaN as "
                f"missing. Mask them: ds[{name!r}] = ds[{name!r}].where(numpy.isfinite(ds[{name!r}]))"
            )
        _check_values(name, da, found.stats[name])
        _warn_zero_spike(name, da, found.stats[name][0], found.n_melt[name])
    if require_pairs:
        n = int(((cov[fine] >= min_coverage) & (cov[coarse] >= min_coverage)).sum())
        if n < require_pairs:
            best = np.argsort(-np.minimum(cov[fine], cov[coarse]))[:3]
            hint = ", ".join(
                f"{times[i].date()} (fine {cov[fine][i]:.0%}, coarse {cov[coarse][i]:.0%})"
                for i in best
            )
            raise CubeError(
                f"the cube has {n} usable pair(s) (dates where both {fine!r} and {coarse!r} cover "
                f">= {min_coverage:.0%}); {require_pairs} needed. Best dates: {hint}. Lower "
                "min_coverage, fill gaps (ds.stf.fill_gaps) or add dates"
            )
    return found


@fill_doc
def coverage(ds: xr.Dataset, fine: Hashable = "fine", coarse: Hashable = "coarse") -> xr.Dataset:
    """Valid (finite) fraction of the scene per date, for ``fine`` and ``coarse``.

    Lazy for dask-backed cubes.

    Parameters
    ----------
    %(cube)s

    Returns
    -------
    xarray.Dataset
        Variables ``fine`` and ``coarse`` (renamed to the given names) with dim ``time``,
        values in [0, 1].

    Examples
    --------
    >>> import xstf
    >>> cov = xstf.coverage(xstf.datasets.synthetic(size=64, days=40))
    >>> float(cov["coarse"].min()) >= 0.0
    True
    """
    out = xr.Dataset(
        {name: ds[name].notnull().mean(("y", "x"), dtype="float64") for name in (fine, coarse)}
    )
    for name in (fine, coarse):
        out[name].attrs = {"long_name": f"valid fraction of {name}", "units": "1"}
    return out.drop_vars([c for c in out.coords if out[c].ndim == 0])


@fill_doc
def coverage_fractions(
    ds: xr.Dataset,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    *,
    progress: bool | None = None,
) -> dict[Hashable, np.ndarray]:
    """Valid fraction per date of ``fine`` and ``coarse``, computed now, from the cached pass.

    The eager twin of :func:`coverage`: the same numbers, from the one pass over the cube
    that :func:`validate`, :func:`pair_dates` and :func:`target_dates` share (cached per
    cube), so asking again does not read the data again.

    Parameters
    ----------
    %(cube)s
    progress : bool, optional
        Progress bar for the pass (default: only in a notebook or terminal, when slow).

    Returns
    -------
    dict
        ``{fine: array, coarse: array}``, float64 per date in [0, 1].

    Examples
    --------
    >>> import xstf
    >>> cov = xstf.cube.coverage_fractions(xstf.datasets.synthetic(size=32, days=10))
    >>> sorted(cov), cov["coarse"].shape
    (['coarse', 'fine'], (10,))
    """
    return dict(scan(ds, fine, coarse, check=False, progress=progress).coverage)


@fill_doc
def pair_dates(
    ds: xr.Dataset,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    *,
    progress: bool | None = None,
) -> pd.DatetimeIndex:
    """Dates where both ``fine`` and ``coarse`` cover at least ``min_coverage`` of the scene.

    Parameters
    ----------
    %(cube)s
    min_coverage : float
        Share of valid pixels required of each sensor.
    %(progress_scan)s

    Returns
    -------
    pandas.DatetimeIndex
        The pair dates, increasing.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=64, cloud_fraction=0.0)
    >>> len(xstf.cube.pair_dates(ds))
    4
    """
    return scan(ds, fine, coarse, check=False, progress=progress).pair_dates(min_coverage)


@fill_doc
def target_dates(
    ds: xr.Dataset,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    include_pairs: bool = False,
    *,
    progress: bool | None = None,
) -> pd.DatetimeIndex:
    """Dates to predict: ``coarse`` covers at least ``min_coverage`` and the date is not a pair.

    Parameters
    ----------
    %(cube)s
    min_coverage : float
        Share of valid coarse pixels required.
    include_pairs : bool
        Also return the pair dates (for leave-one-out evaluation).
    %(progress_scan)s

    Returns
    -------
    pandas.DatetimeIndex
        The target dates, increasing.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=64, cloud_fraction=0.0)
    >>> len(xstf.cube.target_dates(ds))
    60
    """
    found = scan(ds, fine, coarse, check=False, progress=progress)
    return found.target_dates(min_coverage, include_pairs)


def reference_pairs(
    pairs: Iterable,
    target,
    n: int = 2,
    rule: Literal["bracket", "nearest"] = "bracket",
    exclude_target: bool = True,
) -> list[pd.Timestamp]:
    """Choose the reference pairs for one target date — the rule every fusion method uses.

    ``rule="bracket"`` (default) takes the nearest pair before and the nearest pair
    after the target; where one side has none it takes the nearest ones on the other
    side. ``rule="nearest"`` takes the ``n`` pairs nearest in time (ties: the earlier).
    With ``n=1`` both rules give the single nearest pair. A pair on the target date
    itself is skipped unless ``exclude_target=False``, so predicting a pair date is a
    leave-one-out prediction that can be scored against the observed image.

    Parameters
    ----------
    pairs : iterable of datetime-like
        The pair dates (e.g. :func:`pair_dates`).
    target : datetime-like
        The date to predict.
    n : int
        How many pairs (1 or 2 for the methods here; more for ``rule="nearest"``).
    rule : {"bracket", "nearest"}
        Selection rule.
    exclude_target : bool
        Skip a pair dated on the target itself.

    Returns
    -------
    list of pandas.Timestamp
        ``n`` pair dates, increasing.

    Raises
    ------
    CubeError
        If fewer than ``n`` pairs are available (the message lists those found).

    Examples
    --------
    >>> import pandas as pd
    >>> pairs = pd.to_datetime(["2021-01-01", "2021-01-17", "2021-02-02"])
    >>> [str(d.date()) for d in reference_pairs(pairs, "2021-01-20")]
    ['2021-01-17', '2021-02-02']
    >>> [str(d.date()) for d in reference_pairs(pairs, "2021-03-01")]
    ['2021-01-17', '2021-02-02']
    """
    if rule not in ("bracket", "nearest"):
        raise ValueError(f"rule must be 'bracket' or 'nearest', got {rule!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    t0 = pd.Timestamp(target)
    cand = pd.DatetimeIndex(sorted(set(pd.DatetimeIndex(list(pairs)))))
    if exclude_target:
        cand = cand[cand != t0]
    if len(cand) < n:
        found = [str(d.date()) for d in cand]
        raise CubeError(
            f"target {t0.date()} needs {n} reference pair(s) but only {len(cand)} "
            f"{'is' if len(cand) == 1 else 'are'} available{' besides the target' if exclude_target else ''}: "
            f"{found}. Lower min_coverage, fill gaps, or use a method that needs fewer pairs"
        )
    dist = np.abs((cand - t0).total_seconds().to_numpy())
    order = list(np.lexsort((cand.asi8, dist)))  # nearest first, ties -> earlier
    if rule == "bracket" and n >= 2:
        before = [i for i in order if cand[i] < t0]
        after = [i for i in order if cand[i] > t0]
        chosen: list[int] = []
        if before and after:
            chosen = [before[0], after[0]]
        chosen += [i for i in order if i not in chosen][: n - len(chosen)]
    else:
        chosen = order[:n]
    return sorted(cand[i] for i in chosen)


def resolution_ratio(ds: xr.Dataset, default: float = 1000.0 / 30.0) -> float:
    """Coarse-to-fine pixel-size ratio of a cube, from its attrs.

    Reads ``ds.attrs["coarse_resolution"] / ds.attrs["fine_resolution"]`` (metres),
    else ``ds.attrs["resolution_ratio"]``, else ``default`` (MODIS 1 km / Landsat 30 m).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    default : float
        Value used when the attrs say nothing.

    Returns
    -------
    float
        Coarse pixel size divided by fine pixel size (> 1).

    Examples
    --------
    >>> import xarray as xr
    >>> round(resolution_ratio(xr.Dataset(attrs={"fine_resolution": 30, "coarse_resolution": 990})), 1)
    33.0
    """
    a = ds.attrs
    if "coarse_resolution" in a and "fine_resolution" in a:
        return float(a["coarse_resolution"]) / float(a["fine_resolution"])
    if "resolution_ratio" in a:
        return float(a["resolution_ratio"])
    return float(default)


def from_arrays(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    *,
    names: Sequence[str] = ("fine", "coarse"),
    **extra: xr.DataArray,
) -> xr.Dataset:
    """Assemble a cube from a fine and a coarse DataArray that are already on one grid.

    Unlike ``xr.Dataset({...})``, which silently aligns different coordinates by
    padding with NaN, this refuses arrays whose ``y``/``x`` coordinates differ by more
    than 1e-3 of a pixel (smaller differences, rounding, take the fine array's).
    Dates are aligned by union (NaN where a sensor has nothing). Use
    :func:`xstf.build_cube` to regrid MODIS onto the Landsat grid first.

    Parameters
    ----------
    fine, coarse : xarray.DataArray
        ``(time, y, x)`` LST in Kelvin on the same grid.
    names : sequence of str
        Variable names for the two.
    **extra : xarray.DataArray
        More variables (``truth``, ``landcover``...) on the same grid.

    Returns
    -------
    xarray.Dataset
        The cube (not yet validated).

    Raises
    ------
    CubeError
        If the grids differ: another size, or ``y``/``x`` more than
        :data:`GRID_TOLERANCE` (1e-3) of a pixel apart.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=20)
    >>> cube = xstf.cube.from_arrays(ds.fine, ds.coarse)
    >>> sorted(cube.data_vars)
    ['coarse', 'fine']
    """
    arrays = {names[0]: fine, names[1]: coarse, **extra}
    ref_name, ref = names[0], fine
    for name, da in arrays.items():
        for dim in ("y", "x"):
            if dim not in da.dims:
                raise CubeError(f"{name!r} has no {dim!r} dim (dims {da.dims})")
            if da.sizes[dim] != ref.sizes[dim]:
                raise CubeError(
                    f"{name!r} has {da.sizes[dim]} pixels along {dim!r} but {ref_name!r} has "
                    f"{ref.sizes[dim]}: put both on the fine grid first (xstf.build_cube)"
                )
            apart = grid_mismatch(da, ref, dim) if dim in da.coords and dim in ref.coords else None
            if apart:
                raise CubeError(
                    f"{name!r} and {ref_name!r} have different {dim!r} coordinates ({apart}): "
                    "put both on the fine grid first (xstf.build_cube)"
                )
    aligned = {
        k: (
            v.assign_coords(y=ref["y"], x=ref["x"])
            if "y" in ref.coords and "x" in ref.coords
            else v
        )
        for k, v in arrays.items()
    }
    return xr.Dataset(aligned).transpose(*DIMS, ...)


@fill_doc
def summary(
    ds: xr.Dataset,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    *,
    progress: bool | None = None,
) -> str:
    """A short text summary of a cube: grid, dates, pairs, targets and coverage.

    Computes the coverage (one pass over the data for dask-backed cubes).

    Parameters
    ----------
    %(cube)s
    min_coverage : float
        Threshold for pairs and targets.
    %(progress_scan)s

    Returns
    -------
    str
        Several lines of text.

    Examples
    --------
    >>> import xstf
    >>> print(xstf.cube.summary(xstf.datasets.synthetic(size=32, days=20)).splitlines()[0])
    LST cube: 20 dates (2021-01-01 .. 2021-01-20), 32 x 32 pixels of 30 m, CRS EPSG:32631
    """
    found = scan(ds, fine, coarse, check=False, progress=progress)
    cov, times = found.coverage, found.time
    pairs, targets = found.pair_dates(min_coverage), found.target_dates(min_coverage)
    f_ok = cov[fine] >= min_coverage
    neither = ~(cov[coarse] >= min_coverage) & ~f_ok
    res = ds.attrs.get("fine_resolution")
    crs = None
    if "spatial_ref" in ds.coords:
        import rioxarray  # noqa: F401  (registers .rio; imported here to keep `import xstf` light)

        crs = ds.rio.crs
    lines = [
        f"LST cube: {ds.sizes['time']} dates ({times[0].date()} .. {times[-1].date()}), "
        f"{ds.sizes['y']} x {ds.sizes['x']} pixels"
        + (f" of {float(res):g} m" if res is not None else "")
        + (f", CRS {crs.to_string()}" if crs is not None else ""),
        f"pairs ({fine} and {coarse} >= {min_coverage:.0%} valid): {len(pairs)}: "
        + ", ".join(str(d.date()) for d in pairs[:8])
        + (" ..." if len(pairs) > 8 else ""),
        f"targets ({coarse} only): {len(targets)}; dates with neither: {int(neither.sum())}",
        f"coverage: {fine} {float(cov[fine].mean()):.0%} mean over all dates "
        f"({float(cov[fine][f_ok].mean()) if f_ok.any() else 0:.0%} on its observed dates), "
        f"{coarse} {float(cov[coarse].mean()):.0%}",
    ]
    return "\n".join(lines)
