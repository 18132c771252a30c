"""Figures of an LST cube, of fused maps and of their scores (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` created with
:func:`matplotlib.pyplot.figure` (matplotlib's recommended way): pyplot manages it, so
in Jupyter it is displayed at the end of the cell (as with any pyplot figure, also when
assigned, ``fig = ...``), and in a GUI session ``plt.show()`` shows it. In scripts,
``fig.savefig("x.png")`` writes it and ``plt.close(fig)`` frees it (pyplot keeps every
open figure). Temperatures are shown in ``units`` (°C by default), converted from the
cube's K.

The cube figures (:data:`CUBE_FIGURES`) take the cube first and are also reachable as
``ds.stf.plot.<name>(...)``; :func:`scores` takes the Dataset of :func:`xstf.metrics`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from .units import convert_units, normalise_units

__all__ = ["CUBE_FIGURES", "compare", "overview", "scatter", "scores", "timeseries"]

#: Figures that take the cube as first argument (``ds.stf.plot.<name>`` fills it in).
CUBE_FIGURES = ("compare", "scatter", "timeseries", "overview")

_LST_CMAP = "inferno"
_ERR_CMAP = "RdBu_r"
_LANDCOVER_COLOURS = ["#3a78c2", "#7a1f1f", "#d98c5f", "#2f6b2f", "#e6d36a", "#b59b7a"]


# -- helpers ---------------------------------------------------------------------------------------
def _unit_label(units: str) -> str:
    return "°C" if normalise_units(units) == "degC" else "K"


def _in_units(da: xr.DataArray, units: str) -> xr.DataArray:
    if da.attrs.get("units") is None:
        raise ValueError(
            f"{da.name or 'an array'} has no 'units' attribute: set da.attrs['units'] = 'K' "
            "(or 'degC') so the figure can show it in the chosen units"
        )
    return convert_units(da, units)


def _var(ds: xr.Dataset, name: Hashable | xr.DataArray, role: str) -> xr.DataArray:
    if isinstance(name, xr.DataArray):
        return name
    if name not in ds.data_vars:
        raise ValueError(
            f"the cube has no {role} variable {name!r} (variables: {sorted(map(str, ds.data_vars))})"
        )
    return ds[name]


def _named(predictions: Any, default: str = "prediction") -> dict[str, xr.DataArray]:
    if predictions is None:
        return {}
    if isinstance(predictions, xr.DataArray):
        return {str(predictions.name) if predictions.name is not None else default: predictions}
    if isinstance(predictions, xr.Dataset):
        return {str(k): predictions[k] for k in predictions.data_vars}
    if isinstance(predictions, Mapping):
        out = {}
        for k, v in predictions.items():
            if not isinstance(v, xr.DataArray):
                raise TypeError(
                    f"predictions[{k!r}] is a {type(v).__name__}, not an xarray.DataArray"
                )
            out[str(k)] = v
        return out
    raise TypeError(
        "predictions must be a DataArray, or a Dataset/dict of name -> DataArray, "
        f"got {type(predictions).__name__}"
    )


def _at(da: xr.DataArray, time: Any) -> xr.DataArray:
    """One date of a (time, y, x) array (a 2-D array is returned as is)."""
    if "time" not in da.dims:
        return da
    try:
        return da.sel(time=time)
    except KeyError:
        dates = pd.DatetimeIndex(da["time"].values)
        raise ValueError(
            f"{da.name or 'an array'} has no date {pd.Timestamp(time).date()} "
            f"(it has {len(dates)} dates, {dates.min().date()} .. {dates.max().date()})"
        ) from None


def _window(da: xr.DataArray, zoom: Mapping[str, slice] | None) -> xr.DataArray:
    """Apply a zoom: slices of ints are pixel indices (isel), anything else coordinates (sel)."""
    if not zoom:
        return da
    unknown = set(zoom) - {"y", "x"}
    if unknown:
        raise ValueError(f"zoom takes 'y' and/or 'x' slices, got keys {sorted(unknown)}")
    out = da
    for dim, sl in zoom.items():
        if not isinstance(sl, slice):
            raise TypeError(f"zoom[{dim!r}] must be a slice, got {type(sl).__name__}")
        ends = [v for v in (sl.start, sl.stop) if v is not None]
        if all(isinstance(v, int | np.integer) for v in ends):
            out = out.isel({dim: sl})
        else:
            out = out.sel({dim: sl})
        if out.sizes[dim] == 0:
            raise ValueError(f"zoom[{dim!r}] = {sl} selects no pixel of {da.name or 'the map'}")
    return out


def _robust(arrays: Sequence[np.ndarray], q: float = 2.0) -> tuple[float, float]:
    vals = np.concatenate([np.ravel(a)[np.isfinite(np.ravel(a))] for a in arrays])
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [q, 100 - q])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(hi) + 0.5)


def _extent(da: xr.DataArray) -> tuple[float, float, float, float] | None:
    """imshow extent from pixel-centre coordinates (None when there are none)."""
    if "x" not in da.coords or "y" not in da.coords or da.sizes["x"] < 2 or da.sizes["y"] < 2:
        return None
    x, y = da["x"].values.astype(float), da["y"].values.astype(float)
    dx, dy = x[1] - x[0], y[1] - y[0]
    return (x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2)


def _show(ax: Axes, da: xr.DataArray, **kw: Any):
    im = ax.imshow(np.asarray(da.transpose("y", "x").values), extent=_extent(da), **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _label(obj: Hashable | xr.DataArray, default: str) -> str:
    if isinstance(obj, xr.DataArray):
        return str(obj.name) if obj.name is not None else default
    return str(obj)


def _cc(p: np.ndarray, r: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays (NaN when one is constant or too short)."""
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(r) == 0:
        return float("nan")
    return float(np.corrcoef(p, r)[0, 1])


def _per_date_cc(pred: xr.DataArray, ref: xr.DataArray) -> np.ndarray | None:
    """CC of each date over the pixels valid in both; None for a single date."""
    if "time" not in pred.dims or pred.sizes["time"] < 2:
        return None
    order = ["time", *(d for d in pred.dims if d != "time")]
    pv = np.asarray(pred.transpose(*order).values, dtype=float).reshape(pred.sizes["time"], -1)
    rv = np.asarray(ref.transpose(*order).values, dtype=float).reshape(pred.sizes["time"], -1)
    out = np.full(pv.shape[0], np.nan)
    for k in range(pv.shape[0]):
        ok = np.isfinite(pv[k]) & np.isfinite(rv[k])
        out[k] = _cc(pv[k][ok], rv[k][ok])
    return out


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.2f}"


def _figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-managed figure: displayed by Jupyter's inline backend and by ``plt.show()``."""
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


# -- figures ---------------------------------------------------------------------------------------
def compare(
    ds: xr.Dataset,
    predictions: xr.DataArray | xr.Dataset | Mapping[str, xr.DataArray],
    time: Any,
    *,
    reference: Hashable | xr.DataArray = "fine",
    coarse: Hashable | xr.DataArray | None = "coarse",
    zoom: Mapping[str, slice] | None = None,
    units: str = "degC",
    cmap: str = _LST_CMAP,
    error_cmap: str = _ERR_CMAP,
    panel_size: float = 3.0,
) -> Figure:
    """Maps of one date: coarse, reference and each prediction, with their error maps.

    Top row: the coarse image, the reference and each prediction, on one shared colour
    scale (2nd–98th percentile of all of them) with one colourbar. Bottom row, under
    the coarse image and under each prediction: its error (minus the reference) on a
    diverging colour map centred on 0 with symmetric limits, and one colourbar; under
    the reference, the histograms of those errors (clipped to the colour limits). Titles
    give RMSE and SSIM (from :func:`xstf.metrics` on the whole date, in ``units``) and
    the error maps' bias.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    predictions : xarray.DataArray, or Dataset / dict of name -> DataArray
        Predicted LST (with ``units``), ``(time, y, x)`` or ``(y, x)`` on the cube's grid.
    time : datetime-like
        The date to show.
    reference : hashable or xarray.DataArray
        The reference (a variable of ``ds``, e.g. ``"fine"`` on pair dates or ``"truth"``
        for the synthetic cube's target dates), or an array.
    coarse : hashable, xarray.DataArray or None
        The coarse image shown first (and scored as a baseline); ``None`` leaves it out
        (e.g. when the coarse image is itself one of the predictions).
    zoom : dict, optional
        ``{"y": slice, "x": slice}`` window shown. Slices of integers are **pixel
        indices** (``isel``); slices of floats are **coordinates** (``sel``, in the
        cube's CRS units). Scores in titles are for the whole date, not the window.
    units : {"degC", "K"}
        Units shown.
    cmap, error_cmap : str
        Colour maps of the LST and error panels.
    panel_size : float
        Size of one panel, inches.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows: the LST maps (coarse, reference, predictions), then their error maps.

    Raises
    ------
    ValueError
        A missing variable or date, or a reference with no valid pixel on ``time``.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40, seed=0)
    >>> fig = xstf.plot.compare(ds, {"coarse_only": ds.coarse}, ds.stf.pairs[0], reference="truth")
    >>> fig.axes[0].get_title().startswith("coarse")
    True
    """
    preds = _named(predictions)
    if not preds:
        raise ValueError("compare needs at least one prediction")
    from .scoring import metrics

    ref_da = _at(_var(ds, reference, "reference"), time)
    ref_name = str(reference) if not isinstance(reference, xr.DataArray) else "reference"
    if not np.isfinite(np.asarray(ref_da.values)).any():
        raise ValueError(
            f"the reference {ref_name!r} has no valid pixel on {pd.Timestamp(time).date()}: "
            "show a pair date, or pass reference='truth' (synthetic cube) or another array"
        )
    shown = {}
    if coarse is not None:
        coarse_name = str(coarse) if not isinstance(coarse, xr.DataArray) else "coarse"
        shown[coarse_name] = _at(_var(ds, coarse, "coarse"), time)
    shown.update({k: _at(v, time) for k, v in preds.items()})
    ref_u = _in_units(ref_da, units)
    scored = {k: metrics(v, ref_da, units=units, ratio=1.0).compute() for k, v in shown.items()}
    maps = {k: _window(_in_units(v, units), zoom) for k, v in shown.items()}
    ref_w = _window(ref_u, zoom)
    errors = {k: v - ref_w for k, v in maps.items()}
    vmin, vmax = _robust([ref_w.values, *[m.values for m in maps.values()]])
    elim = _robust([np.abs(e.values) for e in errors.values()], q=1.0)[1]
    elim = elim if elim > 0 else 1.0
    u = _unit_label(units)
    names = list(maps)
    ncol = len(names) + 1
    fig = _figure((panel_size * ncol + 1.2, panel_size * 2 + 0.6))
    axes = fig.subplots(2, ncol, squeeze=False)
    # columns: [coarse,] reference, predictions...; the reference has no error map
    ref_col = 1 if coarse is not None else 0
    columns = [*names[:ref_col], None, *names[ref_col:]]
    lst_axes, err_axes = [], []
    for j, name in enumerate(columns):
        ax = axes[0, j]
        lst_axes.append(ax)
        if name is None:
            im = _show(ax, ref_w, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(f"reference: {ref_name}")
            hax = axes[1, j]  # under the reference: the error distributions
            bins = np.linspace(-elim, elim, 41)
            for k, (other, err) in enumerate(errors.items()):
                e = np.asarray(err.values, dtype=float).ravel()
                e = np.clip(e[np.isfinite(e)], -elim, elim)  # outliers land in the end bins
                hax.hist(e, bins=bins, histtype="step", color=f"C{k}", label=other)
            hax.axvline(0.0, color="k", lw=0.8)
            hax.set_xlabel(f"error ({u})")
            hax.set_ylabel("pixels")
            hax.set_title("error distribution")
            hax.legend(fontsize="x-small")
            continue
        _show(ax, maps[name], cmap=cmap, vmin=vmin, vmax=vmax)
        s = scored[name]
        ax.set_title(f"{name}\nRMSE {_fmt(float(s.rmse))} {u}, SSIM {_fmt(float(s.ssim))}")
        eax = axes[1, j]
        err_axes.append(eax)
        eim = _show(eax, errors[name], cmap=error_cmap, vmin=-elim, vmax=elim)
        eax.set_title(f"{name} − {ref_name}\nbias {_fmt(float(s.bias))} {u}")
    fig.colorbar(im, ax=lst_axes, label=f"LST ({u})", shrink=0.9)
    fig.colorbar(eim, ax=err_axes, label=f"error ({u})", shrink=0.9)
    fig.suptitle(f"{pd.Timestamp(time).date()}")
    return fig


def scores(
    metrics: xr.Dataset,
    score: str | Sequence[str] = "rmse",
    *,
    kind: str = "line",
    panel_size: tuple[float, float] = (7.0, 2.6),
) -> Figure:
    """Scores per date, one line (or bar) per method; one row per score, one column per region.

    Parameters
    ----------
    metrics : xarray.Dataset
        The output of :func:`xstf.metrics` (with a ``time`` dim; ``method`` and
        ``region`` dims optional).
    score : str or sequence of str
        Score(s) to draw: ``"rmse"``, ``"mae"``, ``"bias"``, ``"cc"``, ``"ssim"``,
        ``"psnr"``, ``"sam"``, ``"ergas"``, ``"n_valid"``.
    kind : {"line", "bar"}
        Lines with markers over time (NaN dates leave gaps), or grouped bars per date.
    panel_size : (float, float)
        Size of one panel, inches.

    Returns
    -------
    matplotlib.figure.Figure
        A grid of line (or bar) plots: one row per score, one column per region.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40, seed=0)
    >>> m = xstf.metrics({"coarse_only": ds.coarse}, ds.truth)
    >>> fig = xstf.plot.scores(m, ["rmse", "ssim"])
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['RMSE (°C)', 'SSIM']
    """
    if not isinstance(metrics, xr.Dataset):
        raise TypeError(f"scores takes the Dataset of xstf.metrics, got {type(metrics).__name__}")
    names = [score] if isinstance(score, str) else list(score)
    missing = [s for s in names if s not in metrics.data_vars]
    if missing:
        raise ValueError(
            f"no score(s) {missing} in the metrics (it has {sorted(metrics.data_vars, key=str)})"
        )
    if kind not in ("line", "bar"):
        raise ValueError(f"kind must be 'line' or 'bar', got {kind!r}")
    if "time" not in metrics.dims:
        metrics = metrics.expand_dims("time")
    regions = list(metrics["region"].values) if "region" in metrics.dims else [None]
    methods = list(metrics["method"].values) if "method" in metrics.dims else [None]
    fig = _figure((panel_size[0] * len(regions), panel_size[1] * len(names) + 0.5))
    axes = fig.subplots(len(names), len(regions), squeeze=False, sharex=True)
    times = pd.DatetimeIndex(metrics["time"].values) if metrics["time"].size else None
    for i, s in enumerate(names):
        for j, region in enumerate(regions):
            ax = axes[i, j]
            width = 0.8 / len(methods)
            for k, method in enumerate(methods):
                da = metrics[s]
                if method is not None:
                    da = da.sel({"method": method})
                if region is not None:
                    da = da.sel(region=region)
                y = np.asarray(da.values, dtype=float)
                label = str(method) if method is not None else s
                if kind == "line":
                    ax.plot(da["time"].values, y, marker="o", ms=3, label=label)
                else:
                    x = np.arange(y.size) + (k - (len(methods) - 1) / 2) * width
                    ax.bar(x, np.where(np.isfinite(y), y, 0.0), width=width, label=label)
            if kind == "bar" and times is not None:
                step = max(1, len(times) // 12)
                ax.set_xticks(np.arange(len(times))[::step])
                ax.set_xticklabels([str(t.date()) for t in times[::step]], rotation=45, ha="right")
            unit = metrics[s].attrs.get("units", "")
            unit = {"degC": "°C", "1": "", "degree": "°"}.get(unit, unit)
            ax.set_ylabel(f"{s.upper()} ({unit})" if unit else s.upper())
            if region is not None and i == 0:
                ax.set_title(f"region: {region}")
            ax.grid(alpha=0.3)
            if methods != [None] and i == 0 and j == 0:
                ax.legend(fontsize="small")
    if kind == "line":
        fig.autofmt_xdate()
    return fig


def scatter(
    ds: xr.Dataset,
    prediction: Hashable | xr.DataArray,
    *,
    time: Any = None,
    reference: Hashable | xr.DataArray = "fine",
    units: str = "degC",
    gridsize: int = 60,
    label: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Density scatter of prediction against reference, with the 1:1 line and the fitted line.

    A hexbin of the pixels valid in both (log-scaled counts, with a colourbar); the
    least-squares line ``prediction = slope · reference + intercept`` and the 1:1 line,
    slope and intercept in the legend. The title names the prediction (the method), the
    reference and the date, then RMSE, bias, CC and the number of pixels. When several
    dates are pooled, RMSE, bias and the fit are over all their pixels (labelled
    *pooled*), and CC is given per date (the mean and range of each date's CC, as in
    :func:`xstf.metrics`) next to the pooled CC — pooling dates of different
    temperatures inflates CC.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    prediction : hashable or xarray.DataArray
        A variable of ``ds`` (e.g. ``"coarse"``) or a predicted array.
    time : datetime-like or sequence, optional
        Date(s) pooled; all dates by default.
    reference : hashable or xarray.DataArray
        The reference (variable name or array).
    units : {"degC", "K"}
        Units shown.
    gridsize : int
        Hexagons across the x axis.
    label : str, optional
        Name of the prediction in the title (default: the variable's or the array's
        name, e.g. the method).
    ax : matplotlib.axes.Axes, optional
        Draw there (its figure is returned); a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of the one hexbin panel (``ax``'s figure when ``ax`` is given).

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40, seed=0)
    >>> fig = xstf.plot.scatter(ds, "coarse", reference="truth")
    >>> "1:1" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    True
    >>> fig.axes[0].get_title().splitlines()[0]
    'coarse vs truth, 40 dates'
    """
    pred = _in_units(_var(ds, prediction, "prediction"), units)
    ref = _in_units(_var(ds, reference, "reference"), units)
    if time is not None:
        sel = [time] if np.ndim(time) == 0 else list(time)
        pred, ref = _at(pred, pd.DatetimeIndex(sel)), _at(ref, pd.DatetimeIndex(sel))
    pred, ref = xr.align(pred, ref, join="inner")
    pred, ref = pred.compute(), ref.compute()
    name = label if label is not None else _label(prediction, "prediction")
    ref_name = _label(reference, "reference")
    per_date = _per_date_cc(pred, ref)
    p, r = np.asarray(pred.values, dtype=float).ravel(), np.asarray(ref.values, dtype=float).ravel()
    ok = np.isfinite(p) & np.isfinite(r)
    if ok.sum() < 2:
        raise ValueError(
            f"fewer than 2 pixels valid in both prediction and reference ({int(ok.sum())}): "
            "choose dates where the reference is observed"
        )
    p, r = p[ok], r[ok]
    if ax is None:
        fig = _figure((5.6, 4.8))
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    hb = ax.hexbin(r, p, gridsize=gridsize, bins="log", mincnt=1, cmap="viridis")
    lo, hi = float(min(r.min(), p.min())), float(max(r.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
    if np.ptp(r) > 0:
        slope, intercept = np.polyfit(r, p, 1)
        ax.plot(
            [lo, hi],
            [slope * lo + intercept, slope * hi + intercept],
            "r-",
            lw=1.2,
            label=f"fit: y = {slope:.3f} x {'+' if intercept >= 0 else '−'} {abs(intercept):.2f}",
        )
    u = _unit_label(units)
    ax.set_xlabel(f"reference LST ({u})")
    ax.set_ylabel(f"prediction LST ({u})")
    ax.set_aspect("equal", adjustable="datalim")
    d = p - r
    cc = _cc(p, r)
    rmse, bias = _fmt(np.sqrt(np.mean(d * d))), _fmt(np.mean(d))
    if per_date is None:  # one date
        has_time = "time" in pred.coords and pred["time"].size == 1
        when = str(pd.Timestamp(pred["time"].values.ravel()[0]).date()) if has_time else ""
        title = [f"{name} vs {ref_name}" + (f", {when}" if when else "")]
        title.append(f"RMSE {rmse} {u}, bias {bias} {u}, CC {_fmt(cc)}, n = {p.size}")
    else:
        title = [f"{name} vs {ref_name}, {pred.sizes['time']} dates"]
        title.append(f"pooled: RMSE {rmse} {u}, bias {bias} {u}, CC {_fmt(cc)}, n = {p.size}")
        finite = per_date[np.isfinite(per_date)]
        if finite.size:
            title.append(
                f"CC per date: mean {_fmt(finite.mean())} "
                f"(min {_fmt(finite.min())}, max {_fmt(finite.max())}; {finite.size} dates)"
            )
    ax.set_title("\n".join(title), fontsize="medium")
    ax.legend(loc="upper left", fontsize="small")
    fig.colorbar(hb, ax=ax, label="pixels (log scale)")
    return fig


def _region_mask(ds: xr.Dataset, region: Any, regions: Hashable) -> xr.DataArray:
    if regions not in ds:
        raise ValueError(f"region= needs a label map {regions!r} in the cube (pass regions=<name>)")
    labels = ds[regions]
    meanings = labels.attrs.get("flag_meanings")
    values = labels.attrs.get("flag_values")
    if isinstance(region, str):
        names = meanings.split() if isinstance(meanings, str) else []
        if region not in names or values is None:
            raise ValueError(
                f"unknown region {region!r}; {regions!r} has {names or 'no named classes'}"
            )
        region = list(values)[names.index(region)]
    mask = labels == region
    if not bool(mask.any()):
        raise ValueError(f"no pixel of {regions!r} has the label {region!r}")
    return mask


def timeseries(
    ds: xr.Dataset,
    *,
    y: float | None = None,
    x: float | None = None,
    region: Any = None,
    predictions: xr.DataArray | xr.Dataset | Mapping[str, xr.DataArray] | None = None,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    truth: Hashable = "truth",
    regions: Hashable = "landcover",
    min_coverage: float = 0.5,
    units: str = "degC",
    ax: Axes | None = None,
) -> Figure:
    """LST over time at one pixel, or averaged over a region or the scene.

    Draws ``truth`` (when the cube has it), ``coarse``, ``fine`` (markers: it is
    sparse) and each prediction. For a region (or the whole scene, when neither a pixel
    nor a region is given) each date's value is the mean over the valid pixels, drawn
    only where at least ``min_coverage`` of the area is valid; the legend says on how
    many dates each series is drawn.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    y, x : int or float, optional
        The pixel: integers are **pixel indices**, floats are **coordinates** (nearest
        pixel). Give both or neither.
    region : int or str, optional
        A label of ``ds[regions]`` (value, or class name from ``flag_meanings``).
    predictions : xarray.DataArray, or Dataset / dict of name -> DataArray, optional
        Predicted LST ``(time, y, x)`` to add.
    fine, coarse, truth : hashable
        Variable names (``truth`` is skipped when absent).
    regions : hashable
        The label map used by ``region``.
    min_coverage : float
        Share of valid pixels needed for an area mean to be drawn.
    units : {"degC", "K"}
        Units shown.
    ax : matplotlib.axes.Axes, optional
        Draw there (its figure is returned).

    Returns
    -------
    matplotlib.figure.Figure
        The figure of the one time-series axes (``ax``'s figure when ``ax`` is given).

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40, seed=0)
    >>> fig = xstf.plot.timeseries(ds, region="cropland")
    >>> fig.axes[0].get_ylabel()
    'LST (°C)'
    """
    if (y is None) != (x is None):
        raise ValueError("give both y= and x= for a pixel, or neither")
    if y is not None and region is not None:
        raise ValueError("give a pixel (y=, x=) or a region=, not both")
    series = {}
    if truth in ds.data_vars:
        series[str(truth)] = ds[truth]
    series[str(coarse)] = _var(ds, coarse, "coarse")
    series[str(fine)] = _var(ds, fine, "fine")
    series.update(_named(predictions))
    if y is not None:
        if isinstance(y, int | np.integer) and isinstance(x, int | np.integer):
            where = f"pixel y={y}, x={x}"

            def pick(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
                v = da.isel(y=y, x=x)
                return v, v.notnull()
        else:
            where = f"pixel nearest y={y}, x={x}"

            def pick(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
                v = da.sel(y=y, x=x, method="nearest")
                return v, v.notnull()
    else:
        mask = _region_mask(ds, region, regions) if region is not None else None
        where = f"region {region!r}" if region is not None else "scene mean"

        def pick(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
            area = da if mask is None else da.where(mask)
            n_area = mask.sum() if mask is not None else da.sizes["y"] * da.sizes["x"]
            cover = area.notnull().sum(("y", "x")) / n_area
            return area.mean(("y", "x")), cover >= min_coverage

    if ax is None:
        fig = _figure((9.0, 3.8))
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    styles: dict[str, dict[str, Any]] = {
        str(truth): {"color": "k", "lw": 1.2},
        str(coarse): {"color": "tab:orange", "lw": 1},
    }
    for name, da in series.items():
        value, ok = pick(_in_units(da, units))
        v = np.asarray(value.values, dtype=float)
        keep = np.asarray(ok.values, dtype=bool) & np.isfinite(v)
        t = value["time"].values
        label = f"{name} ({int(keep.sum())} of {v.size} dates)"
        if name == str(fine):
            ax.plot(t[keep], v[keep], "o", color="tab:blue", ms=5, label=label)
        else:
            style = styles.get(name, {"marker": ".", "lw": 1})
            ax.plot(t, np.where(keep, v, np.nan), label=label, **style)
    ax.set_ylabel(f"LST ({_unit_label(units)})")
    ax.set_title(where)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.autofmt_xdate()
    return fig


def _default_times(ds: xr.Dataset, n: int, fine: Hashable, coarse: Hashable) -> list[pd.Timestamp]:
    from .cube import pair_dates, target_dates

    times = pd.DatetimeIndex(ds["time"].values)
    pairs = pair_dates(ds, fine, coarse)
    targets = target_dates(ds, fine, coarse)
    chosen: list[pd.Timestamp] = []
    if len(pairs) and n > 1:
        k = min(n - 1, len(pairs))
        chosen += [pairs[i] for i in np.linspace(0, len(pairs) - 1, k).round().astype(int)]
    if len(targets):
        mid = chosen[0] + (chosen[-1] - chosen[0]) / 2 if chosen else times[len(times) // 2]
        chosen.append(targets[np.abs((targets - mid).total_seconds()).argmin()])
    rest = [t for t in times if t not in chosen]
    while len(chosen) < min(n, len(times)):
        chosen.append(rest.pop(len(rest) // 2))
    return sorted(set(chosen))[:n]


def overview(
    ds: xr.Dataset,
    times: Sequence[Any] | None = None,
    n: int = 3,
    *,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    truth: Hashable = "truth",
    landcover: Hashable = "landcover",
    units: str = "degC",
    cmap: str = _LST_CMAP,
    panel_size: float = 2.6,
) -> Figure:
    """The cube at a glance: truth (if any) / fine / coarse rows for a few dates, and land cover.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    times : sequence of datetime-like, optional
        Dates (columns). Default: ``n - 1`` pair dates spread over the cube and the
        target date nearest the middle of them.
    n : int
        Number of dates when ``times`` is not given.
    fine, coarse, truth, landcover : hashable
        Variable names (``truth`` and ``landcover`` are skipped when absent).
    units : {"degC", "K"}
        Units shown.
    cmap : str
        Colour map (one shared scale for every LST panel).
    panel_size : float
        Size of one panel, inches.

    Returns
    -------
    matplotlib.figure.Figure
        Rows truth / fine / coarse, one column per date, and a land-cover panel.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40, seed=0)
    >>> fig = xstf.plot.overview(ds, n=3)
    >>> fig.axes[0].get_ylabel()
    'truth'
    """
    from .cube import pair_dates

    if times is None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        dates = _default_times(ds, n, fine, coarse)
    else:
        dates = [pd.Timestamp(t) for t in times]
        if not dates:
            raise ValueError("times is empty: give at least one date")
    rows = [v for v in (truth, fine, coarse) if v in ds.data_vars]
    for required, role in ((fine, "fine"), (coarse, "coarse")):
        _var(ds, required, role)
    frames = {(r, t): _in_units(_at(ds[r], t), units) for r in rows for t in dates}
    vmin, vmax = _robust([f.values for f in frames.values()])
    has_lc = landcover in ds.data_vars
    ncol = len(dates) + int(has_lc)
    fig = _figure((panel_size * ncol + 1.0, panel_size * len(rows) + 0.4))
    axes = fig.subplots(len(rows), ncol, squeeze=False)
    pairs = set(pair_dates(ds, fine, coarse))
    im = None
    for i, r in enumerate(rows):
        for j, t in enumerate(dates):
            ax = axes[i, j]
            im = _show(ax, frames[(r, t)], cmap=cmap, vmin=vmin, vmax=vmax)
            if i == 0:
                ax.set_title(f"{t.date()}\n{'pair' if t in pairs else 'target'}")
            if j == 0:
                ax.set_ylabel(str(r))
    assert im is not None  # rows and dates are non-empty here (_robust raised otherwise)
    fig.colorbar(
        im,
        ax=axes[:, : len(dates)].ravel().tolist(),
        label=f"LST ({_unit_label(units)})",
        shrink=0.6,
        aspect=30,
    )
    if has_lc:
        lc = ds[landcover]
        values = list(lc.attrs.get("flag_values", np.unique(lc.values)))
        names = str(lc.attrs.get("flag_meanings", " ".join(map(str, values)))).split()
        colours = [_LANDCOVER_COLOURS[k % len(_LANDCOVER_COLOURS)] for k in range(len(values))]
        edges = [*(v - 0.5 for v in values), values[-1] + 0.5]
        ax = axes[0, -1]
        lim = _show(ax, lc, cmap=ListedColormap(colours), norm=BoundaryNorm(edges, len(values)))
        ax.set_title(str(landcover))
        cbar = fig.colorbar(lim, ax=ax, ticks=values, shrink=0.9)
        cbar.ax.set_yticklabels(names, fontsize="x-small")
        for i in range(1, len(rows)):
            axes[i, -1].set_axis_off()
    return fig
