"""The survey's experiment end to end: split by date, fit, predict, score, report.

:func:`run` follows the protocol of Bouaziz et al. (arXiv 2412.16631): the cube's
pairs are split by date into training and test dates (the survey: 34 training
triplets and 8 test samples out of 51 pairs; the same shares on other date
counts), every method predicts the test dates from the training pairs only (the
Landsat images of the test dates are hidden from it), and the predictions are
scored against the held-out Landsat images with the six metrics. The baseline
"coarse only" (the MODIS image on the fine grid) is always scored too, so a method
doing worse than doing nothing is visible. Dates of strong spatio-temporal
variability — where the coarse change between the reference pairs and the target
is far from uniform, the survey's failure case — are flagged from the data and
scored separately.

:func:`write_report` writes ``scores.csv``, ``scores.nc``, ``predictions.nc``,
figures and a readable ``report.md``; ``xstf benchmark`` on the command line
does both.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from . import cube as _cube
from .errors import CubeError

__all__ = [
    "BASELINE",
    "CLASSICAL",
    "ExperimentResult",
    "add_arguments",
    "main",
    "run",
    "split_test_dates",
    "variability",
    "write_report",
]

#: Name of the trivial baseline: the coarse image on the fine grid.
BASELINE = "coarse_only"
#: Methods that need no training.
CLASSICAL = ("estarfm", "ubestarfm", "starfm")
#: The survey's protocol: 8 test samples for 51 pairs.
SURVEY_TEST_SHARE = 8 / 51
SCORES = ("rmse", "ssim", "psnr", "sam", "cc", "ergas")


@dataclass
class ExperimentResult:
    """What :func:`run` returns.

    Attributes
    ----------
    scores : xarray.Dataset
        Metrics with dims ``(method, time)`` (and ``region`` when land cover was given).
    predictions : xarray.Dataset
        One variable per method (and the baseline), ``(time, y, x)`` in K, on the test dates.
    test_dates, train_dates : pandas.DatetimeIndex
        The split.
    variability : xarray.Dataset
        Per test date: the spatial standard deviation of the coarse change from the
        nearest reference pair (K) and the ``strong`` flag.
    timings : dict
        Seconds spent fitting and predicting, per method.
    info : dict
        Parameters, versions and the command, for the report.

    Examples
    --------
    >>> res = run(ds, ["estarfm"])  # doctest: +SKIP
    >>> res.table().loc["estarfm", "rmse"]  # doctest: +SKIP
    """

    scores: xr.Dataset
    predictions: xr.Dataset
    test_dates: pd.DatetimeIndex
    train_dates: pd.DatetimeIndex
    variability: xr.Dataset
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def table(self, by: str = "method") -> pd.DataFrame:
        """Mean of the six scores (and MAE, bias) over the test dates, one row per ``by``."""
        cols = [
            v
            for v in ("rmse", "mae", "bias", "cc", "ssim", "psnr", "sam", "ergas")
            if v in self.scores
        ]
        df = self.scores[cols].to_dataframe()[cols]
        return df.groupby(level=by).mean()


def split_test_dates(
    pairs: Sequence[Any], test: Sequence[Any] | float | None = None
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Split pair dates into training and test dates.

    Parameters
    ----------
    pairs : sequence of datetime-like
        The cube's pair dates.
    test : sequence of dates, float or None
        Explicit test dates (each must be a pair), or the share of pairs to hold out
        (default: the survey's 8/51). Test dates are spread evenly over the interior
        pairs, so every one is bracketed by training pairs.

    Returns
    -------
    (train, test) : tuple of pandas.DatetimeIndex

    Raises
    ------
    CubeError
        If a named date is not a pair or too few pairs would remain for training
        (a method needs two reference pairs; deep models check their own needs).

    Examples
    --------
    >>> import pandas as pd
    >>> train, test = split_test_dates(pd.date_range("2021-01-01", periods=51, freq="16D"))
    >>> len(train), len(test)
    (43, 8)
    """
    idx = pd.DatetimeIndex(sorted(set(pd.DatetimeIndex(list(pairs)))))
    if test is None or isinstance(test, float | int):
        share = SURVEY_TEST_SHARE if test is None else float(test)
        if not 0 < share < 1:
            raise ValueError(f"the test share must be in (0, 1), got {share}")
        n_test = max(1, round(share * len(idx)))
        interior = idx[1:-1]
        if len(interior) < n_test or len(idx) - n_test < 2:
            raise CubeError(
                f"the cube has {len(idx)} pair(s): holding out {n_test} test date(s) among the "
                f"{len(interior)} interior pair(s) would leave {len(idx) - n_test} for training; "
                "at least 2 are needed (the reference pairs). Add dates or lower min_coverage"
            )
        pos = list(
            np.unique(np.round(np.linspace(0, len(interior) - 1, n_test + 2)[1:-1]).astype(int))
        )
        spare = [i for i in range(len(interior)) if i not in pos]
        while len(pos) < n_test:  # rounding merged two positions: take unused ones, in order
            pos.append(spare.pop(0))
        test_idx = interior[sorted(pos)]
    else:
        test_idx = pd.DatetimeIndex(sorted(pd.DatetimeIndex(list(test))))
        bad = [str(d.date()) for d in test_idx if d not in idx]
        if bad:
            raise CubeError(
                f"test date(s) {bad} are not pairs of the cube (pairs: {[str(d.date()) for d in idx]})"
            )
    train = idx[~idx.isin(test_idx)]
    if len(train) < 2:
        raise CubeError(f"only {len(train)} training pair(s) remain after the split; 2 are needed")
    return train, test_idx


def variability(
    ds: xr.Dataset,
    targets: Sequence[Any],
    pairs: Sequence[Any],
    coarse: Hashable = "coarse",
    threshold: float | None = None,
) -> xr.Dataset:
    """Flag target dates of strong spatio-temporal variability, from the coarse data alone.

    For each target the nearest reference pair is taken and the spatial standard
    deviation of ``coarse(target) − coarse(reference)`` is computed: a uniform
    warming or cooling gives a small value (easy for every method), a change that
    differs across the scene (rain cooling vegetation but not the city, a front)
    gives a large one — the case the survey found every method to fail on.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    targets, pairs : sequence of datetime-like
        Dates to assess and the pair dates references come from.
    coarse : hashable
        Coarse variable name.
    threshold : float, optional
        Flag above this many K. Default: 1.5 × the median over the targets, and at
        least 1 K.

    Returns
    -------
    xarray.Dataset
        ``change_std`` (K), ``change_mean`` (K), ``strong`` (bool) along ``time`` and
        the threshold used in attrs.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=60, cloud_fraction=0.0)
    >>> v = variability(ds, ds.stf.targets[:3], ds.stf.pairs)
    >>> v.change_std.dims
    ('time',)
    """
    rows = []
    for t in targets:
        ref = _cube.reference_pairs(pairs, t, n=1)[0]
        d = (ds[coarse].sel(time=t) - ds[coarse].sel(time=ref)).values
        rows.append(
            (float(np.nanstd(d)), float(np.nanmean(d)))
            if np.isfinite(d).any()
            else (np.nan, np.nan)
        )
    arr = np.array(rows, dtype=float).reshape(-1, 2)
    med = np.nanmedian(arr[:, 0]) if np.isfinite(arr[:, 0]).any() else np.nan
    thr = (
        float(threshold)
        if threshold is not None
        else float(max(1.0, 1.5 * med))
        if np.isfinite(med)
        else 1.0
    )
    time = pd.DatetimeIndex(list(targets), name="time")
    return xr.Dataset(
        {
            "change_std": (
                "time",
                arr[:, 0],
                {"units": "K", "long_name": "spatial std of the coarse change"},
            ),
            "change_mean": ("time", arr[:, 1], {"units": "K", "long_name": "mean coarse change"}),
            "strong": (
                "time",
                arr[:, 0] > thr,
                {"long_name": "strong spatio-temporal variability"},
            ),
        },
        coords={"time": time},
        attrs={"threshold_K": thr},
    )


def _predict(
    method: str, cube: xr.Dataset, targets: pd.DatetimeIndex, fine: Hashable, coarse: Hashable,
    options: Mapping[str, Any], seed: int, progress: bool,
) -> tuple[xr.DataArray, dict[str, float]]:  # fmt: skip
    timing: dict[str, float] = {}
    opts = dict(options.get(method, {}))
    if method in ("estarfm", "ubestarfm"):
        from .fusion.estarfm import estarfm

        t0 = time.perf_counter()
        out = estarfm(
            cube,
            targets=targets,
            fine=fine,
            coarse=coarse,
            bias_correction=method == "ubestarfm",
            **opts,
        ).compute()
        timing["predict_s"] = time.perf_counter() - t0
        return out, timing
    if method == "starfm":
        from .fusion.starfm import starfm

        t0 = time.perf_counter()
        out = starfm(cube, targets=targets, fine=fine, coarse=coarse, **opts).compute()
        timing["predict_s"] = time.perf_counter() - t0
        return out, timing
    from . import models

    if method not in models.available():
        raise ValueError(
            f"unknown method {method!r}: choose from {[*CLASSICAL, *models.available()]}"
        )
    fit_opts = {"seed": seed, "progress": progress, **opts}
    side = min(cube.sizes["y"], cube.sizes["x"])
    if "patch_size" not in fit_opts and side < 2 * 95:  # the survey's 95 px patches need room
        fit_opts["patch_size"] = max(16, side // 2)
        fit_opts.setdefault("stride", max(4, fit_opts["patch_size"] // 4))
    timing["patch_size"] = float(fit_opts.get("patch_size", 95))
    t0 = time.perf_counter()
    model = models.fit(cube, method, fine=fine, coarse=coarse, **fit_opts)
    timing["fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = models.predict(cube, model, targets=targets, fine=fine, coarse=coarse).compute()
    timing["predict_s"] = time.perf_counter() - t0
    return out, timing


def run(
    ds: xr.Dataset,
    methods: Sequence[str] = ("estarfm",),
    *,
    test: Sequence[Any] | float | None = None,
    reference: Hashable | None = None,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    regions: xr.DataArray | Hashable | None = "landcover",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    variability_threshold: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ExperimentResult:
    """Run the survey's experiment on a cube.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    methods : sequence of str
        ``"estarfm"``, ``"ubestarfm"`` (ESTARFM with bias correction), ``"starfm"`` and
        any name of :func:`xstf.models.available`. The baseline ``"coarse_only"``
        is always added.
    test : sequence of dates, float or None
        Test dates (pairs), or the share of pairs to hold out (default 8/51, the
        survey's). Their Landsat images are hidden from every method.
    reference : hashable, optional
        Variable the predictions are scored against. Default ``fine`` (the held-out
        Landsat images, as in the survey).
    fine, coarse : hashable
        Variable names.
    regions : DataArray, hashable or None
        Land-cover labels for per-class scores (a variable name of ``ds`` or a
        DataArray); ignored when absent.
    options : mapping
        Per-method keyword arguments, e.g. ``{"edcstfn": {"epochs": 10},
        "estarfm": {"half_window": 15}}``.
    min_coverage : float
        Coverage threshold for pairs.
    variability_threshold : float, optional
        See :func:`variability`.
    seed : int
        Seed for the deep models.
    progress : bool
        Show progress bars.

    Returns
    -------
    ExperimentResult

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=200, cloud_fraction=0.1)
    >>> res = xstf.experiment.run(ds, ["estarfm"], progress=False)  # doctest: +SKIP
    >>> res.table()  # doctest: +SKIP
    """
    from .scoring import metrics

    _cube.validate(ds, fine, coarse, min_coverage, require_pairs=3)
    pairs = _cube.pair_dates(ds, fine, coarse, min_coverage)
    train, test_dates = split_test_dates(pairs, test)
    hidden = ds["time"].isin(test_dates.values)
    train_cube = ds.assign({fine: ds[fine].where(~hidden)})  # no method ever sees the test images
    ref_name = fine if reference is None else reference
    truth = ds[ref_name].sel(time=test_dates)
    options = dict(options or {})

    predictions: dict[str, xr.DataArray] = {BASELINE: ds[coarse].sel(time=test_dates)}
    timings: dict[str, dict[str, float]] = {BASELINE: {}}
    methods = [m.lower() for m in methods if m.lower() != BASELINE]
    for m in methods:
        if progress:
            print(
                f"xstf experiment: {m} on {len(test_dates)} test date(s)",
                file=sys.stderr,
                flush=True,
            )
        out, timing = _predict(m, train_cube, test_dates, fine, coarse, options, seed, progress)
        predictions[m] = out.drop_vars([c for c in out.coords if c not in ("time", "y", "x")])
        timings[m] = timing
    preds = xr.Dataset(
        {k: v.reindex(time=test_dates).astype("float32") for k, v in predictions.items()}
    )
    preds = preds.assign_coords(y=ds["y"], x=ds["x"])

    labels = None
    if isinstance(regions, xr.DataArray):
        labels = regions
    elif regions is not None and regions in ds:
        labels = ds[regions]
    ratio = 1.0 / _cube.resolution_ratio(ds)
    scores = metrics(preds, truth, ratio=ratio).compute()
    if labels is not None:
        by_region = metrics(preds, truth, ratio=ratio, regions=labels).compute()
        scores = scores.assign(
            {f"{k}_by_region": by_region[k] for k in ("rmse", "ssim", "cc", "bias")}
        )
    var = variability(ds, test_dates, train, coarse=coarse, threshold=variability_threshold)
    scores = scores.assign_coords(strong_variability=("time", var.strong.values))
    info = {
        "methods": [BASELINE, *methods],
        "n_pairs": len(pairs),
        "train_dates": [str(d.date()) for d in train],
        "test_dates": [str(d.date()) for d in test_dates],
        "reference": str(ref_name),
        "ratio": ratio,
        "options": {k: dict(v) for k, v in options.items()},
        "seed": seed,
        "versions": _versions(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    return ExperimentResult(scores, preds, test_dates, train, var, timings, info)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("xstf", "numpy", "xarray", "dask", "numba", "torch", "scikit-image"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    cols = [str(c) for c in df.columns]
    lines = [
        "| " + " | ".join([df.index.name or "", *cols]) + " |",
        "|" + " --- |" * (len(cols) + 1),
    ]
    for idx, row in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float | np.floating) else str(v) for v in row]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def write_report(
    result: ExperimentResult, out: str | Path, ds: xr.Dataset, overwrite: bool = False
) -> Path:
    """Write the experiment's report folder.

    Files: ``scores.csv`` (method × date × score), ``scores.nc``,
    ``predictions.nc``, ``scores_<score>.png`` (per-date plots),
    ``compare_best.png`` / ``compare_worst.png`` (maps of the best and the worst test
    date by mean RMSE of the methods), ``scatter_<method>.png``, and ``report.md``.

    Parameters
    ----------
    result : ExperimentResult
        What :func:`run` returned.
    out : str or Path
        Report folder (created).
    ds : xarray.Dataset
        The cube the experiment ran on (for the maps).
    overwrite : bool
        Replace the files of an existing report; otherwise an existing ``report.md``
        in ``out`` is an error.

    Returns
    -------
    Path
        The ``report.md`` path.

    Examples
    --------
    >>> write_report(result, "report", ds)  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plot

    out = Path(out)
    if (out / "report.md").exists() and not overwrite:
        raise FileExistsError(
            f"{out / 'report.md'} exists: choose another folder or pass overwrite=True "
            "(--overwrite on the command line)"
        )
    out.mkdir(parents=True, exist_ok=True)
    s = result.scores
    keep = [
        v
        for v in ("rmse", "mae", "bias", "cc", "ssim", "psnr", "sam", "ergas", "n_valid")
        if v in s
    ]
    long = s[keep].to_dataframe()[keep]
    long.to_csv(out / "scores.csv")
    s.to_netcdf(out / "scores.nc", engine="netcdf4")
    result.predictions.to_netcdf(out / "predictions.nc", engine="netcdf4")
    figures = []
    for score in ("rmse", "ssim", "cc", "ergas"):
        fig = plot.scores(s[[score]], score=score)  # per date, not per region
        fig.savefig(out / f"scores_{score}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        figures.append(f"scores_{score}.png")
    methods = [m for m in result.predictions.data_vars if m != BASELINE]
    mean_rmse = s["rmse"].sel({"method": methods or [BASELINE]}).mean("method")
    best, worst = mean_rmse.idxmin("time").values, mean_rmse.idxmax("time").values
    ref_name = result.info.get("reference", "fine")
    for label, t in (("best", best), ("worst", worst)):
        fig = plot.compare(
            ds, {m: result.predictions[m] for m in methods or [BASELINE]}, t, reference=ref_name
        )
        fig.savefig(out / f"compare_{label}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        figures.append(f"compare_{label}.png")
    ref = ds[ref_name].sel(time=result.test_dates)
    for m in result.predictions.data_vars:
        fig = plot.scatter(ds.assign(_ref=ref), result.predictions[m], reference="_ref")
        fig.savefig(out / f"scatter_{m}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        figures.append(f"scatter_{m}.png")

    overall = result.table()
    strong = s.strong_variability.values
    parts = []
    for label, sel in (("strong variability", strong), ("other dates", ~strong)):
        if sel.any():
            sub = (
                s[["rmse", "ssim", "cc"]].isel(time=np.flatnonzero(sel)).mean("time").to_dataframe()
            )
            parts.append(
                f"**{label}** ({int(sel.sum())} date(s)):\n\n"
                + _markdown(sub[["rmse", "ssim", "cc"]])
            )
    per_date = s["rmse"].to_pandas()
    per_date.columns = [str(pd.Timestamp(c).date()) for c in per_date.columns]
    timing = pd.DataFrame(result.timings).T.reindex(columns=["fit_s", "predict_s", "patch_size"])
    timing.index.name = "method"
    var = result.variability.to_dataframe()[["change_std", "change_mean", "strong"]]
    var.index = [str(pd.Timestamp(t).date()) for t in var.index]
    var.index.name = "date"
    beats = {
        m: int((s["rmse"].sel({"method": m}) < s["rmse"].sel({"method": BASELINE})).sum())
        for m in methods
    }
    info = result.info
    text = f"""# xstf experiment report

Command: `{info.get("command", "")}`

Versions: {", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())}

Cube: {ds.sizes["time"]} dates, {ds.sizes["y"]} × {ds.sizes["x"]} pixels, {info["n_pairs"]} pairs.
Split by date: {len(info["train_dates"])} training pair(s), {len(info["test_dates"])} test date(s)
({", ".join(info["test_dates"])}); the Landsat images of the test dates were hidden from every
method. Scores against `{info["reference"]}` in degrees Celsius; ERGAS with h/l =
{info.get("ratio", float("nan")):.4f} (fine / coarse pixel size from the cube); SSIM/PSNR data
range = the reference's max − min per date.

## Mean scores over the test dates

{_markdown(overall)}

Dates on which each method beats the "coarse only" baseline (RMSE):
{", ".join(f"{m} {n}/{len(result.test_dates)}" for m, n in beats.items()) or "(no method)"}.

## RMSE per test date (°C)

{_markdown(per_date)}

## Strong spatio-temporal variability

Flagged from the coarse data: spatial std of the coarse change from the nearest training pair
above {result.variability.attrs["threshold_K"]:.2f} K.

{_markdown(var)}

{chr(10).join(parts)}

## Timings (s)

{_markdown(timing, ".1f")}

## Files

`scores.csv`, `scores.nc`, `predictions.nc`, {", ".join(f"`{f}`" for f in figures)}.

![RMSE per date](scores_rmse.png)

![Best date](compare_best.png)

![Worst date](compare_worst.png)

Options: `{json.dumps(info.get("options", {}))}`
"""
    (out / "report.md").write_text(text)
    return out / "report.md"


def _load_cube(args: argparse.Namespace) -> xr.Dataset:
    if args.synthetic:
        from .datasets import synthetic

        return synthetic(
            size=args.size, days=args.days, seed=args.seed, cloud_fraction=args.cloud_fraction
        )
    if args.cube:
        from .export import open_zarr

        return open_zarr(args.cube)
    if args.orleans:
        from .build import build_cube
        from .io import open_landsat, open_modis

        folder = Path(args.orleans)
        fine = open_landsat(folder / "landsat8", band=1, units="degC")
        coarse = open_modis(folder / "modis", units="degC")
        return build_cube(fine, coarse)
    raise SystemExit("xstf benchmark: give --synthetic, --cube PATH.zarr or --orleans DIR")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of ``xstf benchmark``.

    Examples
    --------
    >>> ap = argparse.ArgumentParser()
    >>> add_arguments(ap)
    >>> ap.parse_args(["--synthetic", "--out", "report"]).methods
    'estarfm,starfm,edcstfn'
    """
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--synthetic", action="store_true", help="the built-in synthetic cube")
    src.add_argument("--cube", metavar="PATH.zarr", help="a cube stored in Zarr")
    src.add_argument("--orleans", metavar="DIR", help="the Orléans Landsat/MODIS folder")
    ap.add_argument("--methods", default="estarfm,starfm,edcstfn", help="comma-separated methods")
    ap.add_argument("--out", required=True, help="report folder")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing report")
    ap.add_argument(
        "--test", type=float, default=None, help="share of pairs held out (default 8/51)"
    )
    ap.add_argument("--reference", default=None, help="variable to score against (default: fine)")
    ap.add_argument("--size", type=int, default=256, help="synthetic: pixels a side")
    ap.add_argument("--days", type=int, default=365, help="synthetic: number of days")
    ap.add_argument("--cloud-fraction", type=float, default=0.2, help="synthetic: cloud fraction")
    ap.add_argument("--epochs", type=int, default=None, help="deep models: training epochs")
    ap.add_argument("--half-window", type=int, default=None, help="ESTARFM/STARFM half window")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """Run ``xstf benchmark`` with parsed arguments; returns the exit status.

    Examples
    --------
    >>> ap = argparse.ArgumentParser()
    >>> add_arguments(ap)
    >>> main(ap.parse_args(["--synthetic", "--size", "64", "--out", "report"]))  # doctest: +SKIP
    0
    """
    ds = _load_cube(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    options: dict[str, dict[str, Any]] = {}
    for m in methods:
        if m in CLASSICAL and args.half_window is not None:
            options[m] = {"half_window": args.half_window}
        elif m not in CLASSICAL and args.epochs is not None:
            options[m] = {"epochs": args.epochs}
    t0 = time.perf_counter()
    result = run(
        ds, methods, test=args.test, reference=args.reference, options=options, seed=args.seed,
        progress=not args.quiet,
    )  # fmt: skip
    report = write_report(result, args.out, ds, overwrite=args.overwrite)
    with pd.option_context("display.width", 140, "display.precision", 3):
        print(result.table().to_string())
    print(f"\nxstf benchmark: report written to {report} in {time.perf_counter() - t0:.0f} s")
    return 0
