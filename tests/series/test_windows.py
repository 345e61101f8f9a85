"""Series recordings read by timestamp, windowed by mf.windows, bad recordings masked or noted by name."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from series_synth import write_session

import modalfuse as mf
from modalfuse.modalities.series import load_series, majority_labels, resample_series


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    for subject, seed in (("s01", 1), ("s02", 2), ("s03", 3)):
        for execution in (1, 2):
            write_session(root, subject, execution, seconds=12, seed=seed * 10 + execution)
    return root


def test_resampling_is_by_timestamp_not_by_index():
    # samples at uneven times: interpolation by time gives the line's value at the grid times
    t = np.array([0.0, 0.01, 0.05, 0.06, 0.1])
    rec = mf.modalities.series.as_recording({"values": 2 * t, "timestamps": t})
    values, valid, times = resample_series(rec, 100.0)
    assert valid.all()
    np.testing.assert_allclose(values[:, 0], 2 * times, atol=1e-12)


def test_gap_is_never_interpolated_across():
    t = np.r_[np.arange(0, 1, 0.01), np.arange(3, 4, 0.01)]
    rec = mf.modalities.series.as_recording({"values": np.ones_like(t), "timestamps": t})
    _, valid, times = resample_series(rec, 100.0, max_gap=0.1)
    assert not valid[(times > 1.0) & (times < 3.0)].any()
    assert valid[times < 0.98].all() and valid[(times > 3.0) & (times < 3.98)].all()


def test_majority_label_and_tie_goes_to_first():
    labels = np.array(["a", "a", "b", "b", "b", "c"], dtype=object)
    assert list(majority_labels(labels, np.array([0, 2]), 4)) == ["a", "b"]  # a a b b: a tie, a first
    assert list(majority_labels(np.array(["x", "y", "y", "x"], dtype=object), np.array([0]), 4)) == ["x"]


def test_windows_of_a_folder_keep_recording_and_group(folder):
    t = mf.windows(folder, size=50, step=25)
    assert t.schema.columns == {"sp": "series", "sw": "series"}
    assert set(t.frame["recording"]) == {f"s0{s}_0{e}" for s in (1, 2, 3) for e in (1, 2)}
    assert set(t.groups) == {"s01", "s02", "s03"}
    first = t.frame["sp"].iloc[0]
    assert first.values.shape == (50, 6) and first.rate == 100.0
    # about (12 s - edges) * 100 Hz / 25 windows per recording
    per_rec = t.frame.groupby("recording").size()
    assert (per_rec > 35).all() and (per_rec < 48).all()
    assert set(np.unique(t.y)) <= {"SEATED", "WALKING", "TURNING"}
    np.testing.assert_allclose(np.diff(t.frame["start"].iloc[:3]), 0.25)


def test_windows_align_with_given_and_estimated_offsets(tmp_path):
    write_session(tmp_path, "s01", 1, seconds=12, offset=0.8, seed=7)
    shifted = mf.windows(tmp_path, size=50, step=25)
    aligned = mf.windows(tmp_path, size=50, step=25, align=True)
    est = aligned.alignment["s01_01"]["sw"]
    assert est["offset_ms"] == pytest.approx(800, abs=5)
    given = mf.windows(tmp_path, size=50, step=25, offsets={"s01_01": {"offset_ms": 800.0, "drift_ppm": 0.0}})

    def mismatch(table):  # acceleration magnitudes of phone and watch should agree when aligned
        sp = np.stack([np.linalg.norm(r.values[:, :3], axis=1) for r in table.frame["sp"]])
        sw = np.stack([np.linalg.norm(r.values[:, :3], axis=1) for r in table.frame["sw"]])
        return float(np.mean(np.abs(sp - sw)))

    assert mismatch(aligned) < 0.5 * mismatch(shifted)
    assert mismatch(given) == pytest.approx(mismatch(aligned), rel=0.1)


def test_reference_windows_stay_on_its_lattice_whatever_the_other_input_does(tmp_path):
    # the watch starts 0.8 s late on its clock; correcting, shifting or dropping it changes which phone
    # windows exist (where both are present) but never moves or alters a phone window
    write_session(tmp_path, "s01", 1, seconds=12, offset=0.8, seed=7)
    alone = mf.windows(tmp_path, inputs=["sp"], size=50, step=25)
    by_start = {round(s, 6): r.values for s, r in zip(alone.frame["start"], alone.frame["sp"], strict=True)}
    assert np.allclose(np.asarray(alone.frame["start"]) / 0.25, np.round(alone.frame["start"] / 0.25))
    for table in (
        mf.windows(tmp_path, size=50, step=25),
        mf.windows(tmp_path, size=50, step=25, align=True),
        mf.windows(tmp_path, size=50, step=25, offsets={"s01_01": {"offset_ms": 800.0, "drift_ppm": 0.0}}),
    ):
        starts = [round(s, 6) for s in table.frame["start"]]
        assert len(starts) > 30 and set(starts) <= set(by_start)
        for s, rec in zip(starts, table.frame["sp"], strict=True):
            np.testing.assert_array_equal(rec.values, by_start[s])
    shifted = mf.windows(tmp_path, size=50, step=25)
    assert shifted.frame["start"].iloc[0] >= 0.75  # the phone's windows before the watch began are gone


def _write(path, frame):
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def damaged(folder, tmp_path):
    """A copy of one session plus damaged recordings, one per kind of damage, each of its own subject."""
    good_sp = pd.read_csv(folder / "s01" / "s01_01_sp.csv")
    good_sw = pd.read_csv(folder / "s01" / "s01_01_sw.csv")
    root = tmp_path / "damaged"
    cases = {
        "ok": (good_sp, good_sw),
        "nots": (good_sp, good_sw.drop(columns="timestamp")),
        "backward": (good_sp, good_sw.iloc[np.r_[0:300, 400:350:-1, 400 : len(good_sw)]]),
        "gap": (
            good_sp,
            good_sw[
                (good_sw.timestamp - good_sw.timestamp.iloc[0] < 3000)
                | (good_sw.timestamp - good_sw.timestamp.iloc[0] > 6000)
            ],
        ),
        "nan": (
            good_sp,
            good_sw.assign(x_acc=np.where(np.arange(len(good_sw)) % 50 == 0, np.nan, good_sw.x_acc)),
        ),
        "short": (good_sp.iloc[:30], good_sw.iloc[:30]),
        "channels": (good_sp, good_sw.drop(columns="z_gyro")),
        "dups": (good_sp, good_sw.assign(timestamp=good_sw.timestamp.to_numpy() // 1000 * 1000)),
    }
    for name, (sp, sw) in cases.items():
        (root / name).mkdir(parents=True)
        _write(root / name / f"{name}_01_sp.csv", sp)
        _write(root / name / f"{name}_01_sw.csv", sw)
    return root


def test_bad_recordings_are_masked_or_noted_by_file(damaged):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = mf.windows(damaged, size=50, step=25)
    notes = " | ".join(str(w.message) for w in caught)
    by_rec = {rec: t.frame.index[t.frame["recording"] == rec] for rec in set(t.frame["recording"])}
    problems = {(p.column, t.frame["recording"].iloc[p.row]): p.reason for p in t.problems}

    def reason(name):
        return problems.get(("sw", f"{name}_01"), "")

    assert t.present["sw"][by_rec["ok_01"]].all()
    assert not t.present["sw"][by_rec["nots_01"]].any() and "no timestamp column" in reason("nots")
    assert "nots_01_sw.csv" in reason("nots")
    assert not t.present["sw"][by_rec["backward_01"]].any() and "not in order" in reason("backward")
    gap_rows = by_rec["gap_01"]
    assert t.present["sw"][gap_rows].any() and not t.present["sw"][gap_rows].all()
    assert "gap of more than" in reason("gap") and "gap_01_sw.csv" in reason("gap")
    assert t.present["sw"][by_rec["nan_01"]].all()  # a few NaN samples dropped, gaps they leave are short
    assert any("nan_01_sw.csv" in n and "NaN dropped" in n for n in t.notes)
    assert "short_01" not in by_rec and "short_01" in notes and "shorter than one window" in notes
    assert not t.present["sw"][by_rec["channels_01"]].any() and "5 channels" in reason("channels")
    assert "most recordings" in reason("channels")
    assert not t.present["sw"][by_rec["dups_01"]].any() and "duplicated timestamps" in reason("dups")
    # the phone input of every damaged session is still there
    assert all(t.present["sp"][rows].all() for rows in by_rec.values())


def test_read_table_with_series_paths_and_channel_mismatch(folder, tmp_path):
    bad = tmp_path / "three.csv"
    pd.read_csv(folder / "s01" / "s01_01_sp.csv")[["x_acc", "y_acc", "z_acc", "timestamp"]].to_csv(
        bad, index=False
    )
    paths = [str(p) for p in sorted(folder.rglob("*_sp.csv"))] + [str(bad)]
    frame = pd.DataFrame({"rec": paths, "y": ["a", "b"] * (len(paths) // 2) + ["a"] * (len(paths) % 2)})
    t = mf.read_table(frame, label="y")
    assert t.schema.columns["rec"] == "series"
    assert not t.present["rec"][-1] and t.present["rec"][:-1].all()
    assert any("three.csv" in p.reason and "3 channels" in p.reason for p in t.problems)


def test_load_series_errors_name_the_file(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(mf.DecodeError, match=r"r\.csv: no timestamp column"):
        load_series(p)
    with pytest.raises(mf.DecodeError, match="file not found"):
        load_series(tmp_path / "none.csv")


def test_windows_mask_an_input_whose_alignment_abstains(tmp_path):
    """A periodic gait gives no unambiguous offset: with align=True the watch's windows are masked (a
    problem names its file and says why) instead of being cut on its uncorrected clock; 'keep' keeps them."""
    from modalfuse.data._windows import RecordingSet
    from modalfuse.modalities.series import Recording

    write_session(tmp_path, "s01", 1, seconds=12, offset=0.4, seed=5)
    t = np.arange(0, 12, 0.01)
    walk = np.column_stack(
        [np.sin(4 * np.pi * t), np.cos(4 * np.pi * t), 9.81 + np.sin(8 * np.pi * t)]
        + [np.sin(4 * np.pi * t + k) for k in range(3)]
    )
    channels = ("x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro")
    labels = np.array(["WALKING"] * len(t), dtype=object)
    sp = Recording(walk, channels, t, labels=labels, source="walk_sp.csv")
    sw = Recording(walk.copy(), channels, t + 0.8, source="walk_sw.csv")
    good = {"sp": tmp_path / "s01" / "s01_01_sp.csv", "sw": tmp_path / "s01" / "s01_01_sw.csv"}
    rset = RecordingSet(
        ["sp", "sw"], {"ok": good, "walk": {"sp": sp, "sw": sw}}, {"ok": "s01", "walk": "s02"}
    )
    table = mf.windows(rset, size=50, step=25, align=True)
    walk_rows = np.flatnonzero(table.frame["recording"].to_numpy() == "walk")
    ok_rows = np.flatnonzero(table.frame["recording"].to_numpy() == "ok")
    assert table.alignment["walk"]["sw"]["abstained"] and not table.alignment["ok"]["sw"]["abstained"]
    assert len(walk_rows) > 10 and not table.present["sw"][walk_rows].any()
    assert table.present["sp"][walk_rows].all() and table.present["sw"][ok_rows].all()
    reasons = {p.reason for p in table.problems if p.column == "sw"}
    assert len(reasons) == 1 and "walk_sw.csv" in next(iter(reasons)) and "ambiguous" in next(iter(reasons))
    kept = mf.windows(rset, size=50, step=25, align=True, on_abstain="keep")
    assert kept.present["sw"].all()
    with pytest.raises(mf.OptionError, match="on_abstain"):
        mf.windows(rset, align=True, on_abstain="drop")


def test_a_recording_too_short_from_the_first_lattice_point_says_so():
    # 0.6 s shared (0.3-0.9 s), more than one 0.5 s window, but the phone's steps of 0.25 s put the first
    # window start at 0.5 s: 0.4 s remain, so no window, and the note gives both spans
    t_sp, t_sw = np.arange(0.0, 1.0, 0.01), np.arange(0.3, 0.9, 0.01)
    rec = {
        "sp": {"values": np.sin(t_sp)[:, None], "timestamps": t_sp},
        "sw": {"values": np.cos(t_sw)[:, None], "timestamps": t_sw},
    }
    frame = pd.DataFrame({"sp": [rec["sp"]], "sw": [rec["sw"]], "recording": ["r1"]})
    with pytest.warns(UserWarning) as caught, pytest.raises(mf.SchemaError, match="no windows"):
        mf.windows(frame, inputs=["sp", "sw"], label=None, size=50, step=25)
    note = " ".join(str(w.message) for w in caught)
    assert "0.60 s shared by its inputs, 0.40 s of it from the first window start" in note
