"""Neural fusion heads: the ``NeuralFusion`` extension point (heads on shared encoders, or trained end to
end with their own) and early fusion."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
from scipy.special import softmax
from torch import nn

from modalfuse import _progress as progress
from modalfuse._errors import OptionError
from modalfuse._inputdata import augmented_of, quality_of
from modalfuse._options import DEFAULT_HIDDEN, Option
from modalfuse.encoders._nets import FeatureMLP
from modalfuse.fusion._base import Data, FusionStrategy, n_rows_of, own_method, register_fusion
from modalfuse.fusion._coalitions import HeadWork, encode_once, head_coalition_proba
from modalfuse.fusion._late import INNER_FOLDS_OPTION, MISSING_OPTION, _PerInputModels, _take
from modalfuse.fusion._train import ConcatHead, FusionNet, predict_logits, seeded, train_network

__all__ = ["HIDDEN_OPTION", "EarlyFusion", "NeuralFusion"]

#: The ``hidden`` option of a head with a hidden layer (0: a linear head).
HIDDEN_OPTION = Option(DEFAULT_HIDDEN, "int", "width of the head's hidden layer (0: a linear head)", low=0)


class NeuralFusion(FusionStrategy):
    """Base of strategies whose fusion head is a ``torch.nn.Module`` over the inputs' embeddings.

    The one method to write is :meth:`make_head`: given each input's embedding width and the number of
    classes, return a ``torch.nn.Module`` whose ``forward(embeddings, masks)`` maps a dict of (N, dim)
    embeddings and a dict of (N,) boolean presence masks to (N, n_classes) logits. Training (AdamW,
    one-cycle schedule, modality dropout, and the generation of new rows set by
    ``TrainConfig.recombine_ratio`` and ``TrainConfig.mixup_alpha``), prediction, saving and per-input
    explanations come with the base class. For example::

        @mf.register_fusion
        class MaxPool(mf.NeuralFusion):
            name = "maxpool"
            OPTIONS = {"width": mf.Option(32, "int", "pooled width", low=1)}  # optional: its own options

            def make_head(self, dims, n_classes):
                return MaxHead(dims, n_classes, self.options["width"])  # forward(embeddings, masks) -> logits

    **Where the embeddings come from.** By default (``end_to_end=False``) the head reads the encoders that
    the unimodal baselines and late fusion train: each input's cross-fitted networks (see
    :class:`~modalfuse.fusion.LateFusion`), trained once per set of training rows and shared by every
    strategy fitted on them. One head is trained per inner fold, on the embeddings of that fold's held-out
    rows by the networks that never saw them (so the head learns how much to trust each input on unseen
    rows, as late fusion's combiners do); predictions average the heads, each reading its fold's networks.
    With ``end_to_end=True`` the encoders and one head are trained together from scratch, with train-time
    augmentation and auxiliary per-input heads (``aux_heads``, default True: each encoder also gets a
    classifier during training, so an input that is quick to fit cannot leave the others untrained).

    **Missing inputs and quality** (shared encoders only): ``missing="fill"`` or ``"generate"`` gives a
    missing input an imputed embedding (see :mod:`modalfuse.fusion._missing`) that the head sees as
    present; ``quality_aware=True`` appends each input's quality scores (standardised with the training
    rows' means and deviations; 0 where the input is missing) to its embedding, so the head can learn how
    far to trust an input on each row. Corrupted copies of training rows (the estimator's
    ``train_corruptions``) are added to the training rows of the corrupted input's shared encoders and of
    each head, embedded by the same fold's networks.

    Options (declared in ``OPTIONS``, listed by :meth:`option_table`): ``end_to_end`` (default False),
    ``aux_heads`` (default True), ``inner_folds``, ``missing`` (see :class:`MultimodalClassifier`),
    ``quality_aware`` (default False). A subclass adds its own to ``OPTIONS`` (the built-in heads declare
    ``hidden`` with :data:`HIDDEN_OPTION`, say).
    """

    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "end_to_end": Option(
            False,
            "bool",
            "train the strategy's own encoders with its head, not a head on the shared encoders",
        ),
        "aux_heads": Option(
            True, "bool", "with end_to_end: an auxiliary classifier per input while training"
        ),
        "inner_folds": INNER_FOLDS_OPTION,
        "missing": MISSING_OPTION,
        "quality_aware": Option(
            False,
            "bool",
            "give the head each input's quality scores beside its embedding (shared encoders only)",
        ),
    }

    def check_options(self) -> None:
        """``missing`` policies other than ``mask`` and ``quality_aware`` work on the shared encoders'
        embeddings: not with ``end_to_end``."""
        if self.options["end_to_end"]:
            for name, default in (("missing", "mask"), ("quality_aware", False)):
                if self.options[name] != default:
                    raise OptionError(
                        f"{self.owner()}: option {name!r}={self.options[name]!r} works on the shared encoders' "
                        "embeddings; it cannot be combined with end_to_end=True"
                    )

    @property
    def uses_quality(self) -> bool:
        """Whether the head reads the rows' quality scores (option ``quality_aware``)."""
        return bool(self.options["quality_aware"])

    @property
    def uses_augmented_rows(self) -> bool:
        """Heads on the shared encoders also train on corrupted copies of training rows."""
        return not self.end_to_end

    def make_head(self, dims: Mapping[str, int], n_classes: int) -> nn.Module:
        raise NotImplementedError  # pragma: no cover - abstract

    @property
    def end_to_end(self) -> bool:
        """Whether the encoders are trained with the head (option ``end_to_end``) rather than shared."""
        return bool(self.options["end_to_end"])

    def build(self, encoders: Mapping[str, nn.Module]) -> FusionNet:
        """The network: ``encoders`` (modules with a ``dim`` attribute) and this strategy's head.

        Strategies whose network is more than a head on the embeddings (``shared``) override this.
        """
        head = self.make_head({n: e.dim for n, e in encoders.items()}, self.n_classes)
        # auxiliary heads only where encoders are trained; a model saved before "end_to_end" was recorded
        # was trained end to end
        trains_encoders = self.state.get("end_to_end", True)
        aux = trains_encoders and bool(self.options["aux_heads"])
        return FusionNet(encoders, self.n_classes, head=head, aux_heads=aux)

    def _net(self) -> FusionNet:
        return seeded(
            self.config.seed, lambda: self.build({n: info.build() for n, info in self.inputs.items()})
        )

    def _head_net(self, fold: int, dims: Mapping[str, int]) -> FusionNet:
        """Fold ``fold``'s network on precomputed embeddings: identity encoders of widths ``dims``."""
        return seeded(
            self.config.seed + 1000 * fold,
            lambda: self.build({n: FeatureMLP(d, hidden=0) for n, d in dims.items()}),
        )

    def _encoders(self) -> _PerInputModels:
        return _PerInputModels(
            inner_folds=self.options["inner_folds"], missing=self.options["missing"]
        ).setup(self.inputs, self.n_classes, self.config)

    # ----------------------------------------------------------------------------------------- quality
    def _fit_quality(self, data: Data) -> None:
        """Fit the standardisation of the quality scores on the training rows (and their corrupted copies)."""
        from modalfuse._quality import QualityScaler

        self.state.pop("quality", None)
        if not self.uses_quality:
            return
        quality = quality_of(data)
        if quality is None:
            raise OptionError(
                f"{self.owner()}: quality_aware=True needs the rows' quality scores (fit it "
                "through MultimodalClassifier, which computes them)"
            )
        aug = augmented_of(data)
        qa = None if aug is None else quality_of(aug.data)
        rows = {n: np.concatenate([quality[n], qa[n]]) if qa is not None else quality[n] for n in quality}
        scaler = QualityScaler().fit(rows)
        self.state["quality"] = {
            "scaler": scaler.state,
            "dims": {n: int(q.shape[1]) for n, q in quality.items()},
        }

    def _with_quality(
        self, emb: dict[str, tuple[np.ndarray, np.ndarray]], data: Data, rows: np.ndarray | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``emb`` with each input's standardised quality scores appended (``quality_aware``; else as is).
        Rows of ``data`` without scores (a plain dict) get 0, the training mean."""
        st = self.state.get("quality")
        if not st:
            return emb
        from modalfuse._quality import QualityScaler

        scaler = QualityScaler(st["scaler"])
        quality = quality_of(data)
        out = {}
        for n, (e, m) in emb.items():
            width = int(st["dims"].get(n, 0))
            if quality is not None and n in quality and width:
                q = quality[n] if rows is None else quality[n][rows]
                z = np.where(np.asarray(m, bool)[:, None], scaler.transform(n, q), 0.0)
            else:
                z = np.zeros((len(e), width))
            out[n] = (np.concatenate([e, z.astype(e.dtype)], axis=1), m)
        return out

    def _head_rows(
        self,
        encoders: _PerInputModels,
        data: Data,
        fold: int,
        rows: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray | None]:
        """Fold ``fold``'s head training set: the embeddings of its rows (with quality where asked) and of the
        corrupted copies of those rows (``train_corruptions``), their labels and weights."""
        emb = self._with_quality(encoders.embeddings(data, fold, rows, cache=True), data, rows)
        labels, weights = y[rows], _take(sample_weight, rows)
        aug = augmented_of(data)
        if aug is None:
            return emb, labels, weights
        copies = np.flatnonzero(np.isin(aug.rows, rows))
        if not len(copies):
            return emb, labels, weights
        extra = self._with_quality(encoders.embeddings(aug.data, fold, copies), aug.data, copies)
        emb = {
            n: (np.concatenate([e, extra[n][0]]), np.concatenate([m, extra[n][1]]))
            for n, (e, m) in emb.items()
        }
        labels = np.concatenate([labels, y[aug.rows[copies]]])
        if weights is not None:
            weights = np.concatenate([weights, sample_weight[aug.rows[copies]]])
        return emb, labels, weights

    def fit(
        self, data: Data, y: np.ndarray, groups: np.ndarray | None, sample_weight: np.ndarray | None = None
    ) -> FusionStrategy:
        """Train the encoders and head(s); ``sample_weight`` (optional, one per row) weighs every loss."""
        self.state["end_to_end"] = self.end_to_end
        if self.end_to_end:
            with progress.network(f"{self.name}: network 1/1 (end to end)", index=1, total=1):
                self.net_ = train_network(
                    self._net(),
                    data,
                    y,
                    self.config,
                    augment={n: info.spec.augment for n, info in self.inputs.items()},
                    sample_weight=sample_weight,
                )
            return self
        encoders = self._encoders().fit(data, y, groups, sample_weight)
        self.reused_fit_seconds_ = encoders.reused_fit_seconds_
        self._fit_quality(data)
        # Heads train for `epochs` passes over their fold's held-out rows. On AV-Digits (folds 0 and 3) three
        # times as many passes took 2-3x longer and scored no better (shared and attention overfit: -0.01).
        self.heads_ = []
        for fold, (train, held_out) in enumerate(encoders.splits_):
            rows = held_out if len(held_out) else train  # no held-out rows (inner_folds=1): in-sample
            emb, labels, weights = self._head_rows(encoders, data, fold, rows, y, sample_weight)
            config = dataclasses.replace(self.config, augment=False, seed=self.config.seed + 1000 * fold)
            head = self._head_net(fold, {n: e.shape[1] for n, (e, _) in emb.items()})
            total = len(encoders.splits_)
            with progress.network(f"{self.name}: head {fold + 1}/{total}", index=fold + 1, total=total):
                self.heads_.append(train_network(head, emb, labels, config, sample_weight=weights))
        self.encoders_ = encoders
        self.state["encoders"] = encoders.state
        self.state["n_heads"] = len(self.heads_)
        return self

    def _fold_logits(self, data: Data) -> list[np.ndarray]:
        """Each head's logits on ``data``, reading its fold's encoders (shared-encoder mode)."""
        out = []
        for fold, head in enumerate(self.heads_):
            emb = self._with_quality(self.encoders_.embeddings(data, fold), data)
            out.append(predict_logits(head, emb, device=self.config.device))
        return out

    def predict_proba(self, data: Data) -> np.ndarray:
        if self.state.get("end_to_end", True):
            return softmax(predict_logits(self.net_, data, device=self.config.device), axis=1)
        return np.mean([softmax(z, axis=1) for z in self._fold_logits(data)], axis=0)

    def tensors(self) -> dict[str, torch.Tensor]:
        if self.state.get("end_to_end", True):
            return {k: v.detach().cpu() for k, v in self.net_.state_dict().items()}
        out = {f"encoders.{k}": v for k, v in self.encoders_.tensors().items()}
        for i, head in enumerate(self.heads_):
            out.update({f"heads.{i}.{k}": v.detach().cpu() for k, v in head.state_dict().items()})
        return out

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        if self.state.get("end_to_end", True):  # models saved before shared encoders were end to end
            self.net_ = self._net()
            self.net_.load_state_dict(dict(tensors))
            self.net_.eval()
            return
        encoders = self._encoders()
        encoders.state = dict(self.state["encoders"])
        encoders.load_tensors(
            {k[len("encoders.") :]: v for k, v in tensors.items() if k.startswith("encoders.")}
        )
        extra = (self.state.get("quality") or {}).get("dims", {})
        dims = {
            n: next(iter(e.nets[0].encoders.values())).dim + int(extra.get(n, 0))
            for n, e in encoders.models_.items()
        }
        self.encoders_ = encoders
        self.heads_ = []
        for i in range(int(self.state["n_heads"])):
            head = self._head_net(i, dims)
            prefix = f"heads.{i}."
            head.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            self.heads_.append(head.eval())

    def prepare_coalitions(self, data: Data) -> object:
        """Every head's input embeddings, computed once (by its fold's encoders with shared encoders, by the
        strategy's own end to end); coalitions then cost head passes only. Under the ``fill`` / ``generate``
        policies an input left out of a coalition is imputed from those the coalition keeps: each coalition
        is then a prediction of its own (the generic path)."""
        imputes = getattr(getattr(self, "encoders_", None), "imputer_", None) is not None
        if imputes or not own_method(self, "predict_proba", NeuralFusion):
            return super().prepare_coalitions(data)
        device = self.config.device
        if self.state.get("end_to_end", True):
            masks = {n: np.asarray(m, bool) for n, (_, m) in data.items() if n in self.net_.encoders}
            emb = encode_once(self.net_, data, device=device)
            return HeadWork([self.net_], [emb], [masks], n_rows_of(data))
        embeddings, masks = [], []
        for fold, head in enumerate(self.heads_):
            emb = self.encoders_.embeddings(data, fold)
            embeddings.append(encode_once(head, emb, device=device))
            masks.append({n: m for n, (_, m) in emb.items()})
        return HeadWork(self.heads_, embeddings, masks, n_rows_of(data))

    def proba_of_coalitions(self, prepared: object, coalitions: np.ndarray) -> np.ndarray:
        """Every coalition's probabilities (C, N, K) from the embeddings of :meth:`prepare_coalitions`: the
        rows of all coalitions stacked through each head (see :func:`head_coalition_proba`)."""
        if not isinstance(prepared, HeadWork):
            return super().proba_of_coalitions(prepared, coalitions)
        return head_coalition_proba(
            prepared, self.coalition_inputs(), coalitions, self.n_classes, device=self.config.device
        )

    def contributions(self, data: Data) -> dict[str, np.ndarray]:
        """Per input: drop in the predicted class's probability when that input is hidden (occlusion)."""
        full = self.predict_proba(data)
        pred = full.argmax(1)
        rows = np.arange(len(pred))
        out = {}
        for n in self.inputs:
            x, m = data[n]
            hidden = dict(data)
            hidden[n] = (x, np.zeros_like(m))
            out[n] = np.where(m, full[rows, pred] - self.predict_proba(hidden)[rows, pred], 0.0)
        return out


@register_fusion
class EarlyFusion(NeuralFusion):
    """Early fusion: the inputs' embeddings (zeros for a missing input) concatenated with presence
    indicators, classified by an MLP (on the shared encoders by default; see :class:`NeuralFusion`)."""

    name = "early"
    OPTIONS: ClassVar[Mapping[str, Option]] = {"hidden": HIDDEN_OPTION}

    def make_head(self, dims: Mapping[str, int], n_classes: int) -> nn.Module:
        return ConcatHead(dims, n_classes, hidden=self.options["hidden"])
