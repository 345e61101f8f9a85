"""modalfuse: learn from multimodal tables.

Read a table whose columns are images, text, audio and tabular values; encode, fuse and evaluate them
honestly::

    import modalfuse as mf
    table = mf.read_table("reviews.csv", label="recommended")
    clf = mf.MultimodalClassifier(fusion="late")
    scores = mf.cross_validate(clf, table, cv=5)

Heavy dependencies (torch, librosa) load only when a model is built or audio is decoded.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Backend": "modalfuse._backend",
    "Cache": "modalfuse._cache",
    "using_cache": "modalfuse._cache",
    "EmbeddingCache": "modalfuse._embedcache",
    "encode_table": "modalfuse.encoders._stream",
    "MultimodalClassifier": "modalfuse.estimator",
    "MultimodalTable": "modalfuse.data._table",
    "Problem": "modalfuse.data._table",
    "read_table": "modalfuse.data._table",
    "Schema": "modalfuse.data._schema",
    "load_dataset": "modalfuse.data._datasets",
    "list_datasets": "modalfuse.data._datasets",
    "download_dataset": "modalfuse.data._datasets",
    "DriftReport": "modalfuse._drift",
    "windows": "modalfuse.data._windows",
    "align": "modalfuse.align._xcorr",
    "cross_validate": "modalfuse._api",
    "encode_with_ray": "modalfuse._raydata",
    "compare": "modalfuse._api",
    "make_strategies": "modalfuse._api",
    "robustness": "modalfuse._api",
    "list_corruptions": "modalfuse._corruptions",
    "parse_corruption": "modalfuse._corruptions",
    "corrupt_table": "modalfuse._corruptions",
    "quality_scores": "modalfuse._quality",
    "list_encoders": "modalfuse.encoders._registry",
    "get_encoder": "modalfuse.encoders._registry",
    "register_encoder": "modalfuse.encoders._registry",
    "list_fusions": "modalfuse._api",
    "get_fusion": "modalfuse._api",
    "register_fusion": "modalfuse._api",
    "FusionStrategy": "modalfuse._api",
    "NeuralFusion": "modalfuse._api",
    "Option": "modalfuse._options",
    **{
        name: "modalfuse._errors"
        for name in (
            "ChecksumMismatchError",
            "DatasetError",
            "DatasetNotFoundError",
            "DecodeError",
            "InputDriftWarning",
            "MissingValueError",
            "ModalfuseError",
            "ModelFileError",
            "NotFittedError",
            "OptionError",
            "RequestError",
            "SchemaError",
            "TrainingError",
            "UnknownNameError",
        )
    },
}

__all__ = [
    "Backend",
    "Cache",
    "ChecksumMismatchError",
    "DatasetError",
    "DatasetNotFoundError",
    "DecodeError",
    "DriftReport",
    "EmbeddingCache",
    "FusionStrategy",
    "InputDriftWarning",
    "MissingValueError",
    "ModalfuseError",
    "ModelFileError",
    "MultimodalClassifier",
    "MultimodalTable",
    "NeuralFusion",
    "NotFittedError",
    "Option",
    "OptionError",
    "Problem",
    "RequestError",
    "Schema",
    "SchemaError",
    "TrainingError",
    "UnknownNameError",
    "__version__",
    "align",
    "compare",
    "corrupt_table",
    "cross_validate",
    "download_dataset",
    "encode_table",
    "encode_with_ray",
    "get_encoder",
    "get_fusion",
    "list_corruptions",
    "list_datasets",
    "list_encoders",
    "list_fusions",
    "load_dataset",
    "make_strategies",
    "parse_corruption",
    "quality_scores",
    "read_table",
    "register_encoder",
    "register_fusion",
    "robustness",
    "using_cache",
    "windows",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modalfuse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
