"""Compare the synthetic cube's MODIS-vs-Landsat statistics with the real Orléans pairs.

Run: ``.venv/bin/python benchmarks/calibrate_synthetic.py [--data ../shared/data/orleans]``

For every pair date it prints, on the fine grid:

- ``rmse`` / ``bias``: coarse (MODIS resampled onto the 30 m grid) minus fine (Landsat), K;
- ``cc``: pixel correlation of the two;
- ``within``: share of the fine image's variance that lies inside 1 km cells
  (within-cell variance / total variance) — the detail fusion has to invent;
- ``cc_1km``: correlation of 1 km cell means of fine and of coarse;
- ``std_fine``: spatial standard deviation of the fine image, K.

and a markdown table of the median and range of each for the real and the synthetic
data (the table pasted in ``docs/calibration.md``).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import rioxarray
import xarray as xr
from rasterio.enums import Resampling

import xstf
from xstf.datasets import SyntheticParams, _static

MODIS_SPHERE = "+proj=sinu +R=6371007.181 +nadgrids=@null +wktext +units=m +no_defs"


def stats(fine: np.ndarray, coarse: np.ndarray, cell: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(fine) & np.isfinite(coarse)
    f, c, k = fine[ok], coarse[ok], cell[ok]
    d = c - f
    counts = np.bincount(k)
    keep = counts >= 0.5 * np.median(counts[counts > 0])  # full-ish cells only
    fm = np.bincount(k, weights=f) / np.maximum(counts, 1)
    cm = np.bincount(k, weights=c) / np.maximum(counts, 1)
    within = np.sum((f - fm[k]) ** 2) / np.sum((f - f.mean()) ** 2)
    return {
        "rmse": float(np.sqrt(np.mean(d**2))),
        "bias": float(d.mean()),
        "cc": float(np.corrcoef(f, c)[0, 1]),
        "within": float(within),
        "cc_1km": float(np.corrcoef(fm[keep], cm[keep])[0, 1]),
        "std_fine": float(f.std()),
    }


def real_rows(folder: Path) -> list[dict]:
    rows = []
    for lf in sorted((folder / "landsat8").glob("LC08_*.tif")):
        date = pd.Timestamp(lf.stem.split("_")[-1])
        mf = folder / "modis" / f"{date:%Y_%m_%d}.tif"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fine = rioxarray.open_rasterio(lf, masked=True).isel(band=0).astype("float64")
            modis = rioxarray.open_rasterio(mf, masked=True).isel(band=0).astype("float64")
        modis = modis.rio.write_crs(MODIS_SPHERE)
        coarse = modis.rio.reproject_match(fine, resampling=Resampling.bilinear)
        ids = xr.DataArray(
            np.arange(modis.size, dtype="float64").reshape(modis.shape),
            coords=modis.coords,
            dims=modis.dims,
        ).rio.write_crs(MODIS_SPHERE)
        cell = ids.rio.reproject_match(fine, resampling=Resampling.nearest).values
        f = fine.values + 273.15
        c = np.where(np.isfinite(coarse.values), coarse.values + 273.15, np.nan)
        good = np.isfinite(cell)
        c = np.where(good, c, np.nan)
        rows.append(
            {
                "source": "Orléans",
                "date": str(date.date()),
                **stats(f, c, np.nan_to_num(cell).astype(int)),
            }
        )
    return rows


def synthetic_rows(size: int, days: int, seed: int) -> list[dict]:
    ds = xstf.datasets.synthetic(size=size, days=days, seed=seed, cloud_fraction=0.0)
    params = SyntheticParams(**__import__("json").loads(ds.attrs["synthetic_parameters"]))
    cell = _static(params)["cell"].reshape(size, size)
    rows = []
    for t in ds.time.values[ds.landsat.values]:
        s = stats(ds.fine.sel(time=t).values, ds.coarse.sel(time=t).values, cell)
        rows.append({"source": "synthetic", "date": str(pd.Timestamp(t).date()), **s})
    return rows


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=here.parent.parent / "shared" / "data" / "orleans")
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = synthetic_rows(args.size, args.days, args.seed)
    if args.data.exists():
        rows = real_rows(args.data) + rows
    else:
        print(f"(no real data at {args.data}: synthetic only)")
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 140)
    print(df.round(3).to_string(index=False))
    cols = ["rmse", "bias", "cc", "within", "cc_1km", "std_fine"]
    print("\n| statistic | " + " | ".join(df.source.unique()) + " |")
    print("| --- |" + " --- |" * df.source.nunique())
    for col in cols:
        cells = []
        for src in df.source.unique():
            v = df.loc[df.source == src, col]
            cells.append(f"{v.median():.2f} ({v.min():.2f} … {v.max():.2f})")
        print(f"| {col} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
