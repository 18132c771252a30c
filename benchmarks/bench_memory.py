"""Peak memory of ESTARFM Zarr -> Zarr (and of scoring it) at N x N: bounded by the chunk.

A synthetic-like cube of four dates (fine/coarse pairs on the first and last, two
targets in between; smooth fields in K with a block-mean "coarse" image and 5 % NaN
holes in the fine images) is written to a Zarr store with ``chunk`` x ``chunk`` chunks,
chunk by chunk. Then, in a fresh Python process per case (peak RSS is per process):

- ``estarfm``: ``xstf.open_zarr(cube)`` -> ``xstf.estarfm`` -> ``xstf.to_zarr(pred)``;
- ``metrics``: ``xstf.metrics(open_zarr(pred).estarfm, open_zarr(cube).truth)``, the two
  target dates scored against the cube's ``truth``.

Each case prints the peak RSS of its process above the RSS after the imports and the
opening of the stores (and, for ESTARFM, a first tiny run that compiles the numba
kernel), the wall time, and the ratio of the largest scene to the
smallest (near 1: memory is bounded by the chunk, not the scene).

Usage::

    python benchmarks/bench_memory.py                       # 2000² and 4000², 1000² chunks
    python benchmarks/bench_memory.py --sizes 1000,2000 --chunk 500
    python benchmarks/bench_memory.py --cases estarfm --half-window 25

``--half-window`` (default 5) sets ESTARFM's window: the memory held per chunk grows
with the halo a little, the run time a lot (25 is the method's default; 5 keeps a
4000² run to a few minutes on a small machine). Wall times depend on the machine and its
load: re-measure before comparing. ``--threads`` sets dask's threads (default: dask's).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATES = 4


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _field(kind: str, block_info: dict | None = None) -> np.ndarray:
    """One chunk of variable ``kind`` ("fine", "coarse" or "truth"), from global indices."""

    assert block_info is not None
    (t0, t1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    t = np.arange(t0, t1, dtype=np.float64)[:, None, None]
    y = np.arange(y0, y1, dtype=np.float64)[None, :, None]
    x = np.arange(x0, x1, dtype=np.float64)[None, None, :]

    def smooth(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return 5.0 * np.sin(2 * np.pi * yy / 700.0) * np.cos(2 * np.pi * xx / 900.0)

    if kind == "coarse":  # the smooth field at the centre of 33 x 33 px "MODIS" pixels
        c = 33
        out = 290.0 + 1.0 * t + 0.8 + smooth((y // c) * c + c // 2, (x // c) * c + c // 2)
        return np.broadcast_to(out, (t1 - t0, y1 - y0, x1 - x0)).astype(np.float32)
    rng = np.random.default_rng([t0, y0, x0, 7])
    fine = 290.0 + 1.0 * t + smooth(y, x) + 0.4 * np.sin(x / 5.0) * np.cos(y / 7.0)
    fine = fine + rng.normal(0.0, 0.3, size=(t1 - t0, y1 - y0, x1 - x0))
    if kind == "fine":
        fine[rng.random(fine.shape) < 0.05] = np.nan
        fine[((t == 1) | (t == 2)) & (fine == fine)] = np.nan  # the targets: no Landsat
    return fine.astype(np.float32)


def _write_cube(size: int, chunk: int, path: Path) -> None:
    import dask.array as dsa
    import pandas as pd
    import rioxarray  # noqa: F401
    import xarray as xr

    import xstf

    chunks = ((1,) * DATES, *[tuple(min(chunk, size - i) for i in range(0, size, chunk))] * 2)

    def var(kind: str) -> dsa.Array:
        f = functools.partial(_field, kind)
        return dsa.map_blocks(f, chunks=chunks, dtype=np.float32, meta=np.array((), np.float32))

    coords = {
        "time": pd.date_range("2021-06-01", periods=DATES, freq="8D"),
        "y": 5_300_000.0 - 30.0 * np.arange(size) - 15.0,
        "x": 430_000.0 + 30.0 * np.arange(size) + 15.0,
    }
    dims = ("time", "y", "x")
    ds = xr.Dataset(
        {
            name: xr.DataArray(var(name), dims=dims, attrs={"units": "K"})
            for name in ("fine", "coarse", "truth")
        },
        coords=coords,
        attrs={"fine_resolution": 30.0, "coarse_resolution": 1000.0},
    )
    ds = ds.rio.write_crs("EPSG:32631")
    xstf.to_zarr(ds, path)


def _child(case: str, size: int, work: Path, half_window: int, threads: int | None) -> None:
    import dask

    import xstf

    if threads:
        dask.config.set(scheduler="threads", num_workers=threads)
    cube = work / f"cube{size}.zarr"
    pred_store = work / f"estarfm{size}.zarr"
    ds = xstf.open_zarr(cube)
    t0 = time.perf_counter()
    if case == "estarfm":
        small = xstf.datasets.synthetic(size=32, days=20, seed=0)  # compile the kernel first
        xstf.estarfm(small, targets=small.time[5], half_window=half_window)
        base = _rss_mb()
        pred = xstf.estarfm(ds, targets=ds.time[1:3], half_window=half_window)
        if pred_store.exists():
            shutil.rmtree(pred_store)
        xstf.to_zarr(pred, pred_store)
        value = float(xstf.open_zarr(pred_store)["estarfm"].isel(y=0, x=slice(0, 8)).mean())
    else:
        pred = xstf.open_zarr(pred_store)["estarfm"]
        base = _rss_mb()
        m = xstf.metrics(pred, ds.truth, units="K").compute()
        value = float(m.rmse.values.ravel()[0])
    seconds = time.perf_counter() - t0
    out = {"case": case, "size": size, "peak_mb": _rss_mb() - base, "seconds": seconds}
    print(json.dumps(out | {"value": value}))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", default="2000,4000", help="pixels a side, comma-separated")
    ap.add_argument("--chunk", type=int, default=1000, help="Zarr/dask chunk (pixels a side)")
    ap.add_argument("--cases", default="estarfm,metrics", help="estarfm and/or metrics")
    ap.add_argument("--half-window", type=int, default=5, help="ESTARFM half window (px)")
    ap.add_argument("--threads", type=int, default=None, help="dask threads (default: dask's)")
    ap.add_argument("--work", default=None, help="folder for the stores (default: a temp dir)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        work = Path(args.work)
        if args.child == "write":
            _write_cube(args.size, args.chunk, work / f"cube{args.size}.zarr")
        else:
            _child(args.child, args.size, work, args.half_window, args.threads)
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="xstf-bench-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = [c.strip() for c in args.cases.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    base = [sys.executable, __file__, "--work", str(work), "--chunk", str(args.chunk)]
    base += ["--half-window", str(args.half_window)]
    base += [] if args.threads is None else ["--threads", str(args.threads)]
    rows: dict[str, list[dict]] = {c: [] for c in cases}
    try:
        for size in sizes:
            if not (work / f"cube{size}.zarr").exists():
                subprocess.run([*base, "--child", "write", "--size", str(size)], check=True)
            # the metrics case scores the ESTARFM store: make it first if it is missing
            extra = "metrics" in cases and "estarfm" not in cases
            extra = extra and not (work / f"estarfm{size}.zarr").exists()
            for case in (["estarfm"] if extra else []) + cases:
                cmd = [*base, "--child", case, "--size", str(size)]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode:
                    sys.exit(res.stderr)
                row = json.loads(res.stdout.strip().splitlines()[-1])
                if case in rows:
                    rows[case].append(row)
                    print(
                        f"{case:>8} {size:>5}² ({args.chunk}² chunks): peak RSS "
                        f"+{row['peak_mb']:.0f} MB, {row['seconds']:.1f} s",
                        flush=True,
                    )
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    for case, r in rows.items():
        if len(r) > 1:
            print(f"{case}: ratio largest / smallest {r[-1]['peak_mb'] / r[0]['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
