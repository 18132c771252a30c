"""Benchmark of the deep-fusion machinery (EDCSTFN): speed, and accuracy on held-out dates.

Prints figures; asserts nothing. Three parts:

1. inference throughput (Mpixel/s) of the published EDCSTFN on one 950 × 950 date, CPU
   (or ``--device``), tiled with the defaults (tile 512, overlap 32);
2. training throughput (patches/s) on 95 × 95 patches, batch 16, one optimiser step
   = forward + backward through both reference pairs and the compound loss;
3. a short fit on a synthetic cube, then per held-out test date the six scores
   (RMSE, CC, SSIM, PSNR, SAM, ERGAS; °C, data range = the reference's max − min)
   of EDCSTFN (with the ``"date_level"`` and/or ``"global"`` normalisation,
   ``--normalisation``), "coarse only" (the MODIS image itself) and ESTARFM when
   ``xstf.estarfm`` is available, on the held-out test pair dates and on a few target
   dates (never seen in training either; the synthetic cube has the truth on every date),
   all scored over the pixels every method predicts.

Run (2 CPU cores shared with other work makes timings noisy; re-run on an idle machine)::

    .venv/bin/python benchmarks/bench_deep.py            # all parts
    .venv/bin/python benchmarks/bench_deep.py --only fit --epochs 3
    .venv/bin/python benchmarks/bench_deep.py --only fit --normalisation global
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

import xstf
from xstf.models import edcstfn
from xstf.models.inference import predict_image


def _scores(pred: np.ndarray, ref: np.ndarray, ratio: float) -> dict[str, float]:
    """The six survey scores (algorithms.md, 'Metrics') over the pixels valid in both, in °C."""
    from skimage.metrics import structural_similarity

    p, r = pred.astype(np.float64) - 273.15, ref.astype(np.float64) - 273.15
    ok = np.isfinite(p) & np.isfinite(r)
    pv, rv = p[ok], r[ok]
    rmse = float(np.sqrt(np.mean((pv - rv) ** 2)))
    rng = float(rv.max() - rv.min())
    fill = np.where(ok, p, np.nanmean(rv))
    reff = np.where(ok, r, np.nanmean(rv))
    ssim = structural_similarity(
        fill, reff, data_range=rng, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    cos = float(pv @ rv / (np.linalg.norm(pv) * np.linalg.norm(rv)))
    return {
        "RMSE": rmse,
        "CC": float(np.corrcoef(pv, rv)[0, 1]),
        "SSIM": float(ssim),
        "PSNR": float(20 * np.log10(rng / rmse)),
        "SAM": float(np.degrees(np.arccos(np.clip(cos, -1, 1)))),
        "ERGAS": float(100 * ratio * np.sqrt((rmse / rv.mean()) ** 2)),
    }


def bench_inference(device: str, size: int = 950, with_amp: bool = False) -> None:
    ds = xstf.datasets.synthetic(size=size, days=17, seed=0, cloud_fraction=0.0)
    stack = np.stack([ds.coarse[8].values, ds.coarse[0].values, ds.fine[0].values,
                      ds.coarse[16].values, ds.fine[16].values])  # fmt: skip
    torch.manual_seed(0)
    net = edcstfn.build().to(device).eval()
    predict_image(net, stack[:, :256, :256], 290.0, 8.0, 2, device=device)  # warm-up
    # autocast on a CPU without native bfloat16 (no AVX512-BF16/AMX) is far slower than float32
    for amp in (False, True) if device != "cpu" or with_amp else (False,):
        t0 = time.perf_counter()
        predict_image(net, stack, 290.0, 8.0, 2, device=device, amp=amp)
        dt = time.perf_counter() - t0
        print(f"inference {size}x{size} on {device} (amp={amp}): {dt:.1f} s, "
              f"{size * size / dt / 1e6:.3f} Mpixel/s")  # fmt: skip


def bench_training(device: str, batch: int = 16, size: int = 95, steps: int = 3) -> None:
    torch.manual_seed(0)
    net = edcstfn.build().to(device)
    rec = edcstfn.recipe(net, ae_epochs=0)
    g = torch.Generator().manual_seed(0)
    b = {
        "c_refs": torch.randn(batch, 2, 1, size, size, generator=g),
        "f_refs": torch.randn(batch, 2, 1, size, size, generator=g),
        "c_tgt": torch.randn(batch, 1, size, size, generator=g),
        "f_tgt": torch.randn(batch, 1, size, size, generator=g),
        "tgt_valid": torch.ones(batch, 1, size, size, dtype=torch.bool),
        "ref_valid": torch.ones(batch, 2, 1, size, size, dtype=torch.bool),
    }
    b = {k: v.to(device) for k, v in b.items()}
    rec.step(b)
    t0 = time.perf_counter()
    for _ in range(steps):
        rec.step(b)
    dt = time.perf_counter() - t0
    print(f"training {size}x{size} patches, batch {batch}, on {device}: "
          f"{steps * batch / dt:.2f} patches/s (MSE + 0.8(1-MS-SSIM), feature loss off)")  # fmt: skip


def bench_fit(
    device: str,
    epochs: int,
    patch: int,
    width: int,
    size: int,
    days: int,
    n_targets: int = 6,
    normalisations: tuple[str, ...] = ("date_level", "global"),
) -> None:
    ds = xstf.datasets.synthetic(size=size, days=days, seed=3, cloud_fraction=0.2)
    pairs = xstf.cube.pair_dates(ds)
    print(f"cube {size}x{size}, {days} days, {len(pairs)} pairs")
    preds: dict = {}
    dates = None
    for norm in normalisations:
        t0 = time.perf_counter()
        m = xstf.models.fit(
            ds, "edcstfn", epochs=epochs, batch_size=8, patch_size=patch, stride=patch // 2,
            width=width, ae_epochs=1, device=device, progress=False, seed=0, normalisation=norm,
        )  # fmt: skip
        fit_s = time.perf_counter() - t0
        print(f"fit (normalisation={norm!r}, mean {m.mean:.3f} K, std {m.std:.3f} K): "
              f"{fit_s:.0f} s, {m.config['train_patches']} training patches, "
              f"{len(m.history)} epochs, best epoch {m.config['best_epoch']}")  # fmt: skip
        for h in m.history:
            print(
                f"  epoch {h['epoch']}: loss {h['loss']:.4f} val {h['val_loss']:.4f} ({h['seconds']:.0f} s)"
            )
        if dates is None:  # the split does not depend on the normalisation
            test = pd.DatetimeIndex(m.config["split"]["test"])
            others = xstf.cube.target_dates(ds)
            others = others[np.linspace(0, len(others) - 1, n_targets).round().astype(int)]
            dates = test.append(others)
            preds["coarse only"] = ds.coarse.sel(time=dates)
        t0 = time.perf_counter()
        name = "EDCSTFN" if len(normalisations) == 1 else f"EDCSTFN {norm}"
        preds[name] = xstf.models.predict(ds, m, targets=dates, device=device)
        print(f"predict {len(dates)} date(s): {time.perf_counter() - t0:.1f} s")
    try:  # optional: written by another helper
        preds["ESTARFM"] = xstf.estarfm(ds, targets=dates).compute()
    except Exception as err:
        print(f"ESTARFM skipped: {type(err).__name__}: {err}")
    ratio = 30.0 / 1000.0
    rows = []
    for d in dates:
        truth = ds.truth.sel(time=d).values
        imgs = {k: np.asarray(v.sel(time=d).values) for k, v in preds.items()}
        common = np.isfinite(truth)
        for img in imgs.values():
            common &= np.isfinite(img)
        kind = "test pair" if d in test else "target"
        for k, img in imgs.items():
            sc = _scores(np.where(common, img, np.nan), truth, ratio)
            rows.append({"date": d.date(), "kind": kind, "method": k, "valid": common.mean(), **sc})
    table = pd.DataFrame(rows).set_index(["date", "kind", "method"])
    print("scores against the synthetic truth, held-out dates, pixels valid for every method (°C):")
    print(table.round(4).to_string())
    print("RMSE (°C) per date:")
    rmse = table["RMSE"].unstack("method")[list(preds)]
    print(rmse.round(3).to_string())
    print("mean over the dates:")
    print(table.groupby("method").mean(numeric_only=True).round(4).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["inference", "training", "fit"], default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="also time amp=True on CPU")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--days", type=int, default=160)
    ap.add_argument(
        "--normalisation",
        choices=["date_level", "global", "both"],
        default="both",
        help="normalisation of the fitted EDCSTFN (both: fit one of each)",
    )
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if a.only in (None, "inference"):
        bench_inference(a.device, with_amp=a.amp)
    if a.only in (None, "training"):
        bench_training(a.device)
    if a.only in (None, "fit"):
        norms = ("date_level", "global") if a.normalisation == "both" else (a.normalisation,)
        bench_fit(a.device, a.epochs, a.patch, a.width, a.size, a.days, normalisations=norms)


if __name__ == "__main__":
    main()
