"""The on-disk embedding cache: content keys, damage detection, eviction, two processes at once, the CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse._embedcache import DB_NAME, cache_dir, embedding_cache, embedding_key, value_digest
from modalfuse.cli import app


def vec(i: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(dim).astype(np.float32)


def test_put_then_get_returns_the_same_vectors_and_counts(tmp_path: Path) -> None:
    cache = mf.EmbeddingCache(tmp_path)
    cache.put_many({"k1": vec(1), "k2": vec(2)}, encoder="enc@1")
    got = cache.get_many(["k1", "k2", "k3"])
    assert set(got) == {"k1", "k2"}
    np.testing.assert_array_equal(got["k1"], vec(1))
    assert got["k2"].dtype == np.float32
    assert (cache.hits, cache.misses, cache.damaged) == (2, 1, 0)
    # a second object (a later run) reads the same file
    again = mf.EmbeddingCache(tmp_path).get_many(["k2"])
    np.testing.assert_array_equal(again["k2"], vec(2))


def test_keys_follow_content_encoder_version_and_settings(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.bin", tmp_path / "sub" / "b.bin", tmp_path / "c.bin"
    b.parent.mkdir()
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert value_digest(str(a)) == value_digest(b)  # content, not path
    assert value_digest(str(a)) != value_digest(str(c))
    # a text is never read as a file path
    assert value_digest(str(a), text=True) != value_digest(str(a))
    d = value_digest("a dress", text=True)
    base = embedding_key("minilm@0.1.0#r1", {}, d)
    assert base == embedding_key("minilm@0.1.0#r1", {}, value_digest("a dress", text=True))
    assert base != embedding_key("minilm@0.2.0#r1", {}, d)
    assert base != embedding_key("minilm@0.1.0#r2", {}, d)
    assert base != embedding_key("minilm@0.1.0#r1", {"max_length": 64}, d)


def test_a_damaged_entry_is_detected_deleted_and_recomputed(tmp_path: Path) -> None:
    cache = mf.EmbeddingCache(tmp_path)
    cache.put_many({"k1": vec(1), "k2": vec(2)}, encoder="enc")
    cache.close()
    with sqlite3.connect(tmp_path / DB_NAME) as con:  # flip the bytes of one entry on disk
        (data,) = con.execute("SELECT data FROM entries WHERE key='k1'").fetchone()
        con.execute("UPDATE entries SET data=? WHERE key='k1'", (bytes(b ^ 0xFF for b in data),))
        con.execute("UPDATE entries SET shape='[3]' WHERE key='k2'")  # a shape that does not fit the bytes
    calls: list[list[int]] = []

    def compute(positions: list[int]) -> dict[int, np.ndarray]:
        calls.append(positions)
        return {i: vec(i + 1) for i in positions}

    cache = mf.EmbeddingCache(tmp_path)
    with pytest.warns(UserWarning, match="2 damaged entries"):
        out = cache.get_or_compute(["k1", "k2"], compute, encoder="enc")
    assert calls == [[0, 1]] and cache.damaged == 2
    np.testing.assert_array_equal(out[0], vec(1))
    np.testing.assert_array_equal(out[1], vec(2))
    # recomputed entries were stored again, intact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(mf.EmbeddingCache(tmp_path).get_many(["k1", "k2"])) == {"k1", "k2"}


def test_a_database_file_that_is_not_one_is_moved_aside(tmp_path: Path) -> None:
    tmp_path.joinpath(DB_NAME).write_bytes(b"this is not an SQLite database, just garbage" * 100)
    cache = mf.EmbeddingCache(tmp_path)
    with pytest.warns(UserWarning, match="moved aside"):
        assert cache.get_many(["k"]) == {}
    cache.put_many({"k": vec(0)})
    assert set(cache.get_many(["k"])) == {"k"}
    assert len(list(tmp_path.glob(DB_NAME + ".damaged-*"))) == 1
    cache.clear()
    assert not list(tmp_path.glob(DB_NAME + ".damaged-*"))


def test_the_least_recently_used_entries_are_evicted_past_the_size_limit(tmp_path: Path) -> None:
    cache = mf.EmbeddingCache(tmp_path, max_bytes=3 * 32)  # three 8-float vectors
    for i in range(3):
        cache.put_many({f"k{i}": vec(i)})
    cache.get_many(["k0"])  # k0 used again: k1 is now the oldest
    cache.put_many({"k3": vec(3)})
    assert set(cache.get_many(["k0", "k1", "k2", "k3"])) == {"k0", "k2", "k3"}
    assert cache.info()["bytes"] <= 3 * 32
    nothing = mf.EmbeddingCache(tmp_path / "zero", max_bytes=0)
    nothing.put_many({"k": vec(0)})
    assert nothing.get_many(["k"]) == {}
    with pytest.raises(mf.OptionError, match="max_bytes"):
        mf.EmbeddingCache(tmp_path, max_bytes=-1)


def test_the_size_check_reads_an_index_not_every_vector(tmp_path: Path) -> None:
    """The total checked after every write comes from the nbytes index: summing over the table itself read
    every stored vector's page (0.13 s per write at 120,000 entries, growing with the cache)."""
    cache = mf.EmbeddingCache(tmp_path)
    cache.put_many({f"k{i}": vec(i) for i in range(5)})
    con = sqlite3.connect(cache.db_path)
    plan = con.execute("EXPLAIN QUERY PLAN SELECT COALESCE(SUM(nbytes), 0) FROM entries").fetchall()
    assert "COVERING INDEX entries_nbytes" in plan[0][-1]
    assert con.execute("SELECT COALESCE(SUM(nbytes), 0) FROM entries").fetchone()[0] == 5 * 32
    con.close()


def test_location_from_modalfuse_cache_else_the_platform_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here"
    assert embedding_cache().path == tmp_path / "here" / "embeddings"
    monkeypatch.delenv("MODALFUSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "modalfuse"


WRITER = """
import sys, json
import numpy as np
from modalfuse._embedcache import EmbeddingCache

path, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = EmbeddingCache(path)
out = {}
for lo in range(start, stop, 7):  # many small transactions, interleaved with the other process's
    keys = [f"k{i}" for i in range(lo, min(lo + 7, stop))]
    got = cache.get_or_compute(
        keys,
        lambda pos, keys=keys: {p: np.full(16, int(keys[p][1:]), np.float32) * 0.5 for p in pos},
        encoder="enc",
    )
    out.update({keys[p]: float(v.sum()) for p, v in got.items()})
print(json.dumps(out))
"""


def test_two_processes_filling_the_same_cache_give_identical_results(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    folder = tmp_path / "shared"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(folder), start, stop], stdout=subprocess.PIPE, text=True
        )
        for start, stop in (("0", "300"), ("100", "400"))  # rows 100-299 filled by both
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    for result in results:
        assert all(v == int(k[1:]) * 0.5 * 16 for k, v in result.items())
    assert {k: results[0][k] for k in results[1] if k in results[0]} == {
        k: results[1][k] for k in results[0] if k in results[1]
    }
    cache = mf.EmbeddingCache(folder)
    stored = cache.get_many([f"k{i}" for i in range(400)])
    assert len(stored) == 400 and cache.damaged == 0
    assert all(float(v.sum()) == int(k[1:]) * 8 for k, v in stored.items())


def test_cache_info_and_clear_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path))
    embedding_cache().put_many({"a": vec(1), "b": vec(2)}, encoder="minilm@0.1.0#r1")
    runner = CliRunner()
    result = runner.invoke(app, ["cache", "info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["path"] == str(tmp_path / "embeddings" / DB_NAME)
    assert info["entries"] == 2 and info["bytes"] == 64
    assert info["encoders"] == {"minilm@0.1.0#r1": {"entries": 2, "bytes": 64}}
    text = runner.invoke(app, ["cache", "info"]).output
    assert "entries   2" in text and "minilm@0.1.0#r1" in text
    result = runner.invoke(app, ["cache", "clear"])
    assert result.exit_code == 0 and "deleted 2 embeddings" in result.output
    assert json.loads(runner.invoke(app, ["cache", "info", "--json"]).output)["entries"] == 0
    shutil.rmtree(tmp_path / "embeddings")
