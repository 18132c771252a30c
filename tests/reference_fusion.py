"""Slow, plain-numpy ESTARFM / ubESTARFM / STARFM, written from the published descriptions.

Independent of the numba kernels (pixel loops, float64, scipy for the regression
test) and kept deliberately simple: it is the yardstick the kernels are checked
against on small scenes. Steps follow Zhu et al. (2010) as released in Zhu's IDL code
(see docs/guide/estarfm.md), Yu et al. (2023) for the bias correction and Gao et al.
(2006) for STARFM.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _window(i: int, j: int, w: int, ny: int, nx: int):
    a, b = max(0, i - w), min(ny, i + w + 1)
    c, d = max(0, j - w), min(nx, j + w + 1)
    yy, xx = np.mgrid[a:b, c:d]
    return (slice(a, b), slice(c, d)), yy, xx


def estarfm_reference(
    f1, c1, f2, c2, c0, w, num_class=4.0, dn_min=200.0, dn_max=400.0, bias_correction=False
):
    """Return ``(prediction, info)``; ``info`` counts the branches taken (for test coverage)."""
    f1, c1, f2, c2, c0 = (np.asarray(a, dtype=np.float64) for a in (f1, c1, f2, c2, c0))
    ny, nx = f1.shape
    valid = np.isfinite(f1) & np.isfinite(c1) & np.isfinite(f2) & np.isfinite(c2) & np.isfinite(c0)
    factor = 1.0 if bias_correction else 2.0 / num_class
    th1 = np.nanstd(f1, ddof=1) * factor
    th2 = np.nanstd(f2, ddof=1) * factor
    out = np.full((ny, nx), np.nan)
    info = {
        "many": 0,
        "few": 0,
        "v_tested": 0,
        "v_accepted": 0,
        "v_too_steep": 0,
        "fallback": 0,
        "abnormal_r": 0,
    }
    for i in range(ny):
        for j in range(nx):
            if not valid[i, j]:
                continue
            sl, yy, xx = _window(i, j, w, ny, nx)
            wv = valid[sl]
            W1, W2, V1, V2, V0 = f1[sl], f2[sl], c1[sl], c2[sl], c0[sl]
            with np.errstate(invalid="ignore"):
                cand = wv & (np.abs(W1 - f1[i, j]) < th1) & (np.abs(W2 - f2[i, j]) < th2)
            n = int(cand.sum())
            mean0 = V0[wv].mean()
            mean1 = V1[wv].mean()
            mean2 = V2[wv].mean()
            if n > 5:
                info["many"] += 1
                fc1, fc2 = W1[cand], W2[cand]
                cc1, cc2, cc0 = V1[cand], V2[cand], V0[cand]
                centre1, centre2 = f1[i, j], f2[i, j]
                if bias_correction:
                    b1 = fc1.mean() - cc1.mean()
                    b2 = fc2.mean() - cc2.mean()
                    fc1, fc2 = fc1 - b1, fc2 - b2
                    centre1, centre2 = centre1 - b1, centre2 - b2
                with np.errstate(invalid="ignore", divide="ignore"):
                    r = 1.0 - 0.5 * (
                        np.abs((fc1 - cc1) / (fc1 + cc1)) + np.abs((fc2 - cc2) / (fc2 + cc2))
                    )
                info["abnormal_r"] += int(np.sum(np.isfinite(r) & (r < -1.0)))
                r[~np.isfinite(r) | (r > 1.0) | (r < -1.0)] = 0.5
                d = 1.0 + np.sqrt((yy[cand] - i) ** 2 + (xx[cand] - j) ** 2) / w
                dd = (1.0 - r) * d + 1e-7
                weight = (1.0 / dd) / np.sum(1.0 / dd)
                v = 1.0
                if not bias_correction and abs(cc1.mean() - cc2.mean()) >= 0.02 * dn_max:
                    info["v_tested"] += 1
                    fit = stats.linregress(np.r_[cc1, cc2], np.r_[W1[cand], W2[cand]])
                    # simple regression: the slope's t-test p-value is the F-test p-value
                    info["v_too_steep"] += int(fit.pvalue <= 0.05 and fit.slope > 5.0)
                    if fit.pvalue <= 0.05 and 0.0 < fit.slope <= 5.0:
                        v = fit.slope
                        info["v_accepted"] += 1
                t1 = 1.0 / (abs(mean0 - mean1) + 1e-10)
                t2 = 1.0 / (abs(mean0 - mean2) + 1e-10)
                t1, t2 = t1 / (t1 + t2), t2 / (t1 + t2)
                p1 = centre1 + np.sum(weight * v * (cc0 - cc1))
                p2 = centre2 + np.sum(weight * v * (cc0 - cc2))
                pred = t1 * p1 + t2 * p2
                if pred <= dn_min or pred >= dn_max:
                    info["fallback"] += 1
                    pred = t1 * np.sum(weight * fc1) + t2 * np.sum(weight * fc2)
            else:
                info["few"] += 1
                e1 = mean0 - mean1 + 1e-10
                e2 = mean0 - mean2 + 1e-10
                centre1, centre2 = f1[i, j], f2[i, j]
                if bias_correction:
                    centre1 = centre1 - W1[wv].mean() + V1[wv].mean()
                    centre2 = centre2 - W2[wv].mean() + V2[wv].mean()
                t1, t2 = 1.0 / abs(e1), 1.0 / abs(e2)
                t1, t2 = t1 / (t1 + t2), t2 / (t1 + t2)
                pred = t1 * (centre1 + e1) + t2 * (centre2 + e2)
            out[i, j] = pred
    return out, info


def starfm_reference(
    c0, pairs, w, num_class=4.0, fine_uncertainty=0.5, coarse_uncertainty=0.5, scale=None, eps=0.01
):
    """STARFM (Gao et al. 2006) with ``pairs = [(F_1, C_1), ...]``; returns ``(prediction, info)``.

    ``info["filtered"]`` counts similar pixels rejected by the "better than the centre"
    filters (for test coverage).
    """
    c0 = np.asarray(c0, dtype=np.float64)
    pairs = [(np.asarray(f, np.float64), np.asarray(c, np.float64)) for f, c in pairs]
    ny, nx = c0.shape
    scale = float(w) if scale is None else scale
    s_lm = np.sqrt(fine_uncertainty**2 + coarse_uncertainty**2)
    s_mm = np.sqrt(2.0) * coarse_uncertainty
    ths = [np.nanstd(f, ddof=1) * 2.0 / num_class for f, _ in pairs]
    valids = [np.isfinite(f) & np.isfinite(c) & np.isfinite(c0) for f, c in pairs]
    out = np.full((ny, nx), np.nan)
    info = {"filtered": 0}
    for i in range(ny):
        for j in range(nx):
            if not all(v[i, j] for v in valids):
                continue
            smax = max(abs(f[i, j] - c[i, j]) for f, c in pairs)
            tmax = max(abs(c0[i, j] - c[i, j]) for _, c in pairs)
            sl, yy, xx = _window(i, j, w, ny, nx)
            d = 1.0 + np.sqrt((yy - i) ** 2 + (xx - j) ** 2) / scale
            num = den = 0.0
            for (f, c), th, v in zip(pairs, ths, valids, strict=True):
                fw, cw, c0w = f[sl], c[sl], c0[sl]
                s = np.abs(fw - cw)
                t = np.abs(c0w - cw)
                with np.errstate(invalid="ignore"):
                    similar = v[sl] & (np.abs(fw - f[i, j]) <= th)
                    cand = similar & (s < smax + s_lm) & (t < tmax + s_mm)
                info["filtered"] += int(similar.sum() - cand.sum())
                wt = 1.0 / ((s[cand] + eps) * (t[cand] + eps) * d[cand])
                num += np.sum(wt * (c0w[cand] + fw[cand] - cw[cand]))
                den += np.sum(wt)
            out[i, j] = num / den
    return out, info


# -- small test scenes ------------------------------------------------------------------------


def make_scene(ny=30, nx=40, seed=0, clouds=True):
    """Five float32 layers ``F1, C1, F2, C2, C0`` (K) exercising every ESTARFM branch.

    Three interleaved patch classes, a coarse layer that is a smoothed fine layer, a
    coarse change of 10 K between the pairs (so the V gate passes with DN_max = 400)
    with a fine change of -4 K on the left (V rejected: negative slope) and +12 K on
    the right (V accepted), and clouds (NaN) in different layers, touching the edges.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    cls = (xx // 7 + yy // 5) % 3
    f1 = np.array([285.0, 292.0, 298.0])[cls] + rng.normal(0, 0.7, (ny, nx))
    c1 = ndimage.uniform_filter(f1, 9, mode="nearest") + 0.5 + rng.normal(0, 0.2, (ny, nx))
    df = np.where(xx < nx // 2, -4.0, 12.0) + 1.5 * cls + rng.normal(0, 0.5, (ny, nx))
    f2 = f1 + df
    c2 = c1 + 10.0 + rng.normal(0, 0.3, (ny, nx))
    c0 = c1 + 0.3 * (c2 - c1) + 2.0 * np.sin(xx / 6.0) + rng.normal(0, 0.2, (ny, nx))
    if clouds:
        f1[(yy - 8) ** 2 + (xx - 10) ** 2 < 12] = np.nan
        c2[20:24, 25:31] = np.nan
        c0[:3, -5:] = np.nan
        f2[rng.uniform(size=(ny, nx)) < 0.03] = np.nan
    return [a.astype(np.float32) for a in (f1, c1, f2, c2, c0)]


def scene_cube(layers, chunks=None):
    """A 3-date cube: pair 2021-01-01 (F1, C1), target 2021-01-09 (C0), pair 2021-01-17."""
    import pandas as pd
    import xarray as xr

    f1, c1, f2, c2, c0 = layers
    ny, nx = f1.shape
    nan = np.full_like(f1, np.nan)
    fine = np.stack([f1, nan, f2])
    coarse = np.stack([c1, c0, c2])
    time = pd.to_datetime(["2021-01-01", "2021-01-09", "2021-01-17"])
    coords = {"time": time, "y": 5000.0 - 30.0 * np.arange(ny), "x": 100.0 + 30.0 * np.arange(nx)}
    ds = xr.Dataset(
        {
            "fine": (("time", "y", "x"), fine, {"units": "K"}),
            "coarse": (("time", "y", "x"), coarse, {"units": "K"}),
        },
        coords=coords,
    )
    return ds if chunks is None else ds.chunk(chunks)
