"""benchmarks/gpu_check.py runs end to end on CPU (small), so it is known to work before a GPU run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import xstf

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

pytestmark = pytest.mark.torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_runs_on_cpu(tmp_path, capsys):
    mod = _load()
    out = mod.main(["--device", "cpu", "--size", "64", "--patch", "32", "--batch", "2",
                    "--steps", "1", "--threads", "1", "--json", str(tmp_path / "g.json")])  # fmt: skip
    assert out["device"]["device"] == "cpu"
    assert set(out["models"]) == {"edcstfn", "mlffgan"}
    for name, r in out["models"].items():
        assert r["training"]["patches_per_s"] > 0 and np.isfinite(r["training"]["last_loss"]), name
        # the same weights on the same device: identical predictions
        assert r["prediction"]["max_abs_diff_K"] == 0.0, name
        assert r["survey_epoch"]["patches_per_epoch"] == 34 * 43 * 43
    written = json.loads((tmp_path / "g.json").read_text())["models"]
    for name, r in out["models"].items():
        assert written[name]["training"]["last_loss"] == r["training"]["last_loss"], name
    assert "survey epoch" in capsys.readouterr().out


def test_gpu_check_training_under_autocast_reads_losses_back_as_floats():
    """The autocast path the GPU run takes (bfloat16 here, on CPU), and losses read back to
    the host as floats: a CUDA tensor given to numpy raises instead of converting."""
    mod = _load()
    ds = xstf.datasets.synthetic(size=64, days=40, seed=0, cloud_fraction=0.1)
    r = mod.check_training("edcstfn", ds, torch.device("cpu"), 2, 32, 1, amp=True)
    assert type(r["last_loss"]) is float and np.isfinite(r["last_loss"])
    assert r["patches_per_s"] > 0
