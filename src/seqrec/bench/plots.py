"""Report plots (matplotlib, Agg backend), returned as base64 PNG so the HTML page stays a single file.

Sizes are chosen for reading on a laptop screen at 100% zoom: about 5 x 3.8 inches per panel at 100 dpi,
11-pt text, at most three panels per row; learning curves are small multiples (one panel per cell) at
3.9 x 2.8 inches each.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from seqrec.bench.grid import label_name
from seqrec.bench.pivot import Pivot, PivotRow, column

DPI = 100
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
         "xtick.labelsize": 10, "ytick.labelsize": 10}
LOSS_COLOUR, NDCG_COLOUR = "tab:orange", "tab:blue"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _line_axes(p: Pivot, skip: str | None = None) -> list[str]:
    """The axes a line's label names: the model and the extra grid axes, less ``skip`` and those with a single
    value in the whole pivot (a study of one model need not say "sasrec" 35 times); the model when none is left."""
    axes = [a for a in ["model.name", *p.axes[3:]] if a != skip
            and len({str(r.key[a]) for r in p.rows if r.key[a] is not None}) > 1]
    return axes or ["model.name"]


def _label(r: PivotRow, axes: list[str]) -> str:
    parts = [str(r.key[a]) if a == "model.name" else f"{label_name(a)}={r.key[a]}" for a in axes
             if r.key[a] is not None]
    return " ".join(parts) or str(r.key["model.name"])


def series_label(r: PivotRow, p: Pivot, skip: str | None = None) -> str:
    """A line's legend label: the values of ``_line_axes`` (``skip``: the axis a panel title names); an axis that
    does not apply to this cell, e.g. ``num_negatives`` of full CE, is left out."""
    return _label(r, _line_axes(p, skip))


def _labels(p: Pivot, skip: str | None = None) -> dict[int, str]:
    """``series_label`` of every row (by ``id``), with the line axes found once rather than once per row."""
    axes = _line_axes(p, skip)
    return {id(r): _label(r, axes) for r in p.rows}


def _grid(n: int, per_row: int = 3) -> tuple[int, int]:
    cols = min(per_row, n)
    return math.ceil(n / cols), cols


MAX_LINES = 8  # lines per panel before a plot is split into small multiples: more cannot be told apart


def _facet_axis(p: Pivot, rows: Sequence[PivotRow]) -> str | None:
    """The extra grid axis to split panels by when one panel would hold more than MAX_LINES lines.

    Among the axes after max_len, the one giving the fewest panels with at most MAX_LINES lines each (else the one
    with the fewest lines in its largest panel). None when every dataset's panel is readable as it is.
    """
    def widest(axis: str | None) -> int:
        line_of = _labels(p, axis)
        groups: dict[tuple, set[str]] = {}
        for r in rows:
            groups.setdefault((r.key["data.name"], None if axis is None else r.key[axis]), set()).add(line_of[id(r)])
        return max(len(v) for v in groups.values())

    if widest(None) <= MAX_LINES or len(p.axes) <= 3:
        return None

    def panels(axis: str) -> int:
        return len({(r.key["data.name"], r.key[axis]) for r in rows})

    fits = [a for a in p.axes[3:] if widest(a) <= MAX_LINES]
    if fits:
        return min(fits, key=panels)
    return min(p.axes[3:], key=lambda a: (widest(a), panels(a)))


def plot_vs_len(p: Pivot, col_key: str, ylabel: str, title: str) -> str | None:
    """One panel per dataset; x = max_len, y = the column (error bars: 95% interval); a line per model.

    A dataset whose panel would hold more than MAX_LINES lines (a study grid: one line per loss x batch x
    negatives) gets one panel per value of the grid axis chosen by ``_facet_axis``, that value in the title.
    The popularity baseline stays in the tables: drawn here it would stretch the y axis to a level far below the
    models and flatten the differences the plot is for.
    """
    plt = _plt()
    datasets = list(dict.fromkeys(r.key["data.name"] for r in p.rows))
    if not datasets or not any(r.stats.get(col_key) and r.stats[col_key].known for r in p.rows):
        return None
    facet = _facet_axis(p, p.rows)
    panels = list(dict.fromkeys((r.key["data.name"], None if facet is None else r.key[facet]) for r in p.rows))
    nrows, ncols = _grid(len(panels))
    line_of = _labels(p, facet)
    # one colour per line label across panels, so a shared legend can stand for all of them
    labels = list(dict.fromkeys(line_of[id(r)] for r in p.rows))
    cmap = plt.get_cmap("tab10")
    colour = {lab: cmap(i % 10) for i, lab in enumerate(labels)}
    legend_title = ", ".join(label_name(a) for a in _line_axes(p, facet))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
        for i, (ds, value) in enumerate(panels):
            ax = axes[i // ncols][i % ncols]
            series: dict[str, list[PivotRow]] = {}
            for r in p.rows:
                if r.key["data.name"] == ds and (facet is None or r.key[facet] == value):
                    series.setdefault(line_of[id(r)], []).append(r)
            for line, rows in series.items():
                rows = sorted(rows, key=lambda r: r.key["data.max_len"])
                xs = [r.key["data.max_len"] for r in rows]
                st = [r.stats[col_key] for r in rows]
                ys = [s.mean if s.known else math.nan for s in st]
                err = [[(s.mean - s.low) if s.low is not None and s.known else 0 for s in st],
                       [(s.high - s.mean) if s.high is not None and s.known else 0 for s in st]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=line, color=colour[line])
            ax.set_title(ds if facet is None else f"{ds} · {label_name(facet)}={value}")
            ax.set_xlabel("max_len (items in the input sequence)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if facet is None:
                ax.legend(title=legend_title, fontsize=9 if len(series) > 4 else None, framealpha=0.7)
        for j in range(len(panels), nrows * ncols):
            axes[j // ncols][j % ncols].axis("off")
        fig.suptitle(title, fontsize=13)
        fig.tight_layout()
        if facet is not None:  # small multiples: one legend below them all, off the data
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], color=colour[lab], marker="o", label=lab) for lab in labels]
            fig.legend(handles=handles, title=legend_title, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                       ncol=min(4, len(labels)))
        return _png(fig)


def plot_cost_scatter(p: Pivot) -> str | None:
    """Accuracy vs cost: x = total training time (sum of epoch times, s), y = test NDCG@10."""
    plt = _plt()
    from matplotlib.lines import Line2D

    pts = [r for r in p.rows if r.stats.get("NDCG@10") and r.stats["NDCG@10"].known
           and r.stats.get("epoch_time_sum") and r.stats["epoch_time_sum"].known]
    if not pts:
        return None
    markers = "osD^v<>pPX*"
    models = list(dict.fromkeys(r.key["model.name"] for r in pts))
    datasets = list(dict.fromkeys(r.key["data.name"] for r in pts))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 5.0))
        cmap = plt.get_cmap("tab10")
        for r in pts:
            mi, di = models.index(r.key["model.name"]), datasets.index(r.key["data.name"])
            x, y = r.stats["epoch_time_sum"].mean, r.stats["NDCG@10"].mean
            ax.scatter(x, y, color=cmap(mi % 10), marker=markers[di % len(markers)], s=60)
            ax.annotate(f"L={r.key['data.max_len']}", (x, y), textcoords="offset points", xytext=(5, 4),
                        fontsize=9)
        handles = [Line2D([], [], color=cmap(i % 10), marker="o", linestyle="", label=m)
                   for i, m in enumerate(models)]
        handles += [Line2D([], [], color="grey", marker=markers[i % len(markers)], linestyle="", label=d)
                    for i, d in enumerate(datasets)]
        ax.legend(handles=handles, title="model / dataset")
        ax.set_xlabel("training time (sum of epoch times, s)")
        ax.set_ylabel("NDCG@10 (test)")
        ax.set_title("Accuracy vs cost (L = max_len)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return _png(fig)


def _curve(history: list[dict], name: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for rec in history:
        value = (rec.get("valid") or {}).get(name) if name != "train_loss" else rec.get("train_loss")
        if value is not None:
            xs.append(int(rec["epoch"]))
            ys.append(float(value))
    return xs, ys


def _curve_panel(ax: Any, r: PivotRow, title: str, left: bool, right: bool) -> None:
    """Validation NDCG@10 (left axis) and train loss (right axis) of one row's cells (one line per seed)."""
    from matplotlib.ticker import MaxNLocator

    ax2 = ax.twinx()
    many = len(r.histories) > 1
    for h, best in zip(r.histories, r.best_epochs or [None] * len(r.histories), strict=False):
        alpha = 0.75 if many else 1.0
        xs, ys = _curve(h, "NDCG@10")
        ax.plot(xs, ys, color=NDCG_COLOUR, marker="o", markersize=2.5, linewidth=1.4, alpha=alpha)
        if best in xs:
            ax.plot([best], [ys[xs.index(best)]], marker="*", markersize=11, color=NDCG_COLOUR, alpha=alpha)
        lx, ly = _curve(h, "train_loss")
        ax2.plot(lx, ly, color=LOSS_COLOUR, linestyle="--", linewidth=1.3, alpha=alpha)
    ax.set_title(title + (f" ({len(r.histories)} seeds)" if many else ""))
    ax.tick_params(axis="y", colors=NDCG_COLOUR)
    ax2.tick_params(axis="y", colors=LOSS_COLOUR)
    ax.grid(alpha=0.3)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if left:
        ax.set_ylabel("valid NDCG@10", color=NDCG_COLOUR)
    if right:
        ax2.set_ylabel("train loss", color=LOSS_COLOUR)


MAX_CURVE_PANELS = 36  # per dataset; a larger grid (the 140-cell loss study) shows its best rows only


def _ndcg(r: PivotRow) -> float:
    s = r.stats.get("NDCG@10")
    return float(s.mean) if s is not None and s.known else float("-inf")


def learning_curves(p: Pivot) -> list[tuple[str, str]]:
    """One figure per dataset: a panel per cell, rows = model (+ other swept keys), columns = max_len.

    Above :data:`MAX_CURVE_PANELS` rows in a dataset, the panels are those of its best rows by test NDCG@10
    (in table order), and the figure's title says how many of how many; the tables keep every row."""
    plt = _plt()
    out = []
    line_of = _labels(p)
    for ds in dict.fromkeys(r.key["data.name"] for r in p.rows):
        rows = [r for r in p.rows if r.key["data.name"] == ds and any(_curve(h, "NDCG@10")[0] or
                                                                      _curve(h, "train_loss")[0]
                                                                      for h in r.histories)]
        if not rows:
            continue
        title = f"Learning curves — {ds}"
        capped = len(rows) > MAX_CURVE_PANELS
        if capped:
            best = {id(r) for r in sorted(rows, key=_ndcg, reverse=True)[:MAX_CURVE_PANELS]}
            title += f" (the {MAX_CURVE_PANELS} best of {len(rows)} rows by test NDCG@10)"
            rows = [r for r in rows if id(r) in best]
        lines = {line: i for i, line in enumerate(dict.fromkeys(line_of[id(r)] for r in rows))}
        lens = list(dict.fromkeys(r.key["data.max_len"] for r in rows))
        if len(lens) <= 5 and not capped:  # a model x max_len grid
            nrows, ncols = len(lines), len(lens)
            place = {id(r): (lines[line_of[id(r)]], lens.index(r.key["data.max_len"])) for r in rows}
        else:  # too many lengths for one row of panels: fill a 4-wide grid in table order
            nrows, ncols = _grid(len(rows), 4)
            place = {id(r): divmod(i, ncols) for i, r in enumerate(rows)}
        with plt.rc_context({**STYLE, "font.size": 10, "axes.titlesize": 11}):
            fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols, 2.8 * nrows), squeeze=False)
            used = set()
            for r in rows:
                i, j = place[id(r)]
                used.add((i, j))
                _curve_panel(axes[i][j], r, f"{line_of[id(r)]} · max_len {r.key['data.max_len']}",
                             left=j == 0, right=j == ncols - 1)
            for i in range(nrows):
                for j in range(ncols):
                    if (i, j) not in used:
                        axes[i][j].axis("off")
            fig.tight_layout()  # the page heading names the dataset
            out.append((title, _png(fig)))
    return out


def compare_bars(labels: Sequence[str], a: Sequence[float | None], b: Sequence[float | None], la: str, lb: str,
                 ylabel: str = "NDCG@10 (test)") -> str | None:
    """Two bars per row (A, B), e.g. NDCG@10 of two stores."""
    if not labels:
        return None
    plt = _plt()
    xs = range(len(labels))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(6.5, 0.7 * len(labels) + 2.5), 4.6))
        ax.bar([x - 0.2 for x in xs], [v or 0 for v in a], width=0.4, label=f"A: {la}")
        ax.bar([x + 0.2 for x in xs], [v or 0 for v in b], width=0.4, label=f"B: {lb}")
        ax.set_xticks(list(xs), labels, rotation=45, ha="right", fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel.split(' ')[0]}: A vs B")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        return _png(fig)


def all_plots(p: Pivot) -> list[tuple[str, str]]:
    """Metric vs max_len (NDCG@10, HR@10, epoch time, peak memory) and accuracy vs cost, as (title, PNG)."""
    specs = [("NDCG@10", "NDCG@10 (test)"), ("HR@10", "HR@10 (test)"), ("epoch_time_avg", "epoch time (avg, s)"),
             ("memory", "peak memory (MiB)")]
    out = []
    for key, ylabel in specs:
        title = f"{column(key).header} vs max_len"
        img = plot_vs_len(p, key, ylabel, title)
        if img:
            out.append((title, img))
    img = plot_cost_scatter(p)
    if img:
        out.append(("Accuracy vs cost", img))
    return out
