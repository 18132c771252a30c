"""Render the documentation's figures from the synthetic cube into docs/_static/.

The prediction shown is the "coarse only" baseline (MODIS resampled onto the 30 m grid,
what any fusion method has to beat), scored against the synthetic cube's fine truth.

Usage::

    .venv/bin/python docs/scripts/make_figures.py [--out docs/_static] [--overwrite]

Existing PNGs are kept unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import xstf
from xstf import plot

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "_static")
    parser.add_argument("--overwrite", action="store_true", help="replace existing PNGs")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--days", type=int, default=64)
    parser.add_argument("--dpi", type=int, default=90)
    args = parser.parse_args(argv)

    ds = xstf.datasets.synthetic(size=args.size, days=args.days, seed=0)
    baseline = {"coarse only": ds.coarse}
    pairs, targets = ds.stf.pairs, ds.stf.targets
    target = targets[len(targets) // 2]
    scores = xstf.metrics(baseline, ds.truth, ratio=1 / xstf.cube.resolution_ratio(ds))
    figures = {
        "overview": lambda: plot.overview(ds, n=3),
        "compare": lambda: plot.compare(ds, baseline, target, reference="truth", coarse=None),
        "scores": lambda: plot.scores(scores, ["rmse", "ssim", "bias"]),
        "scatter": lambda: plot.scatter(
            ds, "coarse", reference="truth", time=targets, label="coarse only"
        ),
        "timeseries": lambda: plot.timeseries(ds, region="cropland", predictions=None),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in figures.items():
        path = args.out / f"{name}.png"
        if path.exists() and not args.overwrite:
            print(f"kept {path} (exists; pass --overwrite to replace it)")
            continue
        fig = make()
        fig.savefig(path, dpi=args.dpi)
        plt.close(fig)  # the figures are pyplot-managed
        print(f"wrote {path}")
    print(f"cube: {args.size} x {args.size} px, {args.days} days, {len(pairs)} pairs; "
          f"compare date {target.date()}")  # fmt: skip
    table = scores.to_dataframe()[["rmse", "bias", "cc", "ssim", "psnr", "sam", "ergas", "n_valid"]]
    print("coarse only vs truth, mean over dates:")
    print(table.groupby("method").mean().round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
