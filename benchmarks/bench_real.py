"""Every method, anchored and not, and the xstf.fuse default, against coarse only on real data.

Orléans leave-one-out: each of the three middle dates (2017-04-09, 2018-02-23,
2018-10-21) is hidden (its Landsat image set to NaN) and predicted from the other four
pairs; the same on held-out pair dates of the synthetic cube. Every method of a date is
scored on **one common mask** (pixels valid in Landsat, MODIS and every prediction).
Prints per date RMSE, bias, ubRMSE (K) and skill vs coarse only (``1 − RMSE/RMSE_coarse``).

Run from the repository root::

    python benchmarks/bench_real.py [--data ../shared/data/orleans] [--half-window 25]
                                    [--deep] [--no-synthetic] [--out table.md]

``--deep`` adds a short CPU fit of EDCSTFN per held-out date (minutes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import xstf
from xstf.fuse import fuse

ROOT = Path(__file__).resolve().parents[1]
MIDDLE = ["2017-04-09", "2018-02-23", "2018-10-21"]


def orleans_cube(data: Path) -> xr.Dataset:
    from xstf.io import open_landsat, open_modis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fine = open_landsat(data / "landsat8", band=1, units="degC")
        coarse = open_modis(data / "modis", units="degC")
        cube = xstf.build_cube(fine, coarse)
    return cube.compute()


def _score(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    e = pred[mask].astype(np.float64) - ref[mask]
    return {"rmse": float(np.sqrt(np.mean(e**2))), "bias": float(np.mean(e)),
            "ubrmse": float(np.std(e)), "n_valid": int(e.size)}  # fmt: skip


def methods_for(cube: xr.Dataset, d: pd.Timestamp, others: pd.DatetimeIndex, args) -> dict:
    """All predictions of the hidden date ``d`` (DataArrays, one date)."""
    hidden = cube.assign(fine=cube.fine.where(cube.time != np.datetime64(d)))
    w = args.half_window
    base = {
        "ESTARFM": lambda **k: xstf.estarfm(hidden, [d], others, half_window=w, **k),
        "ubESTARFM": lambda **k: xstf.estarfm(
            hidden, [d], others, half_window=w, bias_correction=True, **k
        ),
        "STARFM": lambda **k: xstf.starfm(hidden, [d], others, half_window=w, n_pairs=2, **k),
    }
    if importlib.util.find_spec("xstf.fusion.fitfc") is not None:
        from xstf.fusion.fitfc import fitfc

        base["FitFC"] = lambda **k: fitfc(hidden, [d], others, half_window=w, **k)
    out: dict[str, xr.DataArray] = {"coarse only": cube.coarse.sel(time=[d])}
    timings: dict[str, float] = {}
    for name, f in base.items():
        t0 = time.perf_counter()
        p = f().compute()
        timings[name] = time.perf_counter() - t0
        out[name] = p
        out[f"{name} anchored g=1"] = xstf.anchor.anchor(p, cube, gain=1.0)
        out[f"{name} anchored g=0.5"] = xstf.anchor.anchor(p, cube, gain=0.5)
    if args.deep:
        from xstf import models

        t0 = time.perf_counter()
        m = models.fit(hidden, "edcstfn", epochs=args.epochs, batch_size=8, patch_size=64,
                       stride=32, max_patches=64, width=8, ae_epochs=0, progress=False,
                       device="cpu", split=(0, 0))  # fmt: skip
        p = models.predict(hidden, m, targets=[d], device="cpu").compute()
        timings["EDCSTFN"] = time.perf_counter() - t0
        out["EDCSTFN"] = p
        out["EDCSTFN anchored g=1"] = xstf.anchor.anchor(p, cube, gain=1.0)
        out["EDCSTFN anchored g=0.5"] = xstf.anchor.anchor(p, cube, gain=0.5)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = fuse(hidden, [d], others, half_window=w, progress=False).compute()
    timings["fuse"] = time.perf_counter() - t0
    ch = json.loads(fused.attrs["fuse"])["choice"]
    how = "unanchored" if ch["gain"] is None else f"g={ch['gain']:g}"
    out[f"fuse default ({ch['method']} {how})"] = fused
    return out, timings


def leave_one_out(cube: xr.Dataset, dates, args, label: str) -> pd.DataFrame:
    pairs = xstf.cube.pair_dates(cube)
    rows = []
    for d in pd.DatetimeIndex(dates):
        others = pairs[pairs != d]
        preds, timings = methods_for(cube, d, others, args)
        ref = np.asarray(cube.fine.sel(time=[d]).values, dtype=np.float64)
        mask = np.isfinite(ref)
        for p in preds.values():
            mask &= np.isfinite(np.asarray(p.values))
        base = _score(np.asarray(preds["coarse only"].values), ref, mask)
        for name, p in preds.items():
            s = _score(np.asarray(p.values), ref, mask)
            rows.append({"cube": label, "date": str(d.date()), "method": name, **s,
                         "skill": 1 - s["rmse"] / base["rmse"],
                         "ub_skill": 1 - s["ubrmse"] / base["ubrmse"]})  # fmt: skip
        print(f"{label} {d.date()}: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
              flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    lines = ["| cube | date | method | RMSE | bias | ubRMSE | skill | ubRMSE skill | n |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in df.itertuples():
        lines.append(f"| {r.cube} | {r.date} | {r.method} | {r.rmse:.2f} | {r.bias:+.2f} | "
                     f"{r.ubrmse:.2f} | {r.skill:+.2f} | {r.ub_skill:+.2f} | {r.n_valid} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "orleans")
    ap.add_argument("--half-window", type=int, default=25)
    ap.add_argument("--deep", action="store_true", help="add a short EDCSTFN fit per date")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("--synthetic-size", type=int, default=200)
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args()
    frames = []
    if args.data.exists():
        cube = orleans_cube(args.data)
        frames.append(leave_one_out(cube, MIDDLE, args, "Orléans"))
    else:
        print(f"no Orléans data at {args.data}: skipped")
    if not args.no_synthetic:
        syn = xstf.datasets.synthetic(size=args.synthetic_size, days=365, seed=0).compute()
        pairs = xstf.cube.pair_dates(syn)
        held = pairs[1:-1][:: max(1, (len(pairs) - 2) // 3)][:3]
        frames.append(leave_one_out(syn, held, args, "synthetic"))
    df = pd.concat(frames, ignore_index=True)
    table = markdown(df)
    print(table)
    summary = df.groupby(["cube", "method"], sort=False)[
        ["rmse", "bias", "ubrmse", "skill", "ub_skill"]
    ].mean()
    print("\nmean over the held-out dates:")
    print(summary.to_string(float_format="%.2f"))
    for cube_name, grp in df.groupby("cube", sort=False):
        fz = grp[grp.method.str.startswith("fuse default")]
        co = grp[grp.method == "coarse only"].set_index("date")
        beats = all(r.rmse < co.loc[r.date, "rmse"] for r in fz.itertuples())
        ub_cut = 1 - fz.ubrmse.mean() / co.ubrmse.mean()
        print(f"{cube_name}: default beats coarse only in RMSE on every date: {beats}; "
              f"mean ubRMSE cut {ub_cut:.0%} (goal >= 25%)")  # fmt: skip
    if args.out:
        args.out.write_text(table + "\n\n" + summary.to_string(float_format="%.2f") + "\n")


if __name__ == "__main__":
    main()
