"""Encoding tables larger than memory: read in batches of rows, embed, write, forget.

:func:`iter_frames` reads a table file a batch of rows at a time (Parquet through its row groups, CSV/TSV
and JSONL in chunks); :func:`encode_table` runs pretrained encoders over each batch (through the on-disk
embedding cache) and appends the embeddings to a Parquet file, one row group per batch. What it holds at
any time is one batch of rows and their decoded media, never the whole table's, so its memory stays flat
as the table grows (``benchmarks/pretrained.py memory``: 1.05x the peak memory for 10x the rows).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse import _progress as progress
from modalfuse._errors import OptionError, SchemaError, did_you_mean

__all__ = ["count_rows", "encode_table", "iter_frames"]


def _csv_chunks(path: Path, batch_rows: int, sep: str | None, encoding: str | None) -> Iterator[pd.DataFrame]:
    from modalfuse.data._frame import _encoding, _head, _sample_text, _suffix, sniff_delimiter

    enc = _encoding(_head(path, 4), encoding)
    sample, more = _sample_text(path, enc)
    default = "\t" if _suffix(path).startswith((".tsv", ".tab")) else ","
    delimiter = sep if sep is not None else sniff_delimiter(sample, more=more, default=default)
    with pd.read_csv(path, sep=delimiter, encoding=enc, chunksize=batch_rows) as reader:
        for chunk in reader:
            first = chunk.columns[0]
            if isinstance(first, str) and first.startswith("\ufeff"):
                chunk = chunk.rename(columns={first: first.lstrip("\ufeff")})
            yield chunk


def _parquet_chunks(path: Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        for batch in f.iter_batches(batch_size=batch_rows):  # row group by row group
            yield batch.to_pandas()


def iter_frames(
    source: str | os.PathLike | pd.DataFrame,
    *,
    batch_rows: int = 1024,
    sep: str | None = None,
    encoding: str | None = None,
) -> Iterator[pd.DataFrame]:
    """The rows of a table, ``batch_rows`` (at most) at a time, without reading the whole file.

    Parameters
    ----------
    source : path or DataFrame
        A Parquet file (read row group by row group), a CSV/TSV file, optionally gzipped (read in chunks;
        the delimiter sniffed as :func:`modalfuse.read_table` does), a JSONL file, or a DataFrame (sliced).
    batch_rows : int, default=1024
        Most rows per DataFrame yielded.

    Yields
    ------
    pandas.DataFrame
        Consecutive batches, with the file's columns; their index counts rows from 0 across batches.
    """
    from modalfuse.data._frame import _reader, _suffix

    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise OptionError(f"batch_rows must be a whole number of at least 1, got {batch_rows!r}")
    if isinstance(source, pd.DataFrame):
        for lo in range(0, len(source), batch_rows):
            yield source.iloc[lo : lo + batch_rows]
        return
    path = Path(source)
    if not path.is_file():
        raise SchemaError(f"{path}: no such table file")
    kind = _reader(_suffix(path))
    offset = 0
    if kind == "parquet":
        chunks: Iterator[pd.DataFrame] = _parquet_chunks(path, batch_rows)
    elif kind == "csv":
        chunks = _csv_chunks(path, batch_rows, sep, encoding)
    elif kind == "jsonl":
        chunks = iter(pd.read_json(path, lines=True, chunksize=batch_rows, encoding=encoding or "utf-8"))
    else:
        raise SchemaError(f"{path}: streaming reads Parquet, CSV/TSV and JSONL files, not {_suffix(path)!r}")
    for chunk in chunks:
        chunk.index = pd.RangeIndex(offset, offset + len(chunk))
        offset += len(chunk)
        yield chunk


def count_rows(source: str | os.PathLike | pd.DataFrame) -> int | None:
    """Rows of a DataFrame or a Parquet file (from its metadata); None for other files (unknown until read)."""
    if isinstance(source, pd.DataFrame):
        return len(source)
    path = Path(source)
    if path.suffix.lower() in (".parquet", ".pq") and path.is_file():
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return None


def _plan(encoders: Mapping[str, str], preprocess: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Column -> unfitted pretrained preprocessor, every name and option checked before reading."""
    from modalfuse.encoders._prep import make_preprocessor
    from modalfuse.encoders._pretrained import PretrainedPreprocessor
    from modalfuse.encoders._registry import get_encoder

    if not encoders:
        raise OptionError("encode_table needs encoders={column: pretrained encoder name}")
    planned = {}
    for column, name in encoders.items():
        spec = get_encoder(name)
        prep = make_preprocessor(
            spec.preprocessor, column, [column], **dict((preprocess or {}).get(column, {}))
        )
        if not isinstance(prep, PretrainedPreprocessor) or spec.trainable:
            raise OptionError(
                f"encode_table: encoder {name!r} of column {column!r} learns from the rows it is fitted on; "
                "streaming encodes with pretrained encoders only (see `modalfuse encoders`)"
            )
        prep.state = {"dim": int(prep.dim()), "encoder": prep.encoder_id()}  # nothing to learn from rows
        planned[column] = prep
    return planned


def _arrow_schema(planned: Mapping[str, Any], id_column: str | None) -> Any:
    import pyarrow as pa

    fields = [pa.field("row", pa.int64())]
    if id_column is not None:
        fields.append(pa.field(id_column, pa.string()))
    fields += [pa.field(col, pa.list_(pa.float32(), int(p.dim()))) for col, p in planned.items()]
    return pa.schema(fields)


def _check_columns(chunk: pd.DataFrame, planned: Mapping[str, Any], id_column: str | None) -> None:
    """Every encoded column (and ``id_column``) is a column of the table."""
    wanted = [(c, "encoders") for c in planned] + (
        [(id_column, "id_column")] if id_column is not None else []
    )
    for column, what in wanted:
        if column not in chunk.columns:
            raise SchemaError(
                f"column {column!r} of {what} is not in the table{did_you_mean(column, chunk.columns)} "
                f"(columns: {', '.join(map(str, chunk.columns))})"
            )


def _batch_table(chunk: pd.DataFrame, planned: Mapping[str, Any], root: Path, id_column: str | None) -> Any:
    """One batch: read as a table (cells checked, paths resolved), embedded, as an Arrow record batch."""
    import pyarrow as pa

    from modalfuse.data._table import read_table

    modalities = {c: "ignore" for c in chunk.columns}
    modalities.update({col: p.modality for col, p in planned.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a column missing in this batch only is still encoded (as nulls)
        table = read_table(chunk.reset_index(drop=True), modalities=modalities, root=root, decode=False)
    columns: dict[str, Any] = {"row": pa.array(chunk.index.to_numpy(np.int64))}
    if id_column is not None:
        columns[id_column] = pa.array(chunk[id_column].astype(str).tolist())
    present: dict[str, int] = {}
    for col, prep in planned.items():
        dim = int(prep.dim())
        if col in table.inputs:
            X, mask = prep.transform(table)
        else:
            X, mask = np.zeros((len(chunk), dim), np.float32), np.zeros(len(chunk), bool)
        values = pa.array(X.reshape(-1), type=pa.float32())
        columns[col] = pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(~mask))
        present[col] = int(mask.sum())
    return pa.record_batch(list(columns.values()), names=list(columns)), present, len(table.problems)


def encode_table(
    source: str | os.PathLike | pd.DataFrame,
    *,
    encoders: Mapping[str, str],
    out: str | os.PathLike,
    preprocess: Mapping[str, Mapping[str, Any]] | None = None,
    root: str | os.PathLike | None = None,
    batch_rows: int = 1024,
    id_column: str | None = None,
    sep: str | None = None,
) -> dict[str, Any]:
    """Embed the columns of a table of any size with pretrained encoders, batch by batch, into Parquet.

    Parameters
    ----------
    source : path or DataFrame
        The table (see :func:`iter_frames`). Media paths are resolved against ``root`` (default: the
        table's folder).
    encoders : dict
        Column -> pretrained encoder name (``{"review": "minilm", "photo": "efficientnet-lite0"}``).
    out : path
        The Parquet file written (atomically: a temporary file moved into place at the end): a ``row``
        column (the row's position in the table), ``id_column`` when given, and per encoded column a
        fixed-size list of float32, null where the cell is missing or cannot be decoded.
    preprocess : dict, optional
        Column -> options of its encoder (``{"photo": {"size": 128}}``).
    batch_rows : int, default=1024
        Rows read, decoded and embedded at a time: the memory used follows this, not the table's size.

    Returns
    -------
    dict
        ``{"rows", "seconds", "rows_per_second", "out", "problems", "inputs": {column: {"encoder", "dim",
        "present"}}}``. ``encode_rows`` progress events (rows done, total when known, rate, time left) are
        sent while it runs.
    """
    import pyarrow.parquet as pq

    from modalfuse._cache import Cache, using_cache

    planned = _plan(encoders, preprocess)
    base = (
        Path(root)
        if root is not None
        else (Path.cwd() if isinstance(source, pd.DataFrame) else Path(source).parent)
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    total = count_rows(source)
    done, problems = 0, 0
    present = dict.fromkeys(planned, 0)
    start = time.perf_counter()
    # no in-memory cache of decoded media: each batch's media are dropped once embedded
    try:
        with (
            using_cache(Cache(max_bytes=0, max_models=0)),
            pq.ParquetWriter(tmp, _arrow_schema(planned, id_column)) as w,
        ):
            for chunk in iter_frames(source, batch_rows=batch_rows, sep=sep):
                if done == 0:
                    _check_columns(chunk, planned, id_column)
                batch, got, n_problems = _batch_table(chunk, planned, base, id_column)
                w.write_batch(batch)
                done += len(chunk)
                problems += n_problems
                present = {c: present[c] + got[c] for c in planned}
                _report_rows(done, total, start)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # a failed encode leaves no partial file (and ``out`` as it was)
    seconds = time.perf_counter() - start
    return {
        "rows": done,
        "seconds": seconds,
        "rows_per_second": done / seconds if seconds > 0 else None,
        "out": str(out),
        "problems": problems,
        "inputs": {
            c: {"encoder": encoders[c], "dim": int(p.dim()), "present": present[c]}
            for c, p in planned.items()
        },
    }


def _report_rows(done: int, total: int | None, start: float) -> None:
    seconds = time.perf_counter() - start
    rate = done / seconds if seconds > 0 else 0.0
    eta = (total - done) / rate if total is not None and rate > 0 else None
    of = f"/{total}" if total is not None else ""
    left = f", {eta:.0f}s left" if eta is not None else ""
    progress.emit(
        "encode_rows",
        f"encoded {done}{of} rows ({rate:.1f} rows/s{left})",
        done=done,
        total=total,
        rate=rate,
        eta=eta,
    )
