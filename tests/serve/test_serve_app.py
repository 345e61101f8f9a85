"""The model server over real HTTP: a ``modalfuse serve`` process on a free port of 127.0.0.1, talked to
with httpx. Every endpoint, partial records, batches, every client error, and a server still healthy
after them."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'modalfuse[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'modalfuse[serve]'")
httpx = pytest.importorskip("httpx", reason="the server tests need httpx: pip install 'modalfuse[test]'")

from conftest import assert_probabilities  # noqa: E402

from .conftest import EVALUATION, MAX_BATCH, MAX_UPLOAD_MB, free_port, wait_healthy  # noqa: E402

TIMEOUT = 60.0


# ------------------------------------------------------------------------------------------- helpers
def _media(path: Path, kind: str) -> dict[str, str]:
    return {"base64": base64.b64encode(path.read_bytes()).decode(), "type": kind}


def _row(table_dir: Path, i: int) -> pd.Series:
    return pd.read_csv(table_dir / "data.csv").iloc[i]


def json_record(table_dir: Path, i: int, columns: tuple[str, ...]) -> dict[str, Any]:
    """Row ``i`` of the synthetic table as a JSON record with only ``columns`` (media as base64)."""
    row = _row(table_dir, i)
    out: dict[str, Any] = {}
    for col in columns:
        if col == "image":
            out[col] = _media(table_dir / row["image"], "image/png")
        elif col == "audio":
            out[col] = _media(table_dir / row["audio"], "audio/wav")
        else:
            value = row[col]
            out[col] = value.item() if isinstance(value, np.generic) else value
    return out


def frame_of(table_dir: Path, rows: list[tuple[int, tuple[str, ...]]]) -> pd.DataFrame:
    """The same records as a DataFrame of file bytes and values, for the model loaded in this process."""
    records = []
    for i, columns in rows:
        row = _row(table_dir, i)
        rec: dict[str, Any] = {}
        for col in columns:
            rec[col] = (table_dir / row[col]).read_bytes() if col in ("image", "audio") else row[col]
        records.append(rec)
    given = [
        c for c in ("image", "audio", "text", "num", "colour", "speaker") if any(c in r for r in records)
    ]
    return pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in given})


def probabilities(answer: dict[str, Any], classes: Any) -> np.ndarray:
    return np.array([answer["probabilities"][str(c)] for c in classes])


@pytest.fixture(scope="module")
def client(server) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


ALL = ("image", "audio", "text", "num", "colour", "speaker")
TABULAR = ("num", "colour", "speaker")


# ------------------------------------------------------------------------------------------- endpoints
def test_health_answers_ok(client) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["fusion"] == "late"
    assert body["server_errors"] == 0


def test_model_describes_schema_inputs_classes_evaluation_and_version(client, served_clf) -> None:
    import modalfuse as mf

    body = client.get("/model").json()
    assert body["version"] == mf.__version__
    assert body["classes"] == [str(c) for c in served_clf.classes_]
    assert body["schema"] == dict(served_clf.schema_.columns)
    assert set(body["inputs"]) == set(served_clf.inputs_) == {"image", "audio", "text", "tabular"}
    assert body["inputs"]["tabular"]["columns"] == ["num", "colour", "speaker"]
    assert body["inputs"]["image"]["encoder"] == "image-cnn"
    colour = next(c for c in body["columns"] if c["name"] == "colour")
    assert sorted(colour["categories"]) == ["blue", "green", "red"]
    assert body["limits"] == {
        "max_upload_bytes": int(MAX_UPLOAD_MB * 2**20),
        "max_batch": MAX_BATCH,
        "decode_seconds": 5.0,
    }
    evaluation = body["evaluation"]
    assert evaluation["strategy"] == "late"
    assert evaluation["metrics"]["accuracy"] == {"mean": 0.875, "std": 0.05}
    assert evaluation["accuracy_by_strategy"] == {"late": 0.875, "unimodal:image": 0.7}
    assert evaluation["cv"]["n_folds"] == EVALUATION["cv"]["n_folds"]
    assert evaluation["recommendation"] == "late has the best accuracy"


def test_page_is_one_self_contained_document(client) -> None:
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert "<script>" in html and "<style>" in html
    for external in ("http://", "https://", 'src="/', '<link rel="stylesheet"'):
        assert external not in html.replace('"http://www.w3.org/2000/svg"', "")
    assert "connect-src 'self'" in answer.headers["content-security-policy"]


def test_predict_one_full_record_matches_the_model(client, served_clf, table_dir: Path) -> None:
    answer = client.post("/predict", json=json_record(table_dir, 5, ALL))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = served_clf.predict_proba(frame_of(table_dir, [(5, ALL)]))[0]
    np.testing.assert_allclose(probabilities(body, served_clf.classes_), expected, atol=1e-6)
    assert body["prediction"] == served_clf.classes_[expected.argmax()]
    assert body["inputs_used"] == ["image", "audio", "text", "tabular"]
    assert body["inputs_missing"] == [] and body["problems"] == []
    assert "contributions" not in body
    assert "decode;dur=" in answer.headers["server-timing"]


@pytest.mark.parametrize(
    "columns",
    [("image",), ("audio",), ("text",), TABULAR, ("num",), ("image", "text"), ("audio", "colour")],
    ids=lambda c: "+".join(c),
)
def test_any_subset_of_inputs_goes_through_the_missing_path(
    client, served_clf, table_dir: Path, columns: tuple[str, ...]
) -> None:
    body = client.post("/predict", json=json_record(table_dir, 7, columns)).json()
    expected = served_clf.predict_proba(frame_of(table_dir, [(7, columns)]))[0]
    np.testing.assert_allclose(probabilities(body, served_clf.classes_), expected, atol=1e-6)
    used = {"tabular" if c in TABULAR else c for c in columns}
    assert set(body["inputs_used"]) == used
    assert set(body["inputs_missing"]) == {"image", "audio", "text", "tabular"} - used


def test_a_batch_answers_each_record_in_order(client, served_clf, table_dir: Path) -> None:
    rows = [(0, ALL), (1, ("audio", "text")), (2, ("image",)), (3, TABULAR), (4, ("image", "audio"))]
    answer = client.post("/predict", json=[json_record(table_dir, i, cols) for i, cols in rows])
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == len(rows)
    expected = served_clf.predict_proba(frame_of(table_dir, rows))
    got = np.array([probabilities(p, served_clf.classes_) for p in predictions])
    assert_probabilities(got, len(rows), len(served_clf.classes_))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert predictions[2]["inputs_used"] == ["image"]


def test_contributions_on_request_match_explain(client, served_clf, table_dir: Path) -> None:
    rows = [(14, ALL), (17, ("image", "audio"))]
    answer = client.post(
        "/predict", params={"contributions": "true"}, json=[json_record(table_dir, i, c) for i, c in rows]
    )
    predictions = answer.json()["predictions"]
    expected = served_clf.explain(frame_of(table_dir, rows))
    for i, p in enumerate(predictions):
        assert set(p["contributions"]) == set(served_clf.inputs_)
        for name, value in p["contributions"].items():
            assert value == pytest.approx(float(expected[name].iloc[i]), abs=1e-6)
    assert predictions[1]["contributions"]["text"] == 0.0  # missing inputs contribute nothing


def test_explain_endpoint_gives_the_estimators_explanation(client, served_clf, table_dir: Path) -> None:
    rows = [(12, ALL), (13, ("text", "num"))]
    body = client.post("/explain", json=[json_record(table_dir, i, c) for i, c in rows]).json()
    expected = served_clf.explain(frame_of(table_dir, rows))
    for i, e in enumerate(body["explanations"]):
        assert e["prediction"] == expected["prediction"].iloc[i]
        assert e["probability"] == pytest.approx(float(expected["probability"].iloc[i]), abs=1e-6)
        for name in served_clf.inputs_:
            assert e["contributions"][name] == pytest.approx(float(expected[name].iloc[i]), abs=1e-6)
    assert body["explanations"][1]["inputs_used"] == ["text", "tabular"]
    single = client.post("/explain", json=json_record(table_dir, 12, ALL)).json()
    assert single["contributions"] == body["explanations"][0]["contributions"]


def test_multipart_upload_and_data_urls_give_the_same_answer_as_base64(client, table_dir: Path) -> None:
    row = _row(table_dir, 20)
    reference = client.post("/predict", json=json_record(table_dir, 20, ("image", "audio", "text"))).json()
    files = {
        "image": (row["image"], (table_dir / row["image"]).read_bytes(), "image/png"),
        "audio": (row["audio"], (table_dir / row["audio"]).read_bytes(), "audio/wav"),
    }
    uploaded = client.post("/predict", files=files, data={"text": row["text"]})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == reference
    image = base64.b64encode((table_dir / row["image"]).read_bytes()).decode()
    audio = base64.b64encode((table_dir / row["audio"]).read_bytes()).decode()
    record = {
        "image": f"data:image/png;base64,{image}",
        "audio": f"data:audio/wav;base64,{audio}",
        "text": row["text"],
    }
    assert client.post("/predict", json=record).json() == reference


def test_a_corrupt_image_masks_that_input_and_says_so(client, served_clf, table_dir: Path) -> None:
    good = json_record(table_dir, 15, ("image", "text"))
    bad = json_record(table_dir, 16, ("audio", "text"))
    bad["image"] = {"base64": base64.b64encode(b"\x89PNG\r\n\x1a\n truncated").decode(), "type": "image/png"}
    answer = client.post("/predict", json=[good, bad])
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["predictions"]
    assert first["problems"] == [] and first["inputs_used"] == ["image", "text"]
    assert second["inputs_used"] == ["audio", "text"]
    assert "image" in second["inputs_missing"]
    [problem] = second["problems"]
    assert problem["field"] == "image" and problem["input"] == "image"
    assert "image" in problem["reason"].lower()
    # the corrupt image counts as missing: the same answer as the record without it
    expected = served_clf.predict_proba(frame_of(table_dir, [(16, ("audio", "text"))]))[0]
    np.testing.assert_allclose(probabilities(second, served_clf.classes_), expected, atol=1e-6)


def test_values_the_model_has_no_category_for_are_noted(client, table_dir: Path) -> None:
    record = json_record(table_dir, 3, ("num",))
    record["colour"] = "purple"
    body = client.post("/predict", json=record).json()
    assert body["notes"] == ["colour: the model has no category 'purple'; it is encoded as 'other'"]


# ------------------------------------------------------------------------------------------- client errors
def _big_record() -> bytes:
    payload = base64.b64encode(b"\x00" * int(MAX_UPLOAD_MB * 2**20)).decode()
    return ('{"image": {"base64": "' + payload + '", "type": "image/png"}}').encode()


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


def _image_b64(table_dir: Path) -> str:
    return base64.b64encode((table_dir / "img_000.png").read_bytes()).decode()


JSON = {"Content-Type": "application/json"}

CLIENT_ERRORS: list[tuple[str, Any, int, str, str]] = [
    # (id, request builder(table_dir) -> httpx kwargs, status, kind, field)
    ("unknown input", lambda d: {"json": {"imag": 1}}, 422, "unknown_input", "imag"),
    (
        "unknown input in a batch",
        lambda d: {"json": [{"num": 1}, {"txt": "a"}]},
        422,
        "unknown_input",
        "[1].txt",
    ),
    ("an input name, not a column", lambda d: {"json": {"tabular": 1}}, 422, "unknown_input", "tabular"),
    ("number for an image", lambda d: {"json": {"image": 3}}, 422, "wrong_type", "image"),
    ("list for a text", lambda d: {"json": {"text": ["a"]}}, 422, "wrong_type", "text"),
    ("word for a number", lambda d: {"json": {"num": "many"}}, 422, "wrong_type", "num"),
    ("boolean for a number", lambda d: {"json": {"num": True}}, 422, "wrong_type", "num"),
    ("object for a category", lambda d: {"json": {"colour": {}}}, 422, "wrong_type", "colour"),
    ("a server path for an image", lambda d: {"json": {"image": "/etc/passwd"}}, 422, "wrong_type", "image"),
    ("a relative path for audio", lambda d: {"json": {"audio": "snd_000.wav"}}, 422, "wrong_type", "audio"),
    (
        "audio type for an image",
        lambda d: {"json": {"image": {"base64": _image_b64(d), "type": "audio/wav"}}},
        422,
        "wrong_type",
        "image",
    ),
    (
        "no declared type",
        lambda d: {"json": {"image": {"base64": _image_b64(d)}}},
        422,
        "wrong_type",
        "image",
    ),
    (
        "misspelt media key",
        lambda d: {"json": {"image": {"bas64": "AA==", "type": "image/png"}}},
        422,
        "wrong_type",
        "image",
    ),
    (
        "bad base64",
        lambda d: {"json": {"image": {"base64": "not base64!", "type": "image/png"}}},
        422,
        "bad_base64",
        "image",
    ),
    (
        "bad base64 in a data URL",
        lambda d: {"json": {"audio": "data:audio/wav;base64,@@@"}},
        422,
        "bad_base64",
        "audio",
    ),
    ("a record that is not an object", lambda d: {"json": [1]}, 422, "wrong_type", "[0]"),
    ("a body that is a string", lambda d: {"json": "hello"}, 422, "wrong_type", "body"),
    ("a record with no input", lambda d: {"json": {"text": None}}, 422, "no_inputs", "body"),
    ("an empty batch", lambda d: {"json": []}, 422, "empty_batch", "body"),
    (
        "a batch over the limit",
        lambda d: {"json": [{"num": 1}] * (MAX_BATCH + 1)},
        413,
        "batch_too_large",
        "body",
    ),
    (
        "a body over the upload limit",
        lambda d: {"content": _big_record(), "headers": JSON},
        413,
        "too_large",
        "body",
    ),
    (
        "a streamed body over the limit",
        lambda d: {"content": _chunks(_big_record()), "headers": JSON},
        413,
        "too_large",
        "body",
    ),
    ("an empty body", lambda d: {"content": b"", "headers": JSON}, 400, "empty_body", "body"),
    ("a blank body", lambda d: {"content": b"  \n", "headers": JSON}, 400, "empty_body", "body"),
    ("invalid JSON", lambda d: {"content": b'{"num": ', "headers": JSON}, 400, "invalid_json", "body"),
    (
        "JSON that is not UTF-8",
        lambda d: {"content": b'{"text": "\xff"}', "headers": JSON},
        400,
        "invalid_json",
        "body",
    ),
    ("a form-encoded body", lambda d: {"data": {"num": "1"}}, 415, "unsupported_media_type", "content-type"),
    (
        "plain text",
        lambda d: {"content": b"num=1", "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
        "content-type",
    ),
    (
        "multipart without a boundary",
        lambda d: {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}},
        400,
        "bad_multipart",
        "body",
    ),
    (
        "an uploaded file for text",
        lambda d: {"files": {"text": ("a.txt", b"apple", "text/plain")}},
        422,
        "wrong_type",
        "text",
    ),
    (
        "an uploaded image declared as audio",
        lambda d: {"files": {"image": ("a.wav", b"RIFF", "audio/wav")}},
        422,
        "wrong_type",
        "image",
    ),
    (
        "an unknown form field",
        lambda d: {"files": {"picture": ("a.png", b"x", "image/png")}},
        422,
        "unknown_input",
        "picture",
    ),
    (
        "a bad query flag",
        lambda d: {"json": {"num": 1}, "params": {"contributions": "maybe"}},
        422,
        "wrong_type",
        "query.contributions",
    ),
]


@pytest.mark.parametrize(
    ("builder", "status", "kind", "field"), [c[1:] for c in CLIENT_ERRORS], ids=[c[0] for c in CLIENT_ERRORS]
)
def test_client_mistakes_get_a_structured_4xx(client, table_dir: Path, builder, status, kind, field) -> None:
    answer = client.post("/predict", **builder(table_dir))
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body == {"status": status, "kind": kind, "field": field, "message": body["message"]}
    assert body["message"] and "\n" not in body["message"]
    if field not in ("body", "content-type"):
        assert field.split(".")[-1] in body["message"]


def test_error_messages_say_what_to_do(client) -> None:
    unknown = client.post("/predict", json={"imag": 1}).json()["message"]
    assert "did you mean 'image'?" in unknown
    path = client.post("/predict", json={"image": "/etc/passwd"}).json()["message"]
    assert "never reads files" in path and "base64" in path
    tabular = client.post("/predict", json={"tabular": 1}).json()["message"]
    assert "num, colour, speaker" in tabular


def test_unknown_paths_and_methods_are_structured_too(client) -> None:
    missing = client.get("/predictions")
    assert missing.status_code == 404 and missing.json()["kind"] == "not_found"
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json()["kind"] == "method_not_allowed"
    assert client.post("/explain", content=b"", headers=JSON).json()["kind"] == "empty_body"


def test_the_server_stays_healthy_after_client_mistakes(client, table_dir: Path) -> None:
    for _, builder, *_ in CLIENT_ERRORS:
        assert 400 <= client.post("/predict", **builder(table_dir)).status_code < 500
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["server_errors"] == 0
    assert health["client_errors"] >= len(CLIENT_ERRORS)
    assert client.post("/predict", json=json_record(table_dir, 5, ALL)).status_code == 200


def test_concurrent_requests_all_succeed(client, server, table_dir: Path) -> None:
    results: list[int] = []

    def post(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
            results.append(
                c.post("/predict", json=json_record(table_dir, 20 + i, ("image", "audio"))).status_code
            )

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    # the event loop stays free while the model works: health answers meanwhile
    assert client.get("/health", timeout=10).status_code == 200
    for t in threads:
        t.join()
    assert results == [200] * 8


# ------------------------------------------------------------------------------------------- the process
def test_the_server_listens_on_127_0_0_1_only_by_default(server) -> None:
    tcp = Path("/proc/net/tcp")
    if not tcp.exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")
    listening = []
    for line in tcp.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == server.port:  # 0A: LISTEN
            listening.append(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    assert listening == ["127.0.0.1"]
    assert f"Uvicorn running on http://127.0.0.1:{server.port}" in server.log.read_text()


def test_serve_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modalfuse.cli", "serve", str(tmp_path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error:") and "not a saved model" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import modalfuse as mf
    from modalfuse import serve

    monkeypatch.setattr(serve, "_EXTRA", ("fastapi", "no_such_module_for_serving"))
    with pytest.raises(
        mf.ModalfuseError, match=r"'serve' extra \(no_such_module_for_serving not installed\)"
    ):
        serve.create_app("anything")


def test_serve_options_are_declared_and_checked() -> None:
    import modalfuse as mf
    from modalfuse.serve import ServeOptions

    assert ServeOptions().max_upload_bytes == 16 * 2**20
    assert ServeOptions(workers=3).n_workers == 3
    with pytest.raises(mf.OptionError, match="did you mean 'max_batch'"):
        ServeOptions(max_batches=3)
    with pytest.raises(mf.OptionError, match="max_upload_mb"):
        ServeOptions(max_upload_mb=0)
    assert {row["name"] for row in ServeOptions.option_table()} == {
        "decode_seconds",
        "max_batch",
        "max_upload_mb",
        "threads",
        "workers",
    }


# ------------------------------------------------------------------------------------------- decode budget
@pytest.fixture(scope="module")
def strict_server(serve_model_dir: Path) -> Iterator[str]:
    """A second real uvicorn server, in a thread of this process, whose decode budget is 0 s."""
    import uvicorn

    from modalfuse.serve import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(serve_model_dir, decode_seconds=0.0), host="127.0.0.1", port=port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, None, None, timeout=60)
        yield url
    finally:
        uv.should_exit = True
        thread.join(timeout=20)


def test_the_decode_budget_stops_a_request_before_the_model(strict_server: str, table_dir: Path) -> None:
    with httpx.Client(base_url=strict_server, timeout=TIMEOUT) as c:
        batch = [json_record(table_dir, i, ("image", "audio")) for i in (20, 21, 22)]
        answer = c.post("/predict", json=batch)
        assert answer.status_code == 413, answer.text
        body = answer.json()
        assert body["kind"] == "decode_budget" and body["field"] == "[0].image"
        assert "budget of 0 s" in body["message"]
        # records without media decode nothing and are answered
        assert c.post("/predict", json=json_record(table_dir, 0, ("text", "num"))).status_code == 200
        health = c.get("/health").json()
        assert health["server_errors"] == 0 and health["client_errors"] == 1


def test_every_interface_is_served_only_when_asked_and_with_a_note(
    serve_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from modalfuse import serve
    from modalfuse.cli import app

    bound: list[tuple[str, int]] = []
    monkeypatch.setattr(serve, "serve_app", lambda app, *, host, port: bound.append((host, port)))
    local = CliRunner().invoke(app, ["serve", str(serve_model_dir), "--port", "8123"])
    assert local.exit_code == 0, local.output
    assert "no authentication" not in local.output
    everywhere = CliRunner().invoke(app, ["serve", str(serve_model_dir), "--host", "0.0.0.0"])
    assert everywhere.exit_code == 0, everywhere.output
    assert (
        "note: serving on 0.0.0.0: anyone who can reach this machine can use the model" in everywhere.output
    )
    assert bound == [("127.0.0.1", 8123), ("0.0.0.0", 8000)]


@pytest.mark.parametrize(
    "number", ["1" + "0" * 400, "1e999", '"-1e999"'], ids=["huge int", "inf", "-inf text"]
)
def test_a_number_beyond_range_is_masked_with_a_problem(client, number: str) -> None:
    body = '{"num": ' + number + ', "text": "apple"}'
    answer = client.post("/predict", content=body.encode(), headers=JSON)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["inputs_used"] == ["text"] and "tabular" in result["inputs_missing"]
    [problem] = result["problems"]
    assert problem["field"] == "num" and problem["input"] == "tabular"
    assert "not a finite number" in problem["reason"]


def test_a_huge_integer_category_is_an_unseen_category(client) -> None:
    answer = client.post("/predict", content=b'{"colour": 1' + b"0" * 400 + b', "num": 1}', headers=JSON)
    assert answer.status_code == 200, answer.text
    [note] = answer.json()["notes"]
    assert note.startswith("colour: the model has no category '1000000000") and "'other'" in note


def test_explain_names_a_cell_it_could_not_use(client) -> None:
    answer = client.post("/explain", content=b'{"num": 1e999, "text": "apple"}', headers=JSON)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["inputs_used"] == ["text"] and body["contributions"]["tabular"] == 0.0
    assert [p["field"] for p in body["problems"]] == ["num"]


def test_a_record_whose_only_input_is_corrupt_is_answered_and_says_so(client, served_clf) -> None:
    corrupt = {"base64": base64.b64encode(b"GIF89a broken").decode(), "type": "image/gif"}
    answer = client.post("/predict", json={"image": corrupt})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["inputs_used"] == [] and [p["field"] for p in body["problems"]] == ["image"]
    assert body["notes"] == [
        "no input of this record could be used: the answer is the model's answer for a record with every "
        "input missing"
    ]
    empty = served_clf.predict_proba(pd.DataFrame({"image": pd.Series([None], dtype=object)}))[0]
    np.testing.assert_allclose(probabilities(body, served_clf.classes_), empty, atol=1e-6)


def test_explain_notes_values_the_model_has_no_category_for(client, table_dir: Path) -> None:
    record = json_record(table_dir, 3, ("num",))
    record["colour"] = "purple"
    body = client.post("/explain", json=record).json()
    assert body["notes"] == ["colour: the model has no category 'purple'; it is encoded as 'other'"]
    assert body["inputs_used"] == ["tabular"]
