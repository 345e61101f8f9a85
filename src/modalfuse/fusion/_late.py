"""Late fusion: one model per input, trained on its own, predictions combined; and unimodal baselines.

Each input's model is a *cross-fitted ensemble*: the training rows are split into ``inner_folds`` folds
(grouped when groups are known, so a speaker's rows never inform their own out-of-fold prediction); one
network is trained per fold on the other folds. Their predictions on held-out folds are the out-of-fold
(OOF) probabilities on which the combiners are fitted, and at test time the input's probability is the mean
of its networks. Unimodal baselines use exactly these per-input models, so comparisons are like for like,
and the joint strategies (:class:`~modalfuse.fusion.NeuralFusion`, unless ``end_to_end``) train their heads
on these networks' embeddings of each fold's held-out rows. The folds are drawn over all training rows, so
fold ``k``'s held-out rows are unseen by every input's network ``k``.

The per-input models are always trained plainly: ``TrainConfig.mixup_alpha``, ``recombine_ratio`` (which
make *joint* training rows) and ``modality_dropout`` are set to 0 for them, so a unimodal baseline never
depends on those options and the cached per-input models are shared by strategies that differ only in them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar
from scipy.special import softmax

from modalfuse import _progress as progress
from modalfuse._backend import active_backend
from modalfuse._cache import active_cache
from modalfuse._errors import OptionError
from modalfuse._inputdata import AugmentedRows, InputData, augmented_of, copies_of, quality_of
from modalfuse._options import DEFAULT_INNER_FOLDS, Option
from modalfuse.fusion._base import Data, FusionStrategy, n_rows_of, own_method, register_fusion
from modalfuse.fusion._missing import TENSOR_PREFIX, EmbeddingImputer
from modalfuse.fusion._train import FusionNet, TrainConfig, predict_logits, seeded, train_network

__all__ = ["INNER_FOLDS_OPTION", "MISSING_OPTION", "LateFusion", "UnimodalFusion", "inner_splits"]

_EPS = 1e-6

#: The ``inner_folds`` option of every strategy built on the cross-fitted per-input models.
INNER_FOLDS_OPTION = Option(
    DEFAULT_INNER_FOLDS,
    "int",
    "folds of the cross-fitted per-input models (1: one model per input, no out-of-fold predictions)",
    low=1,
)

#: The ``missing`` option of every strategy built on the per-input encoders (see
#: :mod:`modalfuse.fusion._missing`); ``MultimodalClassifier(missing=...)`` sets it.
MISSING_OPTION = Option(
    "mask",
    "str",
    "a missing input: mask (handled natively), fill (its mean embedding), generate (its embedding "
    "predicted from the inputs present)",
    choices=("mask", "fill", "generate"),
)


def _take(weights: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """``weights[rows]``, or None without weights."""
    return None if weights is None else weights[rows]


def _mean_log_loss(p: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> float:
    """The (weighted) mean of ``-log p[i, y[i]]``."""
    return float(-np.average(np.log(p[np.arange(len(y)), y] + _EPS), weights=weights))


def inner_splits(
    y: np.ndarray, groups: np.ndarray | None, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner folds for cross-fitting: grouped when there are at least ``k`` groups, stratified otherwise."""
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    idx = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= k:
        return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(idx, y, groups))
    if np.bincount(y).min(initial=len(y)) >= k:
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, y))
    return list(KFold(k, shuffle=True, random_state=seed).split(idx))


def fit_linear(
    net: FusionNet,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    Cs: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0),
    sample_weight: np.ndarray | None = None,
) -> FusionNet:
    """Fit a classical encoder's linear classifier exactly: an L2-regularised multinomial logistic
    regression (scikit-learn, L-BFGS), its strength chosen among ``Cs`` by 3-fold log loss on these rows
    (plain ``C=1`` when a class has fewer than 3 rows), coefficients copied into the network's linear layer.
    ``sample_weight`` (one per row, optional) weighs the rows in the fit.

    Gradient descent at the learning rate suited to the trainable encoders barely moves a linear model on
    sparse, high-dimensional features (TF-IDF); the convex problem has an exact, fast, seed-free answer.
    Classes absent from ``y`` get a bias of -1e3 (probability ~0).
    """
    from sklearn.linear_model import LogisticRegression

    linear = [m for m in net.head.modules() if isinstance(m, torch.nn.Linear)]
    if (
        len(linear) != 1
        or len(net.encoders) != 1
        or any(True for _ in next(iter(net.encoders.values())).parameters())
    ):
        raise ValueError("fit_linear needs a single-input network whose only parameters are one linear layer")
    present = np.unique(y)
    coef = np.zeros((n_classes, X.shape[1]))
    intercept = np.full(n_classes, -1e3)
    if len(present) == 1:
        intercept[present[0]] = 0.0
    else:
        from sklearn.linear_model import LogisticRegressionCV

        X2 = X.reshape(len(X), -1)
        if np.bincount(y)[present].min() >= 3:
            with warnings.catch_warnings():  # scikit-learn 1.9 announces attribute changes we do not use
                warnings.simplefilter("ignore", FutureWarning)
                model = LogisticRegressionCV(Cs=list(Cs), cv=3, scoring="neg_log_loss", max_iter=1000).fit(
                    X2, y, sample_weight=sample_weight
                )
        else:
            model = LogisticRegression(C=1.0, max_iter=1000).fit(X2, y, sample_weight=sample_weight)
        if len(present) == 2:  # one row of coefficients: logit of present[1] against present[0]
            coef[present[1]], intercept[present[1]], intercept[present[0]] = (
                model.coef_[0],
                model.intercept_[0],
                0.0,
            )
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
    with torch.no_grad():
        linear[0].weight.copy_(torch.as_tensor(coef, dtype=linear[0].weight.dtype))
        linear[0].bias.copy_(torch.as_tensor(intercept, dtype=linear[0].bias.dtype))
    return net.eval()


#: How many recent predictions and embeddings an ensemble keeps (see :meth:`_Ensemble._remembered`).
_RECENT = 8


def _digest(*arrays: np.ndarray) -> tuple:
    """A key that changes with the content of ``arrays`` (BLAKE2 of their bytes, with dtypes and shapes)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return (h.hexdigest(),)


class _PerInputWork:
    """What coalitions of per-input models share: each input's probabilities (N, K; the prior where it is
    missing) and presence masks (N,)."""

    def __init__(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        n_rows: int,
        data: Data | None = None,
    ) -> None:
        self.probs, self.masks, self.n_rows, self.data = probs, masks, n_rows, data


class _Ensemble:
    """The cross-fitted networks of one input, with their OOF probabilities on the training rows.

    ``folds[i]`` is the inner fold whose held-out rows network ``i`` never saw (-1: trained on every
    present row, when the input could not be cross-fitted).
    """

    def __init__(
        self,
        nets: list[FusionNet],
        oof: np.ndarray,
        rows: np.ndarray,
        seconds: float = 0.0,
        folds: list[int] | None = None,
    ) -> None:
        self.nets = nets
        self.oof = oof  # (n_train, K), NaN where the input was missing
        self.rows = rows  # training rows where the input is present
        self.seconds = seconds  # wall time its training took
        self.folds = list(range(len(nets))) if folds is None else list(folds)
        self._embedded: dict[tuple[int, str], np.ndarray] = {}
        self._recent: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def _remembered(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, or its result for the same ``key`` among the last :data:`_RECENT` ones: the
        strategies sharing this ensemble (unimodal, every late combiner, the joint heads) predicting the
        same rows, as a robustness sweep makes them, run each network once per batch of rows."""
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key].copy()
        out = compute()
        self._recent[key] = out
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        return out.copy()

    def predict(self, data: Data, device: str) -> np.ndarray:
        def compute() -> np.ndarray:
            probs = [softmax(predict_logits(n, data, device=device), axis=1) for n in self.nets]
            return np.mean(probs, axis=0)

        return self._remembered(("predict", device, *(_digest(x, m) for x, m in data.values())), compute)

    def net_for(self, fold: int) -> FusionNet | None:
        """The network that did not see inner fold ``fold``'s held-out rows (the one trained on every row
        when the input was not cross-fitted), or None when no network was trained for that fold."""
        for f in (fold, -1):
            if f in self.folds:
                return self.nets[self.folds.index(f)]
        return None

    @torch.no_grad()
    def embed(
        self, fold: int, x: np.ndarray, *, device: str, cache_key: str | None = None, batch_size: int = 512
    ) -> np.ndarray | None:
        """Embeddings (N, dim) of ``x`` by the encoder of :meth:`net_for` ``(fold)``; None without one.

        With ``cache_key``, the result is kept on the ensemble (training-time embeddings, which every joint
        strategy fitted on these rows reads).
        """
        net = self.net_for(fold)
        if net is None:
            return None
        if cache_key is not None and (fold, cache_key) in self._embedded:
            return self._embedded[(fold, cache_key)]
        encoder = next(iter(net.encoders.values())).to(device).eval()

        def compute() -> np.ndarray:
            parts = [
                encoder(torch.from_numpy(np.ascontiguousarray(x[s : s + batch_size])).to(device))
                .cpu()
                .numpy()
                for s in range(0, len(x), batch_size)
            ]
            return np.concatenate(parts) if parts else np.zeros((0, getattr(encoder, "dim", 0)), np.float32)

        if cache_key is not None:
            self._embedded[(fold, cache_key)] = compute()
            return self._embedded[(fold, cache_key)]
        return self._remembered(("embed", fold, device, _digest(x)), compute)


def _input_only(data: Data, name: str) -> InputData:
    """``data`` cut down to input ``name``: its ``(X, mask)`` and its corrupted copies, if the corruptions
    changed it (what one of its networks trains on)."""
    copies = copies_of(data, name)
    augmented = None
    if copies is not None:
        rows, x, mask = copies
        augmented = AugmentedRows(rows, InputData({name: (x, mask)}), (name,))
    return InputData({name: data[name]}, augmented=augmented)


def _network_task(
    shared: tuple[_PerInputModels, np.ndarray, dict, np.ndarray | None],
    item: tuple[str, int, InputData],
) -> tuple[FusionNet, np.ndarray, float]:
    """One network of :meth:`_PerInputModels._train_on_backend`: the ``j``-th of input ``name``, whose
    arrays the task carries (:func:`_input_only`: a task receives its own input's arrays only)."""
    strategy, y, plans, sample_weight = shared
    name, j, data = item
    plan = plans[name]
    return strategy._train_network(name, data, y, plan[j], sample_weight, (j + 1, len(plan)))


class _PerInputModels(FusionStrategy):
    """Common part of unimodal and late fusion: fit/predict the per-input ensembles."""

    argument_name: ClassVar[str | None] = None
    OPTIONS: ClassVar[Mapping[str, Option]] = {"inner_folds": INNER_FOLDS_OPTION, "missing": MISSING_OPTION}

    @property
    def uses_quality(self) -> bool:
        """Whether ``fit`` and ``predict_proba`` read the rows' quality scores (``InputData.quality``)."""
        return False

    @property
    def uses_augmented_rows(self) -> bool:
        """``fit`` reads corrupted copies of training rows (``train_corruptions``): each network of an input
        the corruptions changed trains on the copies of its training rows too (see :meth:`_train_network`),
        and late fusion's combiners fit on the copies' out-of-fold predictions."""
        return True

    def _used_inputs(self) -> list[str]:
        return list(self.inputs)

    def _input_net(self, name: str) -> FusionNet:
        """A fresh single-input network: the input's encoder and a linear classifier."""
        return FusionNet(
            {name: self.inputs[name].build()},
            self.n_classes,
            hidden=0 if not self.inputs[name].spec.trainable else 1,
        )

    def _input_config(self) -> TrainConfig:
        """The training settings of the per-input models: the strategy's, without the joint-row options
        (mixup, recombination, modality dropout), which have no meaning for a single input and would
        split the cache."""
        return dataclasses.replace(self.config, mixup_alpha=0.0, recombine_ratio=0.0, modality_dropout=0.0)

    def _key(
        self,
        name: str,
        data: Data,
        y: np.ndarray,
        groups: np.ndarray | None,
        sample_weight: np.ndarray | None = None,
    ) -> str:
        """Content hash of everything the input's ensemble depends on: arrays, labels, groups, row
        weights, settings."""
        h = hashlib.blake2b(digest_size=20)
        x, mask = data[name]
        arrays = [x, mask, y, np.asarray([] if groups is None else groups, dtype=str)]
        if sample_weight is not None:  # unweighted fits keep the keys they always had
            arrays.append(np.asarray(sample_weight, np.float64))
        copies = copies_of(data, name)
        if copies is not None:  # fits without corrupted copies of this input keep their keys too
            arrays.extend(copies)
        for arr in arrays:
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(arr.tobytes())
        h.update(
            json.dumps(
                [
                    self.inputs[name].to_dict(),
                    repr(self._input_config()),
                    self.n_classes,
                    self.options["inner_folds"],
                ],
                sort_keys=True,
                default=str,
            ).encode()
        )
        return h.hexdigest()

    def _splits(self, y: np.ndarray, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The inner folds, over *all* training rows, so one fold's held-out rows are unseen by every
        input's network for that fold (joint heads train on them). One split of every row, holding out
        none, when ``inner_folds < 2``."""
        k = min(self.options["inner_folds"], len(y))
        if k < 2:
            return [(np.arange(len(y)), np.zeros(0, np.int64))]
        return inner_splits(y, groups, k, self.config.seed)

    def _fit_input(
        self,
        name: str,
        data: Data,
        y: np.ndarray,
        groups: np.ndarray | None,
        splits: list[tuple[np.ndarray, np.ndarray]],
        sample_weight: np.ndarray | None = None,
        ready: _Ensemble | None = None,
    ) -> _Ensemble:
        """The input's cross-fitted ensemble: ``ready`` (trained by this fit's backend), else from the active
        cache (see :func:`modalfuse.using_cache`), where strategies fitted on the same rows with the same
        settings share it, else trained now."""
        trained: list[bool] = []

        def train() -> _Ensemble:
            trained.append(True)
            return ready if ready is not None else self._train_input(name, data, y, splits, sample_weight)

        key = ("per-input-models", self._key(name, data, y, groups, sample_weight))
        ens = active_cache().get_or_compute(key, train, kind="model")
        if not trained and ready is None:
            self.reused_fit_seconds_ += ens.seconds
            progress.emit(
                "networks_reused",
                f"{name}: {len(ens.nets)} network(s) reused from the cache (trained in {ens.seconds:.1f}s)",
                input=name,
                n_networks=len(ens.nets),
                seconds=ens.seconds,
            )
        return ready if ready is not None else ens

    def _network_plan(
        self, name: str, data: Data, splits: list[tuple[np.ndarray, np.ndarray]]
    ) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """The input's networks: (inner fold, training rows, held-out rows), restricted to the rows where
        the input is present; a fold with no such training row gets no network (the input counts as
        missing for it), and an input that cannot be cross-fitted gets one network on every row (fold -1)."""
        mask = data[name][1]
        rows = np.flatnonzero(mask)
        plan = [(i, tr[mask[tr]], va[mask[va]]) for i, (tr, va) in enumerate(splits)]
        plan = [(i, tr, va) for i, tr, va in plan if len(tr)]
        if len(rows) < 2 or not any(len(va) for _, _, va in plan):
            plan = [(-1, rows, np.zeros(0, np.int64))]
        return plan

    def _train_network(
        self,
        name: str,
        data: Data,
        y: np.ndarray,
        step: tuple[int, np.ndarray, np.ndarray],
        sample_weight: np.ndarray | None,
        position: tuple[int, int],
    ) -> tuple[FusionNet, np.ndarray, float]:
        """Train one network of the input's plan (``position``: its number from 1 and the plan's length).

        Returns the network, its probabilities on the held-out rows (shape (len(va), K)) and its seconds.
        Each network is seeded by its inner fold alone, so networks trained apart (in other processes, in
        any order) are the same as trained in turn.
        """
        start = time.perf_counter()
        base = self._input_config()
        i, tr, va = step
        x, mask, labels, weights = self._training_rows(name, data, y, tr, sample_weight)
        proba = np.zeros((0, self.n_classes))
        label = f"{name}: network {position[0]}/{position[1]}"
        with progress.network(label, input=name, index=position[0], total=position[1]) as report:
            cfg = dataclasses.replace(base, seed=base.seed + 1000 * max(i, 0))
            net = seeded(cfg.seed, lambda: self._input_net(name))
            if self.inputs[name].spec.trainable:
                train_network(
                    net,
                    {name: (x, mask)},
                    labels,
                    cfg,
                    augment={name: self.inputs[name].spec.augment},
                    sample_weight=weights,
                )
            else:
                fit_linear(net, x, labels, self.n_classes, sample_weight=weights)
            if len(va):
                x_va, mask_va = data[name]
                logits = predict_logits(net, {name: (x_va[va], mask_va[va])}, device=base.device)
                proba = softmax(logits, axis=1)
                report["held_out_accuracy"] = float(np.mean(logits.argmax(1) == y[va]))
        return net, proba, time.perf_counter() - start

    @staticmethod
    def _training_rows(
        name: str, data: Data, y: np.ndarray, rows: np.ndarray, sample_weight: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """What a network of input ``name`` trains on: ``(X, mask, labels, row weights)`` of the training
        ``rows``, followed by the corrupted copies of those rows (``train_corruptions``) where the corruptions
        changed this input. A copy of a row held out from the network is never trained on, so the copies'
        predictions by the network of their original's inner fold stay out of fold."""
        x, mask = data[name]
        copies = copies_of(data, name)
        if copies is None:
            return x[rows], mask[rows], y[rows], _take(sample_weight, rows)
        originals, x_aug, mask_aug = copies
        keep = np.isin(originals, rows)
        both = np.concatenate([rows, originals[keep]])  # the originals of the rows, then of the copies
        weights = _take(sample_weight, both)
        return (
            np.concatenate([x[rows], x_aug[keep]]),
            np.concatenate([mask[rows], mask_aug[keep]]),
            y[both],
            weights,
        )

    def _ensemble(
        self,
        name: str,
        data: Data,
        n_rows: int,
        plan: list[tuple[int, np.ndarray, np.ndarray]],
        networks: list[tuple[FusionNet, np.ndarray, float]],
        seconds: float,
    ) -> _Ensemble:
        """The input's ensemble from its trained ``networks`` (in ``plan`` order)."""
        oof = np.full((n_rows, self.n_classes), np.nan)
        for (_, _, va), (_, proba, _) in zip(plan, networks, strict=True):
            if len(va):
                oof[va] = proba
        nets = [net for net, _, _ in networks]
        rows = np.flatnonzero(data[name][1])
        return _Ensemble(nets, oof, rows, seconds=seconds, folds=[i for i, _, _ in plan])

    def _train_input(
        self,
        name: str,
        data: Data,
        y: np.ndarray,
        splits: list[tuple[np.ndarray, np.ndarray]],
        sample_weight: np.ndarray | None,
    ) -> _Ensemble:
        """Train the input's networks, one per inner fold, and their out-of-fold probabilities."""
        start = time.perf_counter()
        plan = self._network_plan(name, data, splits)
        networks = [
            self._train_network(name, data, y, step, sample_weight, (j + 1, len(plan)))
            for j, step in enumerate(plan)
        ]
        return self._ensemble(name, data, len(y), plan, networks, time.perf_counter() - start)

    def _train_on_backend(
        self,
        names: list[str],
        data: Data,
        y: np.ndarray,
        groups: np.ndarray | None,
        splits: list[tuple[np.ndarray, np.ndarray]],
        sample_weight: np.ndarray | None,
    ) -> dict[str, _Ensemble]:
        """The ensembles of ``names`` not in the active cache, every network of them one task of the active
        backend (see :func:`modalfuse._backend.using_backend`); empty when it is serial."""
        backend = active_backend()
        if not backend.parallel:
            return {}
        cache = active_cache()
        todo = [
            n
            for n in names
            if ("per-input-models", self._key(n, data, y, groups, sample_weight)) not in cache
        ]
        plans = {n: self._network_plan(n, data, splits) for n in todo}
        tasks = [(n, j) for n in todo for j in range(len(plans[n]))]
        if len(tasks) < 2:
            return {}
        networks = backend.map(
            _network_task,
            [(n, j, _input_only(data, n)) for n, j in tasks],
            shared=(self, y, plans, sample_weight),
            labels=[f"input {n!r}, network {j + 1}/{len(plans[n])}" for n, j in tasks],
        )
        done = dict(zip(tasks, networks, strict=True))
        out = {}
        for n in todo:
            trained = [done[(n, j)] for j in range(len(plans[n]))]
            out[n] = self._ensemble(n, data, len(y), plans[n], trained, sum(t[2] for t in trained))
            progress.emit(
                "networks_trained",
                f"{n}: {len(trained)} network(s) trained on the {backend.name} backend",
                input=n,
                n_networks=len(trained),
                seconds=out[n].seconds,
            )
        return out

    def fit(
        self, data: Data, y: np.ndarray, groups: np.ndarray | None, sample_weight: np.ndarray | None = None
    ) -> FusionStrategy:
        """Fit every used input's cross-fitted ensemble, then the combiner (late fusion).

        ``sample_weight`` (one non-negative weight per row, optional) weighs the rows in every fit: the
        per-input networks' losses, the classical linear fits, the combiners' out-of-fold log loss and the
        class prior (the weighted class shares).
        """
        #: Training seconds of per-input models taken from the active cache instead of trained in this fit
        #: (trained by an earlier strategy on the same rows): add it to the fit time for a standalone cost.
        self.reused_fit_seconds_ = 0.0
        counts = np.bincount(y, weights=sample_weight, minlength=self.n_classes)
        self.prior_ = counts / counts.sum()
        self.state["prior"] = self.prior_.tolist()
        #: The inner folds (training rows, held-out rows) over every training row.
        self.splits_ = self._splits(y, groups)
        names = [n for n in self._used_inputs() if data[n][1].any()]
        ready = self._train_on_backend(names, data, y, groups, self.splits_, sample_weight)
        self.models_ = {
            n: self._fit_input(n, data, y, groups, self.splits_, sample_weight, ready.get(n)) for n in names
        }
        self.state["fitted_inputs"] = list(self.models_)
        self.state["net_folds"] = {n: e.folds for n, e in self.models_.items()}
        self.imputer_ = self._fit_imputer(data)
        self._fit_combiner(y, sample_weight, data)
        return self

    def _fit_combiner(
        self, y: np.ndarray, sample_weight: np.ndarray | None = None, data: Data | None = None
    ) -> None:
        """Hook for late fusion."""

    # ----------------------------------------------------------------------------------- missing policies
    @property
    def missing_policy(self) -> str:
        """Option ``missing``: ``mask``, ``fill`` or ``generate``."""
        return self.options["missing"]

    def _fit_imputer(self, data: Data) -> EmbeddingImputer | None:
        """The ``fill`` / ``generate`` models, one set per inner fold, fitted on the embeddings of that fold's
        held-out training rows by its networks (all training rows with a single fold); None for ``mask``."""
        self.state.pop("imputer", None)
        if self.missing_policy == "mask" or not self.models_:
            return None
        imputer = EmbeddingImputer(self.missing_policy)
        for fold, (train, held_out) in enumerate(self.splits_):
            rows = held_out if len(held_out) else train
            imputer.fit_fold(fold, self.embeddings(data, fold, rows, cache=True, impute=False))
        self.state["imputer"] = imputer.state
        return imputer

    def fold_of_rows(self, n_rows: int) -> np.ndarray:
        """For each training row, the inner fold that holds it out (-1: none, with a single fold)."""
        out = np.full(n_rows, -1, np.int64)
        for fold, (_, held_out) in enumerate(self.splits_):
            out[held_out] = fold
        return out

    def _head_proba(self, net: FusionNet, name: str, E: np.ndarray) -> np.ndarray:
        """Probabilities of ``name``'s single-input network ``net`` from embeddings ``E`` (its head only)."""
        device = self.config.device
        with torch.no_grad():
            net.to(device).eval()
            logits = net.fuse(
                {name: torch.from_numpy(np.ascontiguousarray(E, dtype=np.float32)).to(device)},
                {name: torch.ones(len(E), dtype=torch.bool, device=device)},
            )
        return softmax(logits.cpu().numpy().astype(np.float64), axis=1)

    def _imputed_probs(self, data: Data, name: str, rows: np.ndarray) -> np.ndarray | None:
        """Probabilities of input ``name`` on ``rows`` where it is missing, from its imputed embedding: the
        mean over its networks of each network's head on the embedding imputed with that network's fold
        (None when no network has an imputation model)."""
        ens = self.models_[name]
        probs = []
        for i, fold in enumerate(ens.folds):
            k = max(fold, 0)
            if self.imputer_ is None or not self.imputer_.has(k, name):
                continue
            emb = self.embeddings(data, k, rows)
            if not emb[name][1].all():
                continue
            probs.append(self._head_proba(ens.nets[i], name, emb[name][0]))
        return np.mean(probs, axis=0) if probs else None

    def _fold_probs(
        self, data: Data, folds: np.ndarray, known: Mapping[str, np.ndarray] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each input's probabilities on every row of ``data`` by the network of the row's inner fold
        (``folds[i]``: out-of-fold for training rows and their corrupted copies), imputed where the input is
        missing under ``fill`` / ``generate``; the prior and a False mask elsewhere. ``known`` gives the
        probabilities of the rows where the input is present instead (the out-of-fold ones; NaN: none)."""
        n_rows = len(folds)
        probs = {n: np.tile(self.prior_, (n_rows, 1)) for n in self.models_}
        masks = {n: np.asarray(data[n][1], bool).copy() for n in self.models_}
        for fold in np.unique(folds):
            rows = np.flatnonzero(folds == fold)
            for n, ens in self.models_.items():
                x, m = data[n]
                have = rows[np.asarray(m, bool)[rows]]
                net = ens.net_for(int(fold))
                if known is not None:  # out-of-fold probabilities: NaN where none was made (missing)
                    ok = ~np.isnan(known[n][have, 0])
                    probs[n][have[ok]] = known[n][have[ok]]
                    masks[n][have[~ok]] = False
                elif net is None:
                    masks[n][rows] = False
                elif len(have):
                    logits = predict_logits(net, {n: (x[have], m[have])}, device=self.config.device)
                    probs[n][have] = softmax(logits, axis=1)
            self._impute_fold_probs(data, int(fold), rows, probs, masks)
        return probs, masks

    def _impute_fold_probs(
        self,
        data: Data,
        fold: int,
        rows: np.ndarray,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
    ) -> None:
        """Fill in ``probs`` and ``masks`` for the ``rows`` (of inner fold ``fold``) where an input is missing,
        from its imputed embedding by that fold's network (``fill`` / ``generate`` only)."""
        if getattr(self, "imputer_", None) is None:
            return
        k = max(fold, 0)
        present = np.stack([np.asarray(data[n][1], bool)[rows] for n in self.models_], axis=1)
        incomplete = rows[~present.all(axis=1)]
        if not len(incomplete):
            return
        emb = self.embeddings(data, k, incomplete)
        for n, ens in self.models_.items():
            net = ens.net_for(fold)
            lacking = ~np.asarray(data[n][1], bool)[incomplete]
            if net is None or not lacking.any() or not self.imputer_.has(k, n) or not emb[n][1].all():
                continue
            probs[n][incomplete[lacking]] = self._head_proba(net, n, emb[n][0][lacking])
            masks[n][incomplete[lacking]] = True

    def embeddings(
        self,
        data: Data,
        fold: int,
        rows: np.ndarray | None = None,
        *,
        cache: bool = False,
        inputs: Sequence[str] | None = None,
        impute: bool = True,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each input's embedding by its network for inner fold ``fold`` (see :meth:`_Ensemble.net_for`),
        as ``{input: (E, mask)}`` over ``rows`` of ``data`` (default: all); zeros and a False mask where the
        input is missing or has no network for that fold, unless the ``missing`` policy is ``fill`` or
        ``generate`` (and ``impute``): then a missing input's embedding is imputed and marked present.
        ``inputs`` (default: every fitted input) limits the inputs; ``cache`` keeps the embeddings on the
        shared ensembles (only for the training rows the ensembles were fitted on)."""
        imputer = getattr(self, "imputer_", None) if impute else None
        out = self._raw_embeddings(data, fold, rows, cache, None if imputer is not None else inputs)
        if imputer is not None:
            out = imputer.impute(fold, out)
        return out if inputs is None else {n: v for n, v in out.items() if n in inputs}

    def _raw_embeddings(
        self, data: Data, fold: int, rows: np.ndarray | None, cache: bool, inputs: Sequence[str] | None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for n, ens in self.models_.items():
            if inputs is not None and n not in inputs:
                continue
            x, m = data[n]
            if rows is not None:
                x, m = x[rows], m[rows]
            m = np.asarray(m, bool)
            dim = next(iter(ens.nets[0].encoders.values())).dim
            E = np.zeros((len(m), dim), np.float32)
            key = None
            if cache:
                key = hashlib.blake2b(
                    np.ascontiguousarray(rows if rows is not None else []).tobytes(), digest_size=12
                ).hexdigest()
            z = ens.embed(fold, x[m], device=self.config.device, cache_key=key)
            if z is None:
                m = np.zeros_like(m)
            else:
                E[m] = z
            out[n] = (E, m)
        return out

    def predict_proba(self, data: Data) -> np.ndarray:
        """:meth:`_fuse` of the per-input models' probabilities (:meth:`_per_input`)."""
        probs, masks = self._per_input(data)
        return self._fuse(probs, masks, n_rows_of(data), data)

    def _fuse(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        n_rows: int,
        data: Data | None = None,
    ) -> np.ndarray:
        """Probabilities (n_rows, K) from each input's probabilities (prior where missing) and presence;
        ``data`` (the inputs, with any quality scores) for combiners that read more than probabilities."""
        raise NotImplementedError  # pragma: no cover - late and unimodal fusion define it

    def _fast_coalitions(self) -> bool:
        """Whether predictions are :meth:`_fuse` of :meth:`_per_input` as written here (a subclass that
        changes either gets the generic coalitions of :class:`FusionStrategy`), with missing inputs masked:
        under ``fill`` / ``generate`` an input left out of a coalition is imputed from the inputs the
        coalition keeps, so each coalition is a prediction of its own."""
        return (
            getattr(self, "imputer_", None) is None
            and own_method(self, "predict_proba", _PerInputModels)
            and own_method(self, "_per_input", _PerInputModels)
        )

    def prepare_coalitions(self, data: Data) -> object:
        """Each input's probabilities and presence, computed once: every coalition then only recombines
        them (no network runs again)."""
        if not self._fast_coalitions():
            return super().prepare_coalitions(data)
        probs, masks = self._per_input(data)
        return _PerInputWork(probs, masks, n_rows_of(data), data)

    def proba_of_coalitions(self, prepared: object, coalitions: np.ndarray) -> np.ndarray:
        """Every coalition's probabilities (C, N, K): :meth:`_fuse` with the masks of the inputs left out
        set to False (see :meth:`FusionStrategy.proba_of_coalitions`)."""
        if not isinstance(prepared, _PerInputWork):
            return super().proba_of_coalitions(prepared, coalitions)
        names = self.coalition_inputs()
        out = np.zeros((len(coalitions), prepared.n_rows, self.n_classes))
        for c, row in enumerate(np.asarray(coalitions, dtype=bool).reshape(-1, len(names))):
            keep = dict(zip(names, row, strict=True))
            masks = {n: m & bool(keep.get(n, True)) for n, m in prepared.masks.items()}
            out[c] = self._fuse(prepared.probs, masks, prepared.n_rows, prepared.data)
        return out

    def _per_input(self, data: Data) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each fitted input's probabilities (N, K), the prior where it is missing, and its mask (N,); under
        ``fill`` / ``generate`` a missing input's probabilities come from its imputed embedding and it counts
        as present."""
        probs, masks = {}, {}
        imputer = getattr(self, "imputer_", None)
        for n, ens in self.models_.items():
            x, m = data[n]
            m = np.asarray(m, bool)
            p = np.tile(self.prior_, (len(m), 1))
            if m.any():
                p[m] = ens.predict({n: (x[m], m[m])}, self.config.device)
            if imputer is not None and not m.all():
                lacking = np.flatnonzero(~m)
                imputed = self._imputed_probs(data, n, lacking)
                if imputed is not None:
                    p[lacking] = imputed
                    m = np.ones_like(m)
            probs[n], masks[n] = p, np.asarray(m, bool)
        return probs, masks

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for n, ens in self.models_.items():
            for i, net in enumerate(ens.nets):
                for k, v in net.state_dict().items():
                    out[f"{n}.{i}.{k}"] = v.detach().cpu()
        if getattr(self, "imputer_", None) is not None:
            out.update(self.imputer_.tensors())
        return out

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.prior_ = np.asarray(self.state["prior"])
        self.models_ = {}
        # models saved before "net_folds" recorded "n_nets": network i was then fold i's
        net_folds = (
            self.state["net_folds"]
            if "net_folds" in self.state
            else {n: list(range(k)) for n, k in self.state["n_nets"].items()}
        )
        for n in self.state["fitted_inputs"]:
            folds = net_folds[n]
            nets = []
            for i in range(len(folds)):
                net = self._input_net(n)
                prefix = f"{n}.{i}."
                net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
                nets.append(net.eval())
            self.models_[n] = _Ensemble(
                nets, np.zeros((0, self.n_classes)), np.zeros(0, np.int64), folds=folds
            )
        self.imputer_ = None
        if "imputer" in self.state:  # models saved with missing="fill" or "generate"
            imputer = {k: v for k, v in tensors.items() if k.startswith(f"{TENSOR_PREFIX}.")}
            self.imputer_ = EmbeddingImputer.from_saved(self.state["imputer"], imputer)
        self._restore_combiner()

    def _restore_combiner(self) -> None:
        """Hook for late fusion."""

    def _input_weights(self) -> dict[str, float]:
        return {n: 1.0 for n in self.models_}

    def _contribution_weights(
        self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], data: Data | None = None
    ) -> dict[str, float | np.ndarray]:
        """Weight of each input in :meth:`contributions`: a number, or one per row."""
        return dict(self._input_weights())

    def contributions(self, data: Data) -> dict[str, np.ndarray]:
        """Per input: weight x (log-probability of the fused prediction's class - log of its prior), i.e.
        the evidence the input adds for the predicted class (weight 1 except for ``late:weighted``, whose
        weights are fitted, and ``late:confidence`` and ``late:quality``, whose weights are per row)."""
        fused = self.predict_proba(data).argmax(1)
        probs, masks = self._per_input(data)
        w = self._contribution_weights(probs, masks, data)
        rows = np.arange(len(fused))
        return {
            n: np.where(
                masks[n],
                w[n] * (np.log(probs[n][rows, fused] + _EPS) - np.log(self.prior_[fused] + _EPS)),
                0.0,
            )
            for n in probs
        }


@register_fusion
class UnimodalFusion(_PerInputModels):
    """One input only (``input=NAME``); rows where it is missing get the training class prior.

    An input that no training row has (so it was not set up) gets no model: every row gets the prior.
    """

    name = "unimodal"
    argument_name = "input"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "input": Option(None, "str", "the input to use (required; 'unimodal:NAME' sets it)", none_ok=True)
    }

    def _used_inputs(self) -> list[str]:
        name = self.options["input"]
        if not name:
            raise OptionError(
                f"fusion 'unimodal': name the input, e.g. 'unimodal:{next(iter(self.inputs), 'image')}'"
            )
        return [name] if name in self.inputs else []

    def _fuse(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        n_rows: int,
        data: Data | None = None,
    ) -> np.ndarray:
        """The input's probabilities where it is present, the training prior elsewhere."""
        if not probs:
            return np.tile(self.prior_, (n_rows, 1))
        name = next(iter(probs))
        return np.where(masks[name][:, None], probs[name], self.prior_)


#: The combiners of :class:`LateFusion`, and those fitted on out-of-fold predictions.
LATE_METHODS = ("mean", "weighted", "stacking", "product", "confidence", "quality")
_OOF_METHODS = ("weighted", "stacking", "confidence", "quality")
#: L2 penalty of ``late:quality``'s slopes (on standardised features), per row of the log loss.
_QUALITY_L2 = 1e-2
#: Bounds of ``late:quality``'s log-weights (a weight is between exp(-8) and exp(4)).
_LOG_WEIGHT_RANGE = (-8.0, 4.0)
#: Quantiles of the training rows' standardised quality scores bounding ``late:quality``'s reference range.
_REFERENCE_QUANTILES = (0.01, 0.99)
#: Clip of the standardised scores whose distances outside the reference range ``late:quality`` reads.
_OUT_OF_RANGE_CLIP = 20.0
#: Exponents tried first when fitting ``late:confidence``'s sharpening (then refined around the best).
_GAMMA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@register_fusion
class LateFusion(_PerInputModels):
    """Late fusion of per-input models; ``method`` is one of ``mean``, ``weighted``, ``stacking``,
    ``product`` or ``confidence``.

    - ``mean``: average of the probabilities of the inputs present in a row.
    - ``weighted``: weighted mean of the log-probabilities of the inputs present (a weighted product of
      experts), renormalised; non-negative weights fitted by minimising the log loss of the out-of-fold
      probabilities. The weights' sum also acts as an inverse temperature.
    - ``stacking``: a multinomial logistic regression on the out-of-fold log-probabilities of every input
      (the class prior where an input is missing) and the inputs' presence indicators.
    - ``product``: product of experts: the unweighted sum of the log-probabilities of the inputs present,
      renormalised (``weighted`` with every weight 1; nothing is fitted).
    - ``confidence``: a product of experts with per-row weights: the weighted sum of the log-probabilities
      of the inputs present, renormalised, an input's weight on a row growing with its model's confidence
      there, ``c ** gamma`` with ``c = 1 - H(p) / log K`` (``H`` the entropy of the input's probability
      vector ``p``, ``K`` the number of classes: 1 for a one-hot ``p``, 0 for a uniform one), rescaled so
      the present inputs' weights average 1 on the row. The exponent ``gamma`` in [0, 8] is fitted by
      minimising the log loss of the out-of-fold probabilities (``gamma = 0`` is ``product``; a larger one
      moves weight, row by row, to the surer input). The per-row weights come from :meth:`_row_weights`,
      the extension point of per-row weighting.
    - ``quality``: a product of experts whose per-row weights follow each input's quality scores and its
      model's confidence on the row: ``w = exp(a + b . z + c * conf + d . relu(lo - z) + e . relu(z - hi))``
      per input, where ``z`` are the row's quality scores of the input (:mod:`modalfuse._quality`: SNR,
      clipping and silence of audio, sharpness, contrast and exposure of images, length and unknown words
      of text, missing cells of tabular inputs), standardised with the means and deviations of the
      training rows as given, ``conf`` the confidence defined for ``confidence``, and ``[lo, hi]`` the
      reference range of each score (its 1st and 99th percentiles on the training rows as given); the
      logits are ``sum w * log p`` over the inputs present (not rescaled, so the weights also set the
      temperature). Fitted in two steps, each minimising the log loss of out-of-fold probabilities (L2
      penalty 0.01 on every coefficient but ``a``): ``a``, ``b``, ``c`` on the training rows as given
      (starting from ``weighted``'s weights), then, with those kept, ``d`` and ``e`` on those rows and the
      corrupted copies. So on rows whose quality lies in the range of the training rows the weights are
      those learned on the training rows alone, whatever corruptions were added for training, and only
      scores outside it (a noise level the training rows never had) move the weights further. With
      training rows that are all clean, the scores do not vary with reliability and nothing can be
      learned: give the estimator ``train_corruptions`` (e.g. ``"audio:noise=20,10,5,0,-5@0.5"``) so that
      corrupted copies of training rows, predicted out of fold like the rows themselves, show the combiner
      what a noisy input is worth.

    With the estimator's ``train_corruptions``, each network of a corrupted input trains on the corrupted
    copies of its training rows too, and the combiners fitted on out-of-fold predictions (``weighted``,
    ``stacking``, ``confidence``, ``quality``) also fit on the copies, predicted by the networks that did
    not see the original rows.

    Rows with no input present get the training class prior, whatever the method.
    """

    name = "late"
    argument_name = "method"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "method": Option(
            "weighted",
            "str",
            "how the inputs' predictions are combined ('late:NAME' sets it)",
            choices=LATE_METHODS,
        )
    }

    @property
    def uses_quality(self) -> bool:
        """``late:quality`` reads the rows' quality scores."""
        return self.method == "quality"

    def check_options(self) -> None:
        """The combiners fitted on out-of-fold predictions need at least two inner folds."""
        if self.method in _OOF_METHODS and self.options["inner_folds"] < 2:
            raise OptionError(
                f"late:{self.method} fits its combiner on out-of-fold predictions: it needs inner_folds >= 2 "
                f"(got {self.options['inner_folds']})"
            )

    def _combine_weighted(
        self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], weights: np.ndarray
    ) -> np.ndarray:
        names = list(probs)
        W = np.stack([masks[n] * weights[i] for i, n in enumerate(names)], axis=1)  # (N, M)
        total = W.sum(1, keepdims=True)
        P = np.einsum("nm,nmk->nk", W, np.stack([probs[n] for n in names], axis=1))
        out = np.where(total > 0, P / np.maximum(total, 1e-12), self.prior_)
        return out

    def _combine_log_linear(
        self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], weights: np.ndarray
    ) -> np.ndarray:
        names = list(probs)
        logits = sum(masks[n][:, None] * weights[i] * np.log(probs[n] + _EPS) for i, n in enumerate(names))
        none = ~np.logical_or.reduce([masks[n] for n in names])
        logits = np.where(none[:, None], np.log(self.prior_ + _EPS), logits)
        return softmax(logits, axis=1)

    # ------------------------------------------------------------------------- per-row weights (confidence)
    @staticmethod
    def confidence(p: np.ndarray) -> np.ndarray:
        """``1 - H(p) / log K`` per row of ``p`` (N, K): 1 for a one-hot row, 0 for a uniform one."""
        k = p.shape[1]
        if k < 2:
            return np.ones(len(p))
        q = np.clip(p, 0.0, 1.0)
        entropy = -np.sum(np.where(q > 0, q * np.log(np.maximum(q, 1e-300)), 0.0), axis=1)
        return np.clip(1.0 - entropy / np.log(k), 0.0, 1.0)

    def _confidence_weights(
        self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], gamma: float
    ) -> np.ndarray:
        """(N, M) weights ``confidence ** gamma`` of the inputs present, 0 where missing."""
        return np.stack([np.where(masks[n], self.confidence(probs[n]) ** gamma, 0.0) for n in probs], axis=1)

    def _row_weights(self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> np.ndarray:
        """Per-row weights of the inputs for ``late:confidence``: an (N, M) array, columns in ``probs``'
        order, non-negative; where an input is missing its weight is ignored (treated as 0).

        ``probs`` are the per-input probabilities (N, K) and ``masks`` their presence (N,), as returned by
        :meth:`_per_input`. Here the weight is the input model's confidence on the row, sharpened by the
        fitted exponent (``state["gamma"]``).

        Extension point: a quality-aware variant (per-row weights from a modality quality score, say the
        signal-to-noise ratio of an audio clip or the sharpness of an image, alone or times the
        confidence) overrides this method, and :meth:`_fit_row_weights` when it has parameters to fit on
        the out-of-fold probabilities. Everything else is inherited: the per-row weighted product
        (:meth:`_combine_rows`), the prior for rows with no input present, the plain product for rows where
        every present input has weight 0, the per-row contributions in ``explain`` and saving (put
        fitted parameters in ``self.state``). Weights need not sum to 1 per row.
        """
        return self._confidence_weights(probs, masks, float(self.state.get("gamma", 1.0)))

    def _fit_row_weights(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Fit the parameters of :meth:`_row_weights` on out-of-fold probabilities: here the exponent
        ``gamma`` >= 0 minimising the (row-weighted) log loss (a grid over [0, 8], refined around its best
        point; the smallest gamma wins ties, so it falls back to the plain product when confidence does
        not help)."""

        def loss(gamma: float) -> float:
            p = self._combine_rows(probs, masks, self._confidence_weights(probs, masks, gamma))
            return _mean_log_loss(p, y, sample_weight)

        grid = np.asarray(_GAMMA_GRID)
        losses = np.array([loss(g) for g in grid])
        i = int(np.flatnonzero(losses <= losses.min() + 1e-9)[0])  # the smallest of the (near-)best
        best, best_loss = float(grid[i]), float(losses[i])
        lo, hi = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])
        if hi > lo:
            res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
            if res.fun < best_loss - 1e-9:
                best = float(res.x)
        self.state["gamma"] = best

    def _effective_row_weights(self, masks: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        """``weights`` with missing inputs at 0, and 1 for every present input on rows where they are all 0."""
        present = np.stack([masks[n] for n in masks], axis=1)
        W = np.where(present, np.maximum(np.asarray(weights, dtype=np.float64), 0.0), 0.0)
        return np.where(W.sum(1, keepdims=True) > 0, W, present.astype(np.float64))

    def _rescaled_row_weights(self, masks: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        """:meth:`_effective_row_weights` rescaled to average 1 over each row's present inputs (0 where none
        is present), so only the inputs' relative weights matter, not their scale."""
        W = self._effective_row_weights(masks, weights)
        n_present = np.stack([masks[n] for n in masks], axis=1).sum(1, keepdims=True)
        total = W.sum(1, keepdims=True)
        return W * np.where(total > 0, n_present / np.where(total > 0, total, 1.0), 0.0)

    def _combine_rows(
        self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], weights: np.ndarray
    ) -> np.ndarray:
        """Per-row weighted product of the present inputs' probabilities (weights rescaled to average 1 over
        the present inputs, see :meth:`_rescaled_row_weights`), renormalised; the prior where none is
        present."""
        W = self._rescaled_row_weights(masks, weights)
        logp = np.log(np.stack([probs[n] for n in probs], axis=1) + _EPS)  # (N, M, K)
        logits = np.einsum("nm,nmk->nk", W, logp)
        none = W.sum(1) == 0
        logits[none] = np.log(self.prior_ + _EPS)
        return softmax(logits, axis=1)

    # ---------------------------------------------------------------------------------------------- stacking
    def _stack_features(self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> np.ndarray:
        names = list(probs)
        logp = [np.log(np.where(masks[n][:, None], probs[n], self.prior_) + _EPS) for n in names]
        return np.concatenate([*logp, np.stack([masks[n] for n in names], 1).astype(float)], axis=1)

    def _combiner_rows(
        self, y: np.ndarray, sample_weight: np.ndarray | None, data: Data | None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray | None, dict | None]:
        """The rows a combiner is fitted on: the training rows' out-of-fold probabilities (imputed where an
        input is missing under ``fill`` / ``generate``) and those of their corrupted copies (see
        :class:`~modalfuse._inputdata.AugmentedRows`), with labels, row weights and raw quality scores."""
        names = list(self.models_)
        oof = {n: self.models_[n].oof for n in names}
        folds = self.fold_of_rows(len(y))
        if data is not None and getattr(self, "imputer_", None) is not None:
            probs, masks = self._fold_probs(data, folds, known=oof)
        else:
            masks = {n: ~np.isnan(oof[n][:, 0]) for n in names}
            probs = {n: np.where(masks[n][:, None], np.nan_to_num(oof[n]), self.prior_) for n in names}
        quality = quality_of(data)
        quality = None if quality is None else {n: np.asarray(quality[n], np.float64) for n in names}
        aug = augmented_of(data)
        if aug is None or not len(aug.rows):
            return probs, masks, y, sample_weight, quality
        pa, ma = self._fold_probs(aug.data, folds[aug.rows])
        probs = {n: np.concatenate([probs[n], pa[n]]) for n in names}
        masks = {n: np.concatenate([masks[n], ma[n]]) for n in names}
        qa = quality_of(aug.data)
        if quality is not None and qa is not None:
            quality = {n: np.concatenate([quality[n], np.asarray(qa[n], np.float64)]) for n in names}
        y_all = np.concatenate([y, y[aug.rows]])
        w_all = None if sample_weight is None else np.concatenate([sample_weight, sample_weight[aug.rows]])
        return probs, masks, y_all, w_all, quality

    def _fit_combiner(
        self, y: np.ndarray, sample_weight: np.ndarray | None = None, data: Data | None = None
    ) -> None:
        """Fit ``weighted``'s weights, ``stacking``'s regression and (for ``confidence`` and ``quality``)
        their per-row weights on the out-of-fold probabilities (and corrupted copies, see
        :meth:`_combiner_rows`), every row weighted by ``sample_weight`` (if given)."""
        names = list(self.models_)
        if not names:
            return
        n_reference = len(y)
        probs, masks, y, sample_weight, quality = self._combiner_rows(y, sample_weight, data)

        def loss(theta: np.ndarray) -> float:
            return _mean_log_loss(self._combine_log_linear(probs, masks, np.exp(theta)), y, sample_weight)

        res = minimize(loss, np.zeros(len(names)), method="L-BFGS-B", bounds=[(-6.0, 3.0)] * len(names))
        self.state["weights"] = dict(zip(names, np.exp(res.x).tolist(), strict=True))
        from sklearn.linear_model import LogisticRegression

        meta = LogisticRegression(C=1.0, max_iter=2000).fit(
            self._stack_features(probs, masks), y, sample_weight=sample_weight
        )
        coef = np.zeros((self.n_classes, meta.coef_.shape[1]))
        intercept = np.full(self.n_classes, -1e3)
        present = meta.classes_.astype(int)
        if len(present) == 2 and self.n_classes == 2:
            coef[1], intercept[1], intercept[0] = meta.coef_[0], meta.intercept_[0], 0.0
        else:
            coef[present], intercept[present] = meta.coef_, meta.intercept_
        self.state["stacking"] = {"coef": coef.tolist(), "intercept": intercept.tolist()}
        if self.method == "confidence":
            self._fit_row_weights(probs, masks, y, sample_weight)
        if self.method == "quality":
            self._fit_quality(probs, masks, y, sample_weight, quality, n_reference)

    # ---------------------------------------------------------------------------------------------- quality
    def _quality_features(
        self, probs: dict[str, np.ndarray], quality: Mapping[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        """Per input, the features of its log-weight: ``[1, standardised quality scores, confidence]``, then
        (for models that have them) the scores' distances outside the reference range, below and above."""
        from modalfuse._quality import QualityScaler

        st = self.state["quality"]
        scaler = QualityScaler(st["scaler"])
        bounds = st.get("bounds") or {}
        out = {}
        for n, p in probs.items():
            width = int(st["scores"][n])
            have = width and quality is not None and n in quality
            z = scaler.transform(n, quality[n]).astype(np.float64) if have else np.zeros((len(p), width))
            parts = [np.ones((len(p), 1)), z, self.confidence(p)[:, None]]
            if n in bounds:
                zu = (
                    scaler.transform(n, quality[n], clip=_OUT_OF_RANGE_CLIP).astype(np.float64)
                    if have
                    else np.zeros((len(p), width))
                )
                low, high = np.asarray(bounds[n]["low"]), np.asarray(bounds[n]["high"])
                parts += [np.maximum(low - zu, 0.0), np.maximum(zu - high, 0.0)]
            out[n] = np.concatenate(parts, axis=1)
        return out

    def _quality_logits(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        features: dict[str, np.ndarray],
        theta: Mapping[str, np.ndarray],
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Logits (N, K), per-input weights (N,) and log-probabilities (N, K) of the quality product."""
        weights, logp = {}, {}
        logits = np.zeros((len(next(iter(probs.values()))), self.n_classes))
        for n, F in features.items():
            u = np.clip(F @ np.asarray(theta[n]), *_LOG_WEIGHT_RANGE)
            weights[n] = np.where(masks[n], np.exp(u), 0.0)
            logp[n] = np.log(probs[n] + _EPS)
            logits += weights[n][:, None] * logp[n]
        none = ~np.logical_or.reduce([masks[n] for n in features])
        logits[none] = np.log(self.prior_ + _EPS)
        return logits, weights, logp

    def _fit_log_weights(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        features: dict[str, np.ndarray],
        start: dict[str, np.ndarray],
        free: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """Coefficients of the log-weights ``features[n] @ theta[n]`` minimising the (row-weighted) mean log
        loss plus ``_QUALITY_L2`` times the squared free coefficients other than the intercept (column 0);
        only the coefficients where ``free[n]`` is true move from ``start``."""
        names = list(features)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        w = w / w.sum()
        onehot = np.eye(self.n_classes)[y]
        penal = {n: free[n].astype(np.float64) * (np.arange(len(free[n])) > 0) for n in names}
        sizes = [int(free[n].sum()) for n in names]
        if not sum(sizes):
            return {n: np.asarray(start[n], np.float64) for n in names}
        splits = np.cumsum(sizes)[:-1]

        def unpack(flat: np.ndarray) -> dict[str, np.ndarray]:
            theta = {}
            for n, part in zip(names, np.split(flat, splits), strict=True):
                t = np.asarray(start[n], np.float64).copy()
                t[free[n]] = part
                theta[n] = t
            return theta

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            theta = unpack(flat)
            logits, weights, logp = self._quality_logits(probs, masks, features, theta)
            log_q = logits - logits.max(1, keepdims=True)
            log_q -= np.log(np.exp(log_q).sum(1, keepdims=True))
            value = -float(np.sum(w * log_q[np.arange(len(y)), y]))
            g = (np.exp(log_q) - onehot) * w[:, None]
            grads = []
            for n in names:
                slope = theta[n] * penal[n]
                value += _QUALITY_L2 * float(slope @ slope)
                dw = np.sum(g * logp[n], axis=1) * weights[n]
                grads.append((features[n].T @ dw + 2 * _QUALITY_L2 * slope)[free[n]])
            return value, np.concatenate(grads)

        x0 = np.concatenate([np.asarray(start[n], np.float64)[free[n]] for n in names])
        return unpack(minimize(objective, x0, jac=True, method="L-BFGS-B").x)

    def _fit_quality(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        quality: Mapping[str, np.ndarray] | None,
        n_reference: int | None = None,
    ) -> None:
        """Fit ``late:quality``'s log-weight coefficients per input on the combiner's rows (see the class):
        the first ``n_reference`` rows (default: all) are the training rows as given, the others corrupted
        copies of some of them."""
        from modalfuse._quality import QualityScaler

        names = list(probs)
        n_ref = len(y) if n_reference is None else int(n_reference)
        ref = slice(0, n_ref)
        scores = {n: (0 if quality is None or n not in quality else int(quality[n].shape[1])) for n in names}
        scaler = QualityScaler().fit({n: quality[n][ref] for n in names if scores[n]} if quality else {})
        bounds = {}
        for n in names:
            if not scores[n]:
                continue
            rows = masks[n][ref] & np.isfinite(quality[n][ref]).all(1)
            z = scaler.transform(n, quality[n][ref][rows], clip=_OUT_OF_RANGE_CLIP).astype(np.float64)
            if len(z):
                low, high = (
                    np.quantile(z, _REFERENCE_QUANTILES[0], 0),
                    np.quantile(z, _REFERENCE_QUANTILES[1], 0),
                )
            else:
                low = high = np.zeros(scores[n])
            bounds[n] = {"low": low.tolist(), "high": high.tolist()}
        self.state["quality"] = {"scores": scores, "scaler": scaler.state, "theta": {}}
        # 1. the reference regime: [1, z, confidence] on the training rows as given
        features = self._quality_features(probs, quality)
        width = {n: features[n].shape[1] for n in names}
        start = {n: np.r_[np.log(max(self.state["weights"][n], 1e-3)), np.zeros(width[n] - 1)] for n in names}
        theta = self._fit_log_weights(
            {n: p[ref] for n, p in probs.items()},
            {n: m[ref] for n, m in masks.items()},
            y[ref],
            None if sample_weight is None else np.asarray(sample_weight)[ref],
            {n: f[ref] for n, f in features.items()},
            start,
            {n: np.ones(width[n], bool) for n in names},
        )
        # 2. out of the reference range: slopes on the distances outside it, the rest kept, on every row
        self.state["quality"]["bounds"] = bounds
        features = self._quality_features(probs, quality)
        start = {n: np.r_[theta[n], np.zeros(features[n].shape[1] - width[n])] for n in names}
        free = {n: np.arange(features[n].shape[1]) >= width[n] for n in names}
        theta = self._fit_log_weights(probs, masks, y, sample_weight, features, start, free)
        self.state["quality"]["theta"] = {n: t.tolist() for n, t in theta.items()}

    def _quality_predict(
        self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], data: Data | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``late:quality``'s probabilities and per-input weights on rows with ``data``'s quality scores (the
        training mean, i.e. standardised 0, where ``data`` carries none)."""
        st = self.state["quality"]
        features = self._quality_features(probs, quality_of(data))
        theta = {n: np.asarray(st["theta"][n]) for n in probs}
        logits, weights, _ = self._quality_logits(probs, masks, features, theta)
        return softmax(logits, axis=1), weights

    @property
    def method(self) -> str:
        """The combiner (option ``method``)."""
        return self.options["method"]

    def _fuse(
        self,
        probs: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
        n_rows: int,
        data: Data | None = None,
    ) -> np.ndarray:
        """The combiner ``method`` applied to the inputs' probabilities and presence masks."""
        names = list(probs)
        if not names:  # no input had a training row: the prior
            return np.tile(self.prior_, (n_rows, 1))
        method = self.method
        if method == "mean":
            return self._combine_weighted(probs, masks, np.ones(len(names)))
        if method == "weighted":
            return self._combine_log_linear(probs, masks, np.array([self.state["weights"][n] for n in names]))
        if method == "product":
            return self._combine_log_linear(probs, masks, np.ones(len(names)))
        if method == "confidence":
            return self._combine_rows(probs, masks, self._row_weights(probs, masks))
        if method == "quality":
            return self._quality_predict(probs, masks, data)[0]
        st = self.state["stacking"]
        logits = self._stack_features(probs, masks) @ np.asarray(st["coef"]).T + np.asarray(st["intercept"])
        return softmax(logits, axis=1)

    def _input_weights(self) -> dict[str, float]:
        return dict(self.state["weights"]) if self.method == "weighted" else super()._input_weights()

    def _contribution_weights(
        self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], data: Data | None = None
    ) -> dict[str, float | np.ndarray]:
        """For ``confidence``, an input's per-row weight in the product, rescaled so the present inputs'
        weights average 1 on each row (as in ``product``); for ``quality`` its per-row weight; the fixed
        weights otherwise."""
        if self.method == "quality" and probs:
            return dict(self._quality_predict(probs, masks, data)[1])
        if self.method != "confidence" or not probs:
            return super()._contribution_weights(probs, masks, data)
        W = self._rescaled_row_weights(masks, self._row_weights(probs, masks))
        return {n: W[:, i] for i, n in enumerate(probs)}
