"""Fitted models and checkpoints (imports torch).

A checkpoint is ONE ``.pt`` file written with :func:`torch.save` that holds only
plain data: tensors (the ``state_dict`` of each module, optimiser states), numbers,
strings, lists and dicts, with the configuration and the training history as JSON
strings. It is read back with ``torch.load(weights_only=True)``, which refuses
anything that would run code when unpickled; a file that does not hold an xstf
checkpoint is refused with a :class:`ValueError`.

Integrity: on save, a SHA-256 checksum of every weight tensor (``modules`` and, in a
training checkpoint, ``best``: names, dtypes, shapes and bytes; see
:func:`weights_sha256`) is written in the file; on load it is recomputed and a
mismatch (a corrupted or tampered file) is refused with a :class:`ValueError`, as
are empty and truncated files and a configuration that lacks what prediction needs
(``model``, ``n_refs``, ``mean``, ``std``). Files of version 1 (before the
checksum) still load, with a warning that they cannot be verified.

Layout (``version`` 2)::

    {"format": "xstf-checkpoint", "version": 2,
     "sha256": "<hex>",             # checksum of the weights
     "config": "<JSON>",            # model name, options, normalisation, names, ratio, split...
     "history": "<JSON>",           # one dict per epoch
     "modules": {"net": state_dict, ...},
     # training checkpoints also have:
     "optimizers": {...}, "schedulers": {...}, "best": {...}, "epoch": int,
     "best_epoch": int, "best_loss": float, "bad_epochs": int}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .registry import get_spec

__all__ = [
    "FORMAT",
    "FittedModel",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "weights_sha256",
]

FORMAT = "xstf-checkpoint"
VERSION = 2
#: Versions this xstf reads (1: no checksum).
READS = (1, 2)
#: Config keys a model needs to predict.
REQUIRED_CONFIG = ("model", "n_refs", "mean", "std")
_FIX = "re-copy the file, or save the model again with FittedModel.save"


def _hash_into(h: Any, name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            _hash_into(h, f"{name}/{key}", value[key])
    elif isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy())
    else:
        h.update(f"{name}={value!r};".encode())


def weights_sha256(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the weights of checkpoint data: its ``modules`` and ``best`` states.

    Every tensor's name, dtype, shape and bytes count, in sorted name order, so the
    digest does not depend on the device or on dict order.

    Examples
    --------
    >>> import torch
    >>> a = weights_sha256({"modules": {"net": {"w": torch.zeros(2)}}})
    >>> b = weights_sha256({"modules": {"net": {"w": torch.tensor([0.0, 1e-30])}}})
    >>> len(a), a == b
    (64, False)
    """
    h = hashlib.sha256()
    for part in ("modules", "best"):
        if part in data and data[part] is not None:
            _hash_into(h, part, data[part])
    return h.hexdigest()


def _to_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def save_checkpoint(
    path: str | os.PathLike, payload: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write ``payload`` (plain data) with the xstf header to ``path``, atomically.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> save_checkpoint("model.pt", {"format": "xstf-checkpoint", "config": {}})  # doctest: +SKIP
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**payload, "format": FORMAT, "version": VERSION}
    data["sha256"] = weights_sha256(data)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read an xstf checkpoint with ``torch.load(weights_only=True)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an xstf checkpoint (including a pickle that holds code or
        arbitrary objects, which ``weights_only`` loading refuses).

    Examples
    --------
    >>> data = load_checkpoint("edcstfn.pt")  # doctest: +SKIP
    >>> data["config"]["model"]  # doctest: +SKIP
    'edcstfn'
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not an xstf checkpoint: {_FIX}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types here (unpickling, zip, OSError...)
        lines = str(err).strip().splitlines()
        why = lines[0] if lines else type(err).__name__
        raise ValueError(
            f"{path} is not an xstf checkpoint, or is truncated or corrupt, or holds objects other "
            f"than tensors and plain data (refused by torch.load(weights_only=True)): {why}. "
            f"If it is a model you saved: {_FIX}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an xstf checkpoint (no 'format': {FORMAT!r} header); save models with "
            "FittedModel.save"
        )
    version = data.get("version")
    if version not in READS:
        raise ValueError(
            f"{path} is an xstf checkpoint of version {version}; this xstf reads versions "
            f"{list(READS)}: upgrade xstf, or save the model again with this version"
        )
    _check_integrity(path, data)
    return data


def _check_integrity(path: Path, data: dict[str, Any]) -> None:
    missing = [k for k in ("config", "modules") if k not in data]
    if not missing and not (isinstance(data["modules"], dict) and "net" in data["modules"]):
        missing = ["modules['net']"]
    if missing:
        raise ValueError(f"{path} is an incomplete xstf checkpoint (no {missing}): {_FIX}")
    if data["version"] == 1:
        warnings.warn(
            f"{path} is a version-1 xstf checkpoint, written without a checksum: its weights "
            "cannot be verified; save it again to add one",
            UserWarning,
            stacklevel=3,
        )
        return
    want = data.get("sha256")
    if not isinstance(want, str):
        raise ValueError(f"{path} has no weights checksum ('sha256'): {_FIX}")
    got = weights_sha256(data)
    if got != want:
        raise ValueError(
            f"{path} is corrupt: the checksum of its weights ({got[:12]}…) differs from the one "
            f"written when it was saved ({want[:12]}…): {_FIX}"
        )


class FittedModel:
    """A trained deep fusion model: its network, configuration, normalisation and history.

    Returned by :func:`xstf.models.fit` and :func:`load_model`; pass it to
    :func:`xstf.models.predict` (or ``ds.stf.predict(model)``), the one way to predict
    (the model has no ``predict`` method of its own).

    Attributes
    ----------
    name : str
        The model's registry name.
    net : torch.nn.Module
        The prediction network (eval mode).
    config : dict
        JSON-able: ``model``, ``bands``, ``model_options`` (architecture),
        ``train_options``, ``n_refs``, ``fine``/``coarse`` (variable names it was
        fitted on), ``resolution_ratio``, ``normalisation`` (``"date_level"`` or
        ``"global"``; absent in older checkpoints, which means ``"global"``),
        ``mean``/``std`` (normalisation, K; of the anomalies from the date level
        with ``"date_level"``),
        ``patch_size``, ``stride``, ``min_valid``, ``min_coverage``, ``split``
        (ISO dates), ``seed``, ``best_epoch``, ``xstf_version``.
    history : list of dict
        Per epoch: ``epoch``, the mean training losses, ``val_loss``, ``lr``, ``seconds``.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=48, days=120, seed=2, cloud_fraction=0.1)
    >>> m = xstf.models.fit(ds, "edcstfn", epochs=1, patch_size=24, stride=12, progress=False)
    >>> type(m).__name__, m.name
    ('FittedModel', 'edcstfn')
    """

    def __init__(
        self, name: str, net: nn.Module, config: dict[str, Any], history: list[dict[str, Any]]
    ):
        self.name = name
        self.net = net.eval()
        self.config = dict(config)
        self.history = list(history)

    @property
    def mean(self) -> float:
        """Normalisation mean (K)."""
        return float(self.config["mean"])

    @property
    def std(self) -> float:
        """Normalisation standard deviation (K)."""
        return float(self.config["std"])

    @property
    def normalisation(self) -> str:
        """``"date_level"`` or ``"global"`` (a config without the key: ``"global"``)."""
        return str(self.config.get("normalisation", "global"))

    @property
    def n_refs(self) -> int:
        """Reference pairs per prediction."""
        return int(self.config["n_refs"])

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.net.parameters())
        best = self.config.get("best_epoch")
        val = min((h["val_loss"] for h in self.history), default=float("nan"))
        return (
            f"<FittedModel {self.name!r}: {n:,} parameters, {len(self.history)} epoch(s), "
            f"best epoch {best}, val loss {val:.4g}>"
        )

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save to one ``.pt`` file (weights + JSON config + history).

        Parameters
        ----------
        path : str or path
            File to write (a ``.pt`` suffix is conventional).
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path

        Examples
        --------
        >>> import tempfile, pathlib, xstf
        >>> from xstf.models.registry import create
        >>> m = FittedModel("edcstfn", create("edcstfn", width=4),
        ...                 {"model": "edcstfn", "bands": 1, "model_options": {"width": 4},
        ...                  "mean": 290.0, "std": 5.0, "n_refs": 2}, [])
        >>> p = m.save(pathlib.Path(tempfile.mkdtemp()) / "m.pt")
        >>> xstf.load_model(p).config["mean"]
        290.0
        """
        return save_checkpoint(
            path,
            {
                "config": json.dumps(self.config),
                "history": json.dumps(self.history),
                "modules": {"net": _to_cpu(self.net.state_dict())},
            },
            overwrite=overwrite,
        )

    def to(self, device: str | torch.device) -> FittedModel:
        """Move the network to ``device`` (in place); returns self."""
        self.net.to(device)
        return self


def _config(data: dict[str, Any], path: Any) -> dict[str, Any]:
    where = "checkpoint" if path is None else str(path)
    try:
        config = json.loads(data["config"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: malformed xstf checkpoint config ({err!r}): {_FIX}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the checkpoint config is not a JSON object: {_FIX}")
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise ValueError(
            f"{where}: the checkpoint config lacks {missing}, which prediction needs (the "
            f"normalisation mean/std, the model name, the reference count): {_FIX}"
        )
    try:
        mean, std = float(config["mean"]), float(config["std"])
    except (TypeError, ValueError):
        mean = std = math.nan
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(
            f"{where}: the checkpoint's normalisation (mean={config['mean']!r}, "
            f"std={config['std']!r}) is not finite with std > 0: {_FIX}"
        )
    return config


def model_from_checkpoint(
    data: dict[str, Any],
    device: str | torch.device = "cpu",
    which: str = "modules",
    path: str | os.PathLike | None = None,
) -> FittedModel:
    """Rebuild a :class:`FittedModel` from loaded checkpoint data (``which``: "modules" or "best").

    Raises
    ------
    ValueError
        A config without what prediction needs, or weights that do not fit the network.

    Examples
    --------
    >>> data = load_checkpoint("edcstfn.pt")  # doctest: +SKIP
    >>> model_from_checkpoint(data).name  # doctest: +SKIP
    'edcstfn'
    """
    where = "checkpoint" if path is None else str(path)
    config = _config(data, path)
    try:
        history = json.loads(data.get("history", "[]"))
        state = data[which]["net"]
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: malformed xstf checkpoint ({err!r}): {_FIX}") from None
    spec = get_spec(config["model"])
    net = spec.build(bands=int(config.get("bands", 1)), **config.get("model_options", {}))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{where}: the checkpoint's weights do not fit the {config['model']!r} network built "
            f"from its config: {str(err).splitlines()[0]}"
        ) from None
    net.to(device)
    return FittedModel(spec.name, net, config, history)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> FittedModel:
    """Load a model saved with :meth:`FittedModel.save` (or the best weights of a training checkpoint).

    Uses ``torch.load(weights_only=True)``: a file that holds code or arbitrary
    Python objects is refused, not executed.

    Parameters
    ----------
    path : str or path
        The ``.pt`` file (or a checkpoint folder, which reads ``model.pt`` in it).
    device : str or torch.device
        Where to put the network.

    Returns
    -------
    FittedModel

    Raises
    ------
    ValueError
        If the file is not an xstf checkpoint, is empty, truncated or corrupt (its
        weights fail the checksum), or its config lacks the normalisation.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "x.pt"
    >>> _ = bad.write_bytes(b"not a checkpoint")
    >>> try:
    ...     load_model(bad)
    ... except ValueError as e:
    ...     print("not an xstf checkpoint" in str(e))
    True
    """
    data = load_checkpoint(path)
    which = "best" if "best" in data and data.get("best") else "modules"
    return model_from_checkpoint(data, device=device, which=which, path=path)
