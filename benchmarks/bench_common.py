"""What the benchmark scripts share: the environment their numbers depend on, and paired comparisons of
modalfuse's strategies with a reference scored on the same folds.

Imported by the scripts in ``benchmarks/`` (run as scripts, their folder is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

#: The inverse regularisation strengths the scikit-learn references choose from by inner cross-validation.
REFERENCE_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


#: Instruction-set flags that decide which CPU kernels PyTorch (and oneDNN inside it) runs.
_KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _cpu_flags() -> list[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in _KERNEL_FLAGS if flag in flags]
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's own peak resident memory, in bytes.

    Read from ``VmHWM`` in ``/proc/self/status`` where there is one (Linux). ``getrusage``'s ``ru_maxrss`` is
    not this process's own on Linux: it survives ``execve``, so a child started from a large parent reports
    at least the parent's size (a 13 MB child of a 513 MB parent reports 513 MB).
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource
    import sys

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def environment() -> dict[str, Any]:
    """What the numbers of a run depend on besides the code, data and settings.

    Training results are bit-identical only for the same library versions, CPU kernels and thread counts:
    PyTorch picks its CPU kernels by the processor's instruction set (``torch_cpu_capability``, and oneDNN's
    convolutions by ``cpu_flags``; ``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA`` lower them) and
    splits reductions by thread count; a different summation order changes the last bits of a result,
    which training then amplifies. (Measured: the same fit with 1 and 2 torch threads, or with oneDNN
    limited to AVX2 on an AVX-512 machine, gives different networks; the linear baseline, fitted by
    scikit-learn with one BLAS thread, did not change.)
    """
    import numpy
    import scipy
    import sklearn
    import torch
    from threadpoolctl import threadpool_info

    import modalfuse

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "modalfuse": getattr(modalfuse, "__version__", None),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads_at_start": torch.get_num_threads(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit_learn": sklearn.__version__,
        "thread_env": {
            k: os.environ[k]
            for k in (
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "ATEN_CPU_CAPABILITY",
                "ONEDNN_MAX_CPU_ISA",
                "DNNL_MAX_CPU_ISA",
            )
            if k in os.environ
        },
        "native_threadpools": [
            {k: pool.get(k) for k in ("internal_api", "version", "num_threads")} for pool in threadpool_info()
        ],
    }


def paired_vs_reference(
    modalfuse_result: Mapping[str, Any],
    reference: Mapping[str, Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("accuracy",),
    top: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap comparisons (over folds, as :func:`modalfuse.evaluate.paired_difference`) of
    modalfuse's strategies with the best reference strategy, per metric.

    Both must have been scored on the same folds, in the same order. For each metric the reference is
    the reference strategy of best mean; the strategies compared are modalfuse's successful ones, best
    first (the first ``top`` of them, or all).

    Returns
    -------
    dict
        ``{metric: {"reference": name, "strategies": {name: paired_difference(...) of name minus the
        reference}}}``.
    """
    from modalfuse.evaluate import paired_difference

    out: dict[str, Any] = {}
    ok = {n: e for n, e in modalfuse_result["strategies"].items() if "error" not in e}
    for metric in metrics:
        ref_name = max(reference, key=lambda n: reference[n][metric]["mean"])
        ref_folds = reference[ref_name][metric]["folds"]
        ranked = sorted(ok, key=lambda n: -ok[n][metric]["mean"])
        out[metric] = {
            "reference": ref_name,
            "strategies": {
                name: paired_difference(ok[name][metric]["folds"], ref_folds, seed=seed)
                for name in ranked[:top]
            },
        }
    return out


def format_paired(paired: Mapping[str, Any]) -> str:
    """Lines ``strategy vs reference: +0.012 (95% CI ..., better in k of n folds)`` per metric."""
    lines = []
    for metric, block in paired.items():
        lines.append(f"{metric}, paired against {block['reference']} (bootstrap over folds):")
        for name, d in block["strategies"].items():
            if d["mean_diff"] is None:
                continue
            lo, hi = d["ci95"]
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "no confident difference"
            lines.append(
                f"  {name:22s} {d['mean_diff']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}, better in {d['wins']} "
                f"of {d['n']} folds): {verdict}"
            )
    return "\n".join(lines)
