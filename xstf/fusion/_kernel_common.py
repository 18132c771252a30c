"""Pieces shared by the numba kernels of the local fusion methods.

The kernels (:mod:`._estarfm_kernel`, :mod:`._starfm_kernel`, :mod:`._fitfc_kernel`)
work on one padded block whose border is the halo (NaN beyond the scene). Shared here:
the fastmath flag sets, the stand-in for a missing fine value, the all-layers-finite
mask, the table of window distances, the separable box sum, the partial-sum rows and
:func:`window_sums`, the (register-blocked) pass over the window that every sum of the
ESTARFM and ubESTARFM kernels goes through, with the ``column*`` helpers it moves
tuples of values with.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# No "nnan"/"ninf": missing pixels are handled explicitly, but be safe with NaN inputs.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
#: Without "reassoc", LLVM keeps the summation order written in the source, so the
#: register-blocked sums of :func:`window_sums` add their terms one window column at a
#: time, as a loop over one column per sweep would.
FASTMATH_ORDERED = {"contract", "arcp", "nsz"}
#: Stand-in for a missing fine value: never within a threshold of a real centre value.
SENTINEL = np.float32(1.0e30)
#: Window columns summed per sweep of the innermost loop (partial sums held in registers);
#: :func:`window_sums` builds tuples of this many distances.
UNROLL = 8


@njit(nogil=True, cache=True)
def finite_layers(block: np.ndarray) -> np.ndarray:
    """``(h, w)`` mask of the pixels finite in every layer of a ``(n, h, w)`` block."""
    n, h, wd = block.shape
    ok = np.ones((h, wd), np.bool_)
    for i in range(h):
        for j in range(wd):
            for p in range(n):
                if not np.isfinite(block[p, i, j]):
                    ok[i, j] = False
                    break
    return ok


@njit(nogil=True, cache=True)
def distance_table(w: int, scale: float) -> np.ndarray:
    """``d = 1 + sqrt(dy² + dx²) / scale`` for every offset of a ``(2w+1)²`` window (float32)."""
    k = 2 * w + 1
    out = np.empty((k, k), np.float32)
    for r in range(k):
        for c in range(k):
            dy = np.float64(r - w)
            dx = np.float64(c - w)
            out[r, c] = np.float32(1.0 + np.sqrt(dy * dy + dx * dx) / scale)
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
def scratch_rows(nx: int):
    """Five float32 rows for a pass's partial sums (:func:`window_sums`' ``part``).

    Separate allocations, not the rows of one array: LLVM then knows they do not
    overlap and vectorises the loops that load and store them without runtime checks.
    """
    return (
        np.empty(nx, np.float32),
        np.empty(nx, np.float32),
        np.empty(nx, np.float32),
        np.empty(nx, np.float32),
        np.empty(nx, np.float32),
    )


@njit(nogil=True, cache=True)
def column2(p, i):
    """``p[0][i], p[1][i]``: item ``i`` of each of a tuple of arrays, as a tuple."""
    return p[0][i], p[1][i]


@njit(nogil=True, cache=True)
def set_column2(p, i, s) -> None:
    """Store a tuple from :func:`column2` back."""
    p[0][i], p[1][i] = s


@njit(nogil=True, cache=True)
def column3(p, i):
    """``p[0][i] ... p[2][i]`` as a tuple."""
    return p[0][i], p[1][i], p[2][i]


@njit(nogil=True, cache=True)
def set_column3(p, i, s) -> None:
    """Store a tuple from :func:`column3` back."""
    p[0][i], p[1][i], p[2][i] = s


@njit(nogil=True, cache=True)
def column4(p, i):
    """``p[0][i] ... p[3][i]`` as a tuple (the centre values of :func:`window_sums`)."""
    return p[0][i], p[1][i], p[2][i], p[3][i]


@njit(nogil=True, cache=True)
def column5(p, i):
    """``p[0][i] ... p[4][i]`` as a tuple."""
    return p[0][i], p[1][i], p[2][i], p[3][i], p[4][i]


@njit(nogil=True, cache=True)
def set_column5(p, i, s) -> None:
    """Store a tuple from :func:`column5` back."""
    p[0][i], p[1][i], p[2][i], p[3][i], p[4][i] = s


@njit(nogil=True, cache=True)
def column8(p, i):
    """``p[0][i] ... p[7][i]`` as a tuple (the window rows of :func:`window_sums`)."""
    return p[0][i], p[1][i], p[2][i], p[3][i], p[4][i], p[5][i], p[6][i], p[7][i]


@njit(inline="always")
def window_sums(step, load, store, tot, part, pass_in, y, lo, hi, blocked):
    """Sums over the window of the centres ``lo..hi`` of output row ``y``, into ``tot``.

    ``step(s, rows, j, cx, th1, th2, dd)`` returns a centre's sums ``s`` (a tuple)
    plus pixel ``j`` of the window row ``rows`` (the row of each of the 8 ``planes``,
    the block's per-pixel arrays; ``dd``: the pixel's distance; ``cx``: the centre's
    values in the 4 arrays ``cen``); ``load``/``store`` (:func:`column5` and
    :func:`set_column5`, or 2, 3) move ``s`` between registers and the float32 partial
    sums of one window row (``part``, rows from :func:`scratch_rows`), whose float64
    totals are ``tot`` (``len(tot)`` sums). ``pass_in`` = ``(planes, cen, th1, th2,
    dist)``: what all the passes of a kernel read, ``dist`` from :func:`distance_table`.

    The innermost loop runs over the centres (vectorised). With ``blocked``, each
    sweep of it takes ``UNROLL`` window columns, so a centre's partial sums stay in
    registers over them (the distances are loaded before the sweep: inside it LLVM
    would have to reload them); otherwise one column per sweep (the steps of
    ubESTARFM are compiled with "reassoc", under which LLVM could reorder a sum held
    in registers). Inlined (numba IR), so the loops run with the caller's fastmath flags;
    ``step``, ``load`` and ``store`` are small functions compiled with their own and
    inlined by LLVM.
    """
    planes, cen, th1, th2, dist = pass_in
    k = dist.shape[0]
    kb = k - k % UNROLL if blocked else 0  # window columns summed UNROLL at a time
    ns = tot.shape[0]
    ulo = np.uint64(lo)
    uhi = np.uint64(hi + 1)
    tot[:, lo : hi + 1] = 0.0
    for r in range(k):
        yr = y + r
        for i in range(ns):
            part[i][lo : hi + 1] = 0.0
        rows = column8(planes, yr)
        drow = dist[r]
        for c in range(0, kb, UNROLL):  # UNROLL = 8 window columns per sweep of the row
            uc = np.uint64(c)
            dd0, dd1, dd2, dd3 = drow[c], drow[c + 1], drow[c + 2], drow[c + 3]
            dd4, dd5, dd6, dd7 = drow[c + 4], drow[c + 5], drow[c + 6], drow[c + 7]
            for x in range(ulo, uhi):
                j = x + uc
                cx = column4(cen, x)
                s = load(part, x)
                s = step(s, rows, j, cx, th1, th2, dd0)
                s = step(s, rows, j + np.uint64(1), cx, th1, th2, dd1)
                s = step(s, rows, j + np.uint64(2), cx, th1, th2, dd2)
                s = step(s, rows, j + np.uint64(3), cx, th1, th2, dd3)
                s = step(s, rows, j + np.uint64(4), cx, th1, th2, dd4)
                s = step(s, rows, j + np.uint64(5), cx, th1, th2, dd5)
                s = step(s, rows, j + np.uint64(6), cx, th1, th2, dd6)
                s = step(s, rows, j + np.uint64(7), cx, th1, th2, dd7)
                store(part, x, s)
        for c in range(kb, k):  # the other columns, one at a time
            uc = np.uint64(c)
            dd = drow[c]
            for x in range(ulo, uhi):
                s = step(load(part, x), rows, x + uc, column4(cen, x), th1, th2, dd)
                store(part, x, s)
        for i in range(ns):
            p = part[i]
            for x in range(lo, hi + 1):
                tot[i, x] += p[x]
