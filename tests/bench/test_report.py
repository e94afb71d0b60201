"""The benchmark report from fabricated stores (no training): pivot, key table, popularity rows, best cells, CSV,
HTML structure, plots and learning curves, ``--metrics`` and ``--compare``."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import pytest
from bench_helpers import fake_store

from seqrec.bench.pivot import COLUMNS, aggregate, load_pivot
from seqrec.bench.plots import learning_curves
from seqrec.bench.render import not_done_groups
from seqrec.bench.report import write_report
from seqrec.bench.store import ResultStore
from seqrec.errors import ConfigError

KEY_HEADER = ("| Model | Dataset | max_len | NDCG@10 [95% CI] | HR@10 | MRR@10 | Recall@10 | Epoch time (avg, s) "
              "| Peak memory (MiB) | Params |")


def test_aggregate_over_seeds():
    one = aggregate([(0.5, 0.4, 0.6)])
    assert (one.mean, one.low, one.high, one.n) == (0.5, 0.4, 0.6, 1)
    two = aggregate([(1.0, None, None), (3.0, None, None)])
    assert two.mean == 2.0 and two.n == 2
    assert two.high - two.mean == pytest.approx(12.706 * 2**0.5 / 2**0.5)  # t(1) * sd / sqrt(n), sd = sqrt(2)
    assert aggregate([(None, None, None)]).mean is None


def _section(md: str, start: str, end: str | None = None) -> str:
    body = md.split(start, 1)[1]
    return body.split(end, 1)[0] if end else body


def test_report_key_table_first_then_all_columns(seed_like: Path):
    paths = write_report(seed_like)
    md = paths.markdown.read_text()
    assert md.startswith("## seqrec benchmark: seed-grid")
    assert "**Protocol:** split leave_one_out; ranking full catalogue; seen items filtered" in md
    key = _section(md, "**Protocol:**", "### All columns")
    lines = [ln for ln in key.splitlines() if ln.startswith("|")]
    assert lines[0] == KEY_HEADER
    assert max(len(ln) for ln in lines) < 140  # was 501 characters with every column
    assert len(lines) == 2 + 18 + 2  # header, rule, 18 cells, a popularity row per dataset
    full = _section(md, "### All columns", "Cells not in the table")
    header = full.strip().splitlines()[0]
    for c in COLUMNS:
        assert f" {c.header} " in header or f" {c.header} [95% CI] " in header, c.header
    # one naming scheme: no mix of "EpochTime (Max, s)" / "Epoch Time (Avg, s)" / "NDCG@10/test"
    assert not re.search(r"EpochTime|Epoch Time|/test|TotalParams|HitRate", md)
    assert paths.markdown_text.count("| Model |") == 1 and "### All columns" not in paths.markdown_text


def test_best_model_per_dataset_is_bold(seed_like: Path):
    md = write_report(seed_like).markdown.read_text()
    key = _section(md, "**Protocol:**", "### All columns")
    bold = [ln for ln in key.splitlines() if "**" in ln]
    assert len(bold) == 2  # xlstm max_len 50 is best on both datasets, in all four quality columns
    assert all(ln.count("**") == 8 for ln in bold)
    assert "| xlstm | ml-100k | 50 | **0.1040** [0.0940, 0.1140] | **0.2080** |" in key


def test_popularity_row_per_dataset(seed_like: Path):
    paths = write_report(seed_like)
    md = paths.markdown.read_text()
    assert "| popularity | ml-100k | any | 0.0250 | 0.0500 | 0.0125 | 0.0500 | – | – | – |" in md
    assert "| popularity | ml-1m | any | 0.0450 |" in md
    assert "`popularity` ignores the sequence" in md
    rows = list(csv.DictReader(io.StringIO(paths.csv.read_text())))
    pop = [r for r in rows if r["model.name"] == "popularity"]
    assert [(r["data.name"], r["data.max_len"], r["NDCG@10"]) for r in pop] == [("ml-100k", "any", "0.025"),
                                                                               ("ml-1m", "any", "0.045")]
    assert 'class="baseline"' in paths.html.read_text()


def test_popularity_disagreement_gets_a_row_per_result(seed_like: Path):
    store = ResultStore.open(seed_like, create=False)
    cell = next(c for c in store.cells() if c.status == "done" and c.labels["data.max_len"] == 100)
    with store.transaction() as conn:  # as if this cell's data filtering had differed
        conn.execute("UPDATE metrics SET value = 0.03 WHERE cell_id = ? AND name = 'popularity/NDCG@10'",
                     (cell.id,))
    store.close()
    md = write_report(seed_like).markdown.read_text()
    assert "| popularity | ml-100k | 50, 75, 100 | 0.0250 |" in md  # the other models' cells
    assert "| popularity | ml-100k | 100 | 0.0300 |" in md
    assert "differs between cells (2 results" in md and f"is from {cell.labels['model.name']}." in md


def test_store_without_popularity_renders(tmp_path: Path):
    fake_store(tmp_path / "old", popularity=False)  # written before the baseline was stored
    paths = write_report(tmp_path / "old")
    md = paths.markdown.read_text()
    assert "popularity" not in md and "| sasrec | synthetic | 20 | 2 |" in md
    assert len(list(csv.DictReader(io.StringIO(paths.csv.read_text())))) == 4


def test_report_seeds_and_not_done(fake: Path):
    paths = write_report(fake)
    md = paths.markdown.read_text()
    assert "| Model | Dataset | max_len | Seeds | NDCG@10 [95% CI] |" in md
    assert "| sasrec | synthetic | 20 | 2 | 0.1350 [" in md and "±" in md  # two seeds: t-interval over seeds
    assert "t-interval over seeds" in md
    assert ("- skipped: dataset 'ml-1m': not found under /nowhere (8 cells: model ∈ {sasrec, xlstm}, data=ml-1m, "
            "max_len ∈ {20, 50}, seed ∈ {1, 2})") in md
    rows = list(csv.DictReader(io.StringIO(paths.csv.read_text())))
    assert len(rows) == 4 + 1 and rows[0]["seeds"] == "2"
    assert float(rows[0]["NDCG@10"]) == pytest.approx(0.1 + 0.02 + 0.015)
    assert {c.key for c in COLUMNS} <= set(rows[0])  # the CSV keeps every column, with its interval
    assert rows[0]["NDCG@10_ci_low"] and rows[0]["NDCG@10_ci_high"]


def test_not_done_lists_cells_that_are_not_a_full_product(fake: Path):
    pivot = load_pivot(fake)
    three = pivot.not_done[:3]  # seeds 1, 2 of max_len 20 and seed 1 of max_len 50: not a product
    (why, summary), = not_done_groups(three)
    assert summary.startswith("3 cells: ") and summary.count(";") == 2


def test_html_structure_and_plots(seed_like: Path):
    page = write_report(seed_like).html.read_text()
    assert not re.search(r"(src|href)=\"(http|//)", page)  # self-contained
    assert page.index('id="key-table"') < page.index('id="all-table"')
    assert "position: sticky" in page and 'class="k k0"' in page
    key = page.split('id="key-table"', 1)[1].split("</table>", 1)[0]
    assert key.count('class="best') == 8 and page.count('class="best') == 16  # 4 columns x 2 datasets, 2 tables
    assert page.count("data:image/png;base64,") == 5 + 2  # 4 vs max_len, cost scatter, learning curves x 2
    assert "<script" not in page


def test_learning_curves_are_small_multiples_at_a_readable_size(seed_like: Path):
    from PIL import Image

    curves = learning_curves(load_pivot(seed_like))
    assert [t for t, _ in curves] == ["Learning curves — ml-100k", "Learning curves — ml-1m"]
    for _, png in curves:
        w, h = Image.open(io.BytesIO(base64.b64decode(png))).size
        assert w >= 1000 and h >= 700  # 3 x 3 panels of about 390 x 280 px


def test_report_metric_subset_and_compare(fake: Path, tmp_path: Path):
    paths = write_report(fake, metrics=["NDCG@10", "epoch_time_avg"])
    first = next(ln for ln in paths.markdown.read_text().splitlines() if ln.startswith("| Model"))
    assert first == "| Model | Dataset | max_len | Seeds | NDCG@10 [95% CI] | Epoch time (avg, s) |"
    assert "HR@10" in paths.csv.read_text()  # the CSV stays complete
    with pytest.raises(ConfigError, match="unknown column 'nope'"):
        write_report(fake, metrics=["nope"])
    fake_store(tmp_path / "b", scale=1.1)
    cmp = write_report(fake, compare=tmp_path / "b", output=tmp_path / "cmp")
    md = cmp.markdown.read_text()
    assert "+10.0%" in md and "NDCG@10 A" in md and "NDCG@10 B" in md and "NDCG@10 Δ%" in md
    assert cmp.html.is_file() and cmp.csv.read_text().startswith("model.name,data.name,data.max_len,NDCG@10_a")


def test_learning_curves_of_a_large_grid_show_its_best_rows(tmp_path: Path, monkeypatch):
    from bench_helpers import study_store
    from PIL import Image

    from seqrec.bench import plots

    study_store(tmp_path / "s")  # 24 rows
    pivot = load_pivot(tmp_path / "s")
    assert [t for t, _ in learning_curves(pivot)] == ["Learning curves — ml-100k"]
    monkeypatch.setattr(plots, "MAX_CURVE_PANELS", 8)
    (title, png), = learning_curves(pivot)
    assert title == "Learning curves — ml-100k (the 8 best of 24 rows by test NDCG@10)"
    w, h = Image.open(io.BytesIO(base64.b64decode(png))).size
    assert w >= 1000 and 400 <= h <= 1000  # 2 rows of 4 panels


def test_protocol_lines_merge_recipes_that_differ_only_in_their_budget():
    from seqrec.bench.pivot import protocol_line, protocol_lines

    def cfg(model: str, ds: str, epochs: int, patience: int = 10) -> dict:
        return {"model": {"name": model}, "data": {"name": ds, "split": "leave_one_out", "duplicates": "keep",
                                                   "min_user_interactions": 0, "min_item_interactions": 0},
                "eval": {"filter_seen": True, "bootstrap": 1000},
                "train": {"epochs": epochs, "monitor": "NDCG@10", "patience": patience}}

    same = [cfg("sasrec", "a", 30), cfg("sasrec", "b", 30)]
    assert protocol_lines(same) == [protocol_line(same[0])]
    lines = protocol_lines([cfg("sasrec", "a", 30), cfg("gru4rec", "a", 20), cfg("sasrec", "b", 20),
                            cfg("gru4rec", "b", 20)])
    assert len(lines) == 1
    assert "at most 30 (sasrec on a), 20 (gru4rec, sasrec on b) epochs, early stopping on valid NDCG@10 " \
           "(patience 10)" in lines[0]
    mixed = protocol_lines([cfg("sasrec", "a", 30), cfg("bert4rec", "a", 40, patience=5)])
    assert "sasrec: at most 30 epochs, early stopping on valid NDCG@10 (patience 10); bert4rec: at most 40 " \
           "epochs, early stopping on valid NDCG@10 (patience 5)" in mixed[0]
    other_eval = cfg("sasrec", "a", 30)
    other_eval["eval"]["filter_seen"] = False
    assert len(protocol_lines([cfg("sasrec", "a", 30), other_eval])) == 2  # another protocol: its own line


def test_plot_vs_len_splits_a_study_into_readable_panels(tmp_path: Path, seed_like: Path):
    from bench_helpers import study_store
    from PIL import Image

    from seqrec.bench import plots

    study_store(tmp_path / "s")  # one dataset, 12 lines (3 batch sizes x (3 negatives + full CE))
    pivot = load_pivot(tmp_path / "s")
    assert plots._facet_axis(pivot, pivot.rows) == "train.batch_size"  # 3 panels of 4 lines (negatives: 4 of 3)
    labels = {plots.series_label(r, pivot, skip="train.batch_size") for r in pivot.rows}
    assert labels == {"loss=cce_neg num_negatives=32", "loss=cce_neg num_negatives=256",
                      "loss=cce_neg num_negatives=1024", "loss=ce"}  # one model: not named; ce has no negatives
    png = plots.plot_vs_len(pivot, "NDCG@10", "NDCG@10", "t")
    w, h = Image.open(io.BytesIO(base64.b64decode(png))).size
    assert w >= 1400 and h >= 400  # 3 panels side by side, legend below
    grid = load_pivot(seed_like)  # models are the lines: one panel per dataset, as before
    assert plots._facet_axis(grid, grid.rows) is None
    assert {plots.series_label(r, grid) for r in grid.rows} == {"bert4rec", "sasrec", "xlstm"}
