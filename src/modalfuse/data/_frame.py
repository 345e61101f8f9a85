"""From a table source to a pandas DataFrame: files (CSV/TSV, Parquet, JSON, JSONL, gzip), records, datasets.

CSV files have their text encoding detected from a byte-order mark (UTF-8, UTF-16, UTF-32), their
delimiter sniffed (``,``, ``;``, tab, ``|``) and their header checked for duplicate names before pandas
renames them. Every failure is a :class:`SchemaError` that names the file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from modalfuse._errors import SchemaError

__all__ = ["DELIMITERS", "frame_from_source", "one_column_hint", "read_frame"]

#: Delimiters a CSV file is sniffed for, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 1 << 16
_SAMPLE_ROWS = 200
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_IN_MEMORY_NAMES = {pd.DataFrame: "dataframe", list: "records", tuple: "records", dict: "dict"}
_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".tab")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


# ------------------------------------------------------------------------------------------- bytes, text
def _compressed(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if _compressed(path) else path.open("rb")  # type: ignore[return-value]


def _head(path: Path, n: int = _SAMPLE_BYTES) -> bytes:
    with _open_bytes(path) as f:
        return f.read(n)


def _encoding(head: bytes, encoding: str | None) -> str:
    """The codec to read with: a byte-order mark decides when no encoding is given (and UTF-8's is
    skipped when ``utf-8`` is given)."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            if encoding is None or (codec == "utf-8-sig" and codecs.lookup(encoding).name == "utf-8"):
                return codec
            break
    return encoding or "utf-8"


def _first_bad_byte(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """(file offset, line number, byte) of the first byte of ``path`` that ``encoding`` cannot decode."""
    try:
        with _open_bytes(path) as f:
            raw = f.read()
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        return exc.start, raw.count(b"\n", 0, exc.start) + 1, raw[exc.start : exc.start + 1]
    except (OSError, LookupError):
        pass
    return None


def _encoding_error(path: Path, enc: str, exc: UnicodeDecodeError) -> SchemaError:
    where = _first_bad_byte(path, enc)
    at = (
        f"line {where[1]}, byte {where[0]}: {where[2]!r}"
        if where is not None
        else f"byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}"
    )
    shown = "utf-8" if enc == "utf-8-sig" else enc
    return SchemaError(
        f"{path}: not valid {shown} text ({at}); pass the file's encoding, e.g. encoding='latin-1' "
        "or encoding='cp1252' (CLI: --encoding latin-1)"
    )


def _sample_text(path: Path, enc: str) -> tuple[str, bool]:
    """The first 64 KiB of the file as text, and whether the file goes on beyond them."""
    raw = _head(path, _SAMPLE_BYTES + 1)
    more = len(raw) > _SAMPLE_BYTES
    text = codecs.getincrementaldecoder(enc)().decode(raw[:_SAMPLE_BYTES], final=not more)
    return text.lstrip("\ufeff"), more


# ------------------------------------------------------------------------------------------- CSV
def _sample_rows(sample: str, delimiter: str, more: bool) -> list[list[str]]:
    if len(delimiter) != 1:  # a regular expression given as sep=: left to pandas
        return []
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if row:
                rows.append(row)
            if len(rows) > _SAMPLE_ROWS:
                break
    except csv.Error:
        pass
    if more and len(rows) > 1 and len(rows) <= _SAMPLE_ROWS:
        rows.pop()  # the last line of a cut sample may be incomplete
    return rows


def sniff_delimiter(sample: str, *, more: bool = False, default: str = ",") -> str:
    """The delimiter among :data:`DELIMITERS` that splits the header into the most consistent fields.

    For each candidate, the header must have at least two fields; the candidate whose data rows most
    often have as many fields as the header wins, then the one with more fields, then ``default`` and
    the order of :data:`DELIMITERS`. With no candidate giving two fields, ``default``.
    """
    best: tuple[float, int, int] | None = None
    chosen = default
    order = [default, *(d for d in DELIMITERS if d != default)]
    for rank, delimiter in enumerate(order):
        rows = _sample_rows(sample, delimiter, more)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        body = rows[1:]
        consistency = sum(len(r) == width for r in body) / len(body) if body else 1.0
        score = (consistency, width, -rank)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _check_header(header: list[str], path: Path) -> None:
    """Refuse duplicate names in a CSV header (pandas would silently rename the second ``size.1``)."""
    seen: dict[str, int] = {}
    dups: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        if not name.strip():
            continue
        if name in seen:
            dups.setdefault(name, [seen[name] + 1]).append(i + 1)
        else:
            seen[name] = i
    if dups:
        listing = "; ".join(f"{n!r} in columns {', '.join(map(str, cols))}" for n, cols in dups.items())
        raise SchemaError(
            f"{path}: duplicate column name(s) in the header: {listing}; every column needs its own name"
        )


def _read_csv(path: Path, encoding: str | None, sep: str | None) -> pd.DataFrame:
    enc = _encoding(_head(path, 4), encoding)
    sample, more = _sample_text(path, enc)
    suffix = _suffix(path)
    default = "\t" if suffix.startswith((".tsv", ".tab")) else ","
    delimiter = sep if sep is not None else sniff_delimiter(sample, more=more, default=default)
    rows = _sample_rows(sample, delimiter, more)
    if rows:
        _check_header(rows[0], path)
    frame = pd.read_csv(path, sep=delimiter, encoding=enc, keep_default_na=True)
    if len(frame.columns) and isinstance(frame.columns[0], str):
        frame = frame.rename(columns={frame.columns[0]: frame.columns[0].lstrip("\ufeff")})
    return frame


def one_column_hint(frame: pd.DataFrame) -> str:
    """For a table read as a single column whose name holds a delimiter: a sentence saying so."""
    if len(frame.columns) != 1:
        return ""
    header = str(frame.columns[0])
    found = [d for d in DELIMITERS if d in header]
    if not found:
        return ""
    shown = {"\t": "\\t"}.get(found[0], found[0])
    return (
        f"; the file reads as a single column whose header {header[:80]!r} contains {shown!r}: "
        f"if that is the delimiter, pass sep={shown!r}"
    )


# ------------------------------------------------------------------------------------------- JSON
def _json_list(data: list, path: Path) -> pd.DataFrame:
    bad = next((r for r in data if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise SchemaError(
            f"{path}: a JSON list of {type(bad).__name__} values, not of records; "
            'expected [{"column": value, ...}, ...]'
        )
    return pd.DataFrame.from_records(data) if data else pd.DataFrame()


def _json_object(data: Mapping, path: Path) -> pd.DataFrame:
    lists = [v for v in data.values() if isinstance(v, list)]
    records = [
        k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(r, Mapping) for r in v)
    ]
    columns = len(lists) == len(data) and len({len(v) for v in lists}) == 1
    if lists and columns and not (len(data) == 1 and records):
        return pd.DataFrame(dict(data))
    hint = f"; the records seem to be under the key {records[0]!r}: extract that list" if records else ""
    raise SchemaError(
        f"{path}: a JSON object that is not a table (expected a list of records or an object of "
        f"equal-length column lists; keys {list(data)[:10]}){hint}"
    )


def _json_records(data: Any, path: Path) -> pd.DataFrame:
    """A DataFrame from parsed JSON: a list of records (objects) or an object of equal-length columns."""
    if isinstance(data, list):
        return _json_list(data, path)
    if isinstance(data, Mapping):
        return _json_object(data, path)
    raise SchemaError(f"{path}: a JSON {type(data).__name__}, not a list of records")


def _read_json(path: Path, encoding: str | None) -> pd.DataFrame:
    enc = _encoding(_head(path, 4), encoding)
    with _open_bytes(path) as f:
        text = f.read().decode(enc)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    return _json_records(data, path)


def _read_jsonl(path: Path, encoding: str | None) -> pd.DataFrame:
    enc = _encoding(_head(path, 4), encoding)
    records = []
    with _open_bytes(path) as f:
        for number, line in enumerate(io.TextIOWrapper(f, encoding=enc), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"{path}: line {number} is not valid JSON: {exc.msg}") from None
            if not isinstance(record, Mapping):
                raise SchemaError(f"{path}: line {number} is a JSON {type(record).__name__}, not a record")
            records.append(record)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


# ------------------------------------------------------------------------------------------- files
def _suffix(path: Path) -> str:
    return "".join(path.suffixes[-2:]).lower() if _compressed(path) else path.suffix.lower()


def _reader(suffix: str) -> str | None:
    base = suffix.removesuffix(".gz")
    if base in (".parquet", ".pq") and suffix == base:
        return "parquet"
    if base in _JSONL_SUFFIXES:
        return "jsonl"
    if base == ".json":
        return "json"
    if base in _CSV_SUFFIXES:
        return "csv"
    return None


def read_frame(
    path: str | os.PathLike, *, encoding: str | None = None, sep: str | None = None
) -> pd.DataFrame:
    """Read a table file (CSV/TSV, Parquet, JSONL, JSON; CSV, JSON and JSONL optionally gzipped).

    CSV files: the delimiter is sniffed among ``,``, ``;``, tab and ``|`` unless ``sep`` is given; a
    byte-order mark sets the encoding (and is not part of the first column's name); a header with a
    name twice is refused. ``encoding`` defaults to UTF-8.

    Raises
    ------
    SchemaError
        Naming the file, for a missing, malformed, wrongly encoded or unsupported file.
    """
    path = Path(os.path.expanduser(path))
    if not path.is_file():
        raise SchemaError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    suffix = _suffix(path)
    kind = _reader(suffix)
    if kind is None:
        raise SchemaError(
            f"{path}: unsupported table format {suffix!r}; use .csv, .tsv, .parquet, .jsonl or .json "
            "(CSV and JSON optionally .gz)"
        )
    enc = encoding or "utf-8"
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "jsonl":
            return _read_jsonl(path, encoding)
        if kind == "json":
            return _read_json(path, encoding)
        return _read_csv(path, encoding, sep)
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, _encoding(_head(path, 4), encoding), exc) from None
    except LookupError:
        raise SchemaError(
            f"{path}: unknown text encoding {enc!r}; e.g. 'utf-8', 'latin-1', 'cp1252'"
        ) from None
    except SchemaError:
        raise
    except (ValueError, OSError, EOFError, csv.Error) as exc:  # empty, malformed, not Parquet, cut gzip
        detail = " ".join(str(exc).split())  # pandas' messages may end in a newline
        raise SchemaError(f"{path}: cannot read it as a {kind} table: {detail}") from exc


# ------------------------------------------------------------------------------------------- any source
def _records_frame(records: Iterable[Any]) -> pd.DataFrame:
    rows = list(records)
    if rows and not all(isinstance(r, Mapping) for r in rows):
        bad = next(r for r in rows if not isinstance(r, Mapping))
        raise TypeError(
            f"read_table reads a list of records (dicts), but item {rows.index(bad)} is a {type(bad).__name__}"
        )
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def _to_pandas(source: Any) -> pd.DataFrame:
    """A dataset object's DataFrame (Hugging Face ``datasets.Dataset``, polars, pyarrow: ``to_pandas()``)."""
    frame = source.to_pandas()
    if not isinstance(frame, pd.DataFrame):  # e.g. a batched iterator
        raise TypeError(
            f"{type(source).__name__}.to_pandas() gave a {type(frame).__name__}, not a pandas DataFrame"
        )
    return frame


def frame_from_source(
    source: Any,
    *,
    root: str | os.PathLike | None,
    encoding: str | None = None,
    sep: str | None = None,
    name: str | None = None,
) -> tuple[pd.DataFrame, Path, str]:
    """``(frame, root, name)`` for any source :func:`read_table` accepts.

    A file path is read with :func:`read_frame` (root: its folder); a DataFrame is copied; a list of
    records (dicts) or a mapping of columns becomes a DataFrame; any other object with a ``to_pandas()``
    method (a Hugging Face ``datasets.Dataset``, a pyarrow or polars table) is converted with it. The root
    of in-memory sources is the working directory. Column names become strings.
    """
    base = Path(os.path.expanduser(root)) if root is not None else None
    if isinstance(source, str | os.PathLike):
        path = Path(os.path.expanduser(source))
        frame = read_frame(path, encoding=encoding, sep=sep)
        base = base if base is not None else path.resolve().parent
        label = name or path.name
    else:
        if isinstance(source, pd.DataFrame):
            frame = source.copy()
        elif isinstance(source, Mapping):
            frame = pd.DataFrame(dict(source))
        elif isinstance(source, list | tuple):
            frame = _records_frame(source)
        elif callable(getattr(source, "to_pandas", None)):
            frame = _to_pandas(source)
        else:
            raise TypeError(
                "read_table reads a file path, a pandas DataFrame, a list of records (dicts), a mapping of "
                f"columns or an object with to_pandas() (a datasets.Dataset), not {type(source).__name__}"
            )
        label = name or _IN_MEMORY_NAMES.get(type(source), type(source).__name__)
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True), base if base is not None else Path.cwd(), label
