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

NaN rules: the output is NaN where the target coarse image is NaN. Missing
reference pixels (fine or coarse) do not make the output NaN: they are filled with
0 after normalisation (the training mean, plus the date level with
``"date_level"``), as in training, and the network predicts from the rest.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import uuid
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
from . import MODULES, get_spec
from .checkpoint import FittedModel, load_model
from .data import scene_level
from .tiling import predict_image, predict_stack, receptive_field
from .train import fit, resolve_device

__all__ = ["predict", "predict_image"]

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
            _NETS[key] = net
            while len(_NETS) > 4:
                _NETS.popitem(last=False)
        else:
            _NETS.move_to_end(key)
    return net


def _resolve_model(
    ds: xr.Dataset, model: Any, device: torch.device, fit_options: dict | None
) -> FittedModel:
    if isinstance(model, FittedModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        key = str(model)
        if key.lower() in MODULES and not Path(key).exists():
            opts = dict(fit_options or {})
            opts.setdefault("device", device)
            log.warning(
                "xstf: no fitted model given: fitting %r on this cube's pairs first (%s); pass a "
                "FittedModel (xstf.models.fit) or a saved model path to skip this",
                key.lower(), ", ".join(f"{k}={v}" for k, v in opts.items()) or "default options",
            )  # fmt: skip
            return fit(ds, key.lower(), **opts)
        return load_model(key, device="cpu")
    raise TypeError(
        f"model must be a FittedModel, a path to a saved model or a model name "
        f"({list(MODULES)}), got {type(model).__name__}"
    )


def predict(
    ds: xr.Dataset,
    model: Any = "edcstfn",
    targets: Iterable[Any] | None = None,
    *,
    tile: int = 1024,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str | torch.device = "auto",
    amp: bool = False,
    fine: Hashable | None = None,
    coarse: Hashable | None = None,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    rule: str = "bracket",
    fit_options: dict[str, Any] | None = None,
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
    model : FittedModel, path or str
        A fitted model, a file saved with :meth:`FittedModel.save`, or a model name
        (then it is first fitted on this cube's pairs with ``fit_options``, which
        is logged).
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
        Mixed precision (bfloat16 on CPU, float16 on CUDA).
    fine, coarse : hashable, optional
        Variable names; default: the names the model was fitted with.
    min_coverage : float
        Coverage for a date to count as a pair (references).
    rule : {"bracket", "nearest"}
        Reference-pair rule (:func:`xstf.cube.reference_pairs`).
    fit_options : dict, optional
        Options for :func:`xstf.models.fit` when ``model`` is a name.

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` float32 LST in K with the cube's coords, coordinates
        ``reference_pair_1``… (along time) holding each date's reference pairs, and
        attrs ``method`` (the model name, e.g. ``"edcstfn"``), ``parameters`` (JSON),
        ``reference`` (citation), ``units`` — the layout of :func:`xstf.estarfm`.

    Raises
    ------
    CubeError
        The cube lacks the variables the model was fitted on, its resolution ratio
        differs from the model's, a target is not in the cube, or too few pairs.

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
    fm = _resolve_model(ds, model, dev, fit_options)
    cfg = fm.config
    fine = cfg.get("fine", "fine") if fine is None else fine
    coarse = cfg.get("coarse", "coarse") if coarse is None else coarse
    missing = [v for v in (fine, coarse) if v not in ds.data_vars]
    if missing:
        raise CubeError(
            f"the model was fitted on variables fine={cfg.get('fine')!r}, coarse={cfg.get('coarse')!r}; "
            f"this cube has no {missing} (variables: {sorted(map(str, ds.data_vars))}). Pass "
            "fine=..., coarse=... to predict, or rename the cube's variables"
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
    if tile < 8 or (overlap is not None and overlap < 0) or batch_size < 1:
        raise ValueError(
            f"need tile >= 8, overlap >= 0, batch_size >= 1; got {tile}, {overlap}, {batch_size}"
        )
    n_refs = fm.n_refs
    pairs = _cube.pair_dates(ds, fine, coarse, min_coverage)
    times = ds.indexes["time"]
    if targets is None:
        tg = _cube.target_dates(ds, fine, coarse, min_coverage)
    else:
        tg = pd.DatetimeIndex([pd.Timestamp(t) for t in np.atleast_1d(np.asarray(targets))])
        absent = [str(t.date()) for t in tg if t not in times]
        if absent:
            raise CubeError(f"target date(s) {absent} are not in the cube's time coordinate")
    if len(tg) == 0:
        raise CubeError(
            f"no target date to predict (no date with >= {min_coverage:.0%} coarse coverage that is "
            "not a pair); pass targets=[...]"
        )
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
    )  # fmt: skip
    template = ds[coarse].sel(time=tg)
    out = xr.DataArray(data, coords=template.coords, dims=template.dims, name=spec.name)
    for k in range(n_refs):
        name = f"reference_pair_{k + 1}"
        out = out.assign_coords({name: ("time", pd.DatetimeIndex([r[k] for r in refs]).values)})
        out[name].attrs["long_name"] = f"reference pair {k + 1} (in date order) used for each date"
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
        "rule": rule,
        "min_coverage": float(min_coverage),
        "split": cfg.get("split"),
    }
    out.attrs = {
        "units": "K",
        "standard_name": "surface_temperature",
        "long_name": f"fine-scale LST predicted by {spec.name.upper()}",
        "method": spec.name,
        "parameters": json.dumps(params, sort_keys=True, default=str),
        "reference": spec.reference,
    }
    return out
