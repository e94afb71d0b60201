"""The benchmark pivot: columns, per-row statistics over seeds, the popularity baseline and learning curves.

Rows are model -> dataset -> max_len (plus any other swept key except the seed). When seeds are swept a row
aggregates its seeds as mean ± the 95% Student-t half-width over seeds; with one seed a test metric keeps its
bootstrap interval. Rendering lives in :mod:`seqrec.bench.render`, plots in :mod:`seqrec.bench.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.bench.store import CellRow, ResultStore
from seqrec.config import BASELINE_NAMES
from seqrec.errors import ConfigError, DataError


@dataclass(frozen=True)
class Column:
    key: str  # name for --metrics and in the CSV (stable: old CSVs keep parsing)
    header: str  # table header: one naming scheme, "Name (qualifier, unit)"
    metric: str  # stored metric name
    fmt: str  # format of one value
    cost: bool = False  # machine-dependent (time, memory, utilisation): excluded when comparing reruns
    best: bool = False  # higher is better and worth marking: the best model per dataset is highlighted


# All columns, grouped: test quality, training, cost. The test metrics carry no "/test" suffix; the tables say
# once that they are test-split values.
COLUMNS: tuple[Column, ...] = (
    Column("NDCG@10", "NDCG@10", "NDCG@10", ".4f", best=True),
    Column("HR@10", "HR@10", "HR@10", ".4f", best=True),
    Column("MRR@10", "MRR@10", "MRR@10", ".4f", best=True),
    Column("Recall@10", "Recall@10", "Recall@10", ".4f", best=True),
    Column("Coverage@10", "Coverage@10", "Coverage@10", ".4f"),
    Column("Surprisal@10", "Surprisal@10", "Surprisal@10", ".4f"),
    Column("epochs", "Epochs trained", "epochs_trained", ".0f"),
    Column("train_loss", "Train loss (best epoch)", "train_loss", ".4f"),
    Column("grad_norm", "Grad norm (max)", "grad_norm_max", ".2f"),
    Column("lr", "LR (final)", "lr", ".3g"),
    Column("params", "Params", "params", ".0f"),
    Column("epoch_time_avg", "Epoch time (avg, s)", "epoch_time_avg_s", ".2f", cost=True),
    Column("epoch_time_max", "Epoch time (max, s)", "epoch_time_max_s", ".2f", cost=True),
    Column("epoch_time_sum", "Epoch time (sum, s)", "epoch_time_sum_s", ".1f", cost=True),
    Column("throughput", "Throughput (seq/s)", "throughput_seq_s", ".0f", cost=True),
    Column("memory", "Peak memory (MiB)", "peak_memory_mb", ".0f", cost=True),
    Column("loss_memory", "Loss memory (est., MiB)", "loss_memory_mb", ".1f", cost=True),  # seqrec.losses.memory
    Column("utilisation", "Utilisation (%)", "utilisation_pct", ".0f", cost=True),
)
KEY_COLUMNS = ("NDCG@10", "HR@10", "MRR@10", "Recall@10", "epoch_time_avg", "memory", "params")  # the first view
CI_METRIC = "NDCG@10"  # the metric shown with its 95% interval
COMPARE_DEFAULT = ("NDCG@10", "HR@10", "MRR@10", "epochs", "epoch_time_avg", "epoch_time_sum", "memory")
KEY_AXES = ("model.name", "data.name", "data.max_len")
SEED_AXES = ("train.seed",)
BASELINE = "popularity"  # the baseline every run evaluates (eval.baselines default)
# metrics stored as "<baseline>/<metric>" (runner.cell_metrics), one row per baseline and dataset

# two-sided 95% Student-t critical values by degrees of freedom (1..30); 1.96 beyond
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.96


@dataclass
class Stat:
    """A column's value in one pivot row: mean over seeds and the 95% interval (None when unknown)."""

    mean: float | None
    low: float | None = None
    high: float | None = None
    n: int = 1

    @property
    def known(self) -> bool:
        return self.mean is not None and not (isinstance(self.mean, float) and math.isnan(self.mean))

    def text(self, fmt: str) -> str:
        if not self.known:
            return "–"
        body = format(self.mean, fmt)
        if self.n > 1 and self.low is not None and self.high is not None:
            body += f" ± {format((self.high - self.low) / 2, fmt)}"
        return body

    def interval(self, fmt: str = ".4f") -> str:
        """``[low, high]``, or "" when there is no interval."""
        if self.low is None or self.high is None:
            return ""
        return f"[{format(self.low, fmt)}, {format(self.high, fmt)}]"


def aggregate(values: Sequence[tuple[float | None, float | None, float | None]]) -> Stat:
    """Mean ± t-interval over seeds; one value keeps its own (bootstrap) interval."""
    vals = [v for v in values if v[0] is not None]
    if not vals:
        return Stat(None, n=0)
    if len(vals) == 1:
        return Stat(vals[0][0], vals[0][1], vals[0][2], 1)
    xs = [float(v[0]) for v in vals]  # type: ignore[arg-type]
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    h = t95(n - 1) * sd / math.sqrt(n)
    return Stat(mean, mean - h, mean + h, n)


@dataclass
class PivotRow:
    key: dict[str, Any]  # axis -> value (model.name, data.name, data.max_len, other swept keys)
    cells: list[str]  # cell ids (one per seed)
    stats: dict[str, Stat]  # column key -> Stat
    ci: Stat  # CI_METRIC with its interval
    histories: list[list[dict]] = field(default_factory=list)  # per cell: its epoch records (store.epochs)
    best_epochs: list[int | None] = field(default_factory=list)  # per cell: the early-stopping epoch


@dataclass
class BaselineRow:
    """One baseline on one dataset: one row per distinct result among the dataset's cells."""

    name: str  # popularity, markov, sknn, ... (seqrec.config.BASELINE_NAMES)
    dataset: str
    max_lens: list[Any]  # max_len of the cells that produced this result (it does not depend on max_len)
    models: list[str]
    stats: dict[str, Stat]  # column key -> Stat (test quality columns only)
    distinct: int = 1  # how many distinct results of this baseline the dataset's cells have


@dataclass
class Pivot:
    title: str
    axes: list[str]  # row key axes, in order
    rows: list[PivotRow]
    columns: list[Column]
    protocol: list[str]  # one line per distinct protocol
    environment: list[str]
    not_done: list[tuple[CellRow, str]] = field(default_factory=list)  # (cell, status/reason)
    seeds: bool = False  # seeds swept (rows aggregate several cells)
    baselines: list[BaselineRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # status -> cells


def column(key: str) -> Column:
    return next(c for c in COLUMNS if c.key == key)


def select_columns(names: Sequence[str] | None, default: Sequence[str] | None = None) -> list[Column]:
    """Columns named by key, header or metric (case-insensitive); all columns (or ``default``) when none."""
    if not names:
        return [column(k) for k in default] if default else list(COLUMNS)
    out = []
    for name in names:
        match = [c for c in COLUMNS if name.lower() in (c.key.lower(), c.header.lower(), c.metric.lower())]
        if not match:
            known = ", ".join(c.key for c in COLUMNS)
            raise ConfigError(f"--metrics: unknown column {name!r} (known: {known})")
        out.append(match[0])
    return out


def get_dotted(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _budget(config: dict) -> tuple[str, str]:
    """(epochs, "early stopping on valid X (patience P)") of a cell: the training budget of its recipe."""
    t = config.get("train", {})
    return (str(t.get("epochs", "?")),
            f"early stopping on valid {t.get('monitor', '?')} (patience {t.get('patience', '?')})")


def _protocol_parts(config: dict) -> tuple[str, str]:
    """The evaluation protocol of a cell, before and after its training budget."""
    d, e = config.get("data", {}), config.get("eval", {})
    ranking = "full catalogue" if e.get("protocol", "full") == "full" else (
        f"sampled ({e.get('num_negatives', '?')} {e.get('negative_sampler', '?')} negatives)")
    def core(key: str) -> object:  # None: the dataset's default k-core (seqrec.data.datasets)
        value = d.get(key, "?")
        return "dataset default" if value is None else value

    kcore = f"k-core users ≥ {core('min_user_interactions')}, items ≥ {core('min_item_interactions')}"
    seen = {True: "filtered", False: "kept"}.get(e.get("filter_seen"), "?")
    return (f"split {d.get('split', '?')}; ranking {ranking}; seen items {seen}; {kcore}; "
            f"duplicates {d.get('duplicates', '?')}",
            f"test metrics with 95% bootstrap CI ({e.get('bootstrap', '?')} resamples)")


def resolved_config(config: dict, metrics: dict[str, tuple]) -> dict:
    """``config`` with the k-core the run resolved (stored metrics ``kcore_min_user`` / ``kcore_min_item``) in place
    of None (the dataset's default), so the protocol line gives the numbers; cells stored before the run recorded
    them keep None ("dataset default")."""
    data = dict(config.get("data", {}))
    for key, metric in (("min_user_interactions", "kcore_min_user"), ("min_item_interactions", "kcore_min_item")):
        if data.get(key, "?") is None and metrics.get(metric, (None,))[0] is not None:
            data[key] = int(metrics[metric][0])
    return {**config, "data": data}


def protocol_line(config: dict) -> str:
    """The evaluation protocol of a cell, in one line (``?`` for settings an older config did not record)."""
    head, tail = _protocol_parts(config)
    epochs, stopping = _budget(config)
    return f"{head}; at most {epochs} epochs, {stopping}; {tail}"


def protocol_lines(configs: Sequence[dict]) -> list[str]:
    """One line per distinct evaluation protocol of ``configs``; cells that share it but not their training budget
    (each model keeps its recipe's epochs) get one line that lists the budget per model, instead of a near-copy
    of the line per recipe. A model whose budget differs between datasets is named with the dataset."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for c in configs:
        groups.setdefault(_protocol_parts(c), []).append(c)
    lines = []
    for (head, tail), group in groups.items():
        budgets = list(dict.fromkeys(_budget(c) for c in group))
        if len(budgets) == 1:
            lines.append(f"{head}; at most {budgets[0][0]} epochs, {budgets[0][1]}; {tail}")
            continue
        by_model: dict[str, set[tuple[str, str]]] = {}
        for c in group:
            by_model.setdefault(str(get_dotted(c, "model.name")), set()).add(_budget(c))
        labelled: dict[tuple[str, str], list[str]] = {}  # budget -> who has it, in cell order
        for c in group:
            model = str(get_dotted(c, "model.name"))
            who = model if len(by_model[model]) == 1 else f"{model} on {get_dotted(c, 'data.name')}"
            names = labelled.setdefault(_budget(c), [])
            if who not in names:
                names.append(who)
        stoppings = {b[1] for b in labelled}
        if len(stoppings) == 1:  # only the epoch caps differ
            caps = ", ".join(f"{e} ({', '.join(names)})" for (e, _), names in labelled.items())
            lines.append(f"{head}; at most {caps} epochs, {next(iter(stoppings))}; {tail}")
        else:
            caps = "; ".join(f"{', '.join(names)}: at most {e} epochs, {st}" for (e, st), names in labelled.items())
            lines.append(f"{head}; {caps}; {tail}")
    return lines


def _environment_line(e: dict) -> str:
    return (
        f"device {e.get('device')}, threads {e.get('threads')}, seqrec {e.get('seqrec')}, torch "
        f"{e.get('torch')}, python {e.get('python')}, commit {e.get('git_commit')}; "
        f"utilisation from {e.get('utilisation_source')}"
    )


def _sort_key(axes: list[str], sweep: dict[str, list]) -> Any:
    """Rows in sweep order where swept, else natural order (numbers before text)."""

    def key(values: tuple) -> tuple:
        out = []
        for a, v in zip(axes, values, strict=True):
            order = sweep.get(a)
            out.append((0, order.index(v), "") if order and v in order else
                       (1, v if isinstance(v, int | float) else 0, str(v)))
        return tuple(out)

    return key


def baseline_rows(
    done: list[CellRow], metrics: dict[str, dict[str, tuple]], columns: Sequence[Column]
) -> list[BaselineRow]:
    """One row per (dataset, baseline) from the cells that stored ``<baseline>/*`` (older stores: popularity only).

    A baseline sees no model and (popularity) no sequence at all, so its result depends on the dataset, the split
    and the evaluation settings, not on the model or the seed; sequence baselines also depend on max_len. Cells of
    one dataset that disagree (another max_len, a recipe that changed the data filtering) get one row per distinct
    result, each naming its cells, instead of one silently chosen value.
    """
    stored = {n for m in metrics.values() for n in m}
    out = []
    for name in BASELINE_NAMES:
        wanted = [c for c in columns if f"{name}/{c.metric}" in stored]
        if not wanted:
            continue
        by_ds: dict[str, dict[tuple, list[CellRow]]] = {}
        for c in done:
            m = metrics[c.id]
            vals = [m.get(f"{name}/{col.metric}", (None,)) for col in wanted]
            if all(v[0] is None for v in vals):
                continue
            sig = tuple(None if v[0] is None else round(v[0], 9) for v in vals)  # float noise is no disagreement
            by_ds.setdefault(str(get_dotted(c.config, "data.name")), {}).setdefault(sig, []).append(c)
        for ds, groups in by_ds.items():
            for sig, cells in groups.items():
                max_lens = list(dict.fromkeys(get_dotted(c.config, "data.max_len") for c in cells))
                models = list(dict.fromkeys(str(get_dotted(c.config, "model.name")) for c in cells))
                stats = {col.key: Stat(v, n=1) for col, v in zip(wanted, sig, strict=True)}
                out.append(BaselineRow(name, ds, max_lens, models, stats, len(groups)))
    return out


def build_pivot(store: ResultStore, columns: Sequence[Column] | None = None) -> Pivot:
    grid = store.get_meta("grid", {}) or {}
    sweep: dict[str, list] = grid.get("sweep", {}) or {}
    cells = store.cells()
    wanted = store.get_meta("cell_ids")
    if wanted is not None:  # the last grid run on this store; older cells stay in the file but not the table
        ids = set(wanted)
        cells = [c for c in cells if c.id in ids]
    extra_axes = [k for k in sweep if k not in KEY_AXES and k not in SEED_AXES]
    axes = [*KEY_AXES, *extra_axes]
    cols = list(columns or COLUMNS)
    groups: dict[tuple, list[CellRow]] = {}
    not_done = []
    for c in cells:
        if c.status != "done":
            not_done.append((c, f"{c.status}" + (f": {c.reason}" if c.reason else "")))
            continue
        groups.setdefault(tuple(get_dotted(c.config, a) for a in axes), []).append(c)
    done = [c for c in cells if c.status == "done"]
    metrics = {c.id: store.metrics(c.id) for c in done}
    rows = []
    for key in sorted(groups, key=_sort_key(axes, sweep)):
        members = groups[key]
        per = [metrics[c.id] for c in members]
        stats = {col.key: aggregate([m.get(col.metric, (None, None, None)) for m in per]) for col in cols}
        ci = aggregate([(m.get(CI_METRIC, (None,)) + (None, None))[:3] for m in per])
        best = [m.get("best_epoch", (None,))[0] for m in per]
        rows.append(PivotRow(dict(zip(axes, key, strict=True)), [c.id for c in members], stats, ci,
                             histories=[store.epochs(c.id) for c in members],
                             best_epochs=[int(b) if b is not None else None for b in best]))
    ds_order = list(dict.fromkeys(r.key["data.name"] for r in rows))
    baselines = sorted(baseline_rows(done, metrics, cols),  # stable: per dataset, in BASELINE_NAMES order
                       key=lambda b: ds_order.index(b.dataset) if b.dataset in ds_order else len(ds_order))
    shown = done or cells
    envs = [_environment_line(c.environment) for c in shown if c.environment]
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.status] = counts.get(c.status, 0) + 1
    return Pivot(
        title=str(grid.get("name") or store.path.parent.name),
        axes=axes,
        rows=rows,
        columns=cols,
        protocol=protocol_lines([resolved_config(c.config, metrics.get(c.id, {})) for c in shown]),
        environment=list(dict.fromkeys(envs)),
        not_done=not_done,
        seeds=any(len(r.cells) > 1 for r in rows),
        baselines=baselines,
        counts=counts,
    )


def load_pivot(directory: str | Path, columns: Sequence[Column] | None = None) -> Pivot:
    directory = Path(directory)
    if not (directory / ResultStore.FILENAME).is_file():
        raise DataError(f"{directory / ResultStore.FILENAME}: results store not found (run `seqrec bench` first)")
    store = ResultStore.open(directory, readonly=True)
    try:
        return build_pivot(store, columns)
    finally:
        store.close()
