"""ESTARFM (and optionally EDCSTFN prediction) from Zarr to Zarr: threaded vs 1 vs 2 workers.

Run: ``.venv/bin/python benchmarks/bench_distributed.py [--size 950 --targets 8] [--deep]``

Writes a synthetic cube to a Zarr store, then fuses ``--targets`` dates into
another store three ways — the threaded scheduler, a ``LocalCluster`` with one
worker, and one with two workers (one thread each) — checks that all three give
the same numbers, and prints wall times and the 2-worker speed-up.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

import xstf


def fuse_to_zarr(src: Path, dst: Path, targets, pairs, deep_model=None) -> float:
    if dst.exists():
        shutil.rmtree(dst)
    ds = xr.open_zarr(src, consolidated=False)
    t0 = time.perf_counter()
    if deep_model is None:
        fused = xstf.estarfm(ds, targets=targets, pairs=pairs)
    else:
        fused = xstf.models.predict(ds, deep_model, targets=targets)
    xstf.to_zarr(fused.to_dataset(name="fused"), dst)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=950)
    ap.add_argument("--days", type=int, default=160)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=475, help="spatial chunk size")
    ap.add_argument("--deep", action="store_true", help="also time EDCSTFN prediction")
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    tmp = Path(tempfile.mkdtemp(prefix="xstf-bench-"))
    try:
        cube = xstf.datasets.synthetic(size=args.size, days=args.days, cloud_fraction=0.1)
        cube = cube.chunk({"time": 1, "y": args.chunk, "x": args.chunk})
        cube[["fine", "coarse", "truth"]].drop_vars(["event", "landsat"]).to_zarr(
            tmp / "cube.zarr", mode="w", consolidated=False
        )
        # Pair and target dates are found once (a scan of the whole cube), as a user would,
        # so that the timings measure the fusion and its Zarr I/O.
        targets, pairs = cube.stf.targets, cube.stf.pairs
        targets = targets[np.linspace(0, len(targets) - 1, args.targets).round().astype(int)]
        print(f"cube {args.size}² × {args.days} days in Zarr; fusing {len(targets)} dates, "
              f"chunks {args.chunk}²")  # fmt: skip
        jobs = [("estarfm", None)]
        if args.deep:
            model = xstf.models.fit(cube, "edcstfn", epochs=1, progress=False)
            model.save(tmp / "edcstfn.pt")
            jobs.append(("edcstfn", tmp / "edcstfn.pt"))
        for name, model in jobs:
            times, results = {}, {}
            fuse_to_zarr(
                tmp / "cube.zarr", tmp / "warm.zarr", targets[:1], model
            )  # compile / cache
            times["threaded"] = fuse_to_zarr(
                tmp / "cube.zarr", tmp / "threaded.zarr", targets, model
            )
            results["threaded"] = xr.open_zarr(tmp / "threaded.zarr").fused.values
            for n in (1, 2):
                with (
                    LocalCluster(n_workers=n, threads_per_worker=1, processes=True) as cl,
                    Client(cl),
                ):
                    fuse_to_zarr(tmp / "cube.zarr", tmp / "warm.zarr", targets[:1], pairs, model)
                    times[f"{n} worker(s)"] = fuse_to_zarr(
                        tmp / "cube.zarr", tmp / f"w{n}.zarr", targets, pairs, model
                    )
                results[f"{n} worker(s)"] = xr.open_zarr(tmp / f"w{n}.zarr").fused.values
            same = all(
                np.array_equal(results["threaded"], r, equal_nan=True) for r in results.values()
            )
            print(f"\n{name}: identical results across schedulers: {same}")
            for k, v in times.items():
                print(
                    f"  {k:>12}: {v:7.2f} s  ({len(targets) * args.size**2 / v / 1e6:.2f} Mpixel/s)"
                )
            print(f"  speed-up 2 workers vs 1: {times['1 worker(s)'] / times['2 worker(s)']:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
