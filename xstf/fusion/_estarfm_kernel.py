"""numba kernels for ESTARFM and ubESTARFM on one padded numpy block.

A block is a ``(5, ny + 2w, nx + 2w)`` float32 stack ``F1, C1, F2, C2, C0`` whose
border of ``w`` pixels is the halo (NaN beyond the scene); the kernels return the
``(ny, nx)`` float32 prediction for the interior.

How the work is organised (the algorithm itself is in :mod:`xstf.fusion.estarfm`):

- per-pixel quantities that do not depend on the centre (validity, ``1 - R``,
  ``C0 - Ck``, ``C1 - C2``; for ubESTARFM ``F - C`` and ``F + C``) are computed once
  per block;
- window means of all valid pixels (temporal weights, the <= 5 candidates branch)
  are separable box sums, accumulated in a fixed order in float64;
- the sums over the candidates of a window are passes of
  :func:`xstf.fusion._kernel_common.window_sums`: for one output row, over the window
  offsets and, innermost, over the centres of the row: a long contiguous loop that
  LLVM vectorises (float32 lanes). Each sweep of the row takes ``UNROLL`` window
  columns, so a centre's partial sums stay in registers over them; the terms are
  still added one column at a time in the written order (no "reassoc"), bit for bit
  as with one column per sweep. Partial sums of one window row are float32, totals
  float64. What a pass adds is a ``*_sums`` step (one pixel into a centre's sums):
  ESTARFM's candidate sums (fused with the weights), regression sums and fallback
  sums; ubESTARFM's bias sums and weighted sums, compiled with "reassoc" as they
  always were, and so summed one window column per sweep;
- ESTARFM's regression sums for the conversion coefficient (only where the
  coarse-change gate passes) and its fallback sums (only where the prediction leaves
  the DN range) are extra passes over the rows, and the column range, that need them;
- every centre sums its window in the same order wherever the block boundaries are,
  so results are bit-identical whatever the dask chunks.

The two kernels are separate functions with their own loops (one kernel with a
runtime ``unbiased`` flag stopped LLVM from vectorising them); what they share is
compiled into each: the per-pixel preparation, the candidate test, :func:`window_sums`
and the blending of the two dates' predictions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernel_common import (
    FASTMATH,
    FASTMATH_ORDERED,
    SENTINEL,
    UNROLL,
    box_sum,
    column2,
    column3,
    column5,
    distance_table,
    finite_layers,
    scratch_rows,
    set_column2,
    set_column3,
    set_column5,
    window_sums,
)

__all__ = [
    "FASTMATH",
    "FASTMATH_ORDERED",
    "SENTINEL",
    "UNROLL",
    "box_sum",
    "distance_table",
    "estarfm_block",
    "ubestarfm_block",
]

_EPS_D = np.float32(1e-7)  # added to the combined distance (reference value)
_EPS_T = 1e-10  # added to the coarse differences of the temporal weights (0.01**5)


@njit(nogil=True, cache=True)
def _prepare(block: np.ndarray):
    """Per-pixel arrays of a block that both methods use, missing pixels made inert.

    Returns ``ok`` (bool mask of the valid pixels) and a ``(5, h, w)`` float32 stack
    ``valid`` (1/0), ``a1``/``a2`` (F1/F2, SENTINEL where invalid), ``d1``/``d2``
    (C0 - C1, C0 - C2, 0 where invalid).
    """
    _, h, wd = block.shape
    ok = finite_layers(block)
    arrays = np.empty((5, h, wd), np.float32)
    valid, a1, a2, d1, d2 = arrays[0], arrays[1], arrays[2], arrays[3], arrays[4]
    for i in range(h):
        for j in range(wd):
            if ok[i, j]:
                valid[i, j] = 1.0
                a1[i, j] = block[0, i, j]
                a2[i, j] = block[2, i, j]
                d1[i, j] = block[4, i, j] - block[1, i, j]
                d2[i, j] = block[4, i, j] - block[3, i, j]
            else:
                valid[i, j] = 0.0
                a1[i, j] = SENTINEL
                a2[i, j] = SENTINEL
                d1[i, j] = 0.0
                d2[i, j] = 0.0
    return ok, arrays


@njit(nogil=True, cache=True)
def _window_setup(block: np.ndarray, w: int):
    """What both kernels start from: :func:`_prepare`'s mask and stack, the distances, and
    the window sums of ``valid``, ``d1``, ``d2`` (the window means of all valid pixels)."""
    ok, common = _prepare(block)
    dist = distance_table(w, w)
    return ok, common, dist, box_sum(common[0], w), box_sum(common[3], w), box_sum(common[4], w)


@njit(nogil=True, cache=True)
def _prepare_estarfm(block: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """ESTARFM's own per-pixel arrays: a ``(4, h, w)`` stack ``c1, c2, g, cd``.

    ``c1``/``c2`` (C1/C2), ``g`` (1 - R, float64 maths) and ``cd`` (C1 - C2); where a
    pixel is invalid 0, except ``g`` = 1.
    """
    _, h, wd = block.shape
    arrays = np.zeros((4, h, wd), np.float32)
    c1, c2, g, cd = arrays[0], arrays[1], arrays[2], arrays[3]
    for i in range(h):
        for j in range(wd):
            if not ok[i, j]:
                g[i, j] = 1.0
                continue
            c1[i, j] = block[1, i, j]
            c2[i, j] = block[3, i, j]
            cd[i, j] = block[1, i, j] - block[3, i, j]
            F1 = np.float64(block[0, i, j])
            C1 = np.float64(block[1, i, j])
            F2 = np.float64(block[2, i, j])
            C2 = np.float64(block[3, i, j])
            gg: float = 0.5 * (abs((F1 - C1) / (F1 + C1)) + abs((F2 - C2) / (F2 + C2)))
            if not np.isfinite(gg):
                gg = 0.5  # the reference replaces a NaN correlation by R = 0.5
            g[i, j] = np.float32(gg)
    return arrays


@njit(nogil=True, cache=True)
def _prepare_unbiased(block: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """ubESTARFM's own per-pixel arrays: a ``(4, h, w)`` stack ``e1, e2, s1, s2``.

    ``e_k`` = F_k - C_k (0 where invalid) and ``s_k`` = F_k + C_k (1 where invalid).
    """
    _, h, wd = block.shape
    arrays = np.empty((4, h, wd), np.float32)
    e1, e2, s1, s2 = arrays[0], arrays[1], arrays[2], arrays[3]
    for i in range(h):
        for j in range(wd):
            f1v = block[0, i, j]
            c1v = block[1, i, j]
            f2v = block[2, i, j]
            c2v = block[3, i, j]
            e1[i, j] = f1v - c1v if ok[i, j] else 0.0
            e2[i, j] = f2v - c2v if ok[i, j] else 0.0
            s1[i, j] = f1v + c1v if ok[i, j] else 1.0
            s2[i, j] = f2v + c2v if ok[i, j] else 1.0
    return arrays


@njit(nogil=True, cache=True)
def _temporal_weights(m1: float, m2: float, few: bool):
    """T1, T2 and the coarse changes from the window means ``m_k = mean(C0 - Ck)``.

    ``few``: the <= 5 candidates branch, where the reference adds the epsilon before
    taking the absolute value (and also adds it to the change itself).
    """
    if few:
        e1 = m1 + _EPS_T
        e2 = m2 + _EPS_T
        a1 = abs(e1)
        a2 = abs(e2)
    else:
        e1 = m1
        e2 = m2
        a1 = abs(m1) + _EPS_T
        a2 = abs(m2) + _EPS_T
    if a1 == 0.0 and a2 == 0.0:
        t1 = 0.5
    elif a1 == 0.0:
        t1 = 1.0
    elif a2 == 0.0:
        t1 = 0.0
    else:
        t1 = (1.0 / a1) / (1.0 / a1 + 1.0 / a2)
    return t1, 1.0 - t1, e1, e2


@njit(inline="always")
def _blend(t1, t2, f1, f2, s1, s2, sw):
    """``T1·(F1 + s1/sw) + T2·(F2 + s2/sw)`` (float64; the caller's fastmath flags)."""
    return t1 * (f1 + s1 / sw) + t2 * (f2 + s2 / sw)


@njit(inline="always")
def _few_candidates(m1, m2, f1, f2):
    """The prediction of the <= 5 candidates branch from the window means and ``F_k``."""
    t1, t2, e1, e2 = _temporal_weights(m1, m2, True)
    return np.float32(t1 * (f1 + e1) + t2 * (f2 + e2))


@njit(nogil=True, cache=True)
def _similar(v1, v2, f1c, f2c, th1, th2):
    """``F_k - F_k(centre)`` of a pixel with fine values ``v1, v2``; is it a candidate?"""
    f1d = v1 - f1c
    f2d = v2 - f2c
    return f1d, f2d, (abs(f1d) < th1) & (abs(f2d) < th2)


@njit(nogil=True, cache=True, fastmath=FASTMATH_ORDERED, error_model="numpy")
def _cand_sums(s, rows, j, cx, th1, th2, dd):
    """Add pixel ``j`` of a window row to a centre's five candidate sums.

    ``s`` = (count, sum W, sum W·(C0 - C1), sum W·(C0 - C2), sum (C1 - C2)) over the
    candidates, unnormalised ``W = 1 / ((1 - R)·d + eps)``; ``rows``, ``cx``: see
    :func:`window_sums` and ``planes`` in :func:`estarfm_block`; ``dd``: distance.
    """
    a1, a2, g, d1, d2, cd, _, _ = rows
    zero = np.float32(0.0)
    one = np.float32(1.0)
    m = _similar(a1[j], a2[j], cx[0], cx[1], th1, th2)[2]
    wt = one / (g[j] * dd + _EPS_D)
    wt = wt if m else zero
    return (
        s[0] + (one if m else zero),
        s[1] + wt,
        s[2] + wt * d1[j],
        s[3] + wt * d2[j],
        s[4] + (cd[j] if m else zero),
    )


@njit(nogil=True, cache=True, fastmath=FASTMATH_ORDERED)
def _regression_sums(s, rows, j, cx, th1, th2, dd):
    """Add pixel ``j`` of a window row to a centre's regression sums, if a candidate.

    ``s`` = sums of x, y, x², xy, y² over both dates, with ``x = C_k - C1(centre)`` and
    ``y = F_k - F1(centre)`` (one shift for all 2n points leaves the regression
    unchanged); ``dd`` unused.
    """
    zero = np.float32(0.0)
    f1c = cx[0]
    cc1 = cx[2]
    v2 = rows[1][j]
    f1d, _, m = _similar(rows[0][j], v2, f1c, cx[1], th1, th2)
    x1 = rows[6][j] - cc1
    x2 = rows[7][j] - cc1
    f1d = f1d if m else zero
    f2d = v2 - f1c if m else zero
    x1 = x1 if m else zero
    x2 = x2 if m else zero
    return (
        s[0] + (x1 + x2),
        s[1] + (f1d + f2d),
        (s[2] + x1 * x1) + x2 * x2,
        (s[3] + x1 * f1d) + x2 * f2d,
        (s[4] + f1d * f1d) + f2d * f2d,
    )


@njit(nogil=True, cache=True, fastmath=FASTMATH_ORDERED)
def _fallback_sums(s, rows, j, cx, th1, th2, dd):
    """Add pixel ``j`` of a window row to a centre's sums of W·(F_k - F_k(centre))."""
    a1, a2, g = rows[0], rows[1], rows[2]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    f1d, f2d, m = _similar(a1[j], a2[j], cx[0], cx[1], th1, th2)
    wt = one / (g[j] * dd + _EPS_D)
    wt = wt if m else zero
    return (s[0] + wt * (f1d if m else zero), s[1] + wt * (f2d if m else zero))


@njit(nogil=True, cache=True, fastmath=FASTMATH_ORDERED, error_model="numpy")
def estarfm_block(
    block: np.ndarray,
    w: int,
    th1: np.float32,
    th2: np.float32,
    dn_min: float,
    dn_max: float,
    gate: float,
    fcrit: np.ndarray,
) -> np.ndarray:
    """ESTARFM (Zhu et al. 2010) for the interior of one padded block.

    Parameters
    ----------
    block : (5, ny + 2w, nx + 2w) float32
        ``F1, C1, F2, C2, C0``; NaN where missing (and beyond the scene).
    w : int
        Half window.
    th1, th2 : float32
        Similarity thresholds (candidate if ``|F_k - F_k(centre)| < th_k`` for both).
    dn_min, dn_max : float
        Plausible range; predictions on or outside it use the fallback.
    gate : float
        Minimum ``|mean C1 - mean C2|`` over the candidates to estimate ``V``.
    fcrit : float64 array
        ``fcrit[df]``: F(1, df) critical value at p = 0.05.
    """
    ok, common, dist, nv, m1s, m2s = _window_setup(block, w)
    valid, a1, a2, d1, d2 = common[0], common[1], common[2], common[3], common[4]
    conv = _prepare_estarfm(block, ok)
    c1, c2, g, cd = conv[0], conv[1], conv[2], conv[3]
    ny, nx = nv.shape
    out = np.empty((ny, nx), np.float32)

    # what the passes read: F1, F2 (SENTINEL where invalid), 1 - R, C0 - C1, C0 - C2,
    # C1 - C2, C1, C2 of the window pixels; F1, F2, C1, C2 of the centres of a row
    planes = (a1, a2, g, d1, d2, cd, c1, c2)
    centre = np.empty((4, nx), np.float32)  # F1, F2, C1, C2 of the centres of a row
    cf1, cf2, cc1, cc2 = centre[0], centre[1], centre[2], centre[3]
    cen = (cf1, cf2, cc1, cc2)
    pass_in = (planes, cen, th1, th2, dist)
    part = scratch_rows(nx)  # window-row partial sums of a pass
    cand = np.empty((5, nx), np.float64)  # totals: see _cand_sums
    tn, tw, t1s, t2s, tc = cand[0], cand[1], cand[2], cand[3], cand[4]
    reg = np.empty((5, nx), np.float64)  # totals: see _regression_sums
    ux, uy, uxx, uxy, uyy = reg[0], reg[1], reg[2], reg[3], reg[4]
    fb = np.empty((2, nx), np.float64)  # totals: see _fallback_sums
    need_v = np.zeros(nx, np.bool_)
    vcoef = np.ones(nx, np.float64)
    need_fb = np.zeros(nx, np.bool_)
    t1 = np.empty(nx, np.float64)
    t2 = np.empty(nx, np.float64)

    for y in range(ny):
        yc = y + w
        cf1[:] = a1[yc, w : w + nx]
        cf2[:] = a2[yc, w : w + nx]
        cc1[:] = c1[yc, w : w + nx]
        cc2[:] = c2[yc, w : w + nx]
        # pass 1: candidates, weights, weighted coarse changes, coarse-change gate
        window_sums(_cand_sums, column5, set_column5, cand, part, pass_in, y, 0, nx - 1, True)

        lo = nx
        hi = -1
        for x in range(nx):
            need_v[x] = False
            vcoef[x] = 1.0
            if valid[yc, x + w] > 0.0 and tn[x] > 5.0:
                if abs(tc[x] / tn[x]) >= gate:
                    need_v[x] = True
                    lo = min(lo, x)
                    hi = max(hi, x)
        # pass 2 (only where the gate passes): OLS of [F1; F2] on [C1; C2] over the candidates
        if hi >= lo:
            window_sums(_regression_sums, column5, set_column5, reg, part, pass_in, y, lo, hi, True)
            for x in range(lo, hi + 1):
                if not need_v[x]:
                    continue
                npts = 2.0 * tn[x]
                sxx = uxx[x] - ux[x] * ux[x] / npts
                sxy = uxy[x] - ux[x] * uy[x] / npts
                syy = uyy[x] - uy[x] * uy[x] / npts
                if sxx > 0.0:
                    slope = sxy / sxx
                    ssr = sxy * sxy / sxx
                    sse = syy - ssr
                    df = int(npts) - 2
                    if sse > 0.0:
                        fval = ssr / (sse / df)
                    else:
                        fval = np.inf if ssr > 0.0 else 0.0
                    if fval >= fcrit[df] and slope > 0.0 and slope <= 5.0:
                        vcoef[x] = slope

        # predictions
        lo = nx
        hi = -1
        for x in range(nx):
            need_fb[x] = False
            if valid[yc, x + w] == 0.0:
                out[y, x] = np.nan
                continue
            mm1 = m1s[y, x] / nv[y, x]
            mm2 = m2s[y, x] / nv[y, x]
            f1c = np.float64(cf1[x])
            f2c = np.float64(cf2[x])
            if tn[x] <= 5.0:
                out[y, x] = _few_candidates(mm1, mm2, f1c, f2c)
                continue
            tt1, tt2, _, _ = _temporal_weights(mm1, mm2, False)
            f0 = _blend(tt1, tt2, f1c, f2c, vcoef[x] * t1s[x], vcoef[x] * t2s[x], tw[x])
            if f0 <= dn_min or f0 >= dn_max:
                need_fb[x] = True
                t1[x] = tt1
                t2[x] = tt2
                lo = min(lo, x)
                hi = max(hi, x)
            out[y, x] = np.float32(f0)
        # pass 3 (only where the prediction left the DN range): weighted fine means
        if hi >= lo:
            window_sums(_fallback_sums, column2, set_column2, fb, part, pass_in, y, lo, hi, True)
            for x in range(lo, hi + 1):
                if need_fb[x]:
                    f0 = _blend(t1[x], t2[x], cf1[x], cf2[x], fb[0, x], fb[1, x], tw[x])
                    out[y, x] = np.float32(f0)
    return out


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _bias_sums(s, rows, j, cx, th1, th2, dd):
    """Add pixel ``j`` of a window row to a centre's count and sums of F_k - C_k.

    Over the candidates; ``rows``, ``cx``: see :func:`window_sums` and ``planes`` in
    :func:`ubestarfm_block`; ``dd`` unused.
    """
    a1, a2, e1, e2 = rows[0], rows[1], rows[2], rows[3]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    m = _similar(a1[j], a2[j], cx[0], cx[1], th1, th2)[2]
    return (
        s[0] + (one if m else zero),
        s[1] + (e1[j] if m else zero),
        s[2] + (e2[j] if m else zero),
    )


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _unbiased_sums(s, rows, j, cx, th1, th2, dd):
    """Add pixel ``j`` of a window row to a centre's sums, W from the bias-corrected distance.

    ``s`` = (sum W, sum W·(C0 - C1), sum W·(C0 - C2), sum W·(F1 - F1(centre)), sum
    W·(F2 - F2(centre))) over the candidates.
    """
    a1, a2, e1, e2, s1, s2, d1, d2 = rows
    zero = np.float32(0.0)
    half = np.float32(0.5)
    bb1 = cx[2]
    bb2 = cx[3]
    f1d, f2d, m = _similar(a1[j], a2[j], cx[0], cx[1], th1, th2)
    n1 = e1[j] - bb1
    n2 = e2[j] - bb2
    q1d = s1[j] - bb1
    q2d = s2[j] - bb2
    den = abs(q1d * q2d)
    num = half * (abs(n1 * q2d) + abs(n2 * q1d))
    # 1 - R > 2 (R < -1) is "abnormal": the reference sets R = 0.5
    num = num if num <= 2.0 * den else half * den
    wt = den / (num * dd + _EPS_D * den)
    wt = wt if m else zero
    return (
        s[0] + wt,
        s[1] + wt * d1[j],
        s[2] + wt * d2[j],
        s[3] + wt * (f1d if m else zero),
        s[4] + wt * (f2d if m else zero),
    )


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def ubestarfm_block(
    block: np.ndarray,
    w: int,
    th1: np.float32,
    th2: np.float32,
    dn_min: float,
    dn_max: float,
) -> np.ndarray:
    """ubESTARFM (Yu et al. 2023): ESTARFM with the local fine-coarse bias removed, V = 1.

    Same block layout as :func:`estarfm_block`. Each date's fine values are shifted by
    ``mean(C_k) - mean(F_k)`` over the candidates (over the valid window pixels in the
    <= 5 candidates branch) before the spectral distance, the prediction and the fallback.
    """
    ok, common, dist, nv, m1s, m2s = _window_setup(block, w)
    valid, a1, a2, d1, d2 = common[0], common[1], common[2], common[3], common[4]
    unb = _prepare_unbiased(block, ok)
    e1, e2, s1, s2 = unb[0], unb[1], unb[2], unb[3]
    b1s = box_sum(e1, w)  # for the <= 5 candidates branch
    b2s = box_sum(e2, w)
    ny, nx = nv.shape
    out = np.empty((ny, nx), np.float32)

    centre = np.empty((4, nx), np.float32)  # F1, F2 and the biases of the centres of a row
    cf1, cf2, bb1, bb2 = centre[0], centre[1], centre[2], centre[3]
    part = scratch_rows(nx)  # window-row partial sums of a pass
    bias = np.empty((3, nx), np.float64)  # totals: see _bias_sums
    tn, tb1, tb2 = bias[0], bias[1], bias[2]
    wsum = np.empty((5, nx), np.float64)  # totals: see _unbiased_sums
    uw, u1, u2, uf1, uf2 = wsum[0], wsum[1], wsum[2], wsum[3], wsum[4]
    # what the passes read: F1, F2, F1 - C1, F2 - C2, F1 + C1, F2 + C2, C0 - C1, C0 - C2
    # of the window pixels; F1, F2 and the local biases of the centres of a row
    planes = (a1, a2, e1, e2, s1, s2, d1, d2)
    cen = (cf1, cf2, bb1, bb2)
    pass_in = (planes, cen, th1, th2, dist)

    for y in range(ny):
        yc = y + w
        cf1[:] = a1[yc, w : w + nx]
        cf2[:] = a2[yc, w : w + nx]
        # pass 1: candidates and their mean fine - coarse difference (the local bias)
        window_sums(_bias_sums, column3, set_column3, bias, part, pass_in, y, 0, nx - 1, False)
        for x in range(nx):
            n = tn[x] if tn[x] > 0.0 else 1.0
            bb1[x] = np.float32(tb1[x] / n)
            bb2[x] = np.float32(tb2[x] / n)
        # pass 2: weights from the bias-corrected spectral distance
        window_sums(_unbiased_sums, column5, set_column5, wsum, part, pass_in, y, 0, nx - 1, False)
        for x in range(nx):
            if valid[yc, x + w] == 0.0:
                out[y, x] = np.nan
                continue
            nvx = nv[y, x]
            mm1 = m1s[y, x] / nvx
            mm2 = m2s[y, x] / nvx
            if tn[x] <= 5.0:
                f1c = np.float64(cf1[x]) - b1s[y, x] / nvx
                f2c = np.float64(cf2[x]) - b2s[y, x] / nvx
                out[y, x] = _few_candidates(mm1, mm2, f1c, f2c)
                continue
            tt1, tt2, _, _ = _temporal_weights(mm1, mm2, False)
            f1c = np.float64(cf1[x]) - np.float64(bb1[x])
            f2c = np.float64(cf2[x]) - np.float64(bb2[x])
            f0 = _blend(tt1, tt2, f1c, f2c, u1[x], u2[x], uw[x])
            if f0 <= dn_min or f0 >= dn_max:
                f0 = _blend(tt1, tt2, f1c, f2c, uf1[x], uf2[x], uw[x])
            out[y, x] = np.float32(f0)
    return out
