"""The survey's experiment end to end: split by date, fit, predict, score, report.

The front of two modules: the protocol (:mod:`xstf.protocol`: the split, the
variability flags, the method table and :func:`run`) and the report
(:mod:`xstf.report`: :func:`write_report`). ``xstf benchmark`` on the command line
(:mod:`xstf.cli`) does both.

:func:`run` follows the protocol of Bouaziz et al. (arXiv 2412.16631): the cube's
pairs are split by date into training and test dates, every method predicts the
test dates from the training pairs only (the Landsat images of the test dates are
hidden from it), and the predictions are scored against the held-out Landsat images,
all methods on one common mask per date, with the ``coarse_only`` baseline (the MODIS
image on the fine grid) and skill scores against it.

Examples
--------
>>> import xstf
>>> "estarfm" in xstf.experiment.METHODS
True
"""

from __future__ import annotations

from . import protocol as _protocol
from .protocol import *  # noqa: F403  (the front re-exports the protocol's public names)
from .report import write_report

__all__ = [*_protocol.__all__, "write_report"]
