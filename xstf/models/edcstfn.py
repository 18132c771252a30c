"""EDCSTFN: the enhanced deep convolutional spatio-temporal fusion network (imports torch).

Tan, Z., Di, L., Zhang, M., Guo, L. & Gao, M. (2019). An Enhanced Deep Convolutional
Model for Spatiotemporal Image Fusion. *Remote Sensing* 11(24):2898.
Reference implementation: ``theonegis/edcstfn`` (``model.py``), read for facts only.

The network, as published (``conv3x3`` = replication pad 1 + 3 × 3 convolution):

- fine encoder on ``F_ref``: B → 32 → 64 → 128, ReLU after each;
- residual encoder on ``cat(C_ref, F_ref, C_tgt)``: 3B → 32 → 64 → 128, no final ReLU;
- decoder on fine features + residual features: 128 → 64 → 32 (3 × 3, ReLU), then
  a 1 × 1 convolution → B.

With two reference pairs the network makes one prediction per pair; training
averages their two losses, and prediction blends the two feature sums with masks
proportional to ``1 / (|residual feature| + 1e-8)`` before decoding. For one band
(LST) it has 278,209 parameters. The reference upsamples the coarse inputs ×16
inside ``forward``; on a cube, coarse is already on the fine grid, so that step is
left out.

Loss (compound, on the valid target pixels): MSE + MSE between the features of an
auto-encoder's encoder applied to the prediction and to the target +
0.8 · (1 − MS-SSIM). The auto-encoder (encoder B → 32 → 64 → 128 with two stride-2
convolutions, the EDCSTFN variant of the authors' ``ganstfm`` repository — not
``theonegis/edcstfn``'s ``Pretrained``, B → 32 → 64 → 128 → 128 with one stride-2
convolution; decoder mirrored with bilinear ×2 upsampling) is trained on the training fine patches before the fusion network,
``ae_epochs`` passes (default 2) with masked MSE and Adam (lr 1e-3), then frozen.
Optimiser: Adam, lr 1e-3, weight decay 1e-6; ReduceLROnPlateau (factor 0.1,
patience 5) on the validation loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from .base import Batch, ModelSpec, RecipeBase, register
from .losses import freeze, masked_ms_ssim_loss, masked_mse, pretrain_autoencoder, validation_mse

__all__ = ["EDCSTFN", "SPEC", "AutoEncoder", "EDCSTFNRecipe", "build", "recipe"]

REFERENCE = (
    "Tan, Z., Di, L., Zhang, M., Guo, L. & Gao, M. (2019). An Enhanced Deep Convolutional "
    "Model for Spatiotemporal Image Fusion. Remote Sensing 11(24):2898"
)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride))


def _stack(
    chans: list[int], final_relu: bool, strides: Iterable[int] | None = None
) -> nn.Sequential:
    strides = list(strides) if strides is not None else [1] * (len(chans) - 1)
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(itertools.pairwise(chans)):
        layers.append(_conv3x3(cin, cout, strides[i]))
        if final_relu or i < len(chans) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _radius(seq: nn.Module) -> int:
    """Receptive-field radius of a chain of stride-1 convolutions (sum of ``(k − 1) / 2``)."""
    return sum((m.kernel_size[0] - 1) // 2 for m in seq.modules() if isinstance(m, nn.Conv2d))


class EDCSTFN(nn.Module):
    """The EDCSTFN fusion network (prediction module of the ``"edcstfn"`` model).

    Parameters
    ----------
    bands : int
        Number of bands B (1 for LST).
    width : int
        Channels of the first layer (32 as published; the others are 2× and 4× it).
        Smaller widths are only for quick tests.

    Examples
    --------
    >>> import torch
    >>> net = EDCSTFN()
    >>> sum(p.numel() for p in net.parameters())
    278209
    >>> x = torch.zeros(2, 2, 1, 16, 16)
    >>> net(x, x, torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, bands: int = 1, width: int = 32) -> None:
        super().__init__()
        if bands < 1 or width < 1:
            raise ValueError(f"bands and width must be >= 1, got bands={bands}, width={width}")
        w = [width, 2 * width, 4 * width]
        self.bands = bands
        self.encoder = _stack([bands, *w], final_relu=True)
        self.residual = _stack([3 * bands, *w], final_relu=False)
        self.decoder = nn.Sequential(
            _conv3x3(w[2], w[1]),
            nn.ReLU(inplace=True),
            _conv3x3(w[1], w[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(w[0], bands, 1),
        )

    @property
    def receptive_field(self) -> int:
        """Radius (px) of the receptive field: 3 × 3 convolutions of an encoder, then the decoder's."""
        return _radius(self.encoder) + _radius(self.decoder)

    def features(
        self, c_refs: torch.Tensor, f_refs: torch.Tensor, c_tgt: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(fine features, residual features) for each reference pair."""
        if c_refs.ndim != 5 or f_refs.shape != c_refs.shape or c_tgt.ndim != 4:
            raise ValueError(
                "EDCSTFN expects c_refs, f_refs (B, R, C, H, W) and c_tgt (B, C, H, W); got "
                f"{tuple(c_refs.shape)}, {tuple(f_refs.shape)}, {tuple(c_tgt.shape)}"
            )
        out = []
        for r in range(c_refs.shape[1]):
            res = self.residual(torch.cat((c_refs[:, r], f_refs[:, r], c_tgt), 1))
            out.append((self.encoder(f_refs[:, r]), res))
        return out

    def forward_each(
        self, c_refs: torch.Tensor, f_refs: torch.Tensor, c_tgt: torch.Tensor
    ) -> list[torch.Tensor]:
        """One prediction per reference pair (what training scores)."""
        return [self.decoder(fe + res) for fe, res in self.features(c_refs, f_refs, c_tgt)]

    def forward(
        self, c_refs: torch.Tensor, f_refs: torch.Tensor, c_tgt: torch.Tensor
    ) -> torch.Tensor:
        """Fine prediction ``(B, C, H, W)``; two references are blended in feature space."""
        feats = self.features(c_refs, f_refs, c_tgt)
        if len(feats) == 1:
            fe, res = feats[0]
            return self.decoder(fe + res)
        if len(feats) != 2:
            raise ValueError(f"EDCSTFN uses 1 or 2 reference pairs, got {len(feats)}")
        (fe1, res1), (fe2, res2) = feats
        inv1 = 1.0 / (res1.abs() + 1e-8)
        inv2 = 1.0 / (res2.abs() + 1e-8)
        m1 = (inv1 / (inv1 + inv2)).clamp(0.0, 1.0)
        return self.decoder(m1 * (fe1 + res1) + (1.0 - m1) * (fe2 + res2))


class AutoEncoder(nn.Module):
    """Auto-encoder whose encoder gives EDCSTFN's feature loss.

    The encoder is B → 32 → 64 → 128, the last two with stride 2, ReLU after each (the
    variant in the authors' ``ganstfm`` repository; ``theonegis/edcstfn``'s
    ``Pretrained`` is B → 32 → 64 → 128 → 128 with stride 2 on the third convolution
    only, see ``docs/models/edcstfn.md``); the decoder mirrors it with bilinear ×2
    upsampling and 3 × 3 convolutions, cropping back to the input size.

    Examples
    --------
    >>> import torch
    >>> AutoEncoder()(torch.zeros(1, 1, 33, 33)).shape
    torch.Size([1, 1, 33, 33])
    """

    def __init__(self, bands: int = 1, width: int = 32) -> None:
        super().__init__()
        w = [width, 2 * width, 4 * width]
        self.encoder = _stack([bands, *w], final_relu=True, strides=[1, 2, 2])
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            _conv3x3(w[2], w[1]),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            _conv3x3(w[1], w[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(w[0], bands, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` (same shape)."""
        y = self.decoder(self.encoder(x))
        h, w = x.shape[-2:]
        if y.shape[-2] < h or y.shape[-1] < w:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return y[..., :h, :w]


def build(bands: int = 1, width: int = 32) -> EDCSTFN:
    """The EDCSTFN network with the published defaults (``width=32``).

    Examples
    --------
    >>> sum(p.numel() for p in build().parameters())
    278209
    """
    return EDCSTFN(bands=bands, width=width)


class EDCSTFNRecipe(RecipeBase):
    """How EDCSTFN trains (see the module docstring for the loss and schedule).

    Parameters
    ----------
    net : EDCSTFN
        The network, already on its device.
    lr : float
        Adam learning rate (1e-3 published).
    weight_decay : float
        Adam weight decay (1e-6 published).
    alpha : float
        Weight of ``1 − MS-SSIM`` (0.8 published).
    ae_epochs : int
        Passes over the training patches to train the auto-encoder (0 disables the
        feature loss).
    lr_patience : int
        ReduceLROnPlateau patience in epochs (5 published), factor 0.1.

    Examples
    --------
    >>> from xstf.models.edcstfn import build
    >>> r = recipe(build())
    >>> sorted(r.optimizers)
    ['net']
    """

    def __init__(
        self,
        net: EDCSTFN,
        lr: float | None = None,
        weight_decay: float = 1e-6,
        alpha: float = 0.8,
        ae_epochs: int = 2,
        lr_patience: int = 5,
    ) -> None:
        super().__init__()
        lr = 1e-3 if lr is None else float(lr)
        device = next(net.parameters()).device
        bands = net.bands
        width = cast(nn.Conv2d, cast(nn.Sequential, net.encoder[0])[1]).out_channels
        self.alpha = float(alpha)
        self.ae_epochs = int(ae_epochs)
        self.autoencoder = AutoEncoder(bands, width).to(device)
        self.modules: dict[str, nn.Module] = {"net": net, "autoencoder": self.autoencoder}
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "net": torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        }
        self.schedulers = {
            "net": torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizers["net"], mode="min", factor=0.1, patience=lr_patience
            )
        }
        self.net = net
        self.on_resume()

    @property
    def prepare_passes(self) -> int:
        """Auto-encoder passes over the training batches (``ae_epochs``)."""
        return max(0, self.ae_epochs)

    def on_resume(self) -> None:
        """Keep the (restored) auto-encoder frozen."""
        freeze(self.autoencoder)

    def prepare(self, loader: Iterable[Batch], device: torch.device | str | None = None) -> None:
        """Train the auto-encoder on the training fine patches (``ae_epochs`` passes), then freeze it."""
        if self.ae_epochs <= 0:
            return
        pretrain_autoencoder(self.autoencoder, loader, self.ae_epochs, device)

    def _loss(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        mse = masked_mse(pred, target, valid)
        ssim = masked_ms_ssim_loss(pred, target, valid)
        out = {"mse": mse, "ssim": ssim}
        if self.ae_epochs > 0:
            filled = torch.where(valid.expand_as(target), target, pred.detach())
            enc = self.autoencoder.encoder
            out["feature"] = F.mse_loss(enc(pred), enc(filled))
        out["loss"] = cast(
            torch.Tensor, sum(v * (self.alpha if k == "ssim" else 1.0) for k, v in out.items())
        )
        return out

    def _batch_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        preds = self.net.forward_each(batch["c_refs"], batch["f_refs"], batch["c_tgt"])
        parts = [self._loss(p, batch["f_tgt"], batch["tgt_valid"]) for p in preds]
        return {k: cast(torch.Tensor, sum(p[k] for p in parts)) / len(parts) for k in parts[0]}

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One Adam step on the compound loss, averaged over the reference pairs."""
        self.net.train()
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        losses = self._batch_loss(batch)
        losses["loss"].backward()
        opt.step()
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def validation_loss(self, batch: Batch) -> torch.Tensor:
        """Masked MSE of the blended prediction on a validation batch."""
        return validation_mse(self.net, batch)

    def end_epoch(self, val_loss: float) -> None:
        """ReduceLROnPlateau step on the validation loss."""
        self.schedulers["net"].step(val_loss)


def recipe(net: EDCSTFN, **options: Any) -> EDCSTFNRecipe:
    """The training recipe of EDCSTFN (see :class:`EDCSTFNRecipe` for the options).

    Examples
    --------
    >>> from xstf.models.edcstfn import build
    >>> "net" in recipe(build()).modules
    True
    """
    return EDCSTFNRecipe(net, **options)


#: Defaults of :func:`xstf.models.train.fit` for this model (epochs, batch size...).
DEFAULTS = {"epochs": 30, "batch_size": 16, "patience": 10}

SPEC = register(
    ModelSpec("edcstfn", build, recipe, n_refs=2, reference=REFERENCE, defaults=DEFAULTS)
)
