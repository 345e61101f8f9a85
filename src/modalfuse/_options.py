"""Declared options: each fusion strategy and preprocessor states its options once, with one default each.

A class lists its options in a class attribute ``OPTIONS`` (name -> :class:`Option`); a subclass's
``OPTIONS`` adds to (or redeclares) its bases', collected through the MRO by :func:`declared_options`.
:func:`resolve_options` turns what a caller passed into the full set of values: an unknown name is an
:class:`~modalfuse.OptionError` that suggests the closest declared name, a value of the wrong type or out of
range is an :class:`~modalfuse.OptionError` that states the valid range, strings (``"lowrank:8"``) are
coerced, and every declared option left out gets its default.

This module imports neither torch nor scikit-learn, so the estimator's defaults can come from here cheaply.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modalfuse._errors import OptionError, did_you_mean

__all__ = [
    "DEFAULT_HIDDEN",
    "DEFAULT_INNER_FOLDS",
    "Option",
    "declared_options",
    "options_table",
    "resolve_options",
    "unknown_option_error",
]

#: Folds of the cross-fitted per-input models (``MultimodalClassifier(inner_folds=...)``).
DEFAULT_INNER_FOLDS = 3
#: Width of a fusion head's hidden layer (``MultimodalClassifier(hidden=...)``).
DEFAULT_HIDDEN = 128

_KINDS = ("int", "float", "bool", "str", "size")
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


@dataclass(frozen=True)
class Option:
    """One declared option: its kind, default, valid range or choices and a one-line help.

    Parameters
    ----------
    default : object
        The value used when the option is not given (``None`` only with ``none_ok``).
    kind : {"int", "float", "bool", "str", "size"}
        ``int`` and ``float`` accept numbers and numeric strings (never booleans); ``bool`` accepts
        ``True``/``False``, 0/1 and ``"true"``/``"false"``/``"yes"``/``"no"``; ``str`` a string; ``size``
        an integer or a pair ``(height, width)`` of integers (stored as a tuple).
    help : str
        One line, shown by ``modalfuse fusions``.
    low, high : float, optional
        Bounds of a number (of each number of a ``size``); inclusive unless ``low_open``/``high_open``.
    choices : tuple of str, optional
        The allowed strings of a ``str`` option.
    none_ok : bool, default=False
        Whether ``None`` is allowed (it then means what ``help`` says, e.g. "chosen from the data").
    reason : str, optional
        Why the range is what it is, added to the error message.
    """

    default: Any
    kind: str
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    none_ok: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Option kind must be one of {_KINDS}, got {self.kind!r}")

    # ------------------------------------------------------------------------------------------ wording
    def valid(self) -> str:
        """What a valid value is, in words: ``"an integer >= 1"``, ``"a number in [0, 1)"``, ..."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "str":
            text = "one of " + ", ".join(repr(c) for c in self.choices) if self.choices else "a string"
        else:
            noun = {"int": "an integer", "float": "a number", "size": "an integer"}[self.kind]
            text = noun + self._range()
            if self.kind == "size":
                text += " or a pair (height, width) of them"
        return text + (" or None" if self.none_ok else "")

    def _range(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return (
                f" in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}{')' if self.high_open else ']'}"
            )
        if lo is not None:
            return f" {'>' if self.low_open else '>='} {_num(lo)}"
        if hi is not None:
            return f" {'<' if self.high_open else '<='} {_num(hi)}"
        return ""

    # ---------------------------------------------------------------------------------------- coercion
    def coerce(self, value: Any, name: str, owner: str, noun: str = "option") -> Any:
        """``value`` as this option's type, or an :class:`OptionError` naming ``owner`` and ``name``
        (called a ``noun``) that states the valid range."""
        if value is None and self.none_ok:
            return None
        converted = _CONVERTERS[self.kind](self, value)
        if converted is _BAD:
            why = f" ({self.reason})" if self.reason else ""
            raise OptionError(f"{owner}: {noun} {name!r} must be {self.valid()}{why}, got {value!r}")
        return converted

    def _in_range(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


_BAD = object()


def _as_int(value: Any) -> int | object:
    if isinstance(value, bool):
        return _BAD
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    return _BAD


def _int(option: Option, value: Any) -> int | object:
    x = _as_int(value)
    return x if x is not _BAD and option._in_range(x) else _BAD  # type: ignore[arg-type]


def _float(option: Option, value: Any) -> float | object:
    if isinstance(value, bool):
        return _BAD
    try:
        x = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return _BAD
    return x if math.isfinite(x) and option._in_range(x) else _BAD


def _bool(option: Option, value: Any) -> bool | object:
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if isinstance(value, bool) or numpy_bool:  # numpy's bool, without importing numpy
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(int(value))
    if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    return _BAD


def _str(option: Option, value: Any) -> str | object:
    if not isinstance(value, str):
        return _BAD
    return value if option.choices is None or value in option.choices else _BAD


def _size(option: Option, value: Any) -> int | tuple[int, int] | object:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            return _BAD
        pair = tuple(_int(option, v) for v in value)
        return _BAD if _BAD in pair else pair
    return _int(option, value)


_CONVERTERS = {"int": _int, "float": _float, "bool": _bool, "str": _str, "size": _size}


# ---------------------------------------------------------------------------------------- per class
def declared_options(cls: type) -> dict[str, Option]:
    """Name -> :class:`Option` declared by ``cls`` and its bases (a subclass's declaration wins)."""
    out: dict[str, Option] = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get("OPTIONS", {}) or {})
    return out


def options_table(cls: type) -> list[dict[str, Any]]:
    """The declared options of ``cls`` as rows ``{"name", "default", "valid", "help"}``, sorted by name."""
    return [
        {"name": name, "default": opt.default, "valid": opt.valid(), "help": opt.help}
        for name, opt in sorted(declared_options(cls).items())
    ]


def resolve_options(
    cls: type, given: Mapping[str, Any], owner: str, *, drop_unknown: bool = False
) -> dict[str, Any]:
    """Every option declared by ``cls``: the ``given`` value, coerced and checked, or the default.

    Parameters
    ----------
    cls : type
        The strategy or preprocessor class (its ``OPTIONS`` through the MRO).
    given : mapping
        What the caller passed.
    owner : str
        How errors name the class, e.g. ``"fusion 'lowrank'"``.
    drop_unknown : bool, default=False
        Ignore names ``cls`` does not declare instead of refusing them (for model files written by older
        versions, whose classes declared options that are gone now).

    Returns
    -------
    dict
        One entry per declared option, in declaration order.

    Raises
    ------
    OptionError
        An unknown name (unless ``drop_unknown``), or a value of the wrong type or out of range.
    """
    declared = declared_options(cls)
    unknown = [k for k in given if k not in declared]
    if unknown and not drop_unknown:
        raise unknown_option_error(owner, unknown[0], declared)
    return {name: opt.coerce(given.get(name, opt.default), name, owner) for name, opt in declared.items()}


def unknown_option_error(owner: str, name: str, known: Iterable[str]) -> OptionError:
    """The error for an option ``name`` that ``owner`` does not declare, with the closest known name."""
    known = sorted(known)
    listing = ", ".join(known) if known else "none"
    return OptionError(f"{owner}: unknown option {name!r}{did_you_mean(name, known)} (options: {listing})")
