"""The server's declared options: request limits, torch threads and model workers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from modalfuse._options import Option, declared_options, options_table, resolve_options

__all__ = ["ServeOptions"]


class ServeOptions:
    """Limits and threads of a model server (``modalfuse serve``, :func:`modalfuse.serve.create_app`).

    Parameters
    ----------
    max_upload_mb : float, default=16
        Largest request body, in MiB (2**20 bytes). Checked against ``Content-Length`` before anything is
        read, and counted while the body streams in, so a request without a length (chunked) is cut off at
        the limit too. Base64 media count as sent.
    max_batch : int, default=64
        Most records in one request.
    decode_seconds : float, default=5.0
        Decode time budget of one request: media cells are decoded one after another, and once the time
        spent decoding passes the budget the request is answered 413 (``decode_budget``) without running
        the model. One cell's decode is not interrupted (a thread cannot be stopped); what one cell can
        cost is bounded by ``max_upload_mb`` and the pixel and sample budgets of decoding.
    threads : int, default=1
        Torch's CPU threads, set once for the process when the app is made.
    workers : int, optional
        Most requests whose model work runs at the same time (each in a worker thread, off the event
        loop); others wait their turn. Default: the number of CPUs this process may use.

    Every option is checked: an unknown name or a value out of range is an
    :class:`~modalfuse.OptionError`.
    """

    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "max_upload_mb": Option(16.0, "float", "largest request body, MiB", low=0, low_open=True),
        "max_batch": Option(64, "int", "most records in one request", low=1),
        "decode_seconds": Option(5.0, "float", "decode time budget of one request, seconds", low=0),
        "threads": Option(1, "int", "torch CPU threads of the process", low=1),
        "workers": Option(
            None, "int", "most requests running the model at once (default: usable CPUs)", low=1, none_ok=True
        ),
    }

    def __init__(self, **options: Any) -> None:
        self.options = resolve_options(type(self), options, "ServeOptions")

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"'ServeOptions' object has no attribute {name!r}")

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"ServeOptions({given})"

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.options["max_upload_mb"] * 1024 * 1024)

    @property
    def n_workers(self) -> int:
        """``workers``, or the CPUs this process may use."""
        if self.options["workers"] is not None:
            return int(self.options["workers"])
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return max(1, len(usable) if usable else (os.cpu_count() or 1))

    def public(self) -> dict[str, Any]:
        """The limits a client needs to know (``GET /model``)."""
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_batch": self.options["max_batch"],
            "decode_seconds": self.options["decode_seconds"],
        }

    @classmethod
    def declared_options(cls) -> dict[str, Option]:
        """Name -> :class:`~modalfuse.Option` of every option."""
        return declared_options(cls)

    @classmethod
    def option_table(cls) -> list[dict[str, Any]]:
        """The options as rows ``{"name", "default", "valid", "help"}``, sorted by name."""
        return options_table(cls)
