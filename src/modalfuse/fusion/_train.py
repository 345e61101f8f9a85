"""Training and inference loops shared by every neural strategy."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from modalfuse import _progress as progress

__all__ = [
    "Batch",
    "ConcatHead",
    "FusionNet",
    "TrainConfig",
    "augmenter",
    "mix_embeddings",
    "predict_logits",
    "recombine",
    "seeded",
    "train_network",
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
        self, dims: Mapping[str, int], n_classes: int, *, hidden: int = 128, dropout: float = 0.2
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
        hidden: int = 128,
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
        """
        emb = self.encode(xs)
        if mixup is None:
            loss = loss_fn(self.fuse(emb, train_masks), y)
        else:
            lam, perm = mixup
            logits = self.fuse(*mix_embeddings(emb, train_masks, lam, perm))
            loss = lam * loss_fn(logits, y) + (1.0 - lam) * loss_fn(logits, y[perm])
        aux = [loss_fn(head(emb[n][masks[n]]), y[masks[n]]) for n, head in self.aux.items() if masks[n].any()]
        if aux:
            loss = loss + torch.stack(aux).mean()
        return loss


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
) -> FusionNet:
    """Train ``net`` on ``data`` (input -> (X, mask), one row per label in ``y``, ints 0..K-1).

    AdamW with a one-cycle learning-rate schedule over ``epochs`` passes, or more when that gives fewer
    than ``config.min_steps`` updates; seeded shuffling, dropout and augmentation, so the
    same config gives the same weights. Returns the network in eval mode.

    Per batch, in this order: with ``config.recombine_ratio > 0`` and more than one input, that share of
    the rows is rebuilt from same-class rows (:func:`recombine`); augmentation; modality dropout; with
    ``config.mixup_alpha > 0``, multimodal mixup of the embeddings with a ``Beta(alpha, alpha)`` weight
    (see :meth:`FusionNet.training_loss`). All of it is drawn from the seeded training generator.
    """
    with torch.random.fork_rng(devices=[]):  # seeded dropout, without touching the caller's RNG state
        torch.manual_seed(config.seed)
        return _train(net, data, y, config, augment=augment, class_weight=class_weight)


def _train(
    net: FusionNet,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    config: TrainConfig,
    *,
    augment: Mapping[str, str | None] | None,
    class_weight: np.ndarray | None,
) -> FusionNet:
    gen = torch.Generator().manual_seed(config.seed)
    net.to(config.device).train()
    xs, ms = _to_tensors(data, config.device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(config.device)
    n = len(yt)
    bs = max(1, min(config.batch_size, n))
    steps_per_epoch = math.ceil(n / bs)
    opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    # small tables get more epochs, so a network is never left with a handful of updates
    total_steps = max(1, config.epochs * steps_per_epoch, config.min_steps)
    epochs = math.ceil(total_steps / steps_per_epoch)
    # OneCycleLR divides by (pct_start * total_steps - 1): a warm-up of exactly one step is degenerate
    pct_start = 0.25 if total_steps != 4 else 0.3
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.learning_rate, total_steps=total_steps, pct_start=pct_start
    )
    weight = (
        None
        if class_weight is None
        else torch.as_tensor(class_weight, dtype=torch.float32, device=config.device)
    )
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    augs = {n: augmenter(k) for n, k in (augment or {}).items()} if config.augment else {}
    names = list(xs)
    # Generation of new rows draws from the training generator only when it is switched on, so a run
    # without it consumes exactly the random numbers it always did.
    recombining = config.recombine_ratio > 0 and len(names) > 1
    mixing = config.mixup_alpha > 0
    beta_rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen))) if mixing else None
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        losses: list[torch.Tensor] = []
        for start in range(0, n, bs):
            if step == total_steps:
                break
            idx = order[start : start + bs]
            if len(idx) < 2 and n >= 2:
                continue  # BatchNorm needs two rows
            bx = {k: xs[k][idx] for k in names}
            bm = {k: ms[k][idx] for k in names}
            if recombining:
                bx, bm = recombine(bx, bm, yt[idx], config.recombine_ratio, gen)
            for k, fn in augs.items():
                if fn is not None:
                    bx[k] = fn(bx[k], gen)
            train_masks = bm
            if config.modality_dropout > 0 and len(names) > 1:
                train_masks = _drop_modalities(bm, config.modality_dropout, gen)
            if beta_rng is not None:
                lam = float(beta_rng.beta(config.mixup_alpha, config.mixup_alpha))
                perm = torch.randperm(len(idx), generator=gen).to(config.device)
                loss = net.training_loss(bx, bm, train_masks, yt[idx], loss_fn, mixup=(lam, perm))
            else:
                loss = net.training_loss(bx, bm, train_masks, yt[idx], loss_fn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.detach())
        progress.epoch(epoch + 1, epochs, losses)
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
