"""numba kernels for ESTARFM and ubESTARFM on one padded numpy block.

A block is a ``(5, ny + 2w, nx + 2w)`` float32 stack ``F1, C1, F2, C2, C0`` whose
border of ``w`` pixels is the halo (NaN beyond the scene); the kernels return the
``(ny, nx)`` float32 prediction for the interior.

How the work is organised (the algorithm itself is in :mod:`xstf.fusion.estarfm`):

- per-pixel quantities that do not depend on the centre (validity, ``1 - R``,
  ``C0 - Ck``, ``C1 - C2``) are computed once per block;
- window means of all valid pixels (temporal weights, the <= 5 candidates branch)
  are separable box sums, accumulated in a fixed order in float64;
- the candidate test and the weighted sums are fused in one pass that runs, for one
  output row, over the window offsets and, innermost, over the centres of the row: a
  long contiguous loop that LLVM vectorises (float32 lanes). Each sweep of the row
  takes ``UNROLL`` window columns, so a centre's partial sums stay in registers over
  them; the terms are still added one column at a time in the written order (no
  "reassoc"), bit for bit as with one column per sweep. Partial sums of one window
  row are float32, totals float64;
- the regression sums for the conversion coefficient (only where the coarse-change
  gate passes) and the fallback sums (only where the prediction leaves the DN range)
  are extra passes over the rows that need them;
- every centre sums its window in the same order wherever the block boundaries are,
  so results are bit-identical whatever the dask chunks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# No "nnan"/"ninf": missing pixels are handled explicitly, but be safe with NaN inputs.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
#: Stand-in for a missing fine value: never within a threshold of a real centre value.
SENTINEL = np.float32(1.0e30)
_EPS_D = np.float32(1e-7)  # added to the combined distance (reference value)
_EPS_T = 1e-10  # added to the coarse differences of the temporal weights (0.01**5)


@njit(nogil=True, cache=True)
def distance_table(w: int) -> np.ndarray:
    """``d = 1 + sqrt(dy² + dx²) / w`` for every offset of a ``(2w+1)²`` window (float32)."""
    k = 2 * w + 1
    out = np.empty((k, k), np.float32)
    for r in range(k):
        for c in range(k):
            dy = np.float64(r - w)
            dx = np.float64(c - w)
            out[r, c] = np.float32(1.0 + np.sqrt(dy * dy + dx * dx) / w)
    return out


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def box_sum(a: np.ndarray, w: int) -> np.ndarray:
    """Sum of ``a`` over each ``(2w+1)²`` window, for the interior of a padded array.

    Summed in a fixed order (rows of the window, then columns), in float64 whatever
    the input dtype, so the result does not depend on where the array was cut.
    """
    h, wd = a.shape
    ny = h - 2 * w
    nx = wd - 2 * w
    k = 2 * w + 1
    col = np.empty(wd, np.float64)
    out = np.zeros((ny, nx), np.float64)
    for y in range(ny):
        col[:] = 0.0
        for r in range(k):
            for j in range(wd):
                col[j] += a[y + r, j]
        for c in range(k):
            for x in range(nx):
                out[y, x] += col[x + c]
    return out


@njit(nogil=True, cache=True)
def _prepare(block: np.ndarray, unbiased: bool):
    """Per-pixel arrays of a block, missing pixels made inert.

    Always ``valid`` (1/0), ``a1``/``a2`` (F1/F2, SENTINEL where invalid), ``d1``/``d2``
    (C0 - C1, C0 - C2). ESTARFM (``unbiased`` False) also needs ``c1``, ``c2``, ``g``
    (1 - R, float64 maths) and ``cd`` (C1 - C2); ubESTARFM needs ``e1``/``e2`` (F - C)
    and ``s1``/``s2`` (F + C). Arrays a method does not need are 1 x 1 placeholders.
    """
    _, h, wd = block.shape
    he, we = (1, 1) if unbiased else (h, wd)
    hu, wu = (h, wd) if unbiased else (1, 1)
    valid = np.empty((h, wd), np.float32)
    a1 = np.empty((h, wd), np.float32)
    a2 = np.empty((h, wd), np.float32)
    d1 = np.empty((h, wd), np.float32)
    d2 = np.empty((h, wd), np.float32)
    c1 = np.empty((he, we), np.float32)
    c2 = np.empty((he, we), np.float32)
    g = np.empty((he, we), np.float32)
    cd = np.empty((he, we), np.float32)
    e1 = np.empty((hu, wu), np.float32)
    e2 = np.empty((hu, wu), np.float32)
    s1 = np.empty((hu, wu), np.float32)
    s2 = np.empty((hu, wu), np.float32)
    for i in range(h):
        for j in range(wd):
            f1v = block[0, i, j]
            c1v = block[1, i, j]
            f2v = block[2, i, j]
            c2v = block[3, i, j]
            c0v = block[4, i, j]
            ok = (
                np.isfinite(f1v)
                and np.isfinite(c1v)
                and np.isfinite(f2v)
                and np.isfinite(c2v)
                and np.isfinite(c0v)
            )
            if ok:
                valid[i, j] = 1.0
                a1[i, j] = f1v
                a2[i, j] = f2v
                d1[i, j] = c0v - c1v
                d2[i, j] = c0v - c2v
            else:
                valid[i, j] = 0.0
                a1[i, j] = SENTINEL
                a2[i, j] = SENTINEL
                d1[i, j] = 0.0
                d2[i, j] = 0.0
            if unbiased:
                e1[i, j] = f1v - c1v if ok else 0.0
                e2[i, j] = f2v - c2v if ok else 0.0
                s1[i, j] = f1v + c1v if ok else 1.0
                s2[i, j] = f2v + c2v if ok else 1.0
            elif ok:
                c1[i, j] = c1v
                c2[i, j] = c2v
                cd[i, j] = c1v - c2v
                F1 = np.float64(f1v)
                C1 = np.float64(c1v)
                F2 = np.float64(f2v)
                C2 = np.float64(c2v)
                gg: float = 0.5 * (abs((F1 - C1) / (F1 + C1)) + abs((F2 - C2) / (F2 + C2)))
                if not np.isfinite(gg):
                    gg = 0.5  # the reference replaces a NaN correlation by R = 0.5
                g[i, j] = np.float32(gg)
            else:
                c1[i, j] = 0.0
                c2[i, j] = 0.0
                cd[i, j] = 0.0
                g[i, j] = 1.0
    return valid, a1, a2, d1, d2, c1, c2, g, cd, e1, e2, s1, s2


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


#: ``estarfm_block``'s flags: without "reassoc", LLVM keeps the summation order written in
#: the source (each sum gains its terms one window column at a time, as before unrolling).
FASTMATH_ORDERED = {"contract", "arcp", "nsz"}
#: Window columns summed per pass of the innermost loop (partial sums held in registers).
UNROLL = 8


@njit(nogil=True, cache=True, fastmath=FASTMATH_ORDERED)
def _cand_sums(s, rows, j, f1c, f2c, th1, th2, dd):
    """Add pixel ``j`` of one window row to a centre's five candidate sums.

    ``s`` = (count, sum W, sum W·(C0 - C1), sum W·(C0 - C2), sum (C1 - C2)) over the
    candidates, unnormalised ``W = 1 / ((1 - R)·d + eps)``; ``rows`` = the window row of
    ``a1, a2, g, d1, d2, cd``; ``f1c, f2c``: the centre's fine values; ``dd``: distance.
    """
    a1r, a2r, gr, d1r, d2r, cdr = rows
    zero = np.float32(0.0)
    one = np.float32(1.0)
    m = (abs(a1r[j] - f1c) < th1) & (abs(a2r[j] - f2c) < th2)
    wt = one / (gr[j] * dd + _EPS_D)
    wt = wt if m else zero
    return (
        s[0] + (one if m else zero),
        s[1] + wt,
        s[2] + wt * d1r[j],
        s[3] + wt * d2r[j],
        s[4] + (cdr[j] if m else zero),
    )


@njit(nogil=True, cache=True, fastmath=FASTMATH_ORDERED)
def _regression_sums(s, rows, j, f1c, f2c, cc1, th1, th2):
    """Add pixel ``j`` of one window row to a centre's regression sums (if a candidate).

    ``s`` = sums of x, y, x², xy, y² over both dates, with ``x = C_k - C1(centre)`` and
    ``y = F_k - F1(centre)`` (one shift for all 2n points leaves the regression
    unchanged); ``rows`` = the window row of ``a1, a2, c1, c2``.
    """
    a1r, a2r, c1r, c2r = rows
    zero = np.float32(0.0)
    f1d = a1r[j] - f1c
    f2d = a2r[j] - f2c
    m = (abs(f1d) < th1) & (abs(f2d) < th2)
    x1 = c1r[j] - cc1
    x2 = c2r[j] - cc1
    f1d = f1d if m else zero
    f2d = a2r[j] - f1c if m else zero
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
def _fallback_sums(s, rows, j, f1c, f2c, th1, th2, dd):
    """Add pixel ``j`` of one window row to a centre's sums of W·(F_k - F_k(centre))."""
    a1r, a2r, gr = rows
    zero = np.float32(0.0)
    one = np.float32(1.0)
    f1d = a1r[j] - f1c
    f2d = a2r[j] - f2c
    m = (abs(f1d) < th1) & (abs(f2d) < th2)
    wt = one / (gr[j] * dd + _EPS_D)
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
    _, h, wd = block.shape
    ny = h - 2 * w
    nx = wd - 2 * w
    k = 2 * w + 1
    valid, a1, a2, d1, d2, c1, c2, g, cd, _, _, _, _ = _prepare(block, False)
    dist = distance_table(w)
    nv = box_sum(valid, w)
    m1s = box_sum(d1, w)
    m2s = box_sum(d2, w)
    out = np.empty((ny, nx), np.float32)

    cf1 = np.empty(nx, np.float32)
    cf2 = np.empty(nx, np.float32)
    cc1 = np.empty(nx, np.float32)
    # per-row float32 partials and float64 totals
    pn = np.empty(nx, np.float32)
    pw = np.empty(nx, np.float32)
    p1 = np.empty(nx, np.float32)
    p2 = np.empty(nx, np.float32)
    pc = np.empty(nx, np.float32)
    tn = np.empty(nx, np.float64)
    tw = np.empty(nx, np.float64)
    t1s = np.empty(nx, np.float64)
    t2s = np.empty(nx, np.float64)
    tc = np.empty(nx, np.float64)
    # regression partials/totals: sums of x, y, x², xy, y² (x = C - C1(centre), y = F - F1(centre))
    qx = np.empty(nx, np.float32)
    qy = np.empty(nx, np.float32)
    qxx = np.empty(nx, np.float32)
    qxy = np.empty(nx, np.float32)
    qyy = np.empty(nx, np.float32)
    ux = np.empty(nx, np.float64)
    uy = np.empty(nx, np.float64)
    uxx = np.empty(nx, np.float64)
    uxy = np.empty(nx, np.float64)
    uyy = np.empty(nx, np.float64)
    need_v = np.zeros(nx, np.bool_)
    vcoef = np.ones(nx, np.float64)
    need_fb = np.zeros(nx, np.bool_)
    t1 = np.empty(nx, np.float64)
    t2 = np.empty(nx, np.float64)
    kb = k - k % UNROLL  # window columns summed UNROLL at a time

    for y in range(ny):
        yc = y + w
        for x in range(nx):
            cf1[x] = a1[yc, x + w]
            cf2[x] = a2[yc, x + w]
            cc1[x] = c1[yc, x + w]
        tn[:] = 0.0
        tw[:] = 0.0
        t1s[:] = 0.0
        t2s[:] = 0.0
        tc[:] = 0.0
        # pass 1: candidates, weights, weighted coarse changes, coarse-change gate
        for r in range(k):
            yr = y + r
            pn[:] = 0.0
            pw[:] = 0.0
            p1[:] = 0.0
            p2[:] = 0.0
            pc[:] = 0.0
            rows = (a1[yr], a2[yr], g[yr], d1[yr], d2[yr], cd[yr])
            drow = dist[r]
            for c in range(0, kb, UNROLL):  # UNROLL window columns per sweep of the row
                uc = np.uint64(c)
                dd0, dd1, dd2, dd3 = drow[c], drow[c + 1], drow[c + 2], drow[c + 3]
                dd4, dd5, dd6, dd7 = drow[c + 4], drow[c + 5], drow[c + 6], drow[c + 7]
                for x in range(np.uint64(0), np.uint64(nx)):
                    j = x + uc
                    s = (pn[x], pw[x], p1[x], p2[x], pc[x])
                    s = _cand_sums(s, rows, j, cf1[x], cf2[x], th1, th2, dd0)
                    s = _cand_sums(s, rows, j + np.uint64(1), cf1[x], cf2[x], th1, th2, dd1)
                    s = _cand_sums(s, rows, j + np.uint64(2), cf1[x], cf2[x], th1, th2, dd2)
                    s = _cand_sums(s, rows, j + np.uint64(3), cf1[x], cf2[x], th1, th2, dd3)
                    s = _cand_sums(s, rows, j + np.uint64(4), cf1[x], cf2[x], th1, th2, dd4)
                    s = _cand_sums(s, rows, j + np.uint64(5), cf1[x], cf2[x], th1, th2, dd5)
                    s = _cand_sums(s, rows, j + np.uint64(6), cf1[x], cf2[x], th1, th2, dd6)
                    s = _cand_sums(s, rows, j + np.uint64(7), cf1[x], cf2[x], th1, th2, dd7)
                    pn[x], pw[x], p1[x], p2[x], pc[x] = s
            for c in range(kb, k):  # the remaining columns, one at a time
                uc = np.uint64(c)
                dd = drow[c]
                for x in range(np.uint64(0), np.uint64(nx)):
                    j = x + uc
                    pn[x], pw[x], p1[x], p2[x], pc[x] = _cand_sums(
                        (pn[x], pw[x], p1[x], p2[x], pc[x]), rows, j, cf1[x], cf2[x], th1, th2, dd
                    )
            for x in range(nx):
                tn[x] += pn[x]
                tw[x] += pw[x]
                t1s[x] += p1[x]
                t2s[x] += p2[x]
                tc[x] += pc[x]

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
            ux[:] = 0.0
            uy[:] = 0.0
            uxx[:] = 0.0
            uxy[:] = 0.0
            uyy[:] = 0.0
            for r in range(k):
                yr = y + r
                qx[:] = 0.0
                qy[:] = 0.0
                qxx[:] = 0.0
                qxy[:] = 0.0
                qyy[:] = 0.0
                rrows = (a1[yr], a2[yr], c1[yr], c2[yr])
                for c in range(0, kb, UNROLL):  # UNROLL window columns per sweep of the row
                    uc = np.uint64(c)
                    for x in range(np.uint64(lo), np.uint64(hi + 1)):
                        j = x + uc
                        s = (qx[x], qy[x], qxx[x], qxy[x], qyy[x])
                        s = _regression_sums(s, rrows, j, cf1[x], cf2[x], cc1[x], th1, th2)
                        s = _regression_sums(
                            s, rrows, j + np.uint64(1), cf1[x], cf2[x], cc1[x], th1, th2
                        )
                        s = _regression_sums(
                            s, rrows, j + np.uint64(2), cf1[x], cf2[x], cc1[x], th1, th2
                        )
                        s = _regression_sums(
                            s, rrows, j + np.uint64(3), cf1[x], cf2[x], cc1[x], th1, th2
                        )
                        s = _regression_sums(
                            s, rrows, j + np.uint64(4), cf1[x], cf2[x], cc1[x], th1, th2
                        )
                        s = _regression_sums(
                            s, rrows, j + np.uint64(5), cf1[x], cf2[x], cc1[x], th1, th2
                        )
                        s = _regression_sums(
                            s, rrows, j + np.uint64(6), cf1[x], cf2[x], cc1[x], th1, th2
                        )
                        s = _regression_sums(
                            s, rrows, j + np.uint64(7), cf1[x], cf2[x], cc1[x], th1, th2
                        )
                        qx[x], qy[x], qxx[x], qxy[x], qyy[x] = s
                for c in range(kb, k):  # the remaining columns, one at a time
                    uc = np.uint64(c)
                    for x in range(np.uint64(lo), np.uint64(hi + 1)):
                        j = x + uc
                        qx[x], qy[x], qxx[x], qxy[x], qyy[x] = _regression_sums(
                            (qx[x], qy[x], qxx[x], qxy[x], qyy[x]),
                            rrows,
                            j,
                            cf1[x],
                            cf2[x],
                            cc1[x],
                            th1,
                            th2,
                        )
                for x in range(lo, hi + 1):
                    ux[x] += qx[x]
                    uy[x] += qy[x]
                    uxx[x] += qxx[x]
                    uxy[x] += qxy[x]
                    uyy[x] += qyy[x]
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
            nvx = nv[y, x]
            mm1 = m1s[y, x] / nvx
            mm2 = m2s[y, x] / nvx
            f1c = np.float64(cf1[x])
            f2c = np.float64(cf2[x])
            if tn[x] > 5.0:
                tt1, tt2, _, _ = _temporal_weights(mm1, mm2, False)
                f01 = f1c + vcoef[x] * t1s[x] / tw[x]
                f02 = f2c + vcoef[x] * t2s[x] / tw[x]
                f0 = tt1 * f01 + tt2 * f02
                if f0 <= dn_min or f0 >= dn_max:
                    need_fb[x] = True
                    t1[x] = tt1
                    t2[x] = tt2
                    lo = min(lo, x)
                    hi = max(hi, x)
                out[y, x] = np.float32(f0)
            else:
                tt1, tt2, e1v, e2v = _temporal_weights(mm1, mm2, True)
                out[y, x] = np.float32(tt1 * (f1c + e1v) + tt2 * (f2c + e2v))
        # pass 3 (only where the prediction left the DN range): weighted fine means
        if hi >= lo:
            ux[:] = 0.0
            uy[:] = 0.0
            for r in range(k):
                yr = y + r
                qx[:] = 0.0
                qy[:] = 0.0
                rows3 = (a1[yr], a2[yr], g[yr])
                drow = dist[r]
                for c in range(0, kb, UNROLL):  # UNROLL window columns per sweep of the row
                    uc = np.uint64(c)
                    dd0, dd1, dd2, dd3 = drow[c], drow[c + 1], drow[c + 2], drow[c + 3]
                    dd4, dd5, dd6, dd7 = drow[c + 4], drow[c + 5], drow[c + 6], drow[c + 7]
                    for x in range(np.uint64(lo), np.uint64(hi + 1)):
                        j = x + uc
                        sf = (qx[x], qy[x])
                        sf = _fallback_sums(sf, rows3, j, cf1[x], cf2[x], th1, th2, dd0)
                        sf = _fallback_sums(
                            sf, rows3, j + np.uint64(1), cf1[x], cf2[x], th1, th2, dd1
                        )
                        sf = _fallback_sums(
                            sf, rows3, j + np.uint64(2), cf1[x], cf2[x], th1, th2, dd2
                        )
                        sf = _fallback_sums(
                            sf, rows3, j + np.uint64(3), cf1[x], cf2[x], th1, th2, dd3
                        )
                        sf = _fallback_sums(
                            sf, rows3, j + np.uint64(4), cf1[x], cf2[x], th1, th2, dd4
                        )
                        sf = _fallback_sums(
                            sf, rows3, j + np.uint64(5), cf1[x], cf2[x], th1, th2, dd5
                        )
                        sf = _fallback_sums(
                            sf, rows3, j + np.uint64(6), cf1[x], cf2[x], th1, th2, dd6
                        )
                        sf = _fallback_sums(
                            sf, rows3, j + np.uint64(7), cf1[x], cf2[x], th1, th2, dd7
                        )
                        qx[x], qy[x] = sf
                for c in range(kb, k):  # the remaining columns, one at a time
                    uc = np.uint64(c)
                    dd = drow[c]
                    for x in range(np.uint64(lo), np.uint64(hi + 1)):
                        j = x + uc
                        qx[x], qy[x] = _fallback_sums(
                            (qx[x], qy[x]), rows3, j, cf1[x], cf2[x], th1, th2, dd
                        )
                for x in range(lo, hi + 1):
                    ux[x] += qx[x]
                    uy[x] += qy[x]
            for x in range(lo, hi + 1):
                if need_fb[x]:
                    f01 = np.float64(cf1[x]) + ux[x] / tw[x]
                    f02 = np.float64(cf2[x]) + uy[x] / tw[x]
                    out[y, x] = np.float32(t1[x] * f01 + t2[x] * f02)
    return out


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
    _, h, wd = block.shape
    ny = h - 2 * w
    nx = wd - 2 * w
    k = 2 * w + 1
    valid, a1, a2, d1, d2, _, _, _, _, e1, e2, s1, s2 = _prepare(block, True)
    dist = distance_table(w)
    nv = box_sum(valid, w)
    m1s = box_sum(d1, w)
    m2s = box_sum(d2, w)
    b1s = box_sum(e1, w)
    b2s = box_sum(e2, w)
    out = np.empty((ny, nx), np.float32)

    cf1 = np.empty(nx, np.float32)
    cf2 = np.empty(nx, np.float32)
    bb1 = np.empty(nx, np.float32)
    bb2 = np.empty(nx, np.float32)
    pn = np.empty(nx, np.float32)
    p1 = np.empty(nx, np.float32)
    p2 = np.empty(nx, np.float32)
    tn = np.empty(nx, np.float64)
    tb1 = np.empty(nx, np.float64)
    tb2 = np.empty(nx, np.float64)
    qw = np.empty(nx, np.float32)
    q1 = np.empty(nx, np.float32)
    q2 = np.empty(nx, np.float32)
    qf1 = np.empty(nx, np.float32)
    qf2 = np.empty(nx, np.float32)
    uw = np.empty(nx, np.float64)
    u1 = np.empty(nx, np.float64)
    u2 = np.empty(nx, np.float64)
    uf1 = np.empty(nx, np.float64)
    uf2 = np.empty(nx, np.float64)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    half = np.float32(0.5)

    for y in range(ny):
        yc = y + w
        for x in range(nx):
            cf1[x] = a1[yc, x + w]
            cf2[x] = a2[yc, x + w]
        tn[:] = 0.0
        tb1[:] = 0.0
        tb2[:] = 0.0
        # pass 1: candidates and their mean fine - coarse difference (the local bias)
        for r in range(k):
            yr = y + r
            pn[:] = 0.0
            p1[:] = 0.0
            p2[:] = 0.0
            for c in range(k):
                for x in range(nx):
                    j = x + c
                    m = (abs(a1[yr, j] - cf1[x]) < th1) & (abs(a2[yr, j] - cf2[x]) < th2)
                    pn[x] += one if m else zero
                    p1[x] += e1[yr, j] if m else zero
                    p2[x] += e2[yr, j] if m else zero
            for x in range(nx):
                tn[x] += pn[x]
                tb1[x] += p1[x]
                tb2[x] += p2[x]
        for x in range(nx):
            n = tn[x] if tn[x] > 0.0 else 1.0
            bb1[x] = np.float32(tb1[x] / n)
            bb2[x] = np.float32(tb2[x] / n)
        # pass 2: weights from the bias-corrected spectral distance
        uw[:] = 0.0
        u1[:] = 0.0
        u2[:] = 0.0
        uf1[:] = 0.0
        uf2[:] = 0.0
        for r in range(k):
            yr = y + r
            qw[:] = 0.0
            q1[:] = 0.0
            q2[:] = 0.0
            qf1[:] = 0.0
            qf2[:] = 0.0
            for c in range(k):
                dd = dist[r, c]
                for x in range(nx):
                    j = x + c
                    f1d = a1[yr, j] - cf1[x]
                    f2d = a2[yr, j] - cf2[x]
                    m = (abs(f1d) < th1) & (abs(f2d) < th2)
                    n1 = e1[yr, j] - bb1[x]
                    n2 = e2[yr, j] - bb2[x]
                    q1d = s1[yr, j] - bb1[x]
                    q2d = s2[yr, j] - bb2[x]
                    den = abs(q1d * q2d)
                    num = half * (abs(n1 * q2d) + abs(n2 * q1d))
                    # 1 - R > 2 (R < -1) is "abnormal": the reference sets R = 0.5
                    num = num if num <= 2.0 * den else half * den
                    wt = den / (num * dd + _EPS_D * den)
                    wt = wt if m else zero
                    qw[x] += wt
                    q1[x] += wt * d1[yr, j]
                    q2[x] += wt * d2[yr, j]
                    qf1[x] += wt * (f1d if m else zero)
                    qf2[x] += wt * (f2d if m else zero)
            for x in range(nx):
                uw[x] += qw[x]
                u1[x] += q1[x]
                u2[x] += q2[x]
                uf1[x] += qf1[x]
                uf2[x] += qf2[x]
        for x in range(nx):
            if valid[yc, x + w] == 0.0:
                out[y, x] = np.nan
                continue
            nvx = nv[y, x]
            mm1 = m1s[y, x] / nvx
            mm2 = m2s[y, x] / nvx
            if tn[x] > 5.0:
                tt1, tt2, _, _ = _temporal_weights(mm1, mm2, False)
                f1c = np.float64(cf1[x]) - np.float64(bb1[x])
                f2c = np.float64(cf2[x]) - np.float64(bb2[x])
                f0 = tt1 * (f1c + u1[x] / uw[x]) + tt2 * (f2c + u2[x] / uw[x])
                if f0 <= dn_min or f0 >= dn_max:
                    f0 = tt1 * (f1c + uf1[x] / uw[x]) + tt2 * (f2c + uf2[x] / uw[x])
                out[y, x] = np.float32(f0)
            else:
                tt1, tt2, e1v, e2v = _temporal_weights(mm1, mm2, True)
                f1c = np.float64(cf1[x]) - b1s[y, x] / nvx
                f2c = np.float64(cf2[x]) - b2s[y, x] / nvx
                out[y, x] = np.float32(tt1 * (f1c + e1v) + tt2 * (f2c + e2v))
    return out
