"""Benchmark of every deep model and ESTARFM on the synthetic cube: scores, training time, throughput.

Prints figures (and, with ``--markdown``, the same tables as Markdown); asserts nothing.

For each deep model (EDCSTFN, STTFN, MLFF-GAN, GAN-STFM, all with their published
architecture) a short fit on the same cube and split (``xstf.models.fit``: same
seed, patches, epochs, batch size; EDCSTFN's and GAN-STFM's loss auto-encoders get 1
pass), then a prediction of the held-out test pair dates
and of a few target dates (never seen in training; the synthetic cube has the truth on
every date). ESTARFM (``xstf.estarfm``) and "coarse only" (the MODIS image itself)
are scored on the same dates. Scores: ``xstf.metrics`` against the synthetic truth, in
°C, over the pixels every method predicts (RMSE, CC, SSIM, PSNR, SAM, ERGAS; SSIM/PSNR
with the reference's max − min as data range).

Timings: training wall time of ``fit`` (all epochs, validation included), and
inference throughput = predicted pixels / wall time of ``predict`` (tile 256,
overlap 32). They depend on the machine and on what else runs on it; the short
fits are far from converged (the deep models need GPU-scale training), so the scores
show the pipeline working, not the models' published accuracy.

Run::

    .venv/bin/python benchmarks/bench_models.py                       # small config, CPU
    .venv/bin/python benchmarks/bench_models.py --threads 1 --markdown out.md
    .venv/bin/python benchmarks/bench_models.py --size 256 --days 365 --epochs 20 --patch 95
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import xstf

MODELS = ("edcstfn", "sttfn", "mlffgan", "ganstfm")
SCORES = ("rmse", "cc", "ssim", "psnr", "sam", "ergas")


def _throughput(m: Any, big: xr.Dataset, device: str) -> float:
    """Mpixel/s of tiled inference (tile 256, overlap 32) of a fitted model on one date."""
    from xstf.models import get_spec
    from xstf.models.inference import predict_image

    c, f = big.coarse.values, big.fine.values
    refs = (0, 16)[: m.n_refs]
    stack = np.stack([c[8], *[a for r in refs for a in (c[r], f[r])]])
    multiple = int(get_spec(m.name).defaults.get("size_multiple", 1))
    net = m.net.to(device).eval()
    kw = dict(device=device, multiple=multiple)
    predict_image(net, stack[:, :256, :256], m.mean, m.std, m.n_refs, **kw)  # warm-up
    t0 = time.perf_counter()
    predict_image(net, stack, m.mean, m.std, m.n_refs, **kw)
    return stack.shape[-1] * stack.shape[-2] / (time.perf_counter() - t0) / 1e6


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = xstf.datasets.synthetic(
        size=args.size, days=args.days, seed=args.seed, cloud_fraction=args.cloud_fraction
    )
    pairs = xstf.cube.pair_dates(ds)
    info: dict[str, Any] = {"size": args.size, "days": args.days, "pairs": len(pairs)}
    print(f"cube {args.size}x{args.size}, {args.days} days, {len(pairs)} pairs, torch threads "
          f"{torch.get_num_threads()}, device {args.device}")  # fmt: skip

    big = None
    if args.throughput_size:
        big = xstf.datasets.synthetic(
            size=args.throughput_size, days=17, seed=0, cloud_fraction=0.0
        )
    preds: dict[str, xr.DataArray] = {}
    timing = []
    dates: pd.DatetimeIndex | None = None
    for name in args.models:
        extra = {"ae_epochs": 1} if name in ("edcstfn", "ganstfm") else {}
        t0 = time.perf_counter()
        m = xstf.models.fit(
            ds, name, epochs=args.epochs, batch_size=args.batch, patch_size=args.patch,
            stride=args.patch // 2, max_patches=args.max_patches, device=args.device,
            progress=False, seed=0, **extra,
        )  # fmt: skip
        fit_s = time.perf_counter() - t0
        if dates is None:  # the same split for every model (same cube, seed and n_refs rule)
            test = pd.DatetimeIndex(m.config["split"]["test"])
            others = xstf.cube.target_dates(ds)
            others = others[np.linspace(0, len(others) - 1, args.targets).round().astype(int)]
            dates = test.append(others)
            info["test"] = [str(d.date()) for d in test]
            info["targets"] = [str(d.date()) for d in others]
        t0 = time.perf_counter()
        p = xstf.models.predict(ds, m, targets=dates, device=args.device).compute()
        pred_s = time.perf_counter() - t0
        preds[name] = p
        n_params = sum(q.numel() for q in m.net.parameters())
        mpx = _throughput(m, big, args.device) if big is not None else float("nan")
        timing.append({
            "method": name, "parameters": n_params, "train patches": m.config["train_patches"],
            "epochs": len(m.history), "fit s": fit_s,
            "s/epoch": fit_s / max(len(m.history), 1),
            "final val loss": m.history[-1]["val_loss"],
            "predict Mpx/s": len(dates) * args.size**2 / pred_s / 1e6,
            f"{args.throughput_size}² Mpx/s": mpx,
        })  # fmt: skip
        print(f"{name}: fit {fit_s:.0f} s ({len(m.history)} epochs), predict {pred_s:.1f} s")
    assert dates is not None
    xstf.estarfm(ds, targets=dates[:1]).compute()  # warm-up: numba compilation
    t0 = time.perf_counter()
    preds["estarfm"] = xstf.estarfm(ds, targets=dates).compute()
    est_s = time.perf_counter() - t0
    est_big = float("nan")
    if big is not None:
        t0 = time.perf_counter()
        xstf.estarfm(big, targets=big.time.values[8:9]).compute()
        est_big = args.throughput_size**2 / (time.perf_counter() - t0) / 1e6
    timing.append({"method": "estarfm", "parameters": 0, "fit s": 0.0,
                   "predict Mpx/s": len(dates) * args.size**2 / est_s / 1e6,
                   f"{args.throughput_size}² Mpx/s": est_big})  # fmt: skip
    print(f"estarfm: {est_s:.1f} s")
    coarse = ds.coarse.sel(time=dates)
    preds["coarse only"] = coarse

    # plain (time, y, x) arrays on the same time index, selected by label (methods may return
    # their dates sorted); the methods' extra coords (reference dates...) are not scored
    preds = {k: v.reset_coords(drop=True).sel(time=dates) for k, v in preds.items()}
    truth = ds.truth.sel(time=dates).reset_coords(drop=True)
    common = truth.notnull()
    for p in preds.values():
        common = common & p.notnull()
    info["valid share"] = round(float(common.mean()), 4)
    scores = xstf.metrics(preds, truth, mask=common, units="degC", ratio=30 / 1000).compute()
    test_set = set(pd.DatetimeIndex(info["test"]))
    rows = []
    for method in scores["method"].values:
        for i, d in enumerate(dates):
            sel = scores.sel({"method": method}).isel(time=i)
            rows.append({"date": str(d.date()), "kind": "test pair" if d in test_set else "target",
                         "method": str(method),
                         **{s.upper(): sel[s].item() for s in SCORES}})  # fmt: skip
    table = pd.DataFrame(rows)
    timing_df = pd.DataFrame(timing).set_index("method")
    for col in ("parameters", "train patches", "epochs"):
        timing_df[col] = timing_df[col].astype("Int64")
    return table, timing_df, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--days", type=int, default=200)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--cloud-fraction", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--max-patches", type=int, default=64)
    ap.add_argument("--targets", type=int, default=3, help="target (non-pair) dates to score too")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--throughput-size",
        type=int,
        default=512,
        help="side of the one-date scene timed for inference throughput (0: skip)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--markdown", default=None, help="also write the tables to this Markdown file")
    args = ap.parse_args()
    table, timing, info = run(args)
    mean = table.groupby("method")[[s.upper() for s in SCORES]].mean()
    pd.set_option("display.width", 200)
    print("\nscores against the truth, held-out dates, pixels valid for every method (°C):")
    print(table.round(3).to_string(index=False))
    print("\nmean over the dates:")
    print(mean.round(3).to_string())
    print("\ntiming:")
    print(timing.round(3).to_string())
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"cube: {info}\n\n")
            f.write(table.round(3).to_markdown(index=False) + "\n\n")
            f.write(mean.round(3).to_markdown() + "\n\n")
            f.write(timing.round(3).to_markdown() + "\n")


if __name__ == "__main__":
    main()
