"""`modalfuse align` and `modalfuse windows` on real CSV recordings; `sp-sw-har` as a built-in dataset."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from series_synth import write_session
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_session(root, "s01", 1, seconds=12, offset=0.6, seed=1)
    write_session(root, "s02", 1, seconds=12, offset=-0.3, seed=2)
    return root


def test_align_folder_writes_one_entry_per_recording(data, tmp_path):
    out = tmp_path / "a.json"
    res = runner.invoke(app, ["align", str(data), "--pair", "sp,sw", "--json", str(out)])
    assert res.exit_code == 0, res.output
    entries = {e["recording"]: e for e in json.loads(out.read_text())}
    assert set(entries) == {"s01_01", "s02_01"}
    assert entries["s01_01"]["offset_ms"] == pytest.approx(600, abs=5)
    assert entries["s02_01"]["offset_ms"] == pytest.approx(-300, abs=5)
    assert {"drift_ppm", "uncertainty_ms", "abstained"} <= set(entries["s01_01"])
    assert "2 aligned, 0 abstained" in res.output


def test_align_table_of_pairs_and_bad_pair_option(data, tmp_path):
    table = tmp_path / "pairs.csv"
    pd.DataFrame(
        {
            "recording": ["a"],
            "phone": [str(data / "s01" / "s01_01_sp.csv")],
            "watch": [str(data / "s01" / "s01_01_sw.csv")],
        }
    ).to_csv(table, index=False)
    res = runner.invoke(app, ["align", str(table), "--pair", "phone,watch"])
    assert res.exit_code == 0, res.output
    assert re.search(r"a: offset \+(599|600)\.\d ms", res.output)
    bad = runner.invoke(app, ["align", str(table), "--pair", "phone"])
    assert bad.exit_code == 2 and "--pair must name 2 input(s)" in bad.output


def test_windows_command_writes_a_table_that_reads_back(data, tmp_path):
    out = tmp_path / "w"
    res = runner.invoke(app, ["windows", str(data), "--out", str(out), "--inputs", "sp,sw", "--align"])
    assert res.exit_code == 0, res.output
    t = mf.read_table(
        out / "windows.csv",
        label="label",
        groups="group",
        modalities={"recording": "ignore", "start": "ignore"},
    )
    assert t.schema.columns == {"sp": "series", "sw": "series"}
    assert set(t.groups) == {"s01", "s02"} and len(t) > 60
    again = runner.invoke(app, ["windows", str(data), "--out", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output


def test_sp_sw_har_is_a_built_in_dataset(shared_datasets):
    if not (shared_datasets / "sp_sw_har" / "DATA").is_dir():
        pytest.skip(f"sp_sw_har not found under {shared_datasets}")
    assert "sp-sw-har" in mf.list_datasets()
    t = mf.load_dataset("sp-sw-har", root=shared_datasets, subjects=["s01", "s02"])
    assert set(t.groups) == {"s01", "s02"} and t.schema.columns == {"sp": "series", "sw": "series"}
    assert set(t.y) == {"SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN"}
    assert t.frame["sp"].iloc[0].values.shape == (50, 6)


def test_sp_sw_har_not_found_names_the_places(tmp_path):
    with pytest.raises(mf.DatasetNotFoundError, match="sp-sw-har recordings"):
        mf.load_dataset("sp-sw-har", root=tmp_path)
