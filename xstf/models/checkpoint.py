"""Fitted models and checkpoints (imports torch).

A checkpoint is ONE ``.pt`` file written with :func:`torch.save` that holds only
plain data: tensors (the ``state_dict`` of each module, optimiser states), numbers,
strings, lists and dicts, with the configuration and the training history as JSON
strings. It is read back with ``torch.load(weights_only=True)``, which refuses
anything that would run code when unpickled; a file that does not hold an xstf
checkpoint is refused with a :class:`ValueError`.

Layout (``version`` 1)::

    {"format": "xstf-checkpoint", "version": 1,
     "config": "<JSON>",            # model name, options, normalisation, names, ratio, split...
     "history": "<JSON>",           # one dict per epoch
     "modules": {"net": state_dict, ...},
     # training checkpoints also have:
     "optimizers": {...}, "schedulers": {...}, "best": {...}, "epoch": int,
     "best_epoch": int, "best_loss": float, "bad_epochs": int}
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["FORMAT", "FittedModel", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "xstf-checkpoint"
VERSION = 1


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
    data = {"format": FORMAT, "version": VERSION, **payload}
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
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as err:
        raise ValueError(
            f"{path} is not an xstf checkpoint, or holds objects other than tensors and plain "
            f"data (refused by torch.load(weights_only=True)): {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an xstf checkpoint (no 'format': {FORMAT!r} header); save models with "
            "FittedModel.save"
        )
    if data.get("version") != VERSION:
        raise ValueError(
            f"{path} is an xstf checkpoint of version {data.get('version')}; this xstf reads "
            f"version {VERSION}"
        )
    return data


class FittedModel:
    """A trained deep fusion model: its network, configuration, normalisation and history.

    Returned by :func:`xstf.models.fit` and :func:`load_model`; pass it to
    :func:`xstf.models.predict` (or ``ds.stf.predict(model=...)``).

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
        >>> from xstf.models import create
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

    def predict(self, ds: Any, **kwargs: Any) -> Any:
        """Shorthand for :func:`xstf.models.predict` ``(ds, self, **kwargs)``."""
        from .inference import predict

        return predict(ds, self, **kwargs)


def model_from_checkpoint(
    data: dict[str, Any], device: str | torch.device = "cpu", which: str = "modules"
) -> FittedModel:
    """Rebuild a :class:`FittedModel` from loaded checkpoint data (``which``: "modules" or "best")."""
    from . import get_spec

    try:
        config = json.loads(data["config"])
        history = json.loads(data.get("history", "[]"))
        state = data[which]["net"]
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"malformed xstf checkpoint: {err!r}") from None
    spec = get_spec(config["model"])
    net = spec.build(bands=int(config.get("bands", 1)), **config.get("model_options", {}))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"the checkpoint's weights do not fit the {config['model']!r} network built from its "
            f"config: {str(err).splitlines()[0]}"
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
        If the file is not an xstf checkpoint.

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
    return model_from_checkpoint(data, device=device, which=which)
