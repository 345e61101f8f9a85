"""The fusion-strategy extension point and its registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from modalfuse._errors import UnknownNameError
from modalfuse._options import Option, declared_options, options_table, resolve_options
from modalfuse.encoders._nets import build_network
from modalfuse.encoders._registry import EncoderSpec, get_encoder
from modalfuse.fusion._train import TrainConfig

__all__ = [
    "FusionStrategy",
    "InputInfo",
    "default_encoders_of",
    "get_fusion",
    "list_fusions",
    "n_rows_of",
    "own_method",
    "register_fusion",
    "strategy_class",
    "strategy_from_saved",
]

Data = Mapping[str, tuple[np.ndarray, np.ndarray]]


def n_rows_of(data: Data) -> int:
    """Number of rows of ``data`` (0 without inputs)."""
    return len(next(iter(data.values()))[1]) if data else 0


def own_method(obj: Any, name: str, cls: type) -> bool:
    """Whether ``obj``'s method ``name`` is ``cls``'s own (not overridden by a subclass): a fast path written
    for ``cls``'s method applies only then."""
    return getattr(type(obj), name, None) is getattr(cls, name, None)


@dataclass(frozen=True)
class InputInfo:
    """What a strategy knows about one input: its encoder and the per-row shape of its arrays."""

    name: str
    encoder: str
    in_shape: tuple[int, ...]
    vocab_size: int | None = None
    network_options: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> EncoderSpec:
        return get_encoder(self.encoder)

    def build(self) -> nn.Module:
        """A freshly initialised encoder network for this input."""
        opts = {**self.spec.network_options, **self.network_options}
        if self.spec.network == "linear":
            opts = {}
        return build_network(self.spec.network, in_shape=self.in_shape, vocab_size=self.vocab_size, **opts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "encoder": self.encoder,
            "in_shape": list(self.in_shape),
            "vocab_size": self.vocab_size,
            "network_options": self.network_options,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputInfo:
        return cls(d["name"], d["encoder"], tuple(d["in_shape"]), d["vocab_size"], dict(d["network_options"]))


class FusionStrategy:
    """Base class of fusion strategies: subclass it and implement ``fit`` and ``predict_proba``.

    ``fit`` gets every input's preprocessed arrays and masks (``data[name] = (X, mask)``, X with one row
    per training row, zeros where the mask is False), integer labels ``y`` in 0..n_classes-1 and the
    rows' groups (or None). ``predict_proba`` gets the same kind of ``data`` and returns (N, n_classes).
    A strategy must accept rows where some inputs are missing.

    To save and load, put JSON-able state in ``self.state`` and tensors in ``tensors()`` /
    ``load_tensors()``; the defaults save nothing beyond ``state``.

    Options are declared once, in the class attribute ``OPTIONS`` (name -> :class:`~modalfuse.Option`,
    added to the bases' through the MRO); ``__init__`` checks what it is given against them (an unknown
    name or a bad value is an :class:`~modalfuse.OptionError`) and ``self.options`` holds the resolved value
    of every declared option. :meth:`option_table` lists them. A subclass with cross-option rules checks
    them in :meth:`check_options`.

    Register a subclass with :func:`register_fusion` to make it usable as ``fusion="name"``.
    """

    name: ClassVar[str] = ""
    #: The option that ``"name:value"`` sets (e.g. ``method`` for ``"late:stacking"``), if any.
    argument_name: ClassVar[str | None] = None
    #: The options this class declares (its bases' are added; see :func:`declared_options`).
    OPTIONS: ClassVar[Mapping[str, Option]] = {}
    #: Encoder per modality used where the estimator's ``encoders`` names none (a modality not listed
    #: gets its default trainable encoder); see :func:`default_encoders_of`.
    default_encoders: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **options: Any) -> None:
        self.options = resolve_options(type(self), options, self.owner())
        self.state: dict[str, Any] = {}
        self.check_options()

    @classmethod
    def owner(cls) -> str:
        """How messages name this strategy: ``"fusion 'lowrank'"``."""
        return f"fusion {cls.name or cls.__name__!r}"

    @classmethod
    def declared_options(cls) -> dict[str, Option]:
        """Name -> :class:`~modalfuse.Option` of every option this strategy declares."""
        return declared_options(cls)

    @classmethod
    def option_table(cls) -> list[dict[str, Any]]:
        """The declared options as rows ``{"name", "default", "valid", "help"}``, sorted by name."""
        return options_table(cls)

    @classmethod
    def from_saved_options(cls, options: Mapping[str, Any]) -> FusionStrategy:
        """An instance from the options of a saved model: options this class no longer declares (written
        by an older version) are dropped, options it declares that are missing get their defaults; the
        others are checked as in ``__init__``."""
        declared = cls.declared_options()
        return cls(**{k: v for k, v in options.items() if k in declared})

    def check_options(self) -> None:
        """Hook: raise :class:`~modalfuse.OptionError` where ``self.options`` break a rule between options."""

    def setup(self, inputs: Mapping[str, InputInfo], n_classes: int, config: TrainConfig) -> FusionStrategy:
        """Called by the estimator before ``fit`` (and before ``load_tensors`` when loading)."""
        self.inputs = dict(inputs)
        self.n_classes = n_classes
        self.config = config
        return self

    def fit(self, data: Data, y: np.ndarray, groups: np.ndarray | None) -> FusionStrategy:
        raise NotImplementedError  # pragma: no cover - abstract

    def predict_proba(self, data: Data) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def contributions(self, data: Data) -> dict[str, np.ndarray] | None:
        """Optional: per-input evidence for the predicted class, (N,) per input. None if unsupported."""
        return None

    # ------------------------------------------------------------------------------------ coalitions
    def coalition_inputs(self) -> list[str]:
        """The inputs a coalition is over, in the column order of ``coalitions`` (every set-up input)."""
        return list(self.inputs)

    def prepare_coalitions(self, data: Data) -> Any:
        """The per-input work that does not depend on which inputs are left present (each input's
        embedding, or its model's probabilities), computed once for :meth:`proba_of_coalitions`.

        The default keeps ``data`` itself: every coalition is then one :meth:`predict_proba`. Strategies
        override this with their encoders' outputs, so explaining costs fusion-head evaluations only.
        """
        return data

    def proba_of_coalitions(self, prepared: Any, coalitions: np.ndarray) -> np.ndarray:
        """Probabilities of every row under every coalition, from :meth:`prepare_coalitions`' output.

        Parameters
        ----------
        prepared : object
            What :meth:`prepare_coalitions` returned for the rows.
        coalitions : ndarray of bool, shape (C, M)
            Which inputs each coalition leaves present, columns in :meth:`coalition_inputs` order. An
            input absent from a row stays absent whatever the coalition says.

        Returns
        -------
        ndarray of shape (C, N, n_classes)
            Row ``c`` is what :meth:`predict_proba` gives with every input outside coalition ``c`` masked.

        The default re-runs :meth:`predict_proba` with the masks changed (the arrays are kept: every
        strategy reads an input only where its mask is True).
        """
        data = prepared
        names = self.coalition_inputs()
        out = []
        for row in np.asarray(coalitions, dtype=bool).reshape(-1, len(names)):
            keep = dict(zip(names, row, strict=True))
            masked = {n: (x, np.asarray(m, bool) & bool(keep.get(n, True))) for n, (x, m) in data.items()}
            out.append(np.asarray(self.predict_proba(masked), dtype=np.float64))
        return np.stack(out) if out else np.zeros((0, n_rows_of(data), self.n_classes))

    def coalition_proba(self, data: Data, coalitions: np.ndarray) -> np.ndarray:
        """:meth:`proba_of_coalitions` of :meth:`prepare_coalitions` ``(data)``: (C, N, n_classes)."""
        return self.proba_of_coalitions(self.prepare_coalitions(data), coalitions)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Restore from ``tensors`` (and ``self.state``) after ``setup``."""

    def n_parameters(self) -> int:
        return sum(int(t.numel()) for t in self.tensors().values())


_FUSIONS: dict[str, type[FusionStrategy]] = {}


def register_fusion(
    cls: type[FusionStrategy] | None = None, *, name: str | None = None, overwrite: bool = False
) -> Any:
    """Register a :class:`FusionStrategy` subclass; usable as a decorator."""

    def deco(c: type[FusionStrategy]) -> type[FusionStrategy]:
        key = name or c.name
        if not key:
            raise ValueError("a fusion strategy needs a name")
        if key in _FUSIONS and not overwrite:
            raise ValueError(f"a fusion named {key!r} is already registered")
        _FUSIONS[key] = c
        return c

    return deco(cls) if cls is not None else deco


def list_fusions() -> list[str]:
    """Names of the registered fusion strategies, sorted."""
    return sorted(_FUSIONS)


def strategy_class(name: str) -> type[FusionStrategy]:
    """The class registered for ``name`` (``"late:stacking"`` gives :class:`LateFusion`'s), or an
    :class:`~modalfuse.UnknownNameError` that suggests the closest registered name."""
    if not isinstance(name, str):
        raise UnknownNameError("fusion", repr(name), list_fusions(), hint="a fusion is named by a string")
    base = name.partition(":")[0]
    if base not in _FUSIONS:
        raise UnknownNameError("fusion", name, list_fusions())
    return _FUSIONS[base]


def strategy_from_saved(name: str, options: Mapping[str, Any]) -> FusionStrategy:
    """The strategy a saved model describes: ``name`` and its saved ``options``, options the class no
    longer declares dropped (see :meth:`FusionStrategy.from_saved_options`)."""
    cls = strategy_class(name)
    _, colon, arg = name.partition(":")
    options = dict(options)
    if colon and cls.argument_name is not None:
        options.setdefault(cls.argument_name, arg)
    return cls.from_saved_options(options)


def default_encoders_of(name: str) -> dict[str, str]:
    """The encoder per modality that strategy ``name`` (e.g. ``"linear"``) declares as its default; empty
    for an unknown name or a strategy that declares none."""
    cls = _FUSIONS.get(name.partition(":")[0])
    return dict(cls.default_encoders) if cls is not None else {}


def get_fusion(name: str, **options: Any) -> FusionStrategy:
    """A new instance of the strategy registered as ``name``.

    ``"late:weighted"`` is shorthand for ``get_fusion("late", method="weighted")`` and
    ``"unimodal:audio"`` for ``get_fusion("unimodal", input="audio")``.
    """
    cls = strategy_class(name)
    base, colon, arg = name.partition(":")
    if colon:
        key = cls.argument_name
        if key is None:
            raise UnknownNameError(
                "fusion", name, list_fusions(), hint=f"fusion {base!r} takes no ':' argument"
            )
        choices = cls.declared_options()[key].choices
        if choices is not None and arg not in choices:
            raise UnknownNameError("fusion", name, [f"{base}:{c}" for c in choices])
        options = {key: arg, **options}
    return cls(**options)
