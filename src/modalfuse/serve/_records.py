"""Request bodies to records: each record a mapping column -> value in the forms ``read_table`` reads.

A record gives any subset of the model's columns. Image and audio values come as the bytes of a file: in
JSON, ``{"base64": "...", "type": "image/png"}`` or a ``data:image/png;base64,...`` URL; in a multipart
form, a file part. A string that is not a data URL is refused for a media column: the server never reads a
file named by a client. Text and categorical values are strings (categories also numbers), numbers are
numbers (or strings that parse as one); ``null`` or an absent column is a missing value. Every mistake is a
:class:`~modalfuse.RequestError` naming the field and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modalfuse._errors import RequestError, did_you_mean

__all__ = ["Columns", "check_record", "parse_json", "parse_query_flag", "record_from_form"]

_MEDIA = ("image", "audio")
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,", re.IGNORECASE)
_MEDIA_KEYS = frozenset({"base64", "type", "name"})
_WHITESPACE = re.compile(rb"\s+")


@dataclass(frozen=True)
class Columns:
    """The model's columns: column -> modality, and input -> its columns (for messages and answers)."""

    modality: Mapping[str, str]
    inputs: Mapping[str, tuple[str, list[str]]]

    def input_of(self, column: str) -> str:
        """The input a column belongs to."""
        return next(name for name, (_, cols) in self.inputs.items() if column in cols)


def _field(index: int | None, column: str | None = None) -> str:
    """How an answer names a place: ``"image"`` in a single record, ``"[3].image"`` in a batch."""
    head = "" if index is None else f"[{index}]"
    if column is None:
        return head or "body"
    return f"{head}.{column}" if head else column


def _wrong(field: str, message: str) -> RequestError:
    return RequestError(422, "wrong_type", field, f"{field}: {message}")


# ------------------------------------------------------------------------------------------- JSON bodies
def parse_json(body: bytes, columns: Columns, max_batch: int) -> tuple[list[dict[str, Any]], bool]:
    """The records of a JSON body: an object is one record, an array a batch.

    Returns
    -------
    records : list of dict
        Column -> value (``bytes`` for media, ``str``, ``float`` or ``None``), one per record.
    single : bool
        Whether the body was one record (the answer is then one object, not a list).
    """
    if not body.strip():
        raise RequestError(400, "empty_body", "body", "the request body is empty: send a JSON record")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "invalid_json", "body", "the request body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise RequestError(
            400, "invalid_json", "body", f"the request body is not valid JSON: {exc}"
        ) from None
    if isinstance(doc, dict):
        return [check_record(doc, columns, None)], True
    if not isinstance(doc, list):
        raise RequestError(
            422,
            "wrong_type",
            "body",
            f"the body must be a JSON object (one record) or an array of them, not {_json_type(doc)}",
        )
    if not doc:
        raise RequestError(
            422, "empty_batch", "body", "the batch is an empty array: send at least one record"
        )
    if len(doc) > max_batch:
        raise RequestError(
            413,
            "batch_too_large",
            "body",
            f"the batch has {len(doc)} records, over the limit of {max_batch} per request: split it",
        )
    return [check_record(rec, columns, i) for i, rec in enumerate(doc)], False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def check_record(doc: Any, columns: Columns, index: int | None) -> dict[str, Any]:
    """One record (a JSON object) as column -> value; every key and value checked."""
    where = _field(index)
    if not isinstance(doc, dict):
        raise _wrong(where, f"a record must be a JSON object of column -> value, not {_json_type(doc)}")
    record: dict[str, Any] = {}
    for key, value in doc.items():
        field = _field(index, key)
        modality = _known_column(key, columns, field)
        record[key] = _json_value(value, modality, field)
    _check_not_empty(record, columns, where)
    return record


def _known_column(key: str, columns: Columns, field: str) -> str:
    if key in columns.modality:
        return columns.modality[key]
    known = list(columns.modality)
    hint = ""
    if key in columns.inputs:
        hint = f" ({key!r} is an input made of the columns {', '.join(columns.inputs[key][1])}: give those)"
    raise RequestError(
        422,
        "unknown_input",
        field,
        f"{field}: unknown input {key!r}{did_you_mean(key, known)}{hint} (the model's columns: "
        f"{', '.join(known)})",
    )


def _check_not_empty(record: dict[str, Any], columns: Columns, where: str) -> None:
    if all(v is None for v in record.values()):
        raise RequestError(
            422,
            "no_inputs",
            where,
            f"{where}: the record has none of the model's inputs; give at least one of "
            f"{', '.join(columns.modality)} (any subset works: missing ones are treated as missing)",
        )


def _json_value(value: Any, modality: str, field: str) -> Any:
    if value is None:
        return None
    if modality in _MEDIA:
        return _json_media(value, modality, field)
    if modality == "numeric":
        return _number(value, field)
    if modality == "categorical":
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return None if isinstance(value, str) and not value.strip() else value
        raise _wrong(field, f"a category is a string or a number, not {_json_type(value)}")
    if isinstance(value, str):  # text
        return value if value.strip() else None
    raise _wrong(field, f"text is a string, not {_json_type(value)}")


def _number(value: Any, field: str) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _wrong(field, f"expected a number, not {_json_type(value)}")
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = float(value)
        except ValueError:
            raise _wrong(field, f"expected a number, got the string {value[:60]!r}") from None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range: infinite, masked with a problem like in a table
        number = math.inf if value > 0 else -math.inf
    return None if math.isnan(number) else number


# ------------------------------------------------------------------------------------------- media values
def _json_media(value: Any, modality: str, field: str) -> bytes:
    if isinstance(value, str):
        match = _DATA_URL.match(value)
        if match is None:
            raise _wrong(
                field,
                f"a string is not accepted for the {modality} input: the server never reads files named by "
                f'a client; send the file\'s bytes as {{"base64": "...", "type": "{modality}/..."}}, a '
                f"data: URL, or upload it as multipart form data",
            )
        _check_declared(match.group(1) or "application/octet-stream", modality, field)
        return _b64(value[match.end() :], field)
    if not isinstance(value, dict):
        raise _wrong(
            field,
            f'a {modality} is {{"base64": "...", "type": "{modality}/..."}} or a data: URL, '
            f"not {_json_type(value)}",
        )
    extra = sorted(set(value) - _MEDIA_KEYS)
    if extra:
        raise _wrong(
            field, f"unknown key {extra[0]!r}{did_you_mean(extra[0], _MEDIA_KEYS)} (keys: base64, type)"
        )
    if not isinstance(value.get("base64"), str):
        raise _wrong(field, f'a {modality} needs "base64": the file\'s bytes as a base64 string')
    if not isinstance(value.get("type"), str):
        raise _wrong(field, f'a {modality} needs "type": its media type, e.g. "{modality}/..."')
    _check_declared(value["type"], modality, field)
    return _b64(value["base64"], field)


def _check_declared(declared: str, modality: str, field: str) -> None:
    """The declared media type fits the column: ``<modality>/...`` or ``application/octet-stream``."""
    kind = declared.split(";", 1)[0].strip().lower()
    if kind.startswith(f"{modality}/") or kind == "application/octet-stream":
        return
    raise _wrong(
        field,
        f"declared type {declared[:80]!r} does not fit the {modality} input: expected {modality}/... "
        "(or application/octet-stream)",
    )


def _b64(text: str, field: str) -> bytes:
    raw = _WHITESPACE.sub(b"", text.encode("ascii", errors="replace"))
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(422, "bad_base64", field, f"{field}: not valid base64: {exc}") from None
    return data


# ------------------------------------------------------------------------------------------- multipart
def record_from_form(items: list[tuple[str, Any]], columns: Columns) -> dict[str, Any]:
    """One record from multipart form fields ``(name, value)``: text values are strings; files are
    ``(content_type, filename, bytes)`` tuples read by the caller."""
    record: dict[str, Any] = {}
    for key, value in items:
        modality = _known_column(key, columns, key)
        if key in record:
            raise _wrong(key, "given twice in the form: one value per column")
        record[key] = _form_value(value, modality, key)
    _check_not_empty(record, columns, "body")
    return record


def _form_value(value: Any, modality: str, field: str) -> Any:
    if isinstance(value, tuple):  # an uploaded file
        content_type, filename, data = value
        if modality not in _MEDIA:
            raise _wrong(field, f"a file was uploaded for the {modality} input, which takes a form field")
        if not data and not filename:
            return None  # a file input left empty by a browser
        _check_declared(content_type or "application/octet-stream", modality, field)
        return data
    if modality in _MEDIA:
        return _json_media(value, modality, field)  # a data: URL is fine; a path is refused there
    return _json_value(value, modality, field)


def parse_query_flag(value: str | None, name: str) -> bool:
    """A boolean query parameter (``true``/``false``/``1``/``0``/``yes``/``no``; absent is false)."""
    if value is None:
        return False
    text = value.strip().lower()
    if text in ("1", "true", "yes", ""):
        return True
    if text in ("0", "false", "no"):
        return False
    raise RequestError(
        422, "wrong_type", f"query.{name}", f"query parameter {name}={value[:40]!r}: expected true or false"
    )
