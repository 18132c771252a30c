"""Write a lazily computed fused cube from dask to Zarr without loading it whole.

Prints the cube size, the peak memory the write needed (Python/numpy allocations traced
with :mod:`tracemalloc`, and the process's peak RSS growth), and the wall time.
Run from the repository root::

    python benchmarks/bench_export.py                      # 48 dates of 2048 x 2048 (805 MB)
    python benchmarks/bench_export.py --days 96 --size 4096
    python benchmarks/bench_export.py --estarfm --size 256 --days 48   # a real ESTARFM result
    python benchmarks/bench_export.py --size 1024 --overwrite   # + a safe overwrite (swap)

The default cube is a "fused" stand-in computed chunk by chunk (a smooth seasonal field
plus noise, float32 K with NaN holes), so the numbers measure the writer, not a fusion
method; ``--estarfm`` writes an actual ESTARFM prediction of the synthetic cube.
Wall times depend on the machine and on other load: re-measure before comparing.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401
import xarray as xr

import xstf


def _block(block_info=None):
    info = block_info[None]
    (t0, t1), (y0, _), (x0, _) = info["array-location"]
    shape = info["chunk-shape"]
    rng = np.random.default_rng(t0 * 1_000_003 + y0 * 1009 + x0)
    days = np.arange(t0, t1)[:, None, None]
    field = 290.0 + 10.0 * np.sin(2 * np.pi * days / 365.0) + rng.normal(0.0, 1.5, size=shape)
    field[rng.random(shape) < 0.05] = np.nan
    return field.astype(np.float32)


def fused_standin(size: int, days: int, chunk: int) -> xr.DataArray:
    data = dsa.map_blocks(
        _block,
        chunks=((1,) * days, *[tuple(min(chunk, size - i) for i in range(0, size, chunk))] * 2),
        dtype=np.float32,
        meta=np.array((), np.float32),
    )
    return xr.DataArray(
        data,
        dims=("time", "y", "x"),
        name="fused",
        coords={
            "time": pd.date_range("2021-01-01", periods=days, freq="D"),
            "y": 5_320_000.0 - 30.0 * np.arange(size) - 15,
            "x": 430_000.0 + 30.0 * np.arange(size) + 15,
        },
        attrs={"units": "K", "standard_name": "surface_temperature"},
    ).rio.write_crs("EPSG:32631")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--days", type=int, default=48)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument(
        "--estarfm", action="store_true", help="write an ESTARFM result of the synthetic cube"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overwrite", action="store_true", help="also time a safe overwrite")
    args = p.parse_args()

    if args.estarfm:
        ds = xstf.datasets.synthetic(
            size=args.size, days=args.days, chunks={"time": -1, "y": 128, "x": 128}
        )
        fused = xstf.estarfm(ds, half_window=10).rename("fused")
    else:
        fused = fused_standin(args.size, args.days, args.chunk)
    nbytes = fused.size * fused.dtype.itemsize
    chunk_bytes = int(np.prod([max(c) for c in fused.chunks])) * fused.dtype.itemsize
    store = Path(tempfile.mkdtemp()) / "fused.zarr"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        xstf.to_zarr(fused, store)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    back = xstf.export.open_zarr(store)
    assert back.sizes == fused.sizes
    print(f"cube           : {dict(fused.sizes)} float32 = {nbytes / 2**20:,.0f} MiB "
          f"({'ESTARFM' if args.estarfm else 'stand-in'}), chunks {chunk_bytes / 2**20:.1f} MiB, "
          f"{args.threads} threads")  # fmt: skip
    print(f"traced peak    : {peak / 2**20:,.0f} MiB ({peak / nbytes:.1%} of the cube)")
    print(f"peak RSS growth: {max(rss1 - rss0, 0):,.0f} MiB (peak RSS {rss1:,.0f} MiB)")
    print(f"wall time      : {wall:.1f} s ({nbytes / 2**20 / wall:,.0f} MiB/s)")
    if args.overwrite:  # written to a temporary sibling, marked complete, swapped in
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=args.threads):
            xstf.to_zarr(fused, store, overwrite=True)
        again = time.perf_counter() - t0
        assert xstf.export.open_zarr(store).sizes == fused.sizes
        print(f"overwrite      : {again:.1f} s ({again / wall:.2f} x the first write)")
    shutil.rmtree(store.parent)


if __name__ == "__main__":
    main()
