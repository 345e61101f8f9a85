"""The ``modalfuse`` command. Heavy libraries are imported inside commands, so ``--help`` is instant."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Learn from multimodal tables: inspect, evaluate, fit, predict.",
)

LabelOpt = Annotated[
    str | None, typer.Option("--label", "-l", help="Label column (known for built-in datasets).")
]
GroupsOpt = Annotated[
    str | None,
    typer.Option("--groups", "-g", help="Group column: a group never sits on both sides of a split."),
]
ModalitiesOpt = Annotated[
    list[str] | None,
    typer.Option("--modality", "-m", help="Override a column's modality: COLUMN=MODALITY (repeatable)."),
]
EncodersOpt = Annotated[
    list[str] | None,
    typer.Option("--encoder", "-e", help="Encoder for an input/column/modality: NAME=ENCODER (repeatable)."),
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding built-in datasets' sources (fsdd/, mnist/)."),
]
EncodingOpt = Annotated[
    str | None, typer.Option("--encoding", help="Text encoding of a CSV/JSON table (default UTF-8).")
]
MinStepsOpt = Annotated[
    int,
    typer.Option("--min-steps", help="Fewest optimiser updates of a network (small tables get more epochs)."),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="Torch CPU threads (default: OMP_NUM_THREADS if set, else 1)."),
]
VerboseOpt = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, help="More progress lines on stderr: -v adds one per epoch."),
]


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        key, sep, val = v.partition("=")
        if not sep or not key or not val:
            raise typer.BadParameter(f"{what} must look like NAME=VALUE, got {v!r}")
        out[key] = val
    return out


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _load(
    source: str,
    label: str | None,
    groups: str | None,
    modalities: list[str] | None,
    data_root: Path | None,
    encoding: str | None,
    strict: bool = False,
) -> Any:
    import modalfuse as mf

    try:
        if not Path(source).exists() and source in mf.list_datasets():
            table = mf.load_dataset(source, root=data_root)
            if groups is not None and groups != table.group_column:
                from modalfuse._api import with_groups

                table = with_groups(table, groups)
            return table
        if not Path(source).exists():
            _fail(f"{source}: no such file, and not a built-in dataset ({', '.join(mf.list_datasets())})")
        return mf.read_table(
            source,
            label=label,
            groups=groups,
            modalities=_pairs(modalities, "--modality"),
            encoding=encoding,
            strict=strict,
        )
    except mf.ModalfuseError as exc:
        _fail(str(exc))


def _load_labelled(
    source: str,
    label: str | None,
    groups: str | None,
    modalities: list[str] | None,
    data_root: Path | None,
    encoding: str | None,
) -> Any:
    """``_load`` for training: the table must have labels; its problem cells are reported."""
    t = _load(source, label, groups, modalities, data_root, encoding)
    if t.y is None:
        _fail("the table has no label: pass --label COLUMN")
    _report_problems(t)
    return t


def _report_problems(table: Any, limit: int = 10) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    for note in table.notes:
        console.print(f"[yellow]note:[/] {note}")
    if table.problems:
        console.print(f"[yellow]{len(table.problems)} missing or unusable cell(s)[/] (treated as missing):")
        for p in table.problems[:limit]:
            console.print(f"  {p}")
        if len(table.problems) > limit:
            console.print(
                f"  ... and {len(table.problems) - limit} more (modalfuse inspect --problems shows all)"
            )


class _Progress:
    """Shows progress events (``compare``'s steps, and each network and epoch of a fit; see
    ``modalfuse._progress``) as a live Rich bar when stderr is a terminal, or as plain lines on stderr
    otherwise (logs, CI): one per step and network, and with ``verbose >= 1`` one per epoch.

    Use it as a context manager (the bar runs inside the block) and as the listener and ``progress``
    callback of the work inside it.
    """

    def __init__(self, description: str, verbose: int = 0) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.interactive = sys.stderr.isatty()
        self.verbose = verbose
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"),
            disable=not self.interactive,
        )
        self.description = description
        self.task: Any = None  # the steps of a comparison
        self.network: Any = None  # the epochs of the network being trained
        self.done = 0
        self.total: int | None = None

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, event: str, **info: Any) -> None:
        handler = getattr(self, f"_on_{event}", None)
        if handler is not None:
            handler(info)
        elif event in ("fit_start", "networks_reused") and self.task is None:  # a plain fit
            self._line(info.get("message", event))

    def _line(self, text: str) -> None:
        if not self.interactive:
            print(text, file=sys.stderr, flush=True)

    def _on_start(self, info: dict[str, Any]) -> None:
        self.total = info.get("total")
        self.task = self.bar.add_task(self.description, total=self.total, last="")

    def _on_step(self, info: dict[str, Any]) -> None:
        self.done += 1
        last = f"fold {info.get('fold')} {info.get('strategy', '')} {info.get('seconds', 0):.0f}s"
        if self.task is not None:
            self.bar.update(self.task, advance=1, last=last)
        self._line(f"[{self.done}/{self.total}] {last}")

    def _on_network_start(self, info: dict[str, Any]) -> None:
        label = str(info.get("network", "network"))
        if self.network is None:
            self.network = self.bar.add_task(label, total=None, last="")
        else:
            self.bar.reset(self.network, description=label, total=None, last="")

    def _on_epoch(self, info: dict[str, Any]) -> None:
        if self.network is not None:
            self.bar.update(
                self.network, total=info["epochs"], completed=info["epoch"], last=f"loss {info['loss']:.3f}"
            )
        if self.verbose >= 1:
            self._line(info["message"])

    def _on_network_end(self, info: dict[str, Any]) -> None:
        self._line(info["message"])


@app.command()
def inspect(
    table: Annotated[str, typer.Argument(help="Table file (CSV, Parquet, JSONL) or built-in dataset name.")],
    label: LabelOpt = None,
    groups: GroupsOpt = None,
    modality: ModalitiesOpt = None,
    data_root: DataRootOpt = None,
    encoding: EncodingOpt = None,
    problems: Annotated[
        bool, typer.Option("--problems", help="List every missing or unusable cell.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the inferred schema, missing counts per modality and problem cells."""
    t = _load(table, label, groups, modality, data_root, encoding)
    summary = t.missing_summary()
    if as_json:
        doc = {
            "table": t.name,
            "rows": len(t),
            "label": t.label,
            "groups": t.group_column,
            "schema": t.schema.to_dict(),
            "inputs": summary,
            "notes": t.notes,
            "problems": [{"row": p.row, "column": p.column, "reason": p.reason} for p in t.problems],
        }
        if t.y is not None:
            import pandas as pd

            doc["classes"] = {str(k): int(v) for k, v in pd.Series(t.y).value_counts().sort_index().items()}
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{t.name}[/]: {len(t)} rows, label {t.label!r}, groups {t.group_column!r}")
    tab = Table("input", "modality", "columns", "present", "missing", "missing %")
    for name, s in summary.items():
        tab.add_row(
            name,
            s["modality"],
            ", ".join(s["columns"]),
            str(s["present"]),
            str(s["missing"]),
            f"{100 * s['missing_rate']:.1f}",
        )
    console.print(tab)
    if t.y is not None:
        import pandas as pd

        counts = pd.Series(t.y).value_counts().sort_index()
        console.print("classes: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    _report_problems(t, limit=len(t.problems) if problems else 10)


@app.command()
def evaluate(
    table: Annotated[str, typer.Argument(help="Table file or built-in dataset (av-digits, av-digits-hard).")],
    label: LabelOpt = None,
    groups: GroupsOpt = None,
    cv: Annotated[
        str, typer.Option(help="Folds: K (stratified, grouped with --groups), loso, or kfold:K.")
    ] = "5",
    fusion: Annotated[
        str, typer.Option(help="Comma list of unimodal, late, early, all, or exact names (late:stacking).")
    ] = "all",
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the results as JSON here, fold by fold (kept if interrupted)."),
    ] = None,
    modality: ModalitiesOpt = None,
    encoder: EncodersOpt = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of every network.")] = 20,
    min_steps: MinStepsOpt = 200,
    seed: Annotated[int, typer.Option(help="Seed for folds and training.")] = 0,
    data_root: DataRootOpt = None,
    encoding: EncodingOpt = None,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = 0,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the interrupted run whose --json file is given (same settings)."
        ),
    ] = False,
) -> None:
    """Cross-validate every strategy and the baselines (unimodal, tuned linear) on the same folds, and
    compare them."""
    import modalfuse as mf
    from modalfuse._progress import listening
    from modalfuse.evaluate import format_table

    t = _load_labelled(table, label, groups, modality, data_root, encoding)
    cv_arg: Any = int(cv) if cv.isdigit() else cv
    if cv_arg == "loso" and t.groups is None:
        _fail("--cv loso needs groups: pass --groups COLUMN")
    if resume and json_path is None:
        _fail("--resume needs --json FILE: the file an interrupted evaluate was writing")
    start = time.perf_counter()
    try:
        with _Progress(f"evaluating {t.name}", verbose) as progress, listening(progress):
            result = mf.compare(
                t,
                fusion=fusion,
                cv=cv_arg,
                seed=seed,
                epochs=epochs,
                min_steps=min_steps,
                encoders=_pairs(encoder, "--encoder") or None,
                n_threads=threads,
                progress=progress,
                checkpoint=json_path,
                resume=resume,
            )
    except mf.ModalfuseError as exc:
        _fail(str(exc))
    result["wall_seconds"] = time.perf_counter() - start
    typer.echo(format_table(result))
    if json_path is not None:
        _write_json(json_path, result)
        typer.echo(f"results written to {json_path}")


def _write_json(path: Path, doc: dict) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2, default=str)
    os.replace(tmp, path)


@app.command()
def fit(
    table: Annotated[str, typer.Argument(help="Table file or built-in dataset.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to save the model in.")],
    label: LabelOpt = None,
    groups: GroupsOpt = None,
    fusion: Annotated[str, typer.Option(help="Strategy (see `modalfuse fusions`).")] = "late",
    modality: ModalitiesOpt = None,
    encoder: EncodersOpt = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of every network.")] = 20,
    min_steps: MinStepsOpt = 200,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    data_root: DataRootOpt = None,
    encoding: EncodingOpt = None,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Fit one strategy on the whole table and save it (JSON + safetensors)."""
    import modalfuse as mf
    from modalfuse._progress import listening

    t = _load_labelled(table, label, groups, modality, data_root, encoding)
    start = time.perf_counter()
    try:
        clf = mf.MultimodalClassifier(
            fusion=fusion,
            epochs=epochs,
            min_steps=min_steps,
            seed=seed,
            encoders=_pairs(encoder, "--encoder") or None,
            n_threads=threads,
        )
        with _Progress(f"fitting {fusion}", verbose) as progress, listening(progress):
            clf.fit(t)
    except (mf.ModalfuseError, KeyError) as exc:
        _fail(str(exc))
    clf.save(out)
    typer.echo(f"fitted {fusion} on {len(t)} rows in {time.perf_counter() - start:.1f}s; saved to {out}")


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A folder written by `modalfuse fit`.")],
    table: Annotated[str, typer.Argument(help="Table file to predict.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write predictions and probabilities to.")],
    encoding: EncodingOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Predict a table with a saved model: writes row, prediction and one probability column per class."""
    import pandas as pd

    import modalfuse as mf

    try:
        clf = mf.MultimodalClassifier.load(model)
        if threads is not None:
            clf.set_params(n_threads=threads)
        t = _read_for_model(clf, table, encoding)
    except (mf.ModalfuseError, KeyError) as exc:
        _fail(str(exc))
    _report_problems(t)
    proba = clf.predict_proba(t)
    frame = pd.DataFrame({"row": t.row_ids, "prediction": clf.classes_[proba.argmax(1)]})
    for i, c in enumerate(clf.classes_):
        frame[f"p_{c}"] = proba[:, i]
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    typer.echo(f"{len(frame)} predictions written to {out}")


def _read_for_model(clf: Any, source: str, encoding: str | None) -> Any:
    """A table file (only the model's columns read, with the model's modalities) or a built-in dataset."""
    import modalfuse as mf

    if not Path(source).exists():
        if source in mf.list_datasets():
            return mf.load_dataset(source)
        _fail(f"{source}: no such file, and not a built-in dataset ({', '.join(mf.list_datasets())})")
    from modalfuse.data import read_frame

    frame = read_frame(source, encoding=encoding)
    known = {c: m for c, m in clf.schema_.columns.items() if c in frame.columns}
    if not known:
        _fail(f"{source} has none of the model's columns ({', '.join(clf.schema_.columns)})")
    return mf.read_table(
        frame,
        root=Path(source).resolve().parent,
        name=Path(source).name,
        modalities={**{c: "ignore" for c in frame.columns}, **known},
    )


@app.command()
def retrieve(
    model: Annotated[
        Path, typer.Argument(help="A folder written by `modalfuse fit --fusion shared` (or cca).")
    ],
    table: Annotated[str, typer.Argument(help="Table file whose rows are the queries (and the gallery).")],
    from_input: Annotated[str, typer.Option("--from", help="Input embedded for the queries, e.g. audio.")],
    to_input: Annotated[str, typer.Option("--to", help="Input searched in the gallery, e.g. image.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="CSV to write query_row, rank, match_row, score to.")
    ],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Matches per query.")] = 5,
    gallery: Annotated[
        str | None, typer.Option("--gallery", help="Table to search (default: TABLE itself).")
    ] = None,
    encoding: EncodingOpt = None,
) -> None:
    """Cross-modal retrieval in a model's shared space: for each row's --from input, the k nearest --to inputs.

    Writes one CSV line per match (query_row, rank from 1, match_row, cosine score). Query rows missing the
    --from input get no line; gallery rows missing the --to input are never matched.
    """
    import numpy as np
    import pandas as pd

    import modalfuse as mf

    try:
        clf = mf.MultimodalClassifier.load(model)
        if getattr(clf.fusion_, "retrieve", None) is None:
            _fail(
                f"{model}: fusion {clf.fusion!r} has no shared space to retrieve from; "
                "fit a model with --fusion shared (or cca)"
            )
        queries = _read_for_model(clf, table, encoding)
        pool = queries if gallery is None else _read_for_model(clf, gallery, encoding)
        idx, scores = clf.retrieve(
            queries,
            from_modality=from_input,
            to_modality=to_input,
            k=k,
            gallery=None if gallery is None else pool,
        )
    except (mf.ModalfuseError, KeyError) as exc:
        _fail(str(exc))
    q, r = np.nonzero(idx >= 0)
    frame = pd.DataFrame(
        {
            "query_row": queries.row_ids[q],
            "rank": r + 1,
            "match_row": pool.row_ids[idx[q, r]],
            "score": scores[q, r],
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    no_query = int((idx < 0).all(axis=1).sum())
    note = f"; {no_query} query row(s) without {from_input!r} skipped" if no_query else ""
    typer.echo(f"{len(frame)} matches for {len(idx) - no_query} queries written to {out}{note}")


@app.command()
def demo(
    data_root: DataRootOpt = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of every network.")] = 20,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """The whole journey on AV-Digits (hard): leave-one-speaker-out, every fusion strategy against the
    unimodal baselines, and a recommendation."""
    typer.echo(
        "AV-Digits (hard): 3,000 spoken digits (FSDD) paired with degraded MNIST digits; "
        "6 folds, each holding out one speaker; every strategy on the same folds."
    )
    evaluate(
        "av-digits-hard",
        label=None,
        groups=None,
        cv="loso",
        fusion="all",
        json_path=json_path,
        modality=None,
        encoder=None,
        epochs=epochs,
        min_steps=200,
        seed=0,
        data_root=data_root,
        encoding=None,
        threads=threads,
        verbose=verbose,
    )


@app.command("datasets")
def datasets_cmd() -> None:
    """List built-in datasets."""
    import modalfuse as mf

    for name, desc in mf.list_datasets().items():
        typer.echo(f"{name:16s} {desc}")


@app.command("encoders")
def encoders_cmd() -> None:
    """List registered encoders."""
    from modalfuse.encoders import get_encoder, list_encoders

    for name in list_encoders():
        spec = get_encoder(name)
        typer.echo(f"{name:16s} {spec.modality:8s} {spec.description}")


@app.command("fusions")
def fusions_cmd() -> None:
    """List registered fusion strategies."""
    import modalfuse as mf

    for name in mf.list_fusions():
        doc = (mf.get_fusion(name).__doc__ or "").strip().splitlines()[0]
        typer.echo(f"{name:10s} {doc}")


def main() -> None:
    """Entry point of the ``modalfuse`` console script."""
    app()


if __name__ == "__main__":
    main()
