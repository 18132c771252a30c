"""The generic training loop of the deep models (imports torch).

:func:`fit` drives any registered model through its
:class:`~xstf.models.base.TrainingRecipe`: it builds the samples and the split
(:mod:`xstf.models.data`), fits the normalisation on the training dates, optionally
calls the recipe's ``prepare(loader)`` hook once before the first epoch (EDCSTFN
trains its auto-encoder there), then per epoch calls ``recipe.step(batch)`` on
every training batch, ``recipe.validation_loss(batch)`` on every validation batch
and ``recipe.end_epoch(val_loss)``; it keeps the best weights (lowest validation
loss), stops early after ``patience`` epochs without improvement, writes
checkpoints and can resume from one.

Optional recipe attributes the loop uses when present: ``prepare(loader)`` (called
once, not on resume, with an iterable of training batches already on the device)
and ``schedulers`` (a dict of LR schedulers whose state is checkpointed).
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import time
import warnings
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import cube as _cube
from ..errors import CubeError
from . import get_spec
from .base import Batch, ModelSpec, TrainingRecipe
from .checkpoint import FittedModel, load_checkpoint, save_checkpoint
from .data import (
    NORMALISATIONS,
    PatchDataset,
    Split,
    check_normalisation,
    date_levels,
    samples,
    select_patches,
    split_dates,
)
from .data import normalisation as _normalisation

__all__ = ["fit", "resolve_device"]

log = logging.getLogger("xstf.models")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else as given.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available here; use device='cpu' or 'auto'"
        )
    return dev


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
    """Iterate a DataLoader, moving every batch to ``device``."""

    def __init__(self, loader: Iterable[Batch], device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __iter__(self) -> Iterator[Batch]:
        nb = self.device.type == "cuda"
        for batch in self.loader:
            yield {k: v.to(self.device, non_blocking=nb) for k, v in batch.items()}

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def _loader(dataset: PatchDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int):
    g = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=shuffle,
        generator=g,
        num_workers=num_workers,
        drop_last=False,
    )


def _state(modules: Mapping[str, torch.nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    return {
        k: {n: t.detach().cpu().clone() for n, t in m.state_dict().items()}
        for k, m in modules.items()
    }


def _lr(recipe: TrainingRecipe) -> float:
    opts = recipe.optimizers
    opt = opts.get("net") or next(iter(opts.values()))
    return float(opt.param_groups[0]["lr"])


def fit(
    ds: xr.Dataset,
    model: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    patch_size: int = 95,
    stride: int = 20,
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
        Patch side and stride in fine pixels (95 and 20, the survey's protocol).
    split : dict or (float, float), optional
        Explicit dates ``{"train": [...], "val": [...], "test": [...]}`` or the
        ``(validation, test)`` shares of the pairs; see
        :func:`xstf.models.data.split_dates`. Test dates are never used in training.
    min_valid : float
        Least share of valid target pixels for a patch to be used.
    device : str or torch.device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``...
    seed : int
        Seeds weights, shuffling and dropout; on CPU two fits with one seed give
        identical weights.
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
        Use at most this many training patches (a seeded random subset), for quick runs.
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
    from tqdm.auto import tqdm

    spec = get_spec(model)
    dev = resolve_device(device)
    _cube.validate(ds, fine, coarse, min_coverage, require_pairs=0)
    n_refs = spec.n_refs
    bands = int(model_options.pop("bands", 1))
    ckpt: dict[str, Any] | None = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if "optimizers" not in ckpt:
            raise ValueError(f"{resume} holds a saved model, not a training checkpoint (last.pt)")
        cfg0 = json.loads(ckpt["config"])
        if cfg0["model"] != spec.name:
            raise ValueError(f"{resume} is a checkpoint of {cfg0['model']!r}, not {spec.name!r}")
        sp = Split.from_dict(cfg0["split"])
        mean, std = float(cfg0["mean"]), float(cfg0["std"])
        normalisation = check_normalisation(cfg0.get("normalisation", "global"))
        patch_size, stride = int(cfg0["patch_size"]), int(cfg0["stride"])
        min_valid, seed = float(cfg0["min_valid"]), int(cfg0["seed"])
        build_opts = dict(cfg0["model_options"])
        recipe_opts = dict(cfg0["train_options"])
        bands = int(cfg0["bands"])
        batch_size = int(cfg0["batch_size"]) if batch_size is None else batch_size
        patience = int(cfg0["patience"]) if patience is None else patience
        max_patches = cfg0.get("max_patches") if max_patches is None else max_patches
        fine, coarse = cfg0["fine"], cfg0["coarse"]
        if fine not in ds or coarse not in ds:
            raise CubeError(
                f"the checkpoint was trained on variables {fine!r}/{coarse!r}, which this cube lacks"
            )
    else:
        pairs = _cube.pair_dates(ds, fine, coarse, min_coverage)
        sp = split_dates(pairs, split, n_refs=n_refs)
        build_opts, recipe_opts = _split_options(spec, model_options)
        if lr is not None:
            recipe_opts["lr"] = float(lr)
        normalisation = check_normalisation(normalisation)
    epochs = int(spec.defaults.get("epochs", 30) if epochs is None else epochs)
    batch_size = int(spec.defaults.get("batch_size", 16) if batch_size is None else batch_size)
    patience = int(spec.defaults.get("patience", 10) if patience is None else patience)
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise ValueError(
            f"epochs, batch_size and patience must be >= 1; got {epochs}, {batch_size}, {patience}"
        )

    levels = None
    if normalisation == "date_level":
        levels = date_levels(ds, list(sp.train) + list(sp.val), coarse).compute()
    if ckpt is None:
        mean, std = _normalisation(ds, sp.train, fine, coarse, levels=levels)
    train_s = samples(sp.train, sp.train, n_refs)
    val_s = samples(sp.val, sp.train, n_refs)
    train_p = select_patches(ds, train_s, patch_size, stride, min_valid, fine, coarse)
    val_p = select_patches(ds, val_s, patch_size, stride, min_valid, fine, coarse)
    if not val_s:
        warnings.warn(
            f"the split has no validation date ({len(sp.train)} training, {len(sp.test)} test "
            "pairs): the validation loss (LR schedule, early stopping, best weights) is computed "
            "on the training patches",
            UserWarning,
            stacklevel=2,
        )
        val_s, val_p = train_s, train_p
    for what, p, s in (("training", train_p, train_s), ("validation", val_p, val_s)):
        if not p:
            raise CubeError(
                f"no {what} patch of {patch_size} px has >= {min_valid:.0%} valid target pixels "
                f"on the {len(s)} {what} date(s) {[str(x.target.date()) for x in s]}: lower "
                "min_valid or patch_size, or choose clearer dates"
            )
    if max_patches is not None and len(train_p) > max_patches:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(train_p), int(max_patches), replace=False))
        same = val_p is train_p
        train_p = [train_p[i] for i in keep]
        val_p = train_p if same else val_p
    lv_map = None
    if levels is not None:
        lv_map = dict(zip(levels.indexes["time"], levels.values.tolist(), strict=True))
    train_ds = PatchDataset(
        ds, train_s, train_p, patch_size, mean, std, fine, coarse, levels=lv_map
    )
    val_ds = PatchDataset(ds, val_s, val_p, patch_size, mean, std, fine, coarse, levels=lv_map)

    torch.manual_seed(seed)
    net = spec.build(bands=bands, **build_opts).to(dev)
    recipe = spec.recipe(net, **recipe_opts)
    if "net" not in recipe.modules:
        raise TypeError(f"the recipe of {spec.name!r} has no 'net' module")
    schedulers: dict[str, Any] = getattr(recipe, "schedulers", {}) or {}

    config: dict[str, Any] = {
        "model": spec.name,
        "bands": bands,
        "model_options": build_opts,
        "train_options": recipe_opts,
        "n_refs": n_refs,
        "fine": str(fine),
        "coarse": str(coarse),
        "resolution_ratio": _cube.resolution_ratio(ds),
        "normalisation": normalisation,
        "mean": mean,
        "std": std,
        "patch_size": int(patch_size),
        "stride": int(stride),
        "min_valid": float(min_valid),
        "min_coverage": float(min_coverage),
        "split": sp.to_dict(),
        "seed": int(seed),
        "batch_size": batch_size,
        "patience": patience,
        "max_patches": None if max_patches is None else int(max_patches),
        "train_patches": len(train_p),
        "val_patches": len(val_p),
        "xstf_version": _version(),
    }
    history: list[dict[str, Any]] = []
    best_loss, best_epoch, bad_epochs, start = float("inf"), -1, 0, 0
    best_state = _state(recipe.modules)
    if ckpt is not None:
        for name, m in recipe.modules.items():
            m.load_state_dict(ckpt["modules"][name])
        for name, o in recipe.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][name])
        for name, s in schedulers.items():
            if name in ckpt.get("schedulers", {}):
                s.load_state_dict(ckpt["schedulers"][name])
        history = json.loads(ckpt["history"])
        best_state = ckpt["best"]
        best_loss, best_epoch = float(ckpt["best_loss"]), int(ckpt["best_epoch"])
        bad_epochs, start = int(ckpt["bad_epochs"]), int(ckpt["epoch"]) + 1
        if hasattr(recipe, "_freeze_autoencoder"):
            recipe._freeze_autoencoder()

    ckdir = None if checkpoint_dir is None else Path(checkpoint_dir)
    if ckdir is not None:
        resuming_here = resume is not None and Path(resume).resolve().parent == ckdir.resolve()
        existing = [p for p in ("last.pt", "best.pt") if (ckdir / p).exists()]
        if existing and not (overwrite or resuming_here):
            raise FileExistsError(
                f"{ckdir} already holds {existing}: pass overwrite=True, another checkpoint_dir, "
                f"or resume={str(ckdir / 'last.pt')!r}"
            )

    log.info(
        "fitting %s on %d training / %d validation pair dates (%d / %d patches of %d px) on %s",
        spec.name, len(sp.train), len(sp.val), len(train_p), len(val_p), patch_size, dev,
    )  # fmt: skip
    if ckpt is None and hasattr(recipe, "prepare"):
        torch.manual_seed(seed + 1)
        recipe.prepare(_OnDevice(_loader(train_ds, batch_size, True, seed + 1, num_workers), dev))  # type: ignore[attr-defined]

    n_batches = -(-len(train_ds) // batch_size)
    bar = tqdm(
        total=max(0, epochs - start) * n_batches, desc=spec.name, disable=not progress, leave=False
    )
    try:
        for epoch in range(start, epochs):
            if bad_epochs >= patience:
                break
            t0 = time.perf_counter()
            torch.manual_seed(seed * 100_003 + epoch + 17)
            loader = _OnDevice(
                _loader(train_ds, batch_size, True, seed * 7919 + epoch, num_workers), dev
            )
            net.train()
            sums: dict[str, float] = {}
            count = 0
            for batch in loader:
                losses = recipe.step(batch)
                b = int(batch["f_tgt"].shape[0])
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * b
                count += b
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
            net.eval()
            vsum, vcount = 0.0, 0
            with torch.no_grad():
                for batch in _OnDevice(_loader(val_ds, batch_size, False, 0, num_workers), dev):
                    b = int(batch["f_tgt"].shape[0])
                    vsum += float(recipe.validation_loss(batch)) * b
                    vcount += b
            val_loss = vsum / max(vcount, 1)
            recipe.end_epoch(val_loss)
            rec = {"epoch": epoch, **{k: v / max(count, 1) for k, v in sums.items()}}
            rec.update(val_loss=val_loss, lr=_lr(recipe), seconds=time.perf_counter() - t0)
            history.append(rec)
            bar.set_postfix(val=f"{val_loss:.4g}", lr=f"{rec['lr']:.2g}", refresh=True)
            log.info("%s epoch %d: %s", spec.name, epoch, rec)
            if val_loss < best_loss:
                best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
                best_state = _state(recipe.modules)
                if ckdir is not None:
                    best_cfg = {**config, "best_epoch": best_epoch}
                    FittedModel(spec.name, copy.deepcopy(net).cpu(), best_cfg, history).save(
                        ckdir / "best.pt", overwrite=True
                    )
                    net.train(False)
            else:
                bad_epochs += 1
            if ckdir is not None:
                save_checkpoint(
                    ckdir / "last.pt",
                    {
                        "config": json.dumps(config),
                        "history": json.dumps(history),
                        "modules": _state(recipe.modules),
                        "optimizers": {k: o.state_dict() for k, o in recipe.optimizers.items()},
                        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
                        "best": best_state,
                        "epoch": epoch,
                        "best_epoch": best_epoch,
                        "best_loss": best_loss,
                        "bad_epochs": bad_epochs,
                    },
                    overwrite=True,
                )
    finally:
        bar.close()
    net.load_state_dict(best_state["net"])
    net.eval()
    config["best_epoch"] = best_epoch
    return FittedModel(spec.name, net, config, history)


def _version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"
