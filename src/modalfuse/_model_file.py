"""Reading a saved model folder (``model.json`` + ``weights.safetensors``), checked field by field.

Every field is checked against what the model needs before anything is built from it: its type, the names
it uses (encoders, preprocessors, fusion strategy, modalities), the declared options, and that the parts
agree with each other (the inputs, the schema's columns, the preprocessors' output shapes, the fusion's
weights). Whatever is wrong is a one-line :class:`~modalfuse.ModelFileError` that names the file and the
field. Loading reads JSON and safetensors only, never executes code from the files, and loads every tensor
on the CPU; a model saved on a device that is not available here is loaded on the CPU, with a warning.

Files written by older versions still load: parameters they lack get their defaults, options their
strategy or preprocessors no longer declare are dropped, missing options get their defaults.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modalfuse._errors import ModelFileError, OptionError, UnknownNameError, did_you_mean

__all__ = ["FORMAT", "FORMAT_VERSION", "load_model"]

FORMAT = "modalfuse-model"
FORMAT_VERSION = 1

#: Top-level fields of ``model.json`` and their JSON types.
_FIELDS: dict[str, type] = {
    "params": dict,
    "classes": list,
    "schema": dict,
    "inputs": dict,
    "preprocessors": dict,
    "fusion": dict,
}
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}
#: The schema modality each preprocessor modality reads.
_READS = {
    "image": ("image",),
    "audio": ("audio",),
    "text": ("text",),
    "tabular": ("numeric", "categorical"),
    "series": ("series",),
}
_STATE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _type_name(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


class _ModelFolder:
    """Paths of a model folder and the errors that name them."""

    def __init__(self, path: str | Any) -> None:
        self.path = Path(path)
        self.json = self.path / "model.json"
        self.weights = self.path / "weights.safetensors"

    def bad(self, field: str, problem: str) -> ModelFileError:
        """``model.json: field 'x': problem``."""
        return ModelFileError(f"{self.json}: field {field!r}: {problem}")

    def need(self, doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], field: str) -> Any:
        """``doc[key]``, which must exist and be of ``kind``; else an error naming ``field``."""
        if key not in doc:
            raise self.bad(field, "missing")
        value = doc[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(_JSON_TYPES.get(k, "null" if k is type(None) else k.__name__) for k in kinds)
            raise self.bad(field, f"must be a JSON {wanted}, got {_type_name(value)}")
        return value


# ------------------------------------------------------------------------------------------- document
def _read_document(folder: _ModelFolder) -> dict[str, Any]:
    try:
        text = folder.json.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFileError(f"{folder.path}: not a saved modalfuse model (no model.json)") from None
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{folder.json}: corrupt model file (not UTF-8 text: {exc.reason})") from None
    except OSError as exc:
        raise ModelFileError(f"{folder.json}: cannot be read ({exc.strerror or exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{folder.json}: corrupt model file (not JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise ModelFileError(
            f"{folder.json}: not a modalfuse model file (a JSON {_type_name(doc)}, not an object)"
        )
    if doc.get("format") != FORMAT:
        raise ModelFileError(f"{folder.json}: not a modalfuse model file (format {doc.get('format')!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{folder.json}: unsupported model format version {doc.get('format_version')!r} "
            f"(this modalfuse reads version {FORMAT_VERSION})"
        )
    for key, kind in _FIELDS.items():
        folder.need(doc, key, kind, key)
    return doc


# --------------------------------------------------------------------------------------------- params
def _params(folder: _ModelFolder, doc: Mapping[str, Any], cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """The estimator's parameters (unknown ones refused) and their checked scalar values."""
    from modalfuse._params import (
        PARAMS,
        check_class_weight,
        check_mappings,
        check_scalar_params,
        check_train_corruptions,
    )

    params = dict(doc["params"])
    names = set(cls().get_params())
    for key in params:
        if key not in names:
            raise folder.bad(f"params.{key}", f"unknown parameter{did_you_mean(key, names)}")
    for name, value in params.items():
        if name in PARAMS:
            try:
                PARAMS[name].coerce(value, name, "MultimodalClassifier", "parameter")
            except OptionError as exc:
                raise folder.bad(f"params.{name}", str(exc)) from None
    try:
        scalars = check_scalar_params({**cls().get_params(), **params})
        check_mappings(
            params.get("encoders"),
            params.get("preprocess"),
            params.get("fusion_options"),
            params.get("modalities"),
        )
        check_class_weight(params.get("class_weight"))
    except (OptionError, UnknownNameError) as exc:
        raise folder.bad("params", str(exc)) from None
    try:
        check_train_corruptions(params.get("train_corruptions"))
    except OptionError as exc:
        raise folder.bad("params.train_corruptions", str(exc)) from None
    return params, scalars


def _device(folder: _ModelFolder, params: dict[str, Any], scalars: dict[str, Any]) -> None:
    """Map a saved device that is not usable here to the CPU, with a warning."""
    from modalfuse._params import device_error

    problem = device_error(scalars["device"])
    if problem is not None:
        warnings.warn(
            f"{folder.json}: the model was saved for device {scalars['device']!r}, which is not usable here "
            f"({problem}); loading it on 'cpu'",
            UserWarning,
            stacklevel=4,
        )
        params["device"] = scalars["device"] = "cpu"


# -------------------------------------------------------------------------------------- classes/schema
def _classes(folder: _ModelFolder, classes: list[Any]) -> np.ndarray:
    if len(classes) < 2:
        raise folder.bad("classes", f"must list at least two labels, got {len(classes)}")
    kinds = {type(c) for c in classes}
    if len(kinds) != 1 or not kinds <= {str, int, float, bool}:
        found = ", ".join(sorted({_type_name(c) for c in classes}))
        raise folder.bad("classes", f"must be labels of one type (strings or numbers), got {found}")
    if isinstance(classes[0], float) and not all(math.isfinite(c) for c in classes):
        raise folder.bad("classes", "holds a label that is not a finite number")
    if len(set(classes)) != len(classes):
        raise folder.bad("classes", "lists a label twice")
    return np.asarray(classes)


def _schema(folder: _ModelFolder, schema: dict[str, Any]) -> Any:
    from modalfuse.data._schema import MODALITIES, Schema

    for column, modality in schema.items():
        if modality not in MODALITIES:
            raise folder.bad(
                f"schema.{column}",
                f"unknown modality {modality!r}{did_you_mean(str(modality), MODALITIES)} "
                f"(known: {', '.join(MODALITIES)})",
            )
    return Schema(dict(schema))


# --------------------------------------------------------------------------------------------- inputs
def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _input(folder: _ModelFolder, name: str, d: Any) -> Any:
    from modalfuse.encoders._registry import get_encoder
    from modalfuse.fusion._base import InputInfo

    field = f"inputs.{name}"
    if not isinstance(d, dict):
        raise folder.bad(field, f"must be a JSON object, got {_type_name(d)}")
    if folder.need(d, "name", str, f"{field}.name") != name:
        raise folder.bad(f"{field}.name", f"is {d['name']!r}, not the input's name {name!r}")
    try:
        get_encoder(folder.need(d, "encoder", str, f"{field}.encoder"))
    except UnknownNameError as exc:
        raise folder.bad(f"{field}.encoder", str(exc)) from None
    shape = folder.need(d, "in_shape", list, f"{field}.in_shape")
    if not shape or not all(_positive_int(v) for v in shape):
        raise folder.bad(f"{field}.in_shape", f"must be a list of integers >= 1, got {shape!r}")
    vocab = folder.need(d, "vocab_size", (int, type(None)), f"{field}.vocab_size")
    if vocab is not None and not _positive_int(vocab):
        raise folder.bad(f"{field}.vocab_size", f"must be an integer >= 1 or null, got {vocab!r}")
    folder.need(d, "network_options", dict, f"{field}.network_options")
    return InputInfo.from_dict(d)


def _inputs(folder: _ModelFolder, doc: Mapping[str, Any]) -> dict[str, Any]:
    inputs = {name: _input(folder, name, d) for name, d in doc["inputs"].items()}
    unimodal = str(doc["fusion"].get("name", "")).startswith("unimodal:")
    if not inputs and not unimodal:  # only a baseline whose input no training row had has none
        raise folder.bad("inputs", "names no input: the model would predict the class prior for every row")
    return inputs


# -------------------------------------------------------------------------------------- preprocessors
def _preprocessor(folder: _ModelFolder, name: str, d: Any, info: Any, schema: Any) -> Any:
    from modalfuse.encoders._prep import PREPROCESSORS, Preprocessor

    field = f"preprocessors.{name}"
    if not isinstance(d, dict):
        raise folder.bad(field, f"must be a JSON object, got {_type_name(d)}")
    kind = folder.need(d, "name", str, f"{field}.name")
    if kind != info.spec.preprocessor:
        known = f"{did_you_mean(kind, PREPROCESSORS)}" if kind not in PREPROCESSORS else ""
        raise folder.bad(
            f"{field}.name",
            f"is {kind!r}{known}, but encoder {info.encoder!r} reads {info.spec.preprocessor!r}",
        )
    if folder.need(d, "input", str, f"{field}.input") != name:
        raise folder.bad(f"{field}.input", f"is {d['input']!r}, not the input's name {name!r}")
    _columns(folder, field, folder.need(d, "columns", list, f"{field}.columns"), PREPROCESSORS[kind], schema)
    folder.need(d, "options", dict, f"{field}.options")
    folder.need(d, "state", dict, f"{field}.state")
    try:
        prep = Preprocessor.from_dict(d)
    except OptionError as exc:
        raise folder.bad(f"{field}.options", str(exc)) from None
    except _STATE_ERRORS as exc:
        raise folder.bad(
            f"{field}.state", f"does not fit preprocessor {kind!r} ({type(exc).__name__}: {exc})"
        ) from None
    _check_shape(folder, name, prep, info)
    return prep


def _columns(folder: _ModelFolder, field: str, columns: list[Any], kind: type, schema: Any) -> None:
    if not columns:
        raise folder.bad(f"{field}.columns", "names no column")
    for col in columns:
        if not isinstance(col, str) or col not in schema.columns:
            raise folder.bad(f"{field}.columns", f"names {col!r}, which is not a column of field 'schema'")
        if schema.columns[col] not in _READS[kind.modality]:
            raise folder.bad(
                f"{field}.columns",
                f"column {col!r} is {schema.columns[col]} in field 'schema', but preprocessor {kind.name!r} "
                f"reads {kind.modality}",
            )


def _check_shape(folder: _ModelFolder, name: str, prep: Any, info: Any) -> None:
    """The preprocessor's output must be what the input's networks were built for."""
    try:
        shape = prep.output_shape()
        vocab = getattr(prep, "vocab_size", None)
    except _STATE_ERRORS as exc:
        raise folder.bad(
            f"preprocessors.{name}.state", f"is incomplete ({type(exc).__name__}: {exc})"
        ) from None
    if shape is not None and tuple(shape) != tuple(info.in_shape):
        raise folder.bad(
            f"inputs.{name}.in_shape", f"is {list(info.in_shape)}, but the preprocessor gives {list(shape)}"
        )
    if vocab != info.vocab_size:
        raise folder.bad(
            f"inputs.{name}.vocab_size",
            f"is {info.vocab_size!r}, but the preprocessor's vocabulary has {vocab!r}",
        )


def _preprocessors(folder: _ModelFolder, doc: Mapping[str, Any], inputs: dict[str, Any], schema: Any) -> dict:
    preps = doc["preprocessors"]
    if set(preps) != set(inputs):
        raise folder.bad(
            "preprocessors",
            f"has inputs {sorted(preps)}, but field 'inputs' has {sorted(inputs)}: every input needs its "
            "preprocessor",
        )
    return {name: _preprocessor(folder, name, preps[name], inputs[name], schema) for name in inputs}


# --------------------------------------------------------------------------------------------- fusion
def _strategy(folder: _ModelFolder, doc: Mapping[str, Any], params: dict[str, Any]) -> Any:
    from modalfuse.fusion._base import strategy_class, strategy_from_saved

    fusion = doc["fusion"]
    name = folder.need(fusion, "name", str, "fusion.name")
    if "fusion" in params and params["fusion"] != name:
        raise folder.bad("fusion.name", f"is {name!r}, but field 'params.fusion' is {params['fusion']!r}")
    options = folder.need(fusion, "options", dict, "fusion.options")
    state = folder.need(fusion, "state", dict, "fusion.state")
    try:
        declared = strategy_class(name).declared_options()
        strategy = strategy_from_saved(name, options)
    except UnknownNameError as exc:
        raise folder.bad("fusion.name", str(exc)) from None
    except OptionError as exc:
        raise folder.bad("fusion.options", str(exc)) from None
    if params.get("fusion_options"):  # options the strategy no longer declares (older versions) are dropped
        params["fusion_options"] = {k: v for k, v in params["fusion_options"].items() if k in declared}
    strategy.state = state
    return strategy


# -------------------------------------------------------------------------------------------- weights
def _tensors(folder: _ModelFolder) -> dict[str, Any]:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(folder.weights), device="cpu")
    except FileNotFoundError:
        raise ModelFileError(f"{folder.path}: the model has no weights.safetensors") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{folder.weights}: corrupt weights file ({exc})") from None
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(
                f"{folder.weights}: tensor {key!r} holds values that are not finite (NaN or inf)"
            )
    return tensors


def _load_weights(folder: _ModelFolder, strategy: Any, tensors: dict[str, Any]) -> None:
    try:
        strategy.load_tensors(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelFileError(
            f"{folder.weights}: the weights do not fit field 'inputs' of model.json ({' '.join(first[:2])})"
        ) from None
    except _STATE_ERRORS as exc:
        raise folder.bad(
            "fusion.state", f"does not fit the inputs and the weights ({type(exc).__name__}: {exc})"
        ) from None
    unused = sorted(set(tensors) - set(strategy.tensors()))
    if unused:
        raise ModelFileError(
            f"{folder.weights}: {len(unused)} tensor(s) that model.json does not describe (first: {unused[0]!r})"
        )


def _check_prediction(folder: _ModelFolder, clf: Any) -> None:
    """Two rows of zeros, every input present, must give finite probabilities of the right shape."""
    if not clf.inputs_:
        return
    data = {
        name: (np.zeros((2, *info.in_shape), np.int64 if info.vocab_size else np.float32), np.ones(2, bool))
        for name, info in clf.inputs_.items()
    }
    try:
        proba = np.asarray(clf.fusion_.predict_proba(data), dtype=np.float64)
    except (RuntimeError, *_STATE_ERRORS) as exc:
        raise ModelFileError(
            f"{folder.path}: the model cannot predict from inputs of the shapes in field 'inputs' "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
        ) from None
    if proba.shape != (2, len(clf.classes_)) or not np.isfinite(proba).all():
        raise ModelFileError(
            f"{folder.path}: the model gives probabilities of shape {proba.shape} (or not finite) for "
            f"{len(clf.classes_)} classes in field 'classes'"
        )


def _fallback(folder: _ModelFolder, doc: Mapping[str, Any], clf: Any, tensors: dict[str, Any]) -> Any:
    """The per-input models of ``missing="drop"`` (field ``fallback``, weights prefixed ``__fallback__.``),
    or None where the model has none (every model saved before it existed)."""
    from modalfuse.estimator import FALLBACK_PREFIX
    from modalfuse.fusion._base import strategy_from_saved

    own = {k[len(FALLBACK_PREFIX) :]: v for k, v in tensors.items() if k.startswith(FALLBACK_PREFIX)}
    if "fallback" not in doc:
        if own:
            raise ModelFileError(f"{folder.weights}: fallback tensors that model.json does not describe")
        return None
    d = folder.need(doc, "fallback", dict, "fallback")
    if folder.need(d, "name", str, "fallback.name") != "late:product":
        raise folder.bad("fallback.name", f"must be 'late:product', got {d['name']!r}")
    try:
        strategy = strategy_from_saved("late:product", folder.need(d, "options", dict, "fallback.options"))
    except OptionError as exc:
        raise folder.bad("fallback.options", str(exc)) from None
    strategy.state = folder.need(d, "state", dict, "fallback.state")
    strategy.setup(clf.inputs_, len(clf.classes_), clf._train_config())
    try:
        strategy.load_tensors(own)
    except (RuntimeError, *_STATE_ERRORS) as exc:
        raise folder.bad(
            "fallback.state", f"does not fit the inputs and the weights ({type(exc).__name__})"
        ) from None
    return strategy


# ------------------------------------------------------------------------------------------------ all
def load_model(cls: type, path: str | Any) -> Any:
    """A fitted ``cls`` (``MultimodalClassifier``) from the model folder ``path``, every field checked.

    Raises
    ------
    ModelFileError
        One line naming the file and the field that is missing, of the wrong type, unknown, or does not
        agree with the rest of the model.
    """
    folder = _ModelFolder(path)
    doc = _read_document(folder)
    params, scalars = _params(folder, doc, cls)
    _device(folder, params, scalars)
    classes = _classes(folder, doc["classes"])
    schema = _schema(folder, doc["schema"])
    inputs = _inputs(folder, doc)
    preprocessors = _preprocessors(folder, doc, inputs, schema)
    strategy = _strategy(folder, doc, params)
    clf = cls(**params)
    clf.classes_, clf.schema_, clf.inputs_, clf.preprocessors_ = classes, schema, inputs, preprocessors
    strategy.setup(inputs, len(classes), clf._train_config(scalars))
    tensors = _tensors(folder)
    from modalfuse.estimator import FALLBACK_PREFIX

    _load_weights(folder, strategy, {k: v for k, v in tensors.items() if not k.startswith(FALLBACK_PREFIX)})
    clf.fusion_ = strategy
    clf.fallback_ = _fallback(folder, doc, clf, tensors)
    _check_prediction(folder, clf)
    return clf
