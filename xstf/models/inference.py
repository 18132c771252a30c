"""Tiled, lazy inference of the deep models (imports torch).

For each target date the inputs (target coarse, then coarse and fine of each
reference pair, chosen by :func:`xstf.cube.reference_pairs`) are normalised with
the model's statistics — with the ``"date_level"`` normalisation (the default),
after subtracting the date's level, the mean of the target coarse image over the
whole scene, which is added back to the output — missing pixels filled with 0 and
flagged, and each date is predicted by :mod:`xstf.models.tiling`: in tiles of at most
``tile`` px, each reading ``overlap`` px of context (default: the model's receptive
field) beyond the pixels it predicts, with the per-image statistics of MLFF-GAN and
GAN-STFM computed once on the whole date, so the result equals one forward pass on
the whole date whatever the tile size. On a dask cube the same runs per date and per
spatial chunk (lazy ``dask.delayed`` tasks reading each chunk with its context, the
statistics combined over the chunks of a date); the date levels are a lazy dask
reduction over the whole scene, so tiles and chunks see the same level; nothing is
computed until asked, and the result does not depend on the chunks.

Fitting is :func:`xstf.models.fit`'s job: :func:`predict` takes a fitted model or
the path of a saved one, never a model name. The model and the cube are checked
before any work (variables, bands, resolution ratio), also on a dask cube. A
prediction whose spatial standard deviation is below a quarter of the target coarse
image's (a nearly flat image, the sign of an under-trained model) is warned about,
per date, when the date is predicted (on a dask cube: when a task holds a whole
date, i.e. the cube is not chunked in space).

NaN rules: the output is NaN where the target coarse image is NaN. Missing
reference pixels (fine or coarse) do not make the output NaN: they are filled with
0 after normalisation (the training mean, plus the date level with
``"date_level"``), as in training, and the network predicts from the rest.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .. import cube as _cube
from ..errors import CubeError
from ..prediction import resolve_targets, wrap_prediction
from .checkpoint import FittedModel, load_model
from .data import scene_level
from .registry import MODULES, get_spec, resolve_device
from .tiling import channels_last_weights, predict_image, predict_stack, receptive_field

__all__ = ["FLAT_RATIO", "predict", "predict_image"]

#: A prediction whose spatial std is below this share of the target coarse image's warns.
FLAT_RATIO = 0.25
#: ...unless the coarse image itself is this flat (K): nothing to compare against.
_FLAT_MIN_STD = 0.05

log = logging.getLogger("xstf.models")

_NETS: OrderedDict[tuple[str, str], torch.nn.Module] = OrderedDict()
_NETS_LOCK = threading.Lock()


def _cached_net(
    token: str, device: str, spec_name: str, bands: int, options: dict, state: dict
) -> torch.nn.Module:
    key = (token, device)
    with _NETS_LOCK:
        net = _NETS.get(key)
        if net is None:
            net = get_spec(spec_name).build(bands=bands, **options)
            net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
            net = net.to(device).eval()
            # the weight layout is set here, under the lock, before any dask thread runs
            # the net (predict_image would otherwise convert the shared net in place)
            channels_last_weights(net, device)
            _NETS[key] = net
            while len(_NETS) > 4:
                _NETS.popitem(last=False)
        else:
            _NETS.move_to_end(key)
    return net


def _warn_if_flat(pred: np.ndarray, coarse: np.ndarray, name: str, dates: list[str]) -> None:
    """One warning for the dates of ``pred`` (t, h, w) much flatter than their target coarse image.

    Cheap: two ``nanstd`` per date.
    """
    flat = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN dates
        for p, c, d in zip(pred, coarse, dates, strict=True):
            sp, sc = float(np.nanstd(p)), float(np.nanstd(c))
            if np.isfinite(sp) and np.isfinite(sc) and sc >= _FLAT_MIN_STD and sp < FLAT_RATIO * sc:
                flat.append(f"{d or '?'}: {sp:.3g} K vs {sc:.3g} K")
    if flat:
        warnings.warn(
            f"the {name} prediction is nearly flat on {len(flat)} of {len(pred)} date(s): spatial "
            f"std below {FLAT_RATIO:.0%} of the target coarse image's ({'; '.join(flat[:5])}"
            f"{'; ...' if len(flat) > 5 else ''}). The model is probably under-trained: fit it "
            "for more epochs or patches (xstf.models.fit(..., epochs=, patches_per_epoch=)) and "
            "check its history",
            UserWarning,
            stacklevel=2,
        )


def _check_block(
    pred: np.ndarray, coarse: np.ndarray, name: str, dates: list[str], block_info: Any = None
) -> np.ndarray:
    first = int(block_info[0]["array-location"][0][0]) if block_info else 0
    _warn_if_flat(pred, coarse, name, dates[first : first + len(pred)])
    return pred


def _flat_checked(data: Any, coarse: Any, name: str, dates: list[str]) -> Any:
    """``data`` with the flat-prediction check: now on numpy, at compute time on dask.

    On dask the check runs only where a task holds whole dates (no spatial chunks):
    a chunk's own std says nothing about the date's.
    """
    if isinstance(data, np.ndarray):
        _warn_if_flat(data, coarse, name, dates)
        return data
    if data.numblocks[1:] != (1, 1):
        return data
    import dask.array as da

    return da.map_blocks(
        functools.partial(_check_block, name=name, dates=dates),
        data,
        coarse.rechunk(data.chunks),
        dtype=data.dtype,
        meta=np.empty((0, 0, 0), np.float32),
    )


def _resolve_model(model: Any) -> FittedModel:
    """A FittedModel, or one loaded from a path; a model name is refused (fitting is fit's job)."""
    if isinstance(model, FittedModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        key = str(model)
        if not Path(key).exists() and key.lower() in MODULES:
            raise TypeError(
                f"predict needs a fitted model, not the model name {key!r}: fit one first, "
                f"model = xstf.models.fit(ds, {key.lower()!r}, ...) (or ds.stf.fit), then "
                "predict(ds, model); or pass the path of a model saved with FittedModel.save"
            )
        return load_model(key, device="cpu")
    raise TypeError(
        "model must be a FittedModel (from xstf.models.fit or xstf.load_model) or the path of a "
        f"saved model, got {type(model).__name__}"
    )


def _cube_bands(da: xr.DataArray) -> int:
    extra = [d for d in da.dims if d not in ("time", "y", "x")]
    return int(np.prod([da.sizes[d] for d in extra])) if extra else 1


def _check_model_and_cube(
    ds: xr.Dataset, fm: FittedModel, fine: Hashable, coarse: Hashable, min_coverage: float
) -> None:
    """Every check of a model against a cube, before any work (eager, also on dask)."""
    cfg = fm.config
    missing = [v for v in (fine, coarse) if v not in ds.data_vars]
    if missing:
        raise CubeError(
            f"the model was fitted on variables fine={cfg.get('fine')!r}, coarse={cfg.get('coarse')!r}; "
            f"this cube has no {missing} (variables: {sorted(map(str, ds.data_vars))}). Pass "
            "fine=..., coarse=... to predict, or rename the cube's variables"
        )
    bands = int(cfg.get("bands", 1))
    have = {str(v): _cube_bands(ds[v]) for v in (fine, coarse)}
    if any(n != bands for n in have.values()):
        raise CubeError(
            f"the {fm.name} model was fitted with {bands} band(s); this cube's variables have "
            f"{have} band(s) (dims other than time/y/x). Predict with a model fitted on cubes "
            "with the same bands (xstf.models.fit(..., bands=...))"
        )
    _cube.validate(ds, fine, coarse, min_coverage, require_pairs=0)
    ratio = _cube.resolution_ratio(ds)
    mratio = cfg.get("resolution_ratio")
    if mratio is not None and abs(ratio - float(mratio)) > 0.01 * float(mratio):
        raise CubeError(
            f"the model was fitted on a cube with coarse/fine resolution ratio {float(mratio):.3g}; "
            f"this cube's is {ratio:.3g} (attrs fine_resolution/coarse_resolution). A deep model "
            "does not transfer across resolution ratios: fit one on this cube"
        )


def predict(
    ds: xr.Dataset,
    model: FittedModel | str | os.PathLike,
    targets: Iterable[Any] | None = None,
    *,
    tile: int = 1024,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str | torch.device = "auto",
    amp: bool = False,
    compile: bool = False,
    fine: Hashable | None = None,
    coarse: Hashable | None = None,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    rule: str = "bracket",
    anchor: str | None = None,
    gain: float = 1.0,
) -> xr.DataArray:
    """Predict fine LST on target dates with a deep fusion model.

    The inputs are normalised as the model was trained (``model.config["normalisation"]``).
    With ``"date_level"`` (the default of :func:`xstf.models.fit`), each target date's
    *level* — the mean of its coarse image over the whole scene, valid pixels — is
    subtracted from every input (target coarse, reference coarse and fine) and added
    back to the output: the network predicts the fine-scale anomaly, and a date
    warmer or colder than every training date is not out of distribution. The level
    is one scalar per date, the same for every tile and dask chunk (a lazy reduction
    on a dask cube), so tiling stays seamless and the result chunk-independent; a
    uniform offset added to every image of the cube shifts the prediction by the
    same offset. ``"global"`` (and models saved without the key) use one training
    mean and standard deviation.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube. Dask-backed -> the result is dask-backed (lazy).
    model : FittedModel or path
        A fitted model (:func:`xstf.models.fit`) or a file saved with
        :meth:`FittedModel.save`. A model name is refused with a TypeError: fit the
        model first (prediction never trains).
    targets : iterable of datetime-like, optional
        Dates to predict (default: :func:`xstf.cube.target_dates`). A pair date is
        predicted leave-one-out (it is not its own reference).
    tile : int
        Largest tile side in px (a date that fits is predicted in one piece).
    overlap : int, optional
        Context in px each tile (and each dask chunk) reads beyond the pixels it
        predicts; default the model's receptive field
        (:func:`xstf.models.tiling.receptive_field`), which makes the result equal to
        one forward pass on the whole date, whatever ``tile`` and the chunks
        (see :mod:`xstf.models.tiling`).
    batch_size : int
        Tiles per forward pass.
    device : str or torch.device
        ``"auto"``: CUDA if available, else CPU.
    amp : bool
        Mixed precision (bfloat16 on CPU, float16 on CUDA): not equal to the float32
        result (about 1e-2 of the std; see :doc:`/guide/scaling`).
    compile : bool
        Predict through ``torch.compile`` (fused kernels, equal to the eager result
        up to float32 rounding): faster per pixel, but the first date compiles
        (a minute or two on a small CPU, cached on disk by inductor), so it pays on
        large scenes or many dates. A failed compile warns and falls back to the
        eager network.
    fine, coarse : hashable, optional
        Variable names; default: the names the model was fitted with.
    min_coverage : float
        Coverage for a date to count as a pair (references).
    rule : {"bracket", "nearest"}
        Reference-pair rule (:func:`xstf.cube.reference_pairs`).
    anchor : {None, "coarse"}
        ``"coarse"``: take the prediction's level at the MODIS scale from the target's
        own coarse image and keep the network's sub-km detail (:func:`xstf.anchor.anchor`).
    gain : float
        With ``anchor="coarse"``, the gain in ``[0, 1]`` on that detail (0 = coarse only).

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` float32 LST in K with the cube's coords, coordinates
        ``reference_pair_1``… (along time) holding each date's reference pairs, and
        attrs ``method`` (the model name, e.g. ``"edcstfn"``), ``parameters`` (JSON),
        ``reference`` (citation), ``units`` — the layout of :func:`xstf.estarfm`.

    Raises
    ------
    TypeError
        ``model`` is a model name or another object (fit a model first).
    ValueError
        A saved model that is empty, truncated, corrupt or incomplete.
    CubeError
        The cube lacks the variables the model was fitted on, has another number of
        bands, its resolution ratio differs from the model's, a target is not in the
        cube, or too few pairs (all checked before any work, also on a dask cube).

    Warns
    -----
    UserWarning
        A date whose prediction is nearly flat (spatial std below
        :data:`FLAT_RATIO` of the target coarse image's).

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=120, seed=1, cloud_fraction=0.0)
    >>> m = xstf.models.fit(ds, "edcstfn", epochs=1, batch_size=4, patch_size=32, stride=16,
    ...                     width=4, ae_epochs=0, progress=False, device="cpu")
    >>> out = xstf.models.predict(ds, m, targets=ds.time.values[5:7], device="cpu")
    >>> out.dims, out.shape
    (('time', 'y', 'x'), (2, 48, 48))
    """
    dev = resolve_device(device)
    fm = _resolve_model(model)
    cfg = fm.config
    fine = cfg.get("fine", "fine") if fine is None else fine
    coarse = cfg.get("coarse", "coarse") if coarse is None else coarse
    _check_model_and_cube(ds, fm, fine, coarse, min_coverage)
    if tile < 8 or (overlap is not None and overlap < 0) or batch_size < 1:
        raise ValueError(
            f"need tile >= 8, overlap >= 0, batch_size >= 1; got {tile}, {overlap}, {batch_size}"
        )
    n_refs = fm.n_refs
    pairs = _cube.pair_dates(ds, fine, coarse, min_coverage)
    times = ds.indexes["time"]
    # the date rules every method shares: explicit targets must be cube dates with coarse data
    tg = resolve_targets(ds, targets, coarse, min_coverage, fine)
    refs = [_cube.reference_pairs(pairs, t, n=n_refs, rule=rule) for t in tg]  # type: ignore[arg-type]
    ti = times.get_indexer(tg)
    ri = [times.get_indexer(pd.DatetimeIndex([r[k] for r in refs])) for k in range(n_refs)]
    fd, cd = ds[fine].data, ds[coarse].data
    lazy = not isinstance(fd, np.ndarray) or not isinstance(cd, np.ndarray)
    parts = [cd[ti]]
    for k in range(n_refs):
        parts += [cd[ri[k]], fd[ri[k]]]
    norm_mode = fm.normalisation
    # date_level: each target date's level = scene mean of its coarse image (float64, lazy
    # on dask), the same for every tile and chunk of that date
    levels = scene_level(cd[ti]) if norm_mode == "date_level" else None

    spec = get_spec(fm.name)
    state = {k: v.detach().cpu().numpy() for k, v in fm.net.state_dict().items()}
    load_net = functools.partial(
        _cached_net, uuid.uuid4().hex, str(dev), spec.name, int(cfg.get("bands", 1)),
        dict(cfg.get("model_options", {})), state,
    )  # fmt: skip
    overlap = receptive_field(fm.net) if overlap is None else int(overlap)
    if lazy:
        import dask.array as da

        stack = da.stack([da.asarray(p) for p in parts], axis=1).astype(np.float32)
        stack = stack.rechunk({0: 1, 1: -1})
        levels = None if levels is None else da.asarray(levels)
    else:
        stack = np.stack(parts, axis=1).astype(np.float32)
    data = predict_stack(
        stack, levels, load_net=load_net, template=fm.net, mean=fm.mean, std=fm.std,
        n_refs=n_refs, tile=int(tile), overlap=overlap, batch_size=int(batch_size),
        device=str(dev), amp=bool(amp), multiple=int(spec.defaults.get("size_multiple", 1)),
        compile=bool(compile),
    )  # fmt: skip
    data = _flat_checked(data, stack[:, 0], spec.name, [str(t.date()) for t in tg])
    params = {
        "model": spec.name,
        "model_options": cfg.get("model_options", {}),
        "fine": str(fine),
        "coarse": str(coarse),
        "normalisation": norm_mode,
        "mean": fm.mean,
        "std": fm.std,
        "tile": int(tile),
        "overlap": int(overlap),
        "amp": bool(amp),
        "compile": bool(compile),
        "rule": rule,
        "min_coverage": float(min_coverage),
        "split": cfg.get("split"),
    }
    # the output contract every method shares (xstf.prediction), plus the model's citation
    out = wrap_prediction(data, ds, tg, spec.name, params, refs, coarse)
    out.attrs["long_name"] = f"fine-scale LST predicted by {spec.name.upper()}"
    out.attrs["reference"] = spec.reference
    from ..anchor import anchor_result

    return anchor_result(ds, out, anchor, gain, coarse)
