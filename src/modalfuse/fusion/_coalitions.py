"""Fast coalition predictions of fusion heads: encoders run once, heads once per coalition.

A *coalition* is a set of inputs left present; the inputs outside it are masked, exactly as a missing
input is. Explanations (:mod:`modalfuse.explain`) evaluate many coalitions of the same rows; for a neural
head only the head depends on the masks, so the inputs' embeddings are computed once
(:func:`encode_once`) and every coalition costs one pass of the head (:func:`head_coalition_proba`), the
rows of many coalitions stacked into one batch. The early-fusion head (:class:`ConcatHead`) is cheaper
still: its first layer is linear in the masked inputs, so each input's share of it is computed once per
row and a coalition adds the shares of its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import softmax
from torch import nn

from modalfuse.fusion._train import ConcatHead, FusionNet

__all__ = ["HeadWork", "encode_once", "head_coalition_proba"]

#: Rows per head pass when the rows of several coalitions are stacked.
STACKED_ROWS = 16384


@dataclass
class HeadWork:
    """The embeddings each network's head reads, computed once.

    ``nets[k]`` reads ``embeddings[k]`` (input -> (N, dim) float32) with presence ``masks[k]`` (input ->
    (N,) bool); the prediction is the mean of the nets' softmax outputs.
    """

    nets: Sequence[FusionNet]
    embeddings: Sequence[Mapping[str, np.ndarray]]
    masks: Sequence[Mapping[str, np.ndarray]]
    n_rows: int


@torch.no_grad()
def encode_once(
    net: FusionNet, data: Mapping[str, tuple[np.ndarray, np.ndarray]], *, device: str, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """``net.encode`` of every input of ``data`` (masks ignored, as in ``net.forward``), (N, dim) each."""
    net.to(device).eval()
    n = len(next(iter(data.values()))[1]) if data else 0
    parts: dict[str, list[np.ndarray]] = {name: [] for name in net.encoders}
    for start in range(0, n, batch_size):
        xs = {
            name: torch.from_numpy(np.ascontiguousarray(data[name][0][start : start + batch_size])).to(device)
            for name in net.encoders
        }
        for name, z in net.encode(xs).items():
            parts[name].append(z.float().cpu().numpy())
    return {
        name: np.concatenate(p) if p else np.zeros((0, getattr(net.encoders[name], "dim", 0)), np.float32)
        for name, p in parts.items()
    }


def _coalition_masks(
    masks: Mapping[str, np.ndarray], names: Sequence[str], coalitions: np.ndarray
) -> dict[str, np.ndarray]:
    """Each input's mask under every coalition, stacked: (C * N,), coalition-major."""
    index = {name: i for i, name in enumerate(names)}
    out = {}
    for name, m in masks.items():
        keep = coalitions[:, index[name]] if name in index else np.ones(len(coalitions), bool)
        out[name] = (keep[:, None] & np.asarray(m, bool)[None, :]).reshape(-1)
    return out


def _split_concat_head(net: FusionNet) -> tuple[nn.Linear, nn.Module] | None:
    """For a :class:`ConcatHead` in eval mode: its first linear layer and the layers after it (what comes
    before it is dropout only, the identity in eval mode); None for any other head."""
    head = net.head
    if type(head) is not ConcatHead or head.training:
        return None
    layers = list(head.net)
    first = next((i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear)), None)
    if first is None or not all(isinstance(layer, nn.Dropout) for layer in layers[:first]):
        return None
    return layers[first], nn.Sequential(*layers[first + 1 :])


@torch.no_grad()
def _concat_terms(
    head: ConcatHead, linear: nn.Linear, emb: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Each input's share of the first layer's output, (N, hidden): its embedding through its columns of
    the weights plus its presence indicator's column. A coalition's pre-activation is the bias plus the
    shares of the inputs present, so the wide first layer runs once per row, not once per coalition."""
    weight = linear.weight
    out, start = {}, 0
    n_inputs = len(head.names)
    for j, name in enumerate(head.names):
        e = emb[name]
        term = e @ weight[:, start : start + e.shape[1]].T
        if n_inputs > 1:
            term = term + weight[:, weight.shape[1] - n_inputs + j]
        out[name] = term
        start += e.shape[1]
    return out


@torch.no_grad()
def _concat_head_logits(
    net: FusionNet,
    split: tuple[nn.Linear, nn.Module],
    embeddings: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    n_rows: int,
    device: str,
) -> np.ndarray:
    """:func:`_fused_logits` of a :class:`ConcatHead`, from each input's first-layer share (see
    :func:`_concat_terms`); equal to ``net.fuse`` up to float rounding."""
    linear, rest = split
    emb = {name: torch.from_numpy(np.ascontiguousarray(e)).to(device) for name, e in embeddings.items()}
    terms = _concat_terms(net.head, linear, emb)
    stacked = {name: masks[name].reshape(-1, n_rows) for name in terms}  # (C, N): coalition-major
    n_coal = len(next(iter(stacked.values())))
    step = max(1, STACKED_ROWS // max(n_rows, 1))
    out = []
    for start in range(0, n_coal, step):
        z = linear.bias.view(1, 1, -1) if linear.bias is not None else 0.0
        for name, term in terms.items():
            m = torch.from_numpy(stacked[name][start : start + step]).to(device).to(term.dtype)
            z = z + m.unsqueeze(2) * term.unsqueeze(0)
        out.append(rest(z.reshape(-1, z.shape[-1])).float().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def _fused_logits(
    net: FusionNet,
    embeddings: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    n_rows: int,
    device: str,
) -> np.ndarray:
    """``net.fuse`` of embeddings of ``n_rows`` rows already computed, under ``masks`` stacked over
    coalitions (stacked row ``r`` reads row ``r % n_rows``)."""
    net.to(device).eval()
    split = _split_concat_head(net)
    if split is not None and set(net.head.names) <= set(embeddings):
        return _concat_head_logits(net, split, embeddings, masks, n_rows, device)
    total = len(next(iter(masks.values())))
    emb = {name: torch.from_numpy(np.ascontiguousarray(e)).to(device) for name, e in embeddings.items()}
    out = []
    for start in range(0, total, STACKED_ROWS):
        source = torch.arange(start, min(start + STACKED_ROWS, total), device=device) % n_rows
        z = {name: e[source] for name, e in emb.items()}
        m = {name: torch.from_numpy(masks[name][start : start + STACKED_ROWS]).to(device) for name in emb}
        out.append(net.fuse(z, m).float().cpu().numpy())
    return np.concatenate(out)


def head_coalition_proba(
    work: HeadWork, names: Sequence[str], coalitions: np.ndarray, n_classes: int, *, device: str = "cpu"
) -> np.ndarray:
    """Probabilities (C, N, n_classes) of every coalition: each net's head on its embeddings with the
    inputs outside the coalition masked, softmax, averaged over the nets (as ``predict_proba`` does)."""
    coalitions = np.asarray(coalitions, dtype=bool).reshape(-1, len(names))
    n_coal, n = len(coalitions), work.n_rows
    total = np.zeros((n_coal, n, n_classes))
    if not n_coal or not n or not work.nets:
        return total
    for net, emb, masks in zip(work.nets, work.embeddings, work.masks, strict=True):
        logits = _fused_logits(net, emb, _coalition_masks(masks, names, coalitions), n, device)
        total += softmax(logits.astype(np.float64), axis=1).reshape(n_coal, n, -1)
    return total / len(work.nets)
