"""Scores of a fused LST map against a reference: the survey's six metrics plus MAE and bias.

:func:`metrics` scores every date (and method, and region) of a prediction against a
reference over the valid pixels, lazily for dask-backed input, and returns an
:class:`xarray.Dataset` that ``.to_dataframe()`` turns into a table.

Definitions (one band, over the pixels valid in both images and in ``mask``; ``ŷ``
prediction, ``y`` reference, both converted to ``units`` first):

- RMSE ``= sqrt(mean((ŷ − y)²))``, MAE ``= mean(|ŷ − y|)``, bias ``= mean(ŷ − y)``;
- CC: Pearson correlation of the flattened images;
- SSIM (Wang et al. 2004): Gaussian window (σ = 1.5, 11 × 11), K1 = 0.01, K2 = 0.03,
  population covariances, data range ``L``; identical to
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=L)`` on gap-free images. With gaps the
  window statistics use the valid pixels only (normalised convolution), see
  :func:`ssim`;
- PSNR ``= 20·log10(L / RMSE)`` (``inf`` when RMSE = 0);
- SAM: angle between the flattened prediction and reference vectors, degrees;
- ERGAS ``= 100·ratio·sqrt((RMSE / μ)²)``, ``μ`` = mean of the reference, ``ratio`` =
  fine / coarse pixel size (30/1000 for Landsat/MODIS).

SAM, ERGAS and SSIM depend on whether the temperatures are in °C or K (SAM measures an
angle from 0, ERGAS divides by the mean, SSIM's luminance term compares mean levels);
RMSE, MAE, bias, CC and PSNR do not (``L`` is a temperature *difference*).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from .units import convert_units, normalise_units

__all__ = ["SCORES", "common_mask", "metrics", "ssim"]

#: Scores returned by :func:`metrics`, in order, with their ``long_name`` and units
#: (``None``: the temperature units chosen).
SCORES: dict[str, tuple[str, str | None]] = {
    "rmse": ("root-mean-square error", None),
    "mae": ("mean absolute error", None),
    "bias": ("mean error (prediction - reference)", None),
    "ubrmse": ("unbiased RMSE (standard deviation of the error)", None),
    "cc": ("Pearson correlation coefficient", "1"),
    "ssim": ("structural similarity index (Gaussian window, sigma 1.5)", "1"),
    "psnr": ("peak signal-to-noise ratio", "dB"),
    "sam": ("spectral angle between prediction and reference", "degree"),
    "ergas": ("relative dimensionless global error in synthesis (ERGAS)", "1"),
    "n_valid": ("number of pixels scored", "1"),
    "data_range": ("data range L used by SSIM and PSNR", None),
    "skill_rmse": ("RMSE skill score against the baseline (1 - RMSE / RMSE_baseline)", "1"),
    "skill_ubrmse": ("ubRMSE skill score against the baseline (1 - ubRMSE / ubRMSE_baseline)", "1"),
}
_NAMES = tuple(SCORES)
#: Scores present only when a baseline is given.
_SKILL = ("skill_rmse", "skill_ubrmse")

_SIGMA = 1.5
_TRUNCATE = 3.5
_RADIUS = int(_TRUNCATE * _SIGMA + 0.5)  # 5 -> an 11 x 11 window, as scipy and skimage
_K1, _K2 = 0.01, 0.03


# -- numpy kernels ------------------------------------------------------------------------------
def _ssim_map(
    pred: np.ndarray, ref: np.ndarray, valid: np.ndarray, data_range: float
) -> np.ndarray:
    """SSIM map of two 2-D float64 images whose window statistics use valid pixels only."""
    m = valid.astype(np.float64)
    x = np.where(valid, pred, 0.0)
    y = np.where(valid, ref, 0.0)

    def g(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma=_SIGMA, truncate=_TRUNCATE, mode="reflect")

    with np.errstate(divide="ignore", invalid="ignore"):
        w = g(m)
        ux, uy = g(x) / w, g(y) / w
        vx = g(x * x) / w - ux * ux
        vy = g(y * y) / w - uy * uy
        vxy = g(x * y) / w - ux * uy
        c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return np.where(valid, s, np.nan)


def _interior(shape: tuple[int, int]) -> np.ndarray:
    """Pixels at least one window radius from the edge (skimage's ``crop``)."""
    inner = np.zeros(shape, dtype=bool)
    inner[_RADIUS : shape[0] - _RADIUS, _RADIUS : shape[1] - _RADIUS] = True
    return inner


def _constant(values: np.ndarray, idx: np.ndarray, n_regions: int) -> np.ndarray:
    """Per region: are all values equal? (Rounding makes their centred sum of squares > 0.)"""
    first = np.zeros(n_regions)
    first[idx[::-1]] = values[::-1]  # the last write wins: each region's first value
    return np.bincount(idx, weights=values != first[idx], minlength=n_regions) == 0


def _scores_2d(
    pred: np.ndarray,
    ref: np.ndarray,
    valid: np.ndarray,
    data_range: float,
    region: np.ndarray,
    n_regions: int,
    ratio: float,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """All scores of one date: (n_regions, len(SCORES)) float64.

    With ``base`` (a baseline prediction), only pixels where it is finite too are scored,
    and the skill scores are filled in.
    """
    out = np.full((n_regions, len(_NAMES)), np.nan)
    valid = valid & np.isfinite(pred) & np.isfinite(ref)
    if base is not None:
        valid = valid & np.isfinite(base)
    if not np.isfinite(data_range):
        data_range = float(np.ptp(ref[valid])) if valid.any() else np.nan
    out[:, _NAMES.index("data_range")] = data_range
    reg = np.where(valid, region, -1).ravel()
    sel = reg >= 0
    idx = reg[sel]
    p, r = pred.ravel()[sel], ref.ravel()[sel]

    def total(w: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=w, minlength=n_regions)

    n = np.bincount(idx, minlength=n_regions).astype(np.float64)
    out[:, _NAMES.index("n_valid")] = n
    if not sel.any():
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        d = p - r
        mse = total(d * d) / n
        rmse = np.sqrt(mse)
        mean_p, mean_r = total(p) / n, total(r) / n
        cp, cr = p - mean_p[idx], r - mean_r[idx]
        cc = total(cp * cr) / np.sqrt(total(cp * cp) * total(cr * cr))
        cc = np.where(_constant(p, idx, n_regions) | _constant(r, idx, n_regions), np.nan, cc)
        # SAM, stably for small angles: 2·atan2(|p̂ − r̂|, |p̂ + r̂|) with unit vectors p̂, r̂
        norm_p, norm_r = np.sqrt(total(p * p)), np.sqrt(total(r * r))
        up, ur = p / norm_p[idx], r / norm_r[idx]
        sam = np.degrees(
            2.0 * np.arctan2(np.sqrt(total((up - ur) ** 2)), np.sqrt(total((up + ur) ** 2)))
        )
        sam = np.where((norm_p > 0) & (norm_r > 0), sam, np.nan)
        if data_range > 0:
            psnr = np.where(rmse > 0, 20.0 * np.log10(data_range / rmse), np.inf)
            psnr = np.where(n > 0, psnr, np.nan)
            smap = _ssim_map(pred, ref, valid, data_range)
            s_ok = (valid & _interior(valid.shape)).ravel()
            s_idx = np.where(s_ok, region.ravel(), -1)
            s_sel = s_idx >= 0
            s_n = np.bincount(s_idx[s_sel], minlength=n_regions)
            ssim_v = (
                np.bincount(s_idx[s_sel], weights=smap.ravel()[s_sel], minlength=n_regions) / s_n
            )
        else:
            psnr = ssim_v = np.full(n_regions, np.nan)
        bias = total(d) / n
        ubrmse = np.sqrt(total((d - bias[idx]) ** 2) / n)
        if base is not None:
            db = base.ravel()[sel] - r
            bias_b = total(db) / n
            rmse_b = np.sqrt(total(db * db) / n)
            ubrmse_b = np.sqrt(total((db - bias_b[idx]) ** 2) / n)
            out[:, _NAMES.index("skill_rmse")] = np.where(rmse_b > 0, 1.0 - rmse / rmse_b, np.nan)
            out[:, _NAMES.index("skill_ubrmse")] = np.where(
                ubrmse_b > 0, 1.0 - ubrmse / ubrmse_b, np.nan
            )
        out[:, _NAMES.index("rmse")] = rmse
        out[:, _NAMES.index("mae")] = total(np.abs(d)) / n
        out[:, _NAMES.index("bias")] = bias
        out[:, _NAMES.index("ubrmse")] = ubrmse
        out[:, _NAMES.index("cc")] = cc
        out[:, _NAMES.index("ssim")] = ssim_v
        out[:, _NAMES.index("psnr")] = psnr
        out[:, _NAMES.index("sam")] = sam
        out[:, _NAMES.index("ergas")] = 100.0 * ratio * np.sqrt(mse / (mean_r * mean_r))
    return out


# -- by spatial chunk, with a halo: memory bounded by the chunk, not the scene ------------------
#: Per tile and region: sufficient statistics, combined exactly across tiles.
_STATS = (
    "n", "mean_p", "mean_r", "m2_p", "m2_r", "c_pr", "mean_d", "m2_d", "sum_d2", "sum_abs_d",
    "sum_r2", "sum_dr", "min_p", "max_p", "min_r", "max_r", "ssim_sum", "ssim_n",
    "mean_db", "m2_db", "sum_db2",
)  # fmt: skip
_S = {k: i for i, k in enumerate(_STATS)}
#: Default spatial tile (pixels a side) for inputs without usable spatial chunks.
TILE = 1024


def _moments(idx: np.ndarray, n_regions: int, n: np.ndarray, *v: np.ndarray) -> list[np.ndarray]:
    """Per region: the mean of each of ``v``, centred sums of squares, and the co-moment."""
    with np.errstate(divide="ignore", invalid="ignore"):
        means = [np.bincount(idx, weights=a, minlength=n_regions) / n for a in v]
    cen = [a - np.nan_to_num(m)[idx] for a, m in zip(v, means, strict=True)]
    m2 = [np.bincount(idx, weights=c * c, minlength=n_regions) for c in cen]
    out = means + m2
    if len(v) == 2:
        out.append(np.bincount(idx, weights=cen[0] * cen[1], minlength=n_regions))
    return out


def _tile_stats(
    pred: np.ndarray,
    ref: np.ndarray,
    valid: np.ndarray,
    region: np.ndarray,
    base: np.ndarray | None,
    data_range: float,
    core: tuple[slice, slice],
    inner: np.ndarray,
    n_regions: int,
) -> np.ndarray:
    """Statistics of one tile (with its halo): ``(n_regions, len(_STATS))`` float64.

    ``core`` selects the tile inside the haloed arrays; ``inner`` (core-shaped) is True
    at least one SSIM window radius from the scene's edge.
    """
    out = np.zeros((n_regions, len(_STATS)))
    out[:, [_S["min_p"], _S["min_r"]]] = np.inf
    out[:, [_S["max_p"], _S["max_r"]]] = -np.inf
    pred = pred.astype(np.float64, copy=False)
    ref = ref.astype(np.float64, copy=False)
    ok = valid & np.isfinite(pred) & np.isfinite(ref)  # the SSIM windows' valid pixels
    if base is not None:
        base = base.astype(np.float64, copy=False)
        ok &= np.isfinite(base)
    okc = ok[core] & (region[core] >= 0)  # the pixels scored in a region
    if not okc.any():
        return out
    idx = region[core][okc]
    p, r = pred[core][okc], ref[core][okc]
    d = p - r
    n = np.bincount(idx, minlength=n_regions).astype(np.float64)
    out[:, _S["n"]] = n
    mp, mr, m2p, m2r, cpr = _moments(idx, n_regions, n, p, r)
    md, m2d = _moments(idx, n_regions, n, d)
    out[:, _S["mean_p"]], out[:, _S["mean_r"]] = mp, mr
    out[:, _S["m2_p"]], out[:, _S["m2_r"]], out[:, _S["c_pr"]] = m2p, m2r, cpr
    out[:, _S["mean_d"]], out[:, _S["m2_d"]] = md, m2d
    out[:, _S["sum_d2"]] = np.bincount(idx, weights=d * d, minlength=n_regions)
    out[:, _S["sum_abs_d"]] = np.bincount(idx, weights=np.abs(d), minlength=n_regions)
    out[:, _S["sum_r2"]] = np.bincount(idx, weights=r * r, minlength=n_regions)
    out[:, _S["sum_dr"]] = np.bincount(idx, weights=d * r, minlength=n_regions)
    np.minimum.at(out[:, _S["min_p"]], idx, p)
    np.maximum.at(out[:, _S["max_p"]], idx, p)
    np.minimum.at(out[:, _S["min_r"]], idx, r)
    np.maximum.at(out[:, _S["max_r"]], idx, r)
    if base is not None:
        db = base[core][okc] - r
        mdb, m2db = _moments(idx, n_regions, n, db)
        out[:, _S["mean_db"]], out[:, _S["m2_db"]] = mdb, m2db
        out[:, _S["sum_db2"]] = np.bincount(idx, weights=db * db, minlength=n_regions)
    if data_range > 0:
        smap = _ssim_map(pred, ref, ok, data_range)[core]
        s_ok = okc & inner
        s_idx = region[core][s_ok]
        out[:, _S["ssim_sum"]] = np.bincount(s_idx, weights=smap[s_ok], minlength=n_regions)
        out[:, _S["ssim_n"]] = np.bincount(s_idx, minlength=n_regions)
    return out


def _combine(stats: np.ndarray, data_range: np.ndarray, ratio: float) -> np.ndarray:
    """Tiles' statistics ``(..., tiles, region, stat)`` -> scores ``(..., region, score)``."""
    g = {k: stats[..., i] for k, i in _S.items()}
    n_k = g["n"]
    n = n_k.sum(-2)
    out = np.full((*n.shape, len(_NAMES)), np.nan)
    out[..., _NAMES.index("n_valid")] = n
    L = np.broadcast_to(np.asarray(data_range, dtype=np.float64)[..., None], n.shape)
    out[..., _NAMES.index("data_range")] = L
    with np.errstate(divide="ignore", invalid="ignore"):

        def pooled(mean: str) -> np.ndarray:
            return np.nansum(np.where(n_k > 0, n_k * g[mean], 0.0), -2) / n

        def spread(mean: str, pooled_mean: np.ndarray) -> np.ndarray:
            dev = np.where(n_k > 0, g[mean] - pooled_mean[..., None, :], 0.0)
            return dev

        def m2(m2: str, mean: str) -> tuple[np.ndarray, np.ndarray]:
            mu = pooled(mean)
            dev = spread(mean, mu)
            return g[m2].sum(-2) + (n_k * dev * dev).sum(-2), dev

        m2p, dev_p = m2("m2_p", "mean_p")
        m2r, dev_r = m2("m2_r", "mean_r")
        cpr = g["c_pr"].sum(-2) + (n_k * dev_p * dev_r).sum(-2)
        m2d, _ = m2("m2_d", "mean_d")
        mean_r = pooled("mean_r")
        bias = pooled("mean_d")
        sum_d2 = g["sum_d2"].sum(-2)
        mse = sum_d2 / n
        rmse = np.sqrt(mse)
        ubrmse = np.sqrt(m2d / n)
        constant = (g["max_p"].max(-2) == g["min_p"].min(-2)) | (
            g["max_r"].max(-2) == g["min_r"].min(-2)
        )
        cc = np.where(constant, np.nan, cpr / np.sqrt(m2p * m2r))
        # SAM, stably for small angles: |p̂ − r̂| from Σd², Σd·r, Σr² (d = p − r), with
        # a = |p|, b = |r| and b − a = (b² − a²) / (a + b) = −(2Σd·r + Σd²) / (a + b)
        sum_r2, sum_dr = g["sum_r2"].sum(-2), g["sum_dr"].sum(-2)
        b = np.sqrt(sum_r2)
        a = np.sqrt(np.maximum(sum_r2 + 2 * sum_dr + sum_d2, 0.0))
        bma = -(2 * sum_dr + sum_d2) / (a + b)
        num = b * b * sum_d2 + 2 * b * bma * sum_dr + bma * bma * sum_r2
        diff = np.sqrt(np.maximum(num, 0.0)) / (a * b)
        summ = np.sqrt(np.maximum(4.0 - diff * diff, 0.0))
        sam = np.where((a > 0) & (b > 0), np.degrees(2.0 * np.arctan2(diff, summ)), np.nan)
        ok_l = L > 0
        psnr = np.where(rmse > 0, 20.0 * np.log10(L / rmse), np.inf)
        psnr = np.where(ok_l & (n > 0), psnr, np.nan)
        ssim_v = np.where(ok_l, g["ssim_sum"].sum(-2) / g["ssim_n"].sum(-2), np.nan)
        out[..., _NAMES.index("rmse")] = rmse
        out[..., _NAMES.index("mae")] = g["sum_abs_d"].sum(-2) / n
        out[..., _NAMES.index("bias")] = bias
        out[..., _NAMES.index("ubrmse")] = ubrmse
        out[..., _NAMES.index("cc")] = cc
        out[..., _NAMES.index("ssim")] = ssim_v
        out[..., _NAMES.index("psnr")] = psnr
        out[..., _NAMES.index("sam")] = sam
        out[..., _NAMES.index("ergas")] = 100.0 * ratio * np.sqrt(mse / (mean_r * mean_r))
        rmse_b = np.sqrt(g["sum_db2"].sum(-2) / n)
        m2db, _ = m2("m2_db", "mean_db")
        ubrmse_b = np.sqrt(m2db / n)
        out[..., _NAMES.index("skill_rmse")] = np.where(rmse_b > 0, 1.0 - rmse / rmse_b, np.nan)
        out[..., _NAMES.index("skill_ubrmse")] = np.where(
            ubrmse_b > 0, 1.0 - ubrmse / ubrmse_b, np.nan
        )
    empty = n == 0
    out[empty] = np.nan
    out[..., _NAMES.index("n_valid")] = n
    out[..., _NAMES.index("data_range")] = L
    return out


def _tiles(size: int, chunks: tuple[int, ...] | None, tile: int) -> tuple[int, ...]:
    """Spatial tiles to score by: the input's chunks (tiles under 32 px merged into a
    neighbour), or ``tile`` px for numpy input / chunks that are all smaller."""
    if chunks is None or max(chunks) < 32:
        chunks = (tile,) * (size // tile) + ((size % tile,) if size % tile else ())
    out = [int(c) for c in chunks]
    while len(out) > 1 and min(out) < 32:
        k = int(np.argmin(out))
        if k == 0 or (k < len(out) - 1 and out[k + 1] < out[k - 1]):
            out[k : k + 2] = [out[k] + out[k + 1]]
        else:
            out[k - 1 : k + 1] = [out[k - 1] + out[k]]
    return tuple(out)


def _block_stats(
    p: np.ndarray,
    r: np.ndarray,
    v: np.ndarray,
    *rest: np.ndarray,
    has_base: bool,
    has_regions: bool,
    n_regions: int,
    chunks_y: tuple[int, ...],
    chunks_x: tuple[int, ...],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    """One haloed block ``(1, ..., y+halo, x+halo)`` -> ``(1, ..., 1, 1, region, stat)``.

    ``rest``: the baseline (if ``has_base``), the region numbers (2-D, float64; if
    ``has_regions``, else every pixel is in region 0), the data range.
    """
    assert block_id is not None
    base = rest[0] if has_base else None
    reg = (
        rest[int(has_base)].astype(np.int64)
        if has_regions
        else np.zeros(p.shape[-2:], dtype=np.int64)
    )
    L = rest[-1]
    nlead = p.ndim - 2
    iy, ix = block_id[nlead], block_id[nlead + 1]  # the output's block index: (*lead, y, x, 0, 0)
    hy, hx = (0 if iy == 0 else _RADIUS), (0 if ix == 0 else _RADIUS)
    cy, cx = chunks_y[iy], chunks_x[ix]
    core = (slice(hy, hy + cy), slice(hx, hx + cx))
    gy = sum(chunks_y[:iy]) + np.arange(cy)
    gx = sum(chunks_x[:ix]) + np.arange(cx)
    ny, nx = sum(chunks_y), sum(chunks_x)
    inner = ((gy >= _RADIUS) & (gy < ny - _RADIUS))[:, None] & (
        (gx >= _RADIUS) & (gx < nx - _RADIUS)
    )[None, :]
    lead = p.shape[:-2]
    out = np.empty((*lead, 1, 1, n_regions, len(_STATS)))
    for i in np.ndindex(*lead):
        out[(*i, 0, 0)] = _tile_stats(
            p[i], r[i], v[i], reg, None if base is None else base[i],
            float(L[(*i, 0, 0)]), core, inner, n_regions,
        )  # fmt: skip
    return out


def _scores_tiled(
    pred: xr.DataArray,
    ref: xr.DataArray,
    valid: xr.DataArray,
    data_range: xr.DataArray | None,
    region: xr.DataArray,
    base: xr.DataArray | None,
    dim: tuple[Hashable, Hashable],
    n_regions: int,
    ratio: float,
    tile: int = TILE,
    regions_given: bool = True,
) -> xr.DataArray:
    """All scores, by spatial chunk with a halo of one SSIM window radius.

    ``region`` holds the region numbers over ``dim`` (all 0 when ``regions_given`` is
    False: the lazy path then makes them in each tile instead of reading them). Returns ``(*lead, region, score)``: dask-backed when any input is, else numpy.
    """
    import dask.array as dsa

    from ._dask import fresh_copy, overlap_rims, spans_several_chunks

    lazy = any(a is not None and a.chunks is not None for a in (pred, ref, valid, base, region))
    region_2d = region.transpose(*dim).data
    inputs = [pred, ref, valid, region] + ([base] if base is not None else [])
    inputs = list(xr.broadcast(*inputs))
    lead_dims = [d for d in inputs[2].dims if d not in dim]
    inputs = [a.transpose(*lead_dims, *dim) for a in inputs]
    coords = {k: c for k, c in inputs[2].coords.items() if not set(c.dims) & set(dim)}
    dims = (*lead_dims, "region", "score")
    shape = inputs[0].shape
    nlead = len(lead_dims)
    if not lazy:
        L0 = None if data_range is None else _lead_values(data_range, inputs[2], lead_dims, dim)
        values = _scores_numpy([a.values for a in inputs], L0, n_regions, ratio, tile)
        return xr.DataArray(values, dims=dims, coords=coords)
    first = next(a.chunks for a in inputs if a.chunks is not None)
    # spatial tiles from the input's chunks; along the other dims (dates, methods) the
    # first dask input's chunks, given to every input
    cy = _tiles(shape[-2], first[-2], tile)
    cx = _tiles(shape[-1], first[-1], tile)
    chunks = (*first[:nlead], cy, cx)
    arrays = [
        (a.data if isinstance(a.data, dsa.Array) else dsa.from_array(a.data)).rechunk(chunks)
        for a in inputs
    ]
    p, r, v = arrays[:3]
    b = arrays[4] if base is not None else None
    ok = v & dsa.isfinite(p) & dsa.isfinite(r)
    if b is not None:
        ok = ok & dsa.isfinite(b)
    if data_range is None:  # the reference's max - min over the scored pixels of each date
        # from its own read of the inputs: the tiles, which need L, then do not keep the
        # date's chunks in memory while L is being reduced
        # (only when a date spans several chunks: else no memory to save, only work)
        ok_l, r_l = fresh_copy(ok, r, salt="data_range") if spans_several_chunks(r) else (ok, r)
        hi = dsa.where(ok_l, r_l, -np.inf).max(axis=(-2, -1))
        lo = dsa.where(ok_l, r_l, np.inf).min(axis=(-2, -1))
        L = dsa.where(hi >= lo, (hi - lo).astype(np.float64), np.nan)
    else:
        L = dsa.from_array(_lead_values(data_range, inputs[2], lead_dims, dim))
    L = L.rechunk(chunks[:nlead])
    # the layers of a tile stacked (float64; the mask as 0/1, the region numbers exact),
    # with a halo of one SSIM window radius cut from the neighbours' rims (a second read):
    # memory bounded by the tile, not the scene (see xstf._dask.overlap_rims)
    # The region map is 2-D, shared by every date (one float64 image at most in memory);
    # without regions the tiles make their zeros themselves.
    layers = [p, r, ok.astype(np.float64)] + ([b] if b is not None else [])
    stacked = dsa.stack(layers, axis=nlead).rechunk({nlead: -1})
    ov = overlap_rims(stacked, _RADIUS, boundary="none")
    haloed = [ov[(Ellipsis, k, slice(None), slice(None))] for k in range(len(layers))]
    haloed[2] = haloed[2] != 0
    if regions_given:
        reg2 = dsa.asarray(region_2d).astype(np.float64).rechunk((cy, cx))
        haloed.append(overlap_rims(reg2, _RADIUS, boundary="none"))
    L4 = L.reshape(*L.shape, 1, 1)
    stats = dsa.map_blocks(
        _block_stats, *haloed, L4,
        has_base=b is not None, has_regions=regions_given, n_regions=n_regions, chunks_y=cy, chunks_x=cx,
        new_axis=[nlead + 2, nlead + 3],
        chunks=(*chunks[:-2], (1,) * len(cy), (1,) * len(cx), (n_regions,), (len(_STATS),)),
        dtype=np.float64, meta=np.array((), dtype=np.float64),
    )  # fmt: skip
    stats = stats.rechunk({nlead: -1, nlead + 1: -1})

    def combine(s: np.ndarray, Lb: np.ndarray) -> np.ndarray:
        s = s.reshape(*s.shape[:nlead], -1, n_regions, len(_STATS))
        return _combine(s, Lb.reshape(Lb.shape[:nlead]), ratio)

    scores = dsa.map_blocks(
        combine, stats, L.reshape(*L.shape, 1, 1, 1, 1),
        drop_axis=[nlead, nlead + 1],
        chunks=(*chunks[:-2], (n_regions,), (len(_NAMES),)),
        dtype=np.float64, meta=np.array((), dtype=np.float64),
    )  # fmt: skip
    return xr.DataArray(scores, dims=dims, coords=coords)


def _lead_values(
    data_range: xr.DataArray, template: xr.DataArray, lead_dims: list[Hashable], dim: tuple
) -> np.ndarray:
    """A given data range broadcast to the non-spatial dims, as float64 numpy."""
    lead = template.isel({d: 0 for d in dim}, drop=True)
    out = xr.broadcast(data_range.astype(np.float64), lead)[0].transpose(*lead_dims)
    return np.asarray(out.values, dtype=np.float64)


def _scores_numpy(
    arrays: list[np.ndarray],
    data_range: np.ndarray | None,
    n_regions: int,
    ratio: float,
    tile: int,
) -> np.ndarray:
    """The numpy path of :func:`_scores_tiled`: the same tiles and halo, in a loop."""
    pred, ref, valid, region = arrays[:4]
    base = arrays[4] if len(arrays) > 4 else None
    lead, (ny, nx) = pred.shape[:-2], pred.shape[-2:]
    cy, cx = _tiles(ny, None, tile), _tiles(nx, None, tile)
    out = np.empty((*lead, n_regions, len(_NAMES)))
    for i in np.ndindex(*lead):
        p, r, v, reg = pred[i], ref[i], valid[i], region[i]
        b = None if base is None else base[i]
        if data_range is None:
            ok = v & np.isfinite(p) & np.isfinite(r)
            if b is not None:
                ok &= np.isfinite(b)
            L = float(np.ptp(r[ok])) if ok.any() else np.nan
        else:
            L = float(data_range[i])
        stats = []
        y0 = 0
        for sy in cy:
            x0 = 0
            for sx in cx:
                hy, hx = min(_RADIUS, y0), min(_RADIUS, x0)
                win = (slice(y0 - hy, min(ny, y0 + sy + _RADIUS)),
                       slice(x0 - hx, min(nx, x0 + sx + _RADIUS)))  # fmt: skip
                gy, gx = y0 + np.arange(sy), x0 + np.arange(sx)
                inner = ((gy >= _RADIUS) & (gy < ny - _RADIUS))[:, None] & (
                    (gx >= _RADIUS) & (gx < nx - _RADIUS)
                )[None, :]
                core = (slice(hy, hy + sy), slice(hx, hx + sx))
                bw = None if b is None else b[win]
                stats.append(
                    _tile_stats(p[win], r[win], v[win], reg[win], bw, L, core, inner, n_regions)
                )
                x0 += sx
            y0 += sy
        out[i] = _combine(np.stack(stats), np.asarray(L), ratio)
    return out


# -- public functions ----------------------------------------------------------------------------
def ssim(
    prediction: np.ndarray,
    reference: np.ndarray,
    data_range: float | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """SSIM of two 2-D images, ignoring NaN (and masked-out) pixels.

    Wang et al. (2004) with a Gaussian window (σ = 1.5, 11 × 11), K1 = 0.01, K2 = 0.03
    and population covariances. On gap-free images it equals
    ``skimage.metrics.structural_similarity(prediction, reference, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=L)``. With gaps, the local means,
    variances and covariance of each window are Gaussian-weighted averages over the
    window's *valid* pixels only (normalised convolution), so the values hidden under a
    gap (and whatever is put there) never enter the score, and pixels next to a gap are
    not pulled towards a fill value. The SSIM map is averaged over the valid pixels at
    least 5 pixels (the window radius) from the image edge, as scikit-image does.

    Parameters
    ----------
    prediction, reference : numpy.ndarray
        2-D images of the same shape, at least 11 × 11, NaN where missing.
    data_range : float, optional
        ``L`` in the stabilising constants ``(K·L)²``. Default: the reference's max − min
        over the valid pixels.
    mask : numpy.ndarray of bool, optional
        ``True`` where pixels are to be scored.

    Returns
    -------
    float
        Mean SSIM (NaN when no pixel is valid or ``L`` is 0).

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.linspace(280.0, 300.0, 400).reshape(20, 20)
    >>> float(ssim(ref, ref))
    1.0
    >>> pred = ref.copy()
    >>> pred[8:12, 8:12] = np.nan
    >>> float(ssim(pred, ref))
    1.0
    """
    p, r = np.asarray(prediction, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if p.ndim != 2 or p.shape != r.shape:
        raise ValueError(
            f"ssim needs two 2-D images of the same shape, got {p.shape} and {r.shape}"
        )
    _check_window(p.shape)
    valid = np.ones(p.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    out = _scores_2d(
        p,
        r,
        valid,
        np.nan if data_range is None else float(data_range),
        np.zeros(p.shape, int),
        1,
        1.0,
    )
    return float(out[0, _NAMES.index("ssim")])


def _check_window(shape: Sequence[int]) -> None:
    if min(shape) < 2 * _RADIUS + 1:
        raise ValueError(
            f"images of {shape[0]} x {shape[1]} pixels are too small for SSIM's "
            f"{2 * _RADIUS + 1} x {2 * _RADIUS + 1} Gaussian window: score images of at least "
            f"{2 * _RADIUS + 1} pixels a side"
        )


def _as_kelvin_or_celsius(
    da: xr.DataArray, units: str, input_units: str | None, role: str
) -> xr.DataArray:
    if da.attrs.get("units") is None and input_units is None:
        raise ValueError(
            f"the {role} {da.name or ''!s} has no 'units' attribute: set it "
            f"(da.attrs['units'] = 'K') or pass input_units='K' or 'degC'"
        )
    src = input_units if input_units is not None else da.attrs["units"]
    return convert_units(da.astype(np.float64), units, units=src)


def _stack_methods(prediction: Any, units: str, input_units: str | None) -> xr.DataArray:
    if isinstance(prediction, xr.DataArray):
        return _as_kelvin_or_celsius(prediction, units, input_units, "prediction")
    if isinstance(prediction, xr.Dataset | Mapping):
        names = list(prediction.data_vars if isinstance(prediction, xr.Dataset) else prediction)
        if not names:
            raise ValueError("prediction is an empty Dataset/dict: give at least one method")
        arrays = []
        for name in names:
            da = prediction[name]
            if not isinstance(da, xr.DataArray):
                raise TypeError(
                    f"prediction[{name!r}] is a {type(da).__name__}, not an xarray.DataArray"
                )
            arrays.append(_as_kelvin_or_celsius(da, units, input_units, f"prediction {name!r}"))
        # methods predicting different dates: a date a method lacks scores NaN (n_valid 0)
        out = xr.concat(arrays, dim="method", join="outer", coords="minimal", compat="override")
        return out.assign_coords(method=("method", np.array([str(n) for n in names], dtype=str)))
    raise TypeError(
        f"prediction must be an xarray.DataArray, or a Dataset/dict of DataArrays (one per method), "
        f"got {type(prediction).__name__}"
    )


def _region_index(labels: np.ndarray, values: tuple[Any, ...]) -> np.ndarray:
    """Label map -> region number (0 .. len(values) - 1), -1 for any other label."""
    out = np.full(np.shape(labels), -1, dtype=np.int64)
    for k, v in enumerate(values):
        out[labels == v] = k
    return out


def _region_values(regions: xr.DataArray) -> tuple[tuple[Any, ...], list[Any], bool]:
    """Label values, their names, and whether names come from ``flag_meanings``."""
    values = regions.attrs.get("flag_values")
    meanings = regions.attrs.get("flag_meanings")
    if values is not None:
        vals = tuple(np.atleast_1d(np.asarray(values)).tolist())
        if isinstance(meanings, str) and len(meanings.split()) == len(vals):
            return vals, meanings.split(), True
        return vals, list(vals), False
    data = np.asarray(regions.values)
    data = data[~pd.isna(data)] if data.dtype.kind in "fc" else data
    vals = tuple(np.unique(data).tolist())
    return vals, list(vals), False


def _align(pred: xr.DataArray, ref: xr.DataArray, dim: tuple[Hashable, Hashable]) -> xr.DataArray:
    """Select the reference at the prediction's labels; raise on anything missing."""
    for name, da in (("prediction", pred), ("reference", ref)):
        missing = [d for d in dim if d not in da.dims]
        if missing:
            raise ValueError(
                f"the {name} has dims {da.dims}, without the spatial dim(s) {missing} to score "
                f"over: pass dim=(<y name>, <x name>)"
            )
    for d in dim:
        if d in pred.coords and d in ref.coords:
            pv, rv = pred[d].values, ref[d].values
            if pv.shape != rv.shape or not np.array_equal(pv, rv):
                raise ValueError(
                    f"prediction and reference have different {d!r} coordinates: put them on "
                    "the same grid first (e.g. prediction.interp_like(reference) or "
                    "reference.sel(...) to the prediction's window)"
                )
        elif pred.sizes[d] != ref.sizes[d]:
            raise ValueError(f"prediction and reference differ in size along {d!r}")
    # a single date of the prediction (scalar coord) is scored against that date only
    for c, coord in pred.coords.items():
        if coord.ndim == 0 and c in ref.dims and c in ref.indexes:
            try:
                ref = ref.sel({c: coord.values})
            except KeyError:
                raise ValueError(
                    f"the prediction is for {c}={coord.values}, which the reference does not have"
                ) from None
    shared = [d for d in pred.dims if d in ref.dims and d not in dim and d in ref.indexes]
    for d in shared:
        if d not in pred.indexes:
            continue
        missing = pred.indexes[d].difference(ref.indexes[d])
        if len(missing):
            shown = [str(getattr(v, "date", lambda v=v: v)()) for v in missing[:5]]
            raise ValueError(
                f"{len(missing)} {d!r} label(s) of the prediction are not in the reference "
                f"(first: {shown}): score them against a reference that has them, or select "
                f"them away with prediction.sel({d}=...)"
            )
        ref = ref.sel({d: pred.indexes[d]})
    return ref


def metrics(
    prediction: xr.DataArray | xr.Dataset | Mapping[Hashable, xr.DataArray],
    reference: xr.DataArray,
    *,
    dim: Sequence[Hashable] = ("y", "x"),
    mask: xr.DataArray | None = None,
    units: str = "degC",
    data_range: float | xr.DataArray | None = None,
    ratio: float = 30 / 1000,
    regions: xr.DataArray | None = None,
    input_units: str | None = None,
    baseline: xr.DataArray | None = None,
    common_mask: bool = False,
) -> xr.Dataset:
    """Score a prediction against a reference: RMSE, ubRMSE, MAE, bias, CC, SSIM, PSNR, SAM, ERGAS.

    Each date (each index of the dims other than ``dim``) is scored over its pixels valid
    (finite) in both the prediction and the reference, and ``True`` in ``mask``. A date
    with no such pixel gets NaN scores and ``n_valid`` 0 (no error). Both inputs are
    converted to ``units`` first (from their ``units`` attributes), and scored in float64.

    Lazy: with dask-backed input the result is dask-backed and nothing is computed until
    asked. Each date is scored by spatial tile (the input's chunks; tiles of
    :data:`TILE` px for numpy input or chunks under 32 px) with a halo of one SSIM
    window radius (5 px): each tile gives exact sums (counts, means and centred sums of
    squares, combined across tiles with the parallel-variance formulas), so memory is
    bounded by the tile, not the scene, and the scores do not depend on the chunking
    (equal to a whole-image computation to float64 rounding). Inputs chunked
    differently (e.g. a prediction one date per chunk against a reference eight per
    chunk) are brought to common chunks. The halos and the default data range come
    from separate reads of the inputs (so dask keeps no date whole in memory): each
    chunk is read two to three times, cheap from Zarr; write a lazy prediction to
    Zarr (or persist it) before scoring it, or it is computed that many times.

    Parameters
    ----------
    prediction : xarray.DataArray, or Dataset / dict of DataArrays
        The predicted LST. A Dataset or dict scores every variable (a method each)
        and adds a ``method`` dim labelled by the variable names (select with
        ``m.sel({"method": name})``). Methods may cover different dates: a date a
        method has no prediction for gets NaN scores and ``n_valid`` 0.
    reference : xarray.DataArray
        The reference LST (e.g. the cube's ``fine`` or ``truth``). It is selected at the
        prediction's dates; a prediction date missing from it raises a ValueError.
    dim : (hashable, hashable)
        The two spatial dims each score reduces over.
    mask : xarray.DataArray of bool, optional
        ``True`` where pixels are scored (e.g. ``ds.landcover != 0`` to leave out water);
        broadcast against the prediction (``(y, x)`` or ``(time, y, x)``).
    units : {"degC", "K"}
        Units the scores are computed in (any spelling of :func:`xstf.units.normalise_units`).
        The survey reports °C. SAM, ERGAS and SSIM depend on it (see the module notes).
    data_range : float or xarray.DataArray, optional
        ``L`` for SSIM and PSNR, in ``units``. Default: the reference's max − min over
        the scored pixels of each date (the whole scene, also when ``regions`` is given).
    ratio : float
        Fine / coarse pixel size for ERGAS (``h/l``, 30/1000 for Landsat/MODIS;
        ``ds.stf.metrics`` takes it from the cube's attrs).
    regions : xarray.DataArray, optional
        Integer labels over the spatial dims (e.g. ``ds.landcover``): adds a ``region``
        dim with one set of scores per label. Labels and names come from the
        ``flag_values``/``flag_meanings`` attrs when present (then a ``region_value``
        coord holds the numbers), else from the distinct values of the map (computed
        if dask-backed). Pixels with other labels (or NaN) are scored in no region.
        SSIM per region is the mean of the scene's SSIM map over the region's pixels.
    input_units : str, optional
        Units of inputs that have no ``units`` attribute.
    baseline : xarray.DataArray, optional
        A baseline prediction (e.g. the coarse image on the fine grid, "coarse only";
        ``ds.stf.metrics`` also takes a variable name such as ``"coarse"``). Adds the
        skill scores ``skill_rmse = 1 − RMSE / RMSE_baseline`` and ``skill_ubrmse = 1 −
        ubRMSE / ubRMSE_baseline`` (> 0: better than the baseline; NaN where the
        baseline's score is 0). Both sides are scored on the same pixels, so with a
        baseline *every* score is computed only where the baseline is valid too
        (``n_valid`` says how many).
    common_mask : bool
        Score every method of a Dataset/dict (or ``method`` dim) on the same pixels:
        those valid in the reference and in *every* prediction (and the baseline), per
        date; see :func:`common_mask`. Default ``False``: each method is scored on its
        own valid pixels, so methods with different gaps are compared on different
        pixel sets.

    Returns
    -------
    xarray.Dataset
        Variables ``rmse``, ``ubrmse``, ``mae``, ``bias`` (in ``units``), ``cc``,
        ``ssim``, ``psnr`` (dB), ``sam`` (degrees), ``ergas``, ``n_valid`` (int64),
        ``data_range`` (the ``L`` used) and, with a baseline, ``skill_rmse`` and
        ``skill_ubrmse``, each with ``long_name`` and ``units``; dims ``method`` (if
        any), the prediction's other dims (e.g. ``time``) and ``region`` (if any).
        ``ubrmse`` is the RMSE after removing the date's (region's) mean error:
        ``sqrt(RMSE² − bias²)``, the error's standard deviation.

    Raises
    ------
    ValueError
        Missing units, unknown units, dates or grids that do not match, images smaller
        than the SSIM window (11 × 11), ``dim`` not two dims of the inputs.
    TypeError
        A prediction that is not a DataArray/Dataset/dict, or a non-boolean mask.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40, seed=0)
    >>> m = xstf.metrics(ds.coarse, ds.truth)
    >>> sorted(m.data_vars)[:4]
    ['bias', 'cc', 'data_range', 'ergas']
    >>> m.rmse.dims, m.rmse.attrs["units"]
    (('time',), 'degC')
    >>> table = m.to_dataframe()  # one row per date
    >>> len(table) == ds.sizes["time"]
    True
    >>> by_method = xstf.metrics({"coarse": ds.coarse, "truth": ds.truth}, ds.truth)
    >>> # select methods with a dict: ``sel(method=...)`` is ``sel``'s own keyword
    >>> float(by_method.rmse.sel({"method": "truth"}).max())
    0.0
    >>> skill = xstf.metrics(ds.truth + 0.5, ds.truth, baseline=ds.truth + 1.0)
    >>> round(float(skill.skill_rmse.mean()), 6), round(float(skill.ubrmse.max()), 6)
    (0.5, 0.0)
    """
    dim_t = tuple(dim)
    if len(dim_t) != 2:
        raise ValueError(f"dim must name the two spatial dims (e.g. ('y', 'x')), got {dim!r}")
    if not isinstance(reference, xr.DataArray):
        raise TypeError(f"reference must be an xarray.DataArray, got {type(reference).__name__}")
    units_n = normalise_units(units)
    ratio = float(ratio)
    if not ratio > 0:
        raise ValueError(f"ratio (fine / coarse pixel size) must be > 0, got {ratio}")
    pred = _stack_methods(prediction, units_n, input_units)
    ref = _as_kelvin_or_celsius(reference, units_n, input_units, "reference")
    ref = _align(pred, ref, dim_t)
    _check_window([pred.sizes[d] for d in dim_t])

    base = None
    if baseline is not None:
        if not isinstance(baseline, xr.DataArray):
            raise TypeError(
                f"baseline must be an xarray.DataArray (e.g. ds.coarse), got "
                f"{type(baseline).__name__}"
            )
        if "method" in baseline.dims:
            raise ValueError("the baseline has a 'method' dim: give one baseline prediction")
        base = _as_kelvin_or_celsius(baseline, units_n, input_units, "baseline")
        base = _align(pred, base, dim_t)
        base = base.drop_vars([c for c in base.coords if c not in base.dims])

    valid = pred.notnull() & ref.notnull()
    if base is not None:
        valid = valid & base.notnull()
    if common_mask and "method" in valid.dims:
        valid = valid & valid.all("method")
    if mask is not None:
        if not isinstance(mask, xr.DataArray):
            raise TypeError(f"mask must be a boolean xarray.DataArray, got {type(mask).__name__}")
        if mask.dtype != bool:
            raise TypeError(
                f"mask must be boolean (True = score this pixel), got dtype {mask.dtype}; "
                "build one with e.g. ds.landcover != 0 or da.notnull()"
            )
        valid = valid & mask
    L: xr.DataArray = xr.DataArray(np.nan)
    if isinstance(data_range, xr.DataArray):
        L = data_range.astype(np.float64)
    elif data_range is not None:
        L = xr.DataArray(float(data_range))

    if regions is not None:
        if not isinstance(regions, xr.DataArray) or set(regions.dims) != set(dim_t):
            raise ValueError(
                f"regions must be a DataArray of labels with dims {dim_t} (e.g. ds.landcover)"
            )
        region_values, region_names, flagged = _region_values(regions)
        if not region_values:
            raise ValueError("regions has no labels (all NaN): nothing to group by")
    else:
        region_values, region_names, flagged = None, ["all"], False

    if regions is not None:
        keep = [c for c in regions.coords if c not in dim_t]
        region_idx = xr.apply_ufunc(
            _region_index,
            regions.drop_vars(keep),
            dask="parallelized",
            output_dtypes=[np.int64],
            kwargs={"values": region_values},
        )
    else:
        region_idx = xr.zeros_like(
            ref.isel({d: 0 for d in ref.dims if d not in dim_t}, drop=True), dtype=np.int64
        )
        region_idx = region_idx.drop_vars([c for c in region_idx.coords if c not in dim_t])
    scores = _scores_tiled(
        pred, ref, valid, None if data_range is None else L, region_idx, base, dim_t,
        len(region_names), ratio, TILE, regions_given=regions is not None,
    )  # fmt: skip
    out = xr.Dataset()
    for k, name in enumerate(_NAMES):
        if name in _SKILL and base is None:
            continue
        da = scores.isel(score=k, drop=True)
        if name == "n_valid":
            da = da.astype(np.int64)
        if name == "data_range":
            da = da.isel(region=0, drop=True)
        long_name, unit = SCORES[name]
        da.attrs = {"long_name": long_name, "units": unit or units_n}
        out[name] = da
    if regions is None:
        out = out.isel(region=0, drop=True)
    else:
        out = out.assign_coords(region=("region", [str(n) for n in region_names]))
        if flagged:
            out = out.assign_coords(region_value=("region", list(region_values or ())))
    grid_mapping = {
        c for c in out.coords if c == "spatial_ref" or out[c].attrs.get("grid_mapping_name")
    }
    # datetime-valued coords (ESTARFM's reference_pair_*) would become table columns that
    # DataFrame.round() warns about: the scores keep numbers, labels and flags only
    dated = {c for c in out.coords if c not in out.dims and out[c].dtype.kind in "mM"}
    out = out.drop_vars(sorted(grid_mapping | dated, key=str))
    order: list[Hashable] = [d for d in ("method",) if d in out.dims]
    order += [d for d in scores.dims if d not in ("method", "region", "score")]
    order += [d for d in ("region",) if d in out.dims]
    out = out.transpose(*order)
    out.attrs = {
        "title": "xstf scores",
        "units": units_n,
        "ratio": ratio,
        "ssim": "Wang et al. 2004, Gaussian window sigma 1.5 (11x11), K1 0.01, K2 0.03, "
        "population covariance, NaN-aware (valid pixels only), edge pad 5 px excluded",
        "data_range": "given" if data_range is not None else "reference max - min per date",
        "mask": "common: pixels valid in the reference and every prediction"
        + (" and the baseline" if base is not None else "")
        if common_mask
        else "per method: pixels valid in the reference and that prediction"
        + (" and the baseline" if base is not None else ""),
    }
    if base is not None:
        out.attrs["baseline"] = str(baseline.name) if baseline is not None else ""
    return out


def common_mask(
    prediction: xr.DataArray | xr.Dataset | Mapping[Hashable, xr.DataArray],
    reference: xr.DataArray | None = None,
    *,
    baseline: xr.DataArray | None = None,
    method_dim: Hashable = "method",
) -> xr.DataArray:
    """Pixels valid in every prediction (and the reference, and the baseline).

    The mask :func:`metrics` uses with ``common_mask=True``: per date and pixel, ``True``
    where every method's prediction is finite, and the reference (and the baseline) too,
    so that methods with different gaps are compared on the same pixels. Lazy for
    dask-backed input.

    Parameters
    ----------
    prediction : xarray.DataArray, or Dataset / dict of DataArrays
        One variable per method, or a DataArray with a ``method_dim`` dim (a DataArray
        without it is one method).
    reference, baseline : xarray.DataArray, optional
        Also required valid where given; broadcast against the predictions (a reference
        with more dates than the predictions is selected at theirs by alignment).
    method_dim : hashable
        The methods' dim of a stacked DataArray.

    Returns
    -------
    xarray.DataArray of bool
        Dims of the predictions without ``method_dim`` (e.g. ``(time, y, x)``); a date
        that one method does not predict is ``False`` everywhere.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray([[1.0, np.nan], [3.0, 4.0]], dims=("y", "x"))
    >>> b = xr.DataArray([[1.0, 2.0], [np.nan, 4.0]], dims=("y", "x"))
    >>> common_mask({"a": a, "b": b}).values.tolist()
    [[True, False], [False, True]]
    """
    if isinstance(prediction, xr.DataArray):
        ok = prediction.notnull()
        if method_dim in ok.dims:
            ok = ok.all([method_dim])
    elif isinstance(prediction, xr.Dataset | Mapping):
        arrays = [prediction[k] for k in prediction]
        if not arrays:
            raise ValueError("prediction is an empty Dataset/dict: give at least one method")
        aligned = xr.align(*[a.notnull() for a in arrays], join="outer", fill_value=False)
        ok = aligned[0]
        for a in aligned[1:]:
            ok = ok & a
    else:
        raise TypeError(
            f"prediction must be an xarray.DataArray, or a Dataset/dict of DataArrays, "
            f"got {type(prediction).__name__}"
        )
    for other in (reference, baseline):
        if other is not None:
            ok, other_ok = xr.align(ok, other.notnull(), join="left", fill_value=False)
            ok = ok & other_ok
    return ok.rename("common_mask")
