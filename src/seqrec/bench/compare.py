"""``seqrec report A --compare B``: two stores side by side with relative differences (B vs A, in %)."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass

from seqrec.bench.pivot import Column, Pivot, Stat, column
from seqrec.bench.plots import compare_bars
from seqrec.bench.render import Table, TCell, axis_header, html_table, markdown_table, page


@dataclass
class Comparison:
    markdown: str
    csv: str
    html: str


def _axes(a: Pivot, b: Pivot) -> list[str]:
    return a.axes if len(a.axes) >= len(b.axes) else b.axes


def compare_rows(a: Pivot, b: Pivot, columns: Sequence[Column]) -> tuple[list[str], list[list[str]], list[list]]:
    """Rows present in either store; per column: A, B and the relative difference (B - A) / |A| in %."""
    axes = _axes(a, b)
    index_a = {tuple(r.key.get(x) for x in axes): r for r in a.rows}
    index_b = {tuple(r.key.get(x) for x in axes): r for r in b.rows}
    keys = list(dict.fromkeys([*index_a, *index_b]))
    header = [axis_header(x) for x in axes]
    for c in columns:
        header += [f"{c.header} A", f"{c.header} B", f"{c.header} Δ%"]
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


def render_compare(a: Pivot, b: Pivot, columns: Sequence[Column], la: str, lb: str) -> Comparison:
    header, rows, raw = compare_rows(a, b, columns)
    axes = _axes(a, b)
    table = Table(header, [[TCell(x) for x in row] for row in rows], len(axes))
    proto = [f"**Protocol A:** {x}" for x in a.protocol] + [f"**Protocol B:** {x}" for x in b.protocol]
    md = "\n".join([f"## seqrec benchmark comparison: A = {la}, B = {lb}", "", "\n\n".join(proto), "",
                    markdown_table(table), "", "Δ% = (B − A) / |A| × 100."]) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*axes, *[f"{c.key}_{s}" for c in columns for s in ("a", "b", "rel_pct")]])
    for r in raw:
        w.writerow(["" if x is None else (format(x, ".6g") if isinstance(x, float) else x) for x in r])
    _, _, ndcg = compare_rows(a, b, [column("NDCG@10")])
    ndcg = [r for r in ndcg if r[-3] is not None or r[-2] is not None]
    plot = compare_bars([" ".join(str(x) for x in r[: len(axes)]) for r in ndcg], [r[-3] for r in ndcg],
                        [r[-2] for r in ndcg], la, lb)
    body = [f"<h1>seqrec benchmark comparison</h1><p>A = {html.escape(la)}<br>B = {html.escape(lb)}</p>"]
    body += [f"<p class=\"protocol\">{html.escape(x.replace('**', ''))}</p>" for x in proto]
    body.append(html_table(table))
    body.append("<p>Δ% = (B − A) / |A| × 100.</p>")
    if plot:
        body.append(f"<img alt=\"NDCG@10 A vs B\" src=\"data:image/png;base64,{plot}\">")
    return Comparison(md, buf.getvalue(), page("seqrec benchmark comparison", "\n".join(body)))
