"""One-shot check that the deep models run (and how fast) on a GPU — or on CPU with ``--device cpu``.

On a CUDA machine (``--device auto``, the default) this takes a few minutes (< 6 at the
defaults) and prints:

1. the device (name, memory, torch/CUDA versions);
2. a short fit of EDCSTFN and of MLFF-GAN on a synthetic ``--size``² cube (default 950),
   with AMP as ``xstf.models.fit`` uses it (bfloat16 autocast on CUDA GPUs that support
   it, no loss scaling), a few steps each: training throughput (patches/s of 95²
   patches, batch ``--batch``) and peak GPU memory;
3. prediction of one date on the device and on the CPU with the same weights: max |diff|
   (K; on CUDA also with TF32 off, torch's default being TF32 convolutions) and
   throughput (Mpixel/s);
4. a projection of the survey's full protocol per epoch: 34 training triplets of 950²,
   95² patches with stride 20 (1,849 patches per date, 62,866 per epoch) at the measured
   patches/s.

On CPU it is a smoke test of the same code paths: ``--device cpu --size 64`` runs in
seconds (a test runs it that way). Run::

    .venv/bin/python benchmarks/gpu_check.py                         # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu --size 64  # anywhere
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

import xstf
import xstf.models
from xstf.models import train
from xstf.models.tiling import predict_image

#: the survey's protocol: 34 training dates of 950 x 950, 95 px patches with stride 20
SURVEY = {"dates": 34, "size": 950, "patch": 95, "stride": 20}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _batch(
    ds: Any, n_refs: int, batch: int, patch: int, dev: torch.device, seed: int
) -> dict[str, torch.Tensor]:
    """A training batch of real (synthetic-cube) patches, normalised, on ``dev``."""
    from xstf.models.data import PatchDataset, samples, select_patches

    pairs = xstf.cube.pair_dates(ds)
    smp = samples(pairs[n_refs:], pairs, n_refs)
    patches = select_patches(ds, smp, patch, max(patch // 2, 1), 0.5)
    mean, std = float(ds.fine.mean()), float(ds.fine.std())
    data = PatchDataset(ds, smp, patches, patch, mean, std)
    idx = np.random.default_rng(seed).choice(len(patches), size=batch, replace=True)
    return {k: v.to(dev) for k, v in data.batch(idx.tolist()).items()}


def check_training(
    name: str, ds: Any, dev: torch.device, batch: int, patch: int, steps: int, amp: bool
) -> dict[str, float]:
    """Steps of the model's recipe, in ``fit``'s autocast: patches/s and peak memory."""
    spec = xstf.models.get_spec(name)
    torch.manual_seed(0)
    net = spec.build().to(dev)
    rec = spec.recipe(net, **({"ae_epochs": 0} if name == "edcstfn" else {}))
    b = _batch(ds, spec.n_refs, batch, patch, dev, 0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    losses = []  # device tensors: read back once, after the timed steps
    with train._autocast(dev, amp):  # the autocast fit trains in
        losses.append(rec.step(b)["loss"])  # warm-up (cuDNN autotune, allocations)
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            losses.append(rec.step(b)["loss"])
        _sync(dev)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    values = torch.stack([v.detach().float() for v in losses]).cpu().tolist()
    if not all(np.isfinite(values)):
        raise RuntimeError(f"{name}: non-finite loss (amp={amp}): {values}")
    return {"patches_per_s": steps * batch / dt, "peak_gib": peak, "last_loss": values[-1]}


def check_prediction(name: str, ds: Any, dev: torch.device, tile: int) -> dict[str, float]:
    """One date on ``dev`` and on the CPU with the same weights: agreement and Mpixel/s."""
    spec = xstf.models.get_spec(name)
    r = spec.n_refs
    imgs = [ds.coarse[-1].values, ds.coarse[0].values, ds.fine[0].values,
            ds.coarse[2].values, ds.fine[2].values]  # fmt: skip
    stack = np.stack(imgs[: 1 + 2 * r])
    stack = np.where(np.isfinite(stack), stack, np.nanmean(stack))
    mean, std = float(np.nanmean(stack)), float(np.nanstd(stack)) or 1.0
    torch.manual_seed(0)
    net_cpu = spec.build().eval()
    net_dev = spec.build().eval()
    net_dev.load_state_dict(net_cpu.state_dict())
    net_dev = net_dev.to(dev)
    predict_image(net_dev, stack, mean, std, r, tile=tile, device=dev)  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    on_dev = predict_image(net_dev, stack, mean, std, r, tile=tile, device=dev)
    _sync(dev)
    dt = time.perf_counter() - t0
    on_cpu = predict_image(net_cpu, stack, mean, std, r, tile=tile, device="cpu")
    h, w = stack.shape[1:]
    out = {"max_abs_diff_K": float(np.nanmax(np.abs(on_dev - on_cpu))),
           "mpixel_per_s": h * w / dt / 1e6, "seconds": dt}  # fmt: skip
    if dev.type == "cuda":
        # cuDNN convolutions run in TF32 by default (10-bit mantissas): the agreement in
        # strict float32 tells that rounding apart from a real disagreement
        flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            strict = predict_image(net_dev, stack, mean, std, r, tile=tile, device=dev)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
        out["max_abs_diff_K_without_tf32"] = float(np.nanmax(np.abs(strict - on_cpu)))
    return out


def projection(patches_per_s: float) -> dict[str, float]:
    """Seconds per epoch of the survey's protocol at ``patches_per_s``."""
    n = len(range(0, SURVEY["size"] - SURVEY["patch"] + 1, SURVEY["stride"])) ** 2  # 43² = 1,849
    total = SURVEY["dates"] * n
    return {"patches_per_epoch": total, "epoch_minutes": total / patches_per_s / 60}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cuda, cpu")
    ap.add_argument("--size", type=int, default=950, help="synthetic scene side (px)")
    ap.add_argument("--patch", type=int, default=95)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--models", default="edcstfn,mlffgan")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = _device(a.device)
    t_start = time.perf_counter()
    info = {
        "device": str(dev),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
    }
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(name=p.name, memory_gib=p.total_memory / 2**30, cuda=torch.version.cuda)
    else:
        info.update(name="CPU", threads=torch.get_num_threads())
    print("device:", json.dumps(info))
    patch = min(a.patch, a.size // 2)
    ds = xstf.datasets.synthetic(size=a.size, days=40, seed=0, cloud_fraction=0.1)
    # what fit(amp=None) does: bfloat16 autocast on CUDA GPUs that support it, none on CPU
    amp = not a.no_amp and train._resolve_amp(None, dev)
    out: dict = {"device": info, "models": {}}
    for name in a.models.split(","):
        tr = check_training(name, ds, dev, a.batch, patch, a.steps, amp)
        pr = check_prediction(name, ds, dev, a.tile)
        pj = projection(tr["patches_per_s"])
        out["models"][name] = {"training": tr, "prediction": pr, "survey_epoch": pj}
        strict = pr.get("max_abs_diff_K_without_tf32")
        strict_txt = "" if strict is None else f" ({strict:.2e} K without TF32)"
        print(f"{name}: training {tr['patches_per_s']:.1f} patches/s ({patch}² px, batch {a.batch}, "
              f"amp={amp}), peak GPU memory {tr['peak_gib']:.2f} GiB; prediction "
              f"{pr['mpixel_per_s']:.2f} Mpixel/s, max |{dev.type} - cpu| {pr['max_abs_diff_K']:.2e} K"
              f"{strict_txt}; survey epoch ({pj['patches_per_epoch']:,} patches of {SURVEY['patch']}²) "
              f"≈ {pj['epoch_minutes']:.1f} min")  # fmt: skip
    out["seconds"] = time.perf_counter() - t_start
    print(f"total {out['seconds']:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2, default=float)
    return out


if __name__ == "__main__":
    main()
