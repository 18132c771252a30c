"""Level anchoring: take a prediction's coarse-scale level from the target date's MODIS.

On real scenes the MODIS–Landsat difference has a date-dependent level, and a
prediction built as ``F_k + (C_0 − C_k)`` carries the pair date's bias into the
target. Anchoring keeps only the method's sub-km *detail* and takes everything at
the MODIS scale and above from the target's own coarse image ``C_0``::

    out = C_0 + g · H(P − C_0),     H = 1 − L

with ``L`` a low-pass at the MODIS pixel scale and ``g ∈ [0, 1]`` a gain on the
detail. Equivalently ``out = L(C_0) + g·H(P) + (1 − g)·H(C_0)``: the low-pass of
``out`` is the target coarse's, its high-pass a blend of the method's and the
coarse image's own. Hence

- ``g = 0`` gives ``C_0`` exactly (coarse only, on the pixels the prediction covers);
- ``g = 1`` replaces the prediction's low-pass by the coarse one, and a prediction
  whose low-pass already equals the coarse one (it "matches MODIS at 1 km") is
  returned unchanged.

``L`` is a Gaussian of standard deviation ``sigma = SIGMA_PER_RATIO · ratio`` fine
pixels (``ratio`` = coarse / fine pixel size from the cube's attrs, 33.3 for
MODIS / Landsat), applied as a NaN-aware *normalised convolution*
``L(d) = G∗(d·m) / G∗m`` (``m`` the valid mask), so gaps and the scene border do not
bias it. See :doc:`/guide/which-method` for why a Gaussian of that width (it
matches, within a few per cent, how the ``coarse`` variable is made: area
aggregation to the MODIS grid, the sensor's blur and bicubic resampling back).
Lazy over dask with a halo of the filter radius; the result does not depend on
the chunking.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from . import cube as _cube

__all__ = ["SIGMA_PER_RATIO", "anchor", "anchor_result", "lowpass"]

#: Gaussian ``sigma`` of the MODIS-scale low-pass, in coarse pixels (× the resolution ratio).
SIGMA_PER_RATIO = 0.5
_TRUNCATE = 4.0


def _radius(sigma: float, truncate: float) -> int:
    return int(truncate * float(sigma) + 0.5)  # scipy.ndimage's own kernel radius


def lowpass(data: np.ndarray, sigma: float, truncate: float = _TRUNCATE) -> np.ndarray:
    """NaN-aware Gaussian low-pass over the last two axes (normalised convolution).

    ``L(d) = G∗(d·m) / G∗m`` with ``m`` the finite mask and zero padding outside the
    array, so a missing pixel or the border only reweights its neighbours. NaN where
    no valid pixel lies within the kernel radius.

    Parameters
    ----------
    data : numpy.ndarray
        ``(..., y, x)`` values, NaN where missing.
    sigma : float
        Gaussian standard deviation in pixels (> 0).
    truncate : float
        Kernel radius in ``sigma`` (as :func:`scipy.ndimage.gaussian_filter`).

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.full((8, 8), 3.0)
    >>> a[2, 3] = np.nan
    >>> float(np.nanmax(np.abs(lowpass(a, 2.0) - 3.0))) < 1e-12  # a constant stays constant
    True
    """
    from scipy import ndimage

    d = np.asarray(data, dtype=np.float64)
    m = np.isfinite(d)
    sig = (0.0,) * (d.ndim - 2) + (float(sigma), float(sigma))
    kw = dict(sigma=sig, mode="constant", cval=0.0, truncate=float(truncate))
    num = ndimage.gaussian_filter(np.where(m, d, 0.0), **kw)
    den = ndimage.gaussian_filter(m.astype(np.float64), **kw)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~(den > 1e-12)] = np.nan
    return out


def _anchor_block(
    pred: np.ndarray, coarse: np.ndarray, *, gain: float, sigma: float, truncate: float, fill: bool
) -> np.ndarray:
    p = np.asarray(pred)
    c = np.asarray(coarse, dtype=np.float64)
    d = p.astype(np.float64) - c
    detail = d - lowpass(d, sigma, truncate)
    out = c + gain * detail
    if fill:  # where only the prediction is missing: coarse only (what g = 0 gives)
        gap = ~np.isfinite(p) & np.isfinite(c)
        out[gap] = c[gap]
    return out.astype(p.dtype if np.issubdtype(p.dtype, np.floating) else np.float32)


def _ratio_of(*objs: Any) -> float | None:
    for o in objs:
        a = getattr(o, "attrs", {})
        if ("coarse_resolution" in a and "fine_resolution" in a) or "resolution_ratio" in a:
            return _cube.resolution_ratio(o)
    return None


def anchor(
    prediction: xr.DataArray,
    coarse: xr.DataArray | xr.Dataset,
    *,
    gain: float = 1.0,
    ratio: float | None = None,
    sigma: float | None = None,
    fill: bool = False,
    coarse_var: Hashable = "coarse",
    truncate: float = _TRUNCATE,
) -> xr.DataArray:
    """Anchor a prediction's coarse-scale level to the target dates' MODIS.

    ``out = C_0 + gain · (D − L(D))`` with ``D = P − C_0`` and ``L`` the NaN-aware
    Gaussian low-pass of :func:`lowpass` at the MODIS scale: the result's low-pass is
    the target coarse image's, its sub-km detail the prediction's (times ``gain``)
    plus ``(1 − gain)`` times the coarse image's own. ``gain=0`` returns the coarse
    image exactly; ``gain=1`` leaves unchanged a prediction whose low-pass already
    equals the coarse one. The target's own MODIS bias is *not* removed (nothing
    here can see it).

    Parameters
    ----------
    prediction : xarray.DataArray
        ``(time, y, x)`` predicted LST (K), NaN where missing.
    coarse : xarray.DataArray or xarray.Dataset
        The coarse LST on the fine grid (the cube's ``coarse``), or the cube itself
        (then ``coarse_var`` is used and the resolution ratio is read from its attrs).
        Selected at the prediction's dates.
    gain : float
        Gain ``g`` in ``[0, 1]`` on the method's sub-km detail.
    ratio : float, optional
        Coarse / fine pixel size; default from the attrs ``fine_resolution`` and
        ``coarse_resolution`` of ``coarse`` (or the prediction), else 1000 / 30.
    sigma : float, optional
        Low-pass standard deviation in fine pixels; default ``SIGMA_PER_RATIO · ratio``.
    fill : bool
        Where the prediction is missing but the coarse is not, return the coarse
        (coarse-only, what ``gain=0`` gives); default keeps those pixels NaN.
    coarse_var : hashable
        The coarse variable when ``coarse`` is a Dataset.
    truncate : float
        Kernel radius in ``sigma``; the dask halo is that radius.

    Returns
    -------
    xarray.DataArray
        The anchored prediction: the prediction's coords and attrs, plus attr
        ``anchor`` (JSON: gain, sigma, ratio, filter). NaN where the prediction or the
        coarse is missing (see ``fill``). Dask in -> dask out (lazy, chunk-invariant).

    Raises
    ------
    ValueError
        ``gain`` outside ``[0, 1]``, a non-positive ``sigma``/``ratio``, a prediction
        date missing from ``coarse``, or grids that differ.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=20, seed=1)
    >>> pred = ds.fine.isel(time=[0]) + 5.0  # a +5 K level error
    >>> out = xstf.anchor.anchor(pred, ds, gain=1.0)
    >>> m = ds.fine.isel(time=[0]).notnull() & ds.coarse.isel(time=[0]).notnull()
    >>> bool(abs(float((out - ds.coarse.isel(time=[0])).where(m).mean())) < 0.5)
    True
    >>> bool((xstf.anchor.anchor(pred, ds, gain=0.0) == ds.coarse.isel(time=[0])).where(m, True).all())
    True
    """
    if not isinstance(prediction, xr.DataArray):
        raise TypeError(f"prediction must be an xarray.DataArray, got {type(prediction).__name__}")
    g = float(gain)
    if not 0.0 <= g <= 1.0:
        raise ValueError(
            f"gain must be in [0, 1] (0 = coarse only, 1 = the method's full detail), got {gain}"
        )
    if isinstance(coarse, xr.Dataset):
        ds = coarse
        if coarse_var not in ds.data_vars:
            raise ValueError(f"the cube has no coarse variable {coarse_var!r}: pass coarse_var=")
        if ratio is None:
            ratio = _cube.resolution_ratio(ds)
        coarse = ds[coarse_var]
    if ratio is None:
        ratio = _ratio_of(coarse, prediction) or _cube.resolution_ratio(xr.Dataset())
    if not float(ratio) > 0:
        raise ValueError(f"ratio (coarse / fine pixel size) must be > 0, got {ratio}")
    sig = SIGMA_PER_RATIO * float(ratio) if sigma is None else float(sigma)
    if not sig > 0:
        raise ValueError(f"sigma must be > 0 fine pixels, got {sigma}")
    if "time" in prediction.dims:
        missing = [
            str(t)[:10] for t in prediction["time"].values if t not in coarse.indexes["time"]
        ]
        if missing:
            raise ValueError(
                f"the coarse image has no date(s) {missing} of the prediction: anchoring needs the "
                "target date's own coarse image"
            )
        coarse = coarse.sel(time=prediction["time"].values)
    if prediction.shape != coarse.shape or prediction.dims != coarse.dims:
        raise ValueError(
            f"prediction {dict(prediction.sizes)} and coarse {dict(coarse.sizes)} are not on one grid"
        )
    kw: dict[str, Any] = dict(gain=g, sigma=sig, truncate=float(truncate), fill=bool(fill))
    pd_, cd = prediction.data, coarse.data
    lazy = not isinstance(pd_, np.ndarray) or not isinstance(cd, np.ndarray)
    if lazy:
        import dask.array as da

        pd_ = da.asarray(pd_)
        cd = da.asarray(cd)
        r = _radius(sig, truncate)
        ys, xs = prediction.ndim - 2, prediction.ndim - 1
        chunks: list[Any] = list(pd_.chunks)
        depth = {i: 0 for i in range(prediction.ndim)}
        for ax in (ys, xs):
            if len(chunks[ax]) == 1 or r >= pd_.shape[ax]:  # one chunk: no halo needed
                chunks[ax] = -1
            else:  # map_overlap needs chunks at least as large as the halo
                depth[ax] = r
                if min(chunks[ax]) < r:
                    chunks[ax] = max(r, max(chunks[ax]))
        pd_ = pd_.rechunk(tuple(chunks))
        cd = cd.rechunk(pd_.chunks)
        dtype = pd_.dtype if np.issubdtype(pd_.dtype, np.floating) else np.float32
        data = da.map_overlap(
            _anchor_block, pd_, cd, depth=depth, boundary="none", dtype=dtype,
            meta=np.array((), dtype=dtype), **kw,
        )  # fmt: skip
    else:
        data = _anchor_block(pd_, cd, **kw)
    out = prediction.copy(data=data)
    out.attrs = dict(prediction.attrs)
    out.attrs["anchor"] = json.dumps(
        {"to": "coarse", "gain": g, "sigma_px": sig, "ratio": float(ratio), "filter": "gaussian",
         "truncate": float(truncate), "fill": bool(fill)}, sort_keys=True,
    )  # fmt: skip
    if "long_name" in out.attrs:
        out.attrs["long_name"] = (
            f"{out.attrs['long_name']}, anchored to the coarse level (gain {g:g})"
        )
    return out


_anchor = anchor  # the function, under a name the `anchor=` keyword below does not shadow


def anchor_result(
    ds: xr.Dataset,
    prediction: xr.DataArray,
    anchor: str | None,
    gain: float = 1.0,
    coarse: Hashable = "coarse",
) -> xr.DataArray:
    """The ``anchor=`` post-step of the fusion functions: :func:`anchor` or nothing.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (its coarse variable and resolution attrs).
    prediction : xarray.DataArray
        A method's prediction.
    anchor : {None, "coarse"}
        ``None``: return ``prediction`` as is; ``"coarse"``: anchor it to ``ds[coarse]``.
    gain : float
        Gain on the sub-km detail, see :func:`anchor`.
    coarse : hashable
        The coarse variable.

    Returns
    -------
    xarray.DataArray
        The (anchored) prediction.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=10, seed=1)
    >>> pred = ds.fine
    >>> anchor_result(ds, pred, None) is pred
    True
    """
    if anchor is None:
        if float(gain) != 1.0:
            raise ValueError(f"gain={gain} has no effect without anchor='coarse'")
        return prediction
    if anchor != "coarse":
        raise ValueError(f"anchor must be None or 'coarse', got {anchor!r}")
    return _anchor(prediction, ds, gain=gain, coarse_var=coarse)
