"""STTFN: spatio-temporal temperature fusion network (Yin et al. 2021) — a reconstruction.

Imports torch: load it through :mod:`xstf.models` (``xstf.models.fit(ds, "sttfn")``).

Yin et al. published no code. The paper's description is: a *multiscale fusion
convolutional neural network* learns the non-linear mapping from the input LSTs to the
fine LST of the target date; it makes **two** fine predictions, one from each reference
pair (before and after the target), which a *spatio-temporal-consistency (STC)*
weighting function merges. This module builds that from the description; every
choice below is xstf's, not the authors' (see ``docs/models/sttfn.md``):

* **Inputs per reference pair k**: ``cat(C_k, F_k, C_0)`` (3 × bands channels), the
  same triplet as EDCSTFN; the one network is shared by both pairs.
* **Multiscale fusion CNN**: two multiscale blocks, each three parallel convolutions
  of 3 × 3, 5 × 5 and 7 × 7 (``width`` channels each, replication padding, ReLU),
  concatenated and fused by a 1 × 1 convolution (``2·width`` channels, ReLU); then a
  3 × 3 convolution (``width``, ReLU) and a 3 × 3 output convolution.
* **Residual learning around the temporal-change model**: the CNN predicts a
  correction to ``F_k + g·(C_0 − C_k)`` (``g`` a learnt scalar, initialised to 1), the
  linear model STARFM-type methods start from; the network learns only the
  non-linear remainder, which trains fast on few pairs.
* **STC weighting**: per pixel, the prediction from pair k gets the weight
  ``w_k ∝ 1 / (mean_{window}|C_0 − C_k| + ε)`` — pairs whose coarse LST changed less
  around the pixel (over a ``stc_window`` × ``stc_window`` window: the spatial part)
  between their date and the target date (the temporal part) are trusted more;
  weights are normalised to sum to 1. No learnt parameters.
* **Training**: each pair's prediction is scored against the target with masked MSE
  (pixels valid in the target and in that pair), the two losses averaged; Adam
  (lr 1e-3) with ReduceLROnPlateau (factor 0.1, patience 5), as EDCSTFN.

With one band and ``width=32`` the network has 209,314 parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Batch, ModelSpec, RecipeBase, register
from .losses import masked_mse, validation_mse
from .mlffgan import _check_inputs

__all__ = [
    "SPEC",
    "STTFN",
    "MultiscaleFusionCNN",
    "STTFNRecipe",
    "build",
    "stc_weights",
]

REFERENCE = (
    "Yin, Z., Wu, P., Foody, G. M., Wu, Y., Liu, Z., Du, Y. & Ling, F. (2021). "
    "Spatiotemporal fusion of land surface temperature based on a convolutional neural "
    "network. IEEE Transactions on Geoscience and Remote Sensing, 59(2), 1808-1822 "
    "(no public code; xstf's STTFN is a reconstruction)"
)
KERNELS = (3, 5, 7)


def _conv(cin: int, cout: int, k: int) -> nn.Sequential:
    """Replication-padded k × k convolution (size preserving)."""
    return nn.Sequential(nn.ReplicationPad2d(k // 2), nn.Conv2d(cin, cout, k))


class _MultiscaleBlock(nn.Module):
    """Parallel 3 × 3, 5 × 5, 7 × 7 convolutions (ReLU), concatenated, fused by a 1 × 1 convolution."""

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(_conv(cin, width, k) for k in KERNELS)
        self.fuse = nn.Conv2d(width * len(KERNELS), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.relu(b(x)) for b in self.branches], 1)
        return F.relu(self.fuse(y))


class MultiscaleFusionCNN(nn.Module):
    """One STTFN branch: fine LST at the target date from one reference pair.

    ``forward(c_ref, f_ref, c_tgt)`` with ``(B, C, H, W)`` tensors returns
    ``f_ref + g·(c_tgt − c_ref) + CNN(cat(c_ref, f_ref, c_tgt))``.

    Parameters
    ----------
    bands : int
        Number of bands.
    width : int
        Channels of each multiscale branch (32 by default).

    Examples
    --------
    >>> import torch
    >>> net = MultiscaleFusionCNN(1)
    >>> x = torch.zeros(2, 1, 20, 20)
    >>> net(x, x, x).shape
    torch.Size([2, 1, 20, 20])
    """

    def __init__(self, bands: int = 1, width: int = 32) -> None:
        super().__init__()
        if bands < 1 or width < 1:
            raise ValueError(f"bands and width must be >= 1, got bands={bands}, width={width}")
        self.block1 = _MultiscaleBlock(3 * bands, width, 2 * width)
        self.block2 = _MultiscaleBlock(2 * width, width, 2 * width)
        self.tail = nn.Sequential(
            _conv(2 * width, width, 3), nn.ReLU(inplace=True), _conv(width, bands, 3)
        )
        self.change_gain = nn.Parameter(torch.ones(()))

    def forward(
        self, c_ref: torch.Tensor, f_ref: torch.Tensor, c_tgt: torch.Tensor
    ) -> torch.Tensor:
        x = torch.cat((c_ref, f_ref, c_tgt), 1)
        correction = self.tail(self.block2(self.block1(x)))
        return f_ref + self.change_gain * (c_tgt - c_ref) + correction


def stc_weights(
    c_refs: torch.Tensor, c_tgt: torch.Tensor, window: int = 5, eps: float = 1e-3
) -> torch.Tensor:
    """Spatio-temporal-consistency weights of the reference pairs, per pixel.

    ``w_k = (1 / (D_k + ε)) / Σ_j (1 / (D_j + ε))`` with ``D_k`` the mean of
    ``|C_0 − C_k|`` (over bands and a ``window`` × ``window`` neighbourhood, clipped at
    the edges): the smaller the coarse change between a reference date and the target
    date around a pixel, the more its prediction counts.

    Parameters
    ----------
    c_refs : torch.Tensor
        ``(B, R, C, H, W)`` coarse images of the reference dates.
    c_tgt : torch.Tensor
        ``(B, C, H, W)`` coarse image of the target date.
    window : int
        Odd side of the averaging window (1 = the pixel alone).
    eps : float
        Keeps the weights finite where nothing changed (units of ``c_refs``).

    Returns
    -------
    torch.Tensor
        ``(B, R, 1, H, W)``, non-negative, summing to 1 over ``R``.

    Examples
    --------
    >>> import torch
    >>> c_tgt = torch.zeros(1, 1, 3, 3)
    >>> c_refs = torch.stack([torch.full((1, 1, 3, 3), 1.0), torch.full((1, 1, 3, 3), 3.0)], 1)
    >>> w = stc_weights(c_refs, c_tgt, window=3, eps=0.0)
    >>> [round(float(v), 4) for v in w[0, :, 0, 1, 1]]
    [0.75, 0.25]
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"stc window must be a positive odd number of pixels, got {window}")
    if eps < 0:
        raise ValueError(f"stc eps must be >= 0, got {eps}")
    b, r = c_refs.shape[:2]
    h, w = c_tgt.shape[-2:]
    change = (c_tgt.unsqueeze(1) - c_refs).abs().mean(2)  # (B, R, H, W)
    if window > 1:
        change = F.avg_pool2d(
            change, window, stride=1, padding=window // 2, count_include_pad=False
        )
    inv = 1.0 / (change + eps)
    return (inv / inv.sum(1, keepdim=True)).reshape(b, r, 1, h, w)


class STTFN(nn.Module):
    """The STTFN network: one multiscale fusion CNN per reference pair, merged by STC weights.

    Parameters
    ----------
    bands : int
        Number of bands (1 for LST).
    width : int
        Channels of each multiscale branch (32 by default; smaller only for quick tests).
    stc_window : int
        Window of the STC weighting (odd, pixels).
    stc_eps : float
        ε of the STC weighting, in normalised units.

    Examples
    --------
    >>> import torch
    >>> net = STTFN()
    >>> sum(p.numel() for p in net.parameters())
    209314
    >>> c_refs, f_refs, c_tgt = torch.zeros(2, 2, 1, 24, 24), torch.zeros(2, 2, 1, 24, 24), torch.zeros(2, 1, 24, 24)
    >>> net(c_refs, f_refs, c_tgt).shape
    torch.Size([2, 1, 24, 24])
    """

    def __init__(
        self, bands: int = 1, width: int = 32, stc_window: int = 5, stc_eps: float = 1e-3
    ) -> None:
        super().__init__()
        self.bands = bands
        self.width = width
        self.cnn = MultiscaleFusionCNN(bands, width)
        if stc_window < 1 or stc_window % 2 == 0:
            raise ValueError(f"stc_window must be a positive odd number, got {stc_window}")
        self.stc_window = int(stc_window)
        self.stc_eps = float(stc_eps)

    @property
    def receptive_field(self) -> int:
        """Radius (px): the two multiscale blocks (7 × 7 each) and the two 3 × 3 of the tail;
        the STC window (in parallel) is smaller."""
        conv = 2 * (max(KERNELS) // 2) + 2
        return max(conv, self.stc_window // 2)

    def forward_each(
        self, c_refs: torch.Tensor, f_refs: torch.Tensor, c_tgt: torch.Tensor
    ) -> torch.Tensor:
        """One prediction per reference pair, ``(B, R, C, H, W)`` (what training scores)."""
        _check_inputs(c_refs, f_refs, c_tgt, self.bands, "STTFN")
        b, r = c_refs.shape[:2]
        # run the R branches as one batch (shared weights)
        flat = (
            c_refs.flatten(0, 1),
            f_refs.flatten(0, 1),
            c_tgt.unsqueeze(1).expand_as(c_refs).flatten(0, 1),
        )
        return self.cnn(*flat).reshape(b, r, *c_tgt.shape[1:])

    def forward(
        self, c_refs: torch.Tensor, f_refs: torch.Tensor, c_tgt: torch.Tensor
    ) -> torch.Tensor:
        """Fine prediction ``(B, C, H, W)``: the per-pair predictions merged with :func:`stc_weights`."""
        preds = self.forward_each(c_refs, f_refs, c_tgt)
        if preds.shape[1] == 1:
            return preds[:, 0]
        weights = stc_weights(c_refs, c_tgt, self.stc_window, self.stc_eps)
        return (weights * preds).sum(1)


class STTFNRecipe(RecipeBase):
    """How STTFN trains: masked MSE of each pair's prediction, averaged; Adam + plateau schedule.

    Parameters
    ----------
    net : STTFN
    lr : float, optional
        Adam learning rate (default 1e-3).
    weight_decay : float
        Adam weight decay.
    lr_patience : int
        ReduceLROnPlateau patience (epochs), factor 0.1.

    Examples
    --------
    >>> from xstf.models.sttfn import build
    >>> sorted(STTFNRecipe(build()).optimizers)
    ['net']
    """

    def __init__(
        self,
        net: STTFN,
        *,
        lr: float | None = None,
        weight_decay: float = 0.0,
        lr_patience: int = 5,
    ) -> None:
        if not isinstance(net, STTFN):
            raise TypeError(f"STTFNRecipe needs an STTFN network, got {type(net).__name__}")
        super().__init__()
        lr = 1e-3 if lr is None else float(lr)
        self.net = net
        self.modules: dict[str, nn.Module] = {"net": net}
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "net": torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        }
        self.schedulers = {
            "net": torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizers["net"], mode="min", factor=0.1, patience=lr_patience
            )
        }

    def _loss(self, batch: Batch) -> torch.Tensor:
        preds = self.net.forward_each(batch["c_refs"], batch["f_refs"], batch["c_tgt"])
        target, valid = batch["f_tgt"], batch["tgt_valid"]
        ref_valid = batch.get("ref_valid")
        losses = []
        for k in range(preds.shape[1]):
            v = valid if ref_valid is None else valid & ref_valid[:, k]
            losses.append(masked_mse(preds[:, k], target, v))
        return torch.stack(losses).mean()

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One Adam step on the mean of the per-pair masked MSEs."""
        self.net.train()
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss = self._loss(batch)
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def validation_loss(self, batch: Batch) -> torch.Tensor:
        """Masked MSE of the STC-weighted prediction."""
        return validation_mse(self.net, batch)

    def end_epoch(self, val_loss: float) -> None:
        """ReduceLROnPlateau step on the validation loss."""
        self.schedulers["net"].step(val_loss)


def build(bands: int = 1, width: int = 32, stc_window: int = 5, stc_eps: float = 1e-3) -> STTFN:
    """The STTFN network with xstf's defaults.

    Parameters
    ----------
    bands : int
        Number of bands (1 for LST).
    width : int
        Channels of each multiscale branch (32; smaller only for quick tests).
    stc_window : int
        Odd window (px) of the STC weighting.
    stc_eps : float
        ε of the STC weighting (normalised units).

    Returns
    -------
    STTFN

    Examples
    --------
    >>> sum(p.numel() for p in build(width=8).parameters())
    14698
    """
    return STTFN(bands=bands, width=width, stc_window=stc_window, stc_eps=stc_eps)


#: Defaults of :func:`xstf.models.train.fit` for this model (epochs, batch size...).
DEFAULTS = {"epochs": 30, "batch_size": 16, "patience": 10}

SPEC = register(
    ModelSpec("sttfn", build, STTFNRecipe, n_refs=2, reference=REFERENCE, defaults=DEFAULTS)
)
