"""Streaming: tables read a batch of rows at a time and embedded into Parquet by pretrained encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse.cli import app
from modalfuse.encoders import count_rows, encode_table, iter_frames, make_preprocessor


@pytest.fixture(scope="module")
def frame(table_dir: Path) -> pd.DataFrame:
    return pd.read_csv(table_dir / "data.csv")


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv", ".jsonl", ".csv.gz"])
def test_iter_frames_reads_every_row_once_in_batches(
    frame: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"t{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, row_group_size=10)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    batches = list(iter_frames(path, batch_rows=16))
    assert [len(b) for b in batches] == [16, 16, 16, 16, 8]
    joined = pd.concat(batches)
    assert list(joined.index) == list(range(72))
    assert list(joined.columns) == list(frame.columns)
    assert joined["text"].fillna("").tolist() == frame["text"].fillna("").tolist()
    assert count_rows(path) == (72 if suffix == ".parquet" else None)


def test_iter_frames_refuses_bad_input_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(mf.OptionError, match="batch_rows must be a whole number of at least 1, got 0"):
        next(iter_frames(pd.DataFrame({"a": [1]}), batch_rows=0))
    with pytest.raises(mf.SchemaError, match="no such table file"):
        next(iter_frames(tmp_path / "missing.csv"))
    (tmp_path / "t.xlsx").write_bytes(b"x")
    with pytest.raises(mf.SchemaError, match="streaming reads Parquet, CSV/TSV and JSONL"):
        next(iter_frames(tmp_path / "t.xlsx"))


def test_encode_table_writes_the_same_embeddings_as_the_in_memory_encoder(
    frame: pd.DataFrame, table_dir: Path, tmp_path: Path, table, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers", reason="the 'pretrained' extra is not installed")
    import modalfuse.data._table as table_module

    source = tmp_path / "t.parquet"
    frame.to_parquet(source, row_group_size=20)
    seen: list[int] = []
    read = table_module.read_table

    def spy(data, **kw):  # every table read while encoding is one batch, never the whole table
        seen.append(len(data))
        return read(data, **kw)

    monkeypatch.setattr(table_module, "read_table", spy)
    events: list[dict] = []
    with mf._progress.listening(lambda event, **info: events.append({"event": event, **info})):
        summary = encode_table(
            source, encoders={"text": "minilm"}, out=tmp_path / "out.parquet", root=table_dir, batch_rows=25
        )
    assert seen == [25, 25, 22]
    assert summary["rows"] == 72 and summary["inputs"]["text"] == {
        "encoder": "minilm",
        "dim": 384,
        "present": int(table.present["text"].sum()),
    }
    rows = [e for e in events if e["event"] == "encode_rows"]
    assert [e["done"] for e in rows] == [25, 50, 72] and all(e["total"] == 72 for e in rows)
    assert rows[-1]["rate"] > 0 and rows[-1]["eta"] == 0

    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["row"].tolist() == list(range(72))
    expected, mask = make_preprocessor("minilm", "text", ["text"]).fit(table).transform(table)
    assert out["text"].isna().to_numpy().tolist() == (~mask).tolist()
    got = np.stack(out["text"][mask].to_numpy())
    np.testing.assert_allclose(got, expected[mask], atol=1e-6)
    assert not list(tmp_path.glob(".out.parquet.*"))  # the temporary file was moved into place


def test_encode_table_takes_pretrained_encoders_only(frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(mf.OptionError, match="streaming encodes with pretrained encoders only"):
        encode_table(frame, encoders={"text": "tfidf"}, out=tmp_path / "o.parquet")
    with pytest.raises(mf.UnknownNameError, match="minilm"):
        encode_table(frame, encoders={"text": "minlm"}, out=tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()


def test_encode_command_writes_parquet_and_reports_rows(csv_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="the 'pretrained' extra is not installed")
    out = tmp_path / "emb.parquet"
    result = CliRunner().invoke(
        app,
        ["encode", str(csv_path), "--encoder", "text=minilm", "--out", str(out), "--id", "speaker"],
    )
    assert result.exit_code == 0, result.output
    assert "72 rows in" in result.output and "text: minilm (384-d), 70 rows embedded" in result.output
    written = pd.read_parquet(out)
    assert list(written.columns) == ["row", "speaker", "text"] and len(written) == 72
    assert written["speaker"].tolist() == pd.read_csv(csv_path)["speaker"].astype(str).tolist()
    bad = CliRunner().invoke(app, ["encode", str(csv_path), "--encoder", "txt=minilm", "--out", str(out)])
    assert bad.exit_code == 2
    assert "error: column 'txt' of encoders is not in the table; did you mean 'text'?" in bad.output
    assert pd.read_parquet(out).equals(written)  # the earlier output is untouched


@pytest.mark.slow
def test_encode_table_masks_a_damaged_image_and_keeps_the_other_rows(
    frame: pd.DataFrame, table_dir: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "broken.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    data = frame.copy()
    data.loc[5, "image"] = str(damaged)
    summary = encode_table(
        data,
        encoders={"image": "efficientnet-lite0"},
        preprocess={"image": {"size": 64}},
        out=tmp_path / "o.parquet",
        root=table_dir,
    )
    out = pd.read_parquet(tmp_path / "o.parquet")
    missing = set(np.flatnonzero(out["image"].isna()))
    assert 5 in missing and missing == {5, *np.flatnonzero(frame["image"].isna())}
    assert summary["inputs"]["image"]["present"] == 72 - len(missing)
    assert summary["problems"] >= 1
    assert json.dumps(summary)  # JSON-able
