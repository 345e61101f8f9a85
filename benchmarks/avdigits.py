"""AV-Digits (hard), leave-one-speaker-out: modalfuse's strategies against a tuned scikit-learn reference.

Runs, on the same six folds (one speaker held out each):

- modalfuse: every strategy of ``--fusion`` (default ``all``: unimodal baselines, the tuned linear
  baseline, the five late-fusion combiners, early, tensor, low-rank and attention fusion, the shared space
  and CCA), with audio -> image retrieval recall for the strategies with a shared space. This is exactly
  ``modalfuse evaluate av-digits-hard --cv loso --fusion F --epochs E --seed 0`` (see :func:`run_modalfuse`;
  a test checks that both give the same numbers); the retrieval recall is measured after each fit and
  changes nothing else;
- a scikit-learn reference: logistic regression on raw pixels (image), on log-mel spectrogram features
  (audio), on their concatenation (early), and the sum of the two unimodal models' log-probabilities
  (late); standardised features, the strength C chosen in every training fold by an inner
  cross-validation grouped by speaker (log loss, over :data:`bench_common.REFERENCE_CS`), on the
  training rows only.

Writes JSON (default ``benchmarks/results/avdigits-hard.json``) with per-strategy accuracy and macro-F1
(mean, std, per fold), paired bootstrap intervals of modalfuse's strategies against the best reference,
the wall times of both runs measured in this process, and the environment the numbers depend on (torch
version and CPU capability, thread counts, library versions, platform).

    python benchmarks/avdigits.py [--fusion all] [--data-root ../shared/datasets] [--epochs 20] [--out PATH]
                                  [--threads N] [--takes K]

``--takes K`` keeps the first K recordings of each digit per speaker (a quick run; 50 is all of them).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import REFERENCE_CS, environment, format_paired, paired_vs_reference
from modalfuse.evaluate import classification_metrics, format_table, make_splits, summarize


def spectrogram_features(table: mf.MultimodalTable, seconds: float = 1.0, sr: int = 8000) -> np.ndarray:
    """Log-mel spectrogram (40 bands, 20 ms hop) of each clip cropped/padded to ``seconds``, flattened."""
    from modalfuse.data import decode_media
    from modalfuse.modalities.audio import fix_length, log_mel, resample

    rows = []
    for path in table.frame["audio"]:
        wave, native = decode_media(path, "audio")
        if native != sr:
            wave = resample(wave, native, sr)
        rows.append(log_mel(fix_length(wave, int(seconds * sr)), sr, n_mels=40, hop_length=160).ravel())
    return np.asarray(rows, dtype=np.float32)


def _tuned_logistic(X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Any:
    """Standardised logistic regression whose C is chosen by a 3-fold inner cross-validation of these
    (training) rows, grouped by speaker, on log loss; refitted on all of them."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    inner = list(GroupKFold(n_splits=min(3, len(np.unique(groups)))).split(X, y, groups))
    model = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(Cs=list(REFERENCE_CS), cv=inner, scoring="neg_log_loss", max_iter=1000),
    )
    with warnings.catch_warnings():  # scikit-learn 1.9 announces attribute changes not used here
        warnings.simplefilter("ignore", FutureWarning)
        return model.fit(X, y)


def sklearn_reference(table: mf.MultimodalTable, splits: list) -> dict:
    """Logistic regression on pixels / spectrograms / both, and summed log-probabilities, per fold; C chosen
    inside each training fold (see :func:`_tuned_logistic`). Each entry records the chosen C per fold."""
    from threadpoolctl import threadpool_limits

    pixels = np.stack([np.asarray(v, np.float32).ravel() for v in table.frame["image"]])
    spec = spectrogram_features(table)
    y, groups = np.asarray(table.y), np.asarray(table.groups)
    classes = np.unique(y)
    names = ["sklearn:audio", "sklearn:image", "sklearn:concat", "sklearn:sum-logprob"]
    folds: dict[str, list[dict]] = {n: [] for n in names}
    seconds = {n: 0.0 for n in names}
    chosen: dict[str, list[float]] = {n: [] for n in names[:3]}
    for train, test in splits:
        probs = {}
        for name, X in (
            ("sklearn:audio", spec),
            ("sklearn:image", pixels),
            ("sklearn:concat", np.hstack([spec, pixels])),
        ):
            t0 = time.perf_counter()
            with threadpool_limits(1):  # small fits: spinning BLAS threads only slow them on a busy machine
                m = _tuned_logistic(X[train], y[train], groups[train])
                probs[name] = m.predict_proba(X[test])
            seconds[name] += time.perf_counter() - t0
            chosen[name].append(float(m[-1].C_[0]))
        logp = np.log(probs["sklearn:audio"] + 1e-9) + np.log(probs["sklearn:image"] + 1e-9)
        p = np.exp(logp - logp.max(1, keepdims=True))
        probs["sklearn:sum-logprob"] = p / p.sum(1, keepdims=True)
        seconds["sklearn:sum-logprob"] = seconds["sklearn:audio"] + seconds["sklearn:image"]
        for name in names:
            folds[name].append(classification_metrics(y[test], probs[name], classes))
    out = {
        n: {
            "accuracy": summarize([f["accuracy"] for f in folds[n]]),
            "f1_macro": summarize([f["f1_macro"] for f in folds[n]]),
            "fit_seconds": seconds[n],
        }
        for n in names
    }
    for name, Cs in chosen.items():
        out[name]["C_per_fold"] = Cs
    return out


def run_modalfuse(
    table: mf.MultimodalTable,
    *,
    fusion: str = "all",
    cv: Any = "loso",
    seed: int = 0,
    epochs: int = 20,
    progress: Any = None,
    **params: Any,
) -> dict:
    """The modalfuse side of the benchmark: the call ``modalfuse evaluate TABLE --cv CV --fusion FUSION
    --epochs EPOCHS --seed SEED`` makes (``params``: further shared settings, e.g. ``n_threads``), plus
    :func:`retrieval_metrics` after each fit."""
    return mf.compare(
        table,
        fusion=fusion,
        cv=cv,
        seed=seed,
        epochs=epochs,
        progress=progress,
        fold_metrics=retrieval_metrics,
        **params,
    )


def first_takes(table: mf.MultimodalTable, takes: int) -> mf.MultimodalTable:
    """The rows of the first ``takes`` recordings (``{digit}_{speaker}_{take}.wav``) of each digit and
    speaker."""
    keep = [i for i, p in enumerate(table.frame["audio"]) if int(Path(p).stem.split("_")[2]) < takes]
    return table.take(np.asarray(keep))


def retrieval_metrics(name: str, clf: mf.MultimodalClassifier, test: mf.MultimodalTable) -> dict | None:
    """Audio -> image retrieval on the held-out speaker, for strategies with a shared space holding both
    (None for the others: a measurement never makes a strategy fail)."""
    if not hasattr(clf.fusion_, "retrieve"):
        return None
    from modalfuse.evaluate import retrieval_recall

    try:
        r = retrieval_recall(clf, test, from_modality="audio", to_modality="image", ks=(1, 5, 10))
    except mf.ModalfuseError:  # e.g. cca on a table where audio and image share no canonical space
        return None
    return {f"retrieval_audio_to_image_{k}": v for k, v in r.items() if k.startswith(("recall", "chance"))}


def _progress(event: str, **info: object) -> None:
    if event == "step":
        print(f"  fold {info.get('fold')} {info.get('strategy')}: {info.get('seconds', 0):.1f}s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fusion", default="all")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: modalfuse's)")
    parser.add_argument("--takes", type=int, default=50, help="recordings per digit and speaker (50: all)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "avdigits-hard.json"))
    args = parser.parse_args(argv)

    env = environment()
    table = mf.load_dataset("av-digits-hard", root=args.data_root)
    if args.takes < 50:
        table = first_takes(table, args.takes)
    splits = make_splits(table.y, table.groups, cv="loso", seed=0)

    t0 = time.perf_counter()
    params = {} if args.threads is None else {"n_threads": args.threads}
    result = run_modalfuse(table, fusion=args.fusion, epochs=args.epochs, progress=_progress, **params)
    result["wall_seconds"] = time.perf_counter() - t0
    print(format_table(result), flush=True)

    t0 = time.perf_counter()
    reference = sklearn_reference(table, splits)
    reference_seconds = time.perf_counter() - t0
    for name, r in reference.items():
        print(
            f"{name:22s} accuracy {r['accuracy']['mean']:.3f} ± {r['accuracy']['std']:.3f}  "
            f"macro-F1 {r['f1_macro']['mean']:.3f}  C per fold {r.get('C_per_fold', '-')}"
        )
    paired = paired_vs_reference(result, reference, metrics=("accuracy",))
    print(format_paired(paired))
    print(
        f"modalfuse wall time {result['wall_seconds']:.0f}s, scikit-learn reference {reference_seconds:.0f}s"
    )

    options = f" --threads {args.threads}" if args.threads is not None else ""
    options += f" --takes {args.takes}" if args.takes < 50 else ""
    doc = {
        "benchmark": "av-digits-hard, leave-one-speaker-out",
        "command": f"python benchmarks/avdigits.py --epochs {args.epochs} --fusion {args.fusion}{options}",
        "rows": len(table),
        "environment": env,
        "modalfuse": result,
        "reference": {
            "strategies": reference,
            "wall_seconds": reference_seconds,
            "tuning": f"C from {list(REFERENCE_CS)} by 3-fold inner CV grouped by speaker (log loss), "
            "inside each training fold",
        },
        "paired_vs_reference": paired,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"written {out}")


if __name__ == "__main__":
    main()
