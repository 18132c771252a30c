"""Window-based fusion methods (numba kernels over dask chunks): ESTARFM, ubESTARFM, STARFM, FitFC.

The functions are :func:`xstf.estarfm` (module :mod:`xstf.fusion.estarfm`),
:func:`xstf.starfm` (module :mod:`xstf.fusion.starfm`) and
:func:`xstf.fusion.fitfc.fitfc` (module :mod:`xstf.fusion.fitfc`). They are not
re-exported here, so that ``xstf.fusion.estarfm`` always names the module.

Examples
--------
>>> import xstf
>>> from xstf.fusion.estarfm import estarfm
>>> xstf.estarfm is estarfm
True
"""
