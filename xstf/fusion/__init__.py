"""Window-based fusion methods (numba kernels over dask chunks): ESTARFM, ubESTARFM, STARFM.

The functions are :func:`xstf.estarfm` (module :mod:`xstf.fusion.estarfm`) and
:func:`xstf.starfm` (module :mod:`xstf.fusion.starfm`). They are not re-exported here, so
that ``xstf.fusion.estarfm`` always names the module.

Examples
--------
>>> import xstf
>>> from xstf.fusion.estarfm import estarfm
>>> xstf.estarfm is estarfm
True
"""
