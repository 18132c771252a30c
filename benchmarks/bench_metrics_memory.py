"""Peak memory of ``xstf.metrics`` on two dates of N x N pixels: bounded by the tile, not N.

Each size runs in a fresh Python process (peak RSS is per process). The prediction and
the reference are lazy dask arrays (smooth random fields in K, 1000 x 1000 chunks,
generated chunk by chunk), as when scoring a Zarr store; ``xstf.metrics`` scores them
by tile with a 5 px halo. ``--whole`` instead scores each date as one image with the
whole-image kernel (what ``metrics`` did before scoring by tile), for comparison.

Usage::

    python benchmarks/bench_metrics_memory.py            # 2000² and 4000², by tile
    python benchmarks/bench_metrics_memory.py --whole    # the same with whole images

Prints, per size, the peak RSS of the process above its RSS after the imports, and
the ratio of the largest size to the smallest (near 1: memory does not grow with the
scene).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _child(size: int, whole: bool, chunk: int, data_range: float | None) -> None:
    import dask.array as dsa
    import numpy as np
    import pandas as pd
    import xarray as xr

    import xstf
    from xstf import scoring

    base = _rss_mb()

    def noise(seed: int) -> dsa.Array:
        rs = dsa.random.RandomState(seed)
        return rs.standard_normal((2, size, size), chunks=(1, chunk, chunk)).astype("float32")

    ref = 290.0 + 3.0 * noise(0)
    pred = ref + 0.5 + 0.3 * noise(1)
    coords = {
        "time": pd.date_range("2021-06-01", periods=2, name="time"),
        "y": np.arange(size) * -30.0,
        "x": np.arange(size) * 30.0,
    }
    dims = ("time", "y", "x")
    t0 = time.perf_counter()
    if whole:  # each date as one float64 image through the whole-image kernel
        out = []
        for i in range(2):
            p, r = pred[i].compute().astype(np.float64), ref[i].compute().astype(np.float64)
            valid = np.isfinite(p) & np.isfinite(r)
            out.append(
                scoring._scores_2d(p, r, valid, np.nan, np.zeros((size, size), np.int64), 1, 0.03)[
                    0, 0
                ]
            )
        rmse = [float(v) for v in out]
    else:
        P = xr.DataArray(pred, dims=dims, coords=coords, attrs={"units": "K"})
        R = xr.DataArray(ref, dims=dims, coords=coords, attrs={"units": "K"})
        m = xstf.metrics(P, R, data_range=data_range).compute()
        rmse = [float(v) for v in m.rmse.values]
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "size": size,
                "whole": whole,
                "peak_mb": _rss_mb() - base,
                "seconds": seconds,
                "rmse": rmse,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,4000", help="pixels a side, comma-separated")
    ap.add_argument("--chunk", type=int, default=1000, help="dask chunk (pixels a side)")
    ap.add_argument("--whole", action="store_true", help="whole-image kernel instead")
    ap.add_argument(
        "--data-range", type=float, default=None, help="SSIM/PSNR L (default: per date)"
    )
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child, args.whole, args.chunk, args.data_range)
        return
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        cmd = [sys.executable, __file__, "--child", str(size), "--chunk", str(args.chunk)]
        cmd += ["--whole"] if args.whole else []
        cmd += [] if args.data_range is None else ["--data-range", str(args.data_range)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{size:>5}² x 2 dates ({'whole image' if args.whole else 'by tile'}): peak RSS "
            f"+{row['peak_mb']:.0f} MB, {row['seconds']:.1f} s, rmse {row['rmse']}",
            flush=True,
        )
    if len(rows) > 1:
        print(f"ratio largest / smallest: {rows[-1]['peak_mb'] / rows[0]['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
