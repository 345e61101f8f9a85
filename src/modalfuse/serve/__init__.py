"""Serve a saved model over HTTP (``modalfuse serve model/``; needs ``pip install 'modalfuse[serve]'``).

Endpoints: ``POST /predict`` (one record or a batch, JSON or multipart; any subset of the model's inputs;
``?contributions=true`` adds each input's contribution), ``POST /explain``, ``GET /model``,
``GET /health`` and a web page at ``/``. See ``docs/serving.md``.

FastAPI and uvicorn are imported only when an app is made, so importing this module needs neither.
"""

from __future__ import annotations

import os
from typing import Any

from modalfuse._errors import ModalfuseError, RequestError
from modalfuse.serve._config import ServeOptions

__all__ = ["RequestError", "ServeOptions", "create_app", "require_extra", "run", "serve_app"]

#: Packages of the ``serve`` extra, by import name.
_EXTRA = ("fastapi", "uvicorn", "python_multipart", "starlette", "anyio")


def require_extra() -> None:
    """Raise a one-line :class:`~modalfuse.ModalfuseError` naming the extra when a package of it is missing."""
    import importlib.util

    missing = [name for name in _EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ModalfuseError(
            f"serving needs the 'serve' extra ({', '.join(missing)} not installed): "
            "pip install 'modalfuse[serve]'"
        )


def create_app(model: str | os.PathLike | Any, options: ServeOptions | None = None, **kwargs: Any) -> Any:
    """A FastAPI application serving ``model``.

    Parameters
    ----------
    model : path or MultimodalClassifier
        A folder written by ``MultimodalClassifier.save`` / ``modalfuse fit`` (loaded from JSON and
        safetensors, every field checked), or a fitted classifier.
    options : ServeOptions, optional
        Limits, threads and workers; or give them as keyword arguments (``max_batch=16``).

    Returns
    -------
    fastapi.FastAPI
        Serve it with any ASGI server; :func:`run` uses uvicorn.

    Raises
    ------
    ModalfuseError
        When the ``serve`` extra is not installed.
    ModelFileError
        When the folder is not a loadable model.
    OptionError
        An unknown option or a value out of range.
    """
    require_extra()
    from modalfuse.serve._app import build_app

    return build_app(model, _options(options, kwargs))


def run(
    model: str | os.PathLike | Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    options: ServeOptions | None = None,
    log_level: str = "info",
    **kwargs: Any,
) -> None:
    """Serve ``model`` with uvicorn on ``host:port`` until interrupted (127.0.0.1 by default: only this
    machine can connect; ``host="0.0.0.0"`` serves every interface)."""
    serve_app(create_app(model, options, **kwargs), host=host, port=port, log_level=log_level)


def serve_app(app: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve an app made by :func:`create_app` with uvicorn until interrupted."""
    require_extra()
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def _options(options: ServeOptions | None, kwargs: dict[str, Any]) -> ServeOptions:
    if options is not None and kwargs:
        raise TypeError("give ServeOptions or keyword options, not both")
    return options if options is not None else ServeOptions(**kwargs)
