"""FitFC (Wang & Atkinson 2018) on an LST cube, lazily over dask.

Regression model fitting, spatial filtering and residual compensation: the change
between the reference pair's date and the target is a local linear regression of the
target's own coarse image on the pair's (``C_0 ≈ a·C_k + b`` in a moving window),
applied to the pair's fine image; the result is smoothed over the spectrally similar
neighbours of each pixel and the coarse residual ``C_0 - (a·C_k + b)`` is added back.
See :doc:`/guide/fitfc` for where this departs from the paper for LST on the cube's
grid.
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
from ._common import _is_dask, check_half_window, progress_dates, run_kernel

__all__ = ["fitfc"]


def _fitfc_call(
    block: np.ndarray, stats: np.ndarray, *, rw: int, sw: int, n_similar: int
) -> np.ndarray:
    from ._fitfc_kernel import fitfc_block

    return fitfc_block(block, rw, sw, n_similar)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


@fill_doc
def fitfc(
    ds: xr.Dataset,
    targets: Any = None,
    pairs: Any = None,
    *,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    half_window: int = 15,
    n_similar: int = 30,
    regression_window: int | None = None,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    progress: bool | None = None,
    anchor: Literal["coarse"] | None = None,
    gain: float = 1.0,
) -> xr.DataArray:
    """Fuse fine and coarse LST with FitFC on the target dates.

    For each target date, the nearest reference pair ``(F_k, C_k)`` (one pair: FitFC
    is a single-pair method) and the target's own coarse image ``C_0`` give
    (Wang & Atkinson 2018):

    1. **regression model fitting**: ``a``, ``b`` of ``C_0 ≈ a·C_k + b`` by least
       squares over the valid pixels of a ``(2·regression_window + 1)²`` window
       around each pixel, and ``F_RM = a·F_k + b``;
    2. **spatial filtering**: the weighted mean of ``F_RM`` over the ``n_similar``
       pixels of a ``(2·half_window + 1)²`` window with the closest ``F_k`` to the
       centre's, weights ``1 / (1 + d / ((2·half_window + 1) / 2))`` (``d``: distance
       in pixels), normalised;
    3. **residual compensation**: plus ``C_0 − (a·C_k + b)`` at the pixel.

    The target's coarse image drives the result (not only the pairs'), so class
    responses that diverge on the target date are followed. The per-pixel work is a
    numba kernel run over dask chunks with a halo of ``regression_window +
    half_window`` pixels, so the result does not depend on the chunking.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (``(time, y, x)``, Kelvin; see :doc:`/cube`).
    targets : datetime-like or sequence, optional
        Dates to predict. Default: :func:`xstf.cube.target_dates`. A pair date is
        allowed: it is predicted from the nearest other pair (leave-one-out).
    pairs : sequence of datetime-like, optional
        Dates the reference pair is chosen from (the nearest in time to each target;
        ties: the earlier). Default: :func:`xstf.cube.pair_dates`.
    fine, coarse : hashable
        Variable names.
    half_window : int
        Half window of the spatial filter in fine pixels; 15 (31 × 31) is the paper's.
    n_similar : int
        Similar pixels of the spatial filter (the paper: 30); all valid pixels of the
        window where fewer.
    regression_window : int, optional
        Half window of the local regression in fine pixels. Default: 1.5 coarse pixels
        (``round(1.5 · ratio)``, :func:`xstf.cube.resolution_ratio`), i.e. a window of
        about 3 × 3 coarse pixels.
    %(min_coverage)s
    %(progress_dates)s
    %(anchor)s

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` float32 LST in K on the target dates, NaN where a pixel is
        missing in the target's coarse image or in the reference pair. Coordinate
        ``reference_pair_1`` (along ``time``) holds the pair used for each date; attrs
        ``method`` (``"FitFC"``) and ``parameters`` (JSON). Lazy (dask) when the cube is.

    Raises
    ------
    CubeError
        Not a valid cube, no usable pair, a date not in the cube, a target with no valid
        coarse pixel, no target date, a window larger than the scene.
    ValueError, TypeError
        Bad parameters.

    Examples
    --------
    >>> import xstf
    >>> from xstf.fusion.fitfc import fitfc
    >>> ds = xstf.datasets.synthetic(size=48, days=40, seed=3)
    >>> pred = fitfc(ds, targets=ds.time[20], half_window=4, regression_window=6)
    >>> pred.dims, pred.attrs["method"], str(pred.reference_pair_1.values[0])[:10]
    (('time', 'y', 'x'), 'FitFC', '2021-01-17')
    """
    sw = check_half_window(ds, half_window)
    n_sim = _check_int(n_similar, "n_similar", 1)
    if regression_window is None:
        rw = max(1, round(1.5 * _cube.resolution_ratio(ds)))
        rw = min(rw, (min(ds.sizes["y"], ds.sizes["x"]) - 1) // 2)
    else:
        rw = check_half_window(
            ds, _check_int(regression_window, "regression_window", 1), "regression_window"
        )
    targets_idx, pairs_idx = resolve_dates(
        ds, fine, coarse, targets, pairs, min_coverage, 1, "FitFC"
    )
    times = pd.DatetimeIndex(ds["time"].values)
    fdata = ds[fine].data
    cdata = ds[coarse].data
    results, used = [], []
    lazy = any(_is_dask(ds[v].data) for v in (fine, coarse))
    for t in progress_dates(targets_idx, "FitFC", progress, lazy):
        (p,) = _cube.reference_pairs(pairs_idx, t, n=1, rule="nearest")
        ik, i0 = times.get_loc(p), times.get_loc(t)
        layers = [fdata[ik], cdata[ik], cdata[i0]]
        results.append(run_kernel(_fitfc_call, layers, rw + sw, [], rw=rw, sw=sw, n_similar=n_sim))
        used.append([p])
    params = {
        "half_window": sw,
        "n_similar": n_sim,
        "regression_window": rw,
        "min_coverage": float(min_coverage),
        "fine": str(fine),
        "coarse": str(coarse),
    }
    from ..anchor import anchor_result

    out = wrap_prediction(results, ds, targets_idx, "FitFC", params, used, coarse)
    return anchor_result(ds, out, anchor, gain, coarse)
