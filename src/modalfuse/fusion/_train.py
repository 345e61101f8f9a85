"""Training and inference loops shared by every neural strategy."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from modalfuse import _progress as progress
from modalfuse._errors import TrainingError
from modalfuse._options import DEFAULT_HIDDEN

__all__ = [
    "Batch",
    "ConcatHead",
    "FusionNet",
    "RowWeightedLoss",
    "TrainConfig",
    "augmenter",
    "mix_embeddings",
    "predict_logits",
    "recombine",
    "seeded",
    "train_network",
    "weighted_loss",
]

Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (see ``MultimodalClassifier`` for their meaning)."""

    epochs: int = 20
    min_steps: int = 0
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    modality_dropout: float = 0.0
    augment: bool = True
    recombine_ratio: float = 0.0
    mixup_alpha: float = 0.0
    seed: int = 0
    device: str = "cpu"


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with PyTorch's global generator seeded with ``seed`` (its state restored afterwards),
    so a network's initial weights depend on the seed only, not on what ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class ConcatHead(nn.Module):
    """Early-fusion head: masked embeddings concatenated with presence indicators, then an MLP.

    With one input it is a linear classifier on that input's embedding. Missing inputs contribute zeros
    and a 0 indicator, so the head learns what absence means.
    """

    def __init__(
        self, dims: Mapping[str, int], n_classes: int, *, hidden: int = DEFAULT_HIDDEN, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.names = list(dims)
        width = sum(dims.values()) + (len(dims) if len(dims) > 1 else 0)
        if len(dims) > 1 and hidden:
            self.net: nn.Module = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(width, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_classes),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout if hidden else 0.0), nn.Linear(width, n_classes))

    def forward(
        self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        parts = [embeddings[n] * masks[n].float().unsqueeze(1) for n in self.names]
        if len(self.names) > 1:
            parts.append(torch.stack([masks[n].float() for n in self.names], dim=1))
        return self.net(torch.cat(parts, dim=1))


class FusionNet(nn.Module):
    """Encoders per input, then a fusion head ``head(embeddings, masks) -> logits``.

    ``head`` defaults to :class:`ConcatHead` (early fusion; with one input, a unimodal model).
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        n_classes: int,
        *,
        hidden: int = DEFAULT_HIDDEN,
        dropout: float = 0.2,
        aux_heads: bool = False,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        # Auxiliary per-input classifiers (training only): each encoder must learn on its own, so a fast
        # learner (one modality) cannot starve the others of gradient.
        self.aux = nn.ModuleDict(
            {n: nn.Linear(e.dim, n_classes) for n, e in self.encoders.items()}
            if aux_heads and len(self.encoders) > 1
            else {}
        )
        self.head = (
            head
            if head is not None
            else ConcatHead(
                {n: e.dim for n, e in self.encoders.items()}, n_classes, hidden=hidden, dropout=dropout
            )
        )

    def encode(self, xs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each input's embedding, (N, dim) per input, ignoring masks."""
        return {name: enc(xs[name]) for name, enc in self.encoders.items()}

    def fuse(self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits from embeddings through the fusion head."""
        return self.head(embeddings, masks)

    def forward(self, xs: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.fuse(self.encode(xs), masks)

    def training_loss(
        self,
        xs: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        train_masks: Mapping[str, torch.Tensor],
        y: torch.Tensor,
        loss_fn: nn.Module,
        *,
        mixup: tuple[float, torch.Tensor] | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of the fused prediction under ``train_masks`` (masks after modality dropout) plus, with
        auxiliary heads, the mean loss of each input's own prediction on the rows where it is present.

        Parameters
        ----------
        xs, masks : dict of Tensor
            The batch's arrays and presence masks, per input.
        train_masks : dict of Tensor
            The masks the fused prediction sees (``masks`` after modality dropout).
        y : Tensor of shape (N,)
            Integer labels.
        loss_fn : nn.Module
            Per-batch loss, ``loss_fn(logits, y)``.
        mixup : (float, Tensor), optional
            Multimodal (manifold) mixup with weight ``lam`` and row permutation ``perm``: the fused head sees
            every input's embeddings interpolated between each row and row ``perm[i]`` (see
            :func:`mix_embeddings`) and the loss is ``lam * loss(y) + (1 - lam) * loss(y[perm])``.
            Auxiliary heads see the un-mixed embeddings. None (the default) trains on the rows as they are.
        weight : Tensor of shape (N,), optional
            Per-row weights, passed on as ``loss_fn(logits, y, weight)`` (rows selected alike); None calls
            ``loss_fn(logits, y)``.
        """
        emb = self.encode(xs)
        if mixup is None:
            loss = weighted_loss(loss_fn, self.fuse(emb, train_masks), y, weight)
        else:
            lam, perm = mixup
            logits = self.fuse(*mix_embeddings(emb, train_masks, lam, perm))
            loss = lam * weighted_loss(loss_fn, logits, y, weight) + (1.0 - lam) * weighted_loss(
                loss_fn, logits, y[perm], None if weight is None else weight[perm]
            )
        aux = [
            weighted_loss(
                loss_fn, head(emb[n][masks[n]]), y[masks[n]], None if weight is None else weight[masks[n]]
            )
            for n, head in self.aux.items()
            if masks[n].any()
        ]
        if aux:
            loss = loss + torch.stack(aux).mean()
        return loss


def weighted_loss(
    loss_fn: Callable[..., torch.Tensor], logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None
) -> torch.Tensor:
    """``loss_fn(logits, y)``, or ``loss_fn(logits, y, weight)`` with per-row weights."""
    return loss_fn(logits, y) if weight is None else loss_fn(logits, y, weight)


def augmenter(kind: str | None) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """The train-time augmentation function for an encoder's ``augment`` kind."""
    if kind == "image":
        from modalfuse.modalities.image import augment_images

        return lambda x, g: augment_images(x, generator=g, max_rotate=10.0, max_shift=0.1, max_scale=0.1)
    if kind == "spectrogram":
        from modalfuse.modalities.audio import augment_spectrograms

        return lambda x, g: augment_spectrograms(x, generator=g)
    if kind == "tokens":
        from modalfuse.modalities.text import augment_tokens

        return lambda x, g: augment_tokens(x, generator=g, drop_prob=0.1)
    return None


def _to_tensors(data: Mapping[str, tuple[np.ndarray, np.ndarray]], device: str) -> Batch:
    xs = {n: torch.from_numpy(np.ascontiguousarray(x)).to(device) for n, (x, _) in data.items()}
    ms = {n: torch.from_numpy(np.ascontiguousarray(m)).to(device) for n, (_, m) in data.items()}
    return xs, ms


def train_network(
    net: FusionNet,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    config: TrainConfig,
    *,
    augment: Mapping[str, str | None] | None = None,
    class_weight: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
) -> FusionNet:
    """Train ``net`` on ``data`` (input -> (X, mask), one row per label in ``y``, ints 0..K-1).

    AdamW with a one-cycle learning-rate schedule over ``epochs`` passes, or more when that gives fewer
    than ``config.min_steps`` updates; seeded shuffling, dropout and augmentation, so the
    same config gives the same weights. Returns the network in eval mode.

    Per batch, in this order: with ``config.recombine_ratio > 0`` and more than one input, that share of
    the rows is rebuilt from same-class rows (:func:`recombine`); augmentation; modality dropout; with
    ``config.mixup_alpha > 0``, multimodal mixup of the embeddings with a ``Beta(alpha, alpha)`` weight
    (see :meth:`FusionNet.training_loss`). All of it is drawn from the seeded training generator.

    Parameters
    ----------
    class_weight : ndarray of shape (n_classes,), optional
        Weight of each class in the loss (PyTorch's ``CrossEntropyLoss(weight=...)``).
    sample_weight : ndarray of shape (n_rows,), optional
        Weight of each row: each batch's loss is the weighted mean of its rows' losses (a recombined row
        keeps its own weight; a mixed-up row's two terms carry their rows' weights). Non-negative.

    Raises
    ------
    TrainingError
        When no optimiser step was made (``batch_size=1``: one-row batches are skipped, BatchNorm needs two
        rows; or no training row).
    """
    with torch.random.fork_rng(devices=[]):  # seeded dropout, without touching the caller's RNG state
        torch.manual_seed(config.seed)
        return _train(
            net, data, y, config, augment=augment, class_weight=class_weight, sample_weight=sample_weight
        )


def _plan_steps(n: int, config: TrainConfig) -> tuple[int, int, int]:
    """Batch size, total optimiser steps and epochs: small tables get more epochs, so a network is never
    left with a handful of updates (at least ``config.min_steps``).

    Only the batches that are trained count: a last batch of one row is skipped (BatchNorm needs two), so
    it must not be counted, or the learning-rate schedule would be planned for steps that never come and
    stop half way through its cycle."""
    bs = max(1, min(config.batch_size, n))
    full, rest = divmod(n, bs)
    steps_per_epoch = max(1, full + (1 if rest >= 2 or (rest == 1 and n == 1) else 0))
    total_steps = max(1, config.epochs * steps_per_epoch, config.min_steps)
    return bs, total_steps, math.ceil(total_steps / steps_per_epoch)


def _optimiser(net: nn.Module, config: TrainConfig, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW and its one-cycle learning-rate schedule over ``total_steps``.

    A submodule with an ``lr_scale`` attribute (e.g. pretrained blocks being fine-tuned) trains its
    parameters at ``learning_rate * lr_scale``; the others at ``learning_rate``."""
    scaled: dict[int, float] = {}
    for module in net.modules():
        scale = getattr(module, "lr_scale", None)
        if scale is not None:
            scaled.update({id(p): float(scale) for p in module.parameters()})
    max_lr: float | list[float] = config.learning_rate
    if scaled:
        groups: dict[float, list[nn.Parameter]] = {}
        for p in net.parameters():
            groups.setdefault(scaled.get(id(p), 1.0), []).append(p)
        max_lr = [config.learning_rate * scale for scale in groups]
        params: Any = [{"params": ps, "lr": lr} for ps, lr in zip(groups.values(), max_lr, strict=True)]
    else:
        params = net.parameters()
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    # OneCycleLR divides by (pct_start * total_steps - 1): a warm-up of exactly one step is degenerate
    pct_start = 0.25 if total_steps != 4 else 0.3
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start
    )
    return opt, sched


class RowWeightedLoss(nn.Module):
    """Cross-entropy (with label smoothing) whose batch value is the weighted mean of the rows' losses.

    ``loss(logits, y)`` is the plain mean; ``loss(logits, y, weight)`` weighs row ``i`` by ``weight[i]``
    (a batch whose weights are all 0 has loss 0).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self, logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        losses = nn.functional.cross_entropy(
            logits, y, reduction="none", label_smoothing=self.label_smoothing
        )
        if weight is None:
            return losses.mean()
        return (losses * weight).sum() / weight.sum().clamp_min(1e-12)


def _loss_function(
    config: TrainConfig, class_weight: np.ndarray | None, sample_weight: np.ndarray | None
) -> nn.Module:
    """The loss: PyTorch's cross-entropy (class weights, if any), or a row-weighted one for row weights."""
    if sample_weight is not None:
        return RowWeightedLoss(config.label_smoothing)
    weight = (
        None
        if class_weight is None
        else torch.as_tensor(class_weight, dtype=torch.float32, device=config.device)
    )
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


class _TrainingRun:
    """The state of one training run: tensors, optimiser, schedule, loss and the seeded generators."""

    def __init__(
        self,
        net: FusionNet,
        data: Mapping[str, tuple[np.ndarray, np.ndarray]],
        y: np.ndarray,
        config: TrainConfig,
        augment: Mapping[str, str | None] | None,
        class_weight: np.ndarray | None,
        sample_weight: np.ndarray | None,
    ) -> None:
        self.net, self.config = net, config
        self.gen = torch.Generator().manual_seed(config.seed)
        net.to(config.device).train()
        self.xs, self.ms = _to_tensors(data, config.device)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(config.device)
        self.weight = (
            None
            if sample_weight is None
            else torch.as_tensor(np.asarray(sample_weight, np.float32), device=config.device)
        )
        self.n = len(self.y)
        self.batch_size, self.total_steps, self.epochs = _plan_steps(self.n, config)
        self.opt, self.sched = _optimiser(net, config, self.total_steps)
        self.loss_fn = _loss_function(config, class_weight, sample_weight)
        self.augs = {k: augmenter(a) for k, a in (augment or {}).items()} if config.augment else {}
        self.names = list(self.xs)
        # Generation of new rows draws from the training generator only when it is switched on, so a run
        # without it consumes exactly the random numbers it always did.
        self.recombining = config.recombine_ratio > 0 and len(self.names) > 1
        self.beta_rng = (
            np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=self.gen)))
            if config.mixup_alpha > 0
            else None
        )
        self.steps = 0

    def batches(self) -> Iterator[torch.Tensor]:
        """One epoch's batches of row indices (seeded shuffle), ending early once every step is made.
        One-row batches are skipped (BatchNorm needs two rows) unless the table has a single row."""
        order = torch.randperm(self.n, generator=self.gen)
        for start in range(0, self.n, self.batch_size):
            if self.steps == self.total_steps:
                return
            idx = order[start : start + self.batch_size]
            if len(idx) >= 2 or self.n < 2:
                yield idx

    def _batch(self, idx: torch.Tensor) -> tuple[Batch, dict[str, torch.Tensor]]:
        """The batch's arrays and masks after recombination and augmentation, and its training masks
        (after modality dropout)."""
        bx = {k: self.xs[k][idx] for k in self.names}
        bm = {k: self.ms[k][idx] for k in self.names}
        if self.recombining:
            bx, bm = recombine(bx, bm, self.y[idx], self.config.recombine_ratio, self.gen)
        for k, fn in self.augs.items():
            if fn is not None:
                bx[k] = fn(bx[k], self.gen)
        train_masks = bm
        if self.config.modality_dropout > 0 and len(self.names) > 1:
            train_masks = _drop_modalities(bm, self.config.modality_dropout, self.gen)
        return (bx, bm), train_masks

    def step(self, idx: torch.Tensor) -> float:
        """One optimiser step on the rows ``idx``; returns the batch's loss."""
        (bx, bm), train_masks = self._batch(idx)
        extra: dict[str, Any] = {} if self.weight is None else {"weight": self.weight[idx]}
        if self.beta_rng is not None:
            lam = float(self.beta_rng.beta(self.config.mixup_alpha, self.config.mixup_alpha))
            perm = torch.randperm(len(idx), generator=self.gen).to(self.config.device)
            extra["mixup"] = (lam, perm)
        loss = self.net.training_loss(bx, bm, train_masks, self.y[idx], self.loss_fn, **extra)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.steps += 1
        return float(loss.detach())


def _train(
    net: FusionNet,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    config: TrainConfig,
    *,
    augment: Mapping[str, str | None] | None,
    class_weight: np.ndarray | None,
    sample_weight: np.ndarray | None = None,
) -> FusionNet:
    run = _TrainingRun(net, data, y, config, augment, class_weight, sample_weight)
    for epoch in range(run.epochs):
        losses = [run.step(idx) for idx in run.batches()]
        progress.epoch(epoch + 1, run.epochs, losses)
    if run.steps == 0:
        raise TrainingError(
            f"training made no optimiser step ({run.n} rows, batch_size={config.batch_size}): one-row "
            "batches are skipped because BatchNorm needs two rows; use batch_size >= 2"
        )
    return net.eval()


def recombine(
    xs: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    ratio: float,
    generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """New multimodal rows from the modalities of other rows of the same class (the AV-MNIST construction).

    ``round(ratio * N)`` rows of the batch, chosen at random, are rebuilt: each input's value (its array
    and its mask) is taken from a random *other* row of the same class in which that input is present,
    independently per input. Where the row is the only one of its class with the input, it keeps its own;
    where no row of its class has the input, it stays missing. Rows are never left with fewer inputs than
    they had, and the arrays and masks always come from the same donor row.

    Parameters
    ----------
    xs, masks : dict of Tensor
        Per input, the batch's arrays (N, ...) and presence masks (N,) bool.
    y : Tensor of shape (N,)
        Integer class labels.
    ratio : float
        Share of rows to rebuild, in [0, 1].
    generator : torch.Generator
        Source of every random choice.

    Returns
    -------
    xs, masks : dict of Tensor
        New dicts; the inputs are not modified.
    """
    n = len(y)
    k = round(min(max(float(ratio), 0.0), 1.0) * n)
    xs, masks = dict(xs), dict(masks)
    if k == 0 or n < 2:
        return xs, masks
    chosen = torch.zeros(n, dtype=torch.bool, device=y.device)
    chosen[torch.randperm(n, generator=generator)[:k].to(y.device)] = True
    rows = torch.arange(n, device=y.device)
    classes = torch.unique(y).tolist()
    for name in list(xs):
        present = masks[name]
        donor = rows.clone()
        for c in classes:
            of_class = y == c
            candidates = rows[of_class & present]  # sorted row numbers
            targets = rows[of_class & chosen]
            n_cand = len(candidates)
            if n_cand == 0 or len(targets) == 0:
                continue
            # each target draws uniformly among the candidates other than itself: draw a position among
            # n_cand - 1 slots and step over the target's own slot
            is_cand = present[targets]
            own = torch.searchsorted(candidates, targets)
            slots = torch.where(is_cand, n_cand - 1, n_cand)
            u = torch.rand(len(targets), generator=generator).to(y.device)
            pos = torch.minimum((u * slots).long(), (slots - 1).clamp(min=0))
            pos = torch.where(is_cand & (pos >= own), pos + 1, pos)
            picked = candidates[pos.clamp(max=n_cand - 1)]
            donor[targets] = torch.where(is_cand & (slots == 0), targets, picked)
        xs[name] = xs[name][donor]
        masks[name] = present[donor]
    return xs, masks


def mix_embeddings(
    embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor], lam: float, perm: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Multimodal mixup of embeddings: each row interpolated with row ``perm[i]``, every input alike.

    Where both rows have an input, its embedding is ``lam * e_i + (1 - lam) * e_perm[i]``; where only one
    of them has it, that row's embedding is used as it is (a missing input's embedding, the encoder's
    output for zeros, is never mixed in); the mixed mask is the OR of the two rows' masks (for
    ``0 < lam < 1``; a row of weight 0 adds nothing). With ``lam == 1`` the embeddings and masks are
    returned unchanged.

    Parameters
    ----------
    embeddings, masks : dict of Tensor
        Per input, (N, dim) embeddings and (N,) bool presence masks.
    lam : float
        Interpolation weight of the rows themselves, in [0, 1].
    perm : Tensor of shape (N,)
        The partner of each row.

    Returns
    -------
    embeddings, masks : dict of Tensor
    """
    out_e, out_m = {}, {}
    for name, e in embeddings.items():
        m = masks[name]
        wa = lam * m.to(e.dtype)
        wb = (1.0 - lam) * m[perm].to(e.dtype)
        total = wa + wb
        present = total > 0
        safe = torch.where(present, total, torch.ones_like(total)).unsqueeze(1)
        mixed = (wa.unsqueeze(1) * e + wb.unsqueeze(1) * e[perm]) / safe
        out_e[name] = torch.where(present.unsqueeze(1), mixed, e)  # where neither row has it: as it was
        out_m[name] = present
    return out_e, out_m


def _drop_modalities(
    masks: dict[str, torch.Tensor], p: float, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Hide each present input with probability ``p``, never hiding every input of a row."""
    stacked = torch.stack([masks[k] for k in masks], dim=1)
    drop = torch.rand(stacked.shape, generator=gen).to(stacked.device) < p
    kept = stacked & ~drop
    none_left = ~kept.any(dim=1)
    kept[none_left] = stacked[none_left]
    return {k: kept[:, i] for i, k in enumerate(masks)}


@torch.no_grad()
def predict_logits(
    net: FusionNet,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    batch_size: int = 256,
    device: str = "cpu",
) -> np.ndarray:
    """Logits (N, K) of ``net`` in eval mode."""
    net.to(device).eval()
    xs, ms = _to_tensors(data, device)
    n = len(next(iter(ms.values())))
    out = [
        net(
            {k: v[s : s + batch_size] for k, v in xs.items()},
            {k: v[s : s + batch_size] for k, v in ms.items()},
        )
        for s in range(0, n, batch_size)
    ]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), np.float32)
