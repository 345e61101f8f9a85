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
from modalfuse._options import DEFAULT_HIDDEN, Option
from modalfuse.encoders._nets import FeatureMLP
from modalfuse.fusion._base import Data, FusionStrategy, n_rows_of, own_method, register_fusion
from modalfuse.fusion._coalitions import HeadWork, encode_once, head_coalition_proba
from modalfuse.fusion._late import INNER_FOLDS_OPTION, _PerInputModels, _take
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

    Options (declared in ``OPTIONS``, listed by :meth:`option_table`): ``end_to_end`` (default False),
    ``aux_heads`` (default True), ``inner_folds`` (see :class:`MultimodalClassifier`). A subclass adds
    its own to ``OPTIONS`` (the built-in heads declare ``hidden`` with :data:`HIDDEN_OPTION`, say).
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
    }

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
        return _PerInputModels(inner_folds=self.options["inner_folds"]).setup(
            self.inputs, self.n_classes, self.config
        )

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
        # Heads train for `epochs` passes over their fold's held-out rows. On AV-Digits (folds 0 and 3) three
        # times as many passes took 2-3x longer and scored no better (shared and attention overfit: -0.01).
        self.heads_ = []
        for fold, (train, held_out) in enumerate(encoders.splits_):
            rows = held_out if len(held_out) else train  # no held-out rows (inner_folds=1): in-sample
            emb = encoders.embeddings(data, fold, rows, cache=True)
            config = dataclasses.replace(self.config, augment=False, seed=self.config.seed + 1000 * fold)
            head = self._head_net(fold, {n: e.shape[1] for n, (e, _) in emb.items()})
            total = len(encoders.splits_)
            with progress.network(f"{self.name}: head {fold + 1}/{total}", index=fold + 1, total=total):
                self.heads_.append(
                    train_network(head, emb, y[rows], config, sample_weight=_take(sample_weight, rows))
                )
        self.encoders_ = encoders
        self.state["encoders"] = encoders.state
        self.state["n_heads"] = len(self.heads_)
        return self

    def _fold_logits(self, data: Data) -> list[np.ndarray]:
        """Each head's logits on ``data``, reading its fold's encoders (shared-encoder mode)."""
        out = []
        for fold, head in enumerate(self.heads_):
            emb = self.encoders_.embeddings(data, fold)
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
        dims = {n: next(iter(e.nets[0].encoders.values())).dim for n, e in encoders.models_.items()}
        self.encoders_ = encoders
        self.heads_ = []
        for i in range(int(self.state["n_heads"])):
            head = self._head_net(i, dims)
            prefix = f"heads.{i}."
            head.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            self.heads_.append(head.eval())

    def prepare_coalitions(self, data: Data) -> object:
        """Every head's input embeddings, computed once (by its fold's encoders with shared encoders, by the
        strategy's own end to end); coalitions then cost head passes only."""
        if not own_method(self, "predict_proba", NeuralFusion):
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
