"""ESTARFM (Zhu et al. 2010) and ubESTARFM (Yu et al. 2023) on an LST cube, lazily over dask.

See :doc:`/guide/estarfm` for the algorithm, the choices made where the reference code
and the paper differ, and speed figures.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from .. import cube as _cube
from .._docs import fill_doc
from ..prediction import resolve_dates, wrap_prediction
from ._common import (
    _is_dask,
    as_float32_threshold,
    check_half_window,
    progress_dates,
    run_kernel,
    scene_std,
)

__all__ = ["estarfm", "f_critical"]


@functools.lru_cache(maxsize=16)
def f_critical(max_df: int, alpha: float = 0.05) -> np.ndarray:
    """Critical values of the F(1, df) distribution, for df = 0..max_df.

    ``f_critical(n)[df]`` is the F statistic above which a regression slope fitted on
    ``df + 2`` points is significant at level ``alpha`` (``p <= alpha``); index 0 is
    ``inf`` (no test possible). Precomputed once so the kernel never calls scipy.

    Parameters
    ----------
    max_df : int
        Largest number of residual degrees of freedom needed.
    alpha : float
        Significance level.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(max_df + 1,)``.

    Examples
    --------
    >>> round(float(f_critical(10)[10]), 3)
    4.965
    """
    from scipy import stats

    df = np.arange(max_df + 1, dtype=np.float64)
    out = np.full(max_df + 1, np.inf)
    out[1:] = stats.f.isf(alpha, 1, df[1:])
    out.setflags(write=False)
    return out


def _estarfm_call(
    block: np.ndarray,
    stats: np.ndarray,
    *,
    w: int,
    factor: float,
    dn_min: float,
    dn_max: float,
    bias_correction: bool,
) -> np.ndarray:
    from ._estarfm_kernel import estarfm_block, ubestarfm_block

    th1 = as_float32_threshold(float(stats[0]) * factor)
    th2 = as_float32_threshold(float(stats[1]) * factor)
    if bias_correction:
        return ubestarfm_block(block, w, th1, th2, dn_min, dn_max)
    fcrit = f_critical(2 * (2 * w + 1) ** 2)
    return estarfm_block(block, w, th1, th2, dn_min, dn_max, 0.02 * dn_max, fcrit)


@fill_doc
def estarfm(
    ds: xr.Dataset,
    targets: Any = None,
    pairs: Any = None,
    *,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    half_window: int = 25,
    num_class: float = 4,
    dn_range: tuple[float, float] = (200.0, 400.0),
    bias_correction: bool = False,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    rule: Literal["bracket", "nearest"] = "bracket",
    anchor: Literal["coarse"] | None = None,
    gain: float = 1.0,
    progress: bool | None = None,
) -> xr.DataArray:
    """Fuse fine and coarse LST with ESTARFM (or ubESTARFM) on the target dates.

    For each target date, the two reference pairs chosen by
    :func:`xstf.cube.reference_pairs` (nearest before and after by default) give two
    predictions, ``F_k(centre) + Σ W·V·(C_0 − C_k)`` over the spectrally similar
    pixels of a ``(2·half_window + 1)²`` window, blended with temporal weights from
    the local coarse change (Zhu et al. 2010). With ``bias_correction=True`` this is
    ubESTARFM (Yu et al. 2023): the local fine–coarse bias of each pair is removed
    and ``V = 1``. The per-pixel work is a numba kernel run over dask chunks with a
    halo of ``half_window`` pixels, so the result does not depend on the chunking.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (``(time, y, x)``, Kelvin; see :doc:`/cube`).
    targets : datetime-like or sequence, optional
        Dates to predict. Default: :func:`xstf.cube.target_dates` (usable coarse, no
        usable fine). A pair date is allowed: it is then predicted from the other pairs
        (leave-one-out), which can be scored against the observed fine image.
    pairs : sequence of datetime-like, optional
        Dates the reference pairs are chosen from. Default:
        :func:`xstf.cube.pair_dates`. With more than two, each target uses the two
        chosen by ``rule``.
    fine, coarse : hashable
        Variable names.
    half_window : int
        Half window ``w`` in fine pixels (window ``2w + 1``); 25 is the reference's
        51 × 51 (1.5 km at 30 m).
    num_class : float
        Estimated number of land-cover classes: the similarity threshold of a pair is
        ``std(F_k) · 2 / num_class`` (ESTARFM only; ubESTARFM uses ``std(F_k)``).
    dn_range : (float, float)
        ``(DN_min, DN_max)`` in K. A prediction ``<= DN_min`` or ``>= DN_max`` is
        replaced by the weighted mean of the similar fine pixels; the conversion
        coefficient is estimated only where the candidates' mean coarse change between
        the pairs is at least ``0.02 · DN_max`` (8 K with the default 400 K).
    bias_correction : bool
        ubESTARFM instead of ESTARFM.
    %(min_coverage)s
    %(rule)s
    %(anchor)s
    %(progress_dates)s

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` float32 LST in K on the target dates, NaN where a pixel is
        missing in the target's coarse image or in either reference pair. Coordinates
        ``reference_pair_1`` and ``reference_pair_2`` (along ``time``) hold the two pair
        dates used for each date; attrs ``method`` and ``parameters`` (JSON). Lazy (dask) when the cube is.

    Raises
    ------
    CubeError
        Not a valid cube, fewer than two usable pairs (the message lists them), a date
        not in the cube, no target date, a window larger than the scene.
    ValueError, TypeError
        Bad parameters.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=40, seed=3)
    >>> pred = xstf.estarfm(ds, targets=ds.time[20], half_window=5)
    >>> pred.dims, pred.attrs["method"]
    (('time', 'y', 'x'), 'ESTARFM')
    >>> str(pred.reference_pair_1.values[0])[:10], str(pred.reference_pair_2.values[0])[:10]
    ('2021-01-01', '2021-01-17')
    """
    if num_class <= 0:
        raise ValueError(f"num_class must be > 0, got {num_class}")
    try:
        dn_min, dn_max = (float(v) for v in dn_range)
    except (TypeError, ValueError):
        raise TypeError(f"dn_range must be a pair of numbers (K), got {dn_range!r}") from None
    if not dn_min < dn_max:
        raise ValueError(f"dn_range must be (DN_min, DN_max) with DN_min < DN_max, got {dn_range}")
    method = "ubESTARFM" if bias_correction else "ESTARFM"
    targets_idx, pairs_idx = resolve_dates(
        ds, fine, coarse, targets, pairs, min_coverage, 2, method
    )
    w = check_half_window(ds, half_window)
    times = pd.DatetimeIndex(ds["time"].values)
    fdata = ds[fine].data
    cdata = ds[coarse].data
    stds: dict[pd.Timestamp, Any] = {}
    results, used = [], []
    factor = 1.0 if bias_correction else 2.0 / float(num_class)
    lazy = any(_is_dask(ds[v].data) for v in (fine, coarse))
    for t in progress_dates(targets_idx, method, progress, lazy):
        p1, p2 = _cube.reference_pairs(pairs_idx, t, n=2, rule=rule)
        i1, i2, i0 = times.get_loc(p1), times.get_loc(p2), times.get_loc(t)
        for p, i in ((p1, i1), (p2, i2)):
            if p not in stds:
                stds[p] = scene_std(fdata[i])
        layers = [fdata[i1], cdata[i1], fdata[i2], cdata[i2], cdata[i0]]
        results.append(
            run_kernel(
                _estarfm_call,
                layers,
                w,
                [stds[p1], stds[p2]],
                w=w,
                factor=factor,
                dn_min=dn_min,
                dn_max=dn_max,
                bias_correction=bool(bias_correction),
            )
        )
        used.append([p1, p2])
    params = {
        "half_window": w,
        "num_class": float(num_class),
        "dn_range": [dn_min, dn_max],
        "bias_correction": bool(bias_correction),
        "min_coverage": float(min_coverage),
        "rule": rule,
        "fine": str(fine),
        "coarse": str(coarse),
    }
    from ..anchor import anchor_result

    out = wrap_prediction(results, ds, targets_idx, method, params, used, coarse)
    return anchor_result(ds, out, anchor, gain, coarse)
