"""Training data for the deep models: patches, normalisation, a torch Dataset.

The samples (a target pair date and its reference pair dates) and the split of the
pair dates into training, validation and test dates are :mod:`xstf.models.split`'s
job; its names are re-exported here for code written against this module.

Patches (95 × 95, stride 20 by default, the survey's protocol) are cut from every
sample; a patch is kept when at least ``min_valid`` of its target pixels are valid.

Normalisation (:data:`NORMALISATIONS`):

- ``"date_level"`` (default): every image of a sample — references and target, fine
  and coarse — first has the sample's *level* subtracted, a scalar: the mean of the
  target date's coarse image over the whole scene (valid pixels,
  :func:`date_levels`). The anomalies are then normalised with one mean and standard
  deviation fitted on the training dates (:func:`normalisation` with ``levels=``).
  At prediction the same level (the target coarse scene mean, known on every target
  date) is subtracted from the inputs and added back to the output. LST changes
  with season and weather far more than its spatial pattern does: a target date
  warmer or colder than every training date stays in distribution, and the network
  learns the fine-scale anomaly, not the MODIS level.
- ``"global"``: ``(LST − mean) / std`` with one mean and standard deviation of the
  training dates (fine and coarse valid pixels together).

The statistics (and the choice) are stored with the model. Missing pixels are
filled with 0 (the normalised mean) *and* flagged: ``tgt_valid`` (fine
and coarse target both valid) decides which pixels count in the masked loss,
``ref_valid`` marks reference pixels valid in both the fine and coarse reference.

Only the torch Dataset (:class:`PatchDataset`) imports torch; the rest of this
module is numpy/xarray.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import CubeError

# the split and samples moved to .split; their names stay importable from here
from .split import Sample, Split, samples, split_dates  # noqa: F401

__all__ = [
    "NORMALISATIONS",
    "date_levels",
    "normalisation",
    "patch_origins",
    "select_patches",
]

#: Normalisation modes of the deep models; the first is the default. A model config
#: without the key (older checkpoints) means ``"global"``.
NORMALISATIONS = ("date_level", "global")


def check_normalisation(value: Any) -> str:
    """``value`` if it names a normalisation mode, else a ValueError listing the modes."""
    if value not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {list(NORMALISATIONS)}, got {value!r}")
    return str(value)


def scene_level(a: Any) -> Any:
    """Mean over the last two axes of the finite values, float64; NaN where none is finite.

    Works on numpy and dask arrays alike (a dask array stays lazy): ``(..., y, x)``
    -> ``(...)``.

    Examples
    --------
    >>> scene_level(np.array([[[1.0, np.nan], [3.0, 5.0]], [[np.nan, np.nan], [np.nan, np.nan]]]))
    array([ 3., nan])
    """
    a = a.astype(np.float64)
    valid = np.isfinite(a)
    total = np.where(valid, a, 0.0).sum(axis=(-2, -1))
    count = valid.sum(axis=(-2, -1))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def date_levels(ds: xr.Dataset, dates: Iterable[Any], coarse: Hashable = "coarse") -> xr.DataArray:
    """The level of each date: the mean of its coarse image over the whole scene (valid pixels).

    The ``"date_level"`` normalisation subtracts the *target* date's level from every
    image of a sample (references and target) and adds it back to the prediction.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    dates : iterable of datetime-like
        Dates of the cube.
    coarse : hashable
        Coarse variable name.

    Returns
    -------
    xarray.DataArray
        ``(time,)`` float64 in K, NaN on a date without any valid coarse pixel; lazy
        (dask-backed) on a dask cube.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=20)
    >>> lv = date_levels(ds, ds.time.values[:2])
    >>> bool(abs(lv[0] - ds.coarse[0].mean()) < 1e-3)
    True
    """
    da = ds[coarse].sel(time=pd.DatetimeIndex(list(dates))).transpose("time", "y", "x")
    out = xr.DataArray(
        scene_level(da.data), coords={"time": da["time"]}, dims=("time",), name="level"
    )
    out.attrs = {"units": "K", "long_name": f"scene mean of {coarse} (valid pixels)"}
    return out


def normalisation(
    ds: xr.Dataset,
    dates: Iterable[Any],
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    levels: xr.DataArray | Mapping[Any, float] | None = None,
) -> tuple[float, float]:
    """Mean and standard deviation (K) of the valid fine and coarse pixels on ``dates``.

    Computed in float64 over both variables together (one pass per variable on a
    dask cube). With ``levels`` (a level per date, e.g. :func:`date_levels`), the
    statistics are those of the anomalies ``LST(t) − level(t)`` (the
    ``"date_level"`` normalisation).

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=32, days=20)
    >>> mean, std = normalisation(ds, ds.time.values[:1])
    >>> 250 < mean < 320 and std > 0
    True
    >>> lv = date_levels(ds, ds.time.values[:1])
    >>> mean, std = normalisation(ds, ds.time.values[:1], levels=lv)
    >>> abs(mean) < 5 and std > 0
    True
    """
    import dask

    sel = pd.DatetimeIndex(list(dates))
    if levels is not None:
        if not isinstance(levels, xr.DataArray):
            levels = xr.DataArray(
                [float(levels[t]) for t in sel], coords={"time": sel}, dims=("time",)
            )
        lv = np.asarray(levels.sel(time=sel).values, dtype=np.float64)
        if np.isnan(lv).any():
            bad = [str(t.date()) for t, v in zip(sel, lv, strict=True) if np.isnan(v)]
            raise CubeError(
                f"no valid {coarse!r} pixel on date(s) {bad}: their level (scene mean of "
                f"{coarse!r}) is undefined"
            )
    parts = []
    for name in (fine, coarse):
        da = ds[name].sel(time=sel).astype("float64")
        if levels is not None:
            da = da - xr.DataArray(lv, dims=("time",))
        parts += [da.count(), da.sum(), (da * da).sum()]
    vals = [float(v) for v in dask.compute(*[p.data for p in parts])]
    n = vals[0] + vals[3]
    if n < 2:
        raise CubeError(
            f"no valid {fine!r}/{coarse!r} pixels on the training dates to normalise with"
        )
    s1, s2 = vals[1] + vals[4], vals[2] + vals[5]
    mean = s1 / n
    var = max(s2 / n - mean * mean, 0.0)
    std = float(np.sqrt(var))
    return float(mean), std if std > 0 else 1.0


def patch_origins(n: int, size: int, stride: int) -> list[int]:
    """Start offsets of patches of ``size`` with ``stride`` along an axis of ``n``, the last flush with the edge.

    Examples
    --------
    >>> patch_origins(100, 95, 20)
    [0, 5]
    >>> patch_origins(64, 32, 16)
    [0, 16, 32]
    """
    if size > n:
        raise ValueError(
            f"patch_size {size} is larger than the scene side ({n} px): pass a smaller patch_size"
        )
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    out = list(range(0, n - size + 1, stride))
    if out[-1] != n - size:
        out.append(n - size)
    return out


def _valid_counts(valid: np.ndarray, size: int, ys: list[int], xs: list[int]) -> np.ndarray:
    ii = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), dtype=np.int64)
    ii[1:, 1:] = valid.cumsum(0).cumsum(1)
    y0, x0 = np.asarray(ys)[:, None], np.asarray(xs)[None, :]
    return ii[y0 + size, x0 + size] - ii[y0, x0 + size] - ii[y0 + size, x0] + ii[y0, x0]


def select_patches(
    ds: xr.Dataset,
    samples_: Sequence[Sample],
    patch_size: int,
    stride: int,
    min_valid: float,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
) -> list[tuple[int, int, int]]:
    """Patches ``(sample index, y0, x0)`` with at least ``min_valid`` of valid target pixels.

    Reads the target fine and coarse images one date at a time.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=40, cloud_fraction=0.0)
    >>> d = xstf.cube.pair_dates(ds)
    >>> len(select_patches(ds, samples(d[1:2], d, 2), 32, 16, 0.5))
    4
    """
    if not 0.0 <= min_valid <= 1.0:
        raise ValueError(f"min_valid must be in [0, 1], got {min_valid}")
    ys = patch_origins(ds.sizes["y"], patch_size, stride)
    xs = patch_origins(ds.sizes["x"], patch_size, stride)
    out = []
    need = min_valid * patch_size * patch_size
    for i, s in enumerate(samples_):
        f = np.asarray(ds[fine].sel(time=s.target).values)
        c = np.asarray(ds[coarse].sel(time=s.target).values)
        counts = _valid_counts(np.isfinite(f) & np.isfinite(c), patch_size, ys, xs)
        for a, b in zip(*np.nonzero(counts >= max(need, 1)), strict=True):
            out.append((i, ys[a], xs[b]))
    return out


def normalise(
    a: np.ndarray, mean: float, std: float, level: float | np.ndarray = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``((a − level − mean) / std`` with NaN filled by 0, valid mask)`` as float32 and bool.

    ``level`` is the sample's date level (0 for the ``"global"`` normalisation), or an
    array broadcasting against ``a`` (one level per patch of a batch).

    Examples
    --------
    >>> x, v = normalise(np.array([300.0, np.nan]), 290.0, 5.0)
    >>> x.tolist(), v.tolist()
    ([2.0, 0.0], [True, False])
    >>> normalise(np.array([300.0]), 1.0, 5.0, level=289.0)[0].tolist()
    [2.0]
    """
    valid = np.isfinite(a)
    out = np.where(valid, (a - level - mean) / std, 0.0).astype(np.float32)
    return out, valid


class PatchDataset:
    """A torch ``Dataset`` of normalised patches, sliced from the cube per item.

    Numpy-backed cubes are sliced directly; for dask-backed cubes whole dates are
    computed on demand and kept in a small LRU cache (``cache_dates`` images per
    variable), so the cube is never loaded at once.

    Items are dicts of float32 tensors as described in :mod:`xstf.models.base`
    (without the batch axis).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    samples_ : sequence of Sample
        The samples.
    patches : sequence of (int, int, int)
        ``(sample index, y0, x0)`` from :func:`select_patches`.
    patch_size : int
        Patch side.
    mean, std : float
        Normalisation (K).
    fine, coarse : hashable
        Variable names.
    cache_dates : int
        Dates kept per variable for dask-backed cubes.
    levels : mapping of date -> float, optional
        The level of each target date (``"date_level"`` normalisation,
        :func:`date_levels`): subtracted from every image of a sample before
        ``mean``/``std``. None: no level (``"global"``).
    """

    def __init__(
        self,
        ds: xr.Dataset,
        samples_: Sequence[Sample],
        patches: Sequence[tuple[int, int, int]],
        patch_size: int,
        mean: float,
        std: float,
        fine: Hashable = "fine",
        coarse: Hashable = "coarse",
        cache_dates: int = 8,
        levels: Mapping[Any, float] | None = None,
    ) -> None:
        self.ds = ds
        self.levels: dict[pd.Timestamp, float] | None = None
        if levels is not None:
            self.levels = {pd.Timestamp(k): float(v) for k, v in levels.items()}
            missing = sorted({s.target for s in samples_} - set(self.levels))
            if missing:
                raise ValueError(f"levels has no value for target date(s) {missing[:5]}")
        self.samples = list(samples_)
        self.patches = list(patches)
        self.size = int(patch_size)
        self.mean, self.std = float(mean), float(std)
        self.fine, self.coarse = fine, coarse
        self.cache_dates = max(1, int(cache_dates))
        self._cache: OrderedDict[tuple[Hashable, pd.Timestamp], np.ndarray] = OrderedDict()
        self._time = ds.indexes["time"]
        # index arrays for batched fetching (:meth:`batch`): per patch, the time index of
        # each reference date then of the target, the origin, and the level
        n = len(self.patches)
        p = np.asarray(self.patches, dtype=np.int64).reshape(n, 3)
        dates = [[*s.refs, s.target] for s in self.samples]
        t_of_sample = np.asarray(
            [self._time.get_indexer(pd.DatetimeIndex(d)) for d in dates], dtype=np.int64
        ).reshape(len(self.samples), -1)
        self._t = t_of_sample[p[:, 0]] if n else np.zeros((0, 1), np.int64)
        self._y0, self._x0 = p[:, 1], p[:, 2]
        lv = [0.0 if self.levels is None else self.levels[s.target] for s in self.samples]
        self._lv = np.asarray(lv, dtype=np.float64)[p[:, 0]] if n else np.zeros(0)

    def __len__(self) -> int:
        return len(self.patches)

    def _image(self, var: Hashable, t: pd.Timestamp, ys: slice, xs: slice) -> np.ndarray:
        da = self.ds[var]
        i = self._time.get_loc(t)
        if isinstance(da.variable._data, np.ndarray):
            return np.asarray(da.values[i, ys, xs], dtype=np.float64)
        key = (var, t)
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            self._cache[key] = np.asarray(da[i].values)
            while len(self._cache) > 2 * self.cache_dates:
                self._cache.popitem(last=False)
        return self._cache[key][ys, xs].astype(np.float64)

    def batch(self, items: Sequence[int]) -> dict[str, Any]:
        """The items ``items`` as one batch (tensors with a leading batch axis), equal to
        collating ``[self[i] for i in items]``.

        Numpy-backed cubes: one fancy index per variable and date slot gathers every
        patch of the batch, and the normalisation runs once on the batch, without
        per-patch Python work. Dask-backed cubes: per item (whole dates cached).

        Examples
        --------
        >>> import xstf
        >>> ds = xstf.datasets.synthetic(size=48, days=40, cloud_fraction=0.0)
        >>> d = xstf.cube.pair_dates(ds)
        >>> smp = samples(d[1:2], d, 2)
        >>> data = PatchDataset(ds, smp, select_patches(ds, smp, 32, 16, 0.5), 32, 290.0, 5.0)
        >>> b = data.batch([0, 3])
        >>> tuple(b["c_refs"].shape), bool((b["f_tgt"][1] == data[3]["f_tgt"]).all())
        ((2, 2, 1, 32, 32), True)
        """
        import torch

        idx = np.asarray(items, dtype=np.int64).reshape(-1)
        fd, cd = self.ds[self.fine].variable._data, self.ds[self.coarse].variable._data
        if not (isinstance(fd, np.ndarray) and isinstance(cd, np.ndarray)):
            from torch.utils.data import default_collate

            return default_collate([self[int(i)] for i in idx])
        from numpy.lib.stride_tricks import sliding_window_view

        t = self._t[idx]  # (B, R + 1)
        y0, x0 = self._y0[idx][:, None], self._x0[idx][:, None]
        lv = self._lv[idx][:, None, None, None]
        m, sd, win = self.mean, self.std, (self.size, self.size)
        # a (T, H - S + 1, W - S + 1, S, S) view of every patch; one fancy index copies
        # the (B, R + 1) patches of the batch, block by block
        f, fv = normalise(
            sliding_window_view(fd, win, axis=(1, 2))[t, y0, x0].astype(np.float64), m, sd, lv
        )
        c, cv = normalise(
            sliding_window_view(cd, win, axis=(1, 2))[t, y0, x0].astype(np.float64), m, sd, lv
        )
        return {
            "c_refs": torch.from_numpy(c[:, :-1, None]),
            "f_refs": torch.from_numpy(f[:, :-1, None]),
            "c_tgt": torch.from_numpy(np.ascontiguousarray(c[:, -1:])),
            "f_tgt": torch.from_numpy(np.ascontiguousarray(f[:, -1:])),
            "tgt_valid": torch.from_numpy(cv[:, -1:] & fv[:, -1:]),
            "ref_valid": torch.from_numpy((cv[:, :-1] & fv[:, :-1])[:, :, None]),
        }

    def __getitems__(self, items: Sequence[int]) -> list[dict[str, Any]]:
        """Batched fetching for :class:`torch.utils.data.DataLoader` (one :meth:`batch`)."""
        b = self.batch(items)
        return [{k: v[i] for k, v in b.items()} for i in range(len(items))]

    def __getitem__(self, item: int) -> dict[str, Any]:
        import torch

        s_idx, y0, x0 = self.patches[item]
        s = self.samples[s_idx]
        ys, xs = slice(y0, y0 + self.size), slice(x0, x0 + self.size)
        m, sd = self.mean, self.std
        lv = 0.0 if self.levels is None else self.levels[s.target]
        c_refs, f_refs, r_valid = [], [], []
        for r in s.refs:
            c, cv = normalise(self._image(self.coarse, r, ys, xs), m, sd, lv)
            f, fv = normalise(self._image(self.fine, r, ys, xs), m, sd, lv)
            c_refs.append(c[None])
            f_refs.append(f[None])
            r_valid.append((cv & fv)[None])
        c_t, ctv = normalise(self._image(self.coarse, s.target, ys, xs), m, sd, lv)
        f_t, ftv = normalise(self._image(self.fine, s.target, ys, xs), m, sd, lv)
        return {
            "c_refs": torch.from_numpy(np.stack(c_refs)),
            "f_refs": torch.from_numpy(np.stack(f_refs)),
            "c_tgt": torch.from_numpy(c_t[None]),
            "f_tgt": torch.from_numpy(f_t[None]),
            "tgt_valid": torch.from_numpy((ctv & ftv)[None]),
            "ref_valid": torch.from_numpy(np.stack(r_valid)),
        }
