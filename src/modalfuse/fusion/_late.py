"""Late fusion: one model per input, trained on its own, predictions combined; and unimodal baselines.

Each input's model is a *cross-fitted ensemble*: the training rows are split into ``inner_folds`` folds
(grouped when groups are known, so a speaker's rows never inform their own out-of-fold prediction); one
network is trained per fold on the other folds. Their predictions on held-out folds are the out-of-fold
(OOF) probabilities on which the combiners are fitted, and at test time the input's probability is the mean
of its networks. Unimodal baselines use exactly these per-input models, so comparisons are like for like.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import softmax

from modalfuse.fusion._base import Data, FusionStrategy, register_fusion
from modalfuse.fusion._train import FusionNet, TrainConfig, predict_logits, seeded, train_network

__all__ = ["LateFusion", "UnimodalFusion", "inner_splits"]

_EPS = 1e-6


def inner_splits(y: np.ndarray, groups: np.ndarray | None, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner folds for cross-fitting: grouped when there are at least ``k`` groups, stratified otherwise."""
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    idx = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= k:
        return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(idx, y, groups))
    if np.bincount(y).min(initial=len(y)) >= k:
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, y))
    return list(KFold(k, shuffle=True, random_state=seed).split(idx))


class _Ensemble:
    """The cross-fitted networks of one input, with their OOF probabilities on the training rows."""

    def __init__(self, nets: list[FusionNet], oof: np.ndarray, rows: np.ndarray) -> None:
        self.nets = nets
        self.oof = oof  # (n_train, K), NaN where the input was missing
        self.rows = rows  # training rows where the input is present

    def predict(self, data: Data, device: str) -> np.ndarray:
        probs = [softmax(predict_logits(n, data, device=device), axis=1) for n in self.nets]
        return np.mean(probs, axis=0)


# Fitted ensembles shared between strategies that train identical per-input models on identical rows
# (unimodal baselines and the late-fusion combiners compared on the same folds).
_SHARED: OrderedDict[str, _Ensemble] = OrderedDict()
_SHARED_MAX = 16


class _PerInputModels(FusionStrategy):
    """Common part of unimodal and late fusion: fit/predict the per-input ensembles."""

    argument_name: ClassVar[str | None] = None

    def _used_inputs(self) -> list[str]:
        return list(self.inputs)

    def _input_net(self, name: str) -> FusionNet:
        """A fresh single-input network: the input's encoder and a linear classifier."""
        return FusionNet({name: self.inputs[name].build()}, self.n_classes,
                         hidden=0 if not self.inputs[name].spec.trainable else 1)

    def _key(self, name: str, data: Data, y: np.ndarray, groups: np.ndarray | None) -> str:
        """Content hash of everything the input's ensemble depends on: arrays, labels, groups, settings."""
        h = hashlib.blake2b(digest_size=20)
        x, mask = data[name]
        for arr in (x, mask, y, np.asarray([] if groups is None else groups, dtype=str)):
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(arr.tobytes())
        h.update(json.dumps([self.inputs[name].to_dict(), repr(self.config), self.n_classes,
                             self.options.get("inner_folds", 3)], sort_keys=True, default=str).encode())
        return h.hexdigest()

    def _fit_input(self, name: str, data: Data, y: np.ndarray, groups: np.ndarray | None) -> _Ensemble:
        key = self._key(name, data, y, groups)
        if key in _SHARED:
            _SHARED.move_to_end(key)
            return _SHARED[key]
        x, mask = data[name]
        rows = np.flatnonzero(mask)
        sub = {name: (x[rows], mask[rows])}
        ys = y[rows]
        k = min(int(self.options.get("inner_folds", 3)), len(rows))
        oof = np.full((len(y), self.n_classes), np.nan)
        nets = []
        if k < 2:  # a single present row: one network, no out-of-fold prediction (treated as missing)
            splits = [(np.arange(len(rows)), np.zeros(0, np.int64))]
        else:
            splits = inner_splits(ys, None if groups is None else groups[rows], k, self.config.seed)
        for i, (tr, va) in enumerate(splits):
            cfg = TrainConfig(**{**self.config.__dict__, "seed": self.config.seed + 1000 * i})
            net = seeded(cfg.seed, lambda: self._input_net(name))
            train_network(net, {name: (sub[name][0][tr], sub[name][1][tr])}, ys[tr], cfg,
                          augment={name: self.inputs[name].spec.augment})
            if len(va):
                logits = predict_logits(net, {name: (sub[name][0][va], sub[name][1][va])},
                                        device=self.config.device)
                oof[rows[va]] = softmax(logits, axis=1)
            nets.append(net)
        ens = _Ensemble(nets, oof, rows)
        _SHARED[key] = ens
        while len(_SHARED) > _SHARED_MAX:
            _SHARED.popitem(last=False)
        return ens

    def fit(self, data: Data, y: np.ndarray, groups: np.ndarray | None) -> FusionStrategy:
        self.prior_ = np.bincount(y, minlength=self.n_classes) / len(y)
        self.state["prior"] = self.prior_.tolist()
        self.models_ = {n: self._fit_input(n, data, y, groups) for n in self._used_inputs() if data[n][1].any()}
        self.state["fitted_inputs"] = list(self.models_)
        self.state["n_nets"] = {n: len(e.nets) for n, e in self.models_.items()}
        self._fit_combiner(y)
        return self

    def _fit_combiner(self, y: np.ndarray) -> None:
        """Hook for late fusion."""

    def _per_input(self, data: Data) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        probs, masks = {}, {}
        for n, ens in self.models_.items():
            x, m = data[n]
            p = np.tile(self.prior_, (len(m), 1))
            if m.any():
                p[m] = ens.predict({n: (x[m], m[m])}, self.config.device)
            probs[n], masks[n] = p, m
        return probs, masks

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for n, ens in self.models_.items():
            for i, net in enumerate(ens.nets):
                for k, v in net.state_dict().items():
                    out[f"{n}.{i}.{k}"] = v.detach().cpu()
        return out

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.prior_ = np.asarray(self.state["prior"])
        self.models_ = {}
        for n in self.state["fitted_inputs"]:
            nets = []
            for i in range(self.state["n_nets"][n]):
                net = self._input_net(n)
                prefix = f"{n}.{i}."
                net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
                nets.append(net.eval())
            self.models_[n] = _Ensemble(nets, np.zeros((0, self.n_classes)), np.zeros(0, np.int64))
        self._restore_combiner()

    def _restore_combiner(self) -> None:
        """Hook for late fusion."""

    def _input_weights(self) -> dict[str, float]:
        return {n: 1.0 for n in self.models_}

    def contributions(self, data: Data) -> dict[str, np.ndarray]:
        """Per input: weight x (log-probability of the fused prediction's class - log of its prior), i.e.
        the evidence the input adds for the predicted class (weight 1 except for ``late:weighted``)."""
        fused = self.predict_proba(data).argmax(1)
        probs, masks = self._per_input(data)
        w = self._input_weights()
        rows = np.arange(len(fused))
        return {n: np.where(masks[n], w[n] * (np.log(probs[n][rows, fused] + _EPS)
                                              - np.log(self.prior_[fused] + _EPS)), 0.0) for n in probs}


@register_fusion
class UnimodalFusion(_PerInputModels):
    """One input only (``input=NAME``); rows where it is missing get the training class prior.

    An input that no training row has (so it was not set up) gets no model: every row gets the prior.
    """

    name = "unimodal"
    argument_name = "input"

    def _used_inputs(self) -> list[str]:
        name = self.options.get("input")
        if not name:
            raise KeyError(f"unimodal: name the input, e.g. 'unimodal:{next(iter(self.inputs), 'image')}'")
        return [name] if name in self.inputs else []

    def predict_proba(self, data: Data) -> np.ndarray:
        probs, _ = self._per_input(data)
        if not probs:
            return np.tile(self.prior_, (len(next(iter(data.values()))[1]), 1))
        return next(iter(probs.values()))


@register_fusion
class LateFusion(_PerInputModels):
    """Late fusion of per-input models; ``method`` is ``mean``, ``weighted`` or ``stacking``.

    - ``mean``: average of the probabilities of the inputs present in a row.
    - ``weighted``: weighted mean of the log-probabilities of the inputs present (a weighted product of
      experts), renormalised; non-negative weights fitted by minimising the log loss of the out-of-fold
      probabilities. The weights' sum also acts as an inverse temperature.
    - ``stacking``: a multinomial logistic regression on the out-of-fold log-probabilities of every input
      (the class prior where an input is missing) and the inputs' presence indicators.
    """

    name = "late"
    argument_name = "method"

    def fit(self, data: Data, y: np.ndarray, groups: np.ndarray | None) -> FusionStrategy:
        if self.method != "mean" and int(self.options.get("inner_folds", 3)) < 2:
            raise ValueError(f"late:{self.method} fits its combiner on out-of-fold predictions: "
                             "it needs inner_folds >= 2")
        return super().fit(data, y, groups)

    def _combine_weighted(self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                          weights: np.ndarray) -> np.ndarray:
        names = list(probs)
        W = np.stack([masks[n] * weights[i] for i, n in enumerate(names)], axis=1)  # (N, M)
        total = W.sum(1, keepdims=True)
        P = np.einsum("nm,nmk->nk", W, np.stack([probs[n] for n in names], axis=1))
        out = np.where(total > 0, P / np.maximum(total, 1e-12), self.prior_)
        return out

    def _combine_log_linear(self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                            weights: np.ndarray) -> np.ndarray:
        names = list(probs)
        logits = sum(masks[n][:, None] * weights[i] * np.log(probs[n] + _EPS) for i, n in enumerate(names))
        none = ~np.logical_or.reduce([masks[n] for n in names])
        logits = np.where(none[:, None], np.log(self.prior_ + _EPS), logits)
        return softmax(logits, axis=1)

    def _stack_features(self, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> np.ndarray:
        names = list(probs)
        logp = [np.log(np.where(masks[n][:, None], probs[n], self.prior_) + _EPS) for n in names]
        return np.concatenate([*logp, np.stack([masks[n] for n in names], 1).astype(float)], axis=1)

    def _fit_combiner(self, y: np.ndarray) -> None:
        names = list(self.models_)
        masks = {n: ~np.isnan(self.models_[n].oof[:, 0]) for n in names}
        probs = {n: np.where(masks[n][:, None], np.nan_to_num(self.models_[n].oof), self.prior_) for n in names}

        def loss(theta: np.ndarray) -> float:
            p = self._combine_log_linear(probs, masks, np.exp(theta))
            return float(-np.mean(np.log(p[np.arange(len(y)), y] + _EPS)))

        res = minimize(loss, np.zeros(len(names)), method="L-BFGS-B", bounds=[(-6.0, 3.0)] * len(names))
        self.state["weights"] = dict(zip(names, np.exp(res.x).tolist(), strict=True))
        from sklearn.linear_model import LogisticRegression

        meta = LogisticRegression(C=1.0, max_iter=2000).fit(self._stack_features(probs, masks), y)
        coef = np.zeros((self.n_classes, meta.coef_.shape[1]))
        intercept = np.full(self.n_classes, -1e3)
        present = meta.classes_.astype(int)
        if len(present) == 2 and self.n_classes == 2:
            coef[1], intercept[1], intercept[0] = meta.coef_[0], meta.intercept_[0], 0.0
        else:
            coef[present], intercept[present] = meta.coef_, meta.intercept_
        self.state["stacking"] = {"coef": coef.tolist(), "intercept": intercept.tolist()}

    def _restore_combiner(self) -> None:
        pass

    @property
    def method(self) -> str:
        m = self.options.get("method", "weighted")
        if m not in ("mean", "weighted", "stacking"):
            raise ValueError(f"late fusion: unknown method {m!r}; use mean, weighted or stacking")
        return m

    def predict_proba(self, data: Data) -> np.ndarray:
        probs, masks = self._per_input(data)
        names = list(probs)
        if self.method == "mean":
            return self._combine_weighted(probs, masks, np.ones(len(names)))
        if self.method == "weighted":
            return self._combine_log_linear(probs, masks, np.array([self.state["weights"][n] for n in names]))
        st = self.state["stacking"]
        logits = self._stack_features(probs, masks) @ np.asarray(st["coef"]).T + np.asarray(st["intercept"])
        return softmax(logits, axis=1)

    def _input_weights(self) -> dict[str, float]:
        return dict(self.state["weights"]) if self.method == "weighted" else super()._input_weights()
