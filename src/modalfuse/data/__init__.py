"""Tables, schemas, missing masks and built-in datasets."""

from modalfuse.data._schema import MODALITIES, Schema, identifier_kind, infer_schema, is_missing
from modalfuse.data._table import MultimodalTable, Problem, decode_media, read_frame, read_table

__all__ = [
    "MODALITIES",
    "MultimodalTable",
    "Problem",
    "Schema",
    "decode_media",
    "identifier_kind",
    "infer_schema",
    "is_missing",
    "read_frame",
    "read_table",
]
