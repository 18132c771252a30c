"""The ``.stf`` Dataset accessor: a thin, stateless front to xstf's plain functions."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pandas as pd
import xarray as xr

from . import cube as _cube

__all__ = ["STFAccessor"]


class _PlotNamespace:
    """``ds.stf.plot.<name>(...)``: the :mod:`xstf.plot` figures with the cube filled in."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def __getattr__(self, name: str):
        from . import plot

        func = getattr(plot, name, None)
        if name.startswith("_") or func is None or name not in plot.__all__:
            raise AttributeError(f"xstf.plot has no figure {name!r} (figures: {plot.__all__})")
        if name not in plot.CUBE_FIGURES:  # e.g. scores(metrics): nothing to bind
            return func

        def bound(*args: Any, **kwargs: Any):
            return func(self._ds, *args, **kwargs)

        bound.__doc__ = func.__doc__
        bound.__name__ = name
        return bound

    def __dir__(self) -> list[str]:
        from . import plot

        return list(plot.__all__)


@xr.register_dataset_accessor("stf")
class STFAccessor:
    """Spatio-temporal fusion on an LST cube: ``ds.stf.<method>(...)``.

    The cube is an :class:`xarray.Dataset` with dims ``(time, y, x)`` on the fine
    (Landsat) grid, holding ``fine`` (Landsat LST, K, NaN where not observed) and
    ``coarse`` (MODIS LST resampled onto the fine grid, K, NaN where missing);
    optionally ``truth`` and ``landcover``. ``time`` is datetime64 and strictly
    increasing; the CRS is written with rioxarray. A *pair* is a date where both
    sensors cover at least ``min_coverage`` of the scene; a *target* is a date with
    usable coarse data only. See :doc:`/cube`.

    The accessor keeps no state: every method delegates to a plain function in
    :mod:`xstf` with the dataset as first argument (``ds.stf.estarfm(...)`` is
    ``xstf.estarfm(ds, ...)``). Variable names default to ``fine``/``coarse`` and can
    be passed as ``fine=``/``coarse=`` to each method.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40)
    >>> ds.stf.validate() is ds
    True
    >>> len(ds.stf.pairs) > 0
    True
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def __repr__(self) -> str:
        """Grid, dates, variables; pairs, targets and coverage when cheap (in-memory data)."""
        from ._repr import cube_repr_text

        return cube_repr_text(self._ds)

    def _repr_html_(self) -> str:
        """The same as a table, for Jupyter. See :func:`xstf._repr.cube_info`."""
        from ._repr import cube_repr_html

        return cube_repr_html(self._ds)

    # -- the cube -----------------------------------------------------------------------------
    def validate(
        self,
        fine: Hashable = "fine",
        coarse: Hashable = "coarse",
        min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
        require_pairs: int = 1,
    ) -> xr.Dataset:
        """Check the cube convention; return the dataset or raise :class:`xstf.CubeError`.

        See :func:`xstf.cube.validate`.
        """
        return _cube.validate(self._ds, fine, coarse, min_coverage, require_pairs)

    def summary(self, **kwargs: Any) -> str:
        """Text summary: grid, dates, pairs, targets, coverage. See :func:`xstf.cube.summary`."""
        return _cube.summary(self._ds, **kwargs)

    def coverage(self, fine: Hashable = "fine", coarse: Hashable = "coarse") -> xr.Dataset:
        """Valid fraction per date and variable. See :func:`xstf.cube.coverage`."""
        return _cube.coverage(self._ds, fine, coarse)

    @property
    def pairs(self) -> pd.DatetimeIndex:
        """Pair dates at the default coverage threshold. See :func:`xstf.cube.pair_dates`."""
        return _cube.pair_dates(self._ds)

    @property
    def targets(self) -> pd.DatetimeIndex:
        """Target dates at the default coverage threshold. See :func:`xstf.cube.target_dates`."""
        return _cube.target_dates(self._ds)

    def pair_dates(self, **kwargs: Any) -> pd.DatetimeIndex:
        """Pair dates with explicit names/threshold. See :func:`xstf.cube.pair_dates`."""
        return _cube.pair_dates(self._ds, **kwargs)

    def target_dates(self, **kwargs: Any) -> pd.DatetimeIndex:
        """Target dates with explicit names/threshold. See :func:`xstf.cube.target_dates`."""
        return _cube.target_dates(self._ds, **kwargs)

    def reference_pairs(
        self,
        target: Any,
        n: int = 2,
        rule: str = "bracket",
        exclude_target: bool = True,
        fine: Hashable = "fine",
        coarse: Hashable = "coarse",
        min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    ) -> list[pd.Timestamp]:
        """Reference pairs for ``target`` among this cube's pairs. See :func:`xstf.cube.reference_pairs`."""
        pairs = _cube.pair_dates(self._ds, fine, coarse, min_coverage)
        return _cube.reference_pairs(pairs, target, n=n, rule=rule, exclude_target=exclude_target)  # type: ignore[arg-type]

    # -- scores and figures ---------------------------------------------------------------------
    def metrics(self, prediction: Any, reference: Any = "fine", **kwargs: Any) -> xr.Dataset:
        """The six survey scores (and MAE, bias) per date. See :func:`xstf.scoring.metrics`.

        ``prediction``, ``reference`` and ``baseline=`` may be variable names of this cube.
        """
        from .scoring import metrics

        ds = self._ds
        if isinstance(prediction, str):
            prediction = ds[prediction]
        if isinstance(reference, str):
            reference = ds[reference]
        if isinstance(kwargs.get("baseline"), str):
            kwargs["baseline"] = ds[kwargs["baseline"]]
        if "ratio" not in kwargs:
            kwargs["ratio"] = 1.0 / _cube.resolution_ratio(ds)
        return metrics(prediction, reference, **kwargs)

    @property
    def plot(self) -> _PlotNamespace:
        """Figures of :mod:`xstf.plot` with this cube as first argument (``ds.stf.plot.compare(...)``)."""
        return _PlotNamespace(self._ds)

    # -- fusion ---------------------------------------------------------------------------------
    def estarfm(self, targets: Any = None, pairs: Any = None, **kwargs: Any) -> xr.DataArray:
        """ESTARFM fusion (numba over dask); ``bias_correction=True`` for ubESTARFM.

        See :func:`xstf.fusion.estarfm.estarfm` for every parameter.
        """
        from .fusion.estarfm import estarfm

        return estarfm(self._ds, targets, pairs, **kwargs)

    def fitfc(self, targets: Any = None, pairs: Any = None, **kwargs: Any) -> xr.DataArray:
        """FitFC fusion (numba over dask): regression on the target's own coarse image.

        See :func:`xstf.fusion.fitfc.fitfc` for every parameter.
        """
        from .fusion.fitfc import fitfc

        return fitfc(self._ds, targets, pairs, **kwargs)

    def starfm(self, targets: Any = None, pairs: Any = None, **kwargs: Any) -> xr.DataArray:
        """STARFM fusion (numba over dask). See :func:`xstf.fusion.starfm.starfm`."""
        from .fusion.starfm import starfm

        return starfm(self._ds, targets, pairs, **kwargs)

    def fill_gaps(self, **kwargs: Any) -> xr.Dataset:
        """Fill cloud gaps, keeping a ``filled`` mask. See :func:`xstf.gapfill.fill_gaps`."""
        from .gapfill import fill_gaps

        return fill_gaps(self._ds, **kwargs)

    def fit(self, model: str, **kwargs: Any) -> Any:
        """Train deep fusion model ``model`` (a name) on this cube's pairs; returns a ``FittedModel``.

        See :func:`xstf.models.train.fit`.
        """
        from .models.train import fit

        return fit(self._ds, model, **kwargs)

    def predict(self, model: Any, **kwargs: Any) -> xr.DataArray:
        """Predict fine LST with a fitted deep model (from :meth:`fit`) or a saved model's path.

        Prediction never trains: a model name is refused. See :func:`xstf.models.inference.predict`.
        """
        from .models.inference import predict

        return predict(self._ds, model, **kwargs)

    def anchor(self, prediction: xr.DataArray, gain: float = 1.0, **kwargs: Any) -> xr.DataArray:
        """Anchor a prediction's MODIS-scale level to this cube's coarse image. See :func:`xstf.anchor.anchor`."""
        from .anchor import anchor

        return anchor(prediction, self._ds, gain=gain, **kwargs)

    def fuse(self, targets: Any = None, **kwargs: Any) -> xr.DataArray:
        """Fuse with the method and gain chosen by leave-one-pair-out validation. See :func:`xstf.fuse.fuse`."""
        from .fuse import fuse

        return fuse(self._ds, targets, **kwargs)
