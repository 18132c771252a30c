"""The documentation builds with warnings as errors (notebooks executed)."""

from __future__ import annotations

import re
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
    # the executed notebooks show their figures (image outputs of the cells, not static files)
    for name, figures in NOTEBOOK_FIGURES.items():
        page = (tmp_path / "html" / "examples" / f"{name}.html").read_text(encoding="utf-8")
        shown = len(re.findall(r'<img[^>]+src="(?:data:image/png|[^"]*_images/[^"]+\.png)', page))
        assert shown >= figures, (
            f"{name}: {shown} figure(s) in the executed notebook, want {figures}"
        )


#: figures each example notebook draws (ds.stf.plot.* cells)
NOTEBOOK_FIGURES = {"01_estarfm_quickstart": 2, "02_deep_fusion": 1}


def test_every_notebook_figure_is_counted():
    import json

    for name, figures in NOTEBOOK_FIGURES.items():
        nb = json.loads((ROOT / "examples" / f"{name}.ipynb").read_text(encoding="utf-8"))
        cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        assert sum(".plot." in c for c in cells) == figures, name
