"""Tiled forward pass of a deep fusion network over one date (imports torch).

The scene is cut into tiles of ``tile`` px overlapping by ``overlap`` px, batched to
the device, and the tiles are blended with taper weights (see :func:`predict_image`).
:mod:`xstf.models.inference` builds the per-date input stacks and calls this.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import normalise, patch_origins

__all__ = ["predict_image"]


def _taper(n: int, overlap: int, start: bool, end: bool) -> np.ndarray:
    w = np.ones(n, dtype=np.float64)
    ov = min(overlap, n)
    if ov <= 0:
        return w
    margin = ov // 4
    i = np.arange(ov, dtype=np.float64)
    ramp = np.clip((i + 1 - margin) / (ov - margin), 0.0, 1.0)
    if start:
        w[:ov] = np.minimum(w[:ov], ramp)
    if end:
        w[n - ov :] = np.minimum(w[n - ov :], ramp[::-1])
    return w


def predict_image(
    net: torch.nn.Module,
    stack: np.ndarray,
    mean: float,
    std: float,
    n_refs: int,
    *,
    tile: int = 512,
    overlap: int = 32,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    amp: bool = False,
    multiple: int = 1,
    level: float = 0.0,
) -> np.ndarray:
    """Predict one date from its input stack, in blended tiles.

    Parameters
    ----------
    net : torch.nn.Module
        The prediction network (eval mode, on ``device``).
    stack : numpy.ndarray
        ``(1 + 2·n_refs, H, W)`` in K: target coarse, then coarse and fine of each
        reference pair.
    mean, std : float
        The model's normalisation.
    n_refs : int
        Reference pairs.
    tile, overlap : int
        Tile side and overlap (px).
    batch_size : int
        Tiles per forward pass.
    device : torch.device or str
        Where ``net`` lives.
    amp : bool
        Autocast (bfloat16 on CPU, float16 on CUDA).
    multiple : int
        Tiles are padded (replicate) to a multiple of this (models that downsample).
    level : float
        The date's level (K), subtracted from every input before ``mean``/``std`` and
        added back to the output: the scene mean of the target coarse image for a
        ``"date_level"`` model (the whole scene's, also when ``stack`` is a part of
        it), 0 for a ``"global"`` one.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 prediction in K, NaN where the target coarse is NaN.

    Examples
    --------
    >>> import numpy as np, xstf
    >>> net = xstf.models.create("edcstfn")
    >>> stack = np.full((5, 40, 40), 290.0, dtype="float32")  # c_tgt, (c_ref, f_ref) x 2
    >>> predict_image(net.eval(), stack, 290.0, 5.0, 2, tile=32, overlap=8).shape
    (40, 40)
    """
    dev = torch.device(device)
    level = float(level)
    if not np.isfinite(level):  # no valid target coarse pixel: nothing to predict
        return np.full(np.shape(stack)[1:], np.nan, dtype=np.float32)
    norm, valid = normalise(np.asarray(stack, dtype=np.float64), mean, std, level)
    _, h, w = norm.shape
    th, tw = min(tile, h), min(tile, w)
    if overlap >= min(th, tw) and (th < h or tw < w):
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    ys = patch_origins(h, th, max(1, th - overlap))
    xs = patch_origins(w, tw, max(1, tw - overlap))
    out = np.zeros((h, w), dtype=np.float64)
    wsum = np.zeros((h, w), dtype=np.float64)
    origins = [(y, x) for y in ys for x in xs]
    ph = -(-th // multiple) * multiple - th
    pw = -(-tw // multiple) * multiple - tw
    x_all = torch.from_numpy(norm)
    cast = dict(device_type=dev.type, dtype=torch.bfloat16 if dev.type == "cpu" else torch.float16)
    for k in range(0, len(origins), batch_size):
        chunk = origins[k : k + batch_size]
        tiles = torch.stack([x_all[:, y : y + th, x : x + tw] for y, x in chunk]).to(dev)
        if ph or pw:
            tiles = torch.nn.functional.pad(tiles, (0, pw, 0, ph), mode="replicate")
        c_tgt = tiles[:, 0:1]
        rest = tiles[:, 1:].reshape(tiles.shape[0], n_refs, 2, 1, *tiles.shape[-2:])
        with torch.no_grad(), torch.autocast(**cast, enabled=amp):
            pred = net(rest[:, :, 0], rest[:, :, 1], c_tgt)
        pred = pred[:, 0, :th, :tw].float().cpu().numpy().astype(np.float64)
        for (y, x), p in zip(chunk, pred, strict=True):
            wy = _taper(th, overlap, y > 0, y + th < h)
            wx = _taper(tw, overlap, x > 0, x + tw < w)
            wt = wy[:, None] * wx[None, :]
            out[y : y + th, x : x + tw] += wt * p
            wsum[y : y + th, x : x + tw] += wt
    res = (out / wsum * std + mean + level).astype(np.float32)
    res[~valid[0]] = np.nan
    return res
