"""Exceptions raised by xstf."""

from __future__ import annotations

__all__ = ["CubeError"]


class CubeError(ValueError):
    """A cube (or an argument about it) that xstf cannot work with.

    The message always names the problem (variable, date, count) and what to do
    about it. It is a :class:`ValueError`, so code that already catches those
    keeps working.

    Examples
    --------
    >>> import xstf
    >>> issubclass(xstf.CubeError, ValueError)
    True
    """
