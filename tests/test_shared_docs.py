"""Shared parameter text (xstf._docs): every placeholder is filled, typos fail at import."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import xstf
from xstf._docs import PARAMETERS, fill_doc


def _documented():
    for info in pkgutil.walk_packages(xstf.__path__, "xstf."):
        try:
            mod = importlib.import_module(info.name)
        except ImportError:  # an optional extra (torch) that is not installed
            continue
        for obj in vars(mod).values():
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{mod.__name__}.{obj.__name__}", obj
                if inspect.isclass(obj):
                    for name, member in vars(obj).items():
                        if inspect.isfunction(member):
                            yield f"{mod.__name__}.{obj.__name__}.{name}", member


def test_no_docstring_is_left_with_a_placeholder():
    seen, left = 0, []
    for name, obj in _documented():
        seen += 1
        if "%(" in (obj.__doc__ or "") and not name.startswith("xstf._docs."):
            left.append(name)
    assert seen > 300  # the walk really saw the package
    assert left == [], f"docstrings with an unfilled %(...)s (missing @fill_doc?): {left}"


def test_filled_text_is_indented_like_the_placeholder():
    @fill_doc
    def f():
        """Head.

        Parameters
        ----------
        %(anchor)s
        """

    lines = inspect.getdoc(f).splitlines()
    want = PARAMETERS["anchor"].splitlines()
    assert lines[4 : 4 + len(want)] == want  # getdoc dedents: the entry's own layout back


def test_an_unknown_placeholder_fails_loudly():
    def g():
        """%(no_such_parameter)s"""

    with pytest.raises(KeyError, match="no_such_parameter"):
        fill_doc(g)
