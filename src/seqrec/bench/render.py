"""Rendering a :class:`~seqrec.bench.pivot.Pivot`: Markdown, CSV and a self-contained HTML page.

Two views of the same rows: the key table (model, dataset, max_len, NDCG@10 with its 95% interval, HR@10,
MRR@10, Recall@10, epoch time, peak memory, params) that fits one screen, and "All columns" below it. The CSV
always has every column with its interval. The best model per dataset is marked (bold; green in HTML) for the
quality columns, and a popularity-baseline row per dataset closes the table when the store has one.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from seqrec.bench.grid import label_name
from seqrec.bench.pivot import (
    BASELINE,
    CI_METRIC,
    KEY_COLUMNS,
    BaselineRow,
    Column,
    Pivot,
    PivotRow,
    Stat,
    select_columns,
)
from seqrec.bench.store import CellRow

AXIS_HEADERS = {"model.name": "Model", "data.name": "Dataset", "data.max_len": "max_len"}
STICKY_AXES = 3  # model, dataset, max_len stay visible when the table scrolls sideways


@dataclass
class TCell:
    text: str
    best: bool = False  # the best model of its dataset in this column
    repeat: bool = False  # same label as the row above (blank in Markdown, grey in HTML)
    interval: str = ""  # "[low, high]" shown after the value (NDCG@10)


@dataclass
class Table:
    header: list[str]
    rows: list[list[TCell]]
    labels: int  # leading label columns (left-aligned)
    kinds: list[str] = field(default_factory=list)  # per row: "model" or "baseline"
    ident: str = ""  # HTML id


def axis_header(axis: str) -> str:
    return AXIS_HEADERS.get(axis, label_name(axis))


def col_header(c: Column) -> str:
    return f"{c.header} [95% CI]" if c.key == CI_METRIC else c.header


def best_cells(p: Pivot, columns: Sequence[Column]) -> set[tuple[int, str]]:
    """(row index, column key) of the highest value per dataset among models, for the ``best`` columns."""
    out: set[tuple[int, str]] = set()
    per_ds: dict[Any, int] = {}
    for r in p.rows:
        per_ds[r.key["data.name"]] = per_ds.get(r.key["data.name"], 0) + 1
    for c in columns:
        if not c.best:
            continue
        top: dict[Any, float] = {}
        for r in p.rows:
            s = r.stats.get(c.key)
            if s is not None and s.known:
                ds = r.key["data.name"]
                top[ds] = max(top.get(ds, float("-inf")), float(s.mean))  # type: ignore[arg-type]
        for i, r in enumerate(p.rows):
            s = r.stats.get(c.key)
            ds = r.key["data.name"]
            if s is not None and s.known and per_ds[ds] > 1 and s.mean == top[ds]:  # one row: nothing to beat
                out.add((i, c.key))
    return out


def _value(r: PivotRow, c: Column, best: bool) -> TCell:
    s = r.ci if c.key == CI_METRIC else r.stats.get(c.key, Stat(None, n=0))
    if c.key == CI_METRIC:  # its interval is shown as [low, high] (bootstrap, or t over seeds)
        return TCell(Stat(s.mean).text(c.fmt), best, interval=s.interval(c.fmt) if s.known else "")
    return TCell(s.text(c.fmt), best)


def baseline_label(b: BaselineRow) -> str:
    return "any" if b.distinct == 1 else ", ".join(str(x) for x in b.max_lens)


def build_table(p: Pivot, columns: Sequence[Column], ident: str = "") -> Table:
    header = [axis_header(a) for a in p.axes] + (["Seeds"] if p.seeds else []) + [col_header(c) for c in columns]
    best = best_cells(p, columns)
    rows: list[list[TCell]] = []
    prev: list[Any] = [None] * len(p.axes)
    for i, r in enumerate(p.rows):
        vals = [r.key[a] for a in p.axes]
        labels = [TCell(str(v), repeat=j < 2 and vals[: j + 1] == prev[: j + 1]) for j, v in enumerate(vals)]
        prev = vals
        seeds = [TCell(str(len(r.cells)))] if p.seeds else []
        rows.append(labels + seeds + [_value(r, c, (i, c.key) in best) for c in columns])
    kinds = ["model"] * len(rows)
    for b in p.baselines:
        labels = [TCell(b.name), TCell(b.dataset), TCell(baseline_label(b))]
        labels += [TCell("–") for _ in p.axes[3:]]
        seeds = [TCell("–")] if p.seeds else []
        rows.append(labels + seeds + [TCell(b.stats.get(c.key, Stat(None, n=0)).text(c.fmt)) for c in columns])
        kinds.append("baseline")
    return Table(header, rows, len(p.axes), kinds, ident)


def key_columns(p: Pivot, metrics: Sequence[str] | None = None) -> list[Column]:
    """The first view: ``--metrics`` when given, else the key columns."""
    cols = select_columns(metrics, KEY_COLUMNS)
    return [c for c in cols if c.key in {x.key for x in p.columns}]


# -- Markdown -----------------------------------------------------------------------------------------------


def markdown_table(t: Table) -> str:
    def esc(x: str) -> str:
        return x.replace("|", "\\|")

    def cell(c: TCell) -> str:
        if c.repeat:
            return ""
        text = f"**{c.text}**" if c.best else c.text
        return esc(f"{text} {c.interval}" if c.interval else text)

    lines = ["| " + " | ".join(esc(h) for h in t.header) + " |",
             "|" + "|".join("---" if i < t.labels else "---:" for i in range(len(t.header))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def legend(p: Pivot) -> list[str]:
    """What the numbers are, in a few lines under the key table."""
    ci = ("t-interval over seeds" if p.seeds else "bootstrap over test users")
    out = [f"Test metrics. {CI_METRIC} with its 95% interval ({ci}); bold: the best model per dataset."]
    if p.seeds:
        out.append("Other values: mean ± 95% t-interval half-width over seeds.")
    names = list(dict.fromkeys(b.name for b in p.baselines))
    if names:
        out.append(f"Baselines ({', '.join(f'`{n}`' for n in names)}, italic rows) under the same split and "
                   f"protocol, fitted on the training sequences, tuned on validation: "
                   f"`{BASELINE}` ignores the sequence, so it does not depend on the model or max_len.")
    for b in p.baselines:
        if b.distinct > 1:
            out.append(f"{b.name} on {b.dataset} differs between cells ({b.distinct} results: their data, max_len or "
                       f"evaluation settings differ); row max_len {baseline_label(b)} is from "
                       f"{', '.join(b.models)}.")
    return out


def render_markdown(p: Pivot, key: Sequence[Column], full: bool = True) -> str:
    """The report: protocol, key table, legend, (``full``: all columns), cells not in the table, environment."""
    parts = [f"## seqrec benchmark: {p.title}", ""]
    parts += [f"**Protocol:** {line}" for line in p.protocol] + [""]
    if p.rows:
        parts += [markdown_table(build_table(p, key))]
        for line in legend(p):
            parts += ["", line]
        if full:
            parts += ["", "### All columns", "", markdown_table(build_table(p, p.columns))]
    else:
        parts.append("_no finished cells_")
    if p.not_done:
        parts += ["", "Cells not in the table:", ""]
        parts += [f"- {why} ({summary})" for why, summary in not_done_groups(p.not_done)]
    if p.environment:
        parts += ["", *[f"Environment: {e}" for e in p.environment]]
    return "\n".join(parts) + "\n"


def _cell_label(c: CellRow) -> str:
    return " ".join(f"{label_name(k)}={v}" for k, v in c.labels.items()) or c.id


def _label_rank(key: str) -> tuple[int, str]:
    order = ("model.name", "data.name", "data.max_len", "train.seed")
    return (order.index(key), "") if key in order else (len(order), key)


def _summarise(cells: list[CellRow]) -> str:
    """``9 cells: data=ml-1m, model ∈ {a, b, c}, max_len ∈ {50, 75, 100}`` when the cells are a full product of
    their labels' values (exact), else the cells one by one."""
    n = f"{len(cells)} cell" + ("s" if len(cells) != 1 else "")
    keys = sorted(dict.fromkeys(k for c in cells for k in c.labels), key=_label_rank)
    values = {k: list(dict.fromkeys(c.labels.get(k) for c in cells)) for k in keys}
    product = 1
    for v in values.values():
        product *= len(v)
    distinct = {tuple(c.labels.get(k) for k in keys) for c in cells}
    if len(cells) > 1 and keys and product == len(cells) == len(distinct):
        parts = [f"{label_name(k)}={v[0]}" if len(v) == 1 else f"{label_name(k)} ∈ {{{', '.join(map(str, v))}}}"
                 for k, v in values.items()]
        return f"{n}: {', '.join(parts)}"
    return f"{n}: {'; '.join(_cell_label(c) for c in cells)}"


def not_done_groups(not_done: list[tuple[CellRow, str]]) -> list[tuple[str, str]]:
    """Cells grouped by their status/reason (a missing dataset skips many cells for one reason), in grid order."""
    groups: dict[str, list[CellRow]] = {}
    for c, why in not_done:
        groups.setdefault(why, []).append(c)
    return [(why, _summarise(cells)) for why, cells in groups.items()]


# -- CSV ----------------------------------------------------------------------------------------------------


def render_csv(p: Pivot) -> str:
    """Every column with its interval; popularity rows last (``model.name`` = popularity, max_len ``any``)."""
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
    for b in p.baselines:
        row = [b.name, b.dataset, " ".join(map(str, b.max_lens)) if b.distinct > 1 else "any"]
        row += [""] * (len(p.axes) - 3) + [""]
        for c in p.columns:
            s = b.stats.get(c.key, Stat(None, n=0))
            row += [num(s.mean), "", ""]
        w.writerow(row)
    return buf.getvalue()


# -- HTML ---------------------------------------------------------------------------------------------------

# Sticky header row and sticky label columns: the label cells have fixed widths (border-box) so each sticky
# column's left offset is the sum of the widths before it.
CSS = """
:root { --c0: 8em; --c1: 7em; --c2: 6.5em; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 15px;
       line-height: 1.45; margin: 1.2em 1.6em; color: #1f2328; }
h1 { font-size: 1.55em; margin: 0 0 .3em; } h2 { font-size: 1.25em; margin: 1.6em 0 .4em; }
nav { margin: .2em 0 .8em; font-size: .95em; } nav a { margin-right: 1.1em; color: #0b57d0; }
.meta { color: #555; margin: 0 0 .6em; }
.protocol { background: #f7f7e8; padding: 6px 10px; border-left: 4px solid #cc9; margin: .4em 0; }
.legend { color: #444; font-size: .93em; margin: .3em 0; }
.wrap { overflow: auto; max-height: 85vh; max-width: 100%; border: 1px solid #d0d7de; border-radius: 4px;
        margin: .5em 0 .8em; display: inline-block; }
table.pivot { border-collapse: separate; border-spacing: 0; font-size: 14px; font-variant-numeric: tabular-nums; }
table.pivot th, table.pivot td { box-sizing: border-box; padding: 4px 10px; text-align: right; white-space: nowrap;
       border-bottom: 1px solid #e6e8eb; border-right: 1px solid #f0f1f3; background: #fff; }
table.pivot thead th { position: sticky; top: 0; z-index: 2; background: #eef1f4; white-space: normal;
       vertical-align: bottom; min-width: 5.2em; max-width: 9em; border-bottom: 2px solid #c4cad1; }
table.pivot .k { text-align: left; position: sticky; z-index: 1; overflow: hidden; text-overflow: ellipsis; }
table.pivot thead .k { z-index: 3; }
table.pivot .k0 { left: 0; width: var(--c0); min-width: var(--c0); max-width: var(--c0); font-weight: 600; }
table.pivot .k1 { left: var(--c0); width: var(--c1); min-width: var(--c1); max-width: var(--c1); }
table.pivot .k2 { left: calc(var(--c0) + var(--c1)); width: var(--c2); min-width: var(--c2); max-width: var(--c2);
       border-right: 2px solid #c4cad1; }
table.pivot td.rep { color: #a0a6ad; } table.pivot td.lbl { text-align: left; }
table.pivot td.best { font-weight: 700; background: #d9f2df; }
table.pivot td .ci { color: #666; font-weight: 400; font-size: .92em; }
table.pivot tr.baseline td { font-style: italic; color: #555; background: #f6f6f1; }
table.pivot tbody tr:hover td { background: #eef5ff; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0 1.2em; }
.neg { color: #b00; } .pos { color: #070; }
"""


def html_table(t: Table, sticky: int = STICKY_AXES) -> str:
    """``sticky``: how many leading label columns stay in place when the table scrolls sideways."""

    def cls(j: int, extra: str = "") -> str:
        names = ([f"k k{j}"] if j < min(sticky, t.labels) else []) + ([extra] if extra else [])
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(f"<th{cls(j)} scope=\"col\">{html.escape(h)}</th>" for j, h in enumerate(t.header))
    body = []
    for i, row in enumerate(t.rows):
        tds = []
        for j, c in enumerate(row):
            extra = "best" if c.best else ("rep" if c.repeat else "")
            if j < t.labels and j >= sticky:  # a label that does not stick (another swept key)
                extra = (extra + " lbl").strip()
            text = html.escape(c.text)
            if c.interval:
                text += f' <span class="ci">{html.escape(c.interval)}</span>'
            title = f' title="{html.escape(c.text)}"' if j < t.labels else ""
            tds.append(f"<td{cls(j, extra)}{title}>{text}</td>")
        kind = t.kinds[i] if i < len(t.kinds) else "model"
        body.append(f'<tr class="{kind}">' + "".join(tds) + "</tr>")
    ident = f' id="{t.ident}"' if t.ident else ""
    return (f'<div class="wrap"><table class="pivot"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def _counts_line(p: Pivot) -> str:
    total = sum(p.counts.values())
    parts = [f"{n} {s}" for s in ("done", "skipped", "failed", "running", "pending") if (n := p.counts.get(s))]
    return f"{total} cells: " + ", ".join(parts) if total else "no cells"


def img_tag(title: str, png_b64: str) -> str:
    return f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png_b64}">'


def render_html(p: Pivot, key: Sequence[Column], plots: list[tuple[str, str]],
                curves: list[tuple[str, str]], study: str | None = None) -> str:
    """``plots`` / ``curves``: (title, base64 PNG) from :mod:`seqrec.bench.plots`; ``study``: the HTML of
    :func:`seqrec.bench.study.study_section`, placed after the plots."""
    sections = [("key", "Key results")] + ([("plots", "Plots")] if plots else [])
    sections += [("study", "Loss study")] if study else []
    sections += [("curves", "Learning curves")] if curves else []
    sections += [("all", "All columns")] if p.rows else []
    sections += [("not-done", "Cells not in the table")] if p.not_done else []
    sections += [("env", "Environment")] if p.environment else []
    parts = [f"<h1>seqrec benchmark: {html.escape(p.title)}</h1>",
             "<nav>" + "".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t in sections) + "</nav>",
             f'<p class="meta">{html.escape(_counts_line(p))}</p>']
    parts += [f"<p class=\"protocol\"><b>Protocol:</b> {html.escape(line)}</p>" for line in p.protocol]
    parts.append('<h2 id="key">Key results</h2>')
    if p.rows:
        parts.append(html_table(build_table(p, key, "key-table")))
        parts += [f'<p class="legend">{html.escape(x).replace("`", "")}</p>' for x in legend(p)]
    else:
        parts.append("<p><i>no finished cells</i></p>")
    if plots:
        parts.append('<h2 id="plots">Plots</h2>')
        parts += [img_tag(title, img) for title, img in plots]
    if study:
        parts.append(study)
    if curves:
        parts.append('<h2 id="curves">Learning curves</h2><p class="legend">Per cell: validation NDCG@10 '
                     "(left axis, blue; the star is the early-stopping epoch) and the training loss (right axis, "
                     "orange, dashed) by epoch.</p>")
        parts += [f"<h3>{html.escape(title)}</h3>{img_tag(title, img)}" for title, img in curves]
    if p.rows:
        parts.append('<h2 id="all">All columns</h2>')
        parts.append(html_table(build_table(p, p.columns, "all-table")))
    if p.not_done:
        parts.append('<h2 id="not-done">Cells not in the table</h2><ul>' + "".join(
            f"<li>{html.escape(why)} <small>({html.escape(summary)})</small></li>"
            for why, summary in not_done_groups(p.not_done)) + "</ul>")
    if p.environment:
        parts.append('<h2 id="env">Environment</h2>' + "".join(f"<p>{html.escape(e)}</p>" for e in p.environment))
    return page(f"seqrec benchmark: {p.title}", "\n".join(parts))
