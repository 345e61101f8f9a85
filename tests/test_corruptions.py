"""The corruption registry, the ``INPUT:NAME=LEVELS[@SHARE]`` spec and what each corruption does to real cells."""

from __future__ import annotations

import numpy as np
import pytest

import modalfuse as mf
from modalfuse._corruptions import corrupt_rows, parse_corruptions, pink_noise, selected_rows
from modalfuse._quality import input_quality
from modalfuse.data import decode_media


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))


# ------------------------------------------------------------------------------------------------ the spec
def test_a_spec_is_parsed_with_levels_in_order_and_a_share() -> None:
    spec = mf.parse_corruption("audio:noise=20,10,5,0,-5@0.5")
    assert (spec.input, spec.name, spec.levels, spec.share) == ("audio", "noise", (20, 10, 5, 0, -5), 0.5)
    assert spec.key == "audio:noise@0.5" and spec.level_keys == ["20", "10", "5", "0", "-5"]
    assert mf.parse_corruption("image:missing=0,0.25,1").key == "image:missing"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("audio:nosie=5", r"unknown corruption 'nosie'; did you mean 'noise'\?.*corruptions of audio inputs"),
        ("audoi:noise=5", r"unknown input 'audoi'; did you mean 'audio'\?"),
        (
            "audio:noise=500",
            r"'audio:noise=500': level 500 is out of range: audio noise takes .* \[-30, 100\]",
        ),
        ("image:missing=1.5", r"level 1.5 is out of range: missing takes a share of the rows in \[0, 1\]"),
        ("text:blur=1", r"unknown corruption 'blur'.*corruptions of text inputs"),
        ("audio:noise=5@2", r"share @2 must be in \(0, 1\]"),
        ("audio:noise=five", r"level 'five' is not a number"),
        ("audio:noise=5,5", r"a level is listed twice"),
        ("audio-noise-5", r"expected INPUT:NAME=LEVEL\[,LEVEL...\]\[@SHARE\]"),
        ("audio:noise=5,,0", r"an empty level"),
    ],
)
def test_bad_specs_give_one_line_naming_the_bad_part(table, spec: str, message: str) -> None:
    with pytest.raises(mf.ModalfuseError, match=message) as info:
        mf.parse_corruption(spec, table.inputs)
    assert "\n" not in str(info.value)


def test_the_same_curve_twice_is_refused() -> None:
    with pytest.raises(mf.OptionError, match=r"'audio:noise' is given twice"):
        parse_corruptions(["audio:noise=5", "audio:noise=0"])


def test_the_registry_lists_every_modality() -> None:
    listed = mf.list_corruptions()
    assert set(listed["audio"]) == {"missing", "noise", "pink", "clipping", "lowpass"}
    assert set(listed["image"]) == {"missing", "noise", "blur", "occlusion", "contrast"}
    assert set(listed["text"]) == {"missing", "dropout", "typos"}
    assert set(listed["tabular"]) == {"missing", "noise", "missing_cells"}
    assert "signal-to-noise ratio in dB in [-30, 100]" in listed["audio"]["noise"]


# ----------------------------------------------------------------------------------------- rows and seeds
def test_share_picks_that_many_rows_the_same_whatever_else_is_in_the_table(table) -> None:
    spec = mf.parse_corruption("audio:noise=0@0.25")
    rows = selected_rows(table.row_ids, 7, spec)
    assert rows.sum() == round(0.25 * len(table))
    half = table.take(np.arange(36))
    # a row's draw depends on its id and the seed only: the first half's picks are a subset's picks
    u_full = selected_rows(table.row_ids, 7, mf.parse_corruption("audio:noise=0@1"))
    assert u_full.all() and selected_rows(half.row_ids, 7, spec).sum() == 9
    assert not np.array_equal(rows, selected_rows(table.row_ids, 8, spec))  # another seed, other rows


def test_missing_rates_are_nested_and_masked(table) -> None:
    masks = {}
    for rate in (0.0, 0.25, 0.5, 1.0):
        out = mf.corrupt_table(table, "image:missing=0", rate, seed=3)
        masks[rate] = out.mask("image")
        assert out.frame["image"][~masks[rate]].isna().all()
        assert len(out) == len(table) and (out.y == table.y).all()
    present = table.mask("image")
    assert np.array_equal(masks[0.0], present)
    assert (~masks[1.0]).all()
    assert ((present & ~masks[0.5]) >= (present & ~masks[0.25])).all()  # rate 0.25's rows are among 0.5's
    assert (~masks[0.5]).sum() - (~present).sum() == pytest.approx(0.5 * len(table), abs=2)
    assert table.mask("image").sum() == present.sum()  # the original table is untouched


def test_every_strategy_sees_the_same_corrupted_rows(table) -> None:
    a = mf.corrupt_table(table, "audio:noise=5@0.5", 5, seed=0)
    b = mf.corrupt_table(table, "audio:noise=5@0.5", 5, seed=0)
    for x, y in zip(a.frame["audio"], b.frame["audio"], strict=True):
        if isinstance(x, tuple):
            np.testing.assert_array_equal(x[0], y[0])
        else:
            assert x == y


# -------------------------------------------------------------------------------------------- audio cells
def test_noise_is_added_at_the_exact_snr_and_louder_at_lower_levels(table) -> None:
    i = int(np.flatnonzero(table.mask("audio"))[0])
    clean, rate = decode_media(table.frame["audio"].iloc[i], "audio")
    waves = {}
    for snr in (20, 0, -5):
        cell = mf.corrupt_table(table, "audio:noise=0", snr, seed=0).frame["audio"].iloc[i]
        assert isinstance(cell, tuple) and cell[1] == rate
        waves[snr] = cell[0]
        assert _snr_db(clean, cell[0]) == pytest.approx(snr, abs=0.01)
    # the same noise realisation at every level, only scaled
    n20, n0 = waves[20] - clean, waves[0] - clean
    np.testing.assert_allclose(n0, n20 * 10, rtol=1e-3, atol=1e-5)


def test_pink_noise_has_more_power_at_low_frequencies() -> None:
    x = pink_noise(2**14, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(x)) ** 2
    low, high = power[10:200].mean(), power[4000:8000].mean()
    assert low > 10 * high and abs(x.mean()) < 1e-9


def test_clipping_and_lowpass(table) -> None:
    i = int(np.flatnonzero(table.mask("audio"))[0])
    clipped = mf.corrupt_table(table, "audio:clipping=0", 20, seed=0).frame["audio"].iloc[i][0]
    assert np.abs(clipped).max() == pytest.approx(1.0) and np.mean(np.abs(clipped) >= 0.999) > 0.3
    scores = input_quality(mf.corrupt_table(table, "audio:clipping=0", 20, seed=0), "audio")
    assert np.nanmean(scores[:, 1]) > 0.3 and np.nanmean(input_quality(table, "audio")[:, 1]) == 0
    # the 'c' class is a 2 kHz tone: a 500 Hz low-pass removes almost all of it
    c_row = int(np.flatnonzero((table.y == "c") & table.mask("audio"))[0])
    clean, _ = decode_media(table.frame["audio"].iloc[c_row], "audio")
    muffled = mf.corrupt_table(table, "audio:lowpass=500", 500, seed=0).frame["audio"].iloc[c_row][0]
    assert np.mean(muffled**2) < 0.01 * np.mean(clean**2)


# -------------------------------------------------------------------------------------------- image cells
def test_image_corruptions_change_the_quality_scores_they_should(table) -> None:
    base = input_quality(table, "image")  # sharpness, contrast, exposure
    blurred = input_quality(mf.corrupt_table(table, "image:blur=2", 2, seed=0), "image")
    flat = input_quality(mf.corrupt_table(table, "image:contrast=0.2", 0.2, seed=0), "image")
    noisy = input_quality(mf.corrupt_table(table, "image:noise=0.3", 0.3, seed=0), "image")
    present = table.mask("image")
    assert (blurred[present, 0] < base[present, 0] - 0.5).all()
    np.testing.assert_allclose(flat[present, 1], 0.2 * base[present, 1], rtol=0.05)
    assert (noisy[present, 0] > base[present, 0]).mean() > 0.9  # noise reads as (spurious) detail


def test_occlusion_covers_the_share_of_the_area(table) -> None:
    i = int(np.flatnonzero(table.mask("image"))[0])
    img = mf.corrupt_table(table, "image:occlusion=0.25", 0.25, seed=0).frame["image"].iloc[i]
    assert isinstance(img, np.ndarray)
    grey = np.isclose(img[..., 0], 0.5)
    assert grey.sum() == pytest.approx(0.25 * img.shape[0] * img.shape[1], rel=0.1)


# ---------------------------------------------------------------------------------------- text and tabular
def test_text_dropout_and_typos(table) -> None:
    present = table.mask("text")
    dropped = mf.corrupt_table(table, "text:dropout=0.5", 0.5, seed=0)
    before = table.frame["text"][present].str.split().str.len().sum()
    after = dropped.frame["text"][present].fillna("").str.split().str.len().sum()
    assert 0.35 * before < after < 0.65 * before
    everything = mf.corrupt_table(table, "text:dropout=1", 1, seed=0)
    assert not everything.mask("text").any()  # an emptied text is a missing one
    typos = mf.corrupt_table(table, "text:typos=1", 1, seed=0).frame["text"]
    changed = [a != b for a, b in zip(table.frame["text"][present], typos[present], strict=True)]
    assert all(changed)


def test_tabular_noise_and_missing_cells(table) -> None:
    noisy = mf.corrupt_table(table, "tabular:noise=1", 1.0, seed=0)
    num = table.frame["num"].to_numpy(float)
    diff = noisy.frame["num"].to_numpy(float) - num
    ok = np.isfinite(num)
    assert np.std(diff[ok]) == pytest.approx(np.nanstd(num), rel=0.35)
    assert (noisy.frame["colour"] == table.frame["colour"]).all()
    blank = mf.corrupt_table(table, "tabular:missing_cells=1", 1.0, seed=0)
    assert not blank.mask("tabular").any()
    half = mf.corrupt_table(table, "tabular:missing_cells=0.5", 0.5, seed=0)
    share = input_quality(half, "tabular")[:, 0]
    assert 0.3 < np.nanmean(share) < 0.7


# ------------------------------------------------------------------------------------------ training copies
def test_training_copies_draw_one_level_per_row(table) -> None:
    rows, copies = corrupt_rows(table, ["audio:noise=20,0@0.5"], seed=0)
    assert len(rows) == round(0.5 * len(table)) and len(copies) == len(rows)
    assert list(copies.row_ids) == list(table.row_ids[rows])
    snrs = set()
    for j, i in enumerate(rows):
        cell = copies.frame["audio"].iloc[j]
        if not table.mask("audio")[i]:
            assert not copies.mask("audio")[j]
            continue
        clean, _ = decode_media(table.frame["audio"].iloc[i], "audio")
        snrs.add(round(_snr_db(clean, cell[0])))
    assert snrs == {20, 0}
