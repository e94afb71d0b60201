"""``seqrec report``: the benchmark table (Markdown, CSV) and a self-contained HTML page with plots.

Rows are model -> dataset -> max_len (plus any other swept key except the seed); columns are those of the
benchmark table in ``shared/seeds/benchmark-table.txt`` (epoch time max/avg/sum, peak memory, utilisation,
gradient norm, LR, final train loss, parameters, epochs trained, HR/NDCG/MRR/Recall@10) plus Coverage@10,
Surprisal@10, throughput and the 95% interval of NDCG@10. When seeds are swept a row aggregates its seeds as
mean ± the 95% Student-t half-width over seeds; with one seed the interval column is the test bootstrap CI.
The evaluation protocol is printed above every table. Plots (matplotlib, Agg backend) are embedded in the HTML
as base64 PNG, so the page is a single file. ``--compare`` puts two stores side by side with relative
differences (B vs A, in %).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.bench.grid import label_name
from seqrec.bench.store import CellRow, ResultStore
from seqrec.errors import ConfigError, DataError
from seqrec.io import atomic_write_bytes


@dataclass(frozen=True)
class Column:
    key: str  # name for --metrics
    header: str  # table header (as in the benchmark table, with units)
    metric: str  # stored metric name
    fmt: str  # format of one value
    cost: bool = False  # machine-dependent (time, memory, utilisation): excluded when comparing reruns


COLUMNS: tuple[Column, ...] = (
    Column("epoch_time_max", "EpochTime (Max, s)", "epoch_time_max_s", ".2f", cost=True),
    Column("memory", "Peak memory (MiB)", "peak_memory_mb", ".0f", cost=True),
    Column("utilisation", "Utilization (%)", "utilisation_pct", ".0f", cost=True),
    Column("grad_norm", "GradientNorm (max)", "grad_norm_max", ".2f"),
    Column("HR@10", "HitRate@10/test", "HR@10", ".4f"),
    Column("lr", "LR", "lr", ".3g"),
    Column("train_loss", "Loss/train", "train_loss", ".4f"),
    Column("params", "TotalParams", "params", ".0f"),
    Column("MRR@10", "MRR@10/test", "MRR@10", ".4f"),
    Column("NDCG@10", "NDCG@10/test", "NDCG@10", ".4f"),
    Column("Recall@10", "Recall@10/test", "Recall@10", ".4f"),
    Column("epochs", "Epochs Trained", "epochs_trained", ".0f"),
    Column("epoch_time_avg", "Epoch Time (Avg, s)", "epoch_time_avg_s", ".2f", cost=True),
    Column("epoch_time_sum", "Epoch Time (Sum, s)", "epoch_time_sum_s", ".1f", cost=True),
    Column("Coverage@10", "Coverage@10/test", "Coverage@10", ".4f"),
    Column("Surprisal@10", "Surprisal@10/test", "Surprisal@10", ".4f"),
    Column("throughput", "Throughput (seq/s)", "throughput_seq_s", ".0f", cost=True),
)
CI_METRIC = "NDCG@10"  # the metric whose 95% interval gets its own column
COMPARE_DEFAULT = ("NDCG@10", "HR@10", "MRR@10", "epochs", "epoch_time_avg", "epoch_time_sum", "memory")
KEY_AXES = ("model.name", "data.name", "data.max_len")
SEED_AXES = ("train.seed",)

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

    def text(self, fmt: str) -> str:
        if self.mean is None or (isinstance(self.mean, float) and math.isnan(self.mean)):
            return "–"
        body = format(self.mean, fmt)
        if self.n > 1 and self.low is not None and self.high is not None:
            body += f" ± {format((self.high - self.low) / 2, fmt)}"
        return body


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


@dataclass
class ReportPaths:
    markdown: Path
    csv: Path
    html: Path
    markdown_text: str


def select_columns(names: Sequence[str] | None) -> list[Column]:
    if not names:
        return list(COLUMNS)
    out = []
    for name in names:
        match = [c for c in COLUMNS if name.lower() in (c.key.lower(), c.header.lower(), c.metric.lower())]
        if not match:
            known = ", ".join(c.key for c in COLUMNS)
            raise ConfigError(f"--metrics: unknown column {name!r} (known: {known})")
        out.append(match[0])
    return out


def _get(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def protocol_line(config: dict) -> str:
    d, e = config["data"], config["eval"]
    ranking = "full catalogue" if e["protocol"] == "full" else (
        f"sampled ({e['num_negatives']} {e['negative_sampler']} negatives)")
    kcore = f"k-core users ≥ {d['min_user_interactions']}, items ≥ {d['min_item_interactions']}"
    return (
        f"split {d['split']}; ranking {ranking}; seen items {'filtered' if e['filter_seen'] else 'kept'}; "
        f"{kcore}; duplicates {d['duplicates']}; early stopping on valid {config['train']['monitor']}; "
        f"test metrics with 95% bootstrap CI ({e['bootstrap']} resamples)"
    )


def _order(values: list[Any], sweep_order: list[Any] | None) -> list[Any]:
    def rank(v: Any) -> tuple:
        if sweep_order and v in sweep_order:
            return (0, sweep_order.index(v), "")
        return (1, v if isinstance(v, int | float) else 0, str(v))

    return sorted(set(values), key=rank)


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
        key = tuple(_get(c.config, a) for a in axes)
        groups.setdefault(key, []).append(c)
    # order rows: model, dataset, max_len (sweep order where swept, else natural)
    def sort_key(key: tuple) -> tuple:
        out = []
        for a, v in zip(axes, key, strict=True):
            order = sweep.get(a)
            out.append((0, order.index(v), "") if order and v in order else
                       (1, v if isinstance(v, int | float) else 0, str(v)))
        return tuple(out)

    rows = []
    for key in sorted(groups, key=sort_key):
        members = groups[key]
        per = [store.metrics(c.id) for c in members]
        stats = {col.key: aggregate([m.get(col.metric, (None, None, None)) for m in per]) for col in cols}
        ci = aggregate([(m.get(CI_METRIC, (None,)) + (None, None))[:3] for m in per])
        rows.append(PivotRow(dict(zip(axes, key, strict=True)), [c.id for c in members], stats, ci))
    done = [c for c in cells if c.status == "done"] or cells
    protocols = list(dict.fromkeys(protocol_line(c.config) for c in done))
    envs = []
    for c in done:
        e = c.environment or {}
        if not e:
            continue
        envs.append(
            f"device {e.get('device')}, threads {e.get('threads')}, seqrec {e.get('seqrec')}, torch "
            f"{e.get('torch')}, python {e.get('python')}, commit {e.get('git_commit')}; "
            f"utilisation from {e.get('utilisation_source')}"
        )
    return Pivot(
        title=str(grid.get("name") or store.path.parent.name),
        axes=axes,
        rows=rows,
        columns=cols,
        protocol=protocols,
        environment=list(dict.fromkeys(envs)),
        not_done=not_done,
        seeds=any(len(r.cells) > 1 for r in rows),
    )


# -- text formats -------------------------------------------------------------------------------------------


def _axis_header(axis: str) -> str:
    return {"model.name": "Model", "data.name": "Dataset", "data.max_len": "max_len"}.get(axis, label_name(axis))


def _ci_header(p: Pivot) -> str:
    return f"{CI_METRIC} 95% CI" + (" (seeds)" if p.seeds else " (bootstrap)")


def _ci_text(s: Stat) -> str:
    return f"[{s.low:.4f}, {s.high:.4f}]" if s.low is not None and s.high is not None else "–"


def table_rows(p: Pivot, blank_repeats: bool = True) -> tuple[list[str], list[list[str]]]:
    header = [_axis_header(a) for a in p.axes]
    if p.seeds:
        header.append("Seeds")
    header += [c.header for c in p.columns] + [_ci_header(p)]
    out: list[list[str]] = []
    prev: list[Any] = [None] * len(p.axes)
    for r in p.rows:
        vals = [r.key[a] for a in p.axes]
        shown = []
        for i, v in enumerate(vals):
            same_prefix = blank_repeats and vals[: i + 1] == prev[: i + 1] and i < 2
            shown.append("" if same_prefix else str(v))
        prev = vals
        row = shown + ([str(len(r.cells))] if p.seeds else [])
        row += [r.stats[c.key].text(c.fmt) for c in p.columns] + [_ci_text(r.ci)]
        out.append(row)
    return header, out


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(x: str) -> str:
        return x.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(p: Pivot) -> str:
    header, rows = table_rows(p)
    parts = [f"## seqrec benchmark: {p.title}", ""]
    parts += [f"**Protocol:** {line}" for line in p.protocol] + [""]
    parts.append(markdown_table(header, rows) if rows else "_no finished cells_")
    if p.seeds:
        parts += ["", "Values are mean ± 95% t-interval half-width over seeds."]
    if p.not_done:
        parts += ["", "Cells not in the table:", ""]
        parts += [f"- {why} ({_count(labels)}: {'; '.join(labels)})" for why, labels in _by_reason(p.not_done)]
    if p.environment:
        parts += ["", *[f"Environment: {e}" for e in p.environment]]
    return "\n".join(parts) + "\n"


def _by_reason(not_done: list[tuple[CellRow, str]]) -> list[tuple[str, list[str]]]:
    """Cells grouped by their status/reason (a missing dataset skips many cells for one reason), in grid order."""
    groups: dict[str, list[str]] = {}
    for c, why in not_done:
        groups.setdefault(why, []).append(_cell_label(c))
    return list(groups.items())


def _count(labels: list[str]) -> str:
    return f"{len(labels)} cell" + ("s" if len(labels) != 1 else "")


def _cell_label(c: CellRow) -> str:
    return " ".join(f"{label_name(k)}={v}" for k, v in c.labels.items()) or c.id


def render_csv(p: Pivot) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = [a for a in p.axes] + ["seeds"]
    for c in p.columns:
        header += [c.key, f"{c.key}_ci_low", f"{c.key}_ci_high"]
    w.writerow(header)

    def num(x: float | None) -> str:
        return "" if x is None else format(x, ".6g")

    for r in p.rows:
        row = [str(r.key[a]) for a in p.axes] + [str(len(r.cells))]
        for c in p.columns:
            s = r.stats[c.key]
            row += [num(s.mean), num(s.low), num(s.high)]
        w.writerow(row)
    return buf.getvalue()


# -- plots --------------------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _series_label(r: PivotRow, p: Pivot) -> str:
    extra = [f"{label_name(a)}={r.key[a]}" for a in p.axes[3:]]
    return " ".join([str(r.key["model.name"]), *extra])


def plot_vs_len(p: Pivot, col_key: str, ylabel: str, title: str) -> str | None:
    """One panel per dataset; x = max_len, y = the column (error bars: 95% interval); a line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.key["data.name"] for r in p.rows))
    if not datasets or not any(r.stats.get(col_key) and r.stats[col_key].mean is not None for r in p.rows):
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        series: dict[str, list[PivotRow]] = {}
        for r in p.rows:
            if r.key["data.name"] == ds:
                series.setdefault(_series_label(r, p), []).append(r)
        for label, rows in series.items():
            rows = sorted(rows, key=lambda r: r.key["data.max_len"])
            xs = [r.key["data.max_len"] for r in rows]
            st = [r.stats[col_key] for r in rows]
            ys = [s.mean if s.mean is not None else math.nan for s in st]
            err = [[(s.mean - s.low) if s.low is not None and s.mean is not None else 0 for s in st],
                   [(s.high - s.mean) if s.high is not None and s.mean is not None else 0 for s in st]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
        ax.set_title(f"{title} — {ds}")
        ax.set_xlabel("max_len (items in the input sequence)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(title="model", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_cost_scatter(p: Pivot) -> str | None:
    """Accuracy vs cost: x = total training time (sum of epoch times, s), y = test NDCG@10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in p.rows if r.stats.get("NDCG@10") and r.stats["NDCG@10"].mean is not None
           and r.stats.get("epoch_time_sum") and r.stats["epoch_time_sum"].mean is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = "osD^v<>pPX*"
    models = list(dict.fromkeys(r.key["model.name"] for r in pts))
    datasets = list(dict.fromkeys(r.key["data.name"] for r in pts))
    cmap = plt.get_cmap("tab10")
    for r in pts:
        mi, di = models.index(r.key["model.name"]), datasets.index(r.key["data.name"])
        ax.scatter(r.stats["epoch_time_sum"].mean, r.stats["NDCG@10"].mean, color=cmap(mi % 10),
                   marker=markers[di % len(markers)], s=50)
        ax.annotate(f"L={r.key['data.max_len']}", (r.stats["epoch_time_sum"].mean, r.stats["NDCG@10"].mean),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=cmap(i % 10), marker="o", linestyle="", label=m) for i, m in enumerate(models)]
    handles += [Line2D([], [], color="grey", marker=markers[i % len(markers)], linestyle="", label=d)
                for i, d in enumerate(datasets)]
    ax.legend(handles=handles, title="model / dataset", fontsize=8)
    ax.set_xlabel("training time (sum of epoch times, s)")
    ax.set_ylabel("NDCG@10 (test)")
    ax.set_title("Accuracy vs cost (L = max_len)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def all_plots(p: Pivot) -> list[tuple[str, str]]:
    specs = [
        ("NDCG@10", "NDCG@10 (test)", "NDCG@10 vs max_len"),
        ("HR@10", "HR@10 (test)", "HR@10 vs max_len"),
        ("epoch_time_avg", "epoch time (avg, s)", "Epoch time vs max_len"),
        ("memory", "peak memory (MiB)", "Peak memory vs max_len"),
    ]
    out = []
    for key, ylabel, title in specs:
        img = plot_vs_len(p, key, ylabel, title)
        if img:
            out.append((title, img))
    img = plot_cost_scatter(p)
    if img:
        out.append(("Accuracy vs cost", img))
    return out


# -- HTML ---------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td.k { text-align: left; font-weight: 600; }
.protocol { background: #f7f7e8; padding: 6px 10px; border-left: 4px solid #cc9; }
img { max-width: 100%; display: block; margin: 1em 0; }
.neg { color: #b00; } .pos { color: #070; }
"""


def html_table(header: list[str], rows: list[list[str]], key_cols: int = 3) -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in header)
    key_td = '<td class="k">'
    body = "".join(
        "<tr>" + "".join(f"{key_td if i < key_cols else '<td>'}{html.escape(x)}</td>" for i, x in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def render_html(p: Pivot, plots: list[tuple[str, str]] | None = None) -> str:
    header, rows = table_rows(p)
    parts = [f"<h1>seqrec benchmark: {html.escape(p.title)}</h1>"]
    parts += [f"<p class=\"protocol\"><b>Protocol:</b> {html.escape(line)}</p>" for line in p.protocol]
    parts.append(html_table(header, rows, len(p.axes)) if rows else "<p><i>no finished cells</i></p>")
    if p.seeds:
        parts.append("<p>Values are mean ± 95% t-interval half-width over seeds.</p>")
    if p.not_done:
        parts.append("<h2>Cells not in the table</h2><ul>" + "".join(
            f"<li>{html.escape(why)} <small>({_count(labels)}: {html.escape('; '.join(labels))})</small></li>"
            for why, labels in _by_reason(p.not_done)) + "</ul>")
    for title, img in plots if plots is not None else all_plots(p):
        parts.append(f"<h2>{html.escape(title)}</h2><img alt=\"{html.escape(title)}\" "
                     f"src=\"data:image/png;base64,{img}\">")
    if p.environment:
        parts.append("<h2>Environment</h2>" + "".join(f"<p>{html.escape(e)}</p>" for e in p.environment))
    return _page(f"seqrec benchmark: {p.title}", "\n".join(parts))


# -- compare ------------------------------------------------------------------------------------------------


def compare_rows(a: Pivot, b: Pivot, columns: Sequence[Column]) -> tuple[list[str], list[list[str]], list[list]]:
    """Rows present in either store; per column: A, B and the relative difference (B - A) / |A| in %."""
    axes = a.axes if len(a.axes) >= len(b.axes) else b.axes
    index_a = {tuple(r.key.get(x) for x in axes): r for r in a.rows}
    index_b = {tuple(r.key.get(x) for x in axes): r for r in b.rows}
    keys = list(dict.fromkeys([*index_a, *index_b]))
    header = [_axis_header(x) for x in axes]
    for c in columns:
        header += [f"{c.header} A", f"{c.header} B", f"{c.key} Δ%"]
    rows, raw = [], []
    for k in keys:
        ra, rb = index_a.get(k), index_b.get(k)
        row = [str(v) for v in k]
        nums: list = list(k)
        for c in columns:
            sa = ra.stats[c.key] if ra and c.key in ra.stats else Stat(None, n=0)
            sb = rb.stats[c.key] if rb and c.key in rb.stats else Stat(None, n=0)
            rel = ((sb.mean - sa.mean) / abs(sa.mean) * 100
                   if sa.mean not in (None, 0) and sb.mean is not None else None)
            row += [sa.text(c.fmt), sb.text(c.fmt), "–" if rel is None else f"{rel:+.1f}%"]
            nums += [sa.mean, sb.mean, rel]
        rows.append(row)
        raw.append(nums)
    return header, rows, raw


def _compare_plot(a: Pivot, b: Pivot, la: str, lb: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, _, raw = compare_rows(a, b, [c for c in COLUMNS if c.key == "NDCG@10"])
    raw = [r for r in raw if r[-3] is not None or r[-2] is not None]
    if not raw:
        return None
    n = len(a.axes if len(a.axes) >= len(b.axes) else b.axes)
    labels = [" ".join(str(x) for x in r[:n]) for r in raw]
    xs = range(len(raw))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(raw) + 2), 3.8))
    ax.bar([x - 0.2 for x in xs], [r[-3] or 0 for r in raw], width=0.4, label=f"A: {la}")
    ax.bar([x + 0.2 for x in xs], [r[-2] or 0 for r in raw], width=0.4, label=f"B: {lb}")
    ax.set_xticks(list(xs), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("NDCG@10 (test)")
    ax.set_title("NDCG@10: A vs B")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


# -- entry point --------------------------------------------------------------------------------------------


def load_pivot(directory: str | Path, columns: Sequence[Column] | None = None) -> Pivot:
    directory = Path(directory)
    if not (directory / ResultStore.FILENAME).is_file():
        raise DataError(f"{directory / ResultStore.FILENAME}: results store not found (run `seqrec bench` first)")
    store = ResultStore.open(directory, create=False)
    try:
        return build_pivot(store, columns)
    finally:
        store.close()


def _write(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
    path.chmod(0o644)  # a report is meant to be shared (mkstemp creates 0600)


def write_report(
    directory: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    compare: str | Path | None = None,
    output: str | Path | None = None,
) -> ReportPaths:
    """Write ``report.{md,csv,html}`` (or ``compare.{md,csv,html}`` with ``compare``) and return their paths."""
    directory = Path(directory)
    out_dir = Path(output) if output is not None else directory
    columns = select_columns(metrics)
    pivot = load_pivot(directory, columns)
    if compare is None:
        md = render_markdown(pivot)
        paths = ReportPaths(out_dir / "report.md", out_dir / "report.csv", out_dir / "report.html", md)
        _write(paths.markdown, md)
        _write(paths.csv, render_csv(pivot))
        _write(paths.html, render_html(pivot))
        return paths
    other = load_pivot(compare, columns)
    cmp_cols = columns if metrics else select_columns(COMPARE_DEFAULT)
    header, rows, raw = compare_rows(pivot, other, cmp_cols)
    la, lb = str(directory), str(compare)
    proto = [f"**Protocol A:** {x}" for x in pivot.protocol] + [f"**Protocol B:** {x}" for x in other.protocol]
    md = "\n".join([f"## seqrec benchmark comparison: A = {la}, B = {lb}", "", "\n\n".join(proto), "",
                    markdown_table(header, rows), "", "Δ% = (B − A) / |A| × 100."]) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    axes = pivot.axes if len(pivot.axes) >= len(other.axes) else other.axes
    w.writerow([*axes, *[f"{c.key}_{s}" for c in cmp_cols for s in ("a", "b", "rel_pct")]])
    for r in raw:
        w.writerow(["" if x is None else (format(x, ".6g") if isinstance(x, float) else x) for x in r])
    plot = _compare_plot(pivot, other, la, lb)
    body = [f"<h1>seqrec benchmark comparison</h1><p>A = {html.escape(la)}<br>B = {html.escape(lb)}</p>"]
    body += [f"<p class=\"protocol\">{html.escape(x.replace('**', ''))}</p>" for x in proto]
    body.append(html_table(header, rows, len(header) - 3 * len(cmp_cols)))
    body.append("<p>Δ% = (B − A) / |A| × 100.</p>")
    if plot:
        body.append(f"<img alt=\"NDCG@10 A vs B\" src=\"data:image/png;base64,{plot}\">")
    paths = ReportPaths(out_dir / "compare.md", out_dir / "compare.csv", out_dir / "compare.html", md)
    _write(paths.markdown, md)
    _write(paths.csv, buf.getvalue())
    _write(paths.html, _page("seqrec benchmark comparison", "\n".join(body)))
    return paths
