"""The survey's experiment protocol: split by date, hide the test images, predict, score.

:func:`run` follows the protocol of Bouaziz et al. (arXiv 2412.16631): the cube's
pairs are split by date into training and test dates (the survey: 34 training
triplets and 8 test samples out of 51 pairs; the same shares on other date
counts), every method predicts the test dates from the training pairs only (the
Landsat images of the test dates are hidden from it), and the predictions are
scored against the held-out Landsat images. The baseline ``coarse_only`` (the MODIS
image on the fine grid) is always scored too, so a method doing worse than doing
nothing is visible; by default every method is scored on one common mask per date
(the pixels valid in the reference and in every prediction, the baseline's
included), with skill scores against the baseline. Dates of strong spatio-temporal
variability — where the coarse change between the reference pairs and the target
is far from uniform, the survey's failure case — are flagged from the data and
scored separately.

Methods are looked up by name in :data:`METHODS`, a table of callables
``(train_cube, targets, **options) -> DataArray``; :func:`register_method` adds one.
The report is written by :func:`xstf.report.write_report`; ``xstf benchmark``
(:mod:`xstf.cli`) does both.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from . import cube as _cube
from .errors import CubeError

__all__ = [
    "BASELINE",
    "CLASSICAL",
    "METHODS",
    "SURVEY_TEST_SHARE",
    "ExperimentResult",
    "Method",
    "check_methods",
    "method_names",
    "register_method",
    "run",
    "split_test_dates",
    "variability",
]

#: Label of the trivial baseline, "coarse only" in prose: the coarse image on the fine grid.
BASELINE = "coarse_only"
#: Methods that need no training.
CLASSICAL = ("estarfm", "ubestarfm", "starfm", "fitfc", "fuse")
#: The survey's protocol: 8 test samples for 51 pairs.
SURVEY_TEST_SHARE = 8 / 51
SCORES = ("rmse", "ssim", "psnr", "sam", "cc", "ergas")
#: Columns of :meth:`ExperimentResult.table`, in order.
TABLE_SCORES = (
    "rmse", "ubrmse", "bias", "mae", "cc", "ssim", "psnr", "sam", "ergas",
    "skill_rmse", "skill_ubrmse",
)  # fmt: skip


# -- the method table ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """One entry of :data:`METHODS`.

    Attributes
    ----------
    func : callable
        ``func(train_cube, targets, **options) -> xarray.DataArray``: the prediction of
        ``targets`` from the cube whose test images are hidden; ``options`` hold
        ``fine=``/``coarse=`` (variable names) and the user's per-method options (plus
        ``seed=`` and ``progress=`` when ``trains``). It may be lazy: :func:`run`
        computes it.
    trains : bool
        A model fitted on the cube (a deep model): gets ``seed``/``progress``, and
        patch sizes that fit small scenes.
    description : str
        One line for ``xstf benchmark --help``.

    Examples
    --------
    >>> import xstf
    >>> entry = xstf.experiment.METHODS["fitfc"]
    >>> entry.trains, entry.description.split()[0]
    (False, 'FitFC')
    """

    func: Callable[..., xr.DataArray]
    trains: bool = False
    description: str = ""


def _lazy(module: str, name: str, **fixed: Any) -> Callable[..., xr.DataArray]:
    """A callable that imports ``module.name`` when called (``import xstf`` stays light)."""

    def call(train_cube: xr.Dataset, targets: Any, **options: Any) -> xr.DataArray:
        func = getattr(importlib.import_module(module), name)
        return func(train_cube, targets, **fixed, **options)

    call.__name__ = name
    call.__qualname__ = f"{module}.{name}"
    return call


def _deep(model: str) -> Callable[..., xr.DataArray]:
    def call(train_cube: xr.Dataset, targets: Any, **options: Any) -> xr.DataArray:
        from . import models

        names = {k: options[k] for k in ("fine", "coarse") if k in options}
        fitted = models.fit(train_cube, model, **options)
        return models.predict(train_cube, fitted, targets=targets, **names)

    call.__name__ = model
    return call


#: Methods :func:`run` knows, by name.
METHODS: dict[str, Method] = {
    "estarfm": Method(_lazy("xstf.fusion.estarfm", "estarfm"), description="ESTARFM"),
    "ubestarfm": Method(
        _lazy("xstf.fusion.estarfm", "estarfm", bias_correction=True),
        description="ESTARFM with bias correction (ubESTARFM)",
    ),
    "starfm": Method(_lazy("xstf.fusion.starfm", "starfm"), description="STARFM"),
    "fitfc": Method(
        _lazy("xstf.fusion.fitfc", "fitfc"), description="FitFC (uses the target's MODIS)"
    ),
    "fuse": Method(
        _lazy("xstf.fuse", "fuse"),
        description="xstf's default: anchored method and gain chosen by leave-one-pair-out CV",
    ),
    **{
        m: Method(_deep(m), trains=True, description=f"{m.upper()} (deep model, PyTorch)")
        for m in ("edcstfn", "sttfn", "mlffgan", "ganstfm")
    },
}


def register_method(
    name: str,
    func: Callable[..., xr.DataArray],
    *,
    trains: bool = False,
    description: str = "",
    replace: bool = False,
) -> Method:
    """Add a method to :data:`METHODS` so that :func:`run` and ``xstf benchmark`` know it.

    Parameters
    ----------
    name : str
        The method's label (lower case; not ``coarse_only``).
    func : callable
        ``func(train_cube, targets, **options) -> xarray.DataArray``, e.g.
        :func:`xstf.fusion.estarfm.estarfm` (it gets ``fine=``, ``coarse=`` and the
        method's options; ``seed=``/``progress=`` too when ``trains``).
    trains : bool
        A model fitted on the cube; see :class:`Method`.
    description : str
        One line for ``--help``.
    replace : bool
        Replace an existing entry instead of raising.

    Returns
    -------
    Method
        The entry.

    Examples
    --------
    >>> import xstf
    >>> entry = register_method("mean_coarse", lambda ds, targets, **o: ds.coarse.sel(time=targets))
    >>> "mean_coarse" in method_names()
    True
    >>> _ = METHODS.pop("mean_coarse")
    """
    key = name.lower()
    if key == BASELINE:
        raise ValueError(f"{BASELINE!r} is the baseline every experiment scores; pick another name")
    if key in METHODS and not replace:
        raise ValueError(f"a method {key!r} is registered already: pass replace=True")
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    METHODS[key] = Method(func, trains, description)
    return METHODS[key]


def method_names() -> list[str]:
    """Names of :data:`METHODS` (deep models included whether or not PyTorch is installed).

    Examples
    --------
    >>> method_names()[:3]
    ['estarfm', 'ubestarfm', 'starfm']
    """
    return list(METHODS)


def check_methods(methods: Sequence[str]) -> list[str]:
    """Lower-cased method names, checked against :data:`METHODS` before any work.

    The baseline (``coarse_only``) is dropped (it is always scored); a deep model needs
    PyTorch.

    Raises
    ------
    ValueError
        An unknown name (with the known ones), a repeated one, or a deep model without
        PyTorch.

    Examples
    --------
    >>> check_methods(["ESTARFM", "coarse_only", "starfm"])
    ['estarfm', 'starfm']
    """
    names = [str(m).strip().lower() for m in methods if str(m).strip()]
    unknown = [m for m in names if m not in METHODS and m != BASELINE]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: choose from {method_names()}")
    dup = sorted({m for m in names if names.count(m) > 1})
    if dup:
        raise ValueError(f"method(s) {dup} given more than once")
    names = [m for m in names if m != BASELINE]
    deep = [m for m in names if METHODS[m].trains]
    if deep and find_spec("torch") is None:
        raise ValueError(
            f"{deep} need PyTorch, which is not installed: pip install 'xstf[torch]', or run "
            f"the classical methods only ({list(CLASSICAL)})"
        )
    return names


_PACKAGE = str(Path(__file__).resolve().parent)


def _ours(w: warnings.WarningMessage) -> bool:
    """A warning of xstf (or of user code), not of a library it calls."""
    filename = str(Path(w.filename).resolve()) if w.filename else ""
    if filename.startswith(_PACKAGE):
        return True
    if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning):
        return False
    return "site-packages" not in filename and "dist-packages" not in filename


def _small_scene_options(cube: xr.Dataset, opts: dict[str, Any]) -> dict[str, Any]:
    """Deep models: patches that fit the scene (the survey's 95 px need 190 px a side)."""
    side = min(cube.sizes["y"], cube.sizes["x"])
    if "patch_size" not in opts and side < 2 * 95:
        opts["patch_size"] = max(16, side // 2)
        opts.setdefault("stride", max(4, opts["patch_size"] // 4))
    return opts


@dataclass
class ExperimentResult:
    """What :func:`run` returns.

    Attributes
    ----------
    scores : xarray.Dataset
        Metrics with dims ``(method, time)`` (and ``region`` when land cover was given).
    predictions : xarray.Dataset
        One variable per method (and the baseline), ``(time, y, x)`` in K, on the test dates.
        Not masked: the scores' common mask is applied when scoring only.
    test_dates, train_dates : pandas.DatetimeIndex
        The split.
    variability : xarray.Dataset
        Per test date: the spatial standard deviation of the coarse change from the
        nearest reference pair (K) and the ``strong`` flag.
    timings : dict
        Seconds per method: ``run_s`` (fit and predict, computed), and the patch size
        used by a deep model.
    info : dict
        Parameters, versions, the mask used, warnings issued per method, and the
        command (only when run from the command line), for the report.

    Examples
    --------
    >>> res = run(ds, ["estarfm"])  # doctest: +SKIP
    >>> res.table().loc["estarfm", "rmse"]  # doctest: +SKIP
    """

    scores: xr.Dataset
    predictions: xr.Dataset
    test_dates: pd.DatetimeIndex
    train_dates: pd.DatetimeIndex
    variability: xr.Dataset
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def table(self, by: str = "method") -> pd.DataFrame:
        """Mean of the scores over the test dates, one row per ``by``.

        The six survey scores, ubRMSE, MAE, bias and, when scored on the common mask,
        the skill against the coarse-only baseline.
        """
        cols = [v for v in TABLE_SCORES if v in self.scores]
        df = self.scores[cols].to_dataframe()[cols]
        return df.groupby(level=by).mean()


def split_test_dates(
    pairs: Sequence[Any], test: Sequence[Any] | float | None = None
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Split pair dates into training and test dates.

    Parameters
    ----------
    pairs : sequence of datetime-like
        The cube's pair dates.
    test : sequence of dates, float or None
        Explicit test dates (each must be a pair), or the share of pairs to hold out
        (default: the survey's 8/51). Test dates are spread evenly over the interior
        pairs, so every one is bracketed by training pairs.

    Returns
    -------
    (train, test) : tuple of pandas.DatetimeIndex

    Raises
    ------
    CubeError
        If a named date is not a pair or too few pairs would remain for training
        (a method needs two reference pairs; deep models check their own needs).

    Examples
    --------
    >>> import pandas as pd
    >>> train, test = split_test_dates(pd.date_range("2021-01-01", periods=51, freq="16D"))
    >>> len(train), len(test)
    (43, 8)
    """
    idx = pd.DatetimeIndex(sorted(set(pd.DatetimeIndex(list(pairs)))))
    if test is None or isinstance(test, float | int):
        share = SURVEY_TEST_SHARE if test is None else float(test)
        if not 0 < share < 1:
            raise ValueError(f"the test share must be in (0, 1), got {share}")
        n_test = max(1, round(share * len(idx)))
        interior = idx[1:-1]
        if len(interior) < n_test or len(idx) - n_test < 2:
            raise CubeError(
                f"the cube has {len(idx)} pair(s): holding out {n_test} test date(s) among the "
                f"{len(interior)} interior pair(s) would leave {len(idx) - n_test} for training; "
                "at least 2 are needed (the reference pairs). Add dates or lower min_coverage"
            )
        pos = list(
            np.unique(np.round(np.linspace(0, len(interior) - 1, n_test + 2)[1:-1]).astype(int))
        )
        spare = [i for i in range(len(interior)) if i not in pos]
        while len(pos) < n_test:  # rounding merged two positions: take unused ones, in order
            pos.append(spare.pop(0))
        test_idx = interior[sorted(pos)]
    else:
        test_idx = pd.DatetimeIndex(sorted(pd.DatetimeIndex(list(test))))
        bad = [str(d.date()) for d in test_idx if d not in idx]
        if bad:
            raise CubeError(
                f"test date(s) {bad} are not pairs of the cube (pairs: {[str(d.date()) for d in idx]})"
            )
    train = idx[~idx.isin(test_idx)]
    if len(train) < 2:
        raise CubeError(f"only {len(train)} training pair(s) remain after the split; 2 are needed")
    return train, test_idx


def variability(
    ds: xr.Dataset,
    targets: Sequence[Any],
    pairs: Sequence[Any],
    coarse: Hashable = "coarse",
    threshold: float | None = None,
) -> xr.Dataset:
    """Flag target dates of strong spatio-temporal variability, from the coarse data alone.

    For each target the nearest reference pair is taken and the spatial standard
    deviation of ``coarse(target) − coarse(reference)`` is computed: a uniform
    warming or cooling gives a small value (easy for every method), a change that
    differs across the scene (rain cooling vegetation but not the city, a front)
    gives a large one — the case the survey found every method to fail on.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    targets, pairs : sequence of datetime-like
        Dates to assess and the pair dates references come from.
    coarse : hashable
        Coarse variable name.
    threshold : float, optional
        Flag above this many K. Default: 1.5 × the median over the targets, and at
        least 1 K.

    Returns
    -------
    xarray.Dataset
        ``change_std`` (K), ``change_mean`` (K), ``strong`` (bool) along ``time`` and
        the threshold used in attrs.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=60, cloud_fraction=0.0)
    >>> v = variability(ds, ds.stf.targets[:3], ds.stf.pairs)
    >>> v.change_std.dims
    ('time',)
    """
    rows = []
    for t in targets:
        ref = _cube.reference_pairs(pairs, t, n=1)[0]
        d = (ds[coarse].sel(time=t) - ds[coarse].sel(time=ref)).values
        rows.append(
            (float(np.nanstd(d)), float(np.nanmean(d)))
            if np.isfinite(d).any()
            else (np.nan, np.nan)
        )
    arr = np.array(rows, dtype=float).reshape(-1, 2)
    med = np.nanmedian(arr[:, 0]) if np.isfinite(arr[:, 0]).any() else np.nan
    thr = (
        float(threshold)
        if threshold is not None
        else float(max(1.0, 1.5 * med))
        if np.isfinite(med)
        else 1.0
    )
    time = pd.DatetimeIndex(list(targets), name="time")
    return xr.Dataset(
        {
            "change_std": (
                "time",
                arr[:, 0],
                {"units": "K", "long_name": "spatial std of the coarse change"},
            ),
            "change_mean": ("time", arr[:, 1], {"units": "K", "long_name": "mean coarse change"}),
            "strong": (
                "time",
                arr[:, 0] > thr,
                {"long_name": "strong spatio-temporal variability"},
            ),
        },
        coords={"time": time},
        attrs={"threshold_K": thr},
    )


def run(
    ds: xr.Dataset,
    methods: Sequence[str] = ("estarfm",),
    *,
    test: Sequence[Any] | float | None = None,
    reference: Hashable | None = None,
    fine: Hashable = "fine",
    coarse: Hashable = "coarse",
    regions: xr.DataArray | Hashable | None = "landcover",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    variability_threshold: float | None = None,
    seed: int = 0,
    progress: bool = True,
    common_mask: bool = True,
    command: str | None = None,
) -> ExperimentResult:
    """Run the survey's experiment on a cube.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    methods : sequence of str
        Names of :data:`METHODS`: ``"estarfm"``, ``"ubestarfm"`` (ESTARFM with bias
        correction), ``"starfm"``, the deep models (``"edcstfn"``, ``"sttfn"``,
        ``"mlffgan"``, ``"ganstfm"``) and any added by :func:`register_method`. The
        baseline ``"coarse_only"`` is always added. Checked before any work.
    test : sequence of dates, float or None
        Test dates (pairs), or the share of pairs to hold out (default 8/51, the
        survey's). Their Landsat images are hidden from every method.
    reference : hashable, optional
        Variable the predictions are scored against. Default ``fine`` (the held-out
        Landsat images, as in the survey).
    fine, coarse : hashable
        Variable names.
    regions : DataArray, hashable or None
        Land-cover labels for per-class scores (a variable name of ``ds`` or a
        DataArray); ignored when absent.
    options : mapping
        Per-method keyword arguments, e.g. ``{"edcstfn": {"epochs": 10},
        "estarfm": {"half_window": 15}}``.
    min_coverage : float
        Coverage threshold for pairs.
    variability_threshold : float, optional
        See :func:`variability`.
    seed : int
        Seed for the deep models.
    progress : bool
        Show progress bars.
    common_mask : bool
        Score every method on one mask per date: the pixels valid in the reference and
        in every prediction, the baseline's included (default), with the skill scores
        ``skill_rmse``/``skill_ubrmse`` against the baseline. ``False``: each method on
        its own valid pixels (methods with different gaps are then compared on different
        pixels, and no skill scores are computed).
    command : str, optional
        The command line that ran the experiment, for the report (``xstf benchmark``
        passes it; left out when called from Python).

    Returns
    -------
    ExperimentResult

    Warns
    -----
    UserWarning
        Warnings a method issued (e.g. a deep model's "the split has no validation
        date") are re-issued after it ran and kept in ``info["warnings"]`` for the report.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=200, cloud_fraction=0.1)
    >>> res = xstf.experiment.run(ds, ["estarfm"], progress=False)  # doctest: +SKIP
    >>> res.table()  # doctest: +SKIP
    """
    from .scoring import metrics

    methods = check_methods(methods)
    options = {str(k).lower(): dict(v) for k, v in (options or {}).items()}
    stray = sorted(set(options) - set(methods))
    if stray:
        raise ValueError(f"options given for method(s) {stray} that are not run ({methods})")
    _cube.validate(ds, fine, coarse, min_coverage, require_pairs=3)
    pairs = _cube.pair_dates(ds, fine, coarse, min_coverage)
    train, test_dates = split_test_dates(pairs, test)
    hidden = ds["time"].isin(test_dates.values)
    train_cube = ds.assign({fine: ds[fine].where(~hidden)})  # no method ever sees the test images
    ref_name = fine if reference is None else reference
    truth = ds[ref_name].sel(time=test_dates)

    predictions: dict[str, xr.DataArray] = {BASELINE: ds[coarse].sel(time=test_dates)}
    timings: dict[str, dict[str, float]] = {BASELINE: {}}
    issued: dict[str, list[str]] = {}
    for m in methods:
        entry = METHODS[m]
        if progress:
            print(
                f"xstf experiment: {m} on {len(test_dates)} test date(s)",
                file=sys.stderr,
                flush=True,
            )
        opts = dict(options.get(m, {}))
        if entry.trains:
            opts = _small_scene_options(train_cube, {"seed": seed, "progress": progress, **opts})
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = entry.func(train_cube, test_dates, fine=fine, coarse=coarse, **opts).compute()
        timings[m] = {"run_s": time.perf_counter() - t0}
        if entry.trains:
            timings[m]["patch_size"] = float(opts.get("patch_size", 95))
        for w in caught:  # re-issued in the caller's thread; xstf's own kept for the report
            if _ours(w):
                issued.setdefault(m, []).append(str(w.message))
                warnings.warn(f"{m}: {w.message}", w.category, stacklevel=2)
            else:  # a library's (deprecations, GDAL): through the usual filters, as it was
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        predictions[m] = out.drop_vars([c for c in out.coords if c not in ("time", "y", "x")])
    preds = xr.Dataset(
        {k: v.reindex(time=test_dates).astype("float32") for k, v in predictions.items()}
    )
    preds = preds.assign_coords(y=ds["y"], x=ds["x"])

    labels = None
    if isinstance(regions, xr.DataArray):
        labels = regions
    elif regions is not None and regions in ds:
        labels = ds[regions]
    ratio = 1.0 / _cube.resolution_ratio(ds)
    kw: dict[str, Any] = {"ratio": ratio}
    if common_mask:
        kw.update(baseline=preds[BASELINE], common_mask=True)
    scores = metrics(preds, truth, **kw).compute()
    if labels is not None:
        by_region = metrics(preds, truth, regions=labels, **kw).compute()
        scores = scores.assign(
            {f"{k}_by_region": by_region[k] for k in ("rmse", "ubrmse", "ssim", "cc", "bias")}
        )
    var = variability(ds, test_dates, train, coarse=coarse, threshold=variability_threshold)
    scores = scores.assign_coords(strong_variability=("time", var.strong.values))
    info: dict[str, Any] = {
        "methods": [BASELINE, *methods],
        "n_pairs": len(pairs),
        "train_dates": [str(d.date()) for d in train],
        "test_dates": [str(d.date()) for d in test_dates],
        "reference": str(ref_name),
        "ratio": ratio,
        "options": {k: dict(v) for k, v in options.items()},
        "seed": seed,
        "common_mask": bool(common_mask),
        "warnings": issued,
        "versions": _versions(),
    }
    if command is not None:
        info["command"] = command
    return ExperimentResult(scores, preds, test_dates, train, var, timings, info)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("xstf", "numpy", "xarray", "dask", "numba", "torch", "scikit-image"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
