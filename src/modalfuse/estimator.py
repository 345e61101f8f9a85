"""``MultimodalClassifier``: a scikit-learn compatible classifier over multimodal tables."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from modalfuse._drift import DriftReport, input_drift
from modalfuse._errors import (
    InputDriftWarning,
    ModalfuseError,
    NotFittedError,
    OptionError,
    SchemaError,
    UnknownNameError,
)
from modalfuse._model_file import FORMAT as _FORMAT
from modalfuse._model_file import FORMAT_VERSION as _FORMAT_VERSION
from modalfuse._options import DEFAULT_HIDDEN, DEFAULT_INNER_FOLDS
from modalfuse.data._schema import Schema, is_missing
from modalfuse.data._table import MultimodalTable, read_table

__all__ = ["MultimodalClassifier"]


def _as_table(
    X: Any,
    y: Any = None,
    groups: Any = None,
    modalities: Mapping[str, str] | None = None,
) -> MultimodalTable:
    if isinstance(X, MultimodalTable):
        table = X
    elif isinstance(X, pd.DataFrame):
        table = read_table(X, modalities=modalities)  # decoded now: undecodable files are problems
    else:
        raise TypeError(f"expected a MultimodalTable or a pandas DataFrame, got {type(X).__name__}")
    if y is not None or groups is not None:
        table = MultimodalTable(
            table.frame,
            schema=table.schema,
            y=table.y if y is None else np.asarray(y),
            label=table.label,
            groups=table.groups if groups is None else np.asarray(groups).astype(str),
            group_column=table.group_column,
            present=table.present,
            problems=table.problems,
            notes=table.notes,
            row_ids=table.row_ids,
            name=table.name,
        )
    return table


_MODEL_FILES = frozenset({"model.json", "weights.safetensors"})


def _replaceable(path: Path) -> bool:
    """Whether ``save`` may replace ``path``: an empty folder or a folder holding only a saved model."""
    return path.is_dir() and all(p.name in _MODEL_FILES for p in path.iterdir())


def _usable(value: Any, modality: str) -> bool:
    """Whether a cell can be used as ``modality`` (for a column read under another modality)."""
    if is_missing(value):
        return False
    if modality == "numeric":
        return bool(pd.notna(pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]))
    if modality in ("image", "audio") and isinstance(value, str | os.PathLike):
        return os.path.isfile(value)
    return True


def _check_has_inputs(X: MultimodalTable | pd.DataFrame, fitted: Mapping[str, str]) -> None:
    columns = [str(c) for c in (X.frame.columns if isinstance(X, MultimodalTable) else X.columns)]
    if fitted and not any(c in fitted for c in columns):
        raise SchemaError(
            f"the rows to predict have none of the model's input columns ({', '.join(map(repr, fitted))}); "
            f"their columns are {columns}"
        )


def _split_id(X: Any, id_column: str) -> tuple[np.ndarray, Any]:
    """The ``id_column`` values of ``X`` and ``X`` without that column (a DataFrame) or as is (a table)."""
    frame = X.frame if isinstance(X, MultimodalTable) else X
    if not isinstance(frame, pd.DataFrame) or id_column not in frame.columns:
        columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else []
        raise SchemaError(
            f"id column {id_column!r} is not in the rows to predict; their columns are {columns}"
        )
    ids = frame[id_column].to_numpy()
    return ids, (X.drop(columns=id_column) if isinstance(X, pd.DataFrame) else X)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _encoders_of(modality: str) -> list[str]:
    from modalfuse.encoders._registry import list_encoders

    return list_encoders(modality)


def _as_probabilities(proba: Any) -> np.ndarray:
    """``proba`` as float64 rows that sum to 1 (to rounding): strategies compute in float32."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 2 and p.shape[1]:
        p = p / p.sum(axis=1, keepdims=True)
    return p


def _contributions(strategy: Any, data: Mapping[str, Any], proba: np.ndarray, method: str) -> Any:
    """``explain``'s per-input columns for ``occlusion`` and ``native`` (None: no native explanation)."""
    if method == "occlusion":
        from modalfuse.explain import occlusion

        return occlusion(strategy, data, proba)
    return strategy.contributions(data)


def _policy(missing: Any) -> str:
    """The missing-input policy: ``native`` is ``mask``."""
    return "mask" if missing in (None, "native") else str(missing)


def _uses(strategy: Any, feature: str) -> bool:
    """Whether ``strategy`` declares ``feature`` (``uses_quality``, ``uses_augmented_rows``)."""
    return bool(getattr(strategy, feature, False))


def _transform_with(preprocessors: Mapping[str, Any], table: MultimodalTable, *, quality: bool) -> Any:
    """Every input of ``table`` preprocessed (an :class:`~modalfuse._inputdata.InputData`), with each input's
    per-row quality scores when ``quality``."""
    from modalfuse._inputdata import InputData

    data = {name: prep.transform(table) for name, prep in preprocessors.items()}
    scores = {name: prep.quality(table) for name, prep in preprocessors.items()} if quality else None
    return InputData(data, quality=scores)


def _augmented_rows(
    table: MultimodalTable, preprocessors: Mapping[str, Any], params: Mapping[str, Any], quality: bool
) -> Any:
    """Corrupted copies of training rows (``train_corruptions``), preprocessed; None without any."""
    from modalfuse._corruptions import corrupt_rows, parse_corruptions
    from modalfuse._inputdata import AugmentedRows

    if not params["train_corruptions"]:
        return None
    rows, corrupted = corrupt_rows(table, params["train_corruptions"], seed=params["seed"])
    if not len(rows):
        return None
    touched = {spec.input for spec in parse_corruptions(params["train_corruptions"], table.inputs)}
    inputs = tuple(name for name in preprocessors if name in touched)
    return AugmentedRows(rows, _transform_with(preprocessors, corrupted, quality=quality), inputs)


def _complete_rows(
    table: MultimodalTable, inputs: list[str], sample_weight: Any
) -> tuple[MultimodalTable, Any]:
    """``missing="drop"``: the rows where every input is present (and their sample weights)."""
    complete = np.logical_and.reduce([table.mask(n) for n in inputs]) if inputs else np.ones(len(table), bool)
    if not complete.any():
        raise SchemaError(
            f"{table.name}: missing='drop' trains on the rows where every input ({', '.join(inputs)}) is present, "
            "and no training row has them all; use missing='mask', 'fill' or 'generate'"
        )
    weights = None if sample_weight is None else np.asarray(sample_weight)[complete]
    return table.take(np.flatnonzero(complete)), weights


def _input_models(strategy: Any) -> Any:
    """The per-input models a strategy holds (late fusion and the unimodal baselines themselves, a joint
    head's shared encoders), or None (``cca``, ``linear``, end-to-end heads)."""
    from modalfuse.fusion._early import NeuralFusion
    from modalfuse.fusion._late import _PerInputModels

    if isinstance(strategy, _PerInputModels):
        return strategy
    if isinstance(strategy, NeuralFusion) and not strategy.state.get("end_to_end", True):
        return strategy.encoders_
    return None


def _fallback(inputs: Mapping[str, Any], n_classes: int, config: Any, inner_folds: int) -> Any:
    """An unfitted ``late:product`` over ``inputs``: the per-input models ``missing="drop"`` falls back on."""
    from modalfuse.fusion._base import get_fusion

    return get_fusion("late:product", inner_folds=inner_folds).setup(inputs, n_classes, config)


#: Prefix of the fallback models' tensors in ``weights.safetensors`` (``missing="drop"``).
FALLBACK_PREFIX = "__fallback__."


def _product_of_present(models: Any, data: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The renormalised product of the per-input probabilities of the inputs present in each row (the
    models' class prior where none is)."""
    from scipy.special import softmax

    probs, masks = models._per_input(data)
    prior = np.log(np.asarray(models.prior_, dtype=np.float64) + 1e-6)
    logits = np.tile(prior, (len(next(iter(data.values()))[1]), 1))
    present = np.zeros(len(logits), bool)
    total = np.zeros_like(logits)
    for n, p in probs.items():
        total += masks[n][:, None] * np.log(p + 1e-6)
        present |= masks[n]
    logits[present] = total[present]
    return softmax(logits, axis=1)


class MultimodalClassifier(ClassifierMixin, BaseEstimator):
    """Classify rows of a multimodal table with a chosen fusion strategy.

    Parameters
    ----------
    fusion : str, default="late"
        A registered strategy (see :func:`modalfuse.list_fusions`): ``"late"`` (weighted), ``"late:mean"``,
        ``"late:weighted"``, ``"late:stacking"``, ``"late:product"``, ``"late:confidence"``, ``"early"``,
        ``"tensor"``, ``"lowrank"``, ``"attention"``, ``"shared"``, ``"cca"``, ``"linear"`` (the tuned linear
        baseline) or ``"unimodal:<input>"``.
    encoders : dict, optional
        Input, column or modality -> encoder name (see :func:`modalfuse.list_encoders`); unnamed inputs get
        the strategy's declared default for their modality (``linear``: classical features), else the
        modality's default trainable encoder.
    modalities : dict, optional
        Column -> modality overrides used when ``fit`` is given a DataFrame.
    preprocess : dict, optional
        Input, column or modality -> preprocessing options (e.g. ``{"audio": {"n_mels": 64}}``).
    epochs : int, default=20
        Passes over the training rows of every network (>= 1).
    min_steps : int, default=200
        Fewest optimiser updates of a network (>= 0): on a small table, ``epochs`` passes over the rows
        would leave a network with a handful of updates, so it gets more passes instead.
    batch_size : int, default=64
        Rows per optimiser step (>= 2: a one-row batch is skipped, as BatchNorm needs two rows).
    learning_rate : float, default=3e-3
        AdamW's peak learning rate of the one-cycle schedule (> 0).
    weight_decay : float, default=1e-4
        AdamW's weight decay (>= 0).
    modality_dropout : float, default=0.0
        Probability in [0, 1) of hiding each present input of a training row (never all of them), so the
        model learns to cope with missing modalities.
    augment : bool, default=True
        Train-time augmentation (image affine jitter, SpecAugment, token dropout).
    recombine_ratio : float, default=0.0
        Multimodal data generation for neural strategies: the share in [0, 1] of training rows per batch
        whose inputs are each taken from another row of the same class (the AV-MNIST construction).
    mixup_alpha : float, default=0.0
        Multimodal mixup for neural strategies: when > 0, rows are interpolated with a Beta(alpha, alpha)
        weight, all inputs' embeddings and the labels alike.
    inner_folds : int, default=3
        Folds (>= 1) for the cross-fitted per-input models shared by the unimodal baselines, late fusion and
        (unless ``fusion_options={"end_to_end": True}``) the joint strategies, which train one head per
        fold. Given only to strategies that declare it (not ``cca``).
    hidden : int, default=128
        Width of the fused head (>= 0; 0 is a linear head where the strategy allows it, ``lowrank`` needs
        >= 1). Given only to strategies that declare it (``early``, ``tensor``, ``lowrank``, ``shared``).
    fusion_options : dict, optional
        Further options of the strategy, e.g. ``{"shared_dim": 32}`` for ``shared``, ``{"rank": 8}`` for
        ``lowrank``, ``{"end_to_end": True}`` for a joint strategy that trains its own encoders; they win
        over ``inner_folds`` and ``hidden``. Each strategy declares its options
        (``get_fusion(name).option_table()``); an unknown one is an error that suggests the closest name.
    random_state : int, default=0
        Seeds every random choice (0 <= random_state < 2**31): the same data and parameters give the same
        model.
    seed : int, optional
        Alias of ``random_state`` (kept for older code and saved models); when given it is used, and a
        ``random_state`` other than 0 that differs from it is an error.
    class_weight : None, "balanced" or dict, default=None
        Weight of each class in every fit (network losses, classical linear fits, late-fusion combiners,
        stacking): a dict label -> weight (labels left out weigh 1), or ``"balanced"``, which weighs each
        class by ``n_rows / (n_classes * rows of the class)`` so a minority class is not ignored. Multiplies
        ``sample_weight``.
    device : str, default="cpu"
        Torch device; it must be available when fitting. A model saved on a device that is not available
        loads on the CPU, with a warning.
    n_threads : int, optional
        Torch CPU threads during ``fit``, ``predict`` and ``transform_inputs``; the caller's setting is
        restored afterwards. Default: ``OMP_NUM_THREADS`` when set, else 1, the fastest setting measured
        for these small networks, quiet or beside another busy process (``benchmarks/threads.py``).
    missing : {"mask", "fill", "generate", "drop"}, default="mask"
        How a missing input (a modality absent from a row) is handled, in training and prediction alike:

        - ``"mask"`` (or ``"native"``): natively by the strategy: late fusion combines the inputs present,
          the joint heads see presence masks, the linear baseline presence indicators;
        - ``"fill"``: the input gets its mean embedding over training rows (per inner fold's encoder) and
          counts as present;
        - ``"generate"``: the input's embedding is predicted from the embeddings of the inputs present in
          the row (a ridge regression fitted on training rows; the fill where no other input is present);
        - ``"drop"``: the strategy is trained on the complete training rows only (every input present); a
          row to predict that lacks an input gets the product of the per-input models of the inputs it has
          (the strategy's own per-input models, or ones trained on the same complete rows).

        ``fill`` and ``generate`` work on the shared per-input encoders: with the unimodal baselines, late
        fusion and the joint strategies (not ``cca``, ``linear`` or ``end_to_end``). Everything is fitted on
        the training rows only.
    train_corruptions : str or list of str, optional
        Training-time corruption as augmentation, in the syntax of ``modalfuse robustness --corrupt``
        (``"audio:noise=20,10,5,0,-5@0.5"``: white noise at one of those SNRs, drawn per row, on half of
        the training rows; see :func:`modalfuse.list_corruptions`). Each per-input network of a corrupted
        input (the unimodal baselines', late fusion's, the joint strategies' shared encoders) trains on its
        training rows and the corrupted copies of those rows, so it learns to read a damaged input. The
        copies are then predicted out of fold, like the rows themselves, by the networks that never saw
        their originals, and added to the rows the combiners of late fusion and the joint heads are fitted
        on, so these learn what a damaged input is still worth; ``late:quality`` needs this to learn
        anything from quality scores when the training rows are clean. ``cca``, ``linear`` and
        ``end_to_end`` joint networks ignore it. Seeded by ``random_state``.
    verbose : int, default=0
        Progress lines, logged at INFO on the standard ``logging`` logger ``modalfuse.progress``: 0 none
        (they are logged at DEBUG), 1 the fit and each network trained (its seconds, and its held-out
        accuracy where it has held-out rows), 2 also each epoch (mean training loss). During the call the
        ``modalfuse`` logger is set to INFO if you gave it no level; if logging is not configured at all
        (no handler), the lines are printed to standard error as ``[modalfuse] ...``; otherwise your
        handlers and levels decide, as for any library.
    backend : {"serial", "processes", "ray"}, optional
        Where ``fit`` trains the per-input networks (each input's network per inner fold is one task):
        here one after another (``None`` or ``"serial"``), in local worker processes, or as Ray tasks
        (the ``modalfuse[ray]`` extra; the cluster at ``RAY_ADDRESS``, else Ray started here). Each task
        uses one CPU and one torch thread; the same seed gives the same model on every backend. Inside
        :func:`modalfuse.compare` run on a parallel backend, the folds are the tasks and each fit is serial.

    All hyperparameters are checked at the start of :meth:`fit`, before anything is decoded or trained: a
    value of the wrong type or out of range is an :class:`~modalfuse.OptionError` that gives the valid
    range; an unknown fusion, encoder or option is an :class:`~modalfuse.UnknownNameError` or
    :class:`~modalfuse.OptionError` that suggests the closest name.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    schema_ : Schema
    preprocessors_ : dict[str, Preprocessor]
    fusion_ : FusionStrategy
    fallback_ : FusionStrategy or None
        With ``missing="drop"``, the per-input models (a ``late:product``) that predict rows lacking an
        input when the strategy has no per-input models of its own; None otherwise.
    reused_fit_seconds_ : float
        Training seconds of models this fit took from the active cache (see :func:`modalfuse.using_cache`)
        instead of training them: per-input models an earlier fit on the same rows and settings trained.
        Add it to the fit time for what the fit costs on its own.

    Examples
    --------
    >>> clf = MultimodalClassifier(fusion="late:stacking").fit(table)  # doctest: +SKIP
    >>> clf.predict_proba(new_rows)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        fusion: str = "late",
        encoders: Mapping[str, str] | None = None,
        modalities: Mapping[str, str] | None = None,
        preprocess: Mapping[str, dict] | None = None,
        epochs: int = 20,
        min_steps: int = 200,
        batch_size: int = 64,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        modality_dropout: float = 0.0,
        augment: bool = True,
        recombine_ratio: float = 0.0,
        mixup_alpha: float = 0.0,
        inner_folds: int = DEFAULT_INNER_FOLDS,
        hidden: int = DEFAULT_HIDDEN,
        fusion_options: Mapping[str, Any] | None = None,
        random_state: int = 0,
        seed: int | None = None,
        class_weight: str | Mapping[Any, float] | None = None,
        device: str = "cpu",
        n_threads: int | None = None,
        verbose: int = 0,
        backend: str | None = None,
        missing: str = "mask",
        train_corruptions: str | list[str] | None = None,
    ) -> None:
        self.fusion = fusion
        self.encoders = encoders
        self.modalities = modalities
        self.preprocess = preprocess
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.modality_dropout = modality_dropout
        self.augment = augment
        self.recombine_ratio = recombine_ratio
        self.mixup_alpha = mixup_alpha
        self.inner_folds = inner_folds
        self.hidden = hidden
        self.fusion_options = fusion_options
        self.random_state = random_state
        self.seed = seed
        self.class_weight = class_weight
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.backend = backend
        self.missing = missing
        self.train_corruptions = train_corruptions

    # ------------------------------------------------------------------------------------------ helpers
    def _lookup(self, mapping: Mapping[str, Any] | None, name: str, modality: str, columns: list[str]) -> Any:
        if not mapping:
            return None
        for key in (name, *columns, modality):
            if key in mapping:
                return mapping[key]
        return None

    def _train_config(self, params: Mapping[str, Any] | None = None) -> Any:
        """The training settings from the checked hyperparameters ``params`` (checked here if None)."""
        from modalfuse._params import check_scalar_params
        from modalfuse.fusion._train import TrainConfig

        p = check_scalar_params(self.get_params()) if params is None else params
        return TrainConfig(
            epochs=p["epochs"],
            min_steps=p["min_steps"],
            batch_size=p["batch_size"],
            learning_rate=p["learning_rate"],
            weight_decay=p["weight_decay"],
            modality_dropout=p["modality_dropout"],
            augment=p["augment"],
            recombine_ratio=p["recombine_ratio"],
            mixup_alpha=p["mixup_alpha"],
            seed=p["seed"],
            device=p["device"],
        )

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """The settings of one call: torch's threads (restored afterwards) and the progress verbosity."""
        from modalfuse._progress import verbosity
        from modalfuse._threads import torch_threads

        with torch_threads(self.n_threads), verbosity(self.verbose), self._backend_context():
            yield

    def _backend_context(self) -> contextlib.AbstractContextManager[Any]:
        """``using_backend(self.backend)`` when one is set; otherwise the caller's backend stays."""
        from modalfuse._backend import using_backend

        return contextlib.nullcontext() if self.backend is None else using_backend(self.backend)

    def _check_fitted(self) -> None:
        if not hasattr(self, "fusion_"):
            raise NotFittedError("this MultimodalClassifier is not fitted yet: call fit first")

    def _table_for_predict(self, X: Any) -> MultimodalTable:
        """``X`` as a table with exactly the fitted columns and modalities.

        A fitted column absent from ``X`` (or empty in every row) is a modality missing in every row;
        columns the model was not fitted on are ignored. ``X`` without any of the fitted columns is a
        :class:`SchemaError`: its predictions would be the class prior, whatever the rows hold.
        """
        self._check_fitted()
        fitted = dict(self.schema_.columns)
        if isinstance(X, MultimodalTable | pd.DataFrame):
            _check_has_inputs(X, fitted)
        if isinstance(X, MultimodalTable):
            table = X
        elif isinstance(X, pd.DataFrame):
            frame = X.reset_index(drop=True)
            usable = [c for c in fitted if c in frame.columns and not frame[c].map(is_missing).all()]
            if usable:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = read_table(frame[usable], modalities={c: fitted[c] for c in usable}, decode=False)
            else:
                table = MultimodalTable(
                    pd.DataFrame(index=frame.index), schema=Schema({}), present={}, name="dataframe"
                )
        else:
            raise TypeError(f"expected a MultimodalTable or a pandas DataFrame, got {type(X).__name__}")
        if table.schema.columns == fitted and list(table.frame.columns) == list(fitted):
            return table
        frame = pd.DataFrame(index=table.frame.index)
        present: dict[str, np.ndarray] = {}
        for col, modality in fitted.items():
            if col not in table.frame.columns:
                frame[col] = pd.Series([None] * len(table), index=frame.index, dtype=object)
                present[col] = np.zeros(len(table), bool)
            elif table.schema.columns.get(col) == modality:
                frame[col] = table.frame[col]
                present[col] = table.present[col]
            else:  # read with another modality: judge presence again under the fitted one
                frame[col] = table.frame[col]
                present[col] = np.array([_usable(v, modality) for v in table.frame[col]], dtype=bool)
        return table.with_cells(frame, present, Schema(fitted))

    def _transform(self, table: MultimodalTable) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return _transform_with(self.preprocessors_, table, quality=_uses(self.fusion_, "uses_quality"))

    def transform_inputs(self, X: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each fitted input of ``X`` as the strategy sees it: preprocessed arrays and presence masks.

        Parameters
        ----------
        X : MultimodalTable or DataFrame
            Rows to transform; columns are matched to the fitted ones as in :meth:`predict_proba`.

        Returns
        -------
        dict of str to (ndarray, ndarray)
            Input name -> ``(array, mask)``: the array has shape ``(n_rows, ...)`` (e.g. ``(n_rows, C,
            H, W)`` for images, ``(n_rows, 1, n_mels, frames)`` for audio, ``(n_rows, n_features)`` for
            tabular), zeros where the input is missing; the mask, shape ``(n_rows,)`` bool, says where
            it is present.
        """
        table = self._table_for_predict(X)
        with self._running():
            return self._transform(table)

    # ---------------------------------------------------------------------------------------------- fit
    def fit(
        self, X: Any, y: Any = None, groups: Any = None, sample_weight: Any = None
    ) -> MultimodalClassifier:
        """Fit on a :class:`MultimodalTable` (labels and groups from the table) or a DataFrame plus ``y``.

        Everything learned from data (sizes, sample rates, vocabularies, scalers, networks, fusion weights)
        is learned from these rows only. Every hyperparameter is checked first, before anything is decoded
        or trained. Decoded media, features and per-input models come from the active cache
        (:func:`modalfuse.using_cache`) when an earlier call computed them.

        Parameters
        ----------
        X : MultimodalTable or pandas.DataFrame
            The training rows.
        y : array-like of shape (n_rows,), optional
            Labels (default: the table's).
        groups : array-like of shape (n_rows,), optional
            Groups for the inner folds (default: the table's).
        sample_weight : array-like of shape (n_rows,), optional
            Non-negative weight of each row in every fit (times ``class_weight``; only the ratios matter).

        Returns
        -------
        self

        Raises
        ------
        OptionError, UnknownNameError
            A hyperparameter of the wrong type, out of range or naming something unknown.
        SchemaError
            No labels, a single class, or no input present in any training row.
        TrainingError
            A network made no optimiser step.
        """
        params, strategy = self._check_params()
        table = _as_table(X, y, groups, self.modalities)
        if table.y is None:
            raise SchemaError(f"{table.name}: no labels: read the table with label=... or pass y")
        with self._running():
            return self._fit(table, params, strategy, sample_weight)

    def _fit(
        self, table: MultimodalTable, params: Mapping[str, Any], strategy: Any, sample_weight: Any
    ) -> MultimodalClassifier:
        """``fit`` on a labelled table with checked ``params`` and an unfitted ``strategy``, under the
        call's settings (see :meth:`_running`)."""
        from modalfuse import _progress as progress
        from modalfuse._corruptions import parse_corruptions
        from modalfuse.fusion._base import InputInfo

        start = time.perf_counter()
        parse_corruptions(params["train_corruptions"], table.inputs)  # inputs and levels, before any training
        planned = self._plan_inputs(table)
        if params["missing"] == "drop":
            table, sample_weight = _complete_rows(table, list(planned), sample_weight)
        classes, y_int = np.unique(table.y, return_inverse=True)
        if len(classes) < 2:
            raise SchemaError(f"{table.name}: the training rows hold a single class ({classes[0]!r})")
        y_int = y_int.astype(np.int64)
        weights = self._row_weights(strategy, sample_weight, classes, y_int)
        # everything is built in locals and set at the end, so a failed (re)fit leaves no mixed state
        preprocessors = {name: prep.fit(table) for name, (_, prep) in planned.items()}
        data = _transform_with(preprocessors, table, quality=_uses(strategy, "uses_quality"))
        if _uses(strategy, "uses_augmented_rows"):
            data.augmented = _augmented_rows(table, preprocessors, params, _uses(strategy, "uses_quality"))
        inputs = {
            name: InputInfo(
                name,
                planned[name][0],
                tuple(data[name][0].shape[1:]),
                getattr(prep, "vocab_size", None),
                prep.network_options(),
            )
            for name, prep in preprocessors.items()
        }
        strategy.setup(inputs, len(classes), self._train_config(params))
        progress.emit(
            "fit_start",
            f"fitting {self.fusion} on {len(table)} rows, inputs {', '.join(inputs) or '(none)'}",
            fusion=self.fusion,
            n_rows=len(table),
            inputs=list(inputs),
        )
        if weights is None:
            strategy.fit(data, y_int, table.groups)
        else:
            strategy.fit(data, y_int, table.groups, sample_weight=weights)
        fallback = None
        if params["missing"] == "drop" and _input_models(strategy) is None:
            fallback = _fallback(inputs, len(classes), self._train_config(params), params["inner_folds"])
            fallback.fit(data, y_int, table.groups, sample_weight=weights)
        self.fallback_ = fallback
        self.classes_ = classes
        self.schema_ = Schema(dict(table.schema.columns))
        self.preprocessors_ = preprocessors
        self.inputs_ = inputs
        self.fusion_ = strategy
        self.reused_fit_seconds_ = float(getattr(strategy, "reused_fit_seconds_", 0.0))
        seconds = time.perf_counter() - start
        progress.emit(
            "fit_end", f"fitted {self.fusion} in {seconds:.1f}s", fusion=self.fusion, seconds=seconds
        )
        return self

    def _check_params(self) -> tuple[dict[str, Any], Any]:
        """Every hyperparameter checked (nothing read yet): the resolved scalar values and a new strategy.

        Raises :class:`~modalfuse.OptionError` / :class:`~modalfuse.UnknownNameError` naming the parameter.
        """
        from modalfuse._params import (
            check_class_weight,
            check_mappings,
            check_scalar_params,
            check_train_corruptions,
            device_error,
            make_strategy,
        )

        params = check_scalar_params(self.get_params())
        params["missing"] = _policy(params.get("missing"))
        params["train_corruptions"] = check_train_corruptions(self.train_corruptions)
        problem = device_error(params["device"])
        if problem is not None:
            raise OptionError(
                f"MultimodalClassifier: parameter 'device' {params['device']!r} is not usable here ({problem}); "
                "use 'cpu' or an available accelerator"
            )
        check_mappings(self.encoders, self.preprocess, self.fusion_options, self.modalities)
        check_class_weight(self.class_weight)
        return params, make_strategy(self.fusion, self.fusion_options, params)

    def _plan_inputs(self, table: MultimodalTable) -> dict[str, tuple[str, Any]]:
        """Input -> (encoder name, unfitted preprocessor) for the inputs to learn from, every encoder and
        preprocess option checked against the table's inputs before anything is decoded."""
        from modalfuse.encoders._prep import make_preprocessor
        from modalfuse.encoders._registry import default_encoder, get_encoder
        from modalfuse.fusion._base import default_encoders_of

        self._check_input_keys(table)
        strategy_encoders = default_encoders_of(self.fusion)  # e.g. classical features for "linear"
        base, _, only = self.fusion.partition(":")
        if base == "unimodal" and only not in table.inputs:
            raise UnknownNameError(
                "input", only, table.inputs, hint=f"fusion {self.fusion!r}; table {table.name!r}"
            )
        planned: dict[str, tuple[str, Any]] = {}
        for name, (modality, cols) in table.inputs.items():
            enc_name = self._lookup(self.encoders, name, modality, cols) or strategy_encoders.get(modality)
            spec = get_encoder(enc_name) if enc_name else default_encoder(modality)
            if spec.modality != modality:
                raise OptionError(
                    f"MultimodalClassifier: encoders: input {name!r} is {modality}, but encoder {spec.name!r} "
                    f"is for {spec.modality} (encoders for {modality}: {', '.join(_encoders_of(modality))})"
                )
            options = {
                **spec.preprocess_options,
                **(self._lookup(self.preprocess, name, modality, cols) or {}),
            }
            prep = make_preprocessor(spec.preprocessor, name, cols, **options)  # checks the options
            if (base == "unimodal" and name != only) or not table.mask(name).any():
                continue  # a baseline needs only its own input; an input no training row has is not learned
            planned[name] = (spec.name, prep)
        if not planned and base != "unimodal":
            raise SchemaError(f"{table.name}: no input is present in any training row")
        return planned

    def _check_input_keys(self, table: MultimodalTable) -> None:
        """Every key of ``encoders`` and ``preprocess`` is an input, a column or a modality of the table
        (or a modality name), so a misspelt key is an error rather than silently ignored."""
        from modalfuse.data._schema import MODALITIES

        known = {*table.inputs, *table.schema.columns, *MODALITIES, "tabular"}
        for param, mapping in (("encoders", self.encoders), ("preprocess", self.preprocess)):
            for key in mapping or {}:
                if key not in known:
                    raise UnknownNameError(
                        "input", key, [*table.inputs, *table.schema.columns], hint=f"a key of {param}"
                    )

    def _row_weights(
        self, strategy: Any, sample_weight: Any, classes: np.ndarray, y: np.ndarray
    ) -> np.ndarray | None:
        """The training rows' weights from ``class_weight`` and ``sample_weight`` (None: all 1)."""
        from modalfuse._params import row_weights, supports_sample_weight

        weights = row_weights(self.class_weight, sample_weight, classes, y)
        if weights is not None and not supports_sample_weight(strategy):
            raise OptionError(
                f"fusion {self.fusion!r} does not take sample weights (its fit has no sample_weight): "
                "fit it without class_weight and sample_weight"
            )
        return weights

    # ------------------------------------------------------------------------------------------ predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, float64 of shape (n_rows, n_classes), columns in ``classes_`` order; each
        row sums to 1.

        Warns :class:`~modalfuse.InputDriftWarning` when the rows differ from the training rows (see
        :meth:`predict_frame`, which also returns the full report).
        """
        return self._predict_checked(X)[1]

    def predict_frame(self, X: Any, *, id_column: str | None = None) -> pd.DataFrame:
        """Predictions as a table, with the input drift report in ``.attrs["drift"]``.

        Parameters
        ----------
        X : MultimodalTable or pandas.DataFrame
            Rows to predict.
        id_column : str, optional
            A column of ``X`` (of a DataFrame, or of a table's frame) identifying each row; it is copied
            into the result instead of ``row`` and is not treated as an input.

        Returns
        -------
        pandas.DataFrame of shape (n_rows, 2 + n_classes)
            In the order of ``X``'s rows: ``row`` (the row's position in ``X``; for a table, its row id) or
            the ``id_column`` values, ``prediction``, and ``p_<class>`` for each class of ``classes_``. For
            a DataFrame ``X`` the index is ``X``'s. ``.attrs["drift"]`` is a :class:`DriftReport` (missing,
            empty and extra columns, unseen categories, type changes, unusable cells).

        Warns
        -----
        InputDriftWarning
            With the report's one-line summary, when it finds drift.

        Raises
        ------
        SchemaError
            When ``X`` has none of the model's input columns, or no column ``id_column``.
        """
        ids = None
        if id_column is not None:
            ids, X = _split_id(X, id_column)
        table, proba, report = self._predict_checked(X, ignore=() if id_column is None else (id_column,))
        first = {id_column: ids} if id_column is not None else {"row": table.row_ids}
        out = pd.DataFrame(first)
        out["prediction"] = self.classes_[proba.argmax(1)] if len(proba) else self.classes_[:0]
        for i, c in enumerate(self.classes_):
            out[f"p_{c}"] = proba[:, i]
        if isinstance(X, pd.DataFrame):
            out.index = X.index
        out.attrs["drift"] = report
        return out

    def _predict_checked(
        self, X: Any, ignore: tuple[str, ...] = ()
    ) -> tuple[MultimodalTable, np.ndarray, DriftReport]:
        """Predict ``X``, report how it differs from the training rows and warn when it does."""
        table = self._table_for_predict(X)
        data, proba = self._predict(table)
        report = self._drift(X, table, data, ignore)
        if report.has_drift:
            warnings.warn(report.summary(), InputDriftWarning, stacklevel=3)
        return table, proba, report

    def _drift(
        self, X: Any, table: MultimodalTable, data: Mapping[str, tuple[np.ndarray, np.ndarray]], ignore: tuple
    ) -> DriftReport:
        raw = X.frame if isinstance(X, MultimodalTable) else X
        if isinstance(X, MultimodalTable):
            ignore = (*ignore, *(c for c in (X.label, X.group_column) if c))
        return input_drift(
            raw,
            fitted=dict(self.schema_.columns),
            categories=self._categories(),
            problems=[*table.problems, *self._undecoded(table, data)],
            usable=table.present,
            ignore=ignore,
        )

    def _categories(self) -> dict[str, list[str]]:
        """Categorical column -> the values the model has a category for."""
        out: dict[str, list[str]] = {}
        for prep in self.preprocessors_.values():
            state = (getattr(prep, "state", None) or {}).get("preprocessor") or {}
            for col, values in (state.get("categories") or {}).items():
                out[col] = [str(v) for v in values]
        return out

    def _undecoded(self, table: MultimodalTable, data: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list:
        """Media cells the table counts as present that the preprocessing could not decode."""
        from modalfuse.data._table import Problem

        out = []
        for name, (_, mask) in data.items():
            prep = self.preprocessors_[name]
            if prep.modality not in ("image", "audio") or len(prep.columns) != 1 or not len(mask):
                continue
            col = prep.columns[0]
            lost = np.flatnonzero(table.present[col] & ~np.asarray(mask, dtype=bool))
            out += [Problem(int(table.row_ids[i]), col, f"cannot decode this {prep.modality}") for i in lost]
        return out

    def _predict(self, table: MultimodalTable) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
        if len(table) == 0:
            empty = np.zeros(0, bool)
            return ({n: (np.zeros(0), empty) for n in self.preprocessors_}, np.zeros((0, len(self.classes_))))
        with self._running():
            data = self._transform(table)
            if not data:  # a baseline whose input no training row had: the training class prior
                return data, np.tile(np.asarray(self.fusion_.prior_, dtype=float), (len(table), 1))
            if _policy(self.missing) == "drop":
                return data, _as_probabilities(self._predict_dropping(data))
            return data, _as_probabilities(self.fusion_.predict_proba(data))

    def _predict_dropping(self, data: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """``missing="drop"``: the strategy on rows with every input, the product of the per-input models of
        the inputs present on the others."""
        from modalfuse._inputdata import take_rows

        complete = np.logical_and.reduce([np.asarray(m, bool) for _, m in data.values()])
        proba = np.zeros((len(complete), len(self.classes_)))
        if complete.any():
            proba[complete] = self.fusion_.predict_proba(take_rows(data, complete))
        if not complete.all():
            proba[~complete] = _product_of_present(self._fallback_models(), take_rows(data, ~complete))
        return proba

    def _fallback_models(self) -> Any:
        """The per-input models ``missing="drop"`` falls back on: the strategy's own, or ``fallback_``."""
        own = _input_models(self.fusion_)
        return own if own is not None else getattr(self, "fallback_", None)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, shape (n_rows,)."""
        proba = self.predict_proba(X)  # first: an unfitted estimator raises NotFittedError
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Accuracy on ``X`` (labels from the table, or ``y``)."""
        if y is None:
            if not isinstance(X, MultimodalTable) or X.y is None:
                raise SchemaError("score needs labels: pass y, or a table read with label=...")
            y = X.y
        return float(np.average(self.predict(X) == np.asarray(y), weights=sample_weight))

    @property
    def n_parameters_(self) -> int:
        """Number of fitted parameters (network weights) of the strategy."""
        self._check_fitted()
        return int(self.fusion_.n_parameters())

    def retrieve(
        self, X: Any, *, from_modality: str, to_modality: str, k: int = 5, gallery: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cross-modal retrieval in a fitted shared space.

        For each row of ``X``, embed its ``from_modality`` input and return the ``k`` rows of ``gallery``
        (default: ``X`` itself) whose ``to_modality`` embedding is closest (cosine similarity).

        Returns
        -------
        indices : ndarray of shape (n_rows, k)
            Positions in ``gallery``, best first; -1 where fewer than ``k`` gallery rows have the input.
        scores : ndarray of shape (n_rows, k)
            Cosine similarities.
        """
        self._check_fitted()
        retrieve = getattr(self.fusion_, "retrieve", None)
        if retrieve is None:
            raise ModalfuseError(
                f"fusion {self.fusion!r} has no shared space to retrieve from; "
                "fit with fusion='shared' or 'cca'"
            )
        for name in (from_modality, to_modality):
            if name not in self.inputs_:
                raise SchemaError(f"unknown input {name!r}; inputs are {list(self.inputs_)}")
        query = self.transform_inputs(X)
        pool = query if gallery is None else self.transform_inputs(gallery)
        with self._running():
            return retrieve(query, pool, from_input=from_modality, to_input=to_modality, k=k)

    def shapley_values(
        self,
        X: Any,
        *,
        method: str = "auto",
        n_permutations: int = 64,
        interactions: bool = True,
        seed: int = 0,
    ) -> Any:
        """Modality Shapley values of every row of ``X``, for every class (see :mod:`modalfuse.explain`).

        The players are the strategy's inputs; a coalition's value is the prediction with the inputs
        outside it masked, as missing inputs are. The encoders run once per row: every coalition costs
        a fusion-head evaluation (late fusion recombines the inputs' probabilities; neural heads read the
        embeddings computed once).

        Parameters
        ----------
        X : MultimodalTable or DataFrame
            Rows to explain; columns are matched to the fitted ones as in :meth:`predict_proba`.
        method : {"auto", "exact", "permutation"}, default="auto"
            Exact over all 2^M coalitions up to 10 inputs, sampled permutations beyond.
        n_permutations : int, default=64
            The sampling budget (permutations, in antithetic pairs) when sampling.
        interactions : bool, default=True
            Also compute the pairwise Shapley interaction index (exact values only).
        seed : int, default=0
            Seed of the sampled permutations.

        Returns
        -------
        ShapleyValues
            ``values`` (N, M, K) in probability units and ``values_log_odds`` in log-odds, ``base``
            (nothing present) and ``proba`` (everything present) with ``base + values.sum(1) == proba``
            exactly (to rounding), 0 for an input the row lacks; ``interactions`` (N, M, M, K).
        """
        from modalfuse.explain import strategy_shapley

        table = self._table_for_predict(X)
        with self._running():
            data = self._transform(table) if len(table) else {}
            return strategy_shapley(
                self.fusion_,
                data,
                self.classes_,
                len(table),
                method=method,
                n_permutations=n_permutations,
                interactions=interactions,
                seed=seed,
            )

    def explain(
        self, X: Any, method: str = "shapley", *, target: Any = None, interactions: bool = False
    ) -> pd.DataFrame:
        """Per-row prediction and each input's contribution to it.

        Parameters
        ----------
        X : MultimodalTable or DataFrame
            Rows to explain.
        method : {"shapley", "occlusion", "native"}, default="shapley"
            ``shapley``: modality Shapley values (see :meth:`shapley_values`), efficient: ``base`` plus
            the inputs' columns is ``value``, the explained class's probability. ``occlusion``: the drop in
            the predicted class's probability when the input alone is hidden (any strategy). ``native``:
            the strategy's own ``contributions`` (what ``explain`` gave before Shapley values: weighted
            log-evidence over the prior for late fusion, the logit share for ``linear``, occlusion for the
            joint strategies).
        target : class label or "all", optional
            With ``shapley``: the class explained (default: each row's predicted class); ``"all"`` gives
            one line per row and class.
        interactions : bool, default=False
            With ``shapley``: add ``<a>*<b>`` columns, the pairwise Shapley interaction index (positive:
            the inputs cooperate; negative: they duplicate each other).

        Returns
        -------
        pandas.DataFrame
            ``prediction``, ``probability`` and one column per input, 0 where the input is missing (larger
            means the input pushed the row toward the class more); ``shapley`` adds ``class``, ``value``,
            ``base``, the same in log-odds (``value_log_odds``, ``base_log_odds``, ``<input>:log_odds``)
            and, for sampled values, standard errors (``<input>:se``); see
            :meth:`ShapleyValues.to_frame <modalfuse.explain.ShapleyValues.to_frame>`.
        """
        if method == "shapley":
            return self.shapley_values(X, interactions=interactions).to_frame(
                target, interactions=interactions
            )
        if method not in ("occlusion", "native"):
            raise UnknownNameError("explanation method", str(method), ["shapley", "occlusion", "native"])
        table = self._table_for_predict(X)
        data, proba = self._predict(table)
        out = pd.DataFrame({"prediction": self.classes_[proba.argmax(1)], "probability": proba.max(1)})
        if not len(proba):
            contrib: dict[str, np.ndarray] | None = {n: np.zeros(0) for n in data}
        else:
            with self._running():
                contrib = _contributions(self.fusion_, data, proba, method) if data else {}
        if contrib is None:
            raise ModalfuseError(
                f"fusion {self.fusion!r} has no native explanation; use explain(X) (Shapley values) or "
                "method='occlusion'"
            )
        for name, values in contrib.items():
            out[name] = values
        return out

    # -------------------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to folder ``path`` as ``model.json`` + ``weights.safetensors``.

        The folder is written beside its destination and moved into place, so an interrupted save never
        leaves a half-written model where a complete one was.
        """
        from safetensors.torch import save_file

        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "params": {k: _jsonable(v) for k, v in self.get_params().items()},
            "classes": [_jsonable(c) for c in self.classes_],
            "schema": self.schema_.to_dict(),
            "inputs": {n: i.to_dict() for n, i in self.inputs_.items()},
            "preprocessors": {n: p.to_dict() for n, p in self.preprocessors_.items()},
            "fusion": {"name": self.fusion, "options": self.fusion_.options, "state": self.fusion_.state},
        }
        fallback = getattr(self, "fallback_", None)
        if fallback is not None:
            doc["fallback"] = {"name": "late:product", "options": fallback.options, "state": fallback.state}
        if path.exists() and not _replaceable(path):
            raise ModalfuseError(
                f"{path}: exists and is not a saved modalfuse model; refusing to overwrite it "
                "(choose a new or empty folder)"
            )
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
        tmp.mkdir()  # not mkdtemp, whose 0700 would outlive the move: the folder keeps the user's umask
        try:
            (tmp / "model.json").write_text(json.dumps(doc, indent=1, default=_jsonable))
            tensors = {k: v.contiguous() for k, v in self.fusion_.tensors().items()}
            if fallback is not None:
                tensors.update({FALLBACK_PREFIX + k: v.contiguous() for k, v in fallback.tensors().items()})
            save_file(tensors, str(tmp / "weights.safetensors"), metadata={"format": _FORMAT})
            # safetensors writes 0600: give the weights the permissions model.json got from the umask
            os.chmod(tmp / "weights.safetensors", (tmp / "model.json").stat().st_mode & 0o777)
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
                os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                if old is not None:
                    os.replace(old, path)  # put the previous model back
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MultimodalClassifier:
        """Load a model saved by :meth:`save`. Reads JSON and safetensors only; executes no code from the files.

        Every field of ``model.json`` is checked against what the model needs (types, known names, declared
        options, and that inputs, schema, preprocessors and weights agree); tensors are loaded on the CPU,
        and a model saved for a device that is not available here is loaded on the CPU with a warning.
        Files written by older versions load: missing parameters and options get their defaults, options a
        strategy or preprocessor no longer declares are dropped.

        Raises
        ------
        ModelFileError
            One line naming the file and the field that is missing, wrong or inconsistent.
        """
        from modalfuse._model_file import load_model

        return load_model(cls, path)
