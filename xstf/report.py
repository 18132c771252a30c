"""The experiment's report folder: score tables, predictions, figures and ``report.md``.

:func:`write_report` writes what :func:`xstf.experiment.run` returned. Figures are
:class:`matplotlib.figure.Figure` objects saved to PNG directly: the user's matplotlib
backend is never switched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .protocol import BASELINE, TABLE_SCORES, ExperimentResult

__all__ = ["write_report"]

_CSV_SCORES = ("rmse", "ubrmse", "mae", "bias", "cc", "ssim", "psnr", "sam", "ergas")


def _markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    cols = [str(c) for c in df.columns]
    lines = [
        "| " + " | ".join([str(df.index.name or ""), *cols]) + " |",
        "|" + " --- |" * (len(cols) + 1),
    ]
    for idx, row in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float | np.floating) else str(v) for v in row]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def _save(fig: Any, path: Path) -> None:
    """Save a figure as PNG and release it, without touching the pyplot backend."""
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt = sys.modules.get("matplotlib.pyplot")  # a pyplot-managed figure: free it
    number = getattr(fig, "number", None)
    if plt is not None and number is not None and number in plt.get_fignums():
        plt.close(fig)


def _dates(index: Any) -> list[str]:
    return [str(pd.Timestamp(t).date()) for t in index]


def _per_date(s: xr.Dataset, name: str) -> pd.DataFrame:
    """Methods x dates table of one score."""
    df = s[name].transpose("method", "time").to_pandas()
    df.columns = _dates(df.columns)
    df.index.name = "method"
    return df


def _winners(s: xr.Dataset, methods: list[str]) -> pd.DataFrame:
    """Per date: the methods with a lower RMSE / ubRMSE than the baseline."""
    rows = {}
    for t in s.time.values:
        at = s.sel(time=t)
        row = {}
        for score in ("rmse", "ubrmse"):
            base = float(at[score].sel({"method": BASELINE}))
            won = [m for m in methods if float(at[score].sel({"method": m})) < base]
            row[f"beat {BASELINE} in {score}"] = ", ".join(won) or "(none)"
        rows[str(pd.Timestamp(t).date())] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "date"
    return df


def write_report(
    result: ExperimentResult, out: str | Path, ds: xr.Dataset, overwrite: bool = False
) -> Path:
    """Write the experiment's report folder.

    Files: ``scores.csv`` (method × date × score, with ``n_valid``), ``scores.nc``,
    ``predictions.nc``, ``scores_<score>.png`` (per-date plots),
    ``compare_best.png`` / ``compare_worst.png`` (maps of the best and the worst test
    date by mean RMSE of the methods), ``scatter_<method>.png``, and ``report.md``
    (mean and per-date scores, the mask used, which methods beat ``coarse_only`` per
    date in RMSE and ubRMSE, the warnings the methods issued, timings).

    Parameters
    ----------
    result : ExperimentResult
        What :func:`xstf.experiment.run` returned.
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

    Raises
    ------
    FileExistsError
        ``out/report.md`` exists and ``overwrite`` is false (checked before writing
        anything).

    Examples
    --------
    >>> write_report(result, "report", ds)  # doctest: +SKIP
    """
    from . import plot

    out = Path(out)
    if (out / "report.md").exists() and not overwrite:
        raise FileExistsError(
            f"{out / 'report.md'} exists: choose another folder or pass overwrite=True "
            "(--overwrite on the command line)"
        )
    out.mkdir(parents=True, exist_ok=True)
    s = result.scores
    keep = [v for v in (*_CSV_SCORES, "skill_rmse", "skill_ubrmse", "n_valid") if v in s]
    long = s[keep].to_dataframe()[keep]
    long.to_csv(out / "scores.csv")
    s.to_netcdf(out / "scores.nc", engine="netcdf4")
    result.predictions.to_netcdf(out / "predictions.nc", engine="netcdf4")
    figures = []
    for score in ("rmse", "ubrmse", "ssim", "cc", "ergas"):
        if score not in s:
            continue
        _save(plot.scores(s[[score]], score=score), out / f"scores_{score}.png")
        figures.append(f"scores_{score}.png")
    methods = [str(m) for m in result.predictions.data_vars if m != BASELINE]
    mean_rmse = s["rmse"].sel({"method": methods or [BASELINE]}).mean("method")
    best, worst = mean_rmse.idxmin("time").values, mean_rmse.idxmax("time").values
    ref_name = result.info.get("reference", "fine")
    for label, t in (("best", best), ("worst", worst)):
        fig = plot.compare(
            ds, {m: result.predictions[m] for m in methods or [BASELINE]}, t, reference=ref_name
        )
        _save(fig, out / f"compare_{label}.png")
        figures.append(f"compare_{label}.png")
    ref = ds[ref_name].sel(time=result.test_dates)
    for m in result.predictions.data_vars:
        _save(
            plot.scatter(ds.assign(_ref=ref), result.predictions[m], reference="_ref"),
            out / f"scatter_{m}.png",
        )
        figures.append(f"scatter_{m}.png")

    info = result.info
    n_dates = len(result.test_dates)
    overall = result.table()
    strong = s.strong_variability.values
    parts = []
    for label, sel in (("strong variability", strong), ("other dates", ~strong)):
        if sel.any():
            cols = [c for c in ("rmse", "ubrmse", "bias", "ssim", "cc") if c in s]
            sub = s[cols].isel(time=np.flatnonzero(sel)).mean("time").to_dataframe()
            parts.append(f"**{label}** ({int(sel.sum())} date(s)):\n\n" + _markdown(sub[cols]))
    timing = pd.DataFrame(result.timings).T.reindex(columns=["run_s", "patch_size"])
    timing.index.name = "method"
    var = result.variability.to_dataframe()[["change_std", "change_mean", "strong"]]
    var.index = pd.Index(_dates(var.index), name="date")
    beats = {
        score: {
            m: int((s[score].sel({"method": m}) < s[score].sel({"method": BASELINE})).sum())
            for m in methods
        }
        for score in ("rmse", "ubrmse")
    }
    n_valid = _per_date(s, "n_valid").astype(int)
    if info.get("common_mask", False):
        mask_text = (
            "Every method is scored on **one common mask per date**: the pixels valid in the "
            f"reference and in every prediction, `{BASELINE}` included, so the scores compare "
            "the same pixels (`n_valid` below). Skill scores: `skill_rmse = 1 − RMSE / "
            f"RMSE({BASELINE})`, `skill_ubrmse` likewise (> 0: better than {BASELINE.replace('_', ' ')})."
        )
        n_valid_table = n_valid.iloc[[0]].rename(index={n_valid.index[0]: "all methods"})
    else:
        mask_text = (
            "Each method is scored on **its own valid pixels** (per-method masks, "
            "`common_mask=False`): methods with different gaps are compared on different "
            "pixels (`n_valid` below), and no skill scores are computed."
        )
        n_valid_table = n_valid
    command = info.get("command")
    warned = info.get("warnings", {})
    warn_text = (
        "\n".join(f"- `{m}`: {msg}" for m, msgs in warned.items() for msg in msgs)
        if warned
        else "None."
    )
    text = f"""# xstf experiment report

{f"Command: `{command}`" if command else "Run from Python (`xstf.experiment.run`)."}

Versions: {", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())}

Cube: {ds.sizes["time"]} dates, {ds.sizes["y"]} × {ds.sizes["x"]} pixels, {info["n_pairs"]} pairs.
Split by date: {len(info["train_dates"])} training pair(s), {n_dates} test date(s)
({", ".join(info["test_dates"])}); the Landsat images of the test dates were hidden from every
method. Scores against `{info["reference"]}` in degrees Celsius; ERGAS with h/l =
{info.get("ratio", float("nan")):.4f} (fine / coarse pixel size from the cube); SSIM/PSNR data
range = the reference's max − min per date. ubRMSE is the RMSE once each date's mean error
(the bias) is removed: the error's standard deviation.

{mask_text}

## Mean scores over the test dates

{_markdown(overall[[c for c in TABLE_SCORES if c in overall]])}

Dates on which each method beats `{BASELINE}`: RMSE
{", ".join(f"{m} {n}/{n_dates}" for m, n in beats["rmse"].items()) or "(no method)"};
ubRMSE {", ".join(f"{m} {n}/{n_dates}" for m, n in beats["ubrmse"].items()) or "(no method)"}.

## Per test date

Methods with a lower error than `{BASELINE}`:

{_markdown(_winners(s, methods))}

RMSE (°C):

{_markdown(_per_date(s, "rmse"))}

ubRMSE (°C):

{_markdown(_per_date(s, "ubrmse"))}

Bias, prediction − reference (°C):

{_markdown(_per_date(s, "bias"))}

Pixels scored (`n_valid`):

{_markdown(n_valid_table)}

## Strong spatio-temporal variability

Flagged from the coarse data: spatial std of the coarse change from the nearest training pair
above {result.variability.attrs["threshold_K"]:.2f} K.

{_markdown(var)}

{chr(10).join(parts)}

## Warnings issued by the methods

{warn_text}

## Timings (s)

`run_s`: fit and prediction, computed.

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
