"""numba kernel for STARFM (Gao et al. 2006) on one padded numpy block.

A block is a ``(1 + 2n, ny + 2w, nx + 2w)`` float32 stack ``C0, F1, C1, ..., Fn, Cn``
with a halo of ``w`` pixels (NaN beyond the scene); the kernel returns the
``(ny, nx)`` float32 prediction for the interior. As in the ESTARFM kernel, the
innermost loop runs over the centres of one output row (vectorised), every centre
sums its window in a fixed order (chunk-independent results), window-row partial
sums are float32 and totals float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernel_common import FASTMATH, SENTINEL, distance_table, finite_layers, scratch_rows


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def starfm_block(
    block: np.ndarray,
    w: int,
    th: np.ndarray,
    sigma_lm: float,
    sigma_mm: float,
    scale: float,
    eps: float,
) -> np.ndarray:
    """STARFM for the interior of one padded block.

    Parameters
    ----------
    block : (1 + 2n, ny + 2w, nx + 2w) float32
        ``C0, F1, C1, ..., Fn, Cn``; NaN where missing.
    w : int
        Half window.
    th : (n,) float32
        Similarity thresholds: candidate if ``|F_k - F_k(centre)| <= th_k``.
    sigma_lm, sigma_mm : float
        Uncertainty of the fine-coarse and coarse-coarse differences (K).
    scale : float
        Distance scale ``A`` (pixels): ``D = 1 + d / A``.
    eps : float
        Added to the spectral and temporal differences in the weights (K).
    """
    nl, h, wd = block.shape
    npair = (nl - 1) // 2
    ny = h - 2 * w
    nx = wd - 2 * w
    k = 2 * w + 1
    zero = np.float32(0.0)
    one = np.float32(1.0)
    epsf = np.float32(eps)

    # per pair: fine (SENTINEL where the pixel is unusable), S = |F - C|, T = |C0 - C|,
    # and the pair's prediction C0 + F - C
    fk = np.empty((npair, h, wd), np.float32)
    sk = np.empty((npair, h, wd), np.float32)
    tk = np.empty((npair, h, wd), np.float32)
    pk = np.empty((npair, h, wd), np.float32)
    ok_all = finite_layers(block)  # usable in every pair
    for p in range(npair):
        for i in range(h):
            for j in range(wd):
                c0 = block[0, i, j]
                f = block[1 + 2 * p, i, j]
                c = block[2 + 2 * p, i, j]
                if np.isfinite(c0) and np.isfinite(f) and np.isfinite(c):
                    fk[p, i, j] = f
                    sk[p, i, j] = abs(f - c)
                    tk[p, i, j] = abs(c0 - c)
                    pk[p, i, j] = np.float32(np.float64(c0) + np.float64(f) - np.float64(c))
                else:
                    fk[p, i, j] = SENTINEL
                    sk[p, i, j] = SENTINEL
                    tk[p, i, j] = SENTINEL
                    pk[p, i, j] = 0.0
    dist = distance_table(w, scale)

    out = np.empty((ny, nx), np.float32)
    # per row: window-row partial sums (separate arrays, see scratch_rows), centre values
    qw, qp, cf, cp, smax = scratch_rows(nx)
    tmax = np.empty(nx, np.float32)
    totals = np.empty((3, nx), np.float64)  # sum W, sum W·(prediction - mean), mean
    uw, up, pc = totals[0], totals[1], totals[2]
    for y in range(ny):
        yc = y + w
        # the filters use the largest centre differences over the pairs (Gao et al. eq. 12-13)
        for x in range(nx):
            s = np.float64(0.0)
            t = np.float64(0.0)
            for p in range(npair):
                s = max(s, np.float64(sk[p, yc, x + w]))
                t = max(t, np.float64(tk[p, yc, x + w]))
            smax[x] = np.float32(s + sigma_lm)
            tmax[x] = np.float32(t + sigma_mm)
            # the mean of the pairs' centre predictions: sums are taken relative to it
            a = np.float64(0.0)
            for p in range(npair):
                a += np.float64(pk[p, yc, x + w])
            pc[x] = a / npair
        uw[:] = 0.0
        up[:] = 0.0
        for p in range(npair):
            thp = th[p]
            for x in range(nx):
                cf[x] = fk[p, yc, x + w]
                cp[x] = np.float32(pc[x])
            for r in range(k):
                yr = y + r
                qw[:] = 0.0
                qp[:] = 0.0
                for c in range(k):
                    dd = dist[r, c]
                    for x in range(nx):
                        j = x + c
                        s = sk[p, yr, j]
                        t = tk[p, yr, j]
                        m = (abs(fk[p, yr, j] - cf[x]) <= thp) & (s < smax[x]) & (t < tmax[x])
                        wt = one / ((s + epsf) * (t + epsf) * dd)
                        wt = wt if m else zero
                        qw[x] += wt
                        qp[x] += wt * (pk[p, yr, j] - cp[x] if m else zero)
                for x in range(nx):
                    uw[x] += qw[x]
                    up[x] += qp[x]
        for x in range(nx):
            if not ok_all[yc, x + w]:
                out[y, x] = np.nan
            else:
                # the centre is always a candidate of each pair, so uw > 0
                out[y, x] = np.float32(np.float64(np.float32(pc[x])) + up[x] / uw[x])
    return out
