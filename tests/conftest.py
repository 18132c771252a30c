"""Shared test set-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Real files for the ``realdata`` tests: ``$XSTF_DATA``, else ``../shared/data`` next to
#: the repository (see its README). Absent: those tests skip, all with one message.
REAL_DATA = Path(
    os.environ.get("XSTF_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


def real_data(*parts: str) -> Path:
    """The path ``REAL_DATA / parts``, or skip the calling test (one message for all)."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"real data not found at {path} (set XSTF_DATA to the folder holding orleans/ "
            "and mod11a1/)"
        )
    return path


@pytest.fixture(scope="session")
def orleans_data() -> Path:
    """The Orléans Landsat 8 / MODIS folder (``landsat8/``, ``modis/``), or skip."""
    return real_data("orleans")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(request):
    """Tests marked ``torch`` use tiny convolutions: one intra-op thread is faster on 2 cores."""
    if request.node.get_closest_marker("torch") is None:
        yield
        return
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
