"""Deep spatio-temporal fusion models (PyTorch, an optional extra: ``pip install 'xstf[torch]'``).

This package imports without torch; :func:`names` lists the models xstf defines and
:func:`available` those that can run here. Everything else (:func:`create`,
:func:`fit`, :func:`predict`, :func:`load_model`, :class:`FittedModel`) needs torch
and imports it on first use.

Fitting and predicting are two steps: :func:`fit` trains a model on a cube's pairs
and returns a :class:`FittedModel`; :func:`predict` takes that model (or the path of
one saved with :meth:`FittedModel.save`) and never trains.

Each model lives in its own module, which registers a
:class:`~xstf.models.base.ModelSpec` when imported; the generic machinery drives
every model the same way (the package front only re-exports; the modules import
each other directly, never through it):

- :mod:`xstf.models.registry`: names, specs, :func:`create`, :func:`available`,
  devices;
- :mod:`xstf.models.base`: the spec and the training-recipe contract (with a no-op
  base class); :mod:`xstf.models.gan`: the GAN recipes' shared optimisers and step;
- :mod:`xstf.models.split`: samples (reference pairs, target) from the cube and the
  split by date; :mod:`xstf.models.data`: patches, normalisation, a torch ``Dataset``;
- :mod:`xstf.models.train`: :func:`fit`, the training loop;
- :mod:`xstf.models.checkpoint`: :class:`FittedModel`, saving and loading;
- :mod:`xstf.models.inference`: :func:`predict`, tiled, lazy inference;
- :mod:`xstf.models.losses`: masked losses.

Examples
--------
>>> import xstf.models
>>> "edcstfn" in xstf.models.names()
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import (
    MODULES,
    available,
    create,
    get_spec,
    names,
    require_torch,
    resolve_device,
)

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import FittedModel

__all__ = [
    "MODULES",
    "FittedModel",
    "available",
    "create",
    "fit",
    "get_spec",
    "load_model",
    "names",
    "predict",
    "require_torch",
    "resolve_device",
]


def fit(ds: Any, model: str, **kwargs: Any) -> FittedModel:
    """Train a deep model on a cube's pairs. See :func:`xstf.models.train.fit`.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=120, seed=2, cloud_fraction=0.1)
    >>> m = fit(ds, "edcstfn", epochs=1, patch_size=24, stride=12, progress=False)
    >>> m.name
    'edcstfn'
    """
    require_torch()
    from .train import fit as _fit

    return _fit(ds, model, **kwargs)


def predict(ds: Any, model: Any, **kwargs: Any) -> Any:
    """Predict fine LST with a fitted deep model. See :func:`xstf.models.inference.predict`.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=120, seed=2, cloud_fraction=0.1)
    >>> m = fit(ds, "edcstfn", epochs=1, patch_size=24, stride=12, progress=False)
    >>> predict(ds, m, targets=ds.stf.targets[:2]).dims
    ('time', 'y', 'x')
    """
    require_torch()
    from .inference import predict as _predict

    return _predict(ds, model, **kwargs)


def load_model(path: Any, device: str = "cpu") -> FittedModel:
    """Load a model saved with :meth:`FittedModel.save`. See :func:`xstf.models.checkpoint.load_model`.

    Examples
    --------
    >>> model = load_model("edcstfn.pt")  # doctest: +SKIP
    """
    require_torch()
    from .checkpoint import load_model as _load

    return _load(path, device=device)


def __getattr__(name: str) -> Any:
    if name == "FittedModel":
        require_torch()
        from .checkpoint import FittedModel

        return FittedModel
    raise AttributeError(f"module 'xstf.models' has no attribute {name!r}")
