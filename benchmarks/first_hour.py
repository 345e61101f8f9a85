"""Time the README's first-hour commands as a new user runs them: the demo and the default test suite.

Each command runs in a fresh process (the demo in an empty temporary folder, with ``HOME`` pointing there so
no cache or data of this machine is used); the JSON records its wall time, the CPU time of the process and
its children, the exit status, the load average before and after, and the machine. ``--busy`` starts one
extra process that keeps a core busy for the whole run, as another job on a laptop or a CI runner would.

    python benchmarks/first_hour.py [--demo] [--tests] [--busy] [--out benchmarks/results/first_hour.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, command: list[str], *, cwd: Path, env: dict[str, str]) -> dict:
    """Run ``command`` and measure it; the last lines of its output are kept."""
    load_before = os.getloadavg()
    cpu_before, start = _children_cpu(), time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = (result.stdout + result.stderr).strip().splitlines()
    return {
        "name": name,
        "command": " ".join(command),
        "returncode": result.returncode,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(_children_cpu() - cpu_before, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "last_lines": lines[-4:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo", action="store_true", help="time `modalfuse demo`")
    parser.add_argument("--tests", action="store_true", help="time `python -m pytest` (the default suite)")
    parser.add_argument("--busy", action="store_true", help="keep one extra core busy meanwhile")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "first_hour.json")
    args = parser.parse_args()
    busy = None
    if args.busy:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    runs = []
    try:
        if args.demo:
            with tempfile.TemporaryDirectory() as home:
                env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": home, "MPLBACKEND": "Agg"}
                runs.append(timed("demo", [str(BIN / "modalfuse"), "demo"], cwd=Path(home), env=env))
        if args.tests:
            env = {**os.environ, "MPLBACKEND": "Agg"}
            runs.append(
                timed(
                    "tests",
                    [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                    cwd=ROOT,
                    env=env,
                )
            )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "busy_process": bool(args.busy),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else []
    args.out.write_text(json.dumps([*previous, doc], indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
