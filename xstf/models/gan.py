"""The alternating discriminator / generator step shared by the GAN recipes (imports torch).

MLFF-GAN and GAN-STFM train the same way per batch (least-squares GAN, Mao et al.
2017): the discriminator ``D`` sees an image concatenated with the target coarse
image ``C_tgt``; it is updated on ``½[(D(real) − 1)² + D(fake)²]``, where *real* is
the fine target with its missing pixels replaced by the detached prediction (so
holes do not give real images away) and *fake* the detached prediction; then the
generator on ``content(pred, F_tgt) + w_gan · s · (D(fake) − 1)²``. The recipes
differ only in the content loss, the scale ``s`` (1 for MLFF-GAN, ½ for GAN-STFM)
and an optional augmentation of the batch (MLFF-GAN's reference/target swap), besides
their networks, learning rate and loss weights: :class:`GANRecipe` sets up the two
Adam optimisers and runs the step, subclasses fill in the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import Batch, RecipeBase
from .losses import lsgan_loss, validation_mse

__all__ = ["GANRecipe", "real_filled"]


def real_filled(batch: Batch, pred: torch.Tensor) -> torch.Tensor:
    """The target with its invalid pixels replaced by the (detached) prediction.

    Missing target pixels hold 0 (the normalised mean); shown to the discriminator as
    they are, "real" images would have flat holes it could learn to spot. Filling them
    with the prediction makes those pixels identical in real and fake inputs.

    Examples
    --------
    >>> import torch
    >>> b = {"f_tgt": torch.ones(1, 1, 1, 2), "tgt_valid": torch.tensor([[[[True, False]]]])}
    >>> real_filled(b, torch.zeros(1, 1, 1, 2)).tolist()
    [[[[1.0, 0.0]]]]
    """
    return torch.where(batch["tgt_valid"].expand_as(pred), batch["f_tgt"], pred.detach())


class GANRecipe(RecipeBase):
    """One discriminator update then one generator update per batch (LSGAN).

    Sets up what the GAN recipes share: the generator ``net`` and the discriminator
    (moved to the generator's device) as ``modules["net"]`` and
    ``modules["discriminator"]``, one Adam optimiser each (the same learning rate and
    betas; constant rate) under the same keys, and the loss :attr:`weights`.
    Subclasses implement :meth:`content_loss` and set :attr:`default_lr`; they may
    override :meth:`augment` and :attr:`adversarial_scale`.

    Parameters
    ----------
    net : torch.nn.Module
        The generator (the network used at prediction).
    discriminator : torch.nn.Module
        The discriminator: it scores an image concatenated with ``C_tgt``.
    lr : float, optional
        Adam learning rate of both networks (default :attr:`default_lr`).
    betas : (float, float)
        Adam betas of both networks.
    weights : dict of str to float
        Loss weights by term, with a ``"gan"`` entry (``w_gan``).

    Examples
    --------
    >>> import torch
    >>> r = GANRecipe(torch.nn.Conv2d(1, 1, 3), torch.nn.Conv2d(2, 1, 3), lr=0.1, weights={"gan": 1})
    >>> sorted(r.optimizers), r.optimizers["discriminator"].param_groups[0]["lr"], r.weights
    (['discriminator', 'net'], 0.1, {'gan': 1.0})
    """

    #: Adam learning rate when ``lr`` is None (each recipe sets its reference's).
    default_lr: float = 1e-3
    #: ``s`` in the generator's adversarial term ``w_gan · s · (D(fake) − 1)²``.
    adversarial_scale: float = 1.0
    #: Loss weights; ``weights["gan"]`` is ``w_gan``.
    weights: dict[str, float]

    def __init__(
        self,
        net: nn.Module,
        discriminator: nn.Module,
        *,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        weights: Mapping[str, float],
    ) -> None:
        super().__init__()
        lr = self.default_lr if lr is None else float(lr)
        disc = discriminator.to(next(net.parameters()).device)
        self.modules = {"net": net, "discriminator": disc}
        self.optimizers = {
            "net": torch.optim.Adam(net.parameters(), lr=lr, betas=betas),
            "discriminator": torch.optim.Adam(disc.parameters(), lr=lr, betas=betas),
        }
        self.weights = {k: float(v) for k, v in weights.items()}

    def augment(self, batch: Batch) -> Batch:
        """The batch the step trains on (default: as given)."""
        return batch

    def content_loss(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The generator's content loss, masked with ``valid``: subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement content_loss()")

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One D update then one G update; returns ``{"loss": G loss, "d_loss": D loss}`` (detached)."""
        net, disc = self.modules["net"], self.modules["discriminator"]
        net.train()
        disc.train()
        batch = self.augment(batch)
        c_tgt, target, valid = batch["c_tgt"], batch["f_tgt"], batch["tgt_valid"]
        pred = net(batch["c_refs"], batch["f_refs"], c_tgt)
        real = real_filled(batch, pred)

        opt_d = self.optimizers["discriminator"]
        opt_d.zero_grad(set_to_none=True)
        d_real = disc(torch.cat((real, c_tgt), 1))
        d_fake = disc(torch.cat((pred.detach(), c_tgt), 1))
        d_loss = 0.5 * (lsgan_loss(d_real, real=True) + lsgan_loss(d_fake, real=False))
        d_loss.backward()
        opt_d.step()

        opt_g = self.optimizers["net"]
        opt_g.zero_grad(set_to_none=True)
        adversarial = lsgan_loss(disc(torch.cat((pred, c_tgt), 1)), real=True)
        g_loss = self.content_loss(pred, target, valid) + self.weights["gan"] * (
            self.adversarial_scale * adversarial
        )
        g_loss.backward()
        opt_g.step()
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach()}

    @torch.no_grad()
    def validation_loss(self, batch: Batch) -> torch.Tensor:
        """Masked MSE of the generator (eval mode), as the references' validation error."""
        return validation_mse(self.modules["net"], batch)
