"""A robust default: pick the fusion method and detail gain by leave-one-pair-out validation.

:func:`fuse` predicts each of the cube's own pair dates from the other pairs with
every candidate method, anchors each prediction to that date's MODIS
(:func:`xstf.anchor.anchor`) at every gain of a small grid, scores them all on one
common pixel mask against the observed Landsat image, and predicts the targets
with the method and gain of lowest mean RMSE. Gain 0 is coarse only, so on the
validation dates the choice is never worse than plain MODIS.

The validation pass is eager (it computes ``n_pairs × n_candidates`` predictions,
with a progress bar); the final prediction is lazy where the chosen method is.
See :doc:`/guide/which-method`.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from . import cube as _cube
from ._docs import fill_doc
from .anchor import anchor as _anchor
from .errors import CubeError

__all__ = ["CANDIDATES", "DEFAULT_GAINS", "available_candidates", "cv_table", "fuse", "report"]

#: name -> (module, function, default options). A method is a candidate when its module
#: imports; each is called as ``func(ds, targets, pairs, **options)``.
CANDIDATES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ESTARFM": ("xstf.fusion.estarfm", "estarfm", {}),
    "ubESTARFM": ("xstf.fusion.estarfm", "estarfm", {"bias_correction": True}),
    "STARFM": ("xstf.fusion.starfm", "starfm", {"n_pairs": 2}),
    "FitFC": ("xstf.fusion.fitfc", "fitfc", {}),
}
#: Gains on the methods' sub-km detail tried by the validation (0 = coarse only).
DEFAULT_GAINS = (0.0, 0.25, 0.5, 0.75, 1.0)
_MIN_CV_PAIRS = 3


def available_candidates() -> list[str]:
    """The candidate methods whose module imports here (FitFC only where it exists).

    Returns
    -------
    list of str
        Names of :data:`CANDIDATES` that can run.

    Examples
    --------
    >>> "ESTARFM" in available_candidates()
    True
    """
    out = []
    for name, (mod, func, _) in CANDIDATES.items():
        try:
            if hasattr(importlib.import_module(mod), func):
                out.append(name)
        except ImportError:
            pass
    return out


def _method(name: str):
    mod, func, defaults = CANDIDATES[name]
    return getattr(importlib.import_module(mod), func), defaults


def _median(arrays: list[Any]) -> Any:
    """Per-pixel median of the candidates' predictions (NaN where any is NaN); lazy on dask."""
    if any(not isinstance(a, np.ndarray) for a in arrays):
        import dask.array as dsa

        st = dsa.stack([dsa.asarray(a) for a in arrays]).astype(np.float64)
        return dsa.map_blocks(np.median, st, axis=0, drop_axis=0, dtype=np.float64).astype(
            np.float32
        )
    return np.median(np.stack(arrays).astype(np.float64), axis=0).astype(np.float32)


def _scores(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    e = pred[mask].astype(np.float64) - ref[mask].astype(np.float64)
    if e.size == 0:
        return {"rmse": float("nan"), "bias": float("nan"), "ubrmse": float("nan"), "n_valid": 0}
    rmse = float(np.sqrt(np.mean(e**2)))
    bias = float(np.mean(e))
    return {"rmse": rmse, "bias": bias, "ubrmse": float(np.std(e)), "n_valid": int(e.size)}


def _hide(ds: xr.Dataset, fine: Hashable, dates: Sequence[pd.Timestamp]) -> xr.Dataset:
    """The cube with the fine images of ``dates`` set to NaN (lazy on dask)."""
    if not len(dates):
        return ds
    hidden = ds["time"].isin(pd.DatetimeIndex(dates).values)
    return ds.assign({fine: ds[fine].where(~hidden)})


def _as_dates(ds: xr.Dataset, dates: Any) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex([pd.Timestamp(t) for t in np.atleast_1d(np.asarray(dates))])
    times = ds.indexes["time"]
    absent = [str(t.date()) for t in idx if t not in times]
    if absent:
        raise CubeError(f"date(s) {absent} are not in the cube's time coordinate")
    return idx


@fill_doc
def fuse(
    ds: xr.Dataset,
    targets: Any = None,
    pairs: Any = None,
    *,
    candidates: Iterable[str] | None = None,
    gains: Sequence[float] = DEFAULT_GAINS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    half_window: int | None = None,
    blend: bool = True,
    unanchored: bool = False,
    fallback_gain: float = 0.5,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    progress: bool = True,
) -> xr.DataArray:
    """Fuse with the anchored method and gain chosen by leave-one-pair-out validation.

    1. *Validation (eager).* For each pair date ``d`` of the pool (the pairs that are
       not targets), every candidate predicts ``d`` from the other pool pairs, on the
       cube with ``fine`` at ``d`` hidden (set to NaN) — no method sees the date it is
       scored on. Each prediction is anchored to ``d``'s coarse image at every gain
       (:func:`xstf.anchor.anchor`; gain 0 is coarse only) and scored against the
       observed fine image on **one common mask** per date: pixels valid in the fine
       image, the coarse image and every candidate's prediction. With ``blend`` the
       per-pixel median of the candidates' predictions is a candidate too.
    2. *Choice.* The (method, gain) with the lowest mean RMSE over the validation
       dates (ties: the smaller gain, then the order of ``candidates``). Gain 0 (coarse
       only) is in the grid, so on the validation dates the choice is never worse
       than coarse only.
    3. *Prediction (lazy where the method is).* The chosen method predicts the
       targets from the pool pairs and is anchored at the chosen gain.

    With fewer than three pool pairs no method can be validated (each validation
    date would leave a single reference pair): a warning says so and the targets
    get anchored ESTARFM at ``fallback_gain`` (0.5 by default: half the method's
    sub-km detail on the target's own MODIS level; ``fallback_gain=0`` gives coarse
    only, which never does worse than MODIS but adds no detail).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    targets : datetime-like or sequence, optional
        Dates to predict; default :func:`xstf.cube.target_dates`. A pair date given
        here is predicted leave-one-out and left out of the validation pool, so it
        can be scored against its observed fine image.
    pairs : sequence of datetime-like, optional
        The pairs to validate on and predict from; default :func:`xstf.cube.pair_dates`.
    candidates : iterable of str, optional
        Names from :data:`CANDIDATES`; default :func:`available_candidates`.
    gains : sequence of float
        Gains in ``[0, 1]`` on the methods' sub-km detail.
    options : mapping, optional
        Per-candidate keyword arguments, e.g. ``{"ESTARFM": {"num_class": 6}}``.
    half_window : int, optional
        Passed to every candidate (their ``half_window``) unless ``options`` says otherwise.
    blend : bool
        Also validate the *blend*: the per-pixel median of the candidates' predictions
        (then anchored), which averages out the methods' independent pattern errors and,
        with three or more candidates, ignores one that fails on a date.
    unanchored : bool
        Also let the methods *unanchored* compete (their level taken from the pairs,
        ``F_k + (C_0 − C_k)``): that can win where the MODIS–Landsat bias is the same on
        every date (it cancels), but then gain 0 no longer bounds the choice by coarse
        only; off by default.
    fallback_gain : float
        Gain of the unvalidated fallback (fewer than three pool pairs).
    fine, coarse : hashable
        Variable names.
    %(min_coverage)s
    progress : bool
        Show a tqdm progress bar over the validation runs.

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` LST (K) on the targets, the chosen method's result anchored
        at the chosen gain. attrs ``fuse`` (JSON: the choice, the validation table
        with rmse, bias, ubrmse and n_valid per method × gain × date, the mean scores
        and skill vs coarse only per candidate); read it with :func:`cv_table` and
        :func:`report`.

    Raises
    ------
    CubeError
        Not a valid cube, fewer than two pairs, no target, or every candidate failed.
    ValueError
        Unknown candidates, gains outside ``[0, 1]``.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=90, seed=0)
    >>> out = xstf.fuse.fuse(ds, targets=ds.time[40], half_window=4, progress=False,
    ...                 candidates=["ESTARFM", "STARFM"], gains=(0.0, 0.5, 1.0))
    >>> sorted(xstf.fuse.cv_table(out).columns)[:3]
    ['bias', 'date', 'gain']
    >>> json.loads(out.attrs["fuse"])["choice"]["method"] in ("ESTARFM", "STARFM", "blend")
    True
    """
    _cube.validate(ds, fine, coarse, min_coverage, require_pairs=2)
    names = available_candidates() if candidates is None else list(candidates)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise ValueError(
            f"unknown candidate(s) {unknown or names}: choose from {list(CANDIDATES)} "
            f"(available here: {available_candidates()})"
        )
    gains_f = sorted({float(g) for g in gains})
    if not gains_f or any(not 0.0 <= g <= 1.0 for g in gains_f):
        raise ValueError(f"gains must be a non-empty sequence in [0, 1], got {list(gains)}")
    opts: dict[str, dict[str, Any]] = {}
    for n in names:
        o = dict(CANDIDATES[n][2])
        if half_window is not None:
            o["half_window"] = int(half_window)
        o.update(dict((options or {}).get(n, {})))
        o.update(fine=fine, coarse=coarse, min_coverage=min_coverage)
        opts[n] = o
    all_pairs = (
        _cube.pair_dates(ds, fine, coarse, min_coverage) if pairs is None else _as_dates(ds, pairs)
    )
    tg = (
        _cube.target_dates(ds, fine, coarse, min_coverage)
        if targets is None
        else _as_dates(ds, targets)
    )
    if len(tg) == 0:
        raise CubeError(
            f"no target date to predict (no date with >= {min_coverage:.0%} coarse coverage that is "
            "not a pair); pass targets=[...]"
        )
    pool = pd.DatetimeIndex(sorted(set(all_pairs) - set(tg)))
    if len(pool) < 2:
        raise CubeError(
            f"fuse needs at least 2 pairs besides the targets, found {len(pool)}: "
            f"{[str(d.date()) for d in pool]}"
        )

    work = _hide(ds, fine, tg)  # no step sees a target's own fine image (pair dates: leave-one-out)
    info: dict[str, Any] = {
        "candidates": names,
        "gains": gains_f,
        "pool": [str(d.date()) for d in pool],
        "options": {
            n: {k: v for k, v in o.items() if k not in ("fine", "coarse")} for n, o in opts.items()
        },
    }
    if len(pool) < _MIN_CV_PAIRS:
        warnings.warn(
            f"fuse: only {len(pool)} pairs besides the targets ({info['pool']}); leave-one-pair-out "
            f"validation needs {_MIN_CV_PAIRS}. Using anchored ESTARFM at the unvalidated gain "
            f"fallback_gain={fallback_gain} (fallback_gain=0 gives coarse only)",
            UserWarning,
            stacklevel=2,
        )
        choice: dict[str, Any] = {
            "method": "ESTARFM",
            "gain": float(fallback_gain),
            "validated": False,
        }
        if "ESTARFM" not in opts:
            opts["ESTARFM"] = {**CANDIDATES["ESTARFM"][2], "fine": fine, "coarse": coarse,
                               "min_coverage": min_coverage}  # fmt: skip
            if half_window is not None:
                opts["ESTARFM"]["half_window"] = int(half_window)
        info.update(cv=[], mean={}, skill={}, failed={})
    else:
        records, failed = _validate(
            work, pool, names, opts, gains_f, fine, coarse, progress, bool(blend)
        )
        info["failed"] = failed
        info["cv"] = records
        mean, skill = _summarise(records)
        info["mean"], info["skill"] = mean, skill
        ok = [
            r
            for r in mean.values()
            if r["method"] != "coarse_only" and (unanchored or r["gain"] is not None)
        ]
        if not ok:
            raise CubeError(f"every candidate failed in the validation: {failed}")
        order = {n: i for i, n in enumerate([*names, "blend"])}
        best = min(
            ok,
            key=lambda r: (
                round(r["rmse"], 9),
                2.0 if r["gain"] is None else r["gain"],
                order[r["method"]],
            ),
        )
        choice = {"method": best["method"], "gain": best["gain"], "validated": True,
                  "cv_rmse": best["rmse"], "cv_rmse_coarse_only": mean["coarse_only"]["rmse"]}  # fmt: skip
        if best["gain"] is not None and best["gain"] == 0.0:
            choice["method_note"] = "gain 0 is coarse only whatever the method"
    info["choice"] = choice

    if choice["method"] == "blend":
        parts = [_method(n)[0](work, tg, pool, **opts[n]) for n in names]
        pred = parts[0].copy(data=_median([p.data for p in parts]))
    else:
        pred = _method(choice["method"])[0](work, tg, pool, **opts[choice["method"]])
    g = choice["gain"]
    how = "unanchored" if g is None else f"anchored, gain {g:g}"
    out = pred if g is None else _anchor(pred, ds, gain=g, coarse_var=coarse)
    out = out.rename("fused")
    out.attrs["method"] = f"fuse: {choice['method']} {how}"
    out.attrs["long_name"] = f"fine-scale LST fused by {choice['method']} {how}" + (
        " (chosen by leave-one-pair-out validation)" if choice["validated"] else " (not validated)"
    )
    out.attrs["fuse"] = json.dumps(info, default=str)
    return out


def _validate(
    ds: xr.Dataset,
    pool: pd.DatetimeIndex,
    names: list[str],
    opts: dict[str, dict[str, Any]],
    gains: list[float],
    fine: Hashable,
    coarse: Hashable,
    progress: bool,
    blend: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from tqdm.auto import tqdm

    records: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    bar = tqdm(total=len(pool) * len(names), desc="fuse: validation", disable=not progress)
    try:
        for d in pool:
            others = pool[pool != d]
            hidden = _hide(ds, fine, [d])
            preds: dict[str, xr.DataArray] = {}
            for n in names:
                bar.set_postfix_str(f"{d.date()} {n}")
                func, _ = _method(n)
                try:
                    preds[n] = func(hidden, [d], others, **opts[n])
                except CubeError as err:  # e.g. too few pairs for this method
                    failed[f"{n} {d.date()}"] = str(err)
                bar.update(1)
            ref = np.asarray(ds[fine].sel(time=[d]).values)
            c0 = ds[coarse].sel(time=[d])
            c0v = np.asarray(c0.values)
            mask = np.isfinite(ref) & np.isfinite(c0v)
            computed = {n: p.compute() for n, p in preds.items()}
            for p in computed.values():
                mask &= np.isfinite(np.asarray(p.values))
            if blend and len(computed) >= 2 and len(computed) == len(names):
                first = next(iter(computed.values()))
                computed["blend"] = first.copy(data=_median([p.values for p in computed.values()]))
            records.append({"method": "coarse_only", "gain": 0.0, "date": str(d.date()),
                            **_scores(c0v, ref, mask)})  # fmt: skip
            for n, p in computed.items():
                for g in gains:
                    a = np.asarray(_anchor(p, c0, gain=g, ratio=_cube.resolution_ratio(ds)).values)
                    records.append(
                        {"method": n, "gain": g, "date": str(d.date()), **_scores(a, ref, mask)}
                    )
                records.append({"method": n, "gain": None, "date": str(d.date()),
                                **_scores(np.asarray(p.values), ref, mask)})  # fmt: skip
    finally:
        bar.close()
    for k, msg in failed.items():
        warnings.warn(f"fuse: {k} could not be validated: {msg}", UserWarning, stacklevel=3)
    return records, failed


def _summarise(records: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    df = pd.DataFrame(records)
    df["gain_key"] = df["gain"].map(lambda g: "none" if g is None or pd.isna(g) else f"{g:g}")
    dates = sorted(df["date"].unique())
    mean: dict[str, Any] = {}
    for (m, gk), grp in df.groupby(["method", "gain_key"], sort=False):
        if set(grp["date"]) != set(dates):  # a method that failed on some date is not comparable
            continue
        key = (
            "coarse_only"
            if m == "coarse_only"
            else f"{m} gain {gk}"
            if gk != "none"
            else f"{m} unanchored"
        )
        mean[key] = {
            "method": m,
            "gain": None if gk == "none" else float(gk),
            "rmse": float(grp["rmse"].mean()),
            "bias": float(grp["bias"].mean()),
            "ubrmse": float(grp["ubrmse"].mean()),
        }
    base = mean.get("coarse_only")
    skill: dict[str, Any] = {}
    if base is not None:
        for k, r in mean.items():
            skill[k] = {
                "rmse": 1.0 - r["rmse"] / base["rmse"] if base["rmse"] > 0 else float("nan"),
                "ubrmse": 1.0 - r["ubrmse"] / base["ubrmse"]
                if base["ubrmse"] > 0
                else float("nan"),
            }
    return mean, skill


def _info(result: xr.DataArray) -> dict[str, Any]:
    if "fuse" not in result.attrs:
        raise ValueError("not a result of xstf.fuse.fuse (no 'fuse' attribute)")
    return json.loads(result.attrs["fuse"])


def cv_table(result: xr.DataArray) -> pd.DataFrame:
    """The validation table of a :func:`fuse` result, one row per method × gain × date.

    Parameters
    ----------
    result : xarray.DataArray
        What :func:`fuse` returned.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``gain`` (NaN: the method unanchored), ``date``, ``rmse``,
        ``bias``, ``ubrmse`` (K) and ``n_valid`` (pixels of the date's common mask).

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=90, seed=0)
    >>> out = xstf.fuse.fuse(ds, targets=ds.time[40], half_window=4, progress=False,
    ...                 candidates=["STARFM"], gains=(0.0, 1.0))
    >>> t = cv_table(out)
    >>> int(t.groupby("date").n_valid.nunique().max())  # one mask per date
    1
    """
    cols = ["method", "gain", "date", "rmse", "bias", "ubrmse", "n_valid"]
    return pd.DataFrame(_info(result)["cv"], columns=cols)


def report(result: xr.DataArray) -> str:
    """A text report of a :func:`fuse` result: the choice and the mean validation scores.

    Parameters
    ----------
    result : xarray.DataArray
        What :func:`fuse` returned: its ``fuse`` attribute (JSON) holds the choice,
        the validation pool and the per-candidate mean scores.

    Returns
    -------
    str
        The choice, then one line per candidate (mean RMSE, bias, ubRMSE in K over
        the validation dates, skill vs coarse only), best first.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=90, seed=0)
    >>> out = xstf.fuse.fuse(ds, targets=ds.time[40], half_window=4, progress=False,
    ...                 candidates=["STARFM"], gains=(0.0, 1.0))
    >>> print(report(out).splitlines()[0][:6])
    chosen
    """
    info = _info(result)
    ch = info["choice"]
    how = "unanchored" if ch["gain"] is None else f"anchored, gain {ch['gain']:g}"
    lines = [
        f"chosen: {ch['method']} {how}"
        + (
            " (leave-one-pair-out validation)"
            if ch.get("validated")
            else " (NOT validated: too few pairs)"
        ),
        f"validation pool: {', '.join(info['pool'])}",
    ]
    if info.get("mean"):
        lines.append(
            f"{'candidate':<26} {'RMSE':>6} {'bias':>6} {'ubRMSE':>6} {'skill':>6} {'ub-skill':>8}"
        )
        rows = sorted(info["mean"].items(), key=lambda kv: kv[1]["rmse"])
        for k, r in rows:
            s = info["skill"].get(k, {})
            lines.append(
                f"{k:<26} {r['rmse']:6.2f} {r['bias']:+6.2f} {r['ubrmse']:6.2f} "
                f"{s.get('rmse', float('nan')):+6.2f} {s.get('ubrmse', float('nan')):+8.2f}"
            )
        lines.append("scores in K, mean over the validation dates, one common pixel mask per date; the "
                     "target's own MODIS bias is not removed by anchoring")  # fmt: skip
    for k, msg in info.get("failed", {}).items():
        lines.append(f"failed: {k}: {msg}")
    return "\n".join(lines)
