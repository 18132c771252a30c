"""Deep spatio-temporal fusion models (PyTorch, an optional extra: ``pip install 'xstf[torch]'``).

This package imports without torch; :func:`available` lists the models. Everything
else (:func:`create`, :func:`fit`, :func:`predict`, :func:`load_model`,
:class:`FittedModel`) needs torch and imports it on first use.

Each model lives in its own module, which registers a
:class:`~xstf.models.base.ModelSpec` when imported; the generic machinery drives
every model the same way:

- :mod:`xstf.models.data`: samples (reference pairs, target) from the cube, the
  split by date, patches, normalisation, a torch ``Dataset``;
- :mod:`xstf.models.train`: :func:`fit`, the training loop;
- :mod:`xstf.models.inference`: :func:`predict`, tiled, lazy inference;
- :mod:`xstf.models.checkpoint`: :class:`FittedModel`, saving and loading;
- :mod:`xstf.models.losses`: masked losses.

Examples
--------
>>> import xstf.models
>>> "edcstfn" in xstf.models.available()
True
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .base import ModelSpec
    from .checkpoint import FittedModel

__all__ = [
    "MODULES",
    "FittedModel",
    "available",
    "create",
    "fit",
    "get_spec",
    "load_model",
    "predict",
]

#: Model name -> module that defines and registers it.
MODULES: dict[str, str] = {
    "edcstfn": "xstf.models.edcstfn",
    "sttfn": "xstf.models.sttfn",
    "mlffgan": "xstf.models.mlffgan",
    "ganstfm": "xstf.models.ganstfm",
}

_INSTALL = "PyTorch is needed for the deep models: pip install 'xstf[torch]'"


def require_torch() -> Any:
    """Import and return :mod:`torch`, or raise an ImportError saying how to install it."""
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is installed in the test env
        raise ImportError(f"{_INSTALL} ({err})") from err
    return torch


def available() -> list[str]:
    """Names of the deep models this installation provides (no torch import).

    Returns
    -------
    list of str
        Registry names whose module exists, in :data:`MODULES` order.

    Examples
    --------
    >>> "edcstfn" in available()
    True
    """
    out = []
    for name, module in MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # pragma: no cover
            found = False
        if found:
            out.append(name)
    return out


def get_spec(name: str) -> ModelSpec:
    """The registered :class:`~xstf.models.base.ModelSpec` of model ``name`` (imports its module).

    Raises
    ------
    ValueError
        If ``name`` is not a model this installation has.
    ImportError
        If torch is missing.

    Examples
    --------
    >>> get_spec("edcstfn").n_refs
    2
    """
    if not isinstance(name, str):
        raise TypeError(f"model must be a model name (str), got {type(name).__name__}")
    key = name.lower()
    if key not in MODULES or key not in available():
        raise ValueError(f"unknown deep model {name!r}; available: {available()}")
    require_torch()
    importlib.import_module(MODULES[key])
    from .base import REGISTRY

    return REGISTRY[key]


def create(name: str, bands: int = 1, **options: Any) -> nn.Module:
    """Build the prediction network of model ``name`` with the published defaults.

    Parameters
    ----------
    name : str
        A name from :func:`available`.
    bands : int
        Number of bands (1 for LST).
    **options
        Architecture options of that model's ``build`` (e.g. ``width`` for EDCSTFN).

    Returns
    -------
    torch.nn.Module
        The untrained network.

    Examples
    --------
    >>> net = create("edcstfn")
    >>> sum(p.numel() for p in net.parameters())
    278209
    """
    return get_spec(name).build(bands=bands, **options)


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


def predict(ds: Any, model: Any = "edcstfn", **kwargs: Any) -> Any:
    """Predict fine LST with a deep model. See :func:`xstf.models.inference.predict`.

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
