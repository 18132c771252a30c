"""Shared test set-up."""

from __future__ import annotations

import pytest


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
