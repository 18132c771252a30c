"""The documentation builds with warnings as errors (notebooks executed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", "-d",
           str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=None)
    assert res.returncode == 0, f"sphinx failed:\n{res.stdout}\n{res.stderr}"
    assert (tmp_path / "html" / "index.html").exists()
    assert (tmp_path / "html" / "generated" / "xarray.Dataset.stf.validate.html").exists()
