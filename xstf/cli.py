"""Command line: ``xstf demo`` (the README's first command) and ``xstf benchmark``.

``xstf benchmark`` checks its arguments (method names, the report folder, the input
paths) before reading any data, runs :func:`xstf.experiment.run` and writes the report
with :func:`xstf.report.write_report`. The input is the built-in synthetic cube, a Zarr
cube, or any site given as a Landsat and a MODIS folder in the layouts
:func:`xstf.io.open_landsat` and :func:`xstf.io.open_modis` read (``--orleans DIR`` is
the shortcut for the Orléans data: ``DIR/landsat8`` and ``DIR/modis``, in °C).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_benchmark_arguments", "benchmark", "check_benchmark_args", "main", "run_demo"]

#: Default methods of ``xstf benchmark``.
DEFAULT_METHODS = "estarfm,starfm,edcstfn"


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
    epochs: int = 3,
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
        EDCSTFN training epochs (on at most 32 patches of 32 px: a demo, not a fit to
        judge the model by).
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

    # method labels as everywhere in xstf: "coarse_only" is the coarse image on the fine grid
    predictions: dict[str, xr.DataArray] = {"coarse_only": ds.coarse.sel(time=targets)}
    t0 = _step("ESTARFM (numba kernel over dask chunks)")
    predictions["estarfm"] = xstf.estarfm(
        ds.chunk({"y": size // 2, "x": size // 2}), targets=targets
    ).compute()
    _done(t0)

    if deep:
        t0 = _step(f"EDCSTFN: a short fit ({epochs} epochs) on the cube's pairs, then prediction")
        # A small configuration (32 patches of 32 px, one auto-encoder pass, the training
        # patches as validation: no validation date) so that the whole demo runs in about
        # a minute on 2 CPU cores; `xstf benchmark` uses the model's defaults.
        # No test split here: the demo scores target dates against the synthetic truth.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="the split has no validation date")
            model = ds.stf.fit(
                "edcstfn", epochs=epochs, seed=seed, patch_size=32, stride=32, max_patches=32,
                batch_size=8, ae_epochs=1, split=(0.0, 0.0),
            )  # fmt: skip
        predictions["edcstfn"] = ds.stf.predict(model, targets=targets).compute()
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
    best = scores["rmse"].sel({"method": "estarfm"}).idxmin("time").values
    fig = plot.compare(
        ds, {k: v for k, v in predictions.items() if k != "coarse_only"}, best, reference="truth"
    )
    written["compare_png"] = out / "compare.png"
    fig.savefig(written["compare_png"], dpi=110, bbox_inches="tight")
    print(f"   wrote {written['compare_png']}")
    _done(t0)

    t0 = _step("Fused cube to Zarr")
    fused = xr.Dataset({k: v for k, v in predictions.items() if k != "coarse_only"})
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


class _BenchmarkError(ValueError):
    """A bad ``xstf benchmark`` argument, found before any work."""


def add_benchmark_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of ``xstf benchmark``.

    Examples
    --------
    >>> ap = argparse.ArgumentParser()
    >>> add_benchmark_arguments(ap)
    >>> ap.parse_args(["--synthetic", "--out", "report"]).methods
    'estarfm,starfm,edcstfn'
    """
    from .protocol import METHODS

    src = ap.add_argument_group("input (one of)")
    src.add_argument("--synthetic", action="store_true", help="the built-in synthetic cube")
    src.add_argument("--cube", metavar="PATH.zarr", help="a cube stored in Zarr")
    src.add_argument(
        "--landsat",
        metavar="DIR",
        help="Landsat LST files (a folder or a glob) read by xstf.io.open_landsat; needs --modis",
    )
    src.add_argument(
        "--modis",
        metavar="DIR",
        help="MODIS LST files (a folder or a glob) read by xstf.io.open_modis; needs --landsat",
    )
    src.add_argument(
        "--orleans",
        metavar="DIR",
        help="shortcut for --landsat DIR/landsat8 --modis DIR/modis --units degC",
    )
    listed = ", ".join(f"{k} ({v.description})" if v.description else k for k, v in METHODS.items())
    ap.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated methods, any of: {listed}; coarse_only is always scored",
    )
    ap.add_argument("--out", required=True, help="report folder")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing report")
    ap.add_argument(
        "--test",
        type=float,
        default=None,
        help="share of pairs held out (default: the survey's 8/51)",
    )
    ap.add_argument("--reference", default=None, help="variable to score against (default: fine)")
    ap.add_argument(
        "--per-method-masks",
        action="store_true",
        help="score each method on its own valid pixels instead of one common mask per date",
    )
    ap.add_argument(
        "--units",
        default=None,
        help="--landsat/--modis: units of scaled files without a units tag (degC or K)",
    )
    ap.add_argument("--size", type=int, default=256, help="synthetic: pixels a side")
    ap.add_argument("--days", type=int, default=365, help="synthetic: number of days")
    ap.add_argument("--cloud-fraction", type=float, default=0.2, help="synthetic: cloud fraction")
    ap.add_argument(
        "--epochs", type=int, default=None, help="deep models: training epochs (model default)"
    )
    ap.add_argument(
        "--half-window",
        type=int,
        default=None,
        help="ESTARFM/STARFM half window in pixels (method default)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic cube and models")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")


def check_benchmark_args(args: argparse.Namespace) -> dict[str, Any]:
    """Check ``xstf benchmark``'s arguments before any data is read.

    Returns the checked method names, per-method options and the input to read.

    Raises
    ------
    ValueError
        An unknown method, a missing input or input folder, ``--landsat`` without
        ``--modis``, a test share out of (0, 1).
    FileExistsError
        ``--out`` holds a report and ``--overwrite`` is not given.

    Examples
    --------
    >>> ap = argparse.ArgumentParser()
    >>> add_benchmark_arguments(ap)
    >>> check_benchmark_args(ap.parse_args(["--synthetic", "--methods", "estarfm", "--out", "r"]))["methods"]
    ['estarfm']
    """
    from .protocol import CLASSICAL, check_methods

    try:
        methods = check_methods(args.methods.split(","))
    except ValueError as err:
        raise _BenchmarkError(f"--methods: {err}") from None
    if not methods:
        raise _BenchmarkError("--methods names no method (coarse_only is always scored)")
    report = Path(args.out) / "report.md"
    if report.exists() and not args.overwrite:
        raise FileExistsError(
            f"{report} exists: choose another --out folder or pass --overwrite "
            "(overwrite=True from Python)"
        )
    if args.test is not None and not 0 < args.test < 1:
        raise _BenchmarkError(f"--test is the share of pairs held out, in (0, 1); got {args.test}")
    if args.orleans:
        if args.landsat or args.modis:
            raise _BenchmarkError("give either --orleans DIR or --landsat DIR --modis DIR")
        folder = Path(args.orleans)
        source = {
            "landsat": str(folder / "landsat8"),
            "modis": str(folder / "modis"),
            "units": args.units or "degC",
        }
    elif args.landsat or args.modis:
        if not (args.landsat and args.modis):
            raise _BenchmarkError("--landsat and --modis go together: give both folders")
        source = {"landsat": args.landsat, "modis": args.modis, "units": args.units}
    elif args.cube:
        source = {"cube": args.cube}
    elif args.synthetic:
        source = {"synthetic": True}
    else:
        raise _BenchmarkError(
            "give an input: --synthetic, --cube PATH.zarr, --landsat DIR --modis DIR, or "
            "--orleans DIR"
        )
    if sum(bool(v) for v in (args.synthetic, args.cube, args.landsat or args.orleans)) > 1:
        raise _BenchmarkError("give one input: --synthetic, --cube, or --landsat/--modis")
    for key in ("cube", "landsat", "modis"):
        path = source.get(key)
        if path and not any(c in str(path) for c in "*?[") and not Path(path).exists():
            flag = "--orleans" if args.orleans else f"--{key}"
            raise _BenchmarkError(f"{flag}: {path} does not exist")
    options: dict[str, dict[str, Any]] = {}
    for m in methods:
        if m in CLASSICAL and args.half_window is not None:
            options[m] = {"half_window": args.half_window}
        elif m not in CLASSICAL and args.epochs is not None:
            options[m] = {"epochs": args.epochs}
    return {"methods": methods, "options": options, "source": source}


def _load_cube(args: argparse.Namespace, source: dict[str, Any]) -> Any:
    if source.get("synthetic"):
        from .datasets import synthetic

        return synthetic(
            size=args.size, days=args.days, seed=args.seed, cloud_fraction=args.cloud_fraction
        )
    if source.get("cube"):
        from .export import open_zarr

        return open_zarr(source["cube"])
    from .build import build_cube
    from .io import open_landsat, open_modis

    fine = open_landsat(source["landsat"], band=1, units=source["units"])
    coarse = open_modis(source["modis"], units=source["units"])
    return build_cube(fine, coarse)


def benchmark(args: argparse.Namespace) -> int:
    """Run ``xstf benchmark`` with parsed arguments; returns the exit status.

    Every argument is checked (:func:`check_benchmark_args`) before the cube is read;
    the time printed at the end is the whole run's.

    Examples
    --------
    >>> ap = argparse.ArgumentParser()
    >>> add_benchmark_arguments(ap)
    >>> benchmark(ap.parse_args(["--synthetic", "--size", "64", "--out", "report"]))  # doctest: +SKIP
    0
    """
    import pandas as pd

    from .protocol import run
    from .report import write_report

    t0 = time.perf_counter()
    checked = check_benchmark_args(args)
    ds = _load_cube(args, checked["source"])
    result = run(
        ds, checked["methods"], test=args.test, reference=args.reference,
        options=checked["options"], seed=args.seed, progress=not args.quiet,
        common_mask=not args.per_method_masks, command=getattr(args, "command_line", None),
    )  # fmt: skip
    report = write_report(result, args.out, ds, overwrite=args.overwrite)
    with pd.option_context("display.width", 140, "display.precision", 3):
        print(result.table().to_string())
    for m, msgs in result.info.get("warnings", {}).items():
        for msg in msgs:
            print(f"xstf benchmark: warning from {m}: {msg}", file=sys.stderr)
    print(
        f"\nxstf benchmark: report written to {report}; whole run {time.perf_counter() - t0:.0f} s"
    )
    return 0


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

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        prog="xstf", description="Spatio-temporal fusion of LST on xarray."
    )
    ap.add_argument("--version", action="version", version=f"xstf {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    d = sub.add_parser(
        "demo", help="run the demo on the built-in synthetic cube", formatter_class=fmt
    )
    d.add_argument("--out", default="out/demo", help="output folder (its demo files are replaced)")
    d.add_argument("--size", type=int, default=160, help="pixels a side (default 160)")
    d.add_argument("--days", type=int, default=240, help="number of days (default 240)")
    d.add_argument("--cloud-fraction", type=float, default=0.2, help="mean cloud cover (0.2)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--targets", type=int, default=6, help="target dates to fuse and score")
    d.add_argument("--epochs", type=int, default=3, help="EDCSTFN training epochs")
    d.add_argument("--no-deep", action="store_true", help="skip EDCSTFN (no PyTorch needed)")
    d.set_defaults(func=_demo)
    b = sub.add_parser(
        "benchmark",
        help="run the survey's experiment and write a report",
        description="Leave-one-out by date: every method predicts held-out pair dates from "
        "the other pairs; scores against the hidden Landsat images, all methods on one "
        "common mask per date, with the coarse_only baseline and skill scores.",
        formatter_class=fmt,
    )
    b.set_defaults(func=benchmark)
    add_benchmark_arguments(b)
    args = ap.parse_args(argv)
    args.command_line = shlex.join(["xstf", *argv])
    from .errors import CubeError

    try:
        return int(args.func(args))
    except (CubeError, FileExistsError, _BenchmarkError) as err:  # a message, not a traceback
        print(f"xstf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
