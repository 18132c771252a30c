"""benchmarks/gpu_check.py runs end to end on CPU (small), so it is known to work before a GPU run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

pytestmark = pytest.mark.torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--device", "cpu", "--size", "64", "--patch", "32", "--batch", "2",
                    "--steps", "1", "--threads", "1", "--json", str(tmp_path / "g.json")])  # fmt: skip
    assert out["device"]["device"] == "cpu"
    assert set(out["models"]) == {"edcstfn", "mlffgan"}
    for name, r in out["models"].items():
        assert r["training"]["patches_per_s"] > 0 and np.isfinite(r["training"]["last_loss"]), name
        # the same weights on the same device: identical predictions
        assert r["prediction"]["max_abs_diff_K"] == 0.0, name
        assert r["survey_epoch"]["patches_per_epoch"] == 34 * 43 * 43
    assert (tmp_path / "g.json").exists()
    assert "survey epoch" in capsys.readouterr().out
