"""Tests of read_table: schema, paths, missing masks, problems, errors and the decode cache."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

import modalfuse as mf
from modalfuse._cache import default_cache
from modalfuse._errors import MissingValueError, SchemaError
from modalfuse.data import MultimodalTable, Problem, decode_media, read_table

SR = 8000

REVIEWS = [
    "loved it, would buy it again",
    "terrible fit and cheap fabric",
    "fine for the price I suppose",
    "my daughter wears it every day",
    "arrived late and smelled odd",
    "exactly as pictured, very soft",
]


# ------------------------------------------------------------------------------------------ file makers
def png(path: Path, value: int = 128, size: tuple[int, int] = (6, 5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)
    return path


def wav(path: Path, seconds: float = 0.05, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, 0.5 * np.sin(2 * np.pi * freq * t), SR, subtype="PCM_16")
    return path


def truncated_wav(path: Path) -> Path:
    wav(path, seconds=0.2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def empty_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def fake_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not a PNG at all\n")
    return path


def good_table(folder: Path) -> pd.DataFrame:
    """Six clean rows: image, audio, text, numeric, categorical, label, groups."""
    for i in range(6):
        png(folder / "img" / f"{i}.png", value=40 * i)
        wav(folder / "snd" / f"{i}.wav", freq=200.0 + 100 * i)
    return pd.DataFrame(
        {
            "photo": [f"img/{i}.png" for i in range(6)],
            "voice": [f"snd/{i}.wav" for i in range(6)],
            "review": REVIEWS,
            "age": [23, 35, 41, 52, 19, 64],
            "size": ["S", "M", "S", "M", "S", "M"],
            "customer": ["a", "a", "b", "b", "c", "c"],
            "recommended": [1, 0, 1, 0, 0, 1],
        }
    )


EXPECTED_SCHEMA = {
    "photo": "image",
    "voice": "audio",
    "review": "text",
    "age": "numeric",
    "size": "categorical",
}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    default_cache.clear()


def read_quiet(*args: object, **kwargs: object) -> MultimodalTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_table(*args, **kwargs)


# ------------------------------------------------------------------------------------------ schema, formats
@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "dataframe"])
def test_schema_inferred_for_every_format(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    df = good_table(tmp_path)
    if fmt == "csv":
        df.to_csv(tmp_path / "t.csv", index=False)
        source: object = tmp_path / "t.csv"
    elif fmt == "parquet":
        df.to_parquet(tmp_path / "t.parquet")
        source = str(tmp_path / "t.parquet")
    elif fmt == "jsonl":
        df.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
        source = tmp_path / "t.jsonl"
    else:
        monkeypatch.chdir(tmp_path)  # a DataFrame's relative paths resolve against the working directory
        source = df
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean table gives no warning
        table = read_table(source, label="recommended", groups="customer")
    assert table.schema.columns == EXPECTED_SCHEMA
    assert list(table.frame.columns) == list(EXPECTED_SCHEMA)
    assert table.inputs == {
        "photo": ("image", ["photo"]),
        "voice": ("audio", ["voice"]),
        "review": ("text", ["review"]),
        "tabular": ("tabular", ["age", "size"]),
    }
    assert table.y.tolist() == [1, 0, 1, 0, 0, 1]
    assert table.groups.tolist() == ["a", "a", "b", "b", "c", "c"]
    assert table.problems == [] and table.notes == []
    assert all(m.all() for m in table.present.values())
    assert table.frame["photo"].tolist() == [str((tmp_path / "img" / f"{i}.png").resolve()) for i in range(6)]
    assert table.frame["age"].dtype == np.float64 and table.frame["age"].tolist() == [23, 35, 41, 52, 19, 64]
    assert table.frame["review"].tolist() == REVIEWS
    assert table.row_ids.tolist() == list(range(6))
    assert len(table) == 6
    assert table.name == ("dataframe" if fmt == "dataframe" else f"t.{fmt}")
    assert "photo:image" in repr(table)


def test_schema_override(tmp_path: Path) -> None:
    good_table(tmp_path).to_csv(tmp_path / "t.csv", index=False)
    table = read_table(
        tmp_path / "t.csv",
        label="recommended",
        modalities={"age": "categorical", "review": "ignore", "customer": "tabular"},
    )
    assert table.schema.columns == {
        "photo": "image",
        "voice": "audio",
        "age": "categorical",
        "size": "categorical",
        "customer": "categorical",
    }
    assert table.inputs["tabular"] == ("tabular", ["age", "size", "customer"])
    assert table.frame["age"].tolist() == ["23", "35", "41", "52", "19", "64"]
    assert "review" not in table.frame.columns


def test_categorical_numbers_do_not_depend_on_gaps(tmp_path: Path) -> None:
    # pandas reads an integer column with a gap as floats; categories must still be "1", not "1.0"
    df = pd.DataFrame({"code": [1, None, 2, 1], "x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    df.to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv", label="y", modalities={"code": "categorical"})
    assert table.frame["code"].tolist() == ["1", None, "2", "1"]
    assert table.present["code"].tolist() == [True, False, True, True]


# ------------------------------------------------------------------------------------------ paths
def test_paths_resolve_against_the_tables_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project" / "data"
    png(folder / "img" / "a.png")
    png(tmp_path / "project" / "shared.png")
    pd.DataFrame({"photo": ["img/a.png", "../shared.png", "img/a.png"], "y": [0, 1, 1]}).to_csv(
        folder / "t.csv", index=False
    )
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    table = read_table("project/data/t.csv", label="y")
    assert table.schema.columns == {"photo": "image"}
    assert table.frame["photo"].tolist() == [
        str((folder / "img" / "a.png").resolve()),
        str((tmp_path / "project" / "shared.png").resolve()),
        str((folder / "img" / "a.png").resolve()),
    ]
    assert table.present["photo"].all()


def test_root_overrides_the_tables_folder(tmp_path: Path) -> None:
    png(tmp_path / "media" / "a.png")
    png(tmp_path / "media" / "b.png")
    (tmp_path / "tables").mkdir()
    df = pd.DataFrame({"photo": ["a.png", "b.png"], "y": [0, 1]})
    df.to_csv(tmp_path / "tables" / "t.csv", index=False)
    table = read_table(tmp_path / "tables" / "t.csv", label="y", root=tmp_path / "media")
    assert table.frame["photo"].tolist() == [
        str((tmp_path / "media" / n).resolve()) for n in ("a.png", "b.png")
    ]
    assert table.present["photo"].tolist() == [True, True]
    # a DataFrame with root=
    table = read_table(df, label="y", root=tmp_path / "media")
    assert table.present["photo"].tolist() == [True, True]
    # absolute paths are kept as they are
    table = read_table(df.assign(photo=[str(tmp_path / "media" / "a.png")] * 2), label="y")
    assert table.frame["photo"].tolist() == [str((tmp_path / "media" / "a.png").resolve())] * 2


def test_confine_refuses_escaping_paths(tmp_path: Path) -> None:
    png(tmp_path / "outside.png")
    png(tmp_path / "data" / "in.png")
    df = pd.DataFrame({"photo": ["in.png", "../outside.png"], "y": [0, 1]})
    df.to_csv(tmp_path / "data" / "t.csv", index=False)
    with pytest.raises(SchemaError, match=r"row 1, column 'photo'.*'\.\./outside\.png'.*escapes"):
        read_table(tmp_path / "data" / "t.csv", label="y", confine=True)
    with pytest.raises(SchemaError, match="escapes"):  # absolute paths too
        read_table(
            df.assign(photo=["in.png", str(tmp_path / "outside.png")]),
            label="y",
            root=tmp_path / "data",
            confine=True,
        )
    # without confine the file is used
    assert read_table(tmp_path / "data" / "t.csv", label="y").present["photo"].tolist() == [True, True]


# ------------------------------------------------------------------------------------------ bad input
def bad_table(folder: Path) -> pd.DataFrame:
    """Eight rows, one kind of bad cell in most of them."""
    for i in range(8):
        png(folder / "img" / f"{i}.png", value=30 * i)
        wav(folder / "snd" / f"{i}.wav")
    truncated_wav(folder / "snd" / "cut.wav")
    empty_file(folder / "snd" / "empty.wav")
    fake_png(folder / "img" / "fake.png")
    photos = [f"img/{i}.png" for i in range(8)]
    voices = [f"snd/{i}.wav" for i in range(8)]
    texts = [f"review {w} number {i}" for i, w in enumerate("abcdefgh")]
    ages = [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    photos[1] = "img/fake.png"  # a PNG that is not a PNG
    photos[2] = "img/nowhere.png"  # does not exist
    voices[3] = "snd/cut.wav"  # truncated WAV
    voices[4] = "snd/empty.wav"  # zero-length WAV
    texts[5] = ""  # empty text cell
    ages[6] = np.nan  # NaN in a numeric column
    photos[7] = ""
    voices[7] = None
    return pd.DataFrame(
        {
            "photo": photos,
            "voice": voices,
            "note": texts,
            "age": ages,
            "y": [0, 1, 0, 1, 0, 1, 0, 1],
        }
    )


def test_bad_cells_are_masked_and_reported(tmp_path: Path) -> None:
    bad_table(tmp_path).to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv", label="y")
    assert table.schema.columns == {"photo": "image", "voice": "audio", "note": "text", "age": "numeric"}
    assert len(table) == 8  # nothing dropped
    assert table.present["photo"].tolist() == [True, False, False, True, True, True, True, False]
    assert table.present["voice"].tolist() == [True, True, True, False, False, True, True, False]
    assert table.present["note"].tolist() == [True, True, True, True, True, False, True, True]
    assert table.present["age"].tolist() == [True, True, True, True, True, True, False, True]
    assert table.mask("photo").tolist() == table.present["photo"].tolist()
    assert table.mask("tabular").tolist() == table.present["age"].tolist()
    by_cell = {(p.row, p.column): p.reason for p in table.problems}
    assert sorted(by_cell) == [
        (1, "photo"),
        (2, "photo"),
        (3, "voice"),
        (4, "voice"),
        (5, "note"),
        (6, "age"),
        (7, "photo"),
        (7, "voice"),
    ]
    assert "PNG" in by_cell[(1, "photo")] and "not a valid" in by_cell[(1, "photo")]
    assert by_cell[(2, "photo")] == f"file not found: {(tmp_path / 'img' / 'nowhere.png').resolve()}"
    assert "truncated WAV" in by_cell[(3, "voice")]
    assert "empty file (0 bytes)" in by_cell[(4, "voice")]
    assert by_cell[(5, "note")] == by_cell[(6, "age")] == by_cell[(7, "photo")] == "empty cell"
    assert all(isinstance(p, Problem) for p in table.problems)
    assert str(Problem(5, "note", "empty cell")) == "row 5, column 'note': empty cell"
    # missing cells hold None (NaN for numbers), present ones their value
    assert table.frame["photo"].tolist()[1:3] == [None, None]
    assert table.frame["note"][5] is None and np.isnan(table.frame["age"][6])
    assert table.notes == []
    assert table.missing_summary() == {
        "photo": {
            "modality": "image",
            "columns": ["photo"],
            "present": 5,
            "missing": 3,
            "missing_rate": 3 / 8,
        },
        "voice": {
            "modality": "audio",
            "columns": ["voice"],
            "present": 5,
            "missing": 3,
            "missing_rate": 3 / 8,
        },
        "note": {"modality": "text", "columns": ["note"], "present": 7, "missing": 1, "missing_rate": 1 / 8},
        "tabular": {
            "modality": "tabular",
            "columns": ["age"],
            "present": 7,
            "missing": 1,
            "missing_rate": 1 / 8,
        },
    }


def test_strict_mode_raises_on_the_first_bad_cell(tmp_path: Path) -> None:
    bad_table(tmp_path).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(MissingValueError, match=r"row 1, column 'photo': not a valid PNG"):
        read_table(tmp_path / "t.csv", label="y", strict=True)
    with pytest.raises(MissingValueError, match=r"row 3, column 'voice': truncated WAV"):
        read_table(tmp_path / "t.csv", label="y", strict=True, modalities={"photo": "ignore"})
    with pytest.raises(MissingValueError, match=r"row 6, column 'age': empty cell"):
        read_table(
            tmp_path / "t.csv",
            label="y",
            strict=True,
            modalities={"photo": "ignore", "voice": "ignore", "note": "ignore"},
        )
    # a clean table passes strict mode
    good_table(tmp_path / "good").to_csv(tmp_path / "good" / "t.csv", index=False)
    assert len(read_table(tmp_path / "good" / "t.csv", label="recommended", strict=True)) == 6


def test_decode_false_skips_decoding_but_still_checks_files(tmp_path: Path) -> None:
    bad_table(tmp_path).to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv", label="y", decode=False)
    assert table.present["photo"].tolist() == [True, True, False, True, True, True, True, False]
    assert table.present["voice"].tolist() == [True] * 7 + [False]
    assert default_cache.misses == 0


def test_numeric_strings_and_non_numbers(tmp_path: Path) -> None:
    n = 40  # 39 numbers and one "abc": still a numeric column
    values = [str(0.5 * i) for i in range(n)]
    values[3] = "abc"
    values[5] = "inf"
    values[7] = ""
    df = pd.DataFrame({"dose": values, "y": [i % 2 for i in range(n)]})
    df.to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv", label="y")
    assert table.schema.columns == {"dose": "numeric"}
    assert table.frame["dose"].dtype == np.float64
    assert table.frame["dose"][2] == 1.0 and table.frame["dose"][9] == 4.5
    assert [(p.row, p.reason) for p in table.problems] == [
        (3, "not a number: 'abc'"),
        (5, "not a finite number: 'inf'"),
        (7, "empty cell"),
    ]
    assert np.flatnonzero(~table.present["dose"]).tolist() == [3, 5, 7]
    assert np.isnan(table.frame["dose"][[3, 5, 7]]).all()
    # numbers given as strings in a DataFrame
    table = read_table(
        pd.DataFrame({"v": ["3.5", "1", "abc"], "y": [0, 1, 1]}), label="y", modalities={"v": "numeric"}
    )
    assert table.frame["v"].tolist()[:2] == [3.5, 1.0]
    assert table.problems == [Problem(2, "v", "not a number: 'abc'")]


def test_column_missing_in_every_row_is_dropped_with_a_note(tmp_path: Path) -> None:
    df = good_table(tmp_path)
    df["voice"] = ["snd/gone.wav"] * 6  # every file missing
    df["empty"] = [None] * 6
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning) as record:
        table = read_table(tmp_path / "t.csv", label="recommended", groups="customer")
    assert sorted(str(w.message) for w in record) == [
        "t.csv: column 'empty' (numeric) is missing in every row and is not used",
        "t.csv: column 'voice' (audio) is missing in every row and is not used",
    ]
    assert table.schema.columns == {k: v for k, v in EXPECTED_SCHEMA.items() if k != "voice"}
    assert "voice" not in table.frame.columns and "voice" not in table.present
    assert "voice" not in table.inputs
    assert sum("missing in every row" in n for n in table.notes) == 2
    # the cells are still reported, the rest carries on
    assert [p.row for p in table.problems if p.column == "voice"] == list(range(6))
    assert table.present["photo"].all() and len(table) == 6


def test_unknown_encoding(tmp_path: Path) -> None:
    path = tmp_path / "avis.csv"
    path.write_bytes("texte,note\ncafé au lait,1\nthé vert,0\nbière,1\n".encode("cp1252"))
    with pytest.raises(SchemaError) as info:
        read_table(path, label="note")
    message = str(info.value)
    assert "avis.csv" in message and "encoding=" in message and "line 2" in message
    table = read_table(path, label="note", encoding="latin-1")
    assert table.frame["texte"].tolist() == ["café au lait", "thé vert", "bière"]
    with pytest.raises(SchemaError, match=r"avis\.csv: unknown text encoding 'klingon'"):
        read_table(path, label="note", encoding="klingon")
    jsonl = tmp_path / "avis.jsonl"
    jsonl.write_bytes('{"texte": "café", "note": 1}\n{"texte": "thé", "note": 0}\n'.encode("cp1252"))
    with pytest.raises(SchemaError, match=r"avis\.jsonl.*encoding="):
        read_table(jsonl, label="note")
    assert read_table(jsonl, label="note", encoding="cp1252").frame["texte"].tolist() == ["café", "thé"]


def test_unreadable_table_files(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no such file"):
        read_table(tmp_path / "missing.csv", label="y")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(SchemaError, match=r"empty\.csv: cannot read"):
        read_table(tmp_path / "empty.csv", label="y")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(SchemaError, match=r"ragged\.csv: cannot read"):
        read_table(tmp_path / "ragged.csv", label="a")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SchemaError, match=r"bad\.parquet: cannot read"):
        read_table(tmp_path / "bad.parquet", label="a")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(SchemaError, match=r"unsupported table format '\.xlsx'"):
        read_table(tmp_path / "t.xlsx", label="a")
    with pytest.raises(TypeError, match="file path, a pandas DataFrame, a list of records"):
        read_table(42, label="a")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ schema errors
def test_schema_errors_name_the_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0], "g": ["a", "b", "c"]})
    with pytest.raises(SchemaError, match=r"label column 'label' is not in the table.*'x', 'y', 'g'"):
        read_table(df, label="label")
    with pytest.raises(SchemaError, match=r"groups column 'speaker' is not in the table"):
        read_table(df, label="y", groups="speaker")
    with pytest.raises(SchemaError, match=r"label column 'y' has a single class \(1 in all 3 rows\)"):
        read_table(df.assign(y=1), label="y")
    with pytest.raises(SchemaError, match=r"label column 'y' is empty"):
        read_table(df.assign(y=None), label="y")
    with pytest.raises(SchemaError, match=r"modalities names column 'colour'"):
        read_table(df, label="y", modalities={"colour": "categorical"})
    with pytest.raises(SchemaError, match=r"column 'x': unknown modality 'pixels'"):
        read_table(df, label="y", modalities={"x": "pixels"})
    with pytest.raises(SchemaError, match=r"'y' as 'categorical', but it is the label"):
        read_table(df, label="y", modalities={"y": "categorical"})
    with pytest.raises(SchemaError, match=r"no usable modality"):
        read_table(df, label="y", groups="g", modalities={"x": "ignore"})
    with pytest.raises(SchemaError, match=r"no usable modality"):
        read_quiet(df.assign(x=np.nan), label="y", groups="g")
    dup = pd.DataFrame([[1, 2, 0], [3, 4, 1]], columns=["a", "a", "y"])
    with pytest.raises(SchemaError, match=r"duplicate column name\(s\) \['a'\]"):
        read_table(dup, label="y")
    with pytest.raises(SchemaError, match="both the label and the groups"):
        read_table(df, label="y", groups="y")


# ------------------------------------------------------------------------------------------ label, groups, index
def test_rows_without_a_label_are_dropped_with_a_note(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0, 5.0], "y": [0, None, 1, None, 1]})
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning, match=r"2 row\(s\) without a label .* rows \[1, 3\]"):
        table = read_table(tmp_path / "t.csv", label="y")
    assert len(table) == 3
    assert table.row_ids.tolist() == [0, 2, 4]
    assert table.y.tolist() == [0, 1, 1] and table.y.dtype.kind == "i"  # not 0.0, 1.0
    assert table.frame["x"].tolist()[0] == 1.0 and table.present["x"].tolist() == [True, False, True]
    assert table.problems == [Problem(2, "x", "empty cell")]  # positions as read
    assert len(table.notes) == 2 and "class(es) of label 'y' with a single row: 0 (row 0)" in table.notes[1]
    with pytest.raises(MissingValueError, match=r"row 1, column 'y': the label is missing"):
        read_table(tmp_path / "t.csv", label="y", strict=True)
    # string labels keep their values
    table = read_quiet(pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["cat", "", "dog"]}), label="y")
    assert table.y.tolist() == ["cat", "dog"]


def test_no_label_is_a_table_to_predict_on(tmp_path: Path) -> None:
    table = read_table(pd.DataFrame({"x": [1.0, 2.0]}))
    assert table.y is None and table.label is None and table.groups is None
    assert table.schema.columns == {"x": "numeric"}


def test_groups_column_is_not_a_feature(tmp_path: Path) -> None:
    df = pd.DataFrame({"speaker": [3, 3, 7, None], "x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning, match=r"1 row\(s\) have no group"):
        table = read_table(tmp_path / "t.csv", label="y", groups="speaker")
    assert table.schema.columns == {"x": "numeric"}
    assert "speaker" not in table.frame.columns
    assert table.group_column == "speaker"
    assert table.groups.tolist() == ["3", "3", "7", "<missing>"]  # not "3.0"
    assert table.problems == [Problem(3, "speaker", 'empty cell: no group (grouped as "<missing>")')]
    with pytest.raises(MissingValueError, match="row 3, column 'speaker'"):
        read_table(tmp_path / "t.csv", label="y", groups="speaker", strict=True)


def test_unnamed_index_columns_are_ignored(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0], "colour": ["r", "g", "r", "g"], "y": [0, 1, 0, 1]}, index=[10, 11, 12, 13]
    )
    df.to_csv(tmp_path / "t.csv")  # writes the index as a column with no header
    assert pd.read_csv(tmp_path / "t.csv").columns[0] == "Unnamed: 0"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = read_table(tmp_path / "t.csv", label="y")
    assert table.schema.columns == {"x": "numeric", "colour": "categorical"}
    # a header-less column that is not an index is left out too, but with a note
    (tmp_path / "u.csv").write_text("x,,y\n1,a,0\n2,b,1\n3,a,0\n4,b,1\n")
    with pytest.warns(UserWarning, match=r"'Unnamed: 1' has no header"):
        table = read_table(tmp_path / "u.csv", label="y")
    assert table.schema.columns == {"x": "numeric"}
    table = read_table(tmp_path / "u.csv", label="y", modalities={"Unnamed: 1": "categorical"})
    assert table.schema.columns == {"x": "numeric", "Unnamed: 1": "categorical"}


# ------------------------------------------------------------------------------------------ in-memory values
def test_dataframe_with_in_memory_images_and_waves() -> None:
    rng = np.random.default_rng(0)
    images = [rng.random((5, 5)).astype(np.float32) for _ in range(4)]
    images[2] = np.zeros((5, 5, 7))  # 7 channels: cannot be an image
    images[3] = None
    waves = [(rng.standard_normal(100).astype(np.float32), 8000) for _ in range(4)]
    waves[1] = np.zeros(100)  # no sample rate
    df = pd.DataFrame(
        {
            "pixels": pd.Series(images, dtype=object),
            "clip": pd.Series(waves, dtype=object),
            "label": ["a", "b", "a", "b"],
        }
    )
    table = read_table(df, label="label")
    assert table.schema.columns == {"pixels": "image", "clip": "audio"}
    assert table.present["pixels"].tolist() == [True, True, False, False]
    assert table.present["clip"].tolist() == [True, False, True, True]
    assert table.frame["pixels"][0] is images[0]  # arrays are kept, not copied
    reasons = {(p.row, p.column): p.reason for p in table.problems}
    assert sorted(reasons) == [(1, "clip"), (2, "pixels"), (3, "pixels")]
    assert "image array must have shape" in reasons[(2, "pixels")]
    assert reasons[(3, "pixels")] == "empty cell"
    assert reasons[(1, "clip")].startswith("not a file path, bytes or a (wave, sample_rate) tuple: ndarray")
    image = decode_media(table.frame["pixels"][0], "image")
    assert image.shape == (5, 5, 1) and np.allclose(image[..., 0], images[0])
    wave, sr = decode_media(table.frame["clip"][0], "audio")
    assert sr == 8000 and wave.shape == (100,)


def test_non_path_values_in_a_declared_media_column() -> None:
    df = pd.DataFrame({"photo": [1.5, 2.5, 3.5], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    table = read_quiet(df, label="y", modalities={"photo": "image"})
    assert [p.reason for p in table.problems] == [
        "not a file path, bytes, an array or a PIL image: float 1.5",
        "not a file path, bytes, an array or a PIL image: float 2.5",
        "not a file path, bytes, an array or a PIL image: float 3.5",
    ]
    assert "photo" not in table.schema.columns and table.schema.columns == {"x": "numeric"}


def test_pathlike_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    png(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"p": [Path("a.png"), Path("b.png")]}))
    assert table.schema.columns == {"p": "image"}
    assert table.frame["p"][0] == str((tmp_path / "a.png").resolve())
    assert table.present["p"].tolist() == [True, False]


# ------------------------------------------------------------------------------------------ take, summary
def test_take_keeps_everything_aligned(tmp_path: Path) -> None:
    bad_table(tmp_path).to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv", label="y")
    sub = table.take([7, 2, 0])
    assert len(sub) == 3
    assert sub.row_ids.tolist() == [7, 2, 0]
    assert sub.y.tolist() == [1, 0, 0]
    assert sub.present["photo"].tolist() == [False, False, True]
    assert sub.present["voice"].tolist() == [False, True, True]
    assert sub.frame.index.tolist() == [0, 1, 2]
    assert sub.frame["note"].tolist() == [table.frame["note"][i] for i in (7, 2, 0)]
    assert {(p.row, p.column) for p in sub.problems} == {(7, "photo"), (7, "voice"), (2, "photo")}
    assert sub.missing_summary()["photo"] == {
        "modality": "image",
        "columns": ["photo"],
        "present": 1,
        "missing": 2,
        "missing_rate": 2 / 3,
    }
    # take of a take keeps the original row ids
    assert sub.take([1]).row_ids.tolist() == [2]
    # a boolean mask selects rows (it is not read as positions 0 and 1)
    chosen = np.zeros(len(table), dtype=bool)
    chosen[[3, 5]] = True
    assert table.take(chosen).row_ids.tolist() == [3, 5]
    with pytest.raises(IndexError):
        table.take(np.ones(3, dtype=bool))
    # nothing mutable is shared
    sub.schema.columns.pop("photo")
    sub.present["voice"][:] = False
    sub.notes.append("x")
    assert "photo" in table.schema.columns and table.present["voice"][0] and table.notes == []


def test_take_with_groups(tmp_path: Path) -> None:
    good_table(tmp_path).to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv", label="recommended", groups="customer")
    sub = table.take(np.array([5, 0]))
    assert sub.groups.tolist() == ["c", "a"] and sub.y.tolist() == [1, 1]
    assert sub.group_column == "customer" and sub.label == "recommended"


def test_mask_of_unknown_input(tmp_path: Path) -> None:
    table = read_table(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(mf.UnknownNameError, match=r"unknown input 'photo'.*known: tabular"):
        table.mask("photo")


def test_table_built_directly_computes_masks() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", ""]})
    table = MultimodalTable(frame, schema=mf.data.Schema({"a": "numeric", "b": "text"}))
    assert table.present["a"].tolist() == [True, False]
    assert table.present["b"].tolist() == [True, False]
    assert table.mask("tabular").tolist() == [True, False]
    assert table.row_ids.tolist() == [0, 1]


# ------------------------------------------------------------------------------------------ cache
def test_each_file_is_decoded_once(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    png(tmp_path / "b.png", value=9)
    wav(tmp_path / "a.wav")
    df = pd.DataFrame(
        {
            "photo": ["a.png", "b.png", "a.png", "a.png"],
            "voice": ["a.wav", "a.wav", "a.wav", "a.wav"],
            "y": [0, 1, 0, 1],
        }
    )
    df.to_csv(tmp_path / "t.csv", index=False)
    assert default_cache.hits == default_cache.misses == 0
    read_table(tmp_path / "t.csv", label="y")
    assert (default_cache.misses, default_cache.hits) == (3, 5)  # 3 files, 8 cells
    read_table(tmp_path / "t.csv", label="y")  # a second read decodes nothing
    assert (default_cache.misses, default_cache.hits) == (3, 13)
    first = decode_media(str((tmp_path / "a.png").resolve()), "image")
    assert first.shape == (6, 5, 1) and default_cache.hits == 14
    # a changed file is decoded again
    png(tmp_path / "b.png", value=200, size=(3, 3))
    os.utime(tmp_path / "b.png", ns=(1, 1))
    read_table(tmp_path / "t.csv", label="y")
    assert default_cache.misses == 4
    assert decode_media(str(tmp_path / "b.png"), "image").shape == (3, 3, 1)
    with pytest.raises(ValueError, match="not a media modality"):
        decode_media("x", "text")


# ------------------------------------------------------------------------------------------ delimiters, headers
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, sep: str, bom: bytes) -> None:
    text = (
        sep.join(["name", "price", "y"])
        + "\n"
        + "".join(f"{w}{sep}{i}.5{sep}{i % 2}\n" for i, w in enumerate("abcdef"))
    )
    (tmp_path / "t.csv").write_bytes(bom + text.encode())
    table = read_table(tmp_path / "t.csv", label="y")
    assert table.schema.columns == {"name": "categorical", "price": "numeric"}
    assert list(table.frame.columns) == ["name", "price"]  # no BOM in the first name
    assert table.frame["price"].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]


def test_commas_inside_a_semicolon_file_and_explicit_sep(tmp_path: Path) -> None:
    # decimal commas and commas in text do not fool the sniffer: the header has no comma
    (tmp_path / "t.csv").write_text(
        "note;weight;y\nsoft, warm;1,5;0\nthin, cheap;2,5;1\nok, fine;3,0;0\nbad, torn;4,5;1\n"
    )
    table = read_table(tmp_path / "t.csv", label="y")
    assert table.frame["note"].tolist()[:2] == ["soft, warm", "thin, cheap"]
    assert table.frame["weight"].tolist() == [1.5, 2.5, 3.0, 4.5]  # decimal commas: unambiguous
    # an explicit sep is used as given; a wrong one names the delimiter in the error
    with pytest.raises(
        SchemaError, match=r"t\.csv: label column 'y' is not in the table.*contains ';'.*sep=';'"
    ):
        read_table(tmp_path / "t.csv", label="y", sep=",")
    with pytest.warns(UserWarning, match=r"single column whose header 'note;weight;y' contains ';'"):
        read_table(tmp_path / "t.csv", sep="\t", modalities={"note;weight;y": "text"})


def test_utf16_file_from_a_spreadsheet(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("name\tprice\ty\nä\t1\t0\nö\t2\t1\nü\t3\t0\nß\t4\t1\n".encode("utf-16"))
    table = read_table(tmp_path / "t.csv", label="y")
    assert table.frame["name"].tolist() == ["ä", "ö", "ü", "ß"] and table.y.tolist() == [0, 1, 0, 1]


def test_duplicate_csv_header_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("size,colour,size,y\n1,red,2,0\n3,blue,4,1\n")
    with pytest.raises(
        SchemaError, match=r"t\.csv: duplicate column name\(s\) in the header: 'size' in columns 1, 3"
    ):
        read_table(tmp_path / "t.csv", label="y")
    (tmp_path / "u.csv").write_text("a,,,y\n1,2,3,0\n4,5,6,1\n")  # blank names are not duplicates
    assert "a" in read_quiet(tmp_path / "u.csv", label="y").schema.columns


def test_numbers_with_digit_groups(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "price": ["1,234.5", "12,345", "999", "1,000,000", None],  # only commas-as-groups fits
            "euro": ["1.234,5", "12.345", "999", "7,25", ""],  # only dots-as-groups fits
            "swiss": ["1'234", "12'345.5", "999", "1 000", "2 500"],
            "unclear": ["1,234", "12,345", "999", "5,000", "7,001"],  # 1234 or 1.234?
            "code": ["1.2.3", "2.0.1", "3.1.4", "1.2.3", "2.0.1"],  # not numbers
            "y": [0, 1, 0, 1, 0],
        }
    )
    with pytest.warns(UserWarning) as record:
        table = read_table(df, label="y")
    assert table.frame["price"].tolist()[:4] == [1234.5, 12345.0, 999.0, 1_000_000.0]
    assert table.present["price"].tolist() == [True, True, True, True, False]
    assert table.frame["euro"].tolist()[:4] == [1234.5, 12345.0, 999.0, 7.25]
    assert table.frame["swiss"].tolist() == [1234.0, 12345.5, 999.0, 1000.0, 2500.0]
    assert table.schema.columns["unclear"] == "categorical" and table.schema.columns["code"] == "categorical"
    messages = [str(w.message) for w in record]
    assert any(
        "'unclear' holds numbers with separators that read two ways" in m and "thousands=','" in m
        for m in messages
    )
    assert any("'price' holds numbers written with digit groups; read as numbers" in m for m in messages)
    # declared conventions settle the ambiguous column
    assert read_quiet(df, label="y", thousands=",").frame["unclear"].tolist()[:2] == [1234.0, 12345.0]
    assert read_quiet(df, label="y", decimal=",").frame["unclear"].tolist()[:2] == [1.234, 12.345]
    # a column declared categorical keeps its strings
    kept = read_quiet(df, label="y", modalities={"price": "categorical"})
    assert kept.frame["price"].tolist()[0] == "1,234.5"


def test_huge_numbers_are_masked(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("x,z,y\n1e308,1,0\n-1.7e308,2,1\n1e150,3,0\n2.5,4,1\n1e-320,5,0\n")
    table = read_table(tmp_path / "t.csv", label="y")
    assert table.present["x"].tolist() == [False, False, True, True, True]
    assert [str(p) for p in table.problems] == [
        "row 0, column 'x': number too large in magnitude: 1e+308 (beyond +-1e+150, where arithmetic on it "
        "overflows; treated as missing)",
        "row 1, column 'x': number too large in magnitude: -1.7e+308 (beyond +-1e+150, where arithmetic on it "
        "overflows; treated as missing)",
    ]


def test_fit_and_predict_with_huge_and_non_finite_numbers(tmp_path: Path) -> None:
    """1e308 in training made every prediction NaN; at predict time huge and non-finite cells are missing."""
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 12)
    x = y * 2.0 + rng.normal(0, 0.3, 24)
    x[5] = 1e308
    train = read_quiet(pd.DataFrame({"x": x, "z": rng.normal(size=24), "y": y}), label="y")
    clf = mf.MultimodalClassifier(fusion="late", epochs=1, min_steps=5, inner_folds=2, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow on the way
        clf.fit(train)
        new = pd.DataFrame(
            {"x": [1e308, -np.inf, np.nan, 1e200, 0.5], "z": [np.inf, 1e300, 0.1, -1e308, 0.2]}
        )
        proba = clf.predict_proba(new)
    assert np.isfinite(proba).all() and proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------------ labels
def test_single_row_class_gets_a_note(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "y": ["a", "b", "a", "b", "rare", "a"]})
    with pytest.warns(UserWarning, match=r"class\(es\) of label 'y' with a single row: 'rare' \(row 4\)"):
        table = read_table(df, label="y")
    assert "stratified cross-validation needs at least as many rows per class as folds" in table.notes[0]


def test_label_edge_cases(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("x,y\n1,\n2,\n")
    with pytest.raises(
        SchemaError, match=r"^t\.csv: label column 'y' is empty: no value in any of its 2 rows$"
    ):
        read_table(tmp_path / "t.csv", label="y")
    (tmp_path / "h.csv").write_text("x,y\n")
    with pytest.raises(SchemaError, match=r"^h\.csv: the table has no rows \(a header only\)$"):
        read_table(tmp_path / "h.csv", label="y")
    mixed = read_quiet(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, "0", 1.0, "1"]}), label="y")
    assert mixed.y.tolist() == ["0", "0", "1", "1"]
    assert "mixes numbers and strings" in mixed.notes[0]


# ------------------------------------------------------------------------------------------ input forms
def test_records_mappings_and_dataset_objects(tmp_path: Path) -> None:
    records = [{"x": float(i), "colour": "rg"[i % 2], "y": i % 2} for i in range(6)]
    table = read_table(records, label="y")
    assert table.schema.columns == {"x": "numeric", "colour": "categorical"} and table.name == "records"
    assert read_table({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}, label="y").y.tolist() == [0, 1, 0, 1]

    class Dataset:  # what datasets.Dataset offers
        def to_pandas(self) -> pd.DataFrame:
            return pd.DataFrame(records)

    assert read_table(Dataset(), label="y").name == "Dataset"
    with pytest.raises(TypeError, match="item 1 is a int"):
        read_table([{"x": 1}, 2])


def test_huggingface_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the datasets package is not installed (optional)")
    images = [Image.fromarray(np.full((6, 6), 40 * i, np.uint8)) for i in range(6)]
    ds = datasets.Dataset.from_dict(
        {"photo": images, "n": [float(i) for i in range(6)], "y": [0, 1, 0, 1, 0, 1]},
        features=datasets.Features(
            {"photo": datasets.Image(), "n": datasets.Value("float64"), "y": datasets.Value("int64")}
        ),
    )
    table = read_table(ds, label="y")
    assert table.schema.columns == {"photo": "image", "n": "numeric"}
    assert table.present["photo"].all()
    assert np.allclose(decode_media(table.frame["photo"][2], "image"), 80 / 255)


def test_pil_bytes_and_huggingface_cells() -> None:
    import io

    def png_bytes(value: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full((4, 4), value, np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    pil = [Image.fromarray(np.full((4, 4), 30 * i, np.uint8)) for i in range(4)]
    raw = [png_bytes(30 * i) for i in range(4)]
    raw[2] = png_bytes(60)[:-20]  # cut short
    hf = [{"bytes": png_bytes(10 * i), "path": None} for i in range(4)]
    hf[1] = {"bytes": None, "path": None}
    t = np.arange(800) / 8000
    sounds = [{"array": np.sin(2 * np.pi * 440 * t), "sampling_rate": 8000, "path": None} for _ in range(4)]
    df = pd.DataFrame({"pil": pil, "raw": raw, "hf": hf, "sound": sounds, "y": ["a", "b", "a", "b"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recognised, not guessed
        table = read_table(df, label="y")
    assert table.schema.columns == {"pil": "image", "raw": "image", "hf": "image", "sound": "audio"}
    assert table.present["pil"].all() and table.present["sound"].all()
    assert table.present["raw"].tolist() == [True, True, False, True]
    assert table.present["hf"].tolist() == [True, False, True, True]
    reasons = {(p.row, p.column): p.reason for p in table.problems}
    assert reasons[(2, "raw")].startswith("truncated or corrupt in-memory image")
    assert reasons[(1, "hf")] == "a dict cell with neither bytes nor a path (keys ['bytes', 'path'])"
    assert np.allclose(decode_media(table.frame["pil"][3], "image"), 90 / 255)
    assert np.allclose(decode_media(table.frame["hf"][2], "image"), 20 / 255)
    wave, sr = decode_media(table.frame["sound"][0], "audio")
    assert sr == 8000 and wave.shape == (800,)
    # bytes that are no known format: a clear error naming the column, not a UnicodeDecodeError
    with pytest.raises(
        SchemaError, match=r"dataframe: column 'blob' holds bytes that are not a known image or audio"
    ):
        read_table(pd.DataFrame({"blob": [b"\x00\x01\x02", b"\x03"], "y": [0, 1]}), label="y")


def test_in_memory_media_fit_and_predict() -> None:
    """PIL images and (wave, rate) cells train and predict (a wave tuple used to crash the feature cache)."""
    t = np.arange(1600) / 8000
    rows = []
    for i in range(16):
        label = i % 2
        rows.append(
            {
                "img": Image.fromarray(np.full((8, 8), 40 + 150 * label, np.uint8)),
                "snd": (np.sin(2 * np.pi * (300 + 900 * label) * t).astype(np.float32), 8000),
                "y": label,
            }
        )
    table = read_quiet(pd.DataFrame(rows), label="y")
    clf = mf.MultimodalClassifier(fusion="late", epochs=1, min_steps=5, inner_folds=2, n_threads=1).fit(table)
    proba = clf.predict_proba(table)
    assert proba.shape == (16, 2) and np.isfinite(proba).all()


# ------------------------------------------------------------------------------------------ paths and confinement
def test_unusable_paths_get_accurate_reasons(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    os.symlink("loop2.png", tmp_path / "loop1.png")
    os.symlink("loop1.png", tmp_path / "loop2.png")
    os.symlink("/dev/zero", tmp_path / "zero.png")
    (tmp_path / "dir.png").mkdir()
    df = pd.DataFrame({"photo": ["a.png", "loop1.png", "zero.png", "dir.png", "a.png"], "y": [0, 1, 0, 1, 1]})
    df.to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv", label="y")
    assert table.present["photo"].tolist() == [True, False, False, False, True]
    assert [p.reason for p in table.problems] == [
        f"symlink loop: {tmp_path / 'loop1.png'}",
        "not a regular file: character device: /dev/zero",
        f"is a directory, not a file: {(tmp_path / 'dir.png').resolve()}",
    ]


def test_confine_covers_symlinks_pointing_out(tmp_path: Path) -> None:
    png(tmp_path / "secret.png")
    png(tmp_path / "data" / "in.png")
    os.symlink(tmp_path / "secret.png", tmp_path / "data" / "link.png")
    pd.DataFrame({"photo": ["in.png", "link.png"], "y": [0, 1]}).to_csv(
        tmp_path / "data" / "t.csv", index=False
    )
    with pytest.raises(
        SchemaError, match=r"^t\.csv: row 1, column 'photo': path 'link.png' escapes .*confine=True\)$"
    ):
        read_table(tmp_path / "data" / "t.csv", label="y", confine=True)
    assert read_quiet(tmp_path / "data" / "t.csv", label="y").present["photo"].tolist() == [True, True]


def test_declared_separators_are_checked() -> None:
    from modalfuse._errors import OptionError

    df = pd.DataFrame({"p": ["1.234,5", "2.000"], "y": [0, 1]})
    assert read_quiet(df, label="y", thousands=".", decimal=",").frame["p"].tolist() == [1234.5, 2000.0]
    assert read_quiet(df, label="y", decimal=",").frame["p"].tolist() == [1234.5, 2000.0]
    with pytest.raises(OptionError, match="thousands and decimal cannot both be ','"):
        read_table(df, label="y", thousands=",", decimal=",")
    with pytest.raises(OptionError, match=r"thousands='_'"):
        read_table(df, label="y", thousands="_")


def test_label_typos_and_spaces() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "Label": ["yes", "yes ", " no", "no"]})
    with pytest.raises(
        SchemaError, match=r"label column 'label' is not in the table; did you mean 'Label'\?"
    ):
        read_table(df, label="label")
    table = read_quiet(df, label="Label")
    assert table.y.tolist() == ["yes", "yes", "no", "no"]
    assert "differing only in surrounding spaces (2 merged" in table.notes[0]


def test_complex_numbers_are_not_real_numbers() -> None:
    df = pd.DataFrame({"c": [1 + 0j, 2 + 1j, 3 + 0j, 4 + 0j], "y": [0, 1, 0, 1]})
    table = read_quiet(df, label="y")
    assert table.frame["c"].tolist()[0] == 1.0 and table.present["c"].tolist() == [True, False, True, True]


def test_regex_separator_is_left_to_pandas(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text(
        "x   colour  y\n1   red     0\n2   blue    1\n3   red     0\n4   blue    1\n"
    )
    table = read_table(tmp_path / "t.txt", label="y", sep=r"\s+")
    assert table.schema.columns == {"x": "numeric", "colour": "categorical"}
