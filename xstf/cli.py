"""Command line: ``xstf demo`` (the README's first command) and ``xstf benchmark``."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "run_demo"]


def _step(msg: str) -> float:
    print(f"\n== {msg}", flush=True)
    return time.perf_counter()


def _done(t0: float) -> None:
    print(f"   done in {time.perf_counter() - t0:.1f} s", flush=True)


def run_demo(
    out: Path,
    size: int = 160,
    days: int = 240,
    seed: int = 0,
    n_targets: int = 6,
    epochs: int = 4,
    deep: bool = True,
    cloud_fraction: float = 0.2,
) -> dict[str, Path]:
    """The demo: synthetic cube -> ESTARFM and a small EDCSTFN -> scores -> figures -> Zarr.

    Parameters
    ----------
    out : Path
        Output folder; the demo replaces the files it wrote there on an earlier run.
    size, days, seed : int
        Synthetic cube size (pixels a side), number of days and seed.
    n_targets : int
        How many target dates to fuse and score (spread over the cube's targets).
    epochs : int
        EDCSTFN training epochs.
    deep : bool
        Also fit and predict with EDCSTFN (needs PyTorch).
    cloud_fraction : float
        Mean cloud cover of the synthetic cube.

    Returns
    -------
    dict of str to Path
        What was written: ``cube_png``, ``compare_png``, ``scores_csv``, ``zarr``.

    Examples
    --------
    >>> from pathlib import Path
    >>> import tempfile
    >>> paths = run_demo(Path(tempfile.mkdtemp()), size=48, days=40, n_targets=2, deep=False)  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd
    import xarray as xr

    import xstf
    from xstf import plot

    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    t0 = _step(f"Building the synthetic cube ({size} x {size} pixels, {days} days, seed {seed})")
    ds = xstf.datasets.synthetic(
        size=size, days=days, seed=seed, cloud_fraction=cloud_fraction
    ).stf.validate()
    print(ds.stf.summary())
    _done(t0)

    t0 = _step("Figure of the cube")
    fig = plot.overview(ds)
    written["cube_png"] = out / "cube.png"
    fig.savefig(written["cube_png"], dpi=110, bbox_inches="tight")
    print(f"   wrote {written['cube_png']}")
    _done(t0)

    targets = ds.stf.targets
    pick = np.unique(
        np.linspace(0, len(targets) - 1, min(n_targets, len(targets))).round().astype(int)
    )
    targets = targets[pick]
    print(f"\n   scoring {len(targets)} target dates: {', '.join(str(d.date()) for d in targets)}")

    predictions: dict[str, xr.DataArray] = {"coarse only": ds.coarse.sel(time=targets)}
    t0 = _step("ESTARFM (numba kernel over dask chunks)")
    predictions["ESTARFM"] = xstf.estarfm(
        ds.chunk({"y": size // 2, "x": size // 2}), targets=targets
    ).compute()
    _done(t0)

    if deep:
        t0 = _step(f"EDCSTFN: a short fit ({epochs} epochs) on the cube's pairs, then prediction")
        # A small, fast configuration (48 px patches, at most 96 per epoch) so that the demo
        # stays within minutes on 2 CPU cores; `xstf benchmark` uses the survey's 95 px / 20.
        # No test split here: the demo scores target dates against the synthetic truth.
        model = ds.stf.fit(
            "edcstfn", epochs=epochs, seed=seed, patch_size=48, stride=24, max_patches=96,
            batch_size=8, split=(0.2, 0.0),
        )  # fmt: skip
        predictions["EDCSTFN"] = ds.stf.predict(model, targets=targets).compute()
        _done(t0)

    t0 = _step("Scores against the fine truth (degC)")
    truth = ds.truth.sel(time=targets)
    scores = xstf.metrics(
        xr.Dataset(predictions), truth, ratio=1.0 / xstf.cube.resolution_ratio(ds)
    )
    table = scores.to_dataframe()
    mean = table.groupby("method")[
        ["rmse", "mae", "bias", "cc", "ssim", "psnr", "sam", "ergas"]
    ].mean()
    with pd.option_context("display.width", 120, "display.precision", 3):
        print("mean over the target dates:")
        print(mean.to_string())
    written["scores_csv"] = out / "scores.csv"
    table.to_csv(written["scores_csv"])
    print(f"   wrote {written['scores_csv']}")
    _done(t0)

    t0 = _step("Comparison figure (best-scored ESTARFM date)")
    best = scores["rmse"].sel({"method": "ESTARFM"}).idxmin("time").values
    fig = plot.compare(
        ds, {k: v for k, v in predictions.items() if k != "coarse only"}, best, reference="truth"
    )
    written["compare_png"] = out / "compare.png"
    fig.savefig(written["compare_png"], dpi=110, bbox_inches="tight")
    print(f"   wrote {written['compare_png']}")
    _done(t0)

    t0 = _step("Fused cube to Zarr")
    fused = xr.Dataset(
        {k.lower().replace(" ", "_"): v for k, v in predictions.items() if k != "coarse only"}
    )
    fused = fused.rio.write_crs(ds.rio.crs)
    written["zarr"] = out / "fused.zarr"
    if written["zarr"].exists():  # the demo's own output from an earlier run
        shutil.rmtree(written["zarr"])
    xstf.to_zarr(fused, written["zarr"])
    print(f"   wrote {written['zarr']} ({', '.join(fused.data_vars)}; {fused.sizes['time']} dates)")
    _done(t0)
    return written


def _demo(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run_demo(
        Path(args.out), args.size, args.days, args.seed, args.targets, args.epochs,
        not args.no_deep, args.cloud_fraction,
    )  # fmt: skip
    print(f"\nxstf demo finished in {time.perf_counter() - t0:.0f} s; outputs in {args.out}/")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from . import experiment

    return experiment.main(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xstf`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    """
    from . import __version__

    ap = argparse.ArgumentParser(
        prog="xstf", description="Spatio-temporal fusion of LST on xarray."
    )
    ap.add_argument("--version", action="version", version=f"xstf {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the demo on the built-in synthetic cube")
    d.add_argument("--out", default="out/demo", help="output folder (its demo files are replaced)")
    d.add_argument("--size", type=int, default=160, help="pixels a side (default 160)")
    d.add_argument("--days", type=int, default=240, help="number of days (default 240)")
    d.add_argument("--cloud-fraction", type=float, default=0.2, help="mean cloud cover (0.2)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--targets", type=int, default=6, help="target dates to fuse and score")
    d.add_argument("--epochs", type=int, default=4, help="EDCSTFN training epochs")
    d.add_argument("--no-deep", action="store_true", help="skip EDCSTFN (no PyTorch needed)")
    d.set_defaults(func=_demo)
    b = sub.add_parser("benchmark", help="run the survey's experiment and write a report")
    b.set_defaults(func=_benchmark)
    from . import experiment

    experiment.add_arguments(b)
    args = ap.parse_args(argv)
    from .errors import CubeError

    try:
        return int(args.func(args))
    except (CubeError, FileExistsError) as err:  # a user's mistake: a message, not a traceback
        print(f"xstf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
