"""MLFF-GAN: multi-level feature fusion with a GAN (Song et al. 2022), one reference pair.

Imports torch: load it through :mod:`xstf.models` (``xstf.models.fit(ds, "mlffgan")``).

Architecture (as in the authors' public release, ``songbingze/MLFF-GAN``, re-implemented):

* two feature encoders of 5 levels (16, 32, 64, 128, 256 channels): a 7 × 7 stem then
  stride-2 3 × 3 convolutions, each followed by a residual block (reflection padding,
  dropout 0.5, LeakyReLU). One encoder is **shared** by the two coarse images (the
  reference date and the target date), the other reads the reference fine image;
* at each level, AdaIN re-styles the fine features with the channel statistics of the
  target-date coarse features, and a change-attention mask
  ``M = σ(BN(conv(BN(conv(f(C_tgt))) − BN(conv(f(C_ref))))))`` mixes them:
  ``M · f(C_tgt) + (1 − M) · AdaIN(f(F_ref), f(C_tgt))``;
* a decoder of 4 × 4 stride-2 transposed convolutions with residual blocks, fed at each
  level with the fused features (skip connections), then two 1 × 1 convolutions;
* a PatchGAN discriminator (pix2pixHD ``NLayerDiscriminator``: 64…512 channels,
  4 × 4 kernels, batch norm) that sees the image concatenated with the target coarse
  image, trained as a least-squares GAN.

Generator loss: L1 + (1 − MS-SSIM) + (1 − cosine similarity) + 0.01 · LSGAN, all
masked with ``tgt_valid``; Adam, lr 2·10⁻⁴, constant rate. With one band the generator
has 5,917,360 parameters and the discriminator 2,765,505, as the reference.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from .base import Batch, ModelSpec, register
from .gan import GANRecipe
from .losses import (
    masked_cosine_loss,
    masked_l1,
    masked_ms_ssim_loss,
)

__all__ = [
    "SPEC",
    "MLFFGANDiscriminator",
    "MLFFGANGenerator",
    "MLFFGANRecipe",
    "adain",
    "build",
    "build_discriminator",
    "swap_reference_and_target",
]

CHANNELS = (16, 32, 64, 128, 256)
REFERENCE = (
    "Song, B., Liu, P., Li, J., Wang, L., Zhang, L., He, G., Chen, L. & Liu, J. (2022). "
    "MLFF-GAN: A multilevel feature fusion with GAN for spatiotemporal remote sensing "
    "images. IEEE Transactions on Geoscience and Remote Sensing, 60, 1-16. "
    "doi:10.1109/TGRS.2022.3169916"
)
#: The generator halves the size 4 times: inputs are padded to a multiple of this.
MULTIPLE = 16
#: ...and to at least this, so the deepest level has ≥ 2 × 2 pixels (AdaIN needs a variance).
MIN_SIDE = 32


class _ResBlock(nn.Module):
    """Two reflection-padded 3 × 3 convolutions with dropout 0.5, plus the identity."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.Dropout(0.5),
            nn.LeakyReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Encoder(nn.Module):
    """Five levels: 7 × 7 stem, then stride-2 3 × 3 convolutions; a residual block each."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        levels = [
            nn.Sequential(nn.Conv2d(bands, CHANNELS[0], 7, padding=3), _ResBlock(CHANNELS[0]))
        ]
        for cin, cout in pairwise(CHANNELS):
            levels.append(
                nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), _ResBlock(cout))
            )
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


def adain(
    content: torch.Tensor,
    style: torch.Tensor,
    eps: float = 1e-5,
    stats: tuple[torch.Tensor, ...] | None = None,
) -> torch.Tensor:
    """Adaptive instance normalisation: ``content`` re-scaled to the channel statistics of ``style``.

    Per sample and channel, over the spatial axes: ``(x − μ_x) / σ_x · σ_s + μ_s`` with
    ``σ = sqrt(var + eps)`` (unbiased variance, as in Huang & Belongie 2017 and the
    MLFF-GAN release).

    Parameters
    ----------
    content, style : torch.Tensor
        ``(B, C, H, W)`` each (sizes may differ spatially; at least 2 pixels each).
    eps : float
        Added to the variances.
    stats : tuple of torch.Tensor, optional
        ``(content mean, content var, style mean, style var)`` per channel, ``(C,)``
        each: statistics of the whole scene to use instead of those of the tensors
        (tiled prediction, :mod:`xstf.models.tiling`).

    Returns
    -------
    torch.Tensor
        Same shape as ``content``.

    Examples
    --------
    >>> import torch
    >>> c = torch.arange(8.0).reshape(1, 2, 2, 2)
    >>> s = 10 * torch.ones(1, 2, 2, 2) + torch.tensor([0.0, 2.0]).repeat(4).reshape(1, 2, 2, 2)
    >>> out = adain(c, s)
    >>> [round(float(v), 4) for v in out.mean(dim=(2, 3)).flatten()]
    [11.0, 11.0]
    """
    if stats is not None:
        c = content.shape[1]
        cm, cv, sm, sv = (v.reshape(1, c, 1, 1).to(content.dtype) for v in stats)
    else:  # over the spatial axes of the 4-D tensor: no copy of a channels-last one, one pass
        cv, cm = torch.var_mean(content, dim=(2, 3), keepdim=True)
        sv, sm = torch.var_mean(style, dim=(2, 3), keepdim=True)
    return (content - cm) / (cv + eps).sqrt() * (sv + eps).sqrt() + sm


class _ChangeAttention(nn.Module):
    """Per-level mask from the coarse change: ``M · f(C_tgt) + (1 − M) · AdaIN(f(F_ref), f(C_tgt))``."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.proj_tgt = nn.Sequential(nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch))
        self.proj_ref = nn.Sequential(nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch))
        self.mask = nn.Sequential(nn.Conv2d(ch, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(
        self, coarse_tgt: torch.Tensor, coarse_ref: torch.Tensor, styled_fine: torch.Tensor
    ) -> torch.Tensor:
        m = self.mask(self.proj_tgt(coarse_tgt) - self.proj_ref(coarse_ref))
        return coarse_tgt * m + styled_fine * (1.0 - m)


class _Up(nn.Module):
    """4 × 4 stride-2 transposed convolution, LeakyReLU, residual block."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1),
            nn.LeakyReLU(),
            _ResBlock(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MLFFGANGenerator(nn.Module):
    """The MLFF-GAN generator (the network used at prediction).

    Parameters
    ----------
    bands : int
        Number of bands ``C`` (1 for LST).

    Notes
    -----
    ``forward(c_refs, f_refs, c_tgt)`` takes the batch tensors of
    :mod:`xstf.models.base` with ``R = 1`` and returns ``(B, C, H, W)``. Inputs of any
    size work: they are padded (edge replication) to a multiple of 16 and at least
    32 px a side, and the output is cropped back. AdaIN uses the channel statistics
    of the whole input; in tiled prediction (:mod:`xstf.models.tiling`) those of the
    whole date are computed first (:meth:`stat_features`) and passed to every tile
    (``forward(..., scene_stats=...)``), so tiled prediction equals whole-scene
    prediction. Dropout (0.5, in every residual block) is active in
    training mode only.

    Examples
    --------
    >>> import torch
    >>> net = MLFFGANGenerator(bands=1).eval()
    >>> c_refs, f_refs, c_tgt = torch.zeros(2, 1, 1, 40, 36), torch.zeros(2, 1, 1, 40, 36), torch.zeros(2, 1, 40, 36)
    >>> net(c_refs, f_refs, c_tgt).shape
    torch.Size([2, 1, 40, 36])
    >>> sum(p.numel() for p in net.parameters())
    5917360
    """

    def __init__(self, bands: int = 1) -> None:
        super().__init__()
        if bands < 1:
            raise ValueError(f"bands must be >= 1, got {bands}")
        self.bands = bands
        self.coarse_encoder = _Encoder(bands)  # shared by C_ref and C_tgt
        self.fine_encoder = _Encoder(bands)
        self.attention = nn.ModuleList(_ChangeAttention(ch) for ch in CHANNELS)
        c = CHANNELS
        self.up = nn.ModuleList(
            [_Up(c[4] * 2, c[3]), _Up(c[3] * 2, c[2]), _Up(c[2] * 2, c[1]), _Up(c[1] * 2, c[0])]
        )
        self.head = nn.Sequential(
            _ResBlock(c[0] * 2),
            nn.Conv2d(c[0] * 2, c[0], 1),
            _ResBlock(c[0]),
            nn.Conv2d(c[0], bands, 1),
        )

    #: tiles start on, and are sized in, multiples of this (:mod:`xstf.models.tiling`)
    size_multiple = MULTIPLE
    #: inputs are padded to at least this side
    min_side = MIN_SIDE
    #: one stage of scene statistics: the AdaIN moments of the encoder features
    stat_stages = 1

    @property
    def receptive_field(self) -> int:
        """Radius (px) of the receptive field (:func:`receptive_field_radius`)."""
        return receptive_field_radius()

    def stat_features(
        self,
        stage: int,
        stats: list,
        c_refs: torch.Tensor,
        f_refs: torch.Tensor,
        c_tgt: torch.Tensor,
    ) -> list[tuple[torch.Tensor, int]]:
        """The feature maps AdaIN takes statistics of, with their downsampling factors.

        Per level ``k``: the fine-encoder features of ``F_ref`` (content) and the
        coarse-encoder features of ``C_tgt`` (style), at 1/2^k of the input size.
        """
        if stage != 0:
            raise ValueError(f"MLFF-GAN has one stage of scene statistics, not stage {stage}")
        _check_inputs(c_refs, f_refs, c_tgt, self.bands, "MLFF-GAN")
        f_ref, c_tgt = (_pad(x, MULTIPLE, MIN_SIDE) for x in (f_refs[:, 0], c_tgt))
        out = []
        for k, (ff, ct) in enumerate(
            zip(self.fine_encoder(f_ref), self.coarse_encoder(c_tgt), strict=True)
        ):
            out += [(ff, 2**k), (ct, 2**k)]
        return out

    def forward(
        self,
        c_refs: torch.Tensor,
        f_refs: torch.Tensor,
        c_tgt: torch.Tensor,
        scene_stats: list | None = None,
    ) -> torch.Tensor:
        _check_inputs(c_refs, f_refs, c_tgt, self.bands, "MLFF-GAN")
        h, w = c_tgt.shape[-2:]
        c_ref, f_ref, c_tgt = (
            _pad(x, MULTIPLE, MIN_SIDE) for x in (c_refs[:, 0], f_refs[:, 0], c_tgt)
        )
        tgt_feats = self.coarse_encoder(c_tgt)
        ref_feats = self.coarse_encoder(c_ref)
        fine_feats = self.fine_encoder(f_ref)
        st: list = [None] * len(CHANNELS)
        if scene_stats is not None:  # the whole date's AdaIN moments (tiled prediction)
            mv = scene_stats[0]
            st = [(*mv[2 * k], *mv[2 * k + 1]) for k in range(len(CHANNELS))]
        fused = [
            att(ct, cr, adain(ff, ct, stats=s))
            for att, ct, cr, ff, s in zip(
                self.attention, tgt_feats, ref_feats, fine_feats, st, strict=True
            )
        ]
        x = self.up[0](torch.cat((fused[4], tgt_feats[4]), 1))
        for up, skip in zip(self.up[1:], (fused[3], fused[2], fused[1]), strict=True):
            x = up(torch.cat((skip, x), 1))
        out = self.head(torch.cat((fused[0], x), 1))
        return out[..., :h, :w]


class MLFFGANDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pixHD ``NLayerDiscriminator``, 3 layers, batch norm).

    Input: an image concatenated with the target coarse image, ``(B, 2C, H, W)``;
    output: a map of patch scores ``(B, 1, h, w)`` (no sigmoid: least-squares GAN).

    Examples
    --------
    >>> import torch
    >>> d = MLFFGANDiscriminator(bands=1)
    >>> sum(p.numel() for p in d.parameters())
    2765505
    >>> d(torch.zeros(2, 2, 64, 64)).shape
    torch.Size([2, 1, 11, 11])
    """

    def __init__(self, bands: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(2 * bands, ndf, 4, stride=2, padding=2),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        nf = ndf
        for _ in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            layers += [
                nn.Conv2d(prev, nf, 4, stride=2, padding=2),
                nn.BatchNorm2d(nf),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        prev, nf = nf, min(nf * 2, 512)
        layers += [
            nn.Conv2d(prev, nf, 4, stride=1, padding=2),
            nn.BatchNorm2d(nf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(nf, 1, 4, stride=1, padding=2),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def receptive_field_radius() -> int:
    """Radius (px) of the MLFF-GAN generator's receptive field, from its layers.

    Walked from the output back to the input along the deepest path (level 4): each
    k × k convolution at a grid of step ``s`` px adds ``s·(k − 1)/2``; a stride-2
    convolution from step ``s`` to ``2s`` adds ``s`` (its 3 × 3 kernel at the finer grid);
    a 4 × 4 stride-2 transposed convolution from step ``2s`` to ``s`` adds ``2s``
    (each output reads 2 inputs per side, the farther one ``2s`` px away, rounded up).
    Checked against :func:`xstf.models.tiling.measure_receptive_field` in the tests.

    Examples
    --------
    >>> receptive_field_radius() > 100
    True
    """
    r = 0
    # head at step 1: two residual blocks (two 3 × 3 each)
    r += 4
    # decoder: _Up from step 2s to s = transposed conv (+2s... at the input grid) + res block at s
    for s in (1, 2, 4, 8):
        r += 2 * s  # residual block (two 3 × 3) at step s
        r += 2 * s  # 4 × 4 stride-2 transposed convolution reading step 2s
    # encoder level 4 back to the input: res block at step 16, 8, 4, 2 and the stride-2 convs
    for s in (16, 8, 4, 2):
        r += 2 * s  # residual block at step s
        r += s // 2  # stride-2 3 × 3 convolution from step s/2
    r += 2 + 3  # level 0: residual block and the 7 × 7 stem
    return r


def _check_inputs(
    c_refs: torch.Tensor | None, f_refs: torch.Tensor, c_tgt: torch.Tensor, bands: int, name: str
) -> None:
    """Check the batch shapes of :mod:`xstf.models.base` (``c_refs`` None: not used)."""
    if c_tgt.ndim != 4 or c_tgt.shape[1] != bands:
        raise ValueError(f"{name}: c_tgt must be (B, {bands}, H, W), got {tuple(c_tgt.shape)}")
    b, _, h, w = c_tgt.shape
    for label, x in (("c_refs", c_refs), ("f_refs", f_refs)):
        if x is None:
            continue
        if x.ndim != 5 or x.shape[0] != b or x.shape[2] != bands or tuple(x.shape[-2:]) != (h, w):
            raise ValueError(
                f"{name}: {label} must be (B, R, {bands}, H, W) matching c_tgt {tuple(c_tgt.shape)}, "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] < 1:
            raise ValueError(f"{name}: {label} holds no reference (R = 0)")


def _pad(x: torch.Tensor, multiple: int, min_side: int) -> torch.Tensor:
    """Pad (edge replication) at the bottom/right to a multiple of ``multiple``, at least ``min_side``."""
    h, w = x.shape[-2:]
    ph = max(min_side, -(-h // multiple) * multiple) - h
    pw = max(min_side, -(-w // multiple) * multiple) - w
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def swap_reference_and_target(batch: Batch) -> Batch:
    """The batch with the reference pair and the target exchanged (MLFF-GAN's augmentation).

    The reference trains on ``(C_1, F_1, C_2) → F_2`` and, with probability ½ per batch,
    on ``(C_2, F_2, C_1) → F_1``. The new target mask is the old reference mask
    (valid in both reference images); the new reference mask is the old target mask.

    Parameters
    ----------
    batch : dict of torch.Tensor
        A training batch with one reference (``R = 1``).

    Returns
    -------
    dict of torch.Tensor

    Examples
    --------
    >>> import torch
    >>> b = {"c_refs": torch.zeros(1, 1, 1, 2, 2), "f_refs": torch.ones(1, 1, 1, 2, 2),
    ...      "c_tgt": 2 * torch.ones(1, 1, 2, 2), "f_tgt": 3 * torch.ones(1, 1, 2, 2),
    ...      "tgt_valid": torch.ones(1, 1, 2, 2, dtype=torch.bool),
    ...      "ref_valid": torch.zeros(1, 1, 1, 2, 2, dtype=torch.bool)}
    >>> s = swap_reference_and_target(b)
    >>> float(s["f_tgt"].mean()), float(s["c_refs"].mean()), bool(s["tgt_valid"].any())
    (1.0, 2.0, False)
    """
    out = dict(batch)
    out["c_refs"] = batch["c_tgt"].unsqueeze(1)
    out["f_refs"] = batch["f_tgt"].unsqueeze(1)
    out["c_tgt"] = batch["c_refs"][:, 0]
    out["f_tgt"] = batch["f_refs"][:, 0]
    out["tgt_valid"] = batch["ref_valid"][:, 0]
    out["ref_valid"] = batch["tgt_valid"].unsqueeze(1)
    return out


class MLFFGANRecipe(GANRecipe):
    """How MLFF-GAN trains: alternating discriminator and generator steps (LSGAN).

    Each :meth:`step` (one batch): with probability ``swap_prob`` the reference and
    target are exchanged (the reference's augmentation); the discriminator is updated
    on ``(real, C_tgt)`` vs ``(G(...), C_tgt)`` with the least-squares loss
    ``½[(D(real) − 1)² + D(fake)²]``; then the generator on
    ``a·(D(fake) − 1)² + b·L1 + d·(1 − MS-SSIM) + c·(1 − cos)`` (``a = 0.01``,
    ``b = c = d = 1``), the content terms masked with ``tgt_valid``. Both use Adam with a
    constant learning rate (2·10⁻⁴). The generator is run once per step; the reference
    runs it a second time after the discriminator update, which differs only by the
    dropout noise.

    Parameters
    ----------
    net : MLFFGANGenerator
        The generator (``modules["net"]``).
    lr : float, optional
        Adam learning rate of both networks (default 2e-4).
    betas : (float, float)
        Adam betas (default PyTorch's (0.9, 0.999), as the reference).
    gan_weight, l1_weight, cosine_weight, ms_ssim_weight : float
        ``a``, ``b``, ``c``, ``d`` of the generator loss.
    swap_prob : float
        Probability of the reference/target swap per batch (0 disables it).

    Examples
    --------
    >>> from xstf.models.mlffgan import build
    >>> r = MLFFGANRecipe(build())
    >>> r.weights, r.swap_prob
    ({'gan': 0.01, 'l1': 1.0, 'cosine': 1.0, 'ms_ssim': 1.0}, 0.5)
    """

    def __init__(
        self,
        net: MLFFGANGenerator,
        *,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        gan_weight: float = 0.01,
        l1_weight: float = 1.0,
        cosine_weight: float = 1.0,
        ms_ssim_weight: float = 1.0,
        swap_prob: float = 0.5,
    ) -> None:
        if not isinstance(net, MLFFGANGenerator):
            raise TypeError(f"MLFFGANRecipe needs an MLFFGANGenerator, got {type(net).__name__}")
        if not 0.0 <= swap_prob <= 1.0:
            raise ValueError(f"swap_prob must be in [0, 1], got {swap_prob}")
        disc = MLFFGANDiscriminator(net.bands)
        weights = {"l1": l1_weight, "cosine": cosine_weight, "ms_ssim": ms_ssim_weight}
        super().__init__(net, disc, lr=lr, betas=betas, weights={"gan": gan_weight, **weights})
        self.swap_prob = float(swap_prob)

    #: Adam learning rate of both networks by default (the reference's).
    default_lr = 2e-4

    def augment(self, batch: Batch) -> Batch:
        """With probability ``swap_prob``, the batch with reference and target exchanged."""
        if self.swap_prob > 0 and float(torch.rand(())) < self.swap_prob:
            return swap_reference_and_target(batch)
        return batch

    def content_loss(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """``b·L1 + d·(1 − MS-SSIM) + c·(1 − cos)``, masked with ``valid``."""
        w = self.weights
        return (
            w["l1"] * masked_l1(pred, target, valid)
            + w["ms_ssim"] * masked_ms_ssim_loss(pred, target, valid)
            + w["cosine"] * masked_cosine_loss(pred, target, valid)
        )


def build(bands: int = 1) -> MLFFGANGenerator:
    """The MLFF-GAN generator with the published architecture (it has no free options).

    Parameters
    ----------
    bands : int
        Number of bands (1 for LST).

    Returns
    -------
    MLFFGANGenerator

    Examples
    --------
    >>> net = build(bands=1)
    >>> sum(p.numel() for p in net.parameters())
    5917360
    """
    return MLFFGANGenerator(bands)


def build_discriminator(bands: int = 1) -> MLFFGANDiscriminator:
    """The MLFF-GAN PatchGAN discriminator for ``bands`` bands (input ``2 · bands`` channels).

    Examples
    --------
    >>> sum(p.numel() for p in build_discriminator(1).parameters())
    2765505
    """
    return MLFFGANDiscriminator(bands)


#: Defaults of :func:`xstf.models.train.fit` for this model (epochs, batch size...).
DEFAULTS = {"epochs": 200, "batch_size": 4, "size_multiple": MULTIPLE}

SPEC = register(
    ModelSpec("mlffgan", build, MLFFGANRecipe, n_refs=1, reference=REFERENCE, defaults=DEFAULTS)
)
