"""A shared representation space: per-input projection heads aligned by a contrastive loss, and CCA.

``shared`` trains a small projection head per input (on the shared per-input encoders, or with its own
encoders end to end) into one L2-normalised space, with
a classification loss on the pooled embedding of the inputs present in a row plus a symmetric InfoNCE
(CLIP-style) loss that pulls the embeddings of one row's inputs together and pushes other rows' apart. The
same space gives cross-modal retrieval (:meth:`SharedFusion.retrieve`; measured by
:func:`modalfuse.evaluate.retrieval_recall`) and imputes a missing input's embedding from the others
(:meth:`SharedFusion.impute`).

``cca`` is the linear baseline: PCA per input, canonical correlation analysis between inputs, logistic
regression on the canonical variates. Its transform is plain numpy on arrays saved with the model, so a
saved model loads without pickle.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import softmax
from torch import nn

from modalfuse._errors import ModalfuseError, OptionError, SchemaError
from modalfuse._options import DEFAULT_HIDDEN, Option
from modalfuse.fusion._base import Data, FusionStrategy, own_method, register_fusion
from modalfuse.fusion._early import HIDDEN_OPTION, NeuralFusion
from modalfuse.fusion._train import FusionNet, weighted_loss

__all__ = ["CCAFusion", "SharedFusion", "SharedSpaceNet", "info_nce"]

#: Initial CLIP logit scale (inverse temperature 1/0.07) and its ceiling.
_INIT_LOGIT_SCALE = 1 / 0.07
_MAX_LOGIT_SCALE = 100.0


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    logit_scale: torch.Tensor | float = _INIT_LOGIT_SCALE,
) -> torch.Tensor:
    """Symmetric InfoNCE (the CLIP loss) between paired embeddings.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are a positive pair; every other row of the batch is a
    negative. The loss is the mean of the cross-entropy of ``a -> b`` and of ``b -> a`` over the scaled
    cosine-similarity matrix.

    Parameters
    ----------
    a, b : torch.Tensor of shape (n, dim)
        Embeddings of the same ``n`` rows from two inputs; normalised here, so any scale is accepted.
    logit_scale : float or torch.Tensor
        Inverse temperature multiplying the cosine similarities.

    Returns
    -------
    torch.Tensor
        A scalar; symmetric in ``a`` and ``b``.
    """
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = logit_scale * (a @ b.T)
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class SharedSpaceNet(FusionNet):
    """Encoders, per-input projection heads into one normalised space, and a classifier on the pooled embedding.

    For each input, ``encoder -> Linear -> ReLU -> Linear -> L2 normalisation`` gives a ``shared_dim``
    embedding. A row's pooled embedding is the mean of the embeddings of its present inputs, normalised
    again; the logits are a linear classifier on it, scaled by a learned temperature. A row with no input
    present gets a zero pooled embedding, so its logits are the classifier's bias.

    Parameters
    ----------
    encoders : mapping of str to nn.Module
        One encoder per input, each with a ``dim`` attribute (its embedding width).
    n_classes : int
        Number of classes.
    shared_dim : int, default=64
        Width of the shared space.
    hidden : int, default=128
        Hidden width of the projection heads (0: a single linear layer).
    contrastive_weight : float, default=1.0
        Weight of the InfoNCE term in :meth:`training_loss`.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        n_classes: int,
        *,
        shared_dim: int = 64,
        hidden: int = DEFAULT_HIDDEN,
        contrastive_weight: float = 1.0,
    ) -> None:
        super().__init__(encoders, n_classes, head=nn.Linear(shared_dim, n_classes), aux_heads=False)
        self.shared_dim = shared_dim
        self.contrastive_weight = float(contrastive_weight)

        def projection(dim: int) -> nn.Module:
            if hidden:
                return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, shared_dim))
            return nn.Linear(dim, shared_dim)

        self.projections = nn.ModuleDict({n: projection(e.dim) for n, e in self.encoders.items()})
        self.class_log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(_INIT_LOGIT_SCALE)))

    @property
    def logit_scale(self) -> torch.Tensor:
        """The contrastive inverse temperature, ``exp(log_logit_scale)`` clamped at 100."""
        return self.log_logit_scale.exp().clamp(max=_MAX_LOGIT_SCALE)

    def project(self, embeddings: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each input's normalised shared embedding (N, shared_dim) from its encoder embedding."""
        return {n: F.normalize(self.projections[n](e), dim=1) for n, e in embeddings.items()}

    def pool(self, shared: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The normalised mean of the shared embeddings of the inputs present in each row (zeros if none)."""
        names = list(shared)
        w = torch.stack([masks[n].float() for n in names], dim=1)  # (N, M)
        z = torch.stack([shared[n] for n in names], dim=1)  # (N, M, D)
        mean = (z * w.unsqueeze(2)).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)
        return F.normalize(mean, dim=1)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from pooled embeddings: a linear classifier with a learned temperature."""
        return self.head(pooled * self.class_log_scale.exp())

    def fuse(self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits from the encoders' embeddings: project, pool the present inputs, classify."""
        return self.classify(self.pool(self.project(embeddings), masks))

    def contrastive_loss(
        self,
        shared: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        """Mean symmetric InfoNCE over every pair of inputs, each on the rows where both are present.

        A pair with fewer than two such rows is skipped (a single row has no negative); with no usable
        pair the loss is 0.
        """
        terms = []
        for a, b in itertools.combinations(list(shared), 2):
            both = masks[a] & masks[b]
            if int(both.sum()) >= 2:
                terms.append(info_nce(shared[a][both], shared[b][both], self.logit_scale))
        if not terms:
            return self.log_logit_scale.new_zeros(())
        return torch.stack(terms).mean()

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
        """Classification loss of the pooled embedding plus ``contrastive_weight`` x InfoNCE.

        Parameters
        ----------
        xs, masks : dict of Tensor
            The batch's arrays and real presence masks, per input; the contrastive term uses ``masks``
            (an input hidden by modality dropout still has its true pair).
        train_masks : dict of Tensor
            The masks the classifier sees (``masks`` after modality dropout).
        y : Tensor of shape (N,)
            Integer labels.
        loss_fn : nn.Module
            ``loss_fn(logits, y)``.
        mixup : (float, Tensor), optional
            Mixup weight ``lam`` and row permutation ``perm``: the classifier sees the pooled embeddings
            interpolated between each row and row ``perm[i]`` (normalised again), with loss
            ``lam * loss(y) + (1 - lam) * loss(y[perm])``; the contrastive term sees the rows unmixed.
        weight : Tensor of shape (N,), optional
            Per-row weights of the classification loss (``loss_fn(logits, y, weight)``); the contrastive
            term is not weighted.
        """
        shared = self.project(self.encode(xs))
        pooled = self.pool(shared, train_masks)
        if mixup is None:
            loss = weighted_loss(loss_fn, self.classify(pooled), y, weight)
        else:
            lam, perm = mixup
            logits = self.classify(F.normalize(lam * pooled + (1.0 - lam) * pooled[perm], dim=1))
            loss = lam * weighted_loss(loss_fn, logits, y, weight) + (1.0 - lam) * weighted_loss(
                loss_fn, logits, y[perm], None if weight is None else weight[perm]
            )
        if self.contrastive_weight > 0 and len(shared) > 1:
            loss = loss + self.contrastive_weight * self.contrastive_loss(shared, masks)
        return loss


def _top_k(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` nearest gallery rows per query row.

    Rows holding NaN are missing: a missing query row gets -1 / NaN, a missing gallery row is never
    returned; with fewer than ``k`` usable gallery rows the tail is -1 / NaN. Ties keep gallery order.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    idx = np.full((len(query), k), -1, dtype=np.int64)
    scores = np.full((len(query), k), np.nan)
    q_ok = np.flatnonzero(~np.isnan(query).any(axis=1))
    g_ok = np.flatnonzero(~np.isnan(gallery).any(axis=1))
    kk = min(k, len(g_ok))
    if kk == 0 or len(q_ok) == 0:
        return idx, scores

    def unit(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    sims = unit(query[q_ok]) @ unit(gallery[g_ok]).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
    idx[q_ok, :kk] = g_ok[order]
    scores[q_ok, :kk] = np.take_along_axis(sims, order, axis=1)
    return idx, scores


def _check_input(strategy: FusionStrategy, name: str) -> None:
    if name not in strategy.inputs:
        raise SchemaError(f"unknown input {name!r}; the model's inputs are {list(strategy.inputs)}")


@register_fusion
class SharedFusion(NeuralFusion):
    """Shared representation space: projection heads aligned by InfoNCE, classified on the pooled embedding.

    Every input's embedding goes through a projection head (Linear -> ReLU -> Linear) into one
    L2-normalised space of width ``shared_dim``. The embeddings come from the per-input encoders shared
    with late fusion, one space per inner fold (see :class:`NeuralFusion`), or, with ``end_to_end=True``,
    from encoders trained with the heads (one space). Training minimises the classification loss of the pooled embedding
    (normalised mean of the embeddings of the inputs present; modality dropout hides inputs here) plus
    ``contrastive_weight`` x the symmetric InfoNCE loss averaged over every pair of inputs, on the rows
    where both inputs are really present (learnable logit scale, initially 1/0.07, at most 100).

    Missing inputs: a missing input's embedding is imputed as the normalised mean of the present inputs'
    embeddings (:meth:`impute`; the contrastive loss aligns them). Classifying a row from the pooled
    embedding of its present inputs is exactly classifying it with the missing inputs imputed: the mean
    over all inputs then points in the same direction, and the pooled embedding is normalised.

    Generation of training rows applies as for the other neural strategies: with ``mixup_alpha`` the
    classifier is trained on mixed pooled embeddings (the contrastive term on the rows as they are); with
    ``recombine_ratio``, a recombined row's inputs come from different rows of one class, so the
    contrastive term then aligns same-class rather than same-row pairs for those rows.

    Options: ``shared_dim`` (default 64), ``contrastive_weight`` (default 1.0; ``"shared:0"`` trains the
    task loss only, an ablation), ``hidden`` (projection width, default 128), ``end_to_end``. Cross-modal
    retrieval:
    :meth:`retrieve` and :func:`modalfuse.evaluate.retrieval_recall`.
    """

    name = "shared"
    argument_name: ClassVar[str | None] = "contrastive_weight"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "shared_dim": Option(64, "int", "width of the shared space", low=1),
        "contrastive_weight": Option(
            1.0, "float", "weight of the InfoNCE term ('shared:0' trains the task loss only)", low=0.0
        ),
        "hidden": HIDDEN_OPTION,
    }

    def check_options(self) -> None:
        """As :class:`NeuralFusion`; and no ``quality_aware``: the shared space embeds each input alone (its
        embeddings serve retrieval), so quality scores have no place in it."""
        super().check_options()
        if self.options["quality_aware"]:
            raise OptionError(
                f"{self.owner()}: quality_aware=True is not available for the shared space (its projections "
                "embed each input alone, for retrieval); use early, tensor, lowrank or attention"
            )

    @property
    def shared_dim(self) -> int:
        """Width of the shared space."""
        return self.options["shared_dim"]

    @property
    def contrastive_weight(self) -> float:
        """Weight of the InfoNCE term (``"shared:W"`` sets it)."""
        return self.options["contrastive_weight"]

    def build(self, encoders: Mapping[str, nn.Module]) -> FusionNet:
        """A :class:`SharedSpaceNet` over ``encoders``."""
        return SharedSpaceNet(
            encoders,
            self.n_classes,
            shared_dim=self.shared_dim,
            hidden=self.options["hidden"],
            contrastive_weight=self.contrastive_weight,
        )

    @property
    def n_spaces(self) -> int:
        """Number of shared spaces: one per head (one per inner fold with shared encoders, else one)."""
        return 1 if self.state.get("end_to_end", True) else len(self.heads_)

    @torch.no_grad()
    def embed(
        self, data: Data, inputs: Sequence[str] | None = None, *, batch_size: int = 256
    ) -> dict[str, np.ndarray]:
        """Each input's normalised shared embedding.

        With shared encoders there is one space per inner fold (each head's): the embedding is the
        concatenation of the row's unit vector in every space, divided by the square root of their number,
        so it has unit norm and the cosine similarity of two embeddings is the mean of their similarities
        in the separate spaces.

        Parameters
        ----------
        data : mapping of str to (X, mask)
            Preprocessed inputs, as given to ``predict_proba``.
        inputs : sequence of str, optional
            The inputs to embed (default: all).

        Returns
        -------
        dict of str to ndarray of shape (N, shared_dim * n_spaces)
            NaN in the rows where the input is missing.
        """
        names = list(self.inputs) if inputs is None else list(inputs)
        for name in names:
            _check_input(self, name)
        if self.state.get("end_to_end", True):
            net = self.net_.to(self.config.device).eval()
            spaces = [{n: (net, data[n][0], np.asarray(data[n][1], bool)) for n in names}]
        else:
            spaces = []
            for fold, head in enumerate(self.heads_):
                # retrieval embeds what a row has: a missing input is never imputed here
                emb = self.encoders_.embeddings({n: data[n] for n in names}, fold, inputs=names, impute=False)
                spaces.append(
                    {
                        n: (head.to(self.config.device).eval(), *emb[n])
                        if n in emb
                        else (head, data[n][0], np.zeros(len(data[n][1]), bool))
                        for n in names
                    }
                )
        out = {}
        for name in names:
            n_rows = len(data[name][1])
            blocks = np.zeros((n_rows, len(spaces), self.shared_dim), np.float32)
            present = np.zeros((n_rows, len(spaces)), bool)
            for s, space in enumerate(spaces):
                net, x, mask = space[name]
                rows = np.flatnonzero(mask)
                for start in range(0, len(rows), batch_size):
                    r = rows[start : start + batch_size]
                    xt = torch.from_numpy(np.ascontiguousarray(x[r])).to(self.config.device)
                    blocks[r, s] = net.project({name: net.encoders[name](xt)})[name].cpu().numpy()
                present[:, s] = mask
            count = present.sum(1)
            z = blocks.reshape(n_rows, -1) / np.sqrt(np.maximum(count, 1))[:, None]
            z[count == 0] = np.nan
            out[name] = z.astype(np.float32)
        return out

    def impute(self, data: Data) -> dict[str, np.ndarray]:
        """Every input's shared embedding, a missing one imputed from the inputs present in the row.

        A missing input's embedding is the normalised mean of the present inputs' embeddings (in each
        space, with shared encoders). Rows with no input present stay NaN.

        Returns
        -------
        dict of str to ndarray of shape (N, shared_dim * n_spaces)
        """
        z = self.embed(data)
        stack = np.stack([z[n] for n in self.inputs], axis=1)  # (N, M, S * D)
        n_rows = len(stack)
        present = ~np.isnan(stack).any(axis=2)
        count = present.sum(1)
        mean = (
            np.where(present[:, :, None], stack, 0.0).sum(1).reshape(n_rows, self.n_spaces, self.shared_dim)
        )
        norm = np.linalg.norm(mean, axis=2, keepdims=True)
        unit = (mean / np.maximum(norm, 1e-12)).reshape(n_rows, -1) / np.sqrt(self.n_spaces)
        filler = np.where(count[:, None] > 0, unit, np.nan).astype(np.float32)
        return {n: np.where(np.isnan(z[n]).any(1, keepdims=True), filler, z[n]) for n in self.inputs}

    def retrieve(
        self, query_data: Data, gallery_data: Data, *, from_input: str, to_input: str, k: int = 5
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cross-modal retrieval by cosine similarity in the shared space.

        Parameters
        ----------
        query_data, gallery_data : mapping of str to (X, mask)
            Preprocessed inputs of the query rows and of the rows searched.
        from_input : str
            The query rows' input that is embedded.
        to_input : str
            The gallery rows' input that is searched (may equal ``from_input``).
        k : int, default=5

        Returns
        -------
        indices : ndarray of int64, shape (n_query, k)
            Gallery positions, best first. Gallery rows missing ``to_input`` are never returned; a query
            missing ``from_input`` (or ranks beyond the usable gallery rows) get -1.
        scores : ndarray of float, shape (n_query, k)
            Cosine similarities; NaN where the index is -1.
        """
        _check_input(self, from_input)
        _check_input(self, to_input)
        query = self.embed(query_data, [from_input])[from_input]
        gallery = self.embed(gallery_data, [to_input])[to_input]
        return _top_k(query, gallery, k)


# ------------------------------------------------------------------------------------------------- CCA
def _svd_flip(vt: np.ndarray) -> np.ndarray:
    """Make each component's largest-magnitude entry positive, so PCA is deterministic."""
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return vt * signs[:, None]


def _principal_axes(z: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` principal axes (dims, D) of centred rows ``z``, sign-fixed.

    Computed by an eigendecomposition of the smaller of ``z z^T`` and ``z^T z`` (LAPACK's SVD of a wide
    matrix can be very slow when BLAS threads compete with torch's). Axes of (numerically) zero variance
    are dropped; with none left (a single row, constant columns) the first unit vector is used.
    """
    if len(z) < z.shape[1]:
        w, u = np.linalg.eigh(z @ z.T)
        w, u = w[::-1], u[:, ::-1]
        s = np.sqrt(np.clip(w, 0.0, None))
        keep = s > 1e-8 * max(float(s[0]) if len(s) else 0.0, 1e-300)
        axes = (z.T @ u[:, keep] / s[keep]).T
    else:
        w, v = np.linalg.eigh(z.T @ z)
        w, v = w[::-1], v[:, ::-1]
        keep = w > 1e-16 * max(float(w[0]), 1e-300)
        axes = v[:, keep].T
    if not len(axes):
        axes = np.eye(z.shape[1])[:1]
    return _svd_flip(axes[:dims])


def _safe_std(x: np.ndarray, ddof: int = 0) -> np.ndarray:
    std = x.std(axis=0, ddof=ddof) if len(x) > ddof else np.ones(x.shape[1:])
    return np.where(std > 1e-12, std, 1.0)


class _CCAScores:
    """The scores of :meth:`CCAFusion._scores`, the presence masks and the number of rows."""

    def __init__(self, scores: dict[str, Any], masks: dict[str, np.ndarray], n_rows: int) -> None:
        self.scores, self.masks, self.n_rows = scores, masks, n_rows


@register_fusion
class CCAFusion(FusionStrategy):
    """Linear baseline of the shared space: PCA per input, CCA between inputs, logistic regression.

    Per input, the preprocessed array is flattened (token-id inputs become bag-of-words counts instead,
    ids being arbitrary numbers), standardised and reduced by PCA to at most ``pca_dims`` (default 32)
    dimensions, all fitted on the training rows where the input is present. The *anchor* is the input
    present in most training rows; for each other input, a CCA (``n_components = min(cca_dims, dims)``,
    ``cca_dims`` default 8) is fitted between the anchor's and that input's PCA scores on the training
    rows where both are present (an input sharing fewer than 3 such rows is left out). A row's features
    are, per pair, the canonical variates of both inputs (each standardised on the training rows), a
    missing input's variates imputed by its partner's (they are maximally correlated by construction) and
    zeros when both are missing, plus the inputs' presence indicators; a ``LogisticRegression(max_iter=2000)``
    classifies them.

    With one input (or no usable pair), CCA degenerates: the model is PCA + logistic regression on that
    input's standardised scores (rows missing it get zero features, i.e. the intercept).

    The transform is numpy over arrays saved with the model (means, scales, PCA components, CCA rotations,
    coefficients), so saving and loading needs no pickle. :meth:`retrieve` ranks by cosine similarity of
    standardised canonical variates, for the anchor and a partner.
    """

    name = "cca"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "pca_dims": Option(32, "int", "PCA dimensions per input, at most", low=1),
        "cca_dims": Option(8, "int", "canonical components per pair of inputs, at most", low=1),
    }

    @property
    def _pca_dims(self) -> int:
        return self.options["pca_dims"]

    @property
    def _cca_dims(self) -> int:
        return self.options["cca_dims"]

    # -------------------------------------------------------------------------------- features
    def _flatten(self, name: str, x: np.ndarray) -> np.ndarray:
        info = self.inputs[name]
        x = np.asarray(x)
        if info.vocab_size is not None and np.issubdtype(x.dtype, np.integer):
            counts = np.zeros((len(x), info.vocab_size), dtype=np.float64)
            rows = np.repeat(np.arange(len(x)), x.shape[1] if x.ndim > 1 else 1)
            ids = x.reshape(-1)
            ok = (ids > 0) & (ids < info.vocab_size)  # id 0 is padding
            np.add.at(counts, (rows[ok], ids[ok]), 1.0)
            return counts
        return x.reshape(len(x), -1).astype(np.float64)

    def pca_scores(self, data: Data, name: str) -> np.ndarray:
        """The input's PCA scores (N, dims): NaN where it is missing."""
        x, mask = data[name]
        a = self.arrays_
        z = (self._flatten(name, x) - a[f"pca.{name}.mean"]) / a[f"pca.{name}.scale"]
        scores = z @ a[f"pca.{name}.components"].T
        scores[~np.asarray(mask, bool)] = np.nan
        return scores

    def canonical_variates(
        self,
        data: Data,
        partner: str,
        *,
        standardize: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The anchor's and ``partner``'s canonical variates of their CCA, (N, n_components) each.

        With ``standardize=False`` these are exactly scikit-learn's ``CCA.transform(X, Y)`` of the PCA
        scores; with ``True`` (the classifier's features) each variate is divided by its training std.
        NaN where the input is missing.
        """
        a = self.arrays_
        anchor = self.state["anchor"]
        out = []
        for side, name in (("x", anchor), ("y", partner)):
            p = self.pca_scores(data, name)
            v = ((p - a[f"cca.{partner}.{side}_mean"]) / a[f"cca.{partner}.{side}_std"]) @ a[
                f"cca.{partner}.{side}_rotations"
            ]
            if standardize:
                v = v / a[f"cca.{partner}.{side}_scale"]
            out.append(v)
        return out[0], out[1]

    def _features(self, data: Data) -> np.ndarray:
        masks = {m: np.asarray(data[m][1], bool) for m in self.inputs if m in data}
        return self._features_from(self._scores(data), masks, len(next(iter(data.values()))[1]))

    def _scores(self, data: Data) -> dict[str, Any]:
        """What the features are made of, before missing inputs are imputed: per pair, both inputs'
        standardised canonical variates (NaN where missing); without pairs, the anchor's scaled PCA scores."""
        if self.state["pairs"]:
            return {partner: self.canonical_variates(data, partner) for partner in self.state["pairs"]}
        anchor = self.state["anchor"]
        return {anchor: self.pca_scores(data, anchor) / self.arrays_[f"pca.{anchor}.score_scale"]}

    def _features_from(
        self, scores: Mapping[str, Any], masks: Mapping[str, np.ndarray], n: int
    ) -> np.ndarray:
        """The classifier's features from :meth:`_scores`, with the inputs whose mask is False treated as
        missing (a missing input's variates imputed by its partner's; zeros when both are missing), plus
        the presence indicators."""
        names = list(self.inputs)
        anchor = self.state["anchor"]
        present = {m: np.asarray(masks[m], bool) if m in masks else np.zeros(n, bool) for m in names}
        parts = []
        if self.state["pairs"]:
            for partner in self.state["pairs"]:
                u, v = scores[partner]
                u_miss = np.isnan(u).any(1) | ~present[anchor]
                v_miss = np.isnan(v).any(1) | ~present[partner]
                u, v = np.where(u_miss[:, None], np.nan, u), np.where(v_miss[:, None], np.nan, v)
                u = np.where(u_miss[:, None], v, u)
                v = np.where(v_miss[:, None], u, v)
                parts += [np.nan_to_num(u, nan=0.0), np.nan_to_num(v, nan=0.0)]
        else:
            p = np.where(present[anchor][:, None], scores[anchor], np.nan)
            parts.append(np.nan_to_num(p, nan=0.0))
        if len(names) > 1:
            parts.append(np.stack([present[m].astype(float) for m in names], axis=1))
        return np.concatenate(parts, axis=1)

    def prepare_coalitions(self, data: Data) -> object:
        """The canonical variates (or PCA scores) of every input, computed once: a coalition only imputes
        and classifies them."""
        if not own_method(self, "predict_proba", CCAFusion):
            return super().prepare_coalitions(data)
        masks = {m: np.asarray(data[m][1], bool) for m in self.inputs if m in data}
        return _CCAScores(self._scores(data), masks, len(next(iter(data.values()))[1]))

    def proba_of_coalitions(self, prepared: object, coalitions: np.ndarray) -> np.ndarray:
        """Every coalition's probabilities (C, N, K): the features of :meth:`_features_from` with the inputs
        outside the coalition missing, through the logistic regression."""
        if not isinstance(prepared, _CCAScores):
            return super().proba_of_coalitions(prepared, coalitions)
        names = self.coalition_inputs()
        a = self.arrays_
        out = []
        for keep in np.asarray(coalitions, dtype=bool).reshape(-1, len(names)):
            kept = dict(zip(names, keep, strict=True))
            masks = {m: v & bool(kept.get(m, True)) for m, v in prepared.masks.items()}
            feats = self._features_from(prepared.scores, masks, prepared.n_rows)
            out.append(softmax(feats @ a["logistic.coef"].T + a["logistic.intercept"], axis=1))
        return np.stack(out) if out else np.zeros((0, prepared.n_rows, self.n_classes))

    # ------------------------------------------------------------------------------------- fit
    def fit(
        self, data: Data, y: np.ndarray, groups: np.ndarray | None, sample_weight: np.ndarray | None = None
    ) -> FusionStrategy:
        """Fit PCA per input, CCA per (anchor, partner) pair and the logistic regression.

        ``sample_weight`` (optional, one per row) weighs the rows in the logistic regression; PCA and CCA,
        which learn the representation without labels, are not weighted."""
        from sklearn.cross_decomposition import CCA
        from sklearn.linear_model import LogisticRegression

        names = list(self.inputs)
        masks = {n: np.asarray(data[n][1], bool) for n in names}
        self.arrays_: dict[str, np.ndarray] = {}
        for n in names:
            flat = self._flatten(n, data[n][0])[masks[n]]
            mean = flat.mean(0) if len(flat) else np.zeros(flat.shape[1])
            scale = _safe_std(flat)
            z = (flat - mean) / scale
            comps = _principal_axes(z, max(1, min(self._pca_dims, len(z) - 1, z.shape[1])))
            self.arrays_.update(
                {f"pca.{n}.mean": mean, f"pca.{n}.scale": scale, f"pca.{n}.components": comps}
            )
            self.arrays_[f"pca.{n}.score_scale"] = _safe_std(z @ comps.T)
        anchor = max(names, key=lambda n: (int(masks[n].sum()), -names.index(n)))
        self.state.update({"anchor": anchor, "pairs": [], "n_components": {}})
        self.sklearn_cca_: dict[str, Any] = {}  # fit-time only (for checks); never saved
        for partner in (n for n in names if n != anchor):
            both = masks[anchor] & masks[partner]
            if both.sum() < 3:
                continue
            pa = self.pca_scores(data, anchor)[both]
            po = self.pca_scores(data, partner)[both]
            n_comp = min(self._cca_dims, pa.shape[1], po.shape[1], int(both.sum()) - 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NIPALS convergence notes on tiny or collinear data
                cca = CCA(n_components=n_comp, max_iter=1000).fit(pa, po)
            self.sklearn_cca_[partner] = cca
            # scikit-learn centres and scales each side by its mean and std (ddof=1, exactly 0 -> 1) before
            # rotating; recomputed here rather than read from the estimator's private attributes
            for side, scores, rot in (("x", pa, cca.x_rotations_), ("y", po, cca.y_rotations_)):
                mean, std = scores.mean(axis=0), scores.std(axis=0, ddof=1)
                std[std == 0.0] = 1.0
                self.arrays_[f"cca.{partner}.{side}_mean"] = np.asarray(mean, np.float64)
                self.arrays_[f"cca.{partner}.{side}_std"] = np.asarray(std, np.float64)
                self.arrays_[f"cca.{partner}.{side}_rotations"] = np.asarray(rot, np.float64)
            self.state["pairs"].append(partner)
            self.state["n_components"][partner] = n_comp
            u, v = self.canonical_variates(data, partner, standardize=False)
            self.arrays_[f"cca.{partner}.x_scale"] = _safe_std(u[both])
            self.arrays_[f"cca.{partner}.y_scale"] = _safe_std(v[both])
        feats = self._features(data)
        meta = LogisticRegression(max_iter=2000).fit(feats, y, sample_weight=sample_weight)
        coef = np.zeros((self.n_classes, feats.shape[1]))
        intercept = np.full(self.n_classes, -1e3)
        present = meta.classes_.astype(int)
        if len(present) == 2:  # binary: sklearn's single row is class 1's log-odds against class 0
            coef[present[1]], intercept[present[1]], intercept[present[0]] = (
                meta.coef_[0],
                meta.intercept_[0],
                0.0,
            )
        else:
            coef[present], intercept[present] = meta.coef_, meta.intercept_
        self.arrays_["logistic.coef"] = coef
        self.arrays_["logistic.intercept"] = intercept
        return self

    def predict_proba(self, data: Data) -> np.ndarray:
        a = self.arrays_
        return softmax(self._features(data) @ a["logistic.coef"].T + a["logistic.intercept"], axis=1)

    def retrieve(
        self, query_data: Data, gallery_data: Data, *, from_input: str, to_input: str, k: int = 5
    ) -> tuple[np.ndarray, np.ndarray]:
        """Retrieval by cosine similarity of standardised canonical variates (see :meth:`SharedFusion.retrieve`).

        Only the anchor and one of its partners (either direction, or one of them with itself) share
        a canonical space; other pairs raise :class:`~modalfuse.ModalfuseError`.
        """
        _check_input(self, from_input)
        _check_input(self, to_input)
        anchor, pairs = self.state["anchor"], self.state["pairs"]
        partner = next((p for p in pairs if {from_input, to_input} <= {anchor, p}), None)
        if partner is None:
            raise ModalfuseError(
                f"cca: no canonical space holds both {from_input!r} and {to_input!r}; "
                f"the anchor {anchor!r} is paired with {pairs}"
            )

        def side(data: Data, name: str) -> np.ndarray:
            u, v = self.canonical_variates(data, partner)
            return u if name == anchor else v

        return _top_k(side(query_data, from_input), side(gallery_data, to_input), k)

    # --------------------------------------------------------------------------------- persistence
    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in self.arrays_.items()
        }

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.arrays_ = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in tensors.items()}
