"""The cache of decoded media, features and fitted per-input models, and which one is in use.

Decoding a file or computing its features is keyed by *what the value is*: a file's absolute path, size
and modification time, or an array's bytes, plus the parameters of the computation (:func:`content_key`).
Fitted per-input models are keyed by a digest of their training rows and settings. So repeated work in one
run (cross-validation folds, strategies compared on the same folds) never decodes, featurises or trains the
same thing twice.

A :class:`Cache` owns both kinds of entries: *data* entries (arrays), bounded by their total bytes, and
*model* entries (fitted models), bounded by their number. Each kind evicts its least recently used entries.
The cache in use is a context variable: :func:`using_cache` sets it for a block (``modalfuse.compare`` and
``modalfuse.cross_validate`` give each run its own), and outside any such block the process default,
:data:`default_cache`, is used. Its size is ``MODALFUSE_CACHE_BYTES`` bytes when that environment variable
is set, else :data:`DEFAULT_MAX_BYTES` (512 MiB: a whole leave-one-speaker-out comparison on AV-Digits,
3,000 rows of audio and images, keeps 200 MiB of decoded and preprocessed data; ``benchmarks/cache_size.py``).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_MODELS",
    "Cache",
    "active_cache",
    "content_key",
    "default_cache",
    "using_cache",
]

#: Bytes of data entries a cache keeps by default (``MODALFUSE_CACHE_BYTES`` overrides it).
DEFAULT_MAX_BYTES = 512 * 1024**2
#: Fitted models a cache keeps by default (``MODALFUSE_CACHE_MODELS`` overrides it).
DEFAULT_MAX_MODELS = 16

_KINDS = ("data", "model")


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
    """Bytes held by a data entry: its arrays' bytes (nested in tuples and lists), 64 for anything else."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, tuple | list):
        return sum(_nbytes(o) for o in obj)
    return 64


def _env_int(name: str, default: int) -> int:
    """A non-negative integer from environment variable ``name`` (``default`` when unset)."""
    from modalfuse._errors import OptionError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw)) if raw.lower() not in ("inf", "nan") else -1
    except ValueError:
        value = -1
    if value < 0:
        raise OptionError(f"environment variable {name}={raw!r}: expected a whole number of at least 0")
    return value


class Cache:
    """A thread-safe, bounded, least-recently-used cache of data (arrays) and fitted models.

    Parameters
    ----------
    max_bytes : int, optional
        Most bytes the *data* entries may hold (arrays, counted by ``nbytes``; other values count 64
        bytes). Default: the environment variable ``MODALFUSE_CACHE_BYTES`` if set, else
        :data:`DEFAULT_MAX_BYTES` (512 MiB). 0 keeps no data.
    max_models : int, optional
        Most *model* entries (fitted per-input models shared by the strategies compared on the same rows).
        Default: ``MODALFUSE_CACHE_MODELS`` if set, else :data:`DEFAULT_MAX_MODELS` (16). 0 keeps none.

    Attributes
    ----------
    hits, misses : int
        Look-ups answered from the cache, and look-ups that computed their value.

    Notes
    -----
    Each kind evicts its least recently used entries when over its bound; a value larger than
    ``max_bytes`` is returned but not kept. :meth:`get_or_compute` computes a missing key once even when
    several threads ask for it at the same time: the others wait and get the same object.

    Examples
    --------
    >>> import modalfuse as mf
    >>> cache = mf.Cache(max_bytes=256 * 1024**2)
    >>> with mf.using_cache(cache):  # doctest: +SKIP
    ...     clf.fit(table)
    >>> len(cache), cache.nbytes, cache.hits, cache.misses  # doctest: +SKIP
    >>> cache.clear()
    """

    def __init__(self, max_bytes: int | None = None, *, max_models: int | None = None) -> None:
        from modalfuse._errors import OptionError

        self.max_bytes = (
            _env_int("MODALFUSE_CACHE_BYTES", DEFAULT_MAX_BYTES) if max_bytes is None else max_bytes
        )
        self.max_models = (
            _env_int("MODALFUSE_CACHE_MODELS", DEFAULT_MAX_MODELS) if max_models is None else max_models
        )
        for name in ("max_bytes", "max_models"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise OptionError(f"Cache({name}={value!r}): expected a whole number of at least 0")
        self._entries: dict[str, OrderedDict[Hashable, tuple[Any, int]]] = {k: OrderedDict() for k in _KINDS}
        self._bytes = 0
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, Hashable], list[Any]] = {}  # key -> [lock, waiting threads]
        self.hits = 0
        self.misses = 0

    # -------------------------------------------------------------------------------------------- sizes
    @property
    def nbytes(self) -> int:
        """Bytes held by the data entries now."""
        return self._bytes

    @property
    def n_models(self) -> int:
        """Model entries held now."""
        return len(self._entries["model"])

    def __len__(self) -> int:
        """Entries of both kinds."""
        return sum(len(e) for e in self._entries.values())

    def __contains__(self, key: Hashable) -> bool:
        return any(key in e for e in self._entries.values())

    def __repr__(self) -> str:
        return (
            f"Cache(max_bytes={self.max_bytes}, max_models={self.max_models}): {len(self)} entries, "
            f"{self.nbytes} bytes of data, {self.n_models} models, {self.hits} hits, {self.misses} misses"
        )

    # ------------------------------------------------------------------------------------------- access
    def get_or_compute(self, key: Hashable, compute: Callable[[], Any], *, kind: str = "data") -> Any:
        """Return the cached value for ``key``, computing and storing it on a miss.

        Parameters
        ----------
        key : hashable
            What the value is (see :func:`content_key`).
        compute : callable
            Called without arguments on a miss. Exceptions it raises propagate and nothing is stored.
        kind : {"data", "model"}, default="data"
            Data entries are bounded by ``max_bytes``, model entries by ``max_models``.

        Returns
        -------
        object
            The value; on a hit, the very object stored.
        """
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        found, value = self._lookup(kind, key)
        if found:
            return value
        slot = self._claim(kind, key)
        try:
            with slot[0]:  # one thread computes a key; the others wait here, then find it stored
                found, value = self._lookup(kind, key)
                if found:
                    return value
                value = compute()
                self._store(kind, key, value)
                return value
        finally:
            self._release(kind, key, slot)

    def _lookup(self, kind: str, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            entries = self._entries[kind]
            if key not in entries:
                return False, None
            entries.move_to_end(key)
            self.hits += 1
            return True, entries[key][0]

    def _claim(self, kind: str, key: Hashable) -> list[Any]:
        with self._lock:
            slot = self._computing.setdefault((kind, key), [threading.Lock(), 0])
            slot[1] += 1
            return slot

    def _release(self, kind: str, key: Hashable, slot: list[Any]) -> None:
        with self._lock:
            slot[1] -= 1
            if slot[1] == 0:
                self._computing.pop((kind, key), None)

    def _store(self, kind: str, key: Hashable, value: Any) -> None:
        size = _nbytes(value) if kind == "data" else 0
        bound = self.max_bytes if kind == "data" else self.max_models
        with self._lock:
            self.misses += 1
            entries = self._entries[kind]
            if key in entries or (kind == "data" and size > bound) or bound == 0:
                return
            entries[key] = (value, size)
            self._bytes += size
            while (self._bytes > self.max_bytes) if kind == "data" else (len(entries) > self.max_models):
                _, (_, old) = entries.popitem(last=False)
                self._bytes -= old

    def clear(self) -> None:
        """Drop every entry of both kinds and reset ``hits`` and ``misses``."""
        with self._lock:
            for entries in self._entries.values():
                entries.clear()
            self._bytes = 0
            self.hits = self.misses = 0


#: The cache used outside any :func:`using_cache` block (decoding in ``read_table``, a plain ``fit``).
default_cache = Cache()

_ACTIVE: contextvars.ContextVar[Cache | None] = contextvars.ContextVar("modalfuse_cache", default=None)


def active_cache() -> Cache:
    """The cache in use here: the innermost :func:`using_cache`'s, else :data:`default_cache`."""
    cache = _ACTIVE.get()
    return default_cache if cache is None else cache


@contextlib.contextmanager
def using_cache(cache: Cache) -> Iterator[Cache]:
    """Use ``cache`` for decoding, features and fitted models inside the ``with`` block.

    The setting is a context variable: it holds in this thread (and asyncio task) only and is restored
    when the block ends, also on an exception.

    Examples
    --------
    >>> import modalfuse as mf
    >>> with mf.using_cache(mf.Cache()) as cache:  # doctest: +SKIP
    ...     mf.MultimodalClassifier().fit(table)
    """
    if not isinstance(cache, Cache):
        raise TypeError(f"using_cache needs a modalfuse.Cache, got {type(cache).__name__}")
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)
