"""The ``seqrec`` command line: thin layers over ``seqrec.train.run`` and ``seqrec.data``.

User errors (bad config, malformed data, missing checkpoint) print one line, ``error: <what>``, and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from seqrec.errors import SeqrecError

if TYPE_CHECKING:
    from seqrec.config import Config

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and benchmark sequential recommenders.")
data_app = typer.Typer(no_args_is_help=True, help="Dataset commands.")
app.add_typer(data_app, name="data")

console = Console(stderr=True)
out = Console()

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key: section.key=value")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Dataset directory (default: $SEQREC_DATA_DIR or ~/.cache/seqrec)")
]


def _fail(err: Exception) -> None:
    msg = str(err).replace("\n", " ")
    console.print(f"[red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def metrics_table(title: str, block: dict, splits: tuple[str, ...] = ("valid", "test")) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for s in splits:
        table.add_column(s, justify="right")
    if "test_ci95" in block and "test" in splits:
        table.add_column("test 95% CI", justify="right")
    for name in block[splits[-1]]:
        row = [name, *(f"{block[s].get(name, float('nan')):.4f}" for s in splits)]
        if "test_ci95" in block and "test" in splits:
            ci = block["test_ci95"].get(name)
            row.append(f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
        table.add_row(*row)
    return table


@data_app.command("prepare")
def data_prepare(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Load, preprocess, split and cache a dataset; print its statistics."""
    try:
        from seqrec.config import load_config
        from seqrec.data import describe, prepare_data

        cfg = load_config(config, set_)
        prepared = prepare_data(cfg.data, data_dir, progress=True)
        stats = describe(prepared)
    except SeqrecError as err:
        _fail(err)
    table = Table(title=f"dataset {prepared.name} ({cfg.data.split})")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for k, v in stats.items():
        table.add_row(k, f"{v:,.4f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    out.print(table)


@app.command()
def train(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    output: Annotated[Path, typer.Option("--output", help="Run directory to write")] = Path("out/run"),
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in DIR from its last epoch checkpoint")
    ] = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="Profile a few steps (trace + top ops), then stop")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build, print params and memory estimate, run one step, stop")
    ] = False,
    devices: Annotated[
        int, typer.Option("--devices", min=1, help="Data-parallel worker processes on this machine (via torchrun)")
    ] = 1,
) -> None:
    """Train with early stopping on validation, evaluate the best checkpoint on test, write the run directory.

    ``--devices N`` (N > 1) re-runs this command in N processes under torch's elastic launcher (one per GPU, or
    CPU processes with gloo); inside torchrun/srun the command trains its shard instead (see
    ``seqrec.distributed``).
    """
    try:
        from seqrec import distributed
        from seqrec.config import load_config
        from seqrec.train.run import train_run

        extra = [*(set_ or []), *(["train.profile=true"] if profile else []),
                 *(["train.dry_run=true"] if dry_run else [])]
        if resume is not None:
            from seqrec.train.resume import resume_config

            if config is not None:
                console.print("note: --resume uses the run's saved config; --config is ignored", highlight=False)
            cfg = resume_config(resume, extra)
            output = resume
        else:
            cfg = load_config(config, extra)
        if devices > 1 and not distributed.in_launch():
            _launch_workers(cfg, devices, config, output, set_, data_dir, resume)
        main = distributed.is_main()
        metrics = train_run(cfg, output, data_dir=data_dir, console=console if main else None,
                            resume=resume is not None)
    except SeqrecError as err:
        _fail(err)
    if cfg.train.profile or cfg.train.dry_run or not main:
        return
    out.print(metrics_table(f"{cfg.model.name} — {metrics['protocol']['ranking']} ranking", metrics))
    pop = metrics["baselines"]["popularity"]["test"]
    out.print(
        f"popularity baseline test NDCG@10 {pop['NDCG@10']:.4f} HR@10 {pop['HR@10']:.4f}; "
        f"{metrics['epochs_trained']} epochs (best {metrics['best_epoch']}), "
        f"{metrics['total_time_s']:.1f} s total; wrote {output}/"
    )


def _launch_workers(
    cfg: Config, devices: int, config: Path | None, output: Path, set_: list[str] | None, data_dir: Path | None,
    resume: Path | None,
) -> None:
    """Validate and cache the data once here (bad input: one line, exit 2), then run ``devices`` workers; exits."""
    from seqrec import distributed
    from seqrec.data import prepare_data
    from seqrec.errors import ConfigError, DataError

    if cfg.train.profile or cfg.train.dry_run:
        raise ConfigError("--devices: --profile and --dry-run run in one process (use --devices 1)")
    import torch

    from seqrec.train.loop import resolve_device

    gpus = torch.cuda.device_count()
    if resolve_device(cfg.train.device).type == "cuda" and devices > gpus:
        raise ConfigError(f"--devices {devices}: only {gpus} CUDA device(s) visible (one process per GPU)")
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: output path exists and is not a directory")
    prepare_data(cfg.data, data_dir)
    args = ["train", "--resume", str(resume)] if resume is not None else ["train", "--output", str(output)]
    if config is not None and resume is None:
        args += ["--config", str(config)]
    for item in set_ or []:
        args += ["--set", item]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    raise typer.Exit(distributed.launch(devices, args))


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Run directory written by `seqrec train`")],
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Re-evaluate a saved model on validation and test."""
    try:
        from seqrec.train.run import evaluate_run

        block = evaluate_run(checkpoint, data_dir=data_dir, overrides=set_)
    except SeqrecError as err:
        _fail(err)
    out.print(metrics_table(f"{checkpoint} — {block['protocol']['ranking']} ranking", block))
    out.print_json(json.dumps({"valid": block["valid"], "test": block["test"]}))


@app.command()
def recommend(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Run directory written by `seqrec train`")],
    history: Annotated[str | None, typer.Option("--history", help="Comma-separated original item ids")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="File with one original user id per line")] = None,
    k: Annotated[int, typer.Option("--k", min=1)] = 10,
    keep_seen: Annotated[bool, typer.Option("--keep-seen", help="Do not filter the history's items")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Top-K recommendations (original item ids) for a history or for users of the training dataset."""
    try:
        from seqrec.errors import DataError
        from seqrec.train.run import full_histories, load_run, recommend_histories

        if (history is None) == (users is None):
            raise DataError("give exactly one of --history or --users")
        cfg, model, item_ids = load_run(checkpoint)
        index = {v: i for i, v in enumerate(item_ids) if i > 0}
        if history is not None:
            names = ["<history>"]
            raw = [h.strip() for h in history.split(",") if h.strip()]
            unknown = [h for h in raw if h not in index]
            if unknown:
                listed = ", ".join(unknown[:5])
                raise DataError(f"--history: unknown item id(s) {listed} (not in the model's catalogue)")
            histories = [[index[h] for h in raw]]
        else:
            from seqrec.data import prepare_data

            assert users is not None
            if not users.is_file():
                raise DataError(f"{users}: file not found")
            names = [line.strip() for line in users.read_text().splitlines() if line.strip()]
            if not names:
                raise DataError(f"{users}: empty file (expected one user id per line)")
            known = full_histories(prepare_data(cfg.data, data_dir))
            missing = [u for u in names if u not in known]
            if missing:
                raise DataError(f"{users}: unknown user id(s) {', '.join(missing[:5])}")
            histories = [known[u] for u in names]
        if k > len(item_ids) - 1:
            raise DataError(f"--k: {k} exceeds the catalogue size {len(item_ids) - 1}")
        recs = recommend_histories(model, histories, k, cfg.data.max_len, filter_seen=not keep_seen)
    except SeqrecError as err:
        _fail(err)
    for name, rec in zip(names, recs, strict=True):
        ids = [item_ids[i] for i in rec]
        typer.echo(",".join(ids) if history is not None else f"{name}\t{','.join(ids)}")


@app.command()
def bench(
    config: Annotated[Path, typer.Argument(help="Grid YAML (fixed settings and swept keys)")],
    output: Annotated[
        Path, typer.Option("--output", help="Results directory (results.sqlite, cells/, report.*)")
    ] = Path("out/bench"),
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed cells again")] = False,
    download: Annotated[bool, typer.Option("--download", help="Fetch named datasets that are not on disk")] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", help="Cells trained at once, cores/jobs threads each (default: the grid's jobs or 1)"),
    ] = None,
) -> None:
    """Run a benchmark grid (each cell in its own process), resumable; print the pivot and the report path."""
    try:
        from seqrec.bench.report import write_report
        from seqrec.bench.runner import run_bench

        summary = run_bench(config, output, data_dir=data_dir, overrides=set_, retry_failed=retry_failed,
                            download=download, jobs=jobs, console=console)
        paths = write_report(output)
    except SeqrecError as err:
        _fail(err)
    out.print(paths.markdown_text, highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"{summary.total} cells: {len(summary.ran)} run now, {len(summary.cached)} from earlier, "
        f"{len(summary.skipped)} skipped, {len(summary.failed)} failed"
    )
    out.print(f"HTML report: {paths.html}", highlight=False, soft_wrap=True)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="Results directory written by `seqrec bench`")],
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Comma-separated columns, e.g. NDCG@10,HR@10,epoch_time_avg")
    ] = None,
    compare: Annotated[Path | None, typer.Option("--compare", help="Second results directory to compare")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where to write report.* (default: RESULTS)")] = None,
) -> None:
    """Pivot table (Markdown, CSV) and a self-contained HTML page with plots from a results store."""
    try:
        from seqrec.bench.report import write_report

        cols = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        paths = write_report(results, metrics=cols, compare=compare, output=output)
    except SeqrecError as err:
        _fail(err)
    out.print(paths.markdown_text, highlight=False, markup=False, soft_wrap=True)
    out.print(f"wrote {paths.markdown}, {paths.csv}; HTML report: {paths.html}", highlight=False, soft_wrap=True)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
