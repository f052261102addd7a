"""Issue 21, defect 2: ``python -m core.cli compare`` fills the same ``CompareOptions`` as the dock and Processing."""

from __future__ import annotations

import numpy as np
from rasterio.transform import from_origin

from core.cli.main import main
from core.options import CompareOptions, from_cli
from tests.helpers import write_geotiff

HR = from_origin(500000.0, 6000000.0, 10 / 3, 10 / 3)


def test_compare_command_scores_two_outputs_without_trust_maps(tmp_path, capsys):
    rng = np.random.default_rng(0)
    hr = (1000 + 2000 * rng.random((60, 60))).astype("uint16")
    paths = {}
    for name, noise in (("hr", 0), ("baseline", 80), ("taskdriven", 40)):
        data = np.clip(hr.astype(float) + rng.normal(0, noise or 1e-9, hr.shape), 1, 10000).astype("uint16")
        paths[name] = write_geotiff(tmp_path / f"{name}.tif", data, transform=HR)
    code = main(["compare", "--baseline", str(paths["baseline"]), "--taskdriven", str(paths["taskdriven"]),
                 "--reference", str(paths["hr"]), "--border", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines() if line[:1].isalpha()}
    base, task = float(rows["cPSNR (dB)"][0]), float(rows["cPSNR (dB)"][1])
    assert task > base > 20  # less noise, higher cPSNR
    assert rows["Trust: mean disagreement"][:2] == ["n/a", "n/a"]
    assert "trust maps not computed" in out
    assert not list(tmp_path.glob("*trust*"))


def test_compare_flags_are_the_options_fields():
    import argparse

    from core.options import add_cli_arguments

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser, CompareOptions)
    assert from_cli(CompareOptions, parser.parse_args([])) == CompareOptions()
    opts = from_cli(CompareOptions, parser.parse_args(["--trust", "--reference-band", "2", "--device", "cuda"]))
    assert opts == CompareOptions(trust=True, reference_band=2, device="cuda")
