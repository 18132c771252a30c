"""Shared numpy-doc text for the parameters many functions take: one wording, one place.

A docstring line that holds only ``%(name)s`` is replaced by the entry ``name`` of
:data:`PARAMETERS`, indented like that line (the approach of MNE-Python's ``fill_doc``
and matplotlib's ``_docstring``). The text is filled in at import, so ``help()``,
Sphinx and doctest see the whole docstring.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["PARAMETERS", "fill_doc"]

_T = TypeVar("_T", bound=Callable[..., Any])

#: Parameter descriptions shared by several public functions (numpy-doc, unindented).
PARAMETERS: dict[str, str] = {
    "cube": """\
ds : xarray.Dataset
    The cube.
fine, coarse : hashable
    Variable names.""",
    "min_coverage": """\
min_coverage : float
    Share of valid pixels for a date to count as observed (pairs, targets).""",
    "progress_scan": """\
progress : bool, optional
    Progress bar for the coverage pass (see :func:`xstf.validate`).""",
    "progress_dates": """\
progress : bool, optional
    A progress bar (tqdm) over the dates of an eager (numpy) run. Default: shown
    when stderr is a terminal and there is more than one date; lazy runs compute
    later and never show one.""",
    "anchor": """\
anchor : {None, "coarse"}
    ``"coarse"``: take the prediction's level at the MODIS scale from the target's
    own coarse image and keep the sub-km detail (:func:`xstf.anchor.anchor`).
gain : float
    With ``anchor="coarse"``, the gain in ``[0, 1]`` on that detail (0 = coarse only).""",
    "rule": """\
rule : {"bracket", "nearest"}
    Reference-pair rule, see :func:`xstf.cube.reference_pairs`.""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<name>\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(obj: _T) -> _T:
    """Fill the ``%(name)s`` lines of ``obj``'s docstring from :data:`PARAMETERS`.

    Parameters
    ----------
    obj : function or class
        Its ``__doc__`` is rewritten in place (left alone when docstrings are stripped,
        ``python -OO``).

    Returns
    -------
    function or class
        ``obj`` itself (use as a decorator).

    Raises
    ------
    KeyError
        A placeholder with no entry (at import: a typo cannot ship).

    Examples
    --------
    >>> @fill_doc
    ... def f(ds, fine, coarse):
    ...     '''Do something.
    ...
    ...     Parameters
    ...     ----------
    ...     %(cube)s
    ...     '''
    >>> print(f.__doc__.splitlines()[4].strip(), "|", f.__doc__.splitlines()[7].strip())
    ds : xarray.Dataset | Variable names.
    """
    if obj.__doc__:

        def indented(m: re.Match[str]) -> str:
            text = PARAMETERS[m.group("name")]
            return "\n".join(m.group("indent") + line if line else "" for line in text.split("\n"))

        obj.__doc__ = _PLACEHOLDER.sub(indented, obj.__doc__)
    return obj
