"""A small process-wide, content-addressed memory cache.

Decoding a file or computing its features is keyed by *what the value is*: a file's absolute path, size
and modification time, or an array's bytes, plus the parameters of the computation. Repeated experiments
in one process (cross-validation folds, strategies compared on the same folds) therefore never decode or
featurise the same value twice. The cache is bounded in bytes and evicts the least recently used entries.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

__all__ = ["MemoryCache", "content_key", "default_cache"]


def content_key(value: Any) -> Hashable:
    """Return a hashable key that changes whenever ``value``'s content does.

    Paths are keyed by absolute path, size and modification time (nanoseconds); arrays by a BLAKE2
    digest of their bytes, dtype and shape; other values by themselves.
    """
    if isinstance(value, np.ndarray):
        digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16).hexdigest()
        return ("array", value.dtype.str, value.shape, digest)
    if isinstance(value, bytes | bytearray | memoryview):  # the bytes of an image or audio file
        return ("bytes", len(value), hashlib.blake2b(value, digest_size=16).hexdigest())
    if isinstance(value, tuple):  # an in-memory (wave, sample_rate)
        return ("tuple", *(content_key(v) for v in value))
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        try:
            st = os.stat(path)
        except OSError:
            return ("path", path, None, None)
        return ("path", path, st.st_size, st.st_mtime_ns)
    return ("value", value)


def _nbytes(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, tuple):
        return sum(_nbytes(o) for o in obj)
    return 64


class MemoryCache:
    """Least-recently-used cache bounded by the total bytes of its numpy values."""

    def __init__(self, max_bytes: int = 2 * 1024**3) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """Return the cached value for ``key``, computing and storing it on a miss.

        Exceptions raised by ``compute`` propagate and nothing is stored.
        """
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
        value = compute()
        size = _nbytes(value)
        with self._lock:
            self.misses += 1
            if key not in self._data and size <= self.max_bytes:
                self._data[key] = value
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, old = self._data.popitem(last=False)
                    self._bytes -= _nbytes(old)
        return value

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)


default_cache = MemoryCache()
