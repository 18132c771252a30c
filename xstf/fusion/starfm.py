"""STARFM (Gao et al. 2006) on an LST cube, lazily over dask.

See :doc:`/guide/estarfm` for the variant implemented and the choices made.
"""

from __future__ import annotations

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

__all__ = ["starfm"]


def _starfm_call(
    block: np.ndarray,
    stats: np.ndarray,
    *,
    w: int,
    factor: float,
    sigma_lm: float,
    sigma_mm: float,
    scale: float,
    eps: float,
) -> np.ndarray:
    from ._starfm_kernel import starfm_block

    th = np.array([as_float32_threshold(float(s) * factor) for s in stats], dtype=np.float32)
    return starfm_block(block, w, th, sigma_lm, sigma_mm, scale, eps)


@fill_doc
def starfm(
    ds: xr.Dataset,
    targets: Any = None,
    pairs: Any = None,
    *,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    n_pairs: int = 1,
    half_window: int = 25,
    num_class: float = 4,
    fine_uncertainty: float = 0.5,
    coarse_uncertainty: float = 0.5,
    distance_scale: float | None = None,
    epsilon: float = 0.01,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    rule: Literal["bracket", "nearest"] = "bracket",
    anchor: Literal["coarse"] | None = None,
    gain: float = 1.0,
    progress: bool | None = None,
) -> xr.DataArray:
    """Fuse fine and coarse LST with STARFM on the target dates.

    The fine image of each reference pair ``k`` plus the coarse change gives
    ``C_0 + F_k − C_k`` at every pixel; the prediction at a centre is the weighted mean
    of these over the similar pixels of a ``(2·half_window + 1)²`` window and over
    the pairs, with weights ``1 / (S·T·D)`` from the spectral difference
    ``S = |F_k − C_k|``, the temporal difference ``T = |C_0 − C_k|`` and the relative
    distance ``D = 1 + d / A`` (Gao et al. 2006). Similar pixels: valid, within
    ``std(F_k)·2/num_class`` of the centre in ``F_k`` (``<=``), and better than the
    centre (``S < max_k S_centre + σ_lm``, ``T < max_k T_centre + σ_mm``).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (``(time, y, x)``, Kelvin; see :doc:`/cube`).
    targets : datetime-like or sequence, optional
        Dates to predict; default :func:`xstf.cube.target_dates`. A pair date is
        predicted from the other pairs (leave-one-out).
    pairs : sequence of datetime-like, optional
        Dates to choose the reference pairs from; default :func:`xstf.cube.pair_dates`.
    fine, coarse : hashable
        Variable names.
    n_pairs : int
        Reference pairs per target (1 or 2 are usual; chosen by ``rule``).
    half_window : int
        Half window ``w`` in fine pixels.
    num_class : float
        Estimated number of classes in the similarity threshold.
    fine_uncertainty, coarse_uncertainty : float
        Uncertainty (K) of the fine and coarse LST; ``σ_lm = sqrt(σ_l² + σ_m²)``,
        ``σ_mm = sqrt(2)·σ_m``. Must be > 0 (then the centre is always a candidate).
    distance_scale : float, optional
        ``A`` in pixels; default ``half_window``.
    epsilon : float
        Added to ``S`` and ``T`` (K) in the weights so a zero difference gives a
        large finite weight.
    min_coverage : float
        Share of valid pixels for a date to count as observed.
    %(rule)s
    %(anchor)s
    %(progress_dates)s

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` float32 LST in K, NaN where a pixel is missing in the target's
        coarse image or in any reference pair; coordinates ``reference_pair_1``..
        ``reference_pair_<n_pairs>`` along ``time``; attrs ``method`` and ``parameters`` (JSON). Lazy (dask) when
        the cube is.

    Raises
    ------
    CubeError
        Not a valid cube, too few pairs, dates not in the cube, no target date, a window
        larger than the scene.
    ValueError, TypeError
        Bad parameters.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=40, seed=3)
    >>> pred = xstf.starfm(ds, targets=ds.time[20], half_window=5, n_pairs=2)
    >>> pred.attrs["method"], "reference_pair_2" in pred.coords
    ('STARFM', True)
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ValueError(f"n_pairs must be an int >= 1, got {n_pairs!r}")
    if num_class <= 0:
        raise ValueError(f"num_class must be > 0, got {num_class}")
    if not (fine_uncertainty > 0 and coarse_uncertainty > 0):
        raise ValueError(
            "fine_uncertainty and coarse_uncertainty must be > 0 K, got "
            f"{fine_uncertainty}, {coarse_uncertainty}"
        )
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 K, got {epsilon}")
    targets_idx, pairs_idx = resolve_dates(
        ds, fine, coarse, targets, pairs, min_coverage, int(n_pairs), "STARFM"
    )
    w = check_half_window(ds, half_window)
    scale = float(w if distance_scale is None else distance_scale)
    if not scale > 0:
        raise ValueError(f"distance_scale must be > 0 pixels, got {distance_scale}")
    sigma_lm = float(np.hypot(fine_uncertainty, coarse_uncertainty))
    sigma_mm = float(np.sqrt(2.0) * coarse_uncertainty)
    times = pd.DatetimeIndex(ds["time"].values)
    fdata = ds[fine].data
    cdata = ds[coarse].data
    stds: dict[pd.Timestamp, Any] = {}
    results, used = [], []
    lazy = any(_is_dask(ds[v].data) for v in (fine, coarse))
    for t in progress_dates(targets_idx, "STARFM", progress, lazy):
        chosen = _cube.reference_pairs(pairs_idx, t, n=int(n_pairs), rule=rule)
        layers = [cdata[times.get_loc(t)]]
        for p in chosen:
            i = times.get_loc(p)
            if p not in stds:
                stds[p] = scene_std(fdata[i])
            layers += [fdata[i], cdata[i]]
        results.append(
            run_kernel(
                _starfm_call,
                layers,
                w,
                [stds[p] for p in chosen],
                w=w,
                factor=2.0 / float(num_class),
                sigma_lm=sigma_lm,
                sigma_mm=sigma_mm,
                scale=scale,
                eps=float(epsilon),
            )
        )
        used.append(chosen)
    params = {
        "n_pairs": int(n_pairs),
        "half_window": w,
        "num_class": float(num_class),
        "fine_uncertainty": float(fine_uncertainty),
        "coarse_uncertainty": float(coarse_uncertainty),
        "distance_scale": scale,
        "epsilon": float(epsilon),
        "min_coverage": float(min_coverage),
        "rule": rule,
        "fine": str(fine),
        "coarse": str(coarse),
    }
    from ..anchor import anchor_result

    out = wrap_prediction(results, ds, targets_idx, "STARFM", params, used, coarse)
    return anchor_result(ds, out, anchor, gain, coarse)
