"""The on-disk cache of embeddings computed by pretrained encoders.

A frozen pretrained encoder maps one cell (a text, an image file, an audio clip) to the same vector every
time, whatever the rest of the table, the fold or the strategy. So its embeddings are keyed by *what the
cell is* (the text itself or a digest of the file's bytes), the encoder and its version, and the
preprocessing settings (:func:`embedding_key`), and computed once: every fold, every strategy and every
later run reads them back. Nothing learned from labels is stored, so reusing an entry in another fold leaks
nothing.

The store is one SQLite database (``embeddings.sqlite3``) in :func:`cache_dir`: ``$MODALFUSE_CACHE/
embeddings``, else the platform's user cache folder (``platformdirs.user_cache_dir("modalfuse")``, e.g.
``~/.cache/modalfuse`` on Linux). Each entry holds the raw bytes of one float32 vector, its dtype and shape
as text, and a BLAKE2 checksum of the bytes; nothing is pickled, and reading an entry executes nothing.

- *Atomic and safe with several processes*: every write is one SQLite transaction (write-ahead log, a
  busy timeout of 60 s), so a reader sees an entry whole or not at all, and two processes filling the
  same cache at once both succeed (an entry written twice holds the same vector).
- *Damage is detected, never fatal*: an entry whose bytes do not match its checksum, dtype or shape is
  deleted and recomputed (counted in :attr:`EmbeddingCache.damaged`, one warning per call); a database
  file that is not one is moved aside (``embeddings.sqlite3.damaged-<time>``) and a new one started.
- *Bounded*: past ``max_bytes`` (``MODALFUSE_EMBEDDING_CACHE_BYTES``, default 2 GiB) the least recently
  used entries are evicted.

``modalfuse cache info`` and ``modalfuse cache clear`` show and empty it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_EMBEDDING_CACHE_BYTES",
    "EmbeddingCache",
    "cache_dir",
    "embedding_cache",
    "embedding_key",
    "value_digest",
]

#: Bytes the embedding cache keeps by default (``MODALFUSE_EMBEDDING_CACHE_BYTES`` overrides it).
DEFAULT_EMBEDDING_CACHE_BYTES = 2 * 1024**3
DB_NAME = "embeddings.sqlite3"
#: Keys per SQL statement (SQLite allows 32,766 parameters; smaller batches keep statements short).
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    encoder TEXT NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL,
    checksum TEXT NOT NULL,
    nbytes INTEGER NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_used ON entries (used);
-- the size check after every write sums nbytes from this index instead of reading every vector's page
CREATE INDEX IF NOT EXISTS entries_nbytes ON entries (nbytes);
"""


def cache_dir() -> Path:
    """The folder of modalfuse's on-disk caches: ``$MODALFUSE_CACHE`` when set, else the platform's user
    cache folder for ``modalfuse`` (``~/.cache/modalfuse`` on Linux)."""
    env = os.environ.get("MODALFUSE_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("modalfuse", appauthor=False))


def _hash_file(path: str, h: Any) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def value_digest(value: Any, *, text: bool = False) -> str:
    """A digest of what a cell *is*: a text's characters, a file's bytes (not its path or time), an array's
    dtype, shape and bytes, an in-memory ``(wave, rate)`` pair, a Hugging Face ``{"bytes", "path"}`` dict.

    Two cells with the same digest embed to the same vector, wherever their files lie. With ``text=True``
    a string is always a text (never read as a file path).
    """
    h = hashlib.blake2b(digest_size=20)
    if text:
        h.update(b"text\0" + str(value).encode("utf-8", "surrogatepass"))
    else:
        _feed(value, h)
    return h.hexdigest()


def _feed(value: Any, h: Any) -> None:
    if isinstance(value, str | os.PathLike):
        h.update(b"file\0")
        _hash_file(os.fspath(value), h)
    elif isinstance(value, bytes | bytearray | memoryview):
        h.update(b"bytes\0" + bytes(value))
    elif isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        h.update(f"array\0{arr.dtype.str}{arr.shape}".encode() + arr.tobytes())
    elif isinstance(value, tuple | list):
        h.update(f"seq\0{len(value)}".encode())
        for item in value:
            _feed(item, h)
    elif isinstance(value, Mapping):
        chosen = value.get("bytes") or value.get("path") or value.get("array")
        if chosen is None:
            raise TypeError(f"cannot digest a mapping with keys {sorted(value)}")
        _feed((chosen, value.get("sampling_rate")), h)
    elif hasattr(value, "tobytes") and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        h.update(f"image\0{value.mode}{value.size}".encode() + value.tobytes())
    else:
        h.update(b"value\0" + repr(value).encode())


def embedding_key(encoder: str, settings: Mapping[str, Any], digest: str) -> str:
    """The cache key of one cell's embedding: encoder (name and version), preprocessing settings, and
    the cell's :func:`value_digest`."""
    text = json.dumps([encoder, dict(settings), digest], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _env_bytes() -> int:
    from modalfuse._cache import _env_int

    return _env_int("MODALFUSE_EMBEDDING_CACHE_BYTES", DEFAULT_EMBEDDING_CACHE_BYTES)


class EmbeddingCache:
    """Embeddings on disk, keyed by content; see the module docstring.

    Parameters
    ----------
    path : str or path-like, optional
        The folder holding ``embeddings.sqlite3`` (created when missing). Default: ``cache_dir() /
        "embeddings"``.
    max_bytes : int, optional
        Most bytes of vectors kept; least recently used entries are evicted past it. Default:
        ``MODALFUSE_EMBEDDING_CACHE_BYTES`` if set, else 2 GiB. 0 keeps nothing.

    Attributes
    ----------
    hits, misses, damaged : int
        Entries read back, entries not found (computed by the caller), and entries found damaged
        (deleted, so computed again), since this object was made.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, max_bytes: int | None = None) -> None:
        from modalfuse._errors import OptionError

        self.path = Path(path).expanduser() if path is not None else cache_dir() / "embeddings"
        self.max_bytes = _env_bytes() if max_bytes is None else max_bytes
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 0:
            raise OptionError(f"EmbeddingCache(max_bytes={max_bytes!r}): expected a whole number >= 0")
        self.hits = self.misses = self.damaged = 0
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r}, max_bytes={self.max_bytes})"

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    # ------------------------------------------------------------------------------------- connection
    def _open(self) -> sqlite3.Connection:
        self.path.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            con.close()
            raise
        return con

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (one per process and thread; reopened after a fork)."""
        key = (os.getpid(), str(self.db_path))
        held = getattr(self._local, "held", None)
        if held is None or held[0] != key:
            try:
                con = self._open()
            except sqlite3.DatabaseError as exc:
                con = self._replace_damaged_file(exc)
            self._local.held = (key, con)
        return self._local.held[1]

    def _replace_damaged_file(self, exc: Exception) -> sqlite3.Connection:
        """Move a database file that cannot be read aside (with its journal files) and start a new one."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.db_path.with_name(f"{DB_NAME}.damaged-{stamp}-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.db_path, aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(str(self.db_path) + suffix)
        warnings.warn(
            f"embedding cache {self.db_path} could not be read ({exc}); moved aside to {aside.name}, "
            "starting an empty one",
            stacklevel=4,
        )
        return self._open()

    def close(self) -> None:
        """Close this thread's connection (another call opens a new one)."""
        held = getattr(self._local, "held", None)
        if held is not None:
            held[1].close()
            self._local.held = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _guarded(self, action: Callable[[], Any]) -> Any:
        """Run ``action``; when the database turns out damaged mid-way, replace it and run it again."""
        try:
            return action()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            self.close()
            held = (os.getpid(), str(self.db_path)), self._replace_damaged_file(exc)
            self._local.held = held
            return action()

    # ------------------------------------------------------------------------------------------- read
    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``keys`` that are present and intact (a damaged one is deleted and left
        out, so the caller computes it again)."""
        return self._guarded(lambda: self._get_many(list(dict.fromkeys(keys))))

    def _get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        con = self._connection()
        found: dict[str, np.ndarray] = {}
        damaged: list[str] = []
        for start in range(0, len(keys), _CHUNK):
            part = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(part))
            rows = con.execute(
                f"SELECT key, dtype, shape, data, checksum FROM entries WHERE key IN ({marks})", part
            ).fetchall()
            for key, dtype, shape, data, checksum in rows:
                vector = _decode(dtype, shape, data, checksum)
                if vector is None:
                    damaged.append(key)
                else:
                    found[key] = vector
        if damaged:
            self._delete(damaged)
            self.damaged += len(damaged)
            warnings.warn(
                f"embedding cache {self.db_path}: {len(damaged)} damaged entr{'y' if len(damaged) == 1 else 'ies'} "
                "(checksum, dtype or shape wrong) deleted; recomputing",
                stacklevel=3,
            )
        if found:
            self._touch(list(found))
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def _touch(self, keys: list[str]) -> None:
        now = time.time()
        with contextlib.suppress(sqlite3.OperationalError):  # a busy database: recency is best effort
            with self._transaction() as con:
                for start in range(0, len(keys), _CHUNK):
                    part = keys[start : start + _CHUNK]
                    con.execute(
                        f"UPDATE entries SET used = ? WHERE key IN ({','.join('?' * len(part))})",
                        [now, *part],
                    )

    def _delete(self, keys: list[str]) -> None:
        with self._transaction() as con:
            for start in range(0, len(keys), _CHUNK):
                part = keys[start : start + _CHUNK]
                con.execute(f"DELETE FROM entries WHERE key IN ({','.join('?' * len(part))})", part)

    # ------------------------------------------------------------------------------------------ write
    def put_many(self, items: Mapping[str, np.ndarray], *, encoder: str = "") -> None:
        """Store ``key -> vector`` (float32 is kept as given; other dtypes too) in one transaction, then
        evict the least recently used entries while the cache holds more than ``max_bytes``."""
        if self.max_bytes == 0 or not items:
            return
        now = time.time()
        rows = []
        for key, vector in items.items():
            arr = np.ascontiguousarray(vector)
            data = arr.tobytes()
            rows.append(
                (
                    key,
                    encoder,
                    arr.dtype.str,
                    json.dumps(list(arr.shape)),
                    data,
                    _checksum(data),
                    len(data),
                    now,
                )
            )

        def write() -> None:
            with self._transaction() as con:
                con.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._evict()

        self._guarded(write)

    def _evict(self) -> None:
        con = self._connection()
        total = con.execute("SELECT COALESCE(SUM(nbytes), 0) FROM entries").fetchone()[0]
        if total <= self.max_bytes:
            return
        with self._transaction() as con:
            excess = total - self.max_bytes
            doomed, freed = [], 0
            for key, nbytes in con.execute("SELECT key, nbytes FROM entries ORDER BY used, key"):
                doomed.append(key)
                freed += nbytes
                if freed >= excess:
                    break
            for start in range(0, len(doomed), _CHUNK):
                part = doomed[start : start + _CHUNK]
                con.execute(f"DELETE FROM entries WHERE key IN ({','.join('?' * len(part))})", part)

    def get_or_compute(
        self,
        keys: Sequence[str],
        compute: Callable[[list[int]], Mapping[int, np.ndarray]],
        *,
        encoder: str = "",
    ) -> dict[int, np.ndarray]:
        """Vectors for ``keys`` by position: read from the cache, the others from
        ``compute(positions of the missing keys) -> {position: vector}`` (a position it leaves out, e.g. a
        file it could not decode, is left out of the result too) and stored."""
        found = self.get_many(keys)
        out = {i: found[k] for i, k in enumerate(keys) if k in found}
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            computed = compute(missing)
            out.update(computed)
            self.put_many({keys[i]: v for i, v in computed.items()}, encoder=encoder)
        return out

    # ------------------------------------------------------------------------------------------- admin
    def info(self) -> dict[str, Any]:
        """``{"path", "entries", "bytes", "file_bytes", "max_bytes", "encoders": {encoder: {"entries",
        "bytes"}}}``."""

        def read() -> dict[str, Any]:
            con = self._connection()
            per = con.execute(
                "SELECT encoder, COUNT(*), COALESCE(SUM(nbytes), 0) FROM entries GROUP BY encoder ORDER BY encoder"
            ).fetchall()
            return {
                "path": str(self.db_path),
                "entries": int(sum(n for _, n, _ in per)),
                "bytes": int(sum(b for _, _, b in per)),
                "file_bytes": sum(
                    p.stat().st_size for p in self.path.glob(DB_NAME + "*") if "damaged" not in p.name
                ),
                "max_bytes": self.max_bytes,
                "encoders": {enc or "?": {"entries": int(n), "bytes": int(b)} for enc, n, b in per},
            }

        return self._guarded(read)

    def clear(self) -> int:
        """Delete every entry (and any database moved aside as damaged); returns the entries deleted."""

        def wipe() -> int:
            with self._transaction() as con:
                n = con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
                con.execute("DELETE FROM entries")
            self._connection().execute("VACUUM")
            return int(n)

        n = self._guarded(wipe)
        for aside in self.path.glob(DB_NAME + ".damaged-*"):
            with contextlib.suppress(OSError):
                aside.unlink()
        return n


def _decode(dtype: str, shape: str, data: bytes, checksum: str) -> np.ndarray | None:
    """The stored vector, or None when its bytes, dtype or shape are damaged."""
    try:
        if _checksum(data) != checksum:
            return None
        dims = json.loads(shape)
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(dims).copy()
    except (TypeError, ValueError):
        return None


_DEFAULT: dict[tuple[str, int], EmbeddingCache] = {}


def embedding_cache() -> EmbeddingCache:
    """The process's embedding cache at :func:`cache_dir` (a new object when ``MODALFUSE_CACHE`` or the
    size limit changed)."""
    path = cache_dir() / "embeddings"
    key = (str(path), _env_bytes())
    if key not in _DEFAULT:
        _DEFAULT[key] = EmbeddingCache(path, max_bytes=key[1])
    return _DEFAULT[key]
