"""The damaged-input corpus: one builder per case, each returning what to read and what must come out.

To add a case, write a function ``build(folder) -> Built`` and append ``Case(name, kind, build)`` to
:data:`CASES` (``quick=True`` puts it in the default run's fit-and-predict subset). Kinds so far: media,
text, tabular, label, csv (table files and formats), forms (in-memory input forms). A case that is not
about reading a table (predict-time drift, a tampered model folder) sets ``Built.action``, a callable run
instead of ``read_table`` (its error, if any, is checked the same way), and ``Built.check``, called with
its result.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from damaged_corpus import files as F
from modalfuse._errors import SchemaError

N_ROWS = 12
ROW = 3  # the row most cases damage


@dataclass
class Built:
    """What to read and what must come out.

    ``masked`` maps (row, column) to a substring of the problem's reason: exactly these cells (of the
    columns in the schema) must be masked, every other cell present. ``error`` instead names the error
    class read_table must raise (one line, matching ``match``).
    """

    source: Any
    kwargs: dict[str, Any] = field(default_factory=lambda: {"label": "y"})
    masked: dict[tuple[int, str], str] = field(default_factory=dict)
    error: type[Exception] | None = None
    match: str | None = None
    schema: dict[str, str] | None = None  # expected modalities of these columns (None: not in the schema)
    notes: list[str] = field(default_factory=list)  # substrings that must appear in table.notes
    rows: int = N_ROWS
    env: dict[str, str] = field(default_factory=dict)
    action: Callable[[], Any] | None = None  # run instead of read_table(source, **kwargs)
    check: Callable[[Any], None] | None = None  # further assertions on the result


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    build: Callable[[Path], Built]
    quick: bool = False  # also fit and predict in the default run


# ------------------------------------------------------------------------------------------- base table
def base_frame(folder: Path, n: int = N_ROWS) -> pd.DataFrame:
    """``n`` clean rows: image and audio files under ``folder/media``, text, numeric, categorical, label."""
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    words = ["soft", "warm", "cheap", "tight", "lovely", "itchy", "great", "thin"]
    rows = []
    for i in range(n):
        label = "ab"[i % 2]
        F.png(media / f"img_{i}.png", value=60 + 120 * (i % 2) + i)
        F.wav(media / f"snd_{i}.wav", freq=300.0 + 600 * (i % 2) + 7 * i)
        rows.append(
            {
                "photo": f"media/img_{i}.png",
                "voice": f"media/snd_{i}.wav",
                "review": f"{words[i % 8]} and {words[(i + 3) % 8]} fabric, order {i}",
                "size": float(2 * i + (i % 2)),
                "colour": ["red", "blue", "green"][i % 3],
                "y": label,
            }
        )
    return pd.DataFrame(rows)


def csv(folder: Path, frame: pd.DataFrame, name: str = "t.csv", **kwargs: Any) -> Path:
    frame.to_csv(folder / name, index=False, **kwargs)
    return folder / name


def with_cell(folder: Path, column: str, value: Any, row: int = ROW) -> pd.DataFrame:
    frame = base_frame(folder).astype({column: object})
    frame.at[row, column] = value
    return frame


def image_case(maker: Callable[[Path], Path], filename: str, reason: str) -> Callable[[Path], Built]:
    def build(folder: Path) -> Built:
        frame = base_frame(folder)
        maker(folder / "media" / filename)
        frame.at[ROW, "photo"] = f"media/{filename}"
        return Built(csv(folder, frame), masked={(ROW, "photo"): reason} if reason else {})

    return build


def audio_case(maker: Callable[[Path], Path], filename: str, reason: str) -> Callable[[Path], Built]:
    def build(folder: Path) -> Built:
        frame = base_frame(folder)
        maker(folder / "media" / filename)
        frame.at[ROW, "voice"] = f"media/{filename}"
        return Built(csv(folder, frame), masked={(ROW, "voice"): reason} if reason else {})

    return build


# ------------------------------------------------------------------------------------------- media: paths
def _link_case(target: Callable[[Path], Path | str], reason: str) -> Callable[[Path], Built]:
    def build(folder: Path) -> Built:
        frame = base_frame(folder)
        os.symlink(target(folder), folder / "media" / "link.png")
        frame.at[ROW, "photo"] = "media/link.png"
        return Built(csv(folder, frame), masked={(ROW, "photo"): reason})

    return build


def symlink_loop(folder: Path) -> Built:
    frame = base_frame(folder)
    os.symlink("loop_b.png", folder / "media" / "loop_a.png")
    os.symlink("loop_a.png", folder / "media" / "loop_b.png")
    frame.at[ROW, "photo"] = "media/loop_a.png"
    return Built(csv(folder, frame), masked={(ROW, "photo"): "symlink loop"})


def fifo(folder: Path) -> Built:
    frame = base_frame(folder)
    os.mkfifo(folder / "media" / "pipe.wav")  # opening it would block for ever
    frame.at[ROW, "voice"] = "media/pipe.wav"
    return Built(csv(folder, frame), masked={(ROW, "voice"): "not a regular file: named pipe"})


def directory_path(folder: Path) -> Built:
    frame = base_frame(folder)
    (folder / "media" / "folder.png").mkdir()
    frame.at[ROW, "photo"] = "media/folder.png"
    return Built(csv(folder, frame), masked={(ROW, "photo"): "is a directory"})


def url_cell(folder: Path) -> Built:
    frame = with_cell(folder, "photo", "https://example.com/cat.png")
    return Built(csv(folder, frame), masked={(ROW, "photo"): "a URL, not a local file"})


def nul_in_path(folder: Path) -> Built:
    return Built(
        with_cell(folder, "photo", "media/img_0.png\x00.png"),
        kwargs={"label": "y", "root": folder},
        masked={(ROW, "photo"): "invalid path"},
    )


def long_path(folder: Path) -> Built:
    frame = with_cell(folder, "photo", "media/" + "x" * 5000 + ".png")
    return Built(csv(folder, frame), masked={(ROW, "photo"): "file name too long"})


def missing_file(folder: Path) -> Built:
    frame = with_cell(folder, "voice", "media/nowhere.wav")
    return Built(csv(folder, frame), masked={(ROW, "voice"): "file not found"})


def unicode_path(folder: Path) -> Built:
    frame = base_frame(folder)
    F.png(folder / "media" / "photo été 1 ✓.png")
    frame.at[ROW, "photo"] = "media/photo été 1 ✓.png"
    return Built(csv(folder, frame))


def _confine_case(value: Callable[[Path], str], link: bool = False) -> Callable[[Path], Built]:
    def build(folder: Path) -> Built:
        data = folder / "data"
        data.mkdir()
        frame = base_frame(data)
        F.png(folder / "secret.png")
        if link:
            os.symlink(folder / "secret.png", data / "media" / "inside.png")
        frame.at[ROW, "photo"] = value(folder)
        return Built(
            csv(data, frame),
            kwargs={"label": "y", "confine": True},
            error=SchemaError,
            match=rf"t\.csv: row {ROW}, column 'photo': path .* escapes the table's folder",
        )

    return build


# ------------------------------------------------------------------------------------------- text
def long_text(folder: Path) -> Built:
    return Built(csv(folder, with_cell(folder, "review", "very long review " * 120_000)))


def control_characters(folder: Path) -> Built:
    frame = with_cell(folder, "review", "tab\there, bell\x07, escape\x1b[31m red, nul\x00 end")
    return Built(frame, kwargs={"label": "y", "root": folder})


def blank_text(folder: Path) -> Built:
    return Built(csv(folder, with_cell(folder, "review", "   ")), masked={(ROW, "review"): "empty cell"})


def numbers_as_text(folder: Path) -> Built:
    frame = base_frame(folder)
    frame["review"] = [str(1000 + 37 * i) for i in range(N_ROWS)]
    return Built(
        csv(folder, frame), kwargs={"label": "y", "modalities": {"review": "text"}}, schema={"review": "text"}
    )


def unicode_text(folder: Path) -> Built:
    return Built(csv(folder, with_cell(folder, "review", "שלום 👗 naïve cafe\u0301 ﬁt 漢字")))


def latin1_no_encoding(folder: Path) -> Built:
    path = folder / "t.csv"
    base_frame(folder).assign(review="café crème très doux").to_csv(path, index=False, encoding="latin-1")
    return Built(path, error=SchemaError, match=r"t\.csv: not valid utf-8 text \(line 2.*encoding=")


def latin1_with_encoding(folder: Path) -> Built:
    path = folder / "t.csv"
    base_frame(folder).assign(review="café crème très doux").to_csv(path, index=False, encoding="latin-1")
    return Built(path, kwargs={"label": "y", "encoding": "latin-1"})


def bytes_in_text(folder: Path) -> Built:
    frame = with_cell(folder, "review", "caf\xe9 au lait".encode())
    return Built(frame, kwargs={"label": "y", "root": folder, "modalities": {"review": "text"}})


# ------------------------------------------------------------------------------------------- tabular
def _number_case(value: Any, reason: str | None) -> Callable[[Path], Built]:
    def build(folder: Path) -> Built:
        frame = with_cell(folder, "size", value)
        return Built(
            csv(folder, frame), masked={(ROW, "size"): reason} if reason else {}, schema={"size": "numeric"}
        )

    return build


def constant_column(folder: Path) -> Built:
    return Built(csv(folder, base_frame(folder).assign(size=7.0)), schema={"size": "numeric"})


def junk_in_numbers(folder: Path) -> Built:
    frame = base_frame(folder, n=40)
    frame = frame.astype({"size": object})
    frame.at[ROW, "size"] = "n/a?"
    return Built(
        csv(folder, frame), masked={(ROW, "size"): "not a number"}, schema={"size": "numeric"}, rows=40
    )


def thousands_separators(folder: Path) -> Built:
    frame = base_frame(folder).assign(price=[f"{1000 + 99_991 * i:,}" for i in range(N_ROWS)])
    return Built(
        csv(folder, frame),
        schema={"price": "numeric"},
        notes=["'price' holds numbers written with digit groups"],
    )


def ambiguous_separators(folder: Path) -> Built:
    frame = base_frame(folder).assign(price=[f"{1 + i},{100 + i}" for i in range(N_ROWS)])
    return Built(csv(folder, frame), notes=["'price' holds numbers with separators that read two ways"])


def space_separators(folder: Path) -> Built:
    frame = base_frame(folder).assign(price=[f"{12 + i} {345 + i}" for i in range(N_ROWS)])
    return Built(csv(folder, frame), schema={"price": "numeric"})


def identifier_column(folder: Path) -> Built:
    frame = base_frame(folder).assign(customer_id=[10_000 + 17 * i for i in range(N_ROWS)])
    return Built(
        csv(folder, frame), schema={"customer_id": None}, notes=["'customer_id' looks like an identifier"]
    )


def mixed_types(folder: Path) -> Built:
    frame = base_frame(folder).astype({"colour": object})
    frame.at[1, "colour"] = 3
    frame.at[2, "colour"] = 2.5
    frame.at[ROW, "colour"] = b"blue"
    frame.at[4, "colour"] = True
    return Built(frame, kwargs={"label": "y", "root": folder}, schema={"colour": "categorical"})


def gappy_booleans(folder: Path) -> Built:
    frame = base_frame(folder).assign(flag=pd.Series([True, False, None] * 4, dtype=object))
    return Built(
        frame,
        kwargs={"label": "y", "root": folder},
        schema={"flag": "categorical"},
        masked={(i, "flag"): "empty cell" for i in range(2, N_ROWS, 3)},
    )


# ------------------------------------------------------------------------------------------- label
def label_all_missing(folder: Path) -> Built:
    return Built(
        csv(folder, base_frame(folder).assign(y=None)),
        error=SchemaError,
        match=r"t\.csv: label column 'y' is empty",
    )


def label_one_value(folder: Path) -> Built:
    frame = base_frame(folder).assign(y=None)
    frame.at[ROW, "y"] = "a"
    return Built(csv(folder, frame), error=SchemaError, match=r"t\.csv: label column 'y' has a single class")


def label_one_class(folder: Path) -> Built:
    return Built(csv(folder, base_frame(folder).assign(y="a")), error=SchemaError, match="single class")


def single_row_class(folder: Path) -> Built:
    frame = base_frame(folder)
    frame.at[ROW, "y"] = "c"
    return Built(csv(folder, frame), notes=["'c' (row 3)"])


def missing_labels(folder: Path) -> Built:
    frame = base_frame(folder)
    frame.loc[[1, 6], "y"] = None
    return Built(csv(folder, frame), rows=N_ROWS - 2, notes=["2 row(s) without a label"])


def mixed_label_types(folder: Path) -> Built:
    frame = base_frame(folder).assign(y=[0, "0", 1, "1"] * 3)
    return Built(frame, kwargs={"label": "y", "root": folder}, notes=["mixes numbers and strings"])


def label_column_absent(folder: Path) -> Built:
    return Built(
        csv(folder, base_frame(folder)),
        kwargs={"label": "target"},
        error=SchemaError,
        match=r"t\.csv: label column 'target' is not in the table",
    )


# ------------------------------------------------------------------------------------------- CSV formats
def _delimited(sep: str, bom: bool = False, ext: str = ".csv") -> Callable[[Path], Built]:
    def build(folder: Path) -> Built:
        path = folder / f"t{ext}"
        text = base_frame(folder).to_csv(index=False, sep=sep)
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        return Built(path, schema={"photo": "image", "size": "numeric"})

    return build


def utf16_excel(folder: Path) -> Built:
    path = folder / "t.csv"
    path.write_bytes(base_frame(folder).to_csv(index=False, sep="\t").encode("utf-16"))
    return Built(path, schema={"photo": "image", "size": "numeric"})


def decimal_commas(folder: Path) -> Built:
    path = folder / "t.csv"
    frame = base_frame(folder).assign(
        price=[
            f"{1000 + 13 * i:,}.{i}".replace(",", "X").replace(".", ",").replace("X", ".")
            for i in range(N_ROWS)
        ]
    )
    frame.to_csv(path, index=False, sep=";")
    return Built(path, schema={"price": "numeric", "size": "numeric"})


def duplicate_header(folder: Path) -> Built:
    path = folder / "t.csv"
    text = base_frame(folder).to_csv(index=False).replace("colour", "size", 1)
    path.write_text(text)
    return Built(path, error=SchemaError, match=r"t\.csv: duplicate column name\(s\) in the header: 'size'")


def header_only(folder: Path) -> Built:
    path = folder / "t.csv"
    path.write_text("photo,voice,y\n")
    return Built(path, error=SchemaError, match=r"t\.csv: the table has no rows")


def empty_file(folder: Path) -> Built:
    (folder / "t.csv").write_bytes(b"")
    return Built(folder / "t.csv", error=SchemaError, match=r"t\.csv: cannot read")


def ragged_rows(folder: Path) -> Built:
    path = csv(folder, base_frame(folder))
    with path.open("a") as f:
        f.write("media/img_0.png,media/snd_0.wav,extra,1,red,a,surplus,more\n")
    return Built(path, error=SchemaError, match=r"t\.csv: cannot read")


def gzipped(folder: Path) -> Built:
    path = folder / "t.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(base_frame(folder).to_csv(index=False, sep=";"))
    return Built(path, schema={"photo": "image"})


def truncated_gzip(folder: Path) -> Built:
    path = folder / "t.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(base_frame(folder).to_csv(index=False))
    F.truncated(path, 0.6)
    return Built(path, error=SchemaError, match=r"t\.csv\.gz: cannot read")


def truncated_parquet(folder: Path) -> Built:
    path = folder / "t.parquet"
    base_frame(folder).to_parquet(path)
    F.truncated(path, 0.5)
    return Built(path, error=SchemaError, match=r"t\.parquet: cannot read")


def json_object(folder: Path) -> Built:
    (folder / "t.json").write_text(json.dumps({"photo": "media/img_0.png", "y": "a"}))
    return Built(folder / "t.json", error=SchemaError, match=r"t\.json: a JSON object that is not a table")


def json_wrapped(folder: Path) -> Built:
    records = base_frame(folder).to_dict(orient="records")
    (folder / "t.json").write_text(json.dumps({"data": records}))
    return Built(folder / "t.json", error=SchemaError, match=r"under the key 'data'")


def json_records(folder: Path) -> Built:
    (folder / "t.json").write_text(json.dumps(base_frame(folder).to_dict(orient="records")))
    return Built(folder / "t.json", schema={"photo": "image", "size": "numeric"})


def jsonl_bad_line(folder: Path) -> Built:
    lines = [json.dumps(r) for r in base_frame(folder).to_dict(orient="records")]
    lines[ROW] = lines[ROW][:-5]
    (folder / "t.jsonl").write_text("\n".join(lines))
    return Built(folder / "t.jsonl", error=SchemaError, match=rf"t\.jsonl: line {ROW + 1} is not valid JSON")


def crlf_and_quoted_newlines(folder: Path) -> Built:
    frame = with_cell(folder, "review", 'line one\nline "two", with comma')
    path = folder / "t.csv"
    frame.to_csv(path, index=False, lineterminator="\r\n")
    return Built(path)


def blank_lines(folder: Path) -> Built:
    path = csv(folder, base_frame(folder))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:4], "", "", *lines[4:]]) + "\n\n")
    return Built(path)


def trailing_delimiter(folder: Path) -> Built:
    path = csv(folder, base_frame(folder))
    path.write_text("".join(line + ",\n" for line in path.read_text().splitlines()))
    return Built(path, schema={"photo": "image"})


def wrong_explicit_sep(folder: Path) -> Built:
    path = folder / "t.csv"
    base_frame(folder).to_csv(path, index=False, sep=";")
    return Built(path, kwargs={"label": "y", "sep": ","}, error=SchemaError, match=r"contains ';'.*sep=';'")


# ------------------------------------------------------------------------------------------- input forms
def _in_memory(folder: Path, column: str, values: list[Any], **kwargs: Any) -> Built:
    frame = base_frame(folder)
    frame[column] = pd.Series(values, dtype=object)
    return Built(frame, kwargs={"label": "y", "root": folder, **kwargs})


def png_bytes_cells(folder: Path) -> Built:
    return _in_memory(folder, "photo", [F.png_bytes(20 * i) for i in range(N_ROWS)])


def pil_cells(folder: Path) -> Built:
    images = [Image.fromarray(np.full((9, 7, 3), 20 * i, np.uint8)) for i in range(N_ROWS)]
    images[ROW] = images[ROW].convert("P")
    return _in_memory(folder, "photo", images)


def hf_image_dicts(folder: Path) -> Built:
    cells: list[Any] = [{"bytes": F.png_bytes(20 * i), "path": None} for i in range(N_ROWS)]
    cells[1] = {"bytes": None, "path": "media/img_1.png"}
    cells[ROW] = {"bytes": b"garbage, not an image", "path": None}
    built = _in_memory(folder, "photo", cells)
    built.masked = {(ROW, "photo"): "not a valid"}
    return built


def hf_audio_arrays(folder: Path) -> Built:
    t = np.arange(2000) / 8000
    cells: list[Any] = [
        {"array": np.sin(2 * np.pi * (300 + 50 * i) * t), "sampling_rate": 8000, "path": None}
        for i in range(N_ROWS)
    ]
    cells[ROW] = {"array": np.sin(t), "sampling_rate": 0, "path": None}
    built = _in_memory(folder, "voice", cells)
    built.masked = {(ROW, "voice"): "implausible sample rate"}
    return built


def records_list(folder: Path) -> Built:
    return Built(base_frame(folder).to_dict(orient="records"), kwargs={"label": "y", "root": folder})


class _Dataset:
    """A stand-in for ``datasets.Dataset``: anything with ``to_pandas()``."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def to_pandas(self) -> pd.DataFrame:
        return self._frame.copy()


def dataset_object(folder: Path) -> Built:
    frame = base_frame(folder)
    frame["photo"] = [{"bytes": (folder / p).read_bytes(), "path": p} for p in frame["photo"]]
    return Built(_Dataset(frame), kwargs={"label": "y", "root": folder})


# ------------------------------------------------------------------------------------------- series
def _recording(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = 1_657_533_977_000 + np.cumsum(rng.integers(8, 12, n))
    return pd.DataFrame(
        {
            "timestamp": t,
            "x_acc": rng.normal(size=n),
            "y_acc": rng.normal(size=n),
            "z_acc": 9.8 + rng.normal(size=n),
        }
    )


def series_case(
    damage: Callable[[pd.DataFrame], pd.DataFrame | None], reason: str
) -> Callable[[Path], Built]:
    """A ``motion`` column of recordings (CSV files with a timestamp column); row ROW's is damaged
    (``damage`` returns the frame to write, or None for an empty file)."""

    def build(folder: Path) -> Built:
        frame = base_frame(folder)
        (folder / "rec").mkdir(exist_ok=True)
        for i in range(len(frame)):
            rec = _recording(seed=i)
            if i == ROW:
                rec = damage(rec)
            path = folder / "rec" / f"r_{i}.csv"
            if rec is None:
                path.write_bytes(b"")
            else:
                rec.to_csv(path, index=False)
        frame["motion"] = [f"rec/r_{i}.csv" for i in range(len(frame))]
        return Built(csv(folder, frame), masked={(ROW, "motion"): reason}, schema={"motion": "series"})

    return build


def _backward(rec: pd.DataFrame) -> pd.DataFrame:
    return rec.iloc[np.r_[0:100, 120:100:-1, 121:200]]


# ------------------------------------------------------------------------------------------- the list
CASES: list[Case] = [
    # media: images
    Case("png-zlib-bomb", "media", image_case(F.png_zlib_bomb, "bomb.png", "too large"), quick=True),
    Case("png-header-bomb", "media", image_case(F.png_header_bomb, "big.png", "30000x30000")),
    Case("tiff-header-bomb", "media", image_case(F.tiff_header_bomb, "big.tif", "too large")),
    Case("gif-header-bomb", "media", image_case(F.gif_header_bomb, "big.gif", "too large")),
    Case("bmp-header-bomb", "media", image_case(F.bmp_header_bomb, "big.bmp", "too large")),
    Case("jpeg-header-bomb", "media", image_case(F.jpeg_header_bomb, "big.jpg", "too large")),
    Case("webp-header-bomb", "media", image_case(F.webp_header_bomb, "big.webp", "too large")),
    Case("png-zero-width", "media", image_case(F.png_zero_width, "zero.png", "not a valid PNG")),
    Case("png-empty", "media", image_case(F.empty, "empty.png", "empty file")),
    Case(
        "png-truncated",
        "media",
        image_case(lambda p: F.truncated(F.png(p, size=(64, 64))), "cut.png", "truncated"),
    ),
    Case("png-is-text", "media", image_case(F.text_file, "fake.png", "not a valid PNG")),
    Case("png-16-bit", "media", image_case(F.png_16_bit, "deep.png", "")),
    Case("png-palette-transparent", "media", image_case(F.png_palette_transparent, "pal.png", "")),
    Case("jpeg-cmyk", "media", image_case(F.jpeg_cmyk, "cmyk.jpg", "")),
    Case("gif-animated", "media", image_case(F.gif_animated, "anim.gif", "")),
    Case("png-1x1", "media", image_case(F.png_1x1, "dot.png", ""), quick=True),
    Case("symlink-loop", "media", symlink_loop),
    Case(
        "symlink-dev-zero", "media", _link_case(lambda f: "/dev/zero", "not a regular file: character device")
    ),
    Case("symlink-directory", "media", _link_case(lambda f: f / "media", "is a directory")),
    Case("symlink-broken", "media", _link_case(lambda f: f / "gone.png", "broken symbolic link")),
    Case("path-is-directory", "media", directory_path),
    Case("fifo", "media", fifo),
    Case("url", "media", url_cell),
    Case("nul-in-path", "media", nul_in_path),
    Case("path-too-long", "media", long_path),
    Case("file-not-found", "media", missing_file),
    Case("unicode-path", "media", unicode_path),
    Case("confine-dotdot", "media", _confine_case(lambda f: "../secret.png")),
    Case("confine-absolute", "media", _confine_case(lambda f: str(f / "secret.png"))),
    Case("confine-symlink-out", "media", _confine_case(lambda f: "media/inside.png", link=True)),
    # media: audio
    Case("wav-giant-header", "media", audio_case(F.wav_giant_header, "giant.wav", "truncated WAV")),
    Case("wav-streamed-size", "media", audio_case(F.wav_streamed_size, "stream.wav", "")),
    Case("flac-lying-length", "media", audio_case(F.flac_lying_length, "liar.flac", "cannot decode audio")),
    Case(
        "wav-empty-data", "media", audio_case(lambda p: F.wav(p, seconds=0.0), "zero.wav", "no audio samples")
    ),
    Case("wav-stereo", "media", audio_case(lambda p: F.wav(p, channels=2), "stereo.wav", "")),
    Case("wav-8-bit", "media", audio_case(lambda p: F.wav(p, subtype="PCM_U8"), "u8.wav", "")),
    Case("wav-24-bit", "media", audio_case(lambda p: F.wav(p, subtype="PCM_24"), "p24.wav", "")),
    Case("wav-float", "media", audio_case(lambda p: F.wav(p, subtype="FLOAT"), "f32.wav", "")),
    Case(
        "wav-float-huge",
        "media",
        audio_case(lambda p: F.float_wav(p, np.full(800, 1e30)), "huge.wav", "far outside [-1, 1]"),
    ),
    Case(
        "wav-float-nan",
        "media",
        audio_case(lambda p: F.float_wav(p, np.array([0.1, np.nan] * 400)), "nan.wav", "non-finite"),
    ),
    Case(
        "wav-rate-1hz", "media", audio_case(lambda p: F.wav_rate(p, 1), "slow.wav", "implausible sample rate")
    ),
    Case(
        "wav-truncated",
        "media",
        audio_case(lambda p: F.truncated(F.wav(p, seconds=0.5)), "cut.wav", "truncated WAV"),
    ),
    Case(
        "wav-10-samples",
        "media",
        audio_case(lambda p: F.wav(p, seconds=10 / 8000), "tiny.wav", ""),
        quick=True,
    ),
    Case("flac", "media", audio_case(F.wav, "good.flac", "")),
    Case("ogg", "media", audio_case(F.wav, "good.ogg", "")),
    Case("flac-corrupt", "media", audio_case(F.corrupt_flac, "bad.flac", "cannot decode audio")),
    Case("wav-random-bytes", "media", audio_case(F.random_bytes, "noise.wav", "cannot decode audio")),
    Case(
        "audio-over-budget",
        "media",
        lambda f: _with_env(
            audio_case(lambda p: F.wav(p, seconds=2.0), "long.wav", "audio too long")(f),
            MODALFUSE_MAX_AUDIO_SAMPLES="8000",
        ),
    ),
    Case(
        "image-over-budget",
        "media",
        lambda f: _with_env(
            image_case(lambda p: F.png(p, size=(200, 200)), "wide.png", "200x200")(f),
            MODALFUSE_MAX_IMAGE_PIXELS="10000",
        ),
    ),
    # text
    Case("text-2mb-cell", "text", long_text),
    Case("text-control-characters", "text", control_characters),
    Case("text-blank", "text", blank_text),
    Case("text-numbers-only", "text", numbers_as_text),
    Case("text-unicode", "text", unicode_text),
    Case("text-bytes", "text", bytes_in_text),
    Case("latin1-without-encoding", "text", latin1_no_encoding),
    Case("latin1-with-encoding", "text", latin1_with_encoding),
    # tabular
    Case("number-1e308", "tabular", _number_case("1e308", "too large in magnitude"), quick=True),
    Case("number-minus-1e308", "tabular", _number_case("-1.7e308", "too large in magnitude")),
    Case("number-1e200", "tabular", _number_case("1e200", "too large in magnitude")),
    Case("number-inf", "tabular", _number_case("inf", "not a finite number")),
    Case("number-minus-inf", "tabular", _number_case("-Infinity", "not a finite number")),
    Case("number-nan-string", "tabular", _number_case("nan", "empty cell")),
    Case("number-subnormal", "tabular", _number_case("1e-320", None)),
    Case("number-constant-column", "tabular", constant_column),
    Case("number-junk", "tabular", junk_in_numbers),
    Case("thousands-separators", "tabular", thousands_separators),
    Case("ambiguous-separators", "tabular", ambiguous_separators),
    Case("space-separators", "tabular", space_separators),
    Case("identifier-column", "tabular", identifier_column),
    Case("mixed-types", "tabular", mixed_types),
    Case("gappy-booleans", "tabular", gappy_booleans),
    # label
    Case("label-all-missing", "label", label_all_missing),
    Case("label-one-value", "label", label_one_value),
    Case("label-one-class", "label", label_one_class),
    Case("label-single-row-class", "label", single_row_class),
    Case("label-some-missing", "label", missing_labels),
    Case("label-mixed-types", "label", mixed_label_types),
    Case("label-column-absent", "label", label_column_absent),
    # CSV and other table formats
    Case("semicolon", "csv", _delimited(";")),
    Case("semicolon-bom", "csv", _delimited(";", bom=True)),
    Case("comma-bom", "csv", _delimited(",", bom=True)),
    Case("tab-in-csv", "csv", _delimited("\t")),
    Case("pipe", "csv", _delimited("|")),
    Case("tsv", "csv", _delimited("\t", ext=".tsv")),
    Case("utf16-excel", "csv", utf16_excel),
    Case("decimal-commas", "csv", decimal_commas),
    Case("duplicate-header", "csv", duplicate_header),
    Case("header-only", "csv", header_only),
    Case("empty-file", "csv", empty_file),
    Case("ragged-rows", "csv", ragged_rows),
    Case("gzip", "csv", gzipped),
    Case("gzip-truncated", "csv", truncated_gzip),
    Case("parquet-truncated", "csv", truncated_parquet),
    Case("json-object", "csv", json_object),
    Case("json-wrapped-records", "csv", json_wrapped),
    Case("json-records", "csv", json_records),
    Case("jsonl-bad-line", "csv", jsonl_bad_line),
    Case("crlf-quoted-newlines", "csv", crlf_and_quoted_newlines),
    Case("blank-lines", "csv", blank_lines),
    Case("trailing-delimiter", "csv", trailing_delimiter),
    Case("wrong-explicit-sep", "csv", wrong_explicit_sep),
    # in-memory input forms
    Case("png-bytes", "forms", png_bytes_cells),
    Case("pil-images", "forms", pil_cells),
    Case("hf-image-dicts", "forms", hf_image_dicts, quick=True),
    Case("hf-audio-arrays", "forms", hf_audio_arrays),
    Case("records", "forms", records_list),
    Case("to-pandas-object", "forms", dataset_object),
    # series recordings (a timestamp column and channels)
    Case(
        "series-no-timestamp",
        "series",
        series_case(lambda r: r.drop(columns="timestamp"), "no timestamp column"),
    ),
    Case("series-backward-time", "series", series_case(_backward, "not in order")),
    Case(
        "series-duplicated-time",
        "series",
        series_case(lambda r: r.assign(timestamp=r.timestamp // 1000 * 1000), "duplicated timestamps"),
    ),
    Case("series-nan-channel", "series", series_case(lambda r: r.assign(y_acc=np.nan), "holds no numbers")),
    Case(
        "series-mostly-nan",
        "series",
        series_case(lambda r: r.assign(y_acc=np.where(np.arange(200) % 3, np.nan, 1.0)), "hold NaN"),
    ),
    Case("series-other-channels", "series", series_case(lambda r: r.drop(columns="z_acc"), "2 channels")),
    Case("series-empty-file", "series", series_case(lambda r: None, "empty file")),
    Case("series-one-sample", "series", series_case(lambda r: r.iloc[:1], "at least 2")),
]


def _with_env(built: Built, **env: str) -> Built:
    built.env = env
    return built
