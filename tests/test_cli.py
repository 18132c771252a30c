"""README command 1's code path: `xstf demo` end to end at a small size."""

from __future__ import annotations

import pytest

import xstf
from xstf.cli import main


@pytest.mark.slow
def test_demo_writes_every_output(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--size", "64", "--days", "90", "--targets", "2",
            "--epochs", "1"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "LST cube: 90 dates" in printed
    assert "coarse only" in printed and "ESTARFM" in printed and "EDCSTFN" in printed
    for name in ("cube.png", "compare.png", "scores.csv"):
        assert (out / name).stat().st_size > 0
    fused = xstf.export.open_zarr(out / "fused.zarr")
    assert set(fused.data_vars) == {"estarfm", "edcstfn"}
    assert fused.sizes["time"] == 2
    # running it again replaces the demo's own outputs instead of failing
    assert main(argv) == 0


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "xstf" in capsys.readouterr().out
