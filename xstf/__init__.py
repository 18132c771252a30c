"""xstf: spatio-temporal fusion of land surface temperature on xarray, dask, numba and PyTorch.

``import xstf`` registers the ``.stf`` Dataset accessor. Heavy parts (numba kernels,
PyTorch models, readers) are imported on first use.

Examples
--------
>>> import xstf
>>> ds = xstf.datasets.synthetic(size=32, days=20)
>>> xstf.validate(ds) is ds, list(ds.stf.pairs) == list(xstf.cube.pair_dates(ds))
(True, True)
"""

from __future__ import annotations

import importlib
from typing import Any

from . import accessor as _accessor  # noqa: F401  (registers ds.stf)
from . import cube
from ._version import __version__
from .cube import coverage, validate
from .errors import CubeError
from .units import convert_units, to_kelvin

# name -> (module, attribute); loaded on first access so `import xstf` stays light
_LAZY = {
    "estarfm": ("xstf.fusion.estarfm", "estarfm"),
    "starfm": ("xstf.fusion.starfm", "starfm"),
    "fitfc": ("xstf.fusion.fitfc", "fitfc"),
    "metrics": ("xstf.scoring", "metrics"),
    "build_cube": ("xstf.build", "build_cube"),
    "fill_gaps": ("xstf.gapfill", "fill_gaps"),
    "to_zarr": ("xstf.export", "to_zarr"),
    "to_netcdf": ("xstf.export", "to_netcdf"),
    "to_geotiff": ("xstf.export", "to_geotiff"),
    "open_zarr": ("xstf.export", "open_zarr"),
    "load_model": ("xstf.models", "load_model"),
    "datasets": ("xstf.datasets", None),
    "plot": ("xstf.plot", None),
    "fusion": ("xstf.fusion", None),
    "scoring": ("xstf.scoring", None),
    "io": ("xstf.io", None),
    "models": ("xstf.models", None),
    "experiment": ("xstf.experiment", None),
    "export": ("xstf.export", None),
    "gapfill": ("xstf.gapfill", None),
    "anchor": ("xstf.anchor", None),
    "fuse": ("xstf.fuse", None),
}

__all__ = [
    "CubeError",
    "__version__",
    "convert_units",
    "coverage",
    "cube",
    "to_kelvin",
    "validate",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'xstf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
