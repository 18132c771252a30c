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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

__all__ = ["REGISTRY", "Batch", "ModelSpec", "TrainingRecipe", "register"]

Batch = dict[str, torch.Tensor]


class TrainingRecipe(Protocol):
    """How one model trains: its modules, optimisers, one step, and its validation loss.

    Examples
    --------
    >>> import xstf.models
    >>> from xstf.models.edcstfn import build, recipe
    >>> r = recipe(build())
    >>> callable(r.step) and callable(r.validation_loss)
    True
    """

    #: Every module whose weights a checkpoint must keep, by name; must contain "net",
    #: the network used at prediction (the generator for GANs).
    modules: dict[str, nn.Module]
    #: Optimisers by name (their state is checkpointed for resume).
    optimizers: dict[str, torch.optim.Optimizer]

    def step(self, batch: Batch) -> dict[str, float]:
        """One training iteration (forward, backward, optimiser steps); named losses for the progress bar."""
        ...

    def validation_loss(self, batch: Batch) -> float:
        """Masked loss of the prediction network on a validation batch (lower is better), no grad."""
        ...

    def end_epoch(self, val_loss: float) -> None:
        """Learning-rate schedule hook, called once per epoch with the validation loss."""
        ...


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
    >>> import xstf.models
    >>> spec = xstf.models.get_spec("mlffgan")
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
