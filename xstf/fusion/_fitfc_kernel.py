"""numba kernel for FitFC (Wang & Atkinson 2018) on one padded numpy block.

A block is a ``(3, ny + 2h, nx + 2h)`` float32 stack ``F_k, C_k, C_0`` (reference pair
and target coarse) with a halo of ``h = regression_window + half_window`` pixels (NaN
beyond the scene); the kernel returns the ``(ny, nx)`` float32 prediction for the
interior. The algorithm is described in :mod:`xstf.fusion.fitfc`.

- the local regression ``C_0 ≈ a·C_k + b`` uses window sums of ``1, C_k, C_0, C_k²,
  C_k·C_0`` over the valid pixels, in float64 and in a fixed order
  (:func:`xstf.fusion._kernel_common.box_sum`), so every pixel's ``a, b`` depend only
  on its own window, wherever the block was cut;
- the spatial filter scans each window in row-major order; the similar pixels are the
  ``n`` smallest ``|F_k - F_k(centre)|`` (ties: first in scan order).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernel_common import box_sum

#: Below this local variance of ``C_k`` (K²) the slope is not estimated: ``a = 1``.
MIN_VARIANCE = 1e-6
#: Fewer valid window pixels than this: ``a = 1`` too.
MIN_POINTS = 3


@njit(nogil=True, cache=True)
def filter_weights(w: int) -> np.ndarray:
    """``1 / (1 + d / ((2w + 1) / 2))`` for every offset of a ``(2w+1)²`` window (float64)."""
    k = 2 * w + 1
    out = np.empty((k, k), np.float64)
    half = k / 2.0
    for r in range(k):
        for c in range(k):
            dy = np.float64(r - w)
            dx = np.float64(c - w)
            out[r, c] = 1.0 / (1.0 + np.sqrt(dy * dy + dx * dx) / half)
    return out


@njit(nogil=True, cache=True)
def regression_block(block: np.ndarray, rw: int):
    """``a``, ``b`` of ``C_0 ≈ a·C_k + b`` fitted over each ``(2·rw+1)²`` window.

    Returns ``(frm, res)`` on the block shrunk by ``rw`` on each side: the regression
    prediction ``a·F_k + b`` and the coarse residual ``C_0 - (a·C_k + b)``, NaN where a
    pixel is missing in any of the three layers.
    """
    _, h, wd = block.shape
    valid = np.empty((h, wd), np.float64)
    x = np.empty((h, wd), np.float64)
    y = np.empty((h, wd), np.float64)
    xx = np.empty((h, wd), np.float64)
    xy = np.empty((h, wd), np.float64)
    for i in range(h):
        for j in range(wd):
            f = block[0, i, j]
            ck = block[1, i, j]
            c0 = block[2, i, j]
            if np.isfinite(f) and np.isfinite(ck) and np.isfinite(c0):
                valid[i, j] = 1.0
                x[i, j] = ck
                y[i, j] = c0
                xx[i, j] = np.float64(ck) * np.float64(ck)
                xy[i, j] = np.float64(ck) * np.float64(c0)
            else:
                valid[i, j] = 0.0
                x[i, j] = 0.0
                y[i, j] = 0.0
                xx[i, j] = 0.0
                xy[i, j] = 0.0
    sn = box_sum(valid, rw)
    sx = box_sum(x, rw)
    sy = box_sum(y, rw)
    sxx = box_sum(xx, rw)
    sxy = box_sum(xy, rw)
    ny, nx = sn.shape
    frm = np.empty((ny, nx), np.float64)
    res = np.empty((ny, nx), np.float64)
    for i in range(ny):
        for j in range(nx):
            if valid[i + rw, j + rw] == 0.0:
                frm[i, j] = np.nan
                res[i, j] = np.nan
                continue
            n = sn[i, j]
            mx = sx[i, j] / n
            my = sy[i, j] / n
            a = 1.0
            if n >= MIN_POINTS:
                vx = sxx[i, j] / n - mx * mx
                if vx > MIN_VARIANCE:
                    a = (sxy[i, j] / n - mx * my) / vx
            b = my - a * mx
            frm[i, j] = a * np.float64(block[0, i + rw, j + rw]) + b
            res[i, j] = np.float64(block[2, i + rw, j + rw]) - (
                a * np.float64(block[1, i + rw, j + rw]) + b
            )
    return frm, res


@njit(nogil=True, cache=True)
def fitfc_block(block: np.ndarray, rw: int, sw: int, n_similar: int) -> np.ndarray:
    """FitFC for the interior of one padded block.

    Parameters
    ----------
    block : (3, ny + 2(rw + sw), nx + 2(rw + sw)) float32
        ``F_k, C_k, C_0``; NaN where missing (and beyond the scene).
    rw : int
        Half window of the regression (pixels).
    sw : int
        Half window of the spatial filter (pixels).
    n_similar : int
        Number of similar pixels of the filter (all valid pixels if fewer).
    """
    frm, res = regression_block(block, rw)
    _, h0, w0 = block.shape
    fk = block[0, rw : h0 - rw, rw : w0 - rw]
    h, wd = frm.shape
    ny = h - 2 * sw
    nx = wd - 2 * sw
    k = 2 * sw + 1
    wts = filter_weights(sw)
    out = np.empty((ny, nx), np.float32)
    diff = np.empty(k * k, np.float64)
    val = np.empty(k * k, np.float64)
    wgt = np.empty(k * k, np.float64)
    for y in range(ny):
        for x in range(nx):
            centre = frm[y + sw, x + sw]
            if not np.isfinite(centre):
                out[y, x] = np.nan
                continue
            fc = np.float64(fk[y + sw, x + sw])
            cnt = 0
            for r in range(k):
                for c in range(k):
                    v = frm[y + r, x + c]
                    if np.isfinite(v):
                        diff[cnt] = abs(np.float64(fk[y + r, x + c]) - fc)
                        val[cnt] = v
                        wgt[cnt] = wts[r, c]
                        cnt += 1
            sw_ = 0.0
            sv = 0.0
            if cnt <= n_similar:
                for i in range(cnt):
                    sw_ += wgt[i]
                    sv += wgt[i] * val[i]
            else:
                thr = np.partition(diff[:cnt], n_similar - 1)[n_similar - 1]
                less = 0
                for i in range(cnt):
                    if diff[i] < thr:
                        less += 1
                ties = n_similar - less  # pixels at the threshold, first in scan order
                for i in range(cnt):
                    d = diff[i]
                    if d < thr or (d == thr and ties > 0):
                        if d == thr:
                            ties -= 1
                        sw_ += wgt[i]
                        sv += wgt[i] * val[i]
            out[y, x] = np.float32(sv / sw_ + res[y + sw, x + sw])
    return out
