"""Encoding tables too large for one process with Ray Data: a saved model's encoders over batches of rows.

:func:`encode_with_ray` streams a Parquet or CSV table through ``ray.data``: each worker loads the saved
model once (JSON + safetensors, no code executed from the files), turns each batch of rows into every
input's features as the model sees them (:meth:`MultimodalClassifier.transform_inputs`: the classical
encoders' fixed features, a pretrained encoder's embeddings, or a trainable input's preprocessed arrays),
and the batches are written to Parquet files as they come. A pretrained encoder's embeddings also go to
the embedding cache (the driver's by default), so a later fit or evaluation of the same table reads them
instead of encoding again. The driver never holds the table: its memory stays flat as the table grows
(``benchmarks/raydata.py`` measures 10,000 against 100,000 rows), and the work spreads over every worker
of the cluster.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._backend import Backend, _connect, import_ray
from modalfuse._embedcache import cache_dir
from modalfuse._errors import OptionError, SchemaError

__all__ = ["encode_with_ray"]


_MODELS: dict[str, Any] = {}


def _model(path: str) -> Any:
    """The model saved at ``path``, loaded once per worker process (one torch thread)."""
    if path not in _MODELS:
        import torch

        from modalfuse.estimator import MultimodalClassifier

        torch.set_num_threads(1)
        _MODELS[path] = MultimodalClassifier.load(path)
    return _MODELS[path]


def _encode_batch(
    batch: pd.DataFrame, model: str, inputs: list[str] | None, id_column: str | None, cache: str | None
) -> pd.DataFrame:
    """One batch of rows -> per input a column of flattened float32 features and ``<input>_present``;
    pretrained encoders read and fill the embedding cache in folder ``cache``."""
    if cache is not None:
        os.environ["MODALFUSE_CACHE"] = cache
    features = _model(model).transform_inputs(batch.reset_index(drop=True))
    out: dict[str, Any] = {}
    if id_column is not None:
        out[id_column] = batch[id_column].to_numpy()
    for name in inputs or list(features):
        X, mask = features[name]
        out[name] = list(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
        out[f"{name}_present"] = np.asarray(mask, dtype=bool)
    return pd.DataFrame(out)


def _bytes_per_row(source: Path, parquet: bool) -> float | None:
    """About how many bytes a row of the table file(s) ``source`` takes: from the Parquet footers
    (uncompressed), or a CSV's size over its lines (a streaming pass over the bytes); None when unknown."""
    if parquet:
        import pyarrow.dataset as pads

        size = rows = 0
        for fragment in pads.dataset(str(source), format="parquet").get_fragments():
            meta = fragment.metadata
            rows += meta.num_rows
            size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        return size / rows if rows else None
    if source.suffix.lower() == ".gz":
        return None
    lines = 0
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return source.stat().st_size / lines if lines else None


def _read(ray: Any, source: Path, batch_rows: int) -> Any:
    """A streaming Ray dataset of the table file ``source`` (Parquet or CSV) in blocks of about
    ``batch_rows`` rows. Ray Data sizes blocks by bytes (128 MiB by default), and a table of paths and
    short texts is small in bytes however many rows it has: left to itself it read a 10,000-row table
    (ten Parquet files) into one block, which one worker encoded while the other idled."""
    suffix = "".join(source.suffixes[-2:]).lower()
    parquet = source.is_dir() or suffix.endswith((".parquet", ".pq"))
    if not parquet and not suffix.endswith((".csv", ".csv.gz", ".tsv")):
        raise SchemaError(
            f"{source}: Ray Data encoding reads Parquet and CSV tables, not {suffix or 'this file'!r}"
        )
    per_row = _bytes_per_row(source, parquet)
    if per_row:
        context = ray.data.DataContext.get_current()
        context.target_max_block_size = max(64 * 1024, int(per_row * batch_rows))
    return ray.data.read_parquet(str(source)) if parquet else ray.data.read_csv(str(source))


def encode_with_ray(
    model: str | os.PathLike,
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    inputs: list[str] | None = None,
    id_column: str | None = None,
    batch_rows: int = 1024,
    n_jobs: int | None = None,
    address: str | None = None,
    cache: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Encode every row of a table file with a saved model's encoders, streamed through Ray Data.

    Parameters
    ----------
    model : path
        A model folder written by :meth:`MultimodalClassifier.save` (``modalfuse fit --out``); every worker
        reads it, so on a cluster it must be at the same path on every node (as the media files).
    source : path
        A Parquet file or folder of Parquet files, or a CSV file, with the columns the model was fitted on;
        media paths in it absolute (or valid from every worker's working folder).
    out : path
        Folder to write the features to, as Parquet files (one or more per block of rows): per input a
        column of float32 vectors (the input's features, flattened) and ``<input>_present``; with
        ``id_column``, that column first.
    inputs : list of str, optional
        The inputs to write (default: every fitted input).
    batch_rows : int, default=1024
        Rows per batch a worker encodes at a time (what a worker holds at once).
    n_jobs : int, optional
        CPUs of the Ray started here (default: every CPU); a cluster joined by address uses all of its CPUs.
        Each encoding task takes one CPU and one torch thread and loads the model once per worker process.
    address : str, optional
        Ray cluster to join (default: ``RAY_ADDRESS``; without it Ray starts here and stops afterwards).
    cache : path, optional
        The folder of the embedding cache the workers' pretrained encoders read and fill (default: this
        process's, ``MODALFUSE_CACHE`` or the platform cache folder); on a cluster, a folder every node
        reaches. Each embedding is written there as it is computed, so an interrupted run keeps them.

    Returns
    -------
    dict
        ``rows`` (encoded), ``seconds`` (wall time, Ray's start excluded), ``rows_per_second``, ``out``.

    Raises
    ------
    OptionError
        Ray is not installed (the message names the ``modalfuse[ray]`` extra), or a bad ``batch_rows``.
    SchemaError
        ``source`` is not a Parquet or CSV table.
    """
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise OptionError(f"batch_rows must be a whole number of at least 1, got {batch_rows!r}")
    model_path, source_path = Path(model).resolve(), Path(source).resolve()
    if not (model_path / "model.json").is_file():
        raise OptionError(
            f"{model_path}: not a model folder (no model.json): write one with `modalfuse fit --out`"
        )
    cache_folder = str(Path(cache).resolve() if cache is not None else cache_dir())
    ray = import_ray()
    started = _connect(Backend("ray", n_jobs=n_jobs, address=address), None)
    context = ray.data.DataContext.get_current()
    block_size = context.target_max_block_size
    try:
        start = time.perf_counter()
        # tasks, not actors: Ray Data fuses each read with its encoding, so a worker streams its blocks
        # from the file to Parquet and the driver holds none of them
        ds = _read(ray, source_path, batch_rows).map_batches(
            _encode_batch,
            fn_kwargs={
                "model": str(model_path),
                "inputs": inputs,
                "id_column": id_column,
                "cache": cache_folder,
            },
            batch_size=batch_rows,
            batch_format="pandas",
            num_cpus=1,
        )
        ds.write_parquet(str(out))
        seconds = time.perf_counter() - start
        rows = sum(int(f.metadata.num_rows) for f in map(_parquet_file, sorted(Path(out).glob("*.parquet"))))
    finally:
        context.target_max_block_size = block_size
        if started:
            ray.shutdown()
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_second": rows / seconds if seconds else None,
        "out": str(out),
    }


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path)
