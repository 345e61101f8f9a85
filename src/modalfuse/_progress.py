"""Progress of long work: events for a listener and records for the standard ``logging`` module.

Training reports what it does as *events*: ``fit_start``/``fit_end`` (an estimator's fit), ``network_start``/
``network_end`` (one network: a per-input model ``"audio: network 2/3"``, a fusion head ``"early: head
1/3"``, an end-to-end network), ``epoch`` (one pass over the rows: mean training loss) and
``networks_reused`` (per-input models taken from the cache instead of trained). ``modalfuse.compare``
reports its own ``start``/``step``/``end`` events (one step per fold and strategy) to its ``progress``
callback; the command line passes one object as both.

Each event goes to two places:

- the *listener* set by :func:`listening` (a context variable: a function called as
  ``listener(event, **info)``), which the command line turns into a live bar or plain lines;
- the logger ``modalfuse.progress`` (a child of ``modalfuse``), as a one-line message. Its level follows
  the estimator's ``verbose``: fit and per-network lines are INFO at ``verbose >= 1`` and epoch lines at
  ``verbose >= 2``; below that they are DEBUG. So ``verbose=0`` is silent unless you ask the ``modalfuse``
  logger for DEBUG yourself.

How the messages reach the screen follows the standard library's advice for libraries: modalfuse attaches
no handler of its own while you have configured logging. With ``verbose > 0``, during the call only, the
``modalfuse`` logger's level is set to INFO when it has no level of its own, and when no handler would
receive its records (no handler on it or its ancestors, e.g. no ``logging.basicConfig``), a handler
printing ``[modalfuse] message`` to standard error is attached and removed afterwards.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "Listener",
    "emit",
    "epoch",
    "listening",
    "logger",
    "network",
    "verbosity",
]

logger = logging.getLogger("modalfuse.progress")

#: ``listener(event, **info)``; see the module docstring for the events.
Listener = Callable[..., None]

_LISTENER: contextvars.ContextVar[Listener | None] = contextvars.ContextVar(
    "modalfuse_listener", default=None
)
_VERBOSE: contextvars.ContextVar[int] = contextvars.ContextVar("modalfuse_verbose", default=0)


#: Label of the network being trained (``"audio: network 2/3"``), for its epoch events.
_NETWORK: contextvars.ContextVar[str | None] = contextvars.ContextVar("modalfuse_network", default=None)

#: Verbosity needed for each event's log line to be INFO rather than DEBUG.
_NEEDS = {"epoch": 2}


@contextlib.contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Send the events inside the ``with`` block to ``listener`` (None: to no listener)."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def emit(event: str, message: str, **info: Any) -> None:
    """Send ``event`` with ``info`` to the listener, and log ``message``.

    A listener that raises is not allowed to stop the work: its error is logged as a warning.
    """
    listener = _LISTENER.get()
    if listener is not None:
        try:
            listener(event, message=message, **info)
        except Exception:  # a display error must not lose minutes of training
            logger.warning("progress listener failed on %r", event, exc_info=True)
    level = logging.INFO if _VERBOSE.get() >= _NEEDS.get(event, 1) else logging.DEBUG
    logger.log(level, message)


@contextlib.contextmanager
def network(label: str, **info: Any) -> Iterator[dict[str, Any]]:
    """Report one network's training: ``network_start``, then ``network_end`` with its seconds.

    Yields a dict; what the caller puts in it (e.g. ``held_out_accuracy``) is added to the end event and line.
    Epoch events inside the block are labelled with ``label``.
    """
    emit("network_start", f"{label}: training", network=label, **info)
    start = time.perf_counter()
    token = _NETWORK.set(label)
    extra: dict[str, Any] = {}
    try:
        yield extra
    finally:
        _NETWORK.reset(token)
    seconds = time.perf_counter() - start
    details = "".join(f", {k.replace('_', ' ')} {v:.3f}" for k, v in extra.items() if isinstance(v, float))
    emit(
        "network_end",
        f"{label}: done in {seconds:.1f}s{details}",
        network=label,
        seconds=seconds,
        **info,
        **extra,
    )


def epoch(index: int, total: int, batch_losses: Sequence[Any], **scores: float) -> None:
    """Report that epoch ``index`` (1-based) of ``total`` ended; its loss is the mean of ``batch_losses``
    (numbers or one-element tensors; NaN when empty).

    ``scores`` adds a validation score where one exists (e.g. ``held_out_accuracy=0.91``).
    """
    label = _NETWORK.get() or "network"
    loss = sum(float(v) for v in batch_losses) / len(batch_losses) if len(batch_losses) else float("nan")
    details = "".join(f", {k.replace('_', ' ')} {v:.3f}" for k, v in scores.items())
    emit(
        "epoch",
        f"{label}: epoch {index}/{total}, loss {loss:.4f}{details}",
        network=label,
        epoch=index,
        epochs=total,
        loss=loss,
        **scores,
    )


def _has_handler(log: logging.Logger) -> bool:
    """Whether a record of ``log`` would reach a handler other than a ``NullHandler``."""
    current: logging.Logger | None = log
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent  # type: ignore[assignment]
    return False


@contextlib.contextmanager
def verbosity(verbose: int) -> Iterator[None]:
    """Make the progress lines inside the block INFO per ``verbose`` (see the module docstring)."""
    token = _VERBOSE.set(int(verbose or 0))
    package = logging.getLogger("modalfuse")
    restore_level = verbose > 0 and package.level == logging.NOTSET
    handler: logging.Handler | None = None
    if restore_level:
        package.setLevel(logging.INFO)
    if verbose > 0 and not _has_handler(logger):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[modalfuse] %(message)s"))
        package.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            package.removeHandler(handler)
        if restore_level:
            package.setLevel(logging.NOTSET)
        _VERBOSE.reset(token)
