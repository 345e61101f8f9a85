"""The report's figures: matplotlib drawings returned as inline SVG (see :mod:`modalfuse.report._svg`)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modalfuse.report._content import is_number
from modalfuse.report._svg import PALETTE, figure, to_svg

__all__ = [
    "alignment_figure",
    "confusion_figure",
    "folds_figure",
    "groups_figure",
    "interactions_figure",
    "paired_figure",
    "robustness_figure",
    "shapley_figure",
    "strategies_figure",
]

#: Most groups drawn one by one (the hardest ones; the page says how many there are).
MAX_GROUPS_DRAWN = 40
#: Most classes whose confusion-matrix cells get their count written in.
MAX_ANNOTATED_CLASSES = 15
#: Most classes whose confusion matrix is drawn as vector shapes (beyond: an inline image).
MAX_VECTOR_CLASSES = 40
#: Most strategies drawn per fold.
MAX_FOLD_LINES = 8

RECOMMENDED, BASELINE, OTHER = PALETTE[3], PALETTE[5], PALETTE[0]


def _short(text: str, limit: int = 28) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def strategies_figure(rows: Sequence[Mapping[str, Any]], prefix: str) -> str:
    """Mean accuracy of every strategy with its 95% interval over the folds (recommended in red,
    baselines in light blue)."""
    rows = [r for r in rows if r["accuracy"] is not None][::-1]
    with figure(6.4, 0.9 + 0.26 * len(rows)) as fig:
        ax = fig.add_subplot()
        for y, r in enumerate(rows):
            color = RECOMMENDED if r["recommended"] else BASELINE if r["baseline"] else OTHER
            lo, hi = r["interval"] or (r["accuracy"], r["accuracy"])
            ax.plot([lo, hi], [y, y], color=color, linewidth=2)
            ax.plot([r["accuracy"]], [y], "o", color=color, markersize=5)
        ax.set_yticks(range(len(rows)), [_short(r["name"]) for r in rows])
        ax.set_xlabel("accuracy: mean over folds and 95% bootstrap interval")
        return to_svg(fig, prefix, "Mean accuracy of each strategy with its 95% interval over the folds")


def folds_figure(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], prefix: str) -> str:
    """Accuracy per fold: the recommended strategy, the best baselines and the next best strategies."""
    chosen = [r for r in rows if r["recommended"]] + [r for r in rows if not r["recommended"]]
    chosen = chosen[:MAX_FOLD_LINES]
    with figure(6.4, 3.6) as fig:
        ax = fig.add_subplot()
        x = np.arange(len(labels))
        others = itertools.cycle([c for c in PALETTE if c != RECOMMENDED])
        for i, r in enumerate(chosen):
            y = [v if is_number(v) else np.nan for v in r["folds"]][: len(labels)]
            if r["recommended"]:
                style = {"linewidth": 2.4, "color": RECOMMENDED}
            else:
                style = {"linewidth": 1.0, "color": next(others)}
            ax.plot(
                x[: len(y)], y, "o-", markersize=3.5, label=_short(r["name"], 22), zorder=3 - i * 0.1, **style
            )
        tilt = len(labels) > 6
        ax.set_xticks(
            x, [_short(v, 16) for v in labels], rotation=30 if tilt else 0, ha="right" if tilt else "center"
        )
        ax.set_ylabel("accuracy")
        ax.set_xlabel("held-out fold")
        fig.legend(fontsize=7, ncols=4, frameon=False, loc="outside lower center")
        return to_svg(fig, prefix, "Accuracy of the main strategies in every fold")


def groups_figure(groups: Mapping[str, Mapping[str, Any]], name: str, prefix: str) -> str:
    """Accuracy per group (hardest first, at most :data:`MAX_GROUPS_DRAWN`) of strategy ``name``."""
    items = sorted(
        ((g, v.get("accuracy"), v.get("n")) for g, v in groups.items() if is_number(v.get("accuracy"))),
        key=lambda t: t[1],
    )[:MAX_GROUPS_DRAWN]
    with figure(6.4, 0.9 + 0.2 * len(items)) as fig:
        ax = fig.add_subplot()
        y = np.arange(len(items))[::-1]
        ax.barh(y, [t[1] for t in items], color=OTHER, height=0.7)
        ax.set_yticks(y, [f"{_short(t[0], 20)} (n={t[2]})" for t in items])
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"accuracy of {name} on the group's rows")
        return to_svg(fig, prefix, f"Accuracy per group of {name}, hardest first")


def confusion_figure(matrix: Sequence[Sequence[int]], classes: Sequence[Any], name: str, prefix: str) -> str:
    """The confusion matrix (rows true, columns predicted), shaded by the share of each true class."""
    m = np.asarray(matrix, dtype=float)
    shares = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(m)
    size = min(6.4, 2.4 + 0.3 * k)
    with figure(size, size * 0.9) as fig:
        ax = fig.add_subplot()
        ax.grid(False)
        if k <= MAX_VECTOR_CLASSES:  # cells as vector shapes: sharp when zoomed or printed
            ax.pcolormesh(
                np.arange(k + 1) - 0.5, np.arange(k + 1) - 0.5, shares, cmap="Blues", vmin=0, vmax=1
            )
            ax.set_xlim(-0.5, k - 0.5)
            ax.set_ylim(k - 0.5, -0.5)
            ax.set_aspect("equal")
        else:  # an inline PNG (a data: URI, no file) keeps a large matrix small
            ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        labels = [_short(c, 12) for c in classes][:k]
        step = max(1, k // 25)
        ax.set_xticks(range(0, k, step), labels[::step], rotation=90 if k > 8 else 0)
        ax.set_yticks(range(0, k, step), labels[::step])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if k <= MAX_ANNOTATED_CLASSES:
            for i in range(k):
                for j in range(k):
                    if m[i, j]:
                        color = "white" if shares[i, j] > 0.6 else "black"
                        ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7, color=color)
        return to_svg(fig, prefix, f"Confusion matrix of {name} summed over the folds")


def paired_figure(paired: Mapping[str, Mapping[str, Any]], reference: str, prefix: str) -> str:
    """Each strategy's mean per-fold accuracy difference to ``reference`` with its 95% interval."""
    items = [
        (n, d["mean_diff"], d.get("ci95"))
        for n, d in paired.items()
        if isinstance(d, Mapping) and is_number(d.get("mean_diff"))
    ]
    items.sort(key=lambda t: t[1])
    with figure(6.4, 0.9 + 0.26 * len(items)) as fig:
        ax = fig.add_subplot()
        for y, (_, diff, ci) in enumerate(items):
            lo, hi = (
                ci
                if isinstance(ci, list | tuple) and len(ci) == 2 and all(map(is_number, ci))
                else (diff, diff)
            )
            color = PALETTE[2] if lo > 0 else PALETTE[3] if hi < 0 else OTHER
            ax.plot([lo, hi], [y, y], color=color, linewidth=2)
            ax.plot([diff], [y], "o", color=color, markersize=5)
        ax.axvline(0, color="#555555", linewidth=0.8)
        ax.set_yticks(range(len(items)), [_short(t[0]) for t in items])
        ax.set_xlabel(f"accuracy minus {reference}'s, per fold: mean and 95% interval")
        return to_svg(fig, prefix, f"Paired accuracy difference of each strategy to {reference}")


def _stat(summary: Mapping[str, Any], key: str, name: str) -> tuple[float, float]:
    entry = (summary.get(key) or {}).get(name) or {}
    mean, std = entry.get("mean"), entry.get("std")
    return (float(mean) if is_number(mean) else np.nan, float(std) if is_number(std) else 0.0)


def shapley_figure(summary: Mapping[str, Any], name: str, prefix: str) -> str:
    """Per input: mean |phi| toward the predicted class, mean phi toward the true class, and the
    leave-one-input-out accuracy drop, each with its spread over the folds."""
    inputs = list(summary.get("inputs") or [])
    panels = (
        ("mean_abs_phi", "mean |φ| (probability)"),
        ("mean_phi_true", "mean φ toward the true class"),
        ("loo_drop", "accuracy drop, input left out"),
    )
    with figure(6.4, 1.2 + 0.32 * len(inputs)) as fig:
        axes = fig.subplots(1, 3, sharey=True)
        y = np.arange(len(inputs))[::-1]
        for ax, (key, title) in zip(axes, panels, strict=True):
            stats = [_stat(summary, key, n) for n in inputs]
            ax.barh(
                y,
                [s[0] for s in stats],
                xerr=[s[1] for s in stats],
                color=OTHER,
                height=0.6,
                error_kw={"elinewidth": 0.8, "capsize": 2},
            )
            ax.axvline(0, color="#555555", linewidth=0.6)
            ax.set_title(title, fontsize=8)
        axes[0].set_yticks(y, [_short(n, 20) for n in inputs])
        return to_svg(
            fig,
            prefix,
            f"Global modality Shapley values of {name} beside the leave-one-input-out accuracy drop",
        )


def interactions_figure(summary: Mapping[str, Any], name: str, prefix: str) -> str:
    """Mean pairwise Shapley interaction (toward the predicted class) of every pair of inputs, with its
    spread over the folds: positive, the inputs cooperate; negative, they duplicate each other."""
    pairs = list((summary.get("interactions") or {}).keys())
    stats = [_stat(summary, "interactions", p) for p in pairs]
    with figure(6.4, 1.0 + 0.3 * len(pairs)) as fig:
        ax = fig.add_subplot()
        y = np.arange(len(pairs))[::-1]
        colors = [PALETTE[2] if s[0] >= 0 else PALETTE[3] for s in stats]
        ax.barh(
            y,
            [s[0] for s in stats],
            xerr=[s[1] for s in stats],
            color=colors,
            height=0.6,
            error_kw={"elinewidth": 0.8, "capsize": 2},
        )
        ax.axvline(0, color="#555555", linewidth=0.8)
        ax.set_yticks(y, [_short(p.replace("*", " × "), 34) for p in pairs])
        ax.set_xlabel("mean interaction index (probability): > 0 cooperate, < 0 duplicate")
        return to_svg(fig, prefix, f"Pairwise modality interactions of {name}")


def robustness_figure(
    corruption: str, curves: Mapping[str, Sequence[tuple[str, Any, Any]]], prefix: str
) -> str:
    """Accuracy against the corruption level, one line per strategy (spread over the folds shaded)."""
    with figure(6.4, 3.0) as fig:
        ax = fig.add_subplot()
        levels = list(dict.fromkeys(level for points in curves.values() for level, _, _ in points))
        x = {level: i for i, level in enumerate(levels)}
        for strategy, points in list(curves.items())[:MAX_FOLD_LINES]:
            xs = [x[level] for level, mean, _ in points if mean is not None]
            ys = np.array([mean for _, mean, _ in points if mean is not None], dtype=float)
            sd = np.array([std or 0.0 for _, mean, std in points if mean is not None], dtype=float)
            (line,) = ax.plot(xs, ys, "o-", markersize=3.5, label=_short(strategy, 22))
            ax.fill_between(xs, ys - sd, ys + sd, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xticks(range(len(levels)), levels)
        ax.set_xlabel(f"level of {corruption}")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7, frameon=False)
        return to_svg(fig, prefix, f"Accuracy under {corruption} at each level")


def alignment_figure(entries: Sequence[Mapping[str, Any]], prefix: str) -> str:
    """Estimated clock offsets (with their uncertainty) per recording; abstentions marked at 0."""
    given = [e for e in entries if not e.get("abstained") and is_number(e.get("offset_ms"))]
    abstained = [i for i, e in enumerate(entries) if e.get("abstained")]
    with figure(6.4, 2.8) as fig:
        ax = fig.add_subplot()
        index = [i for i, e in enumerate(entries) if not e.get("abstained") and is_number(e.get("offset_ms"))]
        err = [e["uncertainty_ms"] if is_number(e.get("uncertainty_ms")) else 0.0 for e in given]
        ax.errorbar(
            index,
            [e["offset_ms"] for e in given],
            yerr=err,
            fmt="o",
            markersize=3,
            color=OTHER,
            elinewidth=0.8,
            label="estimate ± uncertainty",
        )
        if abstained:
            ax.plot(abstained, [0] * len(abstained), "x", color=RECOMMENDED, label="abstained")
        ax.set_xlabel("recording")
        ax.set_ylabel("offset (ms)")
        ax.legend(fontsize=7, frameon=False)
        return to_svg(fig, prefix, "Estimated clock offset of every recording")
