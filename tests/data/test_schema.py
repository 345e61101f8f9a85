"""Tests of schema inference (column -> modality) and the missing-value test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modalfuse._errors import SchemaError
from modalfuse.data import MODALITIES, Schema, identifier_kind, infer_schema, is_missing


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),
        (np.nan, True),
        (np.float32("nan"), True),
        (pd.NA, True),
        (pd.NaT, True),
        (np.datetime64("NaT"), True),
        ("", True),
        ("   \t", True),
        ("x", False),
        (0, False),
        (0.0, False),
        (False, False),
        (np.zeros((2, 2)), False),
        (np.zeros(0), False),
    ],
)
def test_is_missing(value: object, expected: bool) -> None:
    assert is_missing(value) is expected


def test_modalities_constant() -> None:
    assert MODALITIES == ("image", "audio", "text", "numeric", "categorical", "series")


def test_infer_each_modality(tmp_path: Path) -> None:
    for i in range(4):
        _png(tmp_path / "img" / f"{i}.png")
    frame = pd.DataFrame(
        {
            "img": [f"img/{i}.png" for i in range(4)],
            "age": [1.5, 2.0, np.nan, 4.0],
            "count": [1, 2, 3, 4],
            "flag": [True, False, True, True],
            "flag_gappy": pd.Series([True, None, False, True], dtype=object),
            "colour": ["red", "blue", "red", "red"],
            "review": [
                "loved it, would buy again",
                "terrible fit and cheap fabric",
                "ok for the price I guess",
                "my daughter wears it every day",
            ],
            "score_text": ["3.5", "4", "1e2", "-2"],
            "label": [0, 1, 0, 1],
        }
    )
    schema = infer_schema(frame, exclude=["label"], root=tmp_path)
    assert schema.columns == {
        "img": "image",
        "age": "numeric",
        "count": "numeric",
        "flag": "categorical",
        "flag_gappy": "categorical",
        "colour": "categorical",
        "review": "text",
        "score_text": "numeric",
    }
    assert list(schema.columns) == [c for c in frame.columns if c != "label"]  # table order
    assert schema.of("numeric") == ["age", "count", "score_text"]
    assert schema.to_dict() == schema.columns and schema.to_dict() is not schema.columns


def test_media_needs_existing_files_unless_every_value_has_the_extension(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    frame = pd.DataFrame(
        {
            "exists": ["a.png", "gone.png", "a.png"],
            "none_exist": ["x.png", "y.png", "z.png"],
            "mixed_none_exist": ["x.png", "y.png", "a cat on a mat"],
            "sounds": ["x.wav", "y.WAV", "z.flac"],
        }
    )
    schema = infer_schema(frame, exclude=[], root=tmp_path)
    assert schema.columns["exists"] == "image"
    # every value ends in .png: still an image column, so missing files are reported, not used as text
    assert schema.columns["none_exist"] == "image"
    assert schema.columns["sounds"] == "audio"
    # only 2/3 look like paths and none exists: not an image column
    assert schema.columns["mixed_none_exist"] != "image"


def test_relative_paths_checked_against_root(tmp_path: Path) -> None:
    _png(tmp_path / "elsewhere" / "a.png")
    frame = pd.DataFrame({"p": ["a.png", "b.png", "note"]})  # 2/3 image-like, so a file must exist
    assert infer_schema(frame, exclude=[], root=tmp_path / "elsewhere").columns["p"] == "image"
    assert infer_schema(frame, exclude=[], root=tmp_path).columns["p"] != "image"


def test_in_memory_arrays_and_wave_tuples() -> None:
    frame = pd.DataFrame(
        {
            "grey": pd.Series([np.zeros((3, 3)), np.ones((3, 3))], dtype=object),
            "rgb": pd.Series([np.zeros((3, 3, 3)), None], dtype=object),
            "wave": pd.Series(
                [(np.zeros(10, np.float32), 8000), (np.ones(10, np.float32), 8000)], dtype=object
            ),
        }
    )
    assert infer_schema(frame, exclude=[], root=Path.cwd()).columns == {
        "grey": "image",
        "rgb": "image",
        "wave": "audio",
    }


def test_unreadable_cell_types_raise_naming_the_column() -> None:
    frame = pd.DataFrame({"vec": pd.Series([np.zeros(3), np.zeros(3)], dtype=object)})
    with pytest.raises(SchemaError, match=r"'vec'.*1-D arrays"):
        infer_schema(frame, exclude=[], root=Path.cwd())
    frame = pd.DataFrame({"lists": pd.Series([[1, 2], [3]], dtype=object)})
    with pytest.raises(SchemaError, match=r"'lists'.*list.*ignore"):
        infer_schema(frame, exclude=[], root=Path.cwd())
    # ... and declaring the column solves it
    assert infer_schema(frame, exclude=[], modalities={"lists": "ignore"}, root=Path.cwd()).columns == {}


def test_text_versus_categorical() -> None:
    n = 20
    frame = pd.DataFrame(
        {
            "city": ["New York", "Paris", "Oslo", "Lima"] * (n // 4),  # few distinct values
            "note": [f"the parcel number {i} arrived late" for i in range(n)],  # distinct sentences
            "code": [f"c{i}" for i in range(n)],  # distinct single tokens: ids, not prose
        }
    )
    assert infer_schema(frame, exclude=[], root=Path.cwd()).columns == {
        "city": "categorical",
        "note": "text",
        "code": "categorical",
    }


def test_all_missing_column() -> None:
    frame = pd.DataFrame({"num": [np.nan, np.nan], "txt": pd.Series([None, " "], dtype=object)})
    assert infer_schema(frame, exclude=[], root=Path.cwd()).columns == {"num": "numeric", "txt": "text"}


def test_overrides_ignore_exclude_and_unnamed(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "Unnamed: 0": [0, 1, 2, 3],
            "zip": [10115, 75001, 10115, 75001],
            "score": [1.0, 2.0, 3.0, 4.0],
            "colour": ["red", "blue", "red", "blue"],
            "y": [0, 1, 0, 1],
        }
    )
    schema = infer_schema(
        frame,
        exclude=["y"],
        modalities={"zip": "categorical", "score": "tabular", "colour": "ignore"},
        root=tmp_path,
    )
    assert schema.columns == {"zip": "categorical", "score": "numeric"}
    # "tabular" turns a text-looking column into a categorical one
    long = pd.DataFrame({"t": [f"a long sentence number {i}" for i in range(10)]})
    assert infer_schema(long, exclude=[], modalities={"t": "tabular"}, root=tmp_path).columns == {
        "t": "categorical"
    }
    # a declared unnamed column is used; "skip" is an alias of "ignore"
    declared = infer_schema(
        frame, exclude=["y"], modalities={"Unnamed: 0": "numeric", "zip": "skip"}, root=tmp_path
    )
    assert declared.columns == {"Unnamed: 0": "numeric", "score": "numeric", "colour": "categorical"}


def test_override_errors_name_the_column() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(SchemaError, match=r"'nope'.*does not have.*\['a'\]"):
        infer_schema(frame, exclude=[], modalities={"nope": "image"}, root=Path.cwd())
    with pytest.raises(SchemaError, match=r"column 'a': unknown modality 'video'"):
        infer_schema(frame, exclude=[], modalities={"a": "video"}, root=Path.cwd())


def test_schema_inputs_group_tabular_columns() -> None:
    schema = Schema(
        {"age": "numeric", "img": "image", "colour": "categorical", "review": "text", "snd": "audio"}
    )
    assert schema.inputs() == {
        "tabular": ("tabular", ["age", "colour"]),
        "img": ("image", ["img"]),
        "review": ("text", ["review"]),
        "snd": ("audio", ["snd"]),
    }
    # a column literally called "tabular" keeps its name; the tabular input steps aside
    clash = Schema({"tabular": "text", "x": "numeric"})
    assert clash.inputs() == {"tabular": ("text", ["tabular"]), "tabular_columns": ("tabular", ["x"])}
    assert Schema({"img": "image"}).inputs() == {"img": ("image", ["img"])}


# ------------------------------------------------------------------------------------------ identifiers
@pytest.mark.parametrize(
    "name", ["id", "ID", "customer_id", "Clothing ID", "customerId", "CustomerID", "uuid", "order-guid"]
)
def test_identifier_names(name: str) -> None:
    unique = pd.Series([100 + i for i in range(8)], name=name)
    assert identifier_kind(unique) == "exclude"


def test_identifier_rule() -> None:
    n = 300
    assert identifier_kind(pd.Series([f"u{i:04d}" for i in range(n)], name="user_id")) == "exclude"
    # many reviews per item: not unique, but more distinct codes than categories are kept
    assert identifier_kind(pd.Series([i % 120 for i in range(n)], name="item_id")) == "exclude"
    # a handful of stores: codes name things, so categorical, never numeric
    assert identifier_kind(pd.Series([i % 5 for i in range(n)], name="store_id")) == "categorical"
    # names that merely contain the letters, and values that are not codes
    assert identifier_kind(pd.Series(range(n), name="idea")) is None
    assert identifier_kind(pd.Series(range(n), name="width")) is None
    assert identifier_kind(pd.Series([0.5 + i for i in range(n)], name="score_id")) is None
    assert identifier_kind(pd.Series([f"a b {i}" for i in range(n)], name="note_id")) is None


def test_identifiers_are_left_out_with_a_note_unless_declared() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [1000 + i for i in range(20)],
            "store_id": [i % 4 for i in range(20)],
            "x": [float(i) for i in range(20)],
        }
    )
    notes: list[str] = []
    schema = infer_schema(frame, exclude=[], root=Path.cwd(), notes=notes)
    assert schema.columns == {"store_id": "categorical", "x": "numeric"}
    assert notes == [
        "column 'customer_id' looks like an identifier (20 distinct codes in 20 rows) and is not used as a "
        "feature; declare it in modalities= to use it (e.g. {'customer_id': 'categorical'})"
    ]
    declared = infer_schema(frame, exclude=[], modalities={"customer_id": "numeric"}, root=Path.cwd())
    assert declared.columns["customer_id"] == "numeric"


CLOTHING = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "clothing_reviews" / "val.csv"


@pytest.mark.skipif(not CLOTHING.is_file(), reason=f"clothing_reviews data not found at {CLOTHING}")
def test_clothing_id_is_an_identifier() -> None:
    """``Clothing ID``: 420 items over 2,349 reviews, so not unique per row, but an identifier."""
    import warnings

    from modalfuse import read_table

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        table = read_table(CLOTHING, label="Recommended IND")
    assert "Clothing ID" not in table.schema.columns
    assert any(
        "'Clothing ID' looks like an identifier (420 distinct codes in 2349 rows)" in str(w.message)
        for w in record
    )
    for column in ("Age", "Rating", "Positive Feedback Count"):
        assert table.schema.columns[column] == "numeric"


def test_in_memory_media_forms_are_recognised(tmp_path: Path) -> None:
    from damaged_corpus.files import png_bytes, wav

    sound = wav(tmp_path / "a.wav").read_bytes()
    frame = pd.DataFrame(
        {
            "pil": [Image.new("L", (2, 2)), None],
            "png": [png_bytes(), png_bytes()],
            "wav": [sound, sound],
            "hf_image": [{"bytes": None, "path": "x.jpg"}, None],
            "hf_audio": [{"bytes": sound, "path": None}, None],
            "hf_array": [{"array": np.zeros(10), "sampling_rate": 8000}, None],
        }
    )
    assert infer_schema(frame, exclude=[], root=tmp_path).columns == {
        "pil": "image",
        "png": "image",
        "wav": "audio",
        "hf_image": "image",
        "hf_audio": "audio",
        "hf_array": "audio",
    }
    with pytest.raises(SchemaError, match=r"'meta' holds dict values with keys \['a'\]"):
        infer_schema(pd.DataFrame({"meta": [{"a": 1}]}), exclude=[], root=tmp_path)
