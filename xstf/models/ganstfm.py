"""GAN-STFM: a reference-insensitive conditional GAN (Tan et al. 2022): ``C_tgt`` + one fine image.

Imports torch: load it through :mod:`xstf.models` (``xstf.models.fit(ds, "ganstfm")``).

The generator needs only the coarse image of the target date and **one** fine image of
any date (no coarse image of the reference date): a model needs fewer usable pairs
than EDCSTFN/STTFN/MLFF-GAN, which need both images of a reference pair.

Architecture (as in the authors' public release, ``theonegis/ganstfm``, re-implemented):

* encoder: 4 residual blocks (16, 32, 64, 128 channels), each with two paths: a
  *lateral* path (3 × 3 + 1 × 1 convolutions, LeakyReLU) carrying the target coarse
  image, and a *trunk* path (switchable normalisation, LeakyReLU, 3 × 3 convolution,
  switchable normalisation, LeakyReLU, 1 × 1 convolution) carrying the fine image, the
  block's trunk output being ``trunk + lateral``; 3 × 3 convolutions are replication-
  padded;
* decoder: the two paths concatenated (256 channels), 4 plain residual blocks
  (128, 64, 32, 16 channels) and a 1 × 1 convolution;
* discriminator: three spectral-norm residual discriminators applied to the image
  concatenated with the target coarse image at full, ½ and ¼ resolution (nearest
  interpolation), scores averaged; least-squares GAN.

With one band the generator has 577,225 parameters, as the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .base import Batch, ModelSpec, register
from .gan import GANRecipe
from .losses import (
    freeze,
    masked_cosine_loss,
    masked_ms_ssim_loss,
    masked_mse,
    pretrain_autoencoder,
)
from .mlffgan import _check_inputs

__all__ = [
    "SPEC",
    "AutoEncoder",
    "GANSTFMDiscriminator",
    "GANSTFMGenerator",
    "GANSTFMRecipe",
    "SwitchNorm2d",
    "build",
    "build_discriminator",
]

CHANNELS = (16, 32, 64, 128)
REFERENCE = (
    "Tan, Z., Gao, M., Li, X. & Jiang, L. (2022). A flexible reference-insensitive "
    "spatiotemporal fusion model for remote sensing images using conditional generative "
    "adversarial network. IEEE Transactions on Geoscience and Remote Sensing, 60"
)


class SwitchNorm2d(nn.Module):
    """Switchable normalisation (Luo et al. 2019): a learnt mix of instance, layer and batch norm.

    Means and variances are computed per sample and channel (instance), per sample
    (layer) and per channel over the batch (batch), mixed with softmax weights, and
    the normalised tensor is scaled and shifted per channel. The batch statistics keep
    running averages (``running = m·running + (1 − m)·batch``, ``m = 0.9``) used in
    eval mode. Parameters: ``2·C + 6``.

    Parameters
    ----------
    num_features : int
        Channels ``C``.
    eps : float
        Added to the variance.
    momentum : float
        Weight of the old running statistics.

    Examples
    --------
    >>> import torch
    >>> sn = SwitchNorm2d(3)
    >>> sum(p.numel() for p in sn.parameters())
    12
    >>> with torch.no_grad():  # weights favouring instance statistics: per-image z-scores
    ...     _ = sn.mean_weight.copy_(torch.tensor([50.0, 0.0, 0.0]))
    ...     _ = sn.var_weight.copy_(torch.tensor([50.0, 0.0, 0.0]))
    ...     y = sn(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 5 + 2)
    >>> round(float(y.mean(dim=(2, 3)).abs().max()), 4), round(float(y.std(dim=(2, 3)).mean()), 4)
    (0.0, 1.0)
    """

    running_mean: torch.Tensor  # buffers (register_buffer), declared for the type checker
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))
        self.register_buffer("running_mean", torch.zeros(1, num_features, 1))
        self.register_buffer("running_var", torch.zeros(1, num_features, 1))

    def forward(
        self, x: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Normalise ``x``; ``stats``: the per-channel ``(mean, var)`` of the whole scene to use
        as the instance statistics (tiled prediction, :mod:`xstf.models.tiling`)."""
        if x.ndim != 4:
            raise ValueError(f"SwitchNorm2d expects (B, C, H, W), got {tuple(x.shape)}")
        n, c, h, w = x.shape
        flat = x.reshape(n, c, -1)
        if stats is None:
            mean_in = flat.mean(-1, keepdim=True)
            var_in = flat.var(-1, keepdim=True)
        else:
            mean_in = stats[0].to(x.dtype).reshape(1, c, 1).expand(n, c, 1)
            var_in = stats[1].to(x.dtype).reshape(1, c, 1).expand(n, c, 1)
        mean_ln = mean_in.mean(1, keepdim=True)
        second = var_in + mean_in**2
        var_ln = second.mean(1, keepdim=True) - mean_ln**2
        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = second.mean(0, keepdim=True) - mean_bn**2
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean_bn)
                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var_bn)
        else:
            mean_bn, var_bn = self.running_mean, self.running_var
        mw = torch.softmax(self.mean_weight, 0)
        vw = torch.softmax(self.var_weight, 0)
        mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
        var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
        out = (flat - mean) / (var + self.eps).sqrt()
        return out.reshape(n, c, h, w) * self.weight + self.bias


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Replication-padded 3 × 3 convolution."""
    return nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride))


class _EncoderBlock(nn.Module):
    """Two-path residual block: ``(lateral, trunk) -> (T(lateral), R(trunk) + T(lateral))``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        ch = min(cin, cout)
        self.residual = nn.Sequential(
            SwitchNorm2d(cin),
            nn.LeakyReLU(),
            _conv3(cin, ch),
            SwitchNorm2d(ch),
            nn.LeakyReLU(),
            nn.Conv2d(ch, cout, 1),
        )
        self.transform = nn.Sequential(_conv3(cin, ch), nn.Conv2d(ch, cout, 1), nn.LeakyReLU())

    def forward(
        self,
        lateral: torch.Tensor,
        trunk: torch.Tensor,
        stats: Sequence[Any] | None = None,
        stop: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``stats``: scene statistics of the two switchable norms (or None each); ``stop``:
        return ``(None, input of norm number stop)`` instead (scene-statistics pass)."""
        lat = self.transform(lateral)
        x, k = trunk, 0
        for layer in self.residual:
            if isinstance(layer, SwitchNorm2d):
                if stop == k:
                    return None, x  # type: ignore[return-value]
                x = layer(x, None if stats is None else stats[k])
                k += 1
            else:
                x = layer(x)
        return lat, x + lat


class _DecoderBlock(nn.Module):
    """Residual block: ``conv1(LeakyReLU(conv3(x))) + conv1(x)``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        ch = min(cin, cout)
        self.residual = nn.Sequential(_conv3(cin, ch), nn.LeakyReLU(), nn.Conv2d(ch, cout, 1))
        self.transform = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.transform(x)


class GANSTFMGenerator(nn.Module):
    """The GAN-STFM generator (the network used at prediction).

    Parameters
    ----------
    bands : int
        Number of bands ``C`` (1 for LST).

    Notes
    -----
    ``forward(c_refs, f_refs, c_tgt)`` follows :mod:`xstf.models.base` with ``R = 1``;
    ``c_refs`` is accepted and **ignored** (the model does not use the reference coarse
    image). Switchable normalisation mixes instance and layer statistics of the whole
    input; in tiled prediction (:mod:`xstf.models.tiling`) those of the whole date
    are computed first, one normalisation after the other (:meth:`stat_features`,
    8 stages), and passed to every tile (``forward(..., scene_stats=...)``), so tiled
    prediction equals whole-scene prediction.

    Examples
    --------
    >>> import torch
    >>> net = GANSTFMGenerator(bands=1).eval()
    >>> f_refs, c_tgt = torch.zeros(2, 1, 1, 24, 20), torch.zeros(2, 1, 24, 20)
    >>> net(None, f_refs, c_tgt).shape
    torch.Size([2, 1, 24, 20])
    >>> sum(p.numel() for p in net.parameters())
    577225
    """

    def __init__(self, bands: int = 1) -> None:
        super().__init__()
        if bands < 1:
            raise ValueError(f"bands must be >= 1, got {bands}")
        self.bands = bands
        c = CHANNELS
        self.encoder = nn.ModuleList(_EncoderBlock(a, b) for a, b in pairwise((bands, *c)))
        self.decoder = nn.Sequential(
            _DecoderBlock(c[3] * 2, c[3]),
            _DecoderBlock(c[3], c[2]),
            _DecoderBlock(c[2], c[1]),
            _DecoderBlock(c[1], c[0]),
            nn.Conv2d(c[0], bands, 1),
        )

    #: scene statistics: the 8 switchable norms of the encoder, in order
    stat_stages = 2 * len(CHANNELS)

    @property
    def receptive_field(self) -> int:
        """Radius (px): one 3 × 3 convolution per encoder block (on either path) and per decoder block."""
        return len(self.encoder) + sum(1 for b in self.decoder if isinstance(b, _DecoderBlock))

    def stat_features(
        self,
        stage: int,
        stats: Sequence[Any],
        c_refs: torch.Tensor | None,
        f_refs: torch.Tensor,
        c_tgt: torch.Tensor,
    ) -> list[tuple[torch.Tensor, int]]:
        """The input of switchable norm ``stage`` (full size), given the scene statistics of the earlier ones."""
        if not 0 <= stage < self.stat_stages:
            raise ValueError(
                f"GAN-STFM has {self.stat_stages} stages of scene statistics, not {stage}"
            )
        _check_inputs(None, f_refs, c_tgt, self.bands, "GAN-STFM")
        flat = [mv[0] for mv in stats] + [None] * (self.stat_stages - len(stats))
        lateral, trunk = c_tgt, f_refs[:, 0]
        for i, block in enumerate(self.encoder):
            stop = stage - 2 * i if 0 <= stage - 2 * i < 2 else None
            lateral, trunk = block(lateral, trunk, flat[2 * i : 2 * i + 2], stop)
            if stop is not None:
                return [(trunk, 1)]
        raise AssertionError("unreachable")

    def forward(
        self,
        c_refs: torch.Tensor | None,
        f_refs: torch.Tensor,
        c_tgt: torch.Tensor,
        scene_stats: Sequence[Any] | None = None,
    ) -> torch.Tensor:
        _check_inputs(None, f_refs, c_tgt, self.bands, "GAN-STFM")
        flat = None if scene_stats is None else [mv[0] for mv in scene_stats]
        lateral, trunk = c_tgt, f_refs[:, 0]
        for i, block in enumerate(self.encoder):
            lateral, trunk = block(
                lateral, trunk, None if flat is None else flat[2 * i : 2 * i + 2]
            )
        return self.decoder(torch.cat((lateral, trunk), 1))


class _DiscBlock(nn.Module):
    """Spectral-norm residual block halving the size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.LeakyReLU(),
            spectral_norm(nn.Conv2d(cin, cin, 3, stride=2, padding=1)),
            nn.BatchNorm2d(cin),
            nn.LeakyReLU(),
            spectral_norm(nn.Conv2d(cin, cout, 1)),
        )
        self.transform = spectral_norm(nn.Conv2d(cin, cout, 1, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x) + self.residual(x)


class _SingleScaleDiscriminator(nn.Sequential):
    def __init__(self, channels: tuple[int, ...]) -> None:
        blocks: list[nn.Module] = [_DiscBlock(a, b) for a, b in pairwise(channels)]
        blocks.append(spectral_norm(nn.Conv2d(channels[-1], 1, 1)))
        super().__init__(*blocks)


class GANSTFMDiscriminator(nn.Module):
    """Multi-scale spectral-norm discriminator: one score per sample.

    Three residual discriminators see the input ``(B, 2C, H, W)`` (image concatenated
    with the target coarse image) at full, ½ and ¼ resolution; each score map is
    averaged over space, and the three are averaged. (The reference averages over the
    batch too, giving one score per batch; per-sample scores make the least-squares
    loss the usual mean over samples.)

    Examples
    --------
    >>> import torch
    >>> d = GANSTFMDiscriminator(bands=1)
    >>> d(torch.zeros(3, 2, 40, 40)).shape
    torch.Size([3])
    """

    def __init__(self, bands: int = 1) -> None:
        super().__init__()
        b2 = 2 * bands
        self.scales = nn.ModuleList(
            [
                _SingleScaleDiscriminator((b2, 32, 32, 64, 64, 128, 128, 256, 256)),
                _SingleScaleDiscriminator((b2, 32, 64, 64, 128, 128, 256, 256)),
                _SingleScaleDiscriminator((b2, 32, 64, 128, 128, 256, 256)),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = []
        for k, d in enumerate(self.scales):
            xs = x if k == 0 else F.interpolate(x, scale_factor=0.5**k)
            scores.append(d(xs).mean(dim=(1, 2, 3)))
        return torch.stack(scores).mean(0)


class AutoEncoder(nn.Module):
    """The auto-encoder whose encoder gives GAN-STFM's feature loss (the reference's ``AutoEncoder``).

    Encoder: replication-padded 3 × 3 convolutions with LeakyReLU, B→16, then three
    stride-2 ones 16→32→64→128. Decoder: nearest upsampling, 3 × 3 convolutions with
    LeakyReLU and skip connections (128→64, cat 128→32, cat 64→16, cat 32 → 1 × 1 → B).
    The reference upsamples ×2; xstf upsamples to the size of each skip, so odd
    patch sizes work too.

    Examples
    --------
    >>> import torch
    >>> ae = AutoEncoder(1)
    >>> ae(torch.zeros(2, 1, 45, 37)).shape, ae.encode(torch.zeros(2, 1, 48, 48)).shape
    (torch.Size([2, 1, 45, 37]), torch.Size([2, 128, 6, 6]))
    """

    def __init__(self, bands: int = 1) -> None:
        super().__init__()
        c = CHANNELS
        self.down = nn.ModuleList(
            [nn.Sequential(_conv3(bands, c[0]), nn.LeakyReLU())]
            + [nn.Sequential(_conv3(a, b, stride=2), nn.LeakyReLU()) for a, b in pairwise(c)]
        )
        self.up = nn.ModuleList(
            [
                nn.Sequential(_conv3(c[3], c[2]), nn.LeakyReLU()),
                nn.Sequential(_conv3(c[2] * 2, c[1]), nn.LeakyReLU()),
                nn.Sequential(_conv3(c[1] * 2, c[0]), nn.LeakyReLU()),
            ]
        )
        self.out = nn.Conv2d(c[0] * 2, bands, 1)

    def _levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.down:
            x = level(x)
            out.append(x)
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The deepest features (128 channels, 1/8 of the size): what the loss compares."""
        return self._levels(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1, l2, l3, l4 = self._levels(x)
        y = l4
        for up, skip in zip(self.up, (l3, l2, l1), strict=True):
            y = up(F.interpolate(y, size=skip.shape[-2:]))
            if skip is not l1:
                y = torch.cat((skip, y), 1)
        return self.out(torch.cat((l1, y), 1))


class GANSTFMRecipe(GANRecipe):
    """How GAN-STFM trains: alternating discriminator and generator steps (LSGAN).

    Per :meth:`step`: the discriminator minimises ``½[(D(real) − 1)² + D(fake)²]``
    (``D`` sees the image concatenated with ``C_tgt``; the target's missing pixels are
    filled with the prediction so holes do not give real images away); then the
    generator minimises the reference's content loss plus ``10⁻³ · ½(D(fake) − 1)²``:

    ``MSE(E(pred), E(F_tgt)) + (1 − cos_channels(E(pred), E(F_tgt))) + (1 − MS-SSIM(pred, F_tgt))``

    with ``E`` the encoder of an auto-encoder (:class:`AutoEncoder`) trained first on
    the training fine patches (:meth:`prepare`, ``ae_epochs`` passes of masked MSE
    reconstruction, Adam lr 10⁻³; the reference loads one pre-trained on its own
    reflectance images), then frozen; in the features the target's missing pixels are
    replaced by the detached prediction, and MS-SSIM is masked. With ``ae_epochs=0``
    the MSE and cosine terms are computed on the valid pixels instead (no auto-encoder).
    Adam (lr 10⁻³, the reference's default) for both networks, constant rate.

    Parameters
    ----------
    net : GANSTFMGenerator
    lr : float, optional
        Adam learning rate of both networks (default 1e-3, the reference's ``run.py``).
    betas : (float, float)
        Adam betas.
    mse_weight, cosine_weight, ms_ssim_weight, gan_weight : float
        Loss weights (1, 1, 1, 10⁻³ as the reference).
    ae_epochs : int
        Passes over the training patches to train the auto-encoder (default 2; 0: pixel
        losses instead of feature losses).

    Examples
    --------
    >>> from xstf.models.ganstfm import build
    >>> r = GANSTFMRecipe(build())
    >>> sorted(r.modules), r.prepare_passes
    (['autoencoder', 'discriminator', 'net'], 2)
    """

    def __init__(
        self,
        net: GANSTFMGenerator,
        *,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        mse_weight: float = 1.0,
        cosine_weight: float = 1.0,
        ms_ssim_weight: float = 1.0,
        gan_weight: float = 1e-3,
        ae_epochs: int = 2,
    ) -> None:
        if not isinstance(net, GANSTFMGenerator):
            raise TypeError(f"GANSTFMRecipe needs a GANSTFMGenerator, got {type(net).__name__}")
        if ae_epochs < 0:
            raise ValueError(f"ae_epochs must be >= 0, got {ae_epochs}")
        disc = GANSTFMDiscriminator(net.bands)
        weights = {"mse": mse_weight, "cosine": cosine_weight, "ms_ssim": ms_ssim_weight}
        super().__init__(net, disc, lr=lr, betas=betas, weights={**weights, "gan": gan_weight})
        self.ae_epochs = int(ae_epochs)
        self.autoencoder: AutoEncoder | None = None
        if self.ae_epochs > 0:  # after the discriminator: its weights are drawn first
            self.autoencoder = AutoEncoder(net.bands).to(next(net.parameters()).device)
            self.modules["autoencoder"] = self.autoencoder
            self.on_resume()

    #: Adam learning rate of both networks by default (the reference's ``run.py``).
    default_lr = 1e-3
    #: The generator's adversarial term is ``w_gan · ½(D(fake) − 1)²``, as the reference.
    adversarial_scale = 0.5

    @property
    def prepare_passes(self) -> int:
        """Auto-encoder passes over the training batches (0 without an auto-encoder)."""
        return 0 if self.autoencoder is None else self.ae_epochs

    def on_resume(self) -> None:
        """Keep the (restored) auto-encoder frozen."""
        if self.autoencoder is not None:
            freeze(self.autoencoder)

    def prepare(self, loader: Iterable[Batch], device: torch.device | str | None = None) -> None:
        """Train the auto-encoder on the training fine patches (``ae_epochs`` passes), then freeze it."""
        if self.autoencoder is None:
            return
        pretrain_autoencoder(self.autoencoder, loader, self.ae_epochs, device)

    def content_loss(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The reference's reconstruction loss (feature MSE + feature cosine + 1 − MS-SSIM), masked."""
        w = self.weights
        ssim = masked_ms_ssim_loss(pred, target, valid)
        if self.autoencoder is None:
            mse = masked_mse(pred, target, valid)
            cos = masked_cosine_loss(pred, target, valid)
        else:
            filled = torch.where(valid.expand_as(target), target, pred.detach())
            fp, ft = self.autoencoder.encode(pred), self.autoencoder.encode(filled)
            mse = F.mse_loss(fp, ft)
            cos = 1.0 - F.cosine_similarity(fp, ft, dim=1).mean()
        return w["mse"] * mse + w["cosine"] * cos + w["ms_ssim"] * ssim


def build(bands: int = 1) -> GANSTFMGenerator:
    """The GAN-STFM generator with the published architecture (it has no free options).

    Parameters
    ----------
    bands : int
        Number of bands (1 for LST).

    Returns
    -------
    GANSTFMGenerator

    Examples
    --------
    >>> sum(p.numel() for p in build(bands=1).parameters())
    577225
    """
    return GANSTFMGenerator(bands)


def build_discriminator(bands: int = 1) -> GANSTFMDiscriminator:
    """The multi-scale GAN-STFM discriminator for ``bands`` bands.

    Examples
    --------
    >>> build_discriminator(1).scales[0][0].residual[0].num_features
    2
    """
    return GANSTFMDiscriminator(bands)


#: Defaults of :func:`xstf.models.train.fit` for this model (epochs, batch size...).
DEFAULTS = {"epochs": 30, "batch_size": 32}

SPEC = register(
    ModelSpec(
        "ganstfm",
        build,
        GANSTFMRecipe,
        n_refs=1,
        needs_coarse_ref=False,
        reference=REFERENCE,
        defaults=DEFAULTS,
    )
)
