"""The generic training loop of the deep models (imports torch).

:func:`fit` drives any registered model through its
:class:`~xstf.models.base.TrainingRecipe`, in named steps: plan the fit (split,
options; restored from the checkpoint on resume), build the patch datasets
(:mod:`xstf.models.split`, :mod:`xstf.models.data`) with the normalisation of the training dates, build the
network and its recipe, then (not on resume) the recipe's ``prepare`` hook (EDCSTFN
and GAN-STFM train their auto-encoder there, with its own progress bar), then per
epoch ``recipe.step(batch)`` on every training batch, ``recipe.validation_loss`` on
every validation batch and ``recipe.end_epoch(val_loss)``; it keeps the best weights
(lowest validation loss), stops early after ``patience`` epochs without improvement,
writes checkpoints and can resume from one (``recipe.on_resume()`` after the states
are loaded).

Randomness: the shuffling and the per-epoch patch subsets come from one
:class:`torch.Generator` seeded with ``seed``; weight initialisation, dropout and
the recipes' own draws use the global torch RNG inside
:func:`torch.random.fork_rng`, seeded once, so the caller's global RNG state is the
same after :func:`fit` as before. Both states are checkpointed, so a resumed run
continues exactly.

Speed: the losses of each step stay on the device (one host sync per epoch), CUDA
fits run in bfloat16 autocast by default (``amp``), CPU fits on AVX-512 CPUs keep
every module's weights in the channels-last layout (oneDNN's fast convolutions; same
values; slower on AVX2-only CPUs, so not there), and the progress bar shows patches/s.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import inspect
import json
import logging
import os
import time
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import cube as _cube
from ..errors import CubeError
from .base import Batch, ModelSpec, TrainingRecipe
from .checkpoint import FittedModel, load_checkpoint, save_checkpoint
from .data import (
    NORMALISATIONS,
    PatchDataset,
    check_normalisation,
    date_levels,
    select_patches,
)
from .data import normalisation as _normalisation
from .registry import get_spec, resolve_device
from .split import Split, samples, split_dates

__all__ = ["LOAD_LIMIT", "PATCHES_PER_EPOCH", "fit"]

log = logging.getLogger("xstf.models")

#: A dask cube's training and validation dates are loaded into memory once when they take
#: at most this many bytes (otherwise they are read a date at a time, with a small cache).
LOAD_LIMIT = 2 * 1024**3

#: Default training patches per epoch (a fresh random subset each epoch): sized so that a
#: 20-epoch EDCSTFN fit of a 256 px synthetic year takes a few minutes on 2 CPU cores.
PATCHES_PER_EPOCH = 64


def _split_options(
    spec: ModelSpec, options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options of ``spec.build`` (architecture) vs the rest (training recipe)."""
    params = inspect.signature(spec.build).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    build_opts = {k: v for k, v in options.items() if k in params and k != "bands"}
    rest = {k: v for k, v in options.items() if k not in build_opts}
    if takes_all:
        return {**build_opts, **rest}, {}
    return build_opts, rest


class _OnDevice:
    """Iterate a DataLoader, moving every batch to ``device`` (and counting it on a bar)."""

    def __init__(self, loader: Iterable[Batch], device: torch.device, bar: Any = None) -> None:
        self.loader, self.device, self.bar = loader, device, bar

    def __iter__(self) -> Iterator[Batch]:
        nb = self.device.type == "cuda"
        for batch in self.loader:
            yield {k: v.to(self.device, non_blocking=nb) for k, v in batch.items()}
            if self.bar is not None:
                self.bar.update(int(batch["f_tgt"].shape[0]))

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def _state(modules: Mapping[str, torch.nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    return {
        k: {n: t.detach().cpu().clone() for n, t in m.state_dict().items()}
        for k, m in modules.items()
    }


def _lr(recipe: TrainingRecipe) -> float:
    opts = recipe.optimizers
    opt = opts.get("net") or next(iter(opts.values()))
    return float(opt.param_groups[0]["lr"])


def _version() -> str:
    try:
        return importlib.metadata.version("xstf")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "unknown"


@dataclass
class _Plan:
    """What a fit is driven by: chosen by the caller, or restored from a checkpoint."""

    split: Split
    fine: Hashable
    coarse: Hashable
    normalisation: str
    patch_size: int
    stride: int
    min_valid: float
    seed: int
    bands: int
    build_opts: dict[str, Any]
    recipe_opts: dict[str, Any]
    epochs: int
    batch_size: int
    patience: int
    max_patches: int | None
    patches_per_epoch: int | None
    mean: float | None = None
    std: float | None = None


@dataclass
class _Progress:
    """The loop's state: history, best weights and their epoch, patience counter."""

    best_state: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_loss: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    start: int = 0


def _patch_options(src: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's patch geometry, seed and bands, from the options or a checkpoint's config
    (which saves them under the same keys)."""
    return dict(
        patch_size=int(src["patch_size"]),
        stride=int(src["stride"]),
        min_valid=float(src["min_valid"]),
        seed=int(src["seed"]),
        bands=int(src["bands"]),
    )


def _plan_resume(
    ckpt: dict[str, Any], resume: Any, spec: ModelSpec, ds: xr.Dataset, opts: dict[str, Any]
) -> _Plan:
    if "optimizers" not in ckpt:
        raise ValueError(f"{resume} holds a saved model, not a training checkpoint (last.pt)")
    cfg = json.loads(ckpt["config"])
    if cfg["model"] != spec.name:
        raise ValueError(f"{resume} is a checkpoint of {cfg['model']!r}, not {spec.name!r}")
    fine, coarse = cfg["fine"], cfg["coarse"]
    if fine not in ds or coarse not in ds:
        raise CubeError(
            f"the checkpoint was trained on variables {fine!r}/{coarse!r}, which this cube lacks"
        )

    def given(key: str, saved: Any) -> Any:
        return saved if opts.get(key) is None else opts[key]

    return _Plan(
        split=Split.from_dict(cfg["split"]),
        fine=fine,
        coarse=coarse,
        normalisation=check_normalisation(cfg.get("normalisation", "global")),
        **_patch_options(cfg),
        build_opts=dict(cfg["model_options"]),
        recipe_opts=dict(cfg["train_options"]),
        epochs=opts["epochs"],
        batch_size=int(given("batch_size", cfg["batch_size"])),
        patience=int(given("patience", cfg["patience"])),
        max_patches=given("max_patches", cfg.get("max_patches")),
        patches_per_epoch=cfg.get("patches_per_epoch"),
        mean=float(cfg["mean"]),
        std=float(cfg["std"]),
    )


def _plan_new(ds: xr.Dataset, spec: ModelSpec, opts: dict[str, Any]) -> _Plan:
    pairs = _cube.pair_dates(ds, opts["fine"], opts["coarse"], opts["min_coverage"])
    build_opts, recipe_opts = _split_options(spec, opts["model_options"])
    if opts["lr"] is not None:
        recipe_opts["lr"] = float(opts["lr"])
    return _Plan(
        split=split_dates(pairs, opts["split"], n_refs=spec.n_refs),
        fine=opts["fine"],
        coarse=opts["coarse"],
        normalisation=check_normalisation(opts["normalisation"]),
        **_patch_options(opts),
        build_opts=build_opts,
        recipe_opts=recipe_opts,
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        patience=opts["patience"],
        max_patches=opts["max_patches"],
        patches_per_epoch=opts["patches_per_epoch"],
    )


def _apply_defaults(plan: _Plan, spec: ModelSpec) -> None:
    d = spec.defaults
    plan.epochs = int(d.get("epochs", 30) if plan.epochs is None else plan.epochs)
    plan.batch_size = int(d.get("batch_size", 16) if plan.batch_size is None else plan.batch_size)
    plan.patience = int(d.get("patience", 10) if plan.patience is None else plan.patience)
    if plan.epochs < 1 or plan.batch_size < 1 or plan.patience < 1:
        raise ValueError(
            f"epochs, batch_size and patience must be >= 1; got {plan.epochs}, "
            f"{plan.batch_size}, {plan.patience}"
        )
    ppe = plan.patches_per_epoch
    if ppe is not None and int(ppe) < 1:
        raise ValueError(f"patches_per_epoch must be >= 1 or None (all), got {ppe}")


def _subset(items: list[Any], n: int | None, seed: int) -> list[Any]:
    if n is None or len(items) <= n:
        return items
    keep = np.sort(np.random.default_rng(seed).choice(len(items), int(n), replace=False))
    return [items[i] for i in keep]


def _training_cube(ds: xr.Dataset, plan: _Plan) -> xr.Dataset:
    """The cube restricted to the training and validation dates (the test dates are not even
    in it), loaded once when dask-backed and at most :data:`LOAD_LIMIT` bytes."""
    dates = sorted(set(plan.split.train) | set(plan.split.val))
    sub = ds[[plan.fine, plan.coarse]].sel(time=dates)
    lazy = any(not isinstance(sub[v].data, np.ndarray) for v in (plan.fine, plan.coarse))
    if lazy and sub.nbytes <= LOAD_LIMIT:
        log.info("loading the %d training/validation dates (%.0f MB)", len(dates), sub.nbytes / 1e6)
        sub = sub.load()
    return sub


def _datasets(ds: xr.Dataset, plan: _Plan, n_refs: int) -> tuple[PatchDataset, PatchDataset]:
    """Training and validation patch datasets; sets ``plan.mean``/``plan.std`` on a new fit."""
    ds = _training_cube(ds, plan)
    sp, fine, coarse = plan.split, plan.fine, plan.coarse
    levels = None
    if plan.normalisation == "date_level":
        levels = date_levels(ds, list(sp.train) + list(sp.val), coarse).compute()
    if plan.mean is None:
        plan.mean, plan.std = _normalisation(ds, sp.train, fine, coarse, levels=levels)
    train_s = samples(sp.train, sp.train, n_refs)
    val_s = samples(sp.val, sp.train, n_refs)
    size, stride, mv = plan.patch_size, plan.stride, plan.min_valid
    train_p = select_patches(ds, train_s, size, stride, mv, fine, coarse)
    val_p = select_patches(ds, val_s, size, stride, mv, fine, coarse)
    if not val_s:
        warnings.warn(
            f"the split has no validation date ({len(sp.train)} training, {len(sp.test)} test "
            "pairs): the validation loss (LR schedule, early stopping, best weights) is computed "
            "on the training patches",
            UserWarning,
            stacklevel=3,
        )
        val_s, val_p = train_s, train_p
    for what, p, s in (("training", train_p, train_s), ("validation", val_p, val_s)):
        if not p:
            raise CubeError(
                f"no {what} patch of {size} px has >= {mv:.0%} valid target pixels "
                f"on the {len(s)} {what} date(s) {[str(x.target.date()) for x in s]}: lower "
                "min_valid or patch_size, or choose clearer dates"
            )
    same = val_p is train_p
    train_p = _subset(train_p, plan.max_patches, plan.seed)
    # the validation set is a fixed subset (the same every epoch, so losses compare)
    val_p = train_p if same else _subset(val_p, plan.patches_per_epoch, plan.seed + 1)
    lv = (
        None
        if levels is None
        else dict(zip(levels.indexes["time"], levels.values.tolist(), strict=True))
    )
    mean, std = float(plan.mean), float(plan.std)  # type: ignore[arg-type]
    return (
        PatchDataset(ds, train_s, train_p, plan.patch_size, mean, std, fine, coarse, levels=lv),
        PatchDataset(ds, val_s, val_p, plan.patch_size, mean, std, fine, coarse, levels=lv),
    )


def _config(
    spec: ModelSpec, plan: _Plan, ds: xr.Dataset, min_coverage: float, n: tuple[int, int]
) -> dict[str, Any]:
    return {
        "model": spec.name,
        "bands": plan.bands,
        "model_options": plan.build_opts,
        "train_options": plan.recipe_opts,
        "n_refs": spec.n_refs,
        "fine": str(plan.fine),
        "coarse": str(plan.coarse),
        "resolution_ratio": _cube.resolution_ratio(ds),
        "normalisation": plan.normalisation,
        "mean": plan.mean,
        "std": plan.std,
        "patch_size": plan.patch_size,
        "stride": plan.stride,
        "min_valid": plan.min_valid,
        "min_coverage": float(min_coverage),
        "split": plan.split.to_dict(),
        "seed": plan.seed,
        "batch_size": plan.batch_size,
        "patience": plan.patience,
        "max_patches": None if plan.max_patches is None else int(plan.max_patches),
        "patches_per_epoch": None
        if plan.patches_per_epoch is None
        else int(plan.patches_per_epoch),
        "train_patches": n[0],
        "val_patches": n[1],
        "xstf_version": _version(),
    }


def _train_loader(
    dataset: PatchDataset, plan: _Plan, gen: torch.Generator, num_workers: int
) -> torch.utils.data.DataLoader:
    """Shuffled batches; with ``patches_per_epoch``, a fresh random subset per iteration."""
    n = len(dataset)
    k = n if plan.patches_per_epoch is None else min(n, int(plan.patches_per_epoch))
    sampler = torch.utils.data.RandomSampler(
        dataset,
        replacement=False,
        num_samples=k,
        generator=gen,
    )
    # an incomplete last batch is dropped, as the reference code does (drop_last=True):
    # a batch of one patch crashes the discriminators' BatchNorm in training mode, and
    # one of two makes their gradient explode; with fewer patches than a batch, the one
    # incomplete batch is kept
    return torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=plan.batch_size,
        sampler=sampler,
        generator=gen,
        num_workers=num_workers,
        drop_last=k > plan.batch_size,
    )


def _val_loader(
    dataset: PatchDataset, batch_size: int, num_workers: int
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=False,
        generator=torch.Generator().manual_seed(0),  # drawn by workers only; not the global RNG
        num_workers=num_workers,
    )


def _restore(
    recipe: TrainingRecipe, ckpt: dict[str, Any], gen: torch.Generator, dev: torch.device
) -> _Progress:
    """Load the modules, optimisers, schedulers, RNG states and loop state of ``last.pt``."""
    for name, m in recipe.modules.items():
        m.load_state_dict(ckpt["modules"][name])
    for name, o in recipe.optimizers.items():
        o.load_state_dict(ckpt["optimizers"][name])
    for name, s in recipe.schedulers.items():
        if name in ckpt.get("schedulers", {}):
            s.load_state_dict(ckpt["schedulers"][name])
    rng = ckpt.get("rng", {})
    if "generator" in rng:
        gen.set_state(rng["generator"])
    if "cpu" in rng:
        torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and dev.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], dev)
    recipe.on_resume()
    return _Progress(
        best_state=ckpt["best"],
        history=json.loads(ckpt["history"]),
        best_loss=float(ckpt["best_loss"]),
        best_epoch=int(ckpt["best_epoch"]),
        bad_epochs=int(ckpt["bad_epochs"]),
        start=int(ckpt["epoch"]) + 1,
    )


def _check_checkpoint_dir(ckdir: Path | None, resume: Any, overwrite: bool) -> None:
    if ckdir is None:
        return
    resuming_here = resume is not None and Path(resume).resolve().parent == ckdir.resolve()
    existing = [p for p in ("last.pt", "best.pt") if (ckdir / p).exists()]
    if existing and not (overwrite or resuming_here):
        raise FileExistsError(
            f"{ckdir} already holds {existing}: pass overwrite=True, another checkpoint_dir, "
            f"or resume={str(ckdir / 'last.pt')!r}"
        )


def _hits_onednn_1x1_strided_bug(module: torch.nn.Module) -> bool:
    """A 1x1 convolution with a stride and fewer input channels than a SIMD block (16).

    oneDNN's channels-last (nhwc) backward-weights kernel for it writes past its
    workspace when the input channels are fewer than the block (uxlfoundation/oneDNN
    issue 6035): on AVX2 CPUs torch 2.13 hangs, crashes or gives wrong weight gradients.
    GAN-STFM's discriminator has one (its first block's shortcut, 2 input channels).
    """
    return (
        isinstance(module, torch.nn.Conv2d)
        and tuple(module.kernel_size) == (1, 1)
        and max(module.stride) > 1
        and module.in_channels < 16
    )


def _contiguous_inputs(module: torch.nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the module's tensor inputs in contiguous layout."""
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def _cpu_trains_faster_channels_last() -> bool:
    """Whether this CPU is one where channels-last training was measured to pay (AVX-512).

    On an AVX-512 CPU (Zen 4) EDCSTFN's step ran 1.24x faster in channels-last layout;
    on an AVX2-only CPU it ran 0.85x (slower), so there fits stay contiguous.
    """
    return torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512")


def _to_channels_last(modules: Iterable[torch.nn.Module]) -> None:
    """Modules in channels-last layout, in place (the same parameter objects).

    Convolutions that hit oneDNN's channels-last 1x1 strided backward bug stay
    contiguous and get contiguous inputs.
    """
    for module in modules:
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for conv in module.modules():
            if _hits_onednn_1x1_strided_bug(conv):
                conv.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
                conv.register_forward_pre_hook(_contiguous_inputs)


def _channels_last(recipe: TrainingRecipe, dev: torch.device) -> None:
    """On an AVX-512 CPU, every module of the recipe in channels-last layout (oneDNN's
    fast path for it).

    Same values and the same parameter objects (the optimisers keep theirs), so the
    same loss curve up to float32 rounding; 1.24x the patches/s of EDCSTFN on a 2-core
    AVX-512 CPU, 0.85x on an AVX2 one (docs/guide/scaling.md).
    """
    if dev.type == "cpu" and _cpu_trains_faster_channels_last():
        _to_channels_last(recipe.modules.values())


def _autocast(dev: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def _cpu_has_native_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); None if torch
    cannot tell (the probes are private torch functions)."""
    probes = [
        getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    found = [bool(p()) for p in probes if callable(p)]
    return any(found) if found else None


def _resolve_amp(amp: bool | None, dev: torch.device) -> bool:
    if amp is None:  # bfloat16 autocast on CUDA GPUs that support it (no loss scaling needed)
        return dev.type == "cuda" and torch.cuda.is_bf16_supported()
    if amp and dev.type == "cpu" and _cpu_has_native_bf16() is False:
        warnings.warn(
            "amp=True on a CPU without native bfloat16 (no AVX512-BF16 or AMX): torch "
            "emulates it, so training is slower than float32; pass amp=False",
            UserWarning,
            stacklevel=3,
        )
    return bool(amp)


def _epoch_size(loader: _OnDevice) -> int:
    """Patches one pass over a training loader yields."""
    dl = loader.loader
    assert isinstance(dl, torch.utils.data.DataLoader)
    return len(dl.sampler)  # type: ignore[arg-type]


def _pretrain(recipe: TrainingRecipe, loader: _OnDevice, name: str, progress: bool) -> None:
    """The recipe's ``prepare`` hook, with its own progress bar (patches)."""
    from tqdm.auto import tqdm

    passes = int(recipe.prepare_passes)
    if passes <= 0:
        recipe.prepare(loader)
        return
    n = _epoch_size(loader)
    with tqdm(
        total=passes * n,
        desc=f"{name} auto-encoder",
        unit="patch",
        disable=not progress,
        leave=False,
    ) as bar:
        loader.bar = bar
        recipe.prepare(loader)
        loader.bar = None


def _train_epoch(
    recipe: TrainingRecipe, loader: _OnDevice, dev: torch.device, amp: bool
) -> dict[str, float]:
    """One pass of ``recipe.step``; mean losses (accumulated on the device: one sync)."""
    recipe.modules["net"].train()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for batch in loader:
        with _autocast(dev, amp):
            losses = recipe.step(batch)
        b = int(batch["f_tgt"].shape[0])
        for k, v in losses.items():
            v = torch.as_tensor(v, device=dev).detach().float()
            sums[k] = sums[k] + v * b if k in sums else v * b
        count += b
    if not sums:
        return {}
    values = torch.stack(list(sums.values())).cpu().tolist()
    return {k: v / max(count, 1) for k, v in zip(sums, values, strict=True)}


def _validate(recipe: TrainingRecipe, loader: _OnDevice, dev: torch.device, amp: bool) -> float:
    recipe.modules["net"].eval()
    total = torch.zeros((), device=dev)
    count = 0
    with torch.no_grad():
        for batch in loader:
            b = int(batch["f_tgt"].shape[0])
            with _autocast(dev, amp):
                v = recipe.validation_loss(batch)
            total = total + torch.as_tensor(v, device=dev).float() * b
            count += b
    return float(total) / max(count, 1)


def _save_last(
    path: Path,
    config: dict,
    recipe: TrainingRecipe,
    prog: _Progress,
    epoch: int,
    gen: torch.Generator,
    dev: torch.device,
) -> None:
    rng = {"generator": gen.get_state(), "cpu": torch.get_rng_state()}
    if dev.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(dev)
    save_checkpoint(
        path,
        {
            "config": json.dumps(config),
            "history": json.dumps(prog.history),
            "modules": _state(recipe.modules),
            "optimizers": {k: o.state_dict() for k, o in recipe.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in recipe.schedulers.items()},
            "rng": rng,
            "best": prog.best_state,
            "epoch": epoch,
            "best_epoch": prog.best_epoch,
            "best_loss": prog.best_loss,
            "bad_epochs": prog.bad_epochs,
        },
        overwrite=True,
    )


def _end_epoch(
    recipe: TrainingRecipe,
    prog: _Progress,
    rec: dict[str, Any],
    config: dict,
    ckdir: Path | None,
    name: str,
) -> None:
    """History, best weights (and best.pt), patience counter after one epoch."""
    prog.history.append(rec)
    if rec["val_loss"] < prog.best_loss:
        prog.best_loss, prog.best_epoch, prog.bad_epochs = rec["val_loss"], rec["epoch"], 0
        prog.best_state = _state(recipe.modules)
        if ckdir is not None:
            net = recipe.modules["net"]
            best = FittedModel(
                name,
                copy.deepcopy(net).cpu(),
                {**config, "best_epoch": prog.best_epoch},
                prog.history,
            )
            best.save(ckdir / "best.pt", overwrite=True)
    else:
        prog.bad_epochs += 1


def _rng_scope(dev: torch.device) -> contextlib.AbstractContextManager:
    """Isolate the global torch RNG: the caller's state is restored when the fit ends."""
    devices = (
        [dev.index if dev.index is not None else torch.cuda.current_device()]
        if dev.type == "cuda"
        else []
    )
    return torch.random.fork_rng(devices=devices)


def fit(
    ds: xr.Dataset,
    model: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    patch_size: int = 48,
    stride: int = 16,
    split: Mapping[str, Any] | Sequence[float] | None = None,
    min_valid: float = 0.5,
    device: str | torch.device = "auto",
    seed: int = 0,
    lr: float | None = None,
    patience: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    max_patches: int | None = None,
    num_workers: int = 0,
    overwrite: bool = False,
    normalisation: str = NORMALISATIONS[0],
    patches_per_epoch: int | None = PATCHES_PER_EPOCH,
    amp: bool | None = None,
    **model_options: Any,
) -> FittedModel:
    """Train a deep fusion model on the pairs of a cube.

    Samples ``(C_ref…, F_ref…, C_tgt) -> F_tgt`` are built from the pair dates
    (references by :func:`xstf.cube.reference_pairs`), split by date into
    training / validation / test dates, cut into patches and normalised with
    statistics of the training dates (see :mod:`xstf.models.data`); by default
    each sample is first taken relative to its *date level*, the scene mean of the
    target date's coarse image (``normalisation="date_level"``). Training uses
    the model's recipe (Adam and the published schedule), a masked loss (missing
    target pixels do not count), the validation loss each epoch, early stopping and
    the best weights.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (numpy- or dask-backed; dask cubes are read a date at a time).
    model : str
        A name from :func:`xstf.models.available`.
    epochs : int, optional
        Maximum epochs (model default, e.g. 30 for EDCSTFN).
    batch_size : int, optional
        Patches per batch (model default).
    patch_size, stride : int
        Patch side and stride in fine pixels (48 and 16, sized for a CPU; the
        survey's protocol is 95 and 20 with ``patches_per_epoch=None``).
    split : dict or (float, float), optional
        Explicit dates ``{"train": [...], "val": [...], "test": [...]}`` or the
        ``(validation, test)`` shares of the pairs; see
        :func:`xstf.models.split.split_dates`. Test dates are never used in training.
    min_valid : float
        Least share of valid target pixels for a patch to be used.
    device : str or torch.device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``...
    seed : int
        Seeds weights, shuffling, the patch subsets and dropout; on CPU two fits with
        one seed give identical weights. The caller's global torch RNG state is left
        as it was.
    lr : float, optional
        Learning rate (the model's published one by default).
    patience : int, optional
        Epochs without validation improvement before stopping (model default).
    checkpoint_dir : path, optional
        Folder for ``last.pt`` (full training state, written every epoch) and
        ``best.pt`` (the best model, loadable with :func:`xstf.load_model`).
        Existing files there are only replaced with ``overwrite=True`` (or when
        resuming from that folder).
    resume : path, optional
        A ``last.pt`` to continue from: weights, optimiser and scheduler states,
        history, split and normalisation are restored; training goes on up to
        ``epochs`` (giving the same result as an uninterrupted run).
    progress : bool
        Show a tqdm bar with the losses.
    fine, coarse : hashable
        Variable names.
    min_coverage : float
        Coverage for a date to count as a pair.
    max_patches : int, optional
        Use at most this many training patches (a fixed, seeded random subset).
    num_workers : int
        DataLoader worker processes.
    overwrite : bool
        Allow replacing files in ``checkpoint_dir``.
    normalisation : {"date_level", "global"}
        ``"date_level"`` (default): from every image of a sample (references and
        target, fine and coarse) subtract the sample's level — the mean of the
        target date's coarse image over the whole scene (valid pixels,
        :func:`xstf.models.data.date_levels`) — then normalise the anomalies with the
        mean and standard deviation of the training dates' anomalies. Prediction
        subtracts the same level (the target coarse scene mean) and adds it back, so
        a target date warmer or colder than every training date stays in
        distribution and the network learns the fine-scale anomaly, not the MODIS
        level. ``"global"``: one mean and standard deviation of the training dates'
        LST (the behaviour before this option; also what a model config without the
        key means). Stored in ``config["normalisation"]``; on ``resume`` the
        checkpoint's choice is used.
    patches_per_epoch : int or None
        Training patches per epoch: a fresh random subset of the training patches
        each epoch (seeded), :data:`PATCHES_PER_EPOCH` by default, sized for a CPU;
        the validation loss uses a fixed subset of at most as many validation patches.
        ``None``: every patch every epoch (the published protocol, for a GPU).
    amp : bool, optional
        Train in bfloat16 autocast (the losses' SSIM terms stay float32). Default: on
        for CUDA devices that support bfloat16, off on CPU. On a CPU with native
        bfloat16 (AVX512-BF16 or AMX) ``amp=True`` can train faster at the same loss
        per epoch, most on large batches of large patches (see the scaling guide); on
        other CPUs it is emulated and slower (a warning says so).
    **model_options
        Architecture options (passed to the model's ``build``, e.g. ``width``) and
        training options (passed to its recipe, e.g. ``ae_epochs`` for EDCSTFN).

    Returns
    -------
    FittedModel
        With the best weights, the config (names, resolution ratio, normalisation,
        split dates, options) and the history.

    Raises
    ------
    CubeError
        Too few pairs for the split (counts named), no usable patch.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=120, seed=1, cloud_fraction=0.0)
    >>> m = xstf.models.fit(ds, "edcstfn", epochs=1, batch_size=4, patch_size=32, stride=16,
    ...                     width=4, ae_epochs=1, progress=False, device="cpu")
    >>> len(m.history), m.config["fine"]
    (1, 'fine')
    >>> m.config["normalisation"]
    'date_level'
    """
    spec = get_spec(model)
    dev = resolve_device(device)
    _cube.validate(ds, fine, coarse, min_coverage, require_pairs=0)
    opts = dict(
        epochs=epochs, batch_size=batch_size, patch_size=patch_size, stride=stride, split=split,
        min_valid=min_valid, seed=seed, lr=lr, patience=patience, fine=fine, coarse=coarse,
        min_coverage=min_coverage, max_patches=max_patches, normalisation=normalisation,
        patches_per_epoch=patches_per_epoch, bands=int(model_options.pop("bands", 1)),
        model_options=model_options,
    )  # fmt: skip
    ckpt = None if resume is None else load_checkpoint(resume)
    plan = _plan_new(ds, spec, opts) if ckpt is None else _plan_resume(ckpt, resume, spec, ds, opts)
    _apply_defaults(plan, spec)
    train_ds, val_ds = _datasets(ds, plan, spec.n_refs)
    ckdir = None if checkpoint_dir is None else Path(checkpoint_dir)
    _check_checkpoint_dir(ckdir, resume, overwrite)
    config = _config(spec, plan, ds, min_coverage, (len(train_ds), len(val_ds)))
    with _rng_scope(dev):
        return _run(spec, plan, config, train_ds, val_ds, ckpt, ckdir, dev, _resolve_amp(amp, dev),
                    progress, num_workers)  # fmt: skip


def _run(
    spec: ModelSpec,
    plan: _Plan,
    config: dict[str, Any],
    train_ds: PatchDataset,
    val_ds: PatchDataset,
    ckpt: dict[str, Any] | None,
    ckdir: Path | None,
    dev: torch.device,
    amp: bool,
    progress: bool,
    num_workers: int,
) -> FittedModel:
    """Build the network and recipe, then prepare / restore, then the epochs (seeded RNG scope)."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(plan.seed)
    torch.default_generator.manual_seed(plan.seed)  # inside fork_rng: weights, dropout
    if dev.type == "cuda":
        torch.cuda.manual_seed(plan.seed)
    net = spec.build(bands=plan.bands, **plan.build_opts).to(dev)
    recipe = spec.recipe(net, **plan.recipe_opts)
    if "net" not in recipe.modules:
        raise TypeError(f"the recipe of {spec.name!r} has no 'net' module")
    _channels_last(recipe, dev)
    train_loader = _OnDevice(_train_loader(train_ds, plan, gen, num_workers), dev)
    val_loader = _OnDevice(_val_loader(val_ds, plan.batch_size, num_workers), dev)
    log.info(
        "fitting %s on %d training / %d validation pair dates (%d / %d patches of %d px, %s per "
        "epoch) on %s%s", spec.name, len(plan.split.train), len(plan.split.val), len(train_ds),
        len(val_ds), plan.patch_size, plan.patches_per_epoch or "all", dev, " (bf16 autocast)" * amp,
    )  # fmt: skip
    if ckpt is None:
        prog = _Progress(best_state=_state(recipe.modules))
        _pretrain(recipe, train_loader, spec.name, progress)
    else:
        prog = _restore(recipe, ckpt, gen, dev)
    per_epoch = _epoch_size(train_loader)
    total = max(0, plan.epochs - prog.start) * per_epoch
    with tqdm(total=total, desc=spec.name, unit="patch", disable=not progress, leave=False) as bar:
        train_loader.bar = bar
        for epoch in range(prog.start, plan.epochs):
            if prog.bad_epochs >= plan.patience:
                break
            t0 = time.perf_counter()
            rec: dict[str, Any] = {"epoch": epoch, **_train_epoch(recipe, train_loader, dev, amp)}
            rec["val_loss"] = val_loss = _validate(recipe, val_loader, dev, amp)
            recipe.end_epoch(val_loss)
            rec.update(lr=_lr(recipe), seconds=time.perf_counter() - t0)
            _end_epoch(recipe, prog, rec, config, ckdir, spec.name)
            bar.set_postfix(epoch=epoch, loss=f"{rec.get('loss', float('nan')):.4g}",
                            val=f"{val_loss:.4g}", lr=f"{rec['lr']:.2g}", refresh=True)  # fmt: skip
            log.info("%s epoch %d: %s", spec.name, epoch, rec)
            if ckdir is not None:
                _save_last(ckdir / "last.pt", config, recipe, prog, epoch, gen, dev)
    net.load_state_dict(prog.best_state["net"])
    net.eval()
    config["best_epoch"] = prog.best_epoch
    return FittedModel(spec.name, net, config, prog.history)
