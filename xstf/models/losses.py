"""Masked losses for the deep fusion models (imports torch).

Every loss takes the prediction and the target as float tensors ``(B, C, H, W)``
(normalised LST, see :mod:`xstf.models.base`) and ``valid``, a bool tensor
broadcastable to them (``tgt_valid``, ``(B, 1, H, W)``) that says which target
pixels count. Pixels where ``valid`` is False add nothing to the loss nor to its
gradient, so clouded target pixels never steer training. A batch with no valid pixel
gives a loss of 0 (still differentiable).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from pytorch_msssim import ms_ssim, ssim

__all__ = [
    "freeze",
    "lsgan_loss",
    "masked_cosine_loss",
    "masked_l1",
    "masked_ms_ssim_loss",
    "masked_mse",
    "ms_ssim_window",
    "pretrain_autoencoder",
    "validation_mse",
]


def _expand(valid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool tensor, got dtype {valid.dtype}")
    try:
        return valid.expand_as(like)
    except RuntimeError:
        raise ValueError(
            f"valid has shape {tuple(valid.shape)}, not broadcastable to the prediction "
            f"{tuple(like.shape)}"
        ) from None


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid pixels.

    Parameters
    ----------
    pred, target : torch.Tensor
        Same shape, e.g. ``(B, C, H, W)``. ``target`` may hold NaN or any value where
        ``valid`` is False.
    valid : torch.Tensor of bool
        Broadcastable to ``pred``.

    Returns
    -------
    torch.Tensor
        Scalar: ``sum(valid · (pred − target)²) / count(valid)`` (0 if nothing is valid).

    Examples
    --------
    >>> import torch
    >>> p, t = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 3.0], [float("nan"), 0.0]]]])
    >>> float(masked_mse(p, t, t.isfinite()))
    3.3333332538604736
    """
    _check(pred, target)
    v = _expand(valid, pred)
    diff = torch.where(v, pred - target, torch.zeros((), dtype=pred.dtype, device=pred.device))
    return (diff * diff).sum() / v.sum().clamp_min(1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the valid pixels.

    Parameters
    ----------
    pred, target : torch.Tensor
        Same shape.
    valid : torch.Tensor of bool
        Broadcastable to ``pred``.

    Returns
    -------
    torch.Tensor
        Scalar: ``sum(valid · |pred − target|) / count(valid)`` (0 if nothing is valid).

    Examples
    --------
    >>> import torch
    >>> p, t = torch.zeros(1, 1, 1, 3), torch.tensor([[[[1.0, -3.0, 100.0]]]])
    >>> float(masked_l1(p, t, torch.tensor([True, True, False])))
    2.0
    """
    _check(pred, target)
    v = _expand(valid, pred)
    diff = torch.where(v, pred - target, torch.zeros((), dtype=pred.dtype, device=pred.device))
    return diff.abs().sum() / v.sum().clamp_min(1)


def ms_ssim_window(side: int) -> tuple[int, int]:
    """Window size and number of scales used by :func:`masked_ms_ssim_loss` for a patch side.

    ``pytorch_msssim.ms_ssim`` always downsamples 4 times and requires
    ``side > (win_size − 1) · 16``. The published setting (11-px Gaussian window,
    σ = 1.5, 5 scales) therefore needs patches of at least 161 px; on smaller
    patches the window shrinks to the largest odd size that fits (95 px → 5,
    48 px → 3), keeping σ = 1.5 and the 5 published scale weights. Below 33 px no
    window fits 5 scales, so single-scale SSIM with an 11-px window (or the
    largest odd window ≤ ``side``) is used instead (``scales == 1``).

    Parameters
    ----------
    side : int
        The smaller spatial side of the patches.

    Returns
    -------
    (int, int)
        ``(win_size, scales)``.

    Examples
    --------
    >>> ms_ssim_window(256), ms_ssim_window(95), ms_ssim_window(48), ms_ssim_window(16)
    ((11, 5), (5, 5), (3, 5), (11, 1))
    """
    if side < 3:
        raise ValueError(f"patches must be at least 3 px a side for SSIM, got {side}")
    win = 11
    while win >= 3 and side <= (win - 1) * 16:
        win -= 2
    if win >= 3:
        return win, 5
    return min(11, side if side % 2 else side - 1), 1


def masked_ms_ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    data_range: float | None = None,
) -> torch.Tensor:
    """``1 − MS-SSIM(pred, target)`` where invalid target pixels cost nothing.

    MS-SSIM is computed with :func:`pytorch_msssim.ms_ssim` (Gaussian window,
    σ = 1.5, K = (0.01, 0.03), the 5 published scale weights) on whole patches;
    to mask it, the target's invalid pixels are replaced by the (detached)
    prediction, so they match perfectly and add no error (only the windows that
    straddle them are slightly affected). The window size follows the patch size,
    see :func:`ms_ssim_window` (95 × 95 patches: 5-px window). It is computed in float32
    also under autocast (``fit(amp=True)``, the default on CUDA): in bfloat16 its local
    variances cancel.

    Differences from the reference implementations (documented in
    ``docs/models/*.md``): the window shrinks on patches under 161 px, the default
    data range is the batch's valid target range, both images are shifted by the
    batch minimum, and invalid target pixels are filled with the prediction; at 96 px
    the term is 3–5 times smaller than the references'.

    SSIM's luminance term is not shift invariant and assumes non-negative images;
    normalised LST is centred on 0, where that term is unstable. Both images are
    therefore shifted by the same constant, the minimum of the valid target
    values of the batch (detached), so they lie in about ``[0, data_range]``.

    Parameters
    ----------
    pred, target : torch.Tensor
        ``(B, C, H, W)``.
    valid : torch.Tensor of bool
        Broadcastable to ``pred``.
    data_range : float, optional
        SSIM's dynamic range ``L``. Default: the range (max − min) of the valid
        target values of the batch (detached; 1 if that is 0).

    Returns
    -------
    torch.Tensor
        Scalar in [0, 1] (0 for a perfect prediction, 0 if nothing is valid).

    Examples
    --------
    >>> import torch
    >>> t = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    >>> valid = torch.ones(2, 1, 48, 48, dtype=torch.bool)
    >>> float(masked_ms_ssim_loss(t, t, valid)) < 1e-6
    True
    >>> float(masked_ms_ssim_loss(torch.zeros_like(t), t, valid)) > 0.5
    True
    """
    _check(pred, target)
    if pred.ndim != 4:
        raise ValueError(f"masked_ms_ssim_loss needs (B, C, H, W) tensors, got {tuple(pred.shape)}")
    v = _expand(valid, pred)
    # no host sync (no bool(), float() or boolean indexing): on CUDA a step then queues
    # without waiting, and torch.compile traces the loss in one graph
    any_valid = v.any()
    filled = torch.where(v, target, pred.detach())
    t = target.detach()
    inf = torch.tensor(float("inf"), dtype=t.dtype, device=t.device)
    lo = torch.where(any_valid, torch.where(v, t, inf).amin(), 0.0)  # finite if none valid
    dr: float | torch.Tensor = data_range if data_range is not None else 1.0
    if data_range is None:
        span = torch.where(any_valid, torch.where(v, t, -inf).amax() - lo, 0.0).float()
        dr = torch.where(span > 0, span, 1.0)
    win, scales = ms_ssim_window(min(pred.shape[-2:]))
    # float32 even under autocast: SSIM's local variances (E[x²] − E[x]²) cancel, and with
    # its Gaussian-window convolutions in bfloat16 the term came out about 2× too large
    with torch.autocast(device_type=pred.device.type, enabled=False):
        x = pred.float() - lo.float()
        y = filled.float() - lo.float()
        if scales == 5:
            score = ms_ssim(x, y, data_range=dr, size_average=True, win_size=win)
        else:
            score = ssim(x, y, data_range=dr, size_average=True, win_size=win)
    # nothing valid: 0, with zero gradients (filled equals the prediction there anyway)
    return torch.where(any_valid, 1.0 - score, score * 0.0)


def masked_cosine_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """``1 − cosine similarity`` between prediction and target over the valid pixels, per sample.

    Each sample's valid pixels (all bands) are flattened into one vector; the loss is
    the batch mean of ``1 − <p, t> / (|p| |t|)``. Samples with no valid pixel count 0.

    Parameters
    ----------
    pred, target : torch.Tensor
        ``(B, ...)``.
    valid : torch.Tensor of bool
        Broadcastable to ``pred``.
    eps : float
        Added to the product of the norms.

    Returns
    -------
    torch.Tensor
        Scalar in [0, 2].

    Examples
    --------
    >>> import torch
    >>> t = torch.tensor([[[[1.0, 2.0, 9.0]]]])
    >>> valid = torch.tensor([True, True, False])
    >>> round(float(masked_cosine_loss(2 * t, t, valid)), 6)
    0.0
    >>> round(float(masked_cosine_loss(-t, t, valid)), 6)
    2.0
    """
    _check(pred, target)
    v = _expand(valid, pred)
    zero = torch.zeros((), dtype=pred.dtype, device=pred.device)
    p = torch.where(v, pred, zero).flatten(1)
    t = torch.where(v, target, zero).flatten(1)
    cos = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1) + eps)
    has = v.flatten(1).any(1)
    per = torch.where(has, 1.0 - cos, zero)
    return per.mean()


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): mean((D − 1)²) for real, mean(D²) for fake.

    Examples
    --------
    >>> import torch
    >>> float(lsgan_loss(torch.ones(2, 1, 4, 4), real=True))
    0.0
    >>> float(lsgan_loss(torch.ones(2, 1, 4, 4), real=False))
    1.0
    """
    target = 1.0 if real else 0.0
    return ((scores - target) ** 2).mean()


@torch.no_grad()
def validation_mse(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Masked MSE of ``net``'s prediction (eval mode) on a batch: every recipe's validation loss.

    A 0-d float32 tensor on the batch's device: the loop sums it there and reads the
    epoch's total back once (no host sync per validation batch).

    Examples
    --------
    >>> import torch
    >>> from xstf.models.edcstfn import build
    >>> z = torch.zeros(1, 2, 1, 8, 8)
    >>> batch = {"c_refs": z, "f_refs": z, "c_tgt": z[:, 0], "f_tgt": z[:, 0],
    ...          "tgt_valid": torch.ones(1, 1, 8, 8, dtype=torch.bool)}
    >>> loss = validation_mse(build(), batch)
    >>> loss.shape, loss.dtype, float(loss) >= 0
    (torch.Size([]), torch.float32, True)
    """
    net.eval()
    pred = net(batch["c_refs"], batch["f_refs"], batch["c_tgt"])
    return masked_mse(pred, batch["f_tgt"], batch["tgt_valid"]).float()


def freeze(module: torch.nn.Module) -> None:
    """Put ``module`` in eval mode and stop its gradients (a fixed feature extractor).

    Examples
    --------
    >>> m = torch.nn.Linear(2, 2)
    >>> freeze(m)
    >>> any(p.requires_grad for p in m.parameters()), m.training
    (False, False)
    """
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)


def pretrain_autoencoder(
    ae: torch.nn.Module,
    loader: Iterable[dict[str, torch.Tensor]],
    epochs: int,
    device: torch.device | str | None = None,
    lr: float = 1e-3,
) -> None:
    """Train the feature-loss auto-encoder on the batches' fine targets (masked MSE), then freeze it.

    Shared by the recipes whose loss compares features of an auto-encoder trained on the
    same data (EDCSTFN, GAN-STFM).

    Examples
    --------
    >>> ae = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> x = torch.randn(2, 1, 8, 8)
    >>> pretrain_autoencoder(ae, [{"f_tgt": x, "tgt_valid": torch.ones_like(x, dtype=torch.bool)}], 1)
    >>> ae.training
    False
    """
    dev = next(ae.parameters()).device if device is None else torch.device(device)
    for p in ae.parameters():
        p.requires_grad_(True)
    ae.train()
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    for _ in range(epochs):
        for batch in loader:
            x, valid = batch["f_tgt"].to(dev), batch["tgt_valid"].to(dev)
            opt.zero_grad(set_to_none=True)
            loss = masked_mse(ae(x), x, valid)
            loss.backward()
            opt.step()
    freeze(ae)
