"""A real two-node Ray cluster on this machine: ``ray start --head`` and a second ``ray start --address``
node with resources of its own; a comparison submitted through the address runs on both nodes and gives
the numbers of the serial run. Both nodes are stopped afterwards.

Slow (about a minute on a quiet 2-core machine, several on a busy one: two Ray nodes start and stop).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import modalfuse as mf

pytestmark = pytest.mark.slow

FAST = {"epochs": 1, "min_steps": 8, "batch_size": 16, "inner_folds": 2, "n_threads": 1}
STRATEGIES = "unimodal:image,unimodal:tabular"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_nodes(tmp_path):
    """The address of a head node (1 CPU, resource ``head_node``) joined by a second node (1 CPU,
    resource ``second_node``); both stopped afterwards."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'modalfuse[ray]' to run this test")
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    # a local test cluster: no usage reporting, no token authentication (every node is this machine)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    address = f"127.0.0.1:{port}"
    head = [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    second = [ray_cli, "start", f"--address={address}", "--num-cpus=1"]
    try:
        subprocess.run([*head, '--resources={"head_node": 1}'], env=env, check=True, capture_output=True)
        subprocess.run([*second, '--resources={"second_node": 1}'], env=env, check=True, capture_output=True)
        yield address, env
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


#: The driver that submits the comparison: a fresh Python process, as a user's would be (a process that
#: already ran Ray locally and shut it down keeps state that a second cluster's objects trip over).
DRIVER = """
import json, sys
import ray
import modalfuse as mf
csv, address, out = sys.argv[1:4]
fast = json.loads(sys.argv[4])
table = mf.read_table(csv, label="y")
result = mf.compare(table, fusion=sys.argv[5], cv=4, backend=mf.Backend("ray", address=address), **fast)
assert not ray.is_initialized()  # the run joined the cluster and left it
json.dump({"strategies": result["strategies"], "backend": result["backend"]}, open(out, "w"), default=str)
"""


def test_a_comparison_through_the_address_runs_on_both_nodes_with_the_serial_numbers(
    two_nodes, table, csv_path, tmp_path
):
    address, env = two_nodes
    serial = mf.compare(table, fusion=STRATEGIES, cv=4, **FAST)
    out = tmp_path / "clustered.json"
    args = [sys.executable, "-c", DRIVER, str(csv_path), address, str(out), json.dumps(FAST), STRATEGIES]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    clustered = json.loads(out.read_text())
    folds = {name: e["accuracy"]["folds"] for name, e in clustered["strategies"].items()}
    assert folds == {name: e["accuracy"]["folds"] for name, e in serial["strategies"].items()}
    workers = clustered["backend"]["fold_workers"]
    nodes = {w["node"] for w in workers}
    print(f"\nfolds ran on nodes {[w['node'][:8] for w in workers]}, pids {[w['pid'] for w in workers]}")
    assert len(nodes) == 2 and None not in nodes  # both nodes ran folds
    assert clustered["backend"]["address"] == address
