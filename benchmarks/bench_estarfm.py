"""Speed and memory of ESTARFM (and STARFM) on synthetic scenes. Prints figures; not a test.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_estarfm.py              # everything (a few minutes)
    .venv/bin/python benchmarks/bench_estarfm.py --skip-big   # without the 4000² Zarr run
    .venv/bin/python benchmarks/bench_estarfm.py --quick      # 950² only, 1 and 2 threads
    # before/after: the 950² easy and hard cases, interleaved with another checkout
    git worktree add /tmp/xstf-before <old commit>
    .venv/bin/python benchmarks/bench_estarfm.py --baseline /tmp/xstf-before --repeat 5
    # ... the same, the "after" runs with 512-bit vectors (AVX-512 CPUs, see docs/guide/estarfm.md)
    .venv/bin/python benchmarks/bench_estarfm.py --baseline /tmp/xstf-before --wide-vectors

Every configuration runs in a fresh subprocess so its peak memory (``ru_maxrss``) is
its own; the numba kernels are compiled (or loaded from the cache) and warmed up on a
small scene before the clock starts, and the scene is generated and loaded before it
too: the time is the fusion of one target date only. Threads = dask threaded
scheduler workers; the scene is cut into row chunks of ``--chunk`` rows.

Reported: wall time per target date, throughput in Mpixel/s (output pixels / s), the
peak resident memory of the process and its baseline before the run (Python, numpy,
numba, dask and the input scene), and whether the conversion-coefficient regression
ran (the scene-mean coarse change between the pairs vs the 0.02 · DN_max gate).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# day indices (pair, target, pair) in the synthetic cube (seed 0): in January the coarse
# change between the pairs is small (the V regression never runs); in April it is ~13 K,
# above the 8 K gate, so the extra regression pass runs for most pixels.
DATES = {"january": (0, 8, 16), "april": (96, 104, 112)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _scene(n: int, dates: str = "january", seed: int = 0):
    import xstf

    ds = xstf.datasets.synthetic(
        size=n, days=365, seed=seed, cloud_fraction=0.0, chunks={"time": 1}
    )
    return ds[["fine", "coarse"]].isel(time=list(DATES[dates])).load()


def _tiled_scene(n: int, tile: int = 1000):
    """An ``n × n`` lazy cube made of copies of a ``tile²`` synthetic scene (cheap to build)."""
    import dask.array as dsa
    import numpy as np
    import xarray as xr

    small = _scene(tile)
    reps = -(-n // tile)
    data = {}
    for v in ("fine", "coarse"):
        a = dsa.from_array(small[v].values, chunks=(1, tile, tile))
        big = dsa.block([[a] * reps] * reps)[:, :n, :n]
        data[v] = (("time", "y", "x"), big, {"units": "K"})
    coords = {
        "time": small.time.values,
        "y": 5e6 - 30.0 * np.arange(n),
        "x": 4e5 + 30.0 * np.arange(n),
    }
    return xr.Dataset(data, coords=coords)


def _warm_up(method: str) -> None:
    import xstf

    ds = _scene(64)
    fn = xstf.estarfm if method != "starfm" else xstf.starfm
    kw = {"bias_correction": True} if method == "ubestarfm" else {}
    for dn in ((200.0, 400.0), (0.0, 50.0)):  # also compile the V and fallback passes
        if method == "starfm":
            fn(ds, targets=[ds.time.values[1]], half_window=5).compute()
            break
        fn(ds, targets=[ds.time.values[1]], half_window=5, dn_range=dn, **kw).compute()


def child(cfg: dict) -> dict:
    """One measured run (in its own process)."""
    import dask
    import numpy as np

    import xstf

    method = cfg.get("method", "estarfm")
    _warm_up(method)
    n, w, threads = cfg["size"], cfg["half_window"], cfg["threads"]
    if cfg.get("zarr"):
        import xarray as xr

        src = xr.open_zarr(cfg["zarr"], consolidated=False)
        base = _rss_mb()
        times = src.time.values
        t0, c0 = time.perf_counter(), _cpu_s()
        with dask.config.set(scheduler="threads", num_workers=threads):
            pred = xstf.estarfm(src, targets=[times[1]], pairs=[times[0], times[2]], half_window=w)
            pred.to_dataset().to_zarr(cfg["out"], mode="w", consolidated=False)
        wall = time.perf_counter() - t0
        change = float("nan")
        build = float("nan")
    else:
        ds = _scene(n, cfg.get("dates", "january"))
        change = float(np.nanmean(ds.coarse[2].values - ds.coarse[0].values))
        cube = ds.chunk({"time": 1, "y": min(cfg.get("chunk", 256), n), "x": -1})
        base = _rss_mb()
        fn = xstf.starfm if method == "starfm" else xstf.estarfm
        kw = {"bias_correction": True} if method == "ubestarfm" else {}
        tb = time.perf_counter()
        pred = fn(cube, targets=[ds.time.values[1]], half_window=w, **kw)
        build = time.perf_counter() - tb  # validation, coverage, dates: the lazy graph
        t0, c0 = time.perf_counter(), _cpu_s()
        with dask.config.set(scheduler="threads", num_workers=threads):
            pred.compute()
        wall = time.perf_counter() - t0
    return {
        **cfg,
        "wall_s": wall,
        "build_s": build,
        "cpu_s": _cpu_s() - c0,
        "mpx_s": n * n / wall / 1e6,
        "peak_mb": _rss_mb(),
        "base_mb": base,
        "coarse_change_K": change,
    }


def run(cfg: dict, tree: str | None = None, extra_env: dict | None = None) -> dict:
    """Run one configuration in a fresh process; ``tree``: import xstf from there."""
    env = {**os.environ, **(extra_env or {})}
    root = tree or str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=root,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed for {cfg}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def wide_vector_features() -> str:
    """This CPU's LLVM features without the 256-bit vector preference (for AVX-512 CPUs).

    LLVM tunes recent Intel CPUs to vectorise with 256-bit registers; ``NUMBA_CPU_FEATURES``
    set to this string lets numba's loops use the full 512-bit ones.
    """
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_features().flatten() + ",-prefer-256-bit"


def _row(r: dict) -> str:
    gate = "" if r["coarse_change_K"] != r["coarse_change_K"] else f"{r['coarse_change_K']:+.1f}"
    return (
        f"| {r.get('method', 'estarfm')} | {r['size']}² | {2 * r['half_window'] + 1}² | {r['threads']} "
        f"| {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['mpx_s']:.3f} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | {gate} |"
    )


def compare(
    baseline: str, repeat: int, threads: int, chunk: int, after_env: dict | None = None
) -> None:
    """Interleaved before/after runs of the 950² easy and hard cases, medians and ratios.

    ``after_env``: environment variables set for the "after" runs only (e.g. numba's
    ``NUMBA_CPU_FEATURES``).
    """
    import statistics

    print(f"# before: {baseline}\n# after:  {Path(__file__).resolve().parents[1]}")
    for k, v in (after_env or {}).items():
        print(f"# after runs with {k}={v if len(v) < 60 else '...' + v[-40:]}")
    print()
    print(
        "| case | threads | before s (median) | after s (median) | speed-up "
        "| CPU s before / after (median) | CPU speed-up | graph build before / after s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dates in ("january", "april"):
        cfg = {"size": 950, "half_window": 25, "threads": threads, "chunk": chunk, "dates": dates}
        before, after = [], []
        for _ in range(repeat):  # interleaved: the machine's load hits both alike
            before.append(run(cfg, baseline))
            after.append(run(cfg, extra_env=after_env))
        b = statistics.median(r["wall_s"] for r in before)
        a = statistics.median(r["wall_s"] for r in after)
        bc = statistics.median(r["cpu_s"] for r in before)
        ac = statistics.median(r["cpu_s"] for r in after)
        bb = statistics.median(r.get("build_s", float("nan")) for r in before)
        ab = statistics.median(r["build_s"] for r in after)
        case = "easy (no V)" if dates == "january" else "hard (V regression)"
        print(
            f"| {case} | {threads} | {b:.2f} | {a:.2f} | {b / a:.2f}x | {bc:.2f} / {ac:.2f} "
            f"| {bc / ac:.2f}x | {bb:.3f} / {ab:.3f} |",
            flush=True,
        )
    print(
        "\nEach run is a fresh process; walls exclude set-up and compilation. CPU s (all "
        "threads) is less sensitive than wall time to other jobs on a shared machine."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="950² only, 1 and 2 threads")
    p.add_argument("--skip-big", action="store_true", help="skip the 4000² Zarr-to-Zarr run")
    p.add_argument("--big", type=int, default=4000, help="size of the Zarr-to-Zarr run")
    p.add_argument("--big-only", action="store_true", help="only the Zarr-to-Zarr run")
    p.add_argument("--chunk", type=int, default=256, help="rows per dask chunk")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--baseline", help="another xstf checkout: interleaved before/after runs")
    p.add_argument("--repeat", type=int, default=5, help="runs per side with --baseline")
    p.add_argument(
        "--after-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --baseline: set this environment variable for the 'after' runs only",
    )
    p.add_argument(
        "--wide-vectors",
        action="store_true",
        help="with --baseline: 'after' runs let numba use 512-bit vectors (AVX-512 CPUs)",
    )
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.baseline:
        after_env = dict(e.split("=", 1) for e in args.after_env)
        if args.wide_vectors:
            after_env["NUMBA_CPU_FEATURES"] = wide_vector_features()
        compare(args.baseline, args.repeat, args.threads, args.chunk, after_env)
        return
    print(f"# ESTARFM benchmark — {os.cpu_count()} CPUs; one target date; times exclude set-up\n")
    head = (
        "| method | scene | window | threads | wall s | CPU s | Mpixel/s | peak MB | baseline MB "
        "| mean C2−C1 (K) |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    print(head)
    th = sorted({1, args.threads})
    configs = [
        {"size": 950, "half_window": 25, "threads": t, "chunk": args.chunk, "dates": d}
        for d in ("january", "april")
        for t in th
    ]
    if args.big_only:
        configs = []
    elif not args.quick:
        configs += [
            {"size": s, "half_window": 25, "threads": args.threads, "chunk": args.chunk}
            for s in (400, 2000)
        ]
        configs += [
            {"size": 950, "half_window": h, "threads": args.threads, "chunk": args.chunk}
            for h in (10, 40)
        ]
        configs += [
            {
                "size": 950,
                "half_window": 25,
                "threads": args.threads,
                "chunk": args.chunk,
                "method": m,
            }
            for m in ("ubestarfm", "starfm")
        ]
    for cfg in configs:
        print(_row(run(cfg)), flush=True)
    if not (args.quick or args.skip_big):
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in.zarr"
            _tiled_scene(args.big).to_zarr(src, consolidated=False)
            r = run(
                {
                    "size": args.big,
                    "half_window": 25,
                    "threads": args.threads,
                    "zarr": str(src),
                    "out": str(Path(tmp) / "out.zarr"),
                }
            )
            print(_row({**r, "method": "estarfm Zarr→Zarr"}), flush=True)
    print(
        "\nPeak MB is the whole process (baseline: interpreter, libraries and, except for the "
        "Zarr run, the input scene in memory)."
    )


if __name__ == "__main__":
    main()
