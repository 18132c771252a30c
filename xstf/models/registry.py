"""The deep models xstf knows: names, specs, construction and devices (no torch at import).

Every other module of :mod:`xstf.models` finds a model through this one (never
through the package front :mod:`xstf.models`): :data:`MODULES` names the module that
defines and registers each model, :func:`get_spec` imports it and returns its
:class:`~xstf.models.base.ModelSpec`, :func:`create` builds its network,
:func:`available` says which models can run here (torch importable and the model's
module importing cleanly), :func:`resolve_device` turns ``"auto"`` into a device.

Examples
--------
>>> from xstf.models import registry
>>> registry.names()
['edcstfn', 'sttfn', 'mlffgan', 'ganstfm']
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from .base import ModelSpec

__all__ = [
    "MODULES",
    "available",
    "create",
    "get_spec",
    "names",
    "require_torch",
    "resolve_device",
]

log = logging.getLogger("xstf.models")

#: Model name -> module that defines and registers it.
MODULES: dict[str, str] = {
    "edcstfn": "xstf.models.edcstfn",
    "sttfn": "xstf.models.sttfn",
    "mlffgan": "xstf.models.mlffgan",
    "ganstfm": "xstf.models.ganstfm",
}

INSTALL = "PyTorch is needed for the deep models: pip install 'xstf[torch]'"


def require_torch() -> Any:
    """Import and return :mod:`torch`, or raise an ImportError saying how to install it.

    Examples
    --------
    >>> require_torch().__name__
    'torch'
    """
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"{INSTALL} ({err})") from err
    return torch


def names() -> list[str]:
    """Every deep model name xstf defines, whether or not it can run here (no import).

    Examples
    --------
    >>> "ganstfm" in names()
    True
    """
    return list(MODULES)


def _torch_installed() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # pragma: no cover - a broken torch install
        return False


def available() -> list[str]:
    """Names of the deep models that can run in this installation.

    A model is available when torch imports and its module imports and registers it;
    without torch the list is empty (:func:`names` lists every model). The first call
    imports torch and the model modules (a second or two); later calls are cheap.

    Returns
    -------
    list of str
        In :data:`MODULES` order.

    Examples
    --------
    >>> "edcstfn" in available()
    True
    """
    if not _torch_installed():
        return []
    try:
        require_torch()
    except ImportError as err:
        log.debug("xstf.models: torch does not import: %s", err)
        return []
    from .base import REGISTRY

    out = []
    for name, module in MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError as err:  # pragma: no cover - a model needing a missing extra
            log.debug("xstf.models: %s does not import: %s", module, err)
            continue
        if name in REGISTRY:
            out.append(name)
    return out


def get_spec(name: str) -> ModelSpec:
    """The registered :class:`~xstf.models.base.ModelSpec` of model ``name`` (imports its module).

    Parameters
    ----------
    name : str
        A name from :func:`names` (case-insensitive).

    Returns
    -------
    ModelSpec

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is not a model xstf defines.
    ImportError
        If torch is missing (the message says how to install it).

    Examples
    --------
    >>> get_spec("edcstfn").n_refs
    2
    """
    if not isinstance(name, str):
        raise TypeError(f"model must be a model name (str), got {type(name).__name__}")
    key = name.lower()
    if key not in MODULES:
        raise ValueError(f"unknown deep model {name!r}; xstf's deep models: {names()}")
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else as given, checked.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        A CUDA device on a machine without CUDA.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    torch = require_torch()
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available here; use device='cpu' or 'auto'"
        )
    return dev
