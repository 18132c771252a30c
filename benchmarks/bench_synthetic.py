"""How fast the synthetic cube builds (lazily) and renders one date.

Run: ``.venv/bin/python benchmarks/bench_synthetic.py [--size 950 --days 365]``
"""

from __future__ import annotations

import argparse
import time

import xstf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=950)
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = xstf.datasets.synthetic(size=args.size, days=args.days, chunks={"time": 1})
    t_build = time.perf_counter() - t0
    print(f"lazy build {args.size} x {args.size} x {args.days} days: {t_build:.2f} s "
          f"({ds.fine.data.npartitions} chunks, {ds.nbytes / 2**30:.1f} GiB if computed)")  # fmt: skip
    for label, day in (("first date", 0), ("another date", args.days // 2)):
        t0 = time.perf_counter()
        ds[["truth", "fine", "coarse"]].isel(time=day).compute()
        print(f"compute one date ({label}, truth+fine+coarse): {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    ds.coarse.isel(time=slice(0, 10)).compute()
    print(f"compute 10 dates of coarse: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
