"""Every public function and class of xstf has a docstring with an Examples section."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import xstf


def _public_objects():
    for info in pkgutil.walk_packages(xstf.__path__, "xstf."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None) or [
            n for n, o in vars(module).items() if not n.startswith("_")
        ]
        for name in names:
            obj = getattr(module, name, None)
            if (
                inspect.isfunction(obj) or inspect.isclass(obj)
            ) and obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


@pytest.mark.parametrize(
    ("name", "obj"), list(_public_objects()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_public_object_has_docstring_with_example(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{name} has no docstring"
    assert "Examples\n--------" in doc, f"{name}'s docstring has no Examples section"
