"""Window-based fusion methods (numba kernels over dask chunks): ESTARFM, ubESTARFM, STARFM.

Examples
--------
>>> from xstf.fusion import estarfm, starfm
>>> callable(estarfm) and callable(starfm)
True
"""

from __future__ import annotations

from .estarfm import estarfm
from .starfm import starfm

__all__ = ["estarfm", "starfm"]
