"""What a comparison's result records about its data and its run: a data summary, a content digest of the
table, and the versions and settings needed to reproduce it."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["data_summary", "environment", "reproducibility", "table_digest"]

#: Problem cells listed in a data summary (the count is always given).
MAX_PROBLEMS_LISTED = 20
#: Media files larger than this are digested by size and their first and last megabyte.
_WHOLE_FILE_BYTES = 64 * 2**20


def _file_digest(path: str) -> bytes:
    """A digest of a file's content (not its name or place), or of its absence."""
    h = hashlib.blake2b(digest_size=16)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size <= _WHOLE_FILE_BYTES:
                h.update(f.read())
            else:
                h.update(f.read(2**20))
                f.seek(-(2**20), os.SEEK_END)
                h.update(f.read())
                h.update(str(size).encode())
    except OSError:
        h.update(b"<unreadable>")
    return h.digest()


def _cell_bytes(value: Any, media: bool) -> bytes:
    """The bytes a cell contributes to the digest: a media file's content, an array's bytes, else text."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        return f"{arr.dtype}{arr.shape}".encode() + arr.tobytes()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if media and isinstance(value, str | os.PathLike) and os.path.isfile(value):
        return _file_digest(os.fspath(value))
    return repr(value).encode()


def table_digest(table: Any) -> str:
    """BLAKE2b digest (hex, 32 characters) of a table's content: every cell (image and audio files by their
    bytes, not their paths, so the same data elsewhere on disk has the same digest), the presence masks,
    the labels and the groups, in row order."""
    h = hashlib.blake2b(digest_size=16)
    frame = table.frame
    media = {c for c, m in table.schema.columns.items() if m in ("image", "audio")}
    for column in frame.columns:
        h.update(f"|column {column} {table.schema.columns.get(column)}|".encode())
        is_media = column in media
        for value in frame[column].tolist():
            h.update(hashlib.blake2b(_cell_bytes(value, is_media), digest_size=16).digest())
        mask = table.present.get(column)
        if mask is not None:
            h.update(np.asarray(mask, bool).tobytes())
    for name, values in (("y", table.y), ("groups", table.groups)):
        if values is not None:
            h.update(f"|{name}|".encode())
            h.update("\x1f".join(map(str, np.asarray(values).tolist())).encode())
    return h.hexdigest()


def data_summary(table: Any) -> dict[str, Any]:
    """JSON-safe description of a table for a report: rows, label, groups, classes and their counts, each
    input's modality, columns and missing share, the problem cells (count, count per column, the first
    :data:`MAX_PROBLEMS_LISTED`), the notes and :func:`table_digest`."""
    classes: dict[str, int] = {}
    if table.y is not None:
        values, counts = np.unique(np.asarray(table.y).astype(str), return_counts=True)
        classes = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    by_column: dict[str, int] = {}
    for p in table.problems:
        by_column[p.column] = by_column.get(p.column, 0) + 1
    return {
        "name": table.name,
        "n_rows": len(table),
        "label": table.label,
        "groups": table.group_column,
        "n_groups": None if table.groups is None else len(set(np.asarray(table.groups).astype(str))),
        "classes": classes,
        "inputs": table.missing_summary(),
        "problems": {
            "count": len(table.problems),
            "by_column": by_column,
            "examples": [
                {"row": int(p.row), "column": p.column, "reason": p.reason}
                for p in table.problems[:MAX_PROBLEMS_LISTED]
            ],
        },
        "notes": list(table.notes),
        "digest": table_digest(table),
    }


def environment() -> dict[str, Any]:
    """The versions a result depends on: Python, the platform and the libraries that compute it."""
    import importlib.metadata as metadata

    import modalfuse

    versions: dict[str, Any] = {"modalfuse": modalfuse.__version__, "python": platform.python_version()}
    for package in ("numpy", "scipy", "scikit-learn", "pandas", "torch", "librosa", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "platform": platform.platform(), "executable": sys.executable}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def reproducibility(
    table: Any, *, fusion: Any, cv: Any, seed: int, params: Mapping[str, Any], digest: str | None = None
) -> dict[str, Any]:
    """What reproduces a comparison: the command (None here; the command line fills it in), the call's
    settings, the seed, the data digest and :func:`environment`."""
    return {
        "command": None,
        "call": {
            "fusion": _jsonable(fusion),
            "cv": _jsonable(cv),
            "groups": table.group_column,
            "seed": int(seed),
            "params": _jsonable(dict(params)),
        },
        "seed": int(seed),
        "data_digest": digest if digest is not None else table_digest(table),
        **environment(),
    }
