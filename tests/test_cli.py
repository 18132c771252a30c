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
    assert "coarse_only " in printed and "estarfm " in printed and "edcstfn " in printed
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


# -- xstf benchmark: arguments checked before any work ----------------------------------------
@pytest.fixture
def no_data_read(monkeypatch):
    """Fail if the benchmark reads or builds any cube."""

    def boom(*args, **kwargs):
        raise AssertionError("data was read before the arguments were checked")

    import xstf.build
    import xstf.datasets
    import xstf.export
    import xstf.io

    for mod, name in ((xstf.datasets, "synthetic"), (xstf.export, "open_zarr"),
                      (xstf.io, "open_landsat"), (xstf.io, "open_modis"),
                      (xstf.build, "build_cube")):  # fmt: skip
        monkeypatch.setattr(mod, name, boom)


def test_benchmark_refuses_unknown_methods_and_existing_reports_first(
    tmp_path, capsys, no_data_read
):
    out = tmp_path / "rep"
    assert (
        main(["benchmark", "--synthetic", "--methods", "estarfm,estarfn", "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert "unknown method(s) ['estarfn']" in err and "ubestarfm" in err
    out.mkdir()
    (out / "report.md").write_text("an earlier report")
    assert main(["benchmark", "--synthetic", "--methods", "estarfm", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "report.md").read_text() == "an earlier report"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--landsat", "L"], "--landsat and --modis go together"),
        (["--landsat", "nowhere_l", "--modis", "nowhere_m"], "--landsat: nowhere_l does not exist"),
        (["--orleans", "nowhere"], "--orleans: nowhere/landsat8 does not exist"),
        (["--cube", "missing.zarr"], "--cube: missing.zarr does not exist"),
        ([], "give an input"),
        (["--synthetic", "--test", "1.5"], "--test is the share"),
    ],
)
def test_benchmark_bad_inputs_are_refused_first(tmp_path, capsys, no_data_read, args, message):
    argv = ["benchmark", *args, "--methods", "estarfm", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_benchmark_help_lists_methods_and_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("estarfm", "ubestarfm", "starfm", "edcstfn", "sttfn", "mlffgan", "ganstfm"):
        assert name in text
    assert "default: estarfm,starfm,edcstfn" in text and "default: 256" in text
    assert "--landsat" in text and "--modis" in text and "--per-method-masks" in text


def test_benchmark_reads_any_landsat_and_modis_folders(tmp_path, monkeypatch, capsys):
    import xstf.build
    import xstf.io

    cube = xstf.datasets.synthetic(size=56, days=260, seed=4, cloud_fraction=0.1)
    calls = {}

    def fake_landsat(path, **kw):
        calls["landsat"] = (str(path), kw.get("units"))
        return cube.fine

    def fake_modis(path, **kw):
        calls["modis"] = (str(path), kw.get("units"))
        return cube.coarse

    monkeypatch.setattr(xstf.io, "open_landsat", fake_landsat)
    monkeypatch.setattr(xstf.io, "open_modis", fake_modis)
    monkeypatch.setattr(xstf.build, "build_cube", lambda fine, coarse: cube)
    (tmp_path / "L").mkdir()
    (tmp_path / "M").mkdir()
    out = tmp_path / "rep"
    argv = ["benchmark", "--landsat", str(tmp_path / "L"), "--modis", str(tmp_path / "M"),
            "--units", "K", "--methods", "estarfm", "--half-window", "5", "--quiet",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert calls == {"landsat": (str(tmp_path / "L"), "K"), "modis": (str(tmp_path / "M"), "K")}
    printed = capsys.readouterr().out
    assert "whole run" in printed
    report = (out / "report.md").read_text()
    assert f"Command: `xstf benchmark --landsat {tmp_path / 'L'}" in report
    # the Orléans shortcut is the same readers on DIR/landsat8 and DIR/modis, in °C
    (tmp_path / "site" / "landsat8").mkdir(parents=True)
    (tmp_path / "site" / "modis").mkdir()
    argv = ["benchmark", "--orleans", str(tmp_path / "site"), "--methods", "estarfm",
            "--half-window", "5", "--quiet", "--overwrite", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    site = tmp_path / "site"
    assert calls == {
        "landsat": (str(site / "landsat8"), "degC"),
        "modis": (str(site / "modis"), "degC"),
    }
