"""AV-Digits (hard), leave-one-speaker-out: modalfuse's strategies against a scikit-learn reference.

Runs, on the same six folds (one speaker held out each):

- modalfuse: every strategy of ``--fusion`` (default ``all``: unimodal baselines, the five late-fusion
  combiners, early, tensor, low-rank and attention fusion, the shared space and CCA), with audio -> image
  retrieval recall for the strategies with a shared space;
- a scikit-learn reference: logistic regression on raw pixels (image), on log-mel spectrogram features
  (audio), on their concatenation (early), and the sum of the two unimodal models' log-probabilities (late).

Writes JSON (default ``benchmarks/results/avdigits-hard.json``) with per-strategy accuracy and macro-F1
(mean, std, per fold) and wall times of both runs measured in this process.

    python benchmarks/avdigits.py [--fusion all] [--data-root ../shared/datasets] [--epochs 20] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import modalfuse as mf
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


def sklearn_reference(table: mf.MultimodalTable, splits: list) -> dict:
    """Logistic regression on pixels / spectrograms / both, and summed log-probabilities, per fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pixels = np.stack([np.asarray(v, np.float32).ravel() for v in table.frame["image"]])
    spec = spectrogram_features(table)
    y = table.y
    classes = np.unique(y)
    names = ["sklearn:audio", "sklearn:image", "sklearn:concat", "sklearn:sum-logprob"]
    folds: dict[str, list[dict]] = {n: [] for n in names}
    seconds = {n: 0.0 for n in names}

    def model():
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300))

    for train, test in splits:
        probs = {}
        for name, X in (
            ("sklearn:audio", spec),
            ("sklearn:image", pixels),
            ("sklearn:concat", np.hstack([spec, pixels])),
        ):
            t0 = time.perf_counter()
            m = model().fit(X[train], y[train])
            probs[name] = m.predict_proba(X[test])
            seconds[name] += time.perf_counter() - t0
        logp = np.log(probs["sklearn:audio"] + 1e-9) + np.log(probs["sklearn:image"] + 1e-9)
        p = np.exp(logp - logp.max(1, keepdims=True))
        probs["sklearn:sum-logprob"] = p / p.sum(1, keepdims=True)
        seconds["sklearn:sum-logprob"] = seconds["sklearn:audio"] + seconds["sklearn:image"]
        for name in names:
            folds[name].append(classification_metrics(y[test], probs[name], classes))
    return {
        n: {
            "accuracy": summarize([f["accuracy"] for f in folds[n]]),
            "f1_macro": summarize([f["f1_macro"] for f in folds[n]]),
            "fit_seconds": seconds[n],
        }
        for n in names
    }


def retrieval_metrics(name: str, clf: mf.MultimodalClassifier, test: mf.MultimodalTable) -> dict | None:
    """Audio -> image retrieval on the held-out speaker, for strategies with a shared space."""
    if not hasattr(clf.fusion_, "retrieve"):
        return None
    from modalfuse.evaluate import retrieval_recall

    r = retrieval_recall(clf, test, from_modality="audio", to_modality="image", ks=(1, 5, 10))
    return {f"retrieval_audio_to_image_{k}": v for k, v in r.items() if k.startswith(("recall", "chance"))}


def _progress(event: str, **info: object) -> None:
    if event == "step":
        print(f"  fold {info.get('fold')} {info.get('strategy')}: {info.get('seconds', 0):.1f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fusion", default="all")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "avdigits-hard.json"))
    args = parser.parse_args()

    table = mf.load_dataset("av-digits-hard", root=args.data_root)
    splits = make_splits(table.y, table.groups, cv="loso", seed=0)

    t0 = time.perf_counter()
    result = mf.compare(
        table,
        fusion=args.fusion,
        cv="loso",
        seed=0,
        epochs=args.epochs,
        progress=_progress,
        fold_metrics=retrieval_metrics,
    )
    result["wall_seconds"] = time.perf_counter() - t0
    print(format_table(result), flush=True)

    t0 = time.perf_counter()
    reference = sklearn_reference(table, splits)
    reference_seconds = time.perf_counter() - t0
    for name, r in reference.items():
        print(
            f"{name:22s} accuracy {r['accuracy']['mean']:.3f} ± {r['accuracy']['std']:.3f}  "
            f"macro-F1 {r['f1_macro']['mean']:.3f}"
        )
    print(
        f"modalfuse wall time {result['wall_seconds']:.0f}s, scikit-learn reference {reference_seconds:.0f}s"
    )

    doc = {
        "benchmark": "av-digits-hard, leave-one-speaker-out",
        "command": f"python benchmarks/avdigits.py --epochs {args.epochs} --fusion {args.fusion}",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "modalfuse": result,
        "reference": {"strategies": reference, "wall_seconds": reference_seconds},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"written {out}")


if __name__ == "__main__":
    main()
