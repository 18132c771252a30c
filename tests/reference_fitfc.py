"""Slow, plain-numpy FitFC (Wang & Atkinson 2018), written from the paper's description.

Independent of the numba kernel: pixel loops, float64, windows clipped at the scene
edges, two-pass means/variances (``np.mean``, ``np.var``) for the local regression and
a stable ``argsort`` for the similar pixels. The yardstick the kernel is checked
against on small scenes.
"""

from __future__ import annotations

import numpy as np

MIN_VARIANCE = 1e-6
MIN_POINTS = 3


def fitfc_reference(fk, ck, c0, rw, sw, n_similar):
    """FitFC prediction from one pair ``(fk, ck)`` and the target's coarse ``c0``.

    Returns ``(prediction, info)``; ``info`` counts the branches taken (slopes
    estimated, windows with fewer valid pixels than ``n_similar``), for test coverage.
    """
    fk, ck, c0 = (np.asarray(a, dtype=np.float64) for a in (fk, ck, c0))
    ny, nx = fk.shape
    valid = np.isfinite(fk) & np.isfinite(ck) & np.isfinite(c0)
    info = {"slope": 0, "flat": 0, "few_similar": 0}
    # 1. regression model fitting: C0 = a Ck + b over the valid pixels of each window
    frm = np.full((ny, nx), np.nan)
    res = np.full((ny, nx), np.nan)
    for i in range(ny):
        for j in range(nx):
            if not valid[i, j]:
                continue
            win = (slice(max(0, i - rw), i + rw + 1), slice(max(0, j - rw), j + rw + 1))
            m = valid[win]
            x, y = ck[win][m], c0[win][m]
            a = 1.0
            if x.size >= MIN_POINTS and np.var(x) > MIN_VARIANCE:
                a = np.mean((x - x.mean()) * (y - y.mean())) / np.var(x)
                info["slope"] += 1
            else:
                info["flat"] += 1
            b = y.mean() - a * x.mean()
            frm[i, j] = a * fk[i, j] + b
            res[i, j] = c0[i, j] - (a * ck[i, j] + b)
    # 2. spatial filtering over the similar pixels, 3. residual compensation
    out = np.full((ny, nx), np.nan)
    for i in range(ny):
        for j in range(nx):
            if not valid[i, j]:
                continue
            r0, c0_ = max(0, i - sw), max(0, j - sw)
            win = (slice(r0, min(ny, i + sw + 1)), slice(c0_, min(nx, j + sw + 1)))
            yy, xx = np.mgrid[win]
            m = valid[win]
            diff = np.abs(fk[win][m] - fk[i, j])
            vals = frm[win][m]
            d = np.hypot(yy[m] - i, xx[m] - j)
            order = np.argsort(diff, kind="stable")[:n_similar]  # ties: scan order
            if m.sum() <= n_similar:
                info["few_similar"] += 1
            w = 1.0 / (1.0 + d[order] / ((2 * sw + 1) / 2.0))
            out[i, j] = np.sum(w * vals[order]) / np.sum(w) + res[i, j]
    return out, info
