"""Serving latency and robustness: an AV-Digits late-fusion model behind ``modalfuse serve``, measured by a
client in another process over real HTTP.

Steps (each recorded in the JSON):

1. AV-Digits (clean: FSDD recordings + MNIST digits) is written as a real table: one PNG per image, the WAV
   files where they are, a CSV. One speaker is held out; a ``late`` model with the default encoders (the
   image and audio CNNs, default epochs) is fitted on the other speakers' rows and saved (or ``--model``
   names a folder saved by an earlier run, which is then reused as it is).
2. ``modalfuse serve`` starts in its own process on a free port of 127.0.0.1; this process is the client.
3. Single-record latency: ``--single`` requests one after another (held-out rows, image + audio as base64
   JSON): median, p90, p99 and the server's own decode / model times (``Server-Timing``).
4. Load: ``--requests`` requests (default 2,000) from ``--concurrency`` client threads (default 8), each with
   its own keep-alive connection: p50, p99, requests/s, errors (anything but 200), and the accuracy of the
   answers on the held-out speaker (the server answers with the model, not something else).
5. Malformed: 20 requests of each of 10 kinds of client mistake: their statuses (all must be 4xx, none 5xx),
   then ``GET /health`` (``server_errors`` must be 0) and one good request (must be 200).

    python benchmarks/serve.py [--data-root ../shared/datasets] [--model DIR] [--save-model DIR]
                               [--requests 2000] [--concurrency 8] [--single 200] [--threads 1]
                               [--out benchmarks/results/serve.json]

The machine's load average before and after each phase is recorded: latencies depend on what else runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import environment

ROOT = Path(__file__).resolve().parents[1]

#: The upload limit the server runs with (MiB): small enough that the over-limit requests stay quick.
MAX_UPLOAD_MB = 2.0
MAX_BATCH = 64
#: The issue's goal for the median single-record latency with the CNN encoders, milliseconds.
SINGLE_GOAL_MS = 50.0


# ------------------------------------------------------------------------------------------- the model
def write_table(data_root: Path | None, folder: Path) -> Path:
    """AV-Digits (clean) as ``folder/data.csv`` with one PNG per image and the recordings' WAV paths."""
    from PIL import Image

    ds = mf.load_dataset("av-digits", root=data_root)
    frame = ds.frame.copy()
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = []
    for i, cell in enumerate(frame["image"]):
        pixels = np.clip(np.asarray(cell, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        name = images / f"{i:05d}.png"
        Image.fromarray(pixels).save(name)
        names.append(str(name))
    frame["image"] = names
    frame["digit"] = ds.y
    frame["speaker"] = ds.groups
    csv = folder / "data.csv"
    frame.to_csv(csv, index=False)
    return csv


def train(csv: Path, held_out: str, out: Path, threads: int, epochs: int | None) -> dict[str, Any]:
    """Fit the late-fusion model on every speaker but ``held_out`` and save it to ``out`` (``epochs``:
    None keeps the estimator's default)."""
    table = mf.read_table(
        csv, label="digit", groups="speaker", modalities={"audio": "audio", "image": "image"}
    )
    train_rows = np.flatnonzero(np.asarray(table.groups) != held_out)
    extra = {} if epochs is None else {"epochs": epochs}
    clf = mf.MultimodalClassifier(fusion="late", n_threads=threads, **extra)
    start = time.perf_counter()
    clf.fit(table.take(train_rows))
    seconds = time.perf_counter() - start
    clf.save(out)
    return {
        "fit_seconds": round(seconds, 1),
        "train_rows": len(train_rows),
        "epochs": clf.epochs,
        "encoders": {n: i.encoder for n, i in clf.inputs_.items()},
    }


def held_out_records(csv: Path, held_out: str) -> tuple[list[bytes], list[int]]:
    """The held-out speaker's rows as JSON request bodies (image and audio as base64) and their digits."""
    import pandas as pd

    frame = pd.read_csv(csv)
    rows = frame[frame["speaker"].astype(str) == held_out]
    bodies, labels = [], []
    for _, row in rows.iterrows():
        record = {
            "image": _b64(Path(row["image"]), "image/png"),
            "audio": _b64(Path(row["audio"]), "audio/wav"),
        }
        bodies.append(json.dumps(record).encode())
        labels.append(int(row["digit"]))
    return bodies, labels


def _b64(path: Path, kind: str) -> dict[str, str]:
    return {"base64": base64.b64encode(path.read_bytes()).decode(), "type": kind}


# ------------------------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, port: int, threads: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "modalfuse.cli",
        "serve",
        str(model),
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--max-upload-mb",
        str(MAX_UPLOAD_MB),
        "--max-batch",
        str(MAX_BATCH),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start in 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------------- measuring
def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p90_ms": round(float(np.percentile(a, 90)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
        "mean_ms": round(float(a.mean()), 2),
    }


def _server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used (Linux ``/proc``), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    url: str, bodies: list[bytes], labels: list[int], n: int, concurrency: int, server_pid: int
) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` threads (one keep-alive connection each), bodies taken in turn.

    Besides wall-clock latencies, records the CPU time the server process and this client spent per
    request: on a machine where other jobs compete for the cores, latency grows with the load, CPU time
    much less."""
    import httpx

    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    timings: list[dict[str, float]] = []
    correct = [0, 0]
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120, headers={"Content-Type": "application/json"}) as client:
            for i in counter:  # next() of a shared iterator hands out each index once (GIL)
                k = i % len(bodies)
                start = time.perf_counter()
                try:
                    answer = client.post("/predict", content=bodies[k])
                    status = str(answer.status_code)
                except httpx.HTTPError as exc:
                    answer, status = None, type(exc).__name__
                ms = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(ms)
                    statuses[status] += 1
                    if answer is not None and answer.status_code == 200:
                        timings.append(_server_timing(answer.headers.get("server-timing", "")))
                        correct[0] += int(answer.json()["prediction"]) == labels[k]
                        correct[1] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    load_before = os.getloadavg()
    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    server_cpu_after = cpu_seconds(server_pid)
    server_ms = None if server_cpu is None else round((server_cpu_after - server_cpu) / n * 1000, 2)
    return {
        "requests": n,
        "concurrency": concurrency,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(n / wall, 2),
        "latency": _percentiles(latencies),
        "server_cpu_ms_per_request": server_ms,
        "client_cpu_ms_per_request": round((time.process_time() - client_cpu) / n * 1000, 2),
        "server_decode_ms_median": _median(timings, "decode"),
        "server_model_ms_median": _median(timings, "model"),
        "statuses": dict(statuses),
        "errors": n - statuses.get("200", 0),
        "answers_correct": correct[0],
        "answers_accuracy": round(correct[0] / max(correct[1], 1), 4),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def _median(timings: list[dict[str, float]], name: str) -> float | None:
    values = [t[name] for t in timings if name in t]
    return round(statistics.median(values), 2) if values else None


# ------------------------------------------------------------------------------------------- malformed
def malformed_kinds(good: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Ten kinds of client mistake, as httpx keyword arguments."""
    image = good["image"]
    json_type = {"Content-Type": "application/json"}
    too_large = (
        b'{"image": {"base64": "' + b"A" * int(MAX_UPLOAD_MB * 2**20 + 4) + b'", "type": "image/png"}}'
    )
    return {
        "unknown input": {"json": {"imagee": image}},
        "number for an image": {"json": {"image": 3}},
        "bad base64": {"json": {"image": {"base64": "@@not base64@@", "type": "image/png"}}},
        "a server path for audio": {"json": {"audio": "/etc/passwd"}},
        "image declared as audio": {"json": {"image": {**image, "type": "audio/wav"}}},
        "invalid JSON": {"content": b'{"image": ', "headers": json_type},
        "empty body": {"content": b"", "headers": json_type},
        "body over the upload limit": {"content": too_large, "headers": json_type},
        "batch over the limit": {"json": [{"image": image}] * (MAX_BATCH + 1)},
        "plain text body": {"content": b"image=1", "headers": {"Content-Type": "text/plain"}},
    }


def malformed(url: str, good_body: bytes, per_kind: int) -> dict[str, Any]:
    """``per_kind`` requests of each kind; then the server's health and one good request."""
    import httpx

    kinds = malformed_kinds(json.loads(good_body))
    table = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for name, kwargs in kinds.items():
            statuses: Counter[str] = Counter()
            answer_kinds: Counter[str] = Counter()
            for _ in range(per_kind):
                try:
                    answer = client.post("/predict", **kwargs)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                statuses[str(answer.status_code)] += 1
                answer_kinds[answer.json().get("kind", "?")] += 1
            table.append({"kind": name, "statuses": dict(statuses), "answer_kinds": dict(answer_kinds)})
        health = client.get("/health").json()
        good = client.post("/predict", content=good_body, headers={"Content-Type": "application/json"})
    total = per_kind * len(kinds)
    n_4xx = sum(n for row in table for s, n in row["statuses"].items() if s.startswith("4"))
    n_5xx = sum(n for row in table for s, n in row["statuses"].items() if s.startswith("5"))
    return {
        "requests": total,
        "kinds": table,
        "all_4xx": n_4xx == total,
        "n_4xx": n_4xx,
        "n_5xx": n_5xx,
        "health_after": health,
        "good_request_after": good.status_code,
    }


# ------------------------------------------------------------------------------------------- main
def _prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The table's CSV, the model folder and how the model was made."""
    csv = write_table(args.data_root, work / "table")
    if args.model is not None and (args.model / "model.json").is_file():
        clf = mf.MultimodalClassifier.load(args.model)
        encoders = {n: i.encoder for n, i in clf.inputs_.items()}
        return csv, args.model, {"reused": str(args.model), "epochs": clf.epochs, "encoders": encoders}
    folder = args.model or args.save_model or work / "model"
    info = train(csv, args.held_out, folder, args.threads, args.epochs)
    return csv, folder, info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--model", type=Path, help="a model folder to reuse (trained and saved when absent)")
    parser.add_argument(
        "--save-model", type=Path, help="where to save the trained model (default: temporary)"
    )
    parser.add_argument("--held-out", default="theo", help="the speaker whose rows are the requests")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the estimator's)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--single", type=int, default=200, help="sequential single-record requests")
    parser.add_argument("--malformed-per-kind", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of training and of the server")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="modalfuse-serve-bench-") as tmp:
        work = Path(tmp)
        csv, model, model_info = _prepare(args, work)
        bodies, labels = held_out_records(csv, args.held_out)
        if not bodies:
            raise SystemExit(f"no rows of speaker {args.held_out!r} in the table")
        port = free_port()
        proc = start_server(model, port, args.threads, work / "server.log")
        url = f"http://127.0.0.1:{port}"
        try:
            load(url, bodies, labels, 20, 1, proc.pid)  # warm-up: first requests pay for lazy imports
            single = load(url, bodies, labels, args.single, 1, proc.pid)
            loaded = load(url, bodies, labels, args.requests, args.concurrency, proc.pid)
            bad = malformed(url, bodies[0], args.malformed_per_kind)
        finally:
            stop_server(proc)

    result = {
        "benchmark": "serve: AV-Digits (clean) late-fusion model behind `modalfuse serve`, client in another "
        "process",
        "command": "python benchmarks/serve.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": {
            **model_info,
            "fusion": "late",
            "held_out_speaker": args.held_out,
            "requests_pool": len(bodies),
        },
        "server": {"threads": args.threads, "max_upload_mb": MAX_UPLOAD_MB, "max_batch": MAX_BATCH},
        "single_record": {**single, "goal_median_ms": SINGLE_GOAL_MS},
        "single_median_within_goal": single["latency"]["p50_ms"] <= SINGLE_GOAL_MS,
        "load": loaded,
        "malformed": bad,
        "environment": environment(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("single_record", "load")}, indent=2))
    print(
        f"malformed: {bad['n_4xx']}/{bad['requests']} 4xx, {bad['n_5xx']} 5xx; health after: {bad['health_after']}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
