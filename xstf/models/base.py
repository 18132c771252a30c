"""The contract every deep fusion model of xstf follows (imports torch: load only when needed).

A model is registered with a :class:`ModelSpec` that says how to build its network
(the module used at prediction: the generator for GANs) and how to train it (a
:class:`TrainingRecipe`). The generic machinery in :mod:`xstf.models` (samples,
split, normalisation, the training loop with early stopping and checkpoints,
tiled prediction) knows nothing else about a model.

Batches
-------
Training and prediction exchange dicts of float32 tensors, already normalised
(LST minus the training mean — and, with the default ``"date_level"``
normalisation, minus the target date's coarse scene mean — divided by the training
std), with missing pixels
filled with 0 (the normalised mean) and flagged in the ``*_valid`` masks:

``c_refs``     (B, R, C, H, W)  coarse at the R reference dates
``f_refs``     (B, R, C, H, W)  fine at the R reference dates
``c_tgt``      (B, C, H, W)     coarse at the target date
``f_tgt``      (B, C, H, W)     fine at the target date (training only)
``tgt_valid``  (B, 1, H, W)     bool: target pixels that count in the loss
``ref_valid``  (B, R, 1, H, W)  bool: reference pixels valid in both c_refs and f_refs

R is :attr:`ModelSpec.n_refs` (1 or 2); C is the number of bands (1 for LST).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

__all__ = ["REGISTRY", "Batch", "ModelSpec", "RecipeBase", "TrainingRecipe", "register"]

Batch = dict[str, torch.Tensor]


class TrainingRecipe(Protocol):
    """How one model trains: every hook :func:`xstf.models.train.fit` calls, declared.

    The loop calls, in order: :meth:`prepare` once before the first epoch (not on
    resume), with :attr:`prepare_passes` passes over the training batches; on resume
    :meth:`on_resume` after the saved states are loaded; per epoch :meth:`step` on
    every training batch, :meth:`validation_loss` on every validation batch and
    :meth:`end_epoch` with the mean validation loss. :attr:`modules`,
    :attr:`optimizers` and :attr:`schedulers` are checkpointed. :class:`RecipeBase`
    implements the optional hooks as no-ops.

    Examples
    --------
    >>> import xstf.models
    >>> from xstf.models.edcstfn import build, recipe
    >>> r = recipe(build())
    >>> isinstance(r, RecipeBase) and callable(r.step) and callable(r.validation_loss)
    True
    """

    #: Every module whose weights a checkpoint must keep, by name; must contain "net",
    #: the network used at prediction (the generator for GANs).
    modules: dict[str, nn.Module]
    #: Optimisers by name (their state is checkpointed for resume).
    optimizers: dict[str, torch.optim.Optimizer]
    #: Learning-rate schedulers by name (their state is checkpointed); may be empty.
    schedulers: dict[str, Any]

    @property
    def prepare_passes(self) -> int:
        """Passes :meth:`prepare` makes over the training batches (0: it does nothing)."""
        ...

    def prepare(self, loader: Iterable[Batch]) -> None:
        """Called once before the first epoch with the training batches (on the device)."""
        ...

    def on_resume(self) -> None:
        """Called after the saved module/optimiser/scheduler states are loaded on resume."""
        ...

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One training iteration (forward, backward, optimiser steps).

        Returns named losses as detached 0-d tensors (on the device: the loop averages
        them there, without a host sync per step).
        """
        ...

    def validation_loss(self, batch: Batch) -> torch.Tensor | float:
        """Masked loss of the prediction network on a validation batch (lower is better), no grad.

        A 0-d tensor on the device (summed there: one host sync per validation pass) or a
        float.
        """
        ...

    def end_epoch(self, val_loss: float) -> None:
        """Learning-rate schedule hook, called once per epoch with the validation loss."""
        ...


class RecipeBase:
    """No-op implementations of the optional :class:`TrainingRecipe` hooks; recipes subclass it.

    A subclass sets :attr:`modules` and :attr:`optimizers` (and :attr:`schedulers`
    when it has any) and implements :meth:`step` and :meth:`validation_loss`.

    Examples
    --------
    >>> r = RecipeBase()
    >>> r.prepare_passes, r.schedulers, r.end_epoch(0.5)
    (0, {}, None)
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]

    def __init__(self) -> None:
        self.modules = {}
        self.optimizers = {}
        self.schedulers = {}

    @property
    def prepare_passes(self) -> int:
        """Passes :meth:`prepare` makes over the training batches: none."""
        return 0

    def prepare(self, loader: Iterable[Batch]) -> None:
        """Nothing to prepare."""

    def on_resume(self) -> None:
        """Nothing to restore beyond the saved states."""

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One training iteration: subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def validation_loss(self, batch: Batch) -> torch.Tensor | float:
        """Validation loss of a batch: subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement validation_loss()")

    def end_epoch(self, val_loss: float) -> None:
        """Constant learning rate: nothing to do."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes
    ----------
    name : str
        Registry name (lower case), e.g. ``"edcstfn"``.
    build : callable
        ``build(bands=1, **options) -> nn.Module``: the prediction network with the
        published defaults. Its ``forward(c_refs, f_refs, c_tgt)`` takes the batch
        tensors above and returns the fine prediction (B, C, H, W), normalised.
    recipe : callable
        ``recipe(net, **train_options) -> TrainingRecipe``.
    n_refs : int
        Reference pairs used per prediction (2 for EDCSTFN/STTFN, 1 for MLFF-GAN/GAN-STFM).
    needs_coarse_ref : bool
        False when the reference coarse image is not used (GAN-STFM needs only one
        fine image of any date plus the target coarse image).
    reference : str
        Citation shown in docs and error messages.
    defaults : dict
        Default training options (epochs, batch_size, lr...).

    Examples
    --------
    >>> from xstf.models.registry import get_spec
    >>> spec = get_spec("mlffgan")
    >>> spec.n_refs, spec.needs_coarse_ref
    (1, True)
    """

    name: str
    build: Callable[..., nn.Module]
    recipe: Callable[..., TrainingRecipe]
    n_refs: int
    needs_coarse_ref: bool = True
    reference: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


#: name -> ModelSpec, filled by :func:`register` when a model module is imported.
REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to :data:`REGISTRY` (called at import time by each model module).

    Examples
    --------
    >>> import xstf.models.edcstfn
    >>> REGISTRY["edcstfn"].n_refs
    2
    """
    REGISTRY[spec.name] = spec
    return spec
