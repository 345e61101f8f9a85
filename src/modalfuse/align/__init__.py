"""Temporal alignment of recordings made on different clocks: offset, drift and uncertainty.

``modalfuse.align`` is both this package and, called, :func:`align` (so ``mf.align(reference, other)``
works however the package was imported).
"""

import sys
import types
from typing import Any

from modalfuse.align._xcorr import AlignOptions, align, align_pairs, motion_signals, pool_offsets

__all__ = ["AlignOptions", "align", "align_pairs", "motion_signals", "pool_offsets"]


class _CallableModule(types.ModuleType):
    def __call__(self, reference: Any, other: Any, **options: Any) -> dict[str, Any]:
        return align(reference, other, **options)


sys.modules[__name__].__class__ = _CallableModule
