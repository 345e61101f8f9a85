"""The ``modalfuse align`` and ``modalfuse windows`` commands (series recordings), registered on the CLI's
app by :mod:`modalfuse.cli`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from modalfuse.cli import _check_output_file, _fail, _write_json, app

__all__ = ["align_cmd", "windows_cmd"]


def _names(value: str, option: str, n: int | None = None) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if (n is not None and len(names) != n) or not names:
        _fail(f"{option} must name {n or 'one or more'} input(s) separated by commas, got {value!r}")
    return names


def _recordings(source: str, inputs: list[str], recording: str, groups: str | None) -> Any:
    """A RecordingSet from a folder laid out like sp_sw_har/DATA or a table of recordings."""
    from modalfuse.data._frame import read_frame
    from modalfuse.data._windows import _recordings_of_table, find_recordings

    path = Path(source)
    if path.is_dir():
        return find_recordings(path, inputs)
    if not path.is_file():
        _fail(f"{source}: no such folder or table of recordings")
    frame = read_frame(path)
    rec_col = recording if recording in frame.columns else None
    return _recordings_of_table(frame, inputs, rec_col, groups, path.parent)


def _summary(entries: list[dict[str, Any]]) -> str:
    import numpy as np

    given = [e for e in entries if not e["abstained"]]
    offs = np.array([e["offset_ms"] for e in given]) if given else np.zeros(0)
    med = f"median offset {np.median(offs):.1f} ms" if len(offs) else "no estimate"
    return f"{len(entries)} recording(s): {len(given)} aligned, {len(entries) - len(given)} abstained; {med}"


@app.command("align")
def align_cmd(
    source: Annotated[
        str, typer.Argument(help="Folder of <recording>_<input>.csv files (like sp_sw_har/DATA) or a table.")
    ],
    pair: Annotated[str, typer.Option("--pair", help="REFERENCE,OTHER: the two inputs to align.")],
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write one entry per recording as JSON here.")
    ] = None,
    pool: Annotated[
        bool, typer.Option("--pool", help="Abstained recordings take their group's pooled offset.")
    ] = False,
    method: Annotated[str, typer.Option(help="xcorr (default) or dtw (needs dtaidistance).")] = "xcorr",
    max_offset: Annotated[float, typer.Option(help="Seconds searched either side.")] = 3.0,
    recording: Annotated[str, typer.Option(help="Recording-id column of a table.")] = "recording",
    groups: Annotated[str | None, typer.Option(help="Group column of a table (for --pool).")] = None,
) -> None:
    """Estimate, per recording, how much later (offset_ms) and faster (drift_ppm) the OTHER clock runs
    than the REFERENCE one, with an uncertainty, or abstain when the motion is ambiguous."""
    from modalfuse.align import align_pairs

    _check_output_file(json_path, "--json")
    ref, other = _names(pair, "--pair", 2)
    rset = _recordings(source, [ref, other], recording, groups)
    pairs = {rec: (cells.get(ref), cells.get(other)) for rec, cells in rset.paths.items()}
    entries = align_pairs(pairs, rset.groups, pool=pool, method=method, max_offset=max_offset)
    for e in entries:
        if e["abstained"]:
            typer.echo(f"{e['recording']}: abstained ({e['reason']})")
        else:
            typer.echo(
                f"{e['recording']}: offset {e['offset_ms']:+.1f} ms, drift {e['drift_ppm']:+.0f} ppm, "
                f"± {e['uncertainty_ms']:.1f} ms" + (" (pooled)" if e.get("pooled") else "")
            )
    typer.echo(_summary(entries))
    if json_path is not None:
        _write_json(json_path, entries)


def _write_windows(table: Any, out: Path, inputs: list[str]) -> Path:
    """Each window as a Parquet file ``out/<input>/<recording>_<k>.parquet`` (a ``timestamp`` column in
    seconds and the channels), and ``out/windows.csv`` listing them with recording, start, group, label."""
    import pandas as pd

    rows = []
    for i in range(len(table)):
        rec = str(table.frame["recording"].iloc[i])
        row: dict[str, Any] = {"recording": rec, "start": float(table.frame["start"].iloc[i])}
        row["group"] = None if table.groups is None else table.groups[i]
        row["label"] = None if table.y is None else table.y[i]
        for name in inputs:
            cell = table.frame[name].iloc[i]
            if cell is None:
                row[name] = None
                continue
            rel = Path(name) / f"{rec}_{i:06d}.parquet"
            (out / name).mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame(cell.values, columns=list(cell.channels))
            frame.insert(0, "timestamp", row["start"] + cell.times())
            frame.to_parquet(out / rel, index=False)
            row[name] = str(rel)
        rows.append(row)
    index = out / "windows.csv"
    pd.DataFrame(rows).to_csv(index, index=False)
    return index


@app.command("windows")
def windows_cmd(
    source: Annotated[str, typer.Argument(help="Folder of <recording>_<input>.csv files or a table.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write windows.csv and the windows into.")],
    inputs: Annotated[
        str | None, typer.Option("--inputs", help="Comma list of inputs, the reference first.")
    ] = None,
    size: Annotated[int, typer.Option(min=1, help="Window length in samples.")] = 50,
    step: Annotated[int, typer.Option(min=1, help="Hop between windows in samples.")] = 25,
    rate: Annotated[float, typer.Option(help="Grid rate in Hz (resampling by timestamp).")] = 100.0,
    label: Annotated[str, typer.Option(help="Per-sample label column of the recordings.")] = "label",
    align: Annotated[
        bool, typer.Option("--align", help="Correct the other clocks before windowing.")
    ] = False,
    on_abstain: Annotated[
        str,
        typer.Option(
            "--on-abstain",
            help="With --align, an input whose alignment abstains: 'mask' its windows or 'keep' them as recorded.",
        ),
    ] = "mask",
    recording: Annotated[str, typer.Option(help="Recording-id column of a table.")] = "recording",
    groups: Annotated[str | None, typer.Option(help="Group column of a table.")] = None,
) -> None:
    """Cut labelled recordings into fixed windows (majority label), one row per window keeping its
    recording and group: writes OUT/windows.csv, ready for `modalfuse evaluate OUT/windows.csv --label
    label --groups group -m recording=ignore -m start=ignore` (recording and start are not features)."""
    import modalfuse as mf

    if out.exists() and any(out.iterdir()):
        _fail(f"--out {out}: the folder exists and is not empty; choose a new one")
    names = _names(inputs, "--inputs") if inputs else None
    if names is None and not Path(source).is_dir():
        _fail("--inputs is needed for a table: the columns holding each device's recording")
    rset = _recordings(source, names, recording, groups) if names else None
    table = mf.windows(
        rset if rset is not None else source,
        size=size,
        step=step,
        rate=rate,
        label=label,
        align=align,
        on_abstain=on_abstain,
    )
    out.mkdir(parents=True, exist_ok=True)
    index = _write_windows(table, out, list(table.schema.columns))
    masked = int(sum((~m).sum() for m in table.present.values()))
    typer.echo(f"{len(table)} window(s) from {table.frame['recording'].nunique()} recording(s) -> {index}")
    typer.echo("evaluate with: --label label --groups group -m recording=ignore -m start=ignore")
    if masked:
        typer.echo(
            f"note: {masked} masked cell(s), see the problems: "
            + os.linesep.join(f"  row {p.row}, {p.column}: {p.reason}" for p in table.problems[:5])
        )
