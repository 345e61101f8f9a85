"""Torch's and the BLAS libraries' CPU threads during modalfuse's work, restored afterwards.

The networks modalfuse trains are small (a few convolution layers on 28x28 images or 64-band
spectrograms, batches of 64): splitting one batch's work across threads costs more in synchronisation
than it gains, and when another process shares the cores (a laptop, a CI runner, a second job) the threads
wait for each other. ``benchmarks/threads.py`` measures it (``benchmarks/results/threads.json``): on a
2-core machine one thread was the fastest setting, quiet and beside a busy process. So the default is one
thread, unless the environment variable ``OMP_NUM_THREADS`` says otherwise; an explicit ``n_threads``
always wins.
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator

__all__ = ["DEFAULT_THREADS", "resolve_threads", "torch_threads"]

#: Torch threads used when neither ``n_threads`` nor ``OMP_NUM_THREADS`` is given (see the module docstring).
DEFAULT_THREADS = 1


def resolve_threads(n_threads: int | None) -> int:
    """The number of torch threads to use: ``n_threads``; else ``OMP_NUM_THREADS`` when it is a positive
    whole number; else :data:`DEFAULT_THREADS`.

    Raises
    ------
    OptionError
        When ``n_threads`` is not None and not a whole number of at least 1.
    """
    from modalfuse._errors import OptionError

    if n_threads is not None:
        if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or n_threads < 1:
            raise OptionError(f"n_threads must be None or a whole number of at least 1, got {n_threads!r}")
        return int(n_threads)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return DEFAULT_THREADS


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[int]:
    """Set torch's intra-op CPU threads, and the BLAS libraries' threads (NumPy/SciPy/scikit-learn's linear
    fits, CCA), to :func:`resolve_threads` ``(n_threads)`` inside the block.

    The caller's settings are restored when the block ends, also on an exception. The thread counts are
    process-wide: two threads fitting with different settings at the same time see each other's.
    Yields the number of threads in use.

    BLAS is limited too because its idle threads spin: with two BLAS threads on a 2-core machine shared with
    another job, a CCA fit took 48 s instead of about 1 s (AV-Digits, one fold).
    """
    import torch
    from threadpoolctl import threadpool_limits

    wanted = resolve_threads(n_threads)
    before = torch.get_num_threads()
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        with threadpool_limits(limits=wanted, user_api="blas"):
            yield wanted
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
