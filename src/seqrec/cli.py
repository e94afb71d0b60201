"""The ``seqrec`` command line: a thin caller of the Python API (:mod:`seqrec.api`) and ``seqrec.bench``.

User errors (bad config, malformed data, missing checkpoint, busy or finished run directory) print one line,
``error: <what>``, and exit 2, before anything is written; a diverged training run exits 3.
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
    import polars as pl

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
# the run-directory options that `train` and `pretrain` share
OutputOpt = Annotated[Path, typer.Option("--output", help="Run directory to write")]
ResumeOpt = Annotated[Path | None, typer.Option("--resume", help="Continue the run in DIR from its last checkpoint")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace a finished or unfinished run in --output")]


def _fail(err: SeqrecError) -> None:
    """One line ``error: <what>`` on stderr; exit 2 for bad input (3 when training diverged), never a traceback."""
    from rich.markup import escape

    msg = escape(" ".join(str(err).split()))  # one line; brackets in the message are text, not markup
    console.print(f"[red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(err, "exit_code", 2))


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


def baselines_table(metrics: dict) -> Table:
    """Each evaluated baseline's test NDCG@10 [95% CI], HR@10, fit time and chosen parameters."""
    table = Table(title="baselines (same split and protocol, test)")
    for col in ("baseline", "NDCG@10", "95% CI", "HR@10", "fit s", "params"):
        table.add_column(col, justify="left" if col in ("baseline", "params") else "right")
    for name, b in (metrics.get("baselines") or {}).items():
        if "skipped" in b:
            table.add_row(name, "", "", "", "", f"skipped: {b['skipped']}")
            continue
        ci = (b.get("test_ci95") or {}).get("NDCG@10")
        table.add_row(name, f"{b['test']['NDCG@10']:.4f}", f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "",
                      f"{b['test']['HR@10']:.4f}", f"{b.get('fit_seconds', 0.0):.2f}",
                      ", ".join(f"{k}={v}" for k, v in (b.get("params") or {}).items()))
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
        from seqrec.eval.diagnostics import repeat_diagnostics

        cfg = load_config(config, set_)
        prepared = prepare_data(cfg.data, data_dir, progress=True)
        stats = describe(prepared)
        for split, eval_set in (("valid", prepared.valid), ("test", prepared.test)):
            repeats = repeat_diagnostics(eval_set, cfg.eval.filter_seen)
            stats[f"{split}_target_in_input"] = round(repeats.target_in_input, 4)
            stats[f"{split}_target_is_last_input"] = round(repeats.target_is_last, 4)
            stats[f"{split}_reachable_with_filter_seen"] = round(repeats.reachable, 4)
        warning = repeats.warning()  # the test split's
    except SeqrecError as err:
        _fail(err)
    table = Table(title=f"dataset {prepared.name} ({cfg.data.split})")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for k, v in stats.items():
        table.add_row(k, f"{v:,.4f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    out.print(table)
    if warning is not None:
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True)


@app.command()
def train(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    output: OutputOpt = Path("out/run"),
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
    resume: ResumeOpt = None,
    overwrite: OverwriteOpt = False,
    profile: Annotated[
        bool, typer.Option("--profile", help="Profile a few steps (trace + top ops), then stop")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build, print params and memory estimate, run one step, stop")
    ] = False,
    devices: Annotated[
        int, typer.Option("--devices", min=1, help="Data-parallel worker processes on this machine (via torchrun)")
    ] = 1,
    init_from: Annotated[
        Path | None, typer.Option("--init-from", help="Start from the weights of the run in DIR (same model family)")
    ] = None,
) -> None:
    """Train with early stopping on validation, evaluate the best checkpoint on test, write the run directory.

    ``--devices N`` (N > 1) re-runs this command in N processes under torch's elastic launcher (one per GPU, or
    CPU processes with gloo); inside torchrun/srun the command trains its shard instead (see
    ``seqrec.distributed``).
    """
    try:
        from seqrec import distributed
        from seqrec.api import Recommender
        from seqrec.config import load_config

        extra = [*(set_ or []), *(["train.profile=true"] if profile else []),
                 *(["train.dry_run=true"] if dry_run else [])]
        if resume is not None and init_from is not None:
            from seqrec.errors import ConfigError

            raise ConfigError("--init-from: not with --resume (the checkpoint holds the weights)")
        if resume is not None:
            from seqrec.train.resume import resume_config

            if config is not None:
                console.print("note: --resume uses the run's saved config; --config is ignored", highlight=False)
            cfg = resume_config(resume, extra)
            output = resume
        else:
            cfg = load_config(config, extra)
        if devices > 1 and not distributed.in_launch():
            _launch_workers(cfg, devices, config, output, set_, data_dir, resume, overwrite, init_from)
        main = distributed.is_main()
        rec = Recommender(cfg).fit(output_dir=output, data_dir=data_dir, resume=resume is not None,
                                   overwrite=overwrite, console=console if main else None, init_from=init_from)
    except SeqrecError as err:
        _fail(err)
    if cfg.train.profile or cfg.train.dry_run or not main:
        return
    metrics = rec.metrics
    assert metrics is not None
    out.print(metrics_table(f"{cfg.model.name} — {metrics['protocol']['ranking']} ranking", metrics))
    out.print(baselines_table(metrics))
    if "cold" in metrics:  # data.cold_item_fraction: test users whose target never appeared in training
        c = metrics["cold"]
        out.print(f"cold-start test ({c['num_users']} users, {c['cold_items']} items held out of training): "
                  f"HR@10 {c['test']['HR@10']:.4f}, NDCG@10 {c['test']['NDCG@10']:.4f}", highlight=False)
    reachable = metrics.get("repeats", {}).get("test", {}).get("reachable", 1.0)
    if reachable < 1.0:
        from seqrec.eval.diagnostics import capped

        out.print(f"test {capped('HR@10', metrics['test']['HR@10'], reachable)} (seen items filtered)",
                  highlight=False)
    out.print(
        f"{metrics['epochs_trained']} epochs (best {metrics['best_epoch']}), "
        f"{metrics['total_time_s']:.1f} s total; wrote {output}/"
    )


def _launch_workers(
    cfg: Config, devices: int, config: Path | None, output: Path, set_: list[str] | None, data_dir: Path | None,
    resume: Path | None, overwrite: bool, init_from: Path | None = None,
) -> None:
    """Validate the run directory and cache the data once here (bad input: one line, exit 2), then run
    ``devices`` workers; exits with their status."""
    import torch

    from seqrec import distributed
    from seqrec.data import prepare_data
    from seqrec.errors import ConfigError
    from seqrec.train.rundir import RunLock
    from seqrec.train.runtime import resolve_device

    if cfg.train.profile or cfg.train.dry_run:
        raise ConfigError("--devices: --profile and --dry-run run in one process (use --devices 1)")
    gpus = torch.cuda.device_count()
    if resolve_device(cfg.train.device).type == "cuda" and devices > gpus:
        raise ConfigError(f"--devices {devices}: only {gpus} CUDA device(s) visible (one process per GPU)")
    with RunLock(output, resume=resume is not None, overwrite=overwrite):  # checked here, held by the workers
        prepare_data(cfg.data, data_dir)
    args = ["train", "--resume", str(resume)] if resume is not None else ["train", "--output", str(output)]
    if config is not None and resume is None:
        args += ["--config", str(config)]
    if overwrite:
        args += ["--overwrite"]
    for item in set_ or []:
        args += ["--set", item]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    if init_from is not None:
        args += ["--init-from", str(init_from)]
    raise typer.Exit(distributed.launch(devices, args))


@app.command()
def pretrain(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config with a pretrain section")] = None,
    output: OutputOpt = Path("out/pretrain"),
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
    resume: ResumeOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Pre-train a text model (Recformer) on pretrain.datasets: item-item contrastive + 0.1 x MLM.

    The run directory evaluates zero-shot (``seqrec evaluate --checkpoint DIR --set data.name=...``) and starts
    fine-tuning (``seqrec train --set model.init_from=DIR``); see ``seqrec.train.pretrain``.
    """
    try:
        from seqrec.train.pretrain import pretrain_run

        metrics = pretrain_run(config, resume or output, overrides=set_, data_dir=data_dir, resume=resume is not None,
                               overwrite=overwrite, console=console)
    except SeqrecError as err:
        _fail(err)
    out.print(metrics_table(f"{metrics['model']} pre-training — corpus {metrics['protocol']['ranking']} ranking",
                            metrics))
    out.print(f"{metrics['epochs_trained']} epochs (best {metrics['best_epoch']}), {metrics['total_time_s']:.1f} s "
              f"total; wrote {resume or output}/")


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Run directory written by `seqrec train`")],
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON (metrics, CIs, protocol) to stdout")] = False,
) -> None:
    """Re-evaluate a saved model on validation and test."""
    try:
        from seqrec.api import Recommender
        from seqrec.train.run import metrics_block

        rec = Recommender.load(checkpoint, set_)
        block = metrics_block(rec.evaluate("valid", data_dir=data_dir), rec.evaluate("test", data_dir=data_dir))
        if rec.config.data.cold_item_fraction:  # users whose test target was held out of training
            block["cold"] = rec.evaluate("cold", data_dir=data_dir).metrics
    except SeqrecError as err:
        _fail(err)
    if as_json:
        typer.echo(json.dumps(block, indent=2))
        return
    out.print(metrics_table(f"{checkpoint} — {block['protocol']['ranking']} ranking", block))


@app.command()
def recommend(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Run directory written by `seqrec train`")],
    history: Annotated[str | None, typer.Option("--history", help="Comma-separated original item ids")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="File with one original user id per line")] = None,
    k: Annotated[int, typer.Option("--k", min=1)] = 10,
    keep_seen: Annotated[bool, typer.Option("--keep-seen", help="Do not filter the history's items")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table (people), csv or json (machines)")] = "table",
    data_dir: DataDirOpt = None,
) -> None:
    """Top-K recommendations (original item ids, scores, titles) for a history or for users of the dataset."""
    try:
        import polars as pl

        from seqrec.api import Recommender
        from seqrec.errors import DataError

        if fmt not in ("table", "csv", "json"):
            raise DataError(f"--format: expected table, csv or json, got {fmt!r}")
        if (history is None) == (users is None):
            raise DataError("give exactly one of --history or --users")
        names: list[str] = []
        if users is not None:
            if not users.is_file():
                raise DataError(f"{users}: file not found")
            try:
                names = [line.strip() for line in users.read_text(encoding="utf-8").splitlines() if line.strip()]
            except UnicodeDecodeError:
                raise DataError(f"{users}: not UTF-8 text (expected one user id per line)") from None
            if not names:
                raise DataError(f"{users}: empty file (expected one user id per line)")
        rec = Recommender.load(checkpoint)
        if history is not None:
            items = [h.strip() for h in history.split(",") if h.strip()]
            if not items:
                raise DataError("--history: expected comma-separated item ids")
            recs = rec.recommend(histories=[items], k=k, filter_seen=not keep_seen, data_dir=data_dir)
            recs = recs.with_columns(user=pl.lit("<history>"))
        else:
            recs = rec.recommend(users=names, k=k, filter_seen=not keep_seen, data_dir=data_dir)
    except SeqrecError as err:
        _fail(err)
    _print_recommendations(recs, fmt)


def _print_recommendations(recs: pl.DataFrame, fmt: str) -> None:
    if fmt == "json":
        typer.echo(json.dumps(recs.to_dicts(), ensure_ascii=False))
    elif fmt == "csv":
        typer.echo(recs.write_csv(), nl=False)
    else:
        table = Table(show_edge=False)
        for col in recs.columns:
            table.add_column(col, justify="right" if col in ("rank", "score") else "left", overflow="fold")
        for row in recs.iter_rows():
            table.add_row(*(f"{v:.4f}" if isinstance(v, float) else "" if v is None else str(v) for v in row))
        out.print(table)


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
    sample: Annotated[
        int | None, typer.Option("--sample", help="Train only a seeded random subset of N cells", min=1)
    ] = None,
    sample_seed: Annotated[int, typer.Option("--sample-seed", help="Seed of the --sample draw")] = 0,
    study: Annotated[bool, typer.Option("--study", help="Add the loss-study section to the report")] = False,
) -> None:
    """Run a benchmark grid (each cell in its own process), resumable; print the pivot and the report path."""
    try:
        from seqrec.bench.report import write_report
        from seqrec.bench.runner import run_bench

        summary = run_bench(config, output, data_dir=data_dir, overrides=set_, retry_failed=retry_failed,
                            download=download, jobs=jobs, sample=sample, sample_seed=sample_seed, console=console)
        paths = write_report(output, study=study)
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
    study: Annotated[
        bool, typer.Option("--study", help="Add the loss study: memory/time vs NDCG@10 frontier, Spearman, importance")
    ] = False,
) -> None:
    """Pivot table (Markdown, CSV) and a self-contained HTML page with plots from a results store."""
    try:
        from seqrec.bench.report import write_report

        cols = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        paths = write_report(results, metrics=cols, compare=compare, output=output, study=study)
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
