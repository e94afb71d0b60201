"""``seqrec report``: write the benchmark report of a results store (Markdown, CSV, self-contained HTML).

The pieces: :mod:`seqrec.bench.pivot` (rows, columns, statistics over seeds, the popularity baseline),
:mod:`seqrec.bench.render` (Markdown, CSV, HTML), :mod:`seqrec.bench.plots` (matplotlib, embedded as base64
PNG) and :mod:`seqrec.bench.compare` (``--compare``: two stores side by side, B vs A in %). The evaluation
protocol is printed above every table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seqrec.bench.compare import render_compare
from seqrec.bench.pivot import COMPARE_DEFAULT, load_pivot, select_columns
from seqrec.bench.plots import all_plots, learning_curves
from seqrec.bench.render import key_columns, render_csv, render_html, render_markdown
from seqrec.bench.study import study_section
from seqrec.io import atomic_write_bytes


@dataclass
class ReportPaths:
    markdown: Path
    csv: Path
    html: Path
    markdown_text: str  # what the CLI prints: the key table (the Markdown file also has all columns)


def _write(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))  # a plain file's mode (0644 under umask 022): shareable


def write_report(
    directory: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    compare: str | Path | None = None,
    output: str | Path | None = None,
    study: bool = False,
) -> ReportPaths:
    """Write ``report.{md,csv,html}`` (or ``compare.{md,csv,html}`` with ``compare``) and return their paths.

    ``metrics``: the columns of the first table (default: the key columns); the CSV and the "All columns"
    table always have every column. ``study``: add the loss-study section (:mod:`seqrec.bench.study`).
    """
    directory = Path(directory)
    out_dir = Path(output) if output is not None else directory
    chosen = select_columns(metrics) if metrics else None  # unknown names fail before any file is read
    pivot = load_pivot(directory)
    if compare is None:
        section = study_section(pivot) if study else None  # a missing [study] extra fails before any write
        key = key_columns(pivot, metrics)
        paths = ReportPaths(out_dir / "report.md", out_dir / "report.csv", out_dir / "report.html",
                            render_markdown(pivot, key, full=False))
        _write(paths.markdown, render_markdown(pivot, key) + (f"\n{section.markdown}" if section else ""))
        _write(paths.csv, render_csv(pivot))
        _write(paths.html, render_html(pivot, key, all_plots(pivot), learning_curves(pivot),
                                       section.html if section else None))
        return paths
    other = load_pivot(compare)
    cmp = render_compare(pivot, other, chosen or select_columns(None, COMPARE_DEFAULT), str(directory), str(compare))
    paths = ReportPaths(out_dir / "compare.md", out_dir / "compare.csv", out_dir / "compare.html", cmp.markdown)
    _write(paths.markdown, cmp.markdown)
    _write(paths.csv, cmp.csv)
    _write(paths.html, cmp.html)
    return paths
