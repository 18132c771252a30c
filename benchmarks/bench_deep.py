"""Benchmark of the deep-fusion machinery: inference and training speed, accuracy on held-out dates.

Prints figures; asserts nothing. Three parts:

1. ``inference``: for each model (published widths), one ``--size``² single-band date,
   timed in interleaved rounds (``--reps``, median): (a) **plain** — one float32
   forward of the network on the whole image under ``torch.no_grad`` (what the
   authors' test scripts do, and the output every other variant is compared with);
   (b) **previous** — xstf's tiling before this version (tiles of 512 px overlapping
   by 32 px, taper blending, per-tile statistics); (c) **xstf** —
   :func:`xstf.models.tiling.predict_image` with its defaults (``inference_mode``,
   channels-last weights, tiles up to 1024 px reading the receptive field as
   context, per-date statistics). Prints seconds, Mpixel/s, the speed-up of (c) over
   (a) and over (b), and max |diff| (K) of (b) and (c) against (a); ``--compile`` adds
   (c) with ``compile=True`` (``torch.compile``, inductor) and prints its one-off
   compile time; ``--bf16`` adds (c) with bfloat16 autocast and prints its error;
2. ``training``: patches/s of one optimiser step on 95 × 95 patches, batch 16, EDCSTFN
   (forward + backward through both reference pairs and the compound loss with the
   auto-encoder feature term, as fit trains by default), interleaved rounds, median:
   contiguous weights (before this version) vs channels-last (what fit does on CPU),
   with the losses of both (equal up to float32 rounding); and the patch pipeline
   (:class:`xstf.models.data.PatchDataset` → batches) alone; ``--bf16`` adds channels-last
   under bfloat16 autocast (what ``fit(amp=True)`` does); ``--compile`` adds contiguous
   modules with the loss (forward and backward) through ``torch.compile`` (inductor,
   its layout optimisation off: with it on, torch 2.13's CPU backward fails a stride
   check in ``replication_pad2d_backward``) and prints its compile time;
3. ``fit``: a short EDCSTFN fit on a synthetic cube, then per held-out date the scores
   of :func:`xstf.metrics` (°C) for EDCSTFN, "coarse only" (the MODIS image) and ESTARFM;
   ``--bf16`` fits again under bfloat16 autocast (same seed and patches) and prints both
   validation-loss curves and both scores (convergence per epoch at equal work).

Run (2 CPU cores shared with other work makes timings noisy: read the ratios)::

    .venv/bin/python benchmarks/bench_deep.py --only inference --size 384 --reps 3 --compile
    .venv/bin/python benchmarks/bench_deep.py --only inference --models edcstfn --size 960
    .venv/bin/python benchmarks/bench_deep.py --only training --bf16 --reps 5
    .venv/bin/python benchmarks/bench_deep.py --only training --bf16 --train-size 48 --train-batch 8
    .venv/bin/python benchmarks/bench_deep.py --only fit --epochs 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

import xstf
import xstf.models
from xstf.models import edcstfn, train
from xstf.models.data import normalise, patch_origins
from xstf.models.tiling import predict_image

N_REFS = {"edcstfn": 2, "sttfn": 2, "mlffgan": 1, "ganstfm": 1}


def _previous_predict_image(net, stack, mean, std, n_refs, tile=512, overlap=32, multiple=1):
    """xstf's tiled prediction before this version (for the ratio): blended tiles, no_grad."""

    def taper(n, ov, start, end):
        w = np.ones(n)
        ov = min(ov, n)
        if ov <= 0:
            return w
        margin = ov // 4
        ramp = np.clip((np.arange(ov) + 1 - margin) / (ov - margin), 0.0, 1.0)
        if start:
            w[:ov] = np.minimum(w[:ov], ramp)
        if end:
            w[n - ov :] = np.minimum(w[n - ov :], ramp[::-1])
        return w

    norm, valid = normalise(np.asarray(stack, dtype=np.float64), mean, std)
    _, h, w = norm.shape
    th, tw = min(tile, h), min(tile, w)
    ys, xs = patch_origins(h, th, th - overlap), patch_origins(w, tw, tw - overlap)
    out, wsum = np.zeros((h, w)), np.zeros((h, w))
    ph, pw = -(-th // multiple) * multiple - th, -(-tw // multiple) * multiple - tw
    x_all = torch.from_numpy(norm)
    origins = [(y, x) for y in ys for x in xs]
    for k in range(0, len(origins), 4):
        chunk = origins[k : k + 4]
        tiles = torch.stack([x_all[:, y : y + th, x : x + tw] for y, x in chunk])
        if ph or pw:
            tiles = torch.nn.functional.pad(tiles, (0, pw, 0, ph), mode="replicate")
        rest = tiles[:, 1:].reshape(tiles.shape[0], n_refs, 2, 1, *tiles.shape[-2:])
        with torch.no_grad():
            pred = net(rest[:, :, 0], rest[:, :, 1], tiles[:, 0:1])[:, 0, :th, :tw].numpy()
        for (y, x), p in zip(chunk, pred, strict=True):
            wt = taper(th, overlap, y > 0, y + th < h)[:, None] * taper(
                tw, overlap, x > 0, x + tw < w
            )
            out[y : y + th, x : x + tw] += wt * p
            wsum[y : y + th, x : x + tw] += wt
    res = (out / wsum * std + mean).astype(np.float32)
    res[~valid[0]] = np.nan
    return res


def _plain(net, stack, mean, std, n_refs):
    """One float32 forward of the whole image (the authors' way), in K."""
    norm, valid = normalise(np.asarray(stack, dtype=np.float64), mean, std)
    x = torch.from_numpy(norm)[None]
    rest = x[:, 1:].reshape(1, n_refs, 2, 1, *x.shape[-2:])
    with torch.no_grad():
        p = net(rest[:, :, 0], rest[:, :, 1], x[:, 0:1])[0, 0].numpy()
    res = (p.astype(np.float64) * std + mean).astype(np.float32)
    res[~valid[0]] = np.nan
    return res


def bench_inference(
    models: list[str], size: int, reps: int, bf16: bool, compile: bool = False
) -> None:
    ds = xstf.datasets.synthetic(size=size, days=17, seed=0, cloud_fraction=0.0)
    imgs = [ds.coarse[8].values, ds.coarse[0].values, ds.fine[0].values,
            ds.coarse[16].values, ds.fine[16].values]  # fmt: skip
    mean, std = 290.0, 8.0
    print(f"inference, one {size}x{size} date, {torch.get_num_threads()} threads, median of {reps}")
    for name in models:
        r = N_REFS[name]
        stack = np.stack(imgs[: 1 + 2 * r])
        torch.manual_seed(0)
        plain_net = xstf.models.create(name).eval()
        xstf_net = xstf.models.create(name).eval()
        xstf_net.load_state_dict(plain_net.state_dict())
        mult = int(xstf.models.get_spec(name).defaults.get("size_multiple", 1))
        runs: dict[str, Callable[[], np.ndarray]] = {
            "plain": lambda n=plain_net, s=stack, r=r: _plain(n, s, mean, std, r),
            "previous": lambda n=plain_net, s=stack, r=r, m=mult: _previous_predict_image(
                n, s, mean, std, r, multiple=m
            ),
            "xstf": lambda n=xstf_net, s=stack, r=r: predict_image(n, s, mean, std, r),
        }
        if compile:
            comp_net = xstf.models.create(name).eval()
            comp_net.load_state_dict(plain_net.state_dict())
            runs["xstf compiled"] = lambda n=comp_net, s=stack, r=r: predict_image(
                n, s, mean, std, r, compile=True
            )
        if bf16:
            runs["xstf bf16"] = lambda n=xstf_net, s=stack, r=r: predict_image(
                n, s, mean, std, r, amp=True
            )
        times: dict[str, list[float]] = {k: [] for k in runs}
        outs: dict[str, np.ndarray] = {}
        for k, f in runs.items():  # warm-up (oneDNN primitives, layouts; the compile)
            t0 = time.perf_counter()
            outs[k] = f()
            if k == "xstf compiled":
                print(f"  {name:8s} compile + first run {time.perf_counter() - t0:.0f} s")
        for _ in range(reps):  # interleaved rounds
            for k, f in runs.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        for k in runs:
            err = float(np.nanmax(np.abs(outs[k] - outs["plain"])))
            print(f"  {name:8s} {k:10s} {med[k]:7.2f} s  {size * size / med[k] / 1e6:6.3f} Mpixel/s  "
                  f"x{med['plain'] / med[k]:.2f} vs plain  x{med['previous'] / med[k]:.2f} vs previous  "
                  f"max|diff| vs plain {err:.2e} K")  # fmt: skip


def _amp_context(device: str, on: bool):
    import contextlib

    if not on:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def bench_training(
    device: str,
    batch: int = 16,
    size: int = 95,
    steps: int = 3,
    amp: bool = False,
    compile: bool = False,
) -> None:
    """Patches/s of EDCSTFN's optimiser step: contiguous vs channels-last modules (and,
    with ``amp``, channels-last under bfloat16 autocast, as ``fit(amp=True)`` trains)."""
    ae_epochs = 1  # the feature-loss term on, as fit trains EDCSTFN by default
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
    recipes = {}
    variants = [("contiguous", False, False), ("channels-last", True, False)]
    if amp:
        variants.append(("cl + bf16 amp", True, True))
    if compile:
        variants.append(("compiled", False, False))
    bf16: dict[str, bool] = {}
    for label, cl, use_amp in variants:
        torch.manual_seed(0)
        net = edcstfn.build().to(device)
        rec = edcstfn.recipe(net, ae_epochs=ae_epochs)
        if cl:  # as fit converts them on an AVX-512 CPU
            train._to_channels_last(rec.modules.values())
        bf16[label] = use_amp
        t0 = time.perf_counter()
        if label == "compiled":
            import torch._inductor.config as inductor_config

            rec._batch_loss = torch.compile(rec._batch_loss)  # type: ignore[method-assign]
            with inductor_config.patch(layout_optimization=False):  # see the docstring
                rec.step(b)  # the compile
            print(f"  compiled step: compile + first step {time.perf_counter() - t0:.0f} s")
        else:
            with _amp_context(device, use_amp):
                rec.step(b)  # warm-up
        recipes[label] = rec
    times: dict[str, list[float]] = {k: [] for k in recipes}
    losses: dict[str, list[float]] = {k: [] for k in recipes}
    for _ in range(steps):  # interleaved rounds
        for k, rec in recipes.items():
            t0 = time.perf_counter()
            with _amp_context(device, bf16[k]):  # as fit(amp=True) runs its steps
                out = rec.step(b)
            losses[k].append(float(out["loss"]))
            times[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    feat = "on" if ae_epochs > 0 else "off"
    print(f"training {size}x{size} patches, batch {batch}, on {device}, median of {steps} "
          f"(MSE + 0.8(1-MS-SSIM), feature loss {feat}):")  # fmt: skip
    for k in recipes:
        print(f"  {k:14s} {batch / med[k]:6.2f} patches/s  x{med['contiguous'] / med[k]:.2f}  "
              f"losses {', '.join(f'{v:.6f}' for v in losses[k])}")  # fmt: skip
    bench_patches(batch, size)


def bench_patches(batch: int = 16, size: int = 95, n_batches: int = 20) -> None:
    """Patches/s of the input pipeline alone: per-item ``__getitem__`` + default collate vs
    the batched path (:meth:`PatchDataset.batch`) when the dataset has it."""
    from torch.utils.data import default_collate

    from xstf.models.data import PatchDataset, samples, select_patches

    ds = xstf.datasets.synthetic(size=320, days=60, seed=0, cloud_fraction=0.1)
    pairs = xstf.cube.pair_dates(ds)
    smp = samples(pairs[2:], pairs, 2)
    patches = select_patches(ds, smp, size, 20, 0.5)
    data = PatchDataset(ds, smp, patches, size, 290.0, 8.0)
    idx = np.random.default_rng(0).choice(len(patches), size=batch * n_batches)
    ways = {"per item + collate": lambda ii: default_collate([data[int(i)] for i in ii])}
    if hasattr(data, "batch"):
        ways["batched"] = lambda ii: data.batch(ii)
    for _ in range(2):
        for label, f in ways.items():
            t0 = time.perf_counter()
            for k in range(n_batches):
                f(idx[k * batch : (k + 1) * batch])
            dt = time.perf_counter() - t0
            print(f"patch pipeline ({label}): {batch * n_batches / dt:,.0f} patches/s")


def bench_fit(
    device: str, epochs: int, patch: int, width: int, size: int, days: int, amp: bool = False
) -> None:
    """A short EDCSTFN fit scored on held-out dates; with ``amp``, the same fit (same seed,
    same patches) again under bfloat16 autocast, with both validation-loss curves."""
    ds = xstf.datasets.synthetic(size=size, days=days, seed=3, cloud_fraction=0.2).load()
    print(f"cube {size}x{size}, {days} days, {len(xstf.cube.pair_dates(ds))} pairs")
    fitted = {}
    for label, use_amp in [("EDCSTFN", False)] + ([("EDCSTFN bf16", True)] if amp else []):
        t0 = time.perf_counter()
        fitted[label] = m = xstf.models.fit(
            ds, "edcstfn", epochs=epochs, batch_size=8, patch_size=patch, stride=patch // 2,
            width=width, ae_epochs=1, device=device, progress=False, seed=0, amp=use_amp,
        )  # fmt: skip
        dt = time.perf_counter() - t0
        curve = ", ".join(f"{h['val_loss']:.4f}" for h in m.history)
        print(f"fit {label}: {dt:.0f} s, {m.config['train_patches']} training patches, "
              f"val loss per epoch {curve}")  # fmt: skip
    m = fitted["EDCSTFN"]
    test = pd.DatetimeIndex(m.config["split"]["test"])
    others = xstf.cube.target_dates(ds)
    dates = test.append(others[np.linspace(0, len(others) - 1, 6).round().astype(int)])
    preds = {
        label: xstf.models.predict(ds, fm, targets=dates, device=device)
        for label, fm in fitted.items()
    }
    preds["coarse only"] = ds.coarse.sel(time=dates)
    try:
        preds["ESTARFM"] = xstf.estarfm(ds, targets=dates).compute()
    except Exception as err:
        print(f"ESTARFM skipped: {type(err).__name__}: {err}")
    truth = ds.truth.sel(time=dates)
    common = np.isfinite(truth)
    for p in preds.values():
        common = common & np.isfinite(p)
    scores = xstf.metrics({k: v.where(common) for k, v in preds.items()}, truth.where(common))
    table = scores.to_dataframe().drop(columns=[c for c in ("spatial_ref",) if c in scores])
    print("xstf.metrics against the synthetic truth, held-out dates, common pixels (°C):")
    print(table.round(4).to_string())
    print(scores.mean("time").to_dataframe().round(4).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["inference", "training", "fit"], default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="edcstfn,sttfn,mlffgan,ganstfm")
    ap.add_argument("--size", type=int, default=960, help="inference scene side (px)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--bf16", action="store_true", help="also time bfloat16 autocast, print its error"
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile (inference: compile=True; training: the loss)",
    )
    ap.add_argument("--train-batch", type=int, default=16, help="training mode: batch size")
    ap.add_argument("--train-size", type=int, default=95, help="training mode: patch side (px)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--fit-size", type=int, default=128)
    ap.add_argument("--days", type=int, default=160)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if a.only in (None, "inference"):
        bench_inference(a.models.split(","), a.size, a.reps, a.bf16, a.compile)
    if a.only in (None, "training"):
        bench_training(
            a.device, a.train_batch, a.train_size, steps=a.reps, amp=a.bf16, compile=a.compile
        )
    if a.only in (None, "fit"):
        bench_fit(a.device, a.epochs, a.patch, a.width, a.fit_size, a.days, a.bf16)


if __name__ == "__main__":
    main()
