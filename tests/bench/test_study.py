"""The loss study: grid ``only`` and ``--sample``, the study statistics against plain references, the report."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from bench_helpers import study_store
from typer.testing import CliRunner

from seqrec.bench.grid import expand, load_grid, parse_grid, sample_cells
from seqrec.bench.pivot import load_pivot
from seqrec.bench.report import write_report
from seqrec.bench.study import StudyPoint, budget_lines, forest_importance, pareto_front, spearman_table, study_points
from seqrec.cli import app
from seqrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
GRID = {"sweep": {"loss": ["cce_neg", "ce"], "train.batch_size": [32, 64], "loss.num_negatives": [8, 16, 32]},
        "only": {"loss.num_negatives": {"loss": ["cce_neg"]}}}


def test_only_leaves_a_key_out_where_it_does_not_apply():
    cells = expand(parse_grid(GRID))
    ce = [c for c in cells if c.config.loss.name == "ce"]
    assert len(cells) == 2 * 3 + 2 and len(ce) == 2  # one ce cell per batch size, not one per negatives
    assert all("loss.num_negatives" not in c.labels and c.config.loss.num_negatives is None for c in ce)
    neg = [c for c in cells if c.config.loss.name == "cce_neg"]
    assert sorted(c.config.loss.num_negatives for c in neg) == [8, 8, 16, 16, 32, 32]


@pytest.mark.parametrize(("only", "needle"), [
    ({"loss.num_negatives": {"model": ["sasrec"]}}, "must be another swept key"),
    ({"train.lr": {"loss": ["ce"]}}, "is not a swept key"),
    ({"loss.num_negatives": {"loss": []}}, "non-empty list"),
    ({"loss.num_negatives": ["cce_neg"]}, "needs a mapping"),
])
def test_only_errors_are_one_line(only: dict, needle: str):
    with pytest.raises(ConfigError, match=needle):
        parse_grid({**GRID, "only": only})


def test_sample_is_seeded_and_stable():
    cells = expand(load_grid(REPO / "configs" / "bench" / "loss-study.yaml"))
    assert len(cells) == 140 and sum(c.config.loss.name == "ce" for c in cells) == 20
    a, b = sample_cells(cells, 40, seed=0), sample_cells(cells, 40, seed=0)
    assert [c.id for c in a] == [c.id for c in b] and len(a) == 40
    assert [c.id for c in sample_cells(cells, 40, seed=1)] != [c.id for c in a]
    assert [c.ordinal for c in a] == list(range(40))  # renumbered, in grid order
    order = {c.id: i for i, c in enumerate(cells)}
    assert [order[c.id] for c in a] == sorted(order[c.id] for c in a)
    assert len(sample_cells(cells, 500)) == 140
    with pytest.raises(ConfigError, match="--sample"):
        sample_cells(cells, 0)
    ml1m = expand(load_grid(REPO / "configs" / "bench" / "loss-study-ml-1m.yaml"))
    assert {c.config.data.name for c in ml1m} == {"ml-1m"} and len(ml1m) == 140


def _point(ndcg: float, memory: float, **kw) -> StudyPoint:  # noqa: ANN003
    base = {"dataset": "d", "loss": "cce_neg", "bs": 32, "sl": 50, "ns": 64, "coverage": 0.1, "surprisal": 0.2,
            "epoch_time_s": 1.0}
    return StudyPoint(ndcg=ndcg, memory_mb=memory, **{**base, **kw})


def test_pareto_front_matches_brute_force():
    rng = random.Random(0)
    for _ in range(50):
        pts = [_point(rng.random(), rng.choice([1, 2, 3, 4, 5, 6]) * 100.0) for _ in range(rng.randint(1, 12))]
        front = pareto_front(pts, "memory_mb")
        dominated = {id(q) for q in pts for o in pts
                     if o is not q and o.memory_mb <= q.memory_mb and o.ndcg >= q.ndcg
                     and (o.memory_mb < q.memory_mb or o.ndcg > q.ndcg)}
        expected = {(q.memory_mb, q.ndcg) for q in pts if id(q) not in dominated}
        assert {(q.memory_mb, q.ndcg) for q in front} == expected
        assert [q.memory_mb for q in front] == sorted(q.memory_mb for q in front)


def test_spearman_and_budget_lines_on_a_known_relation():
    pytest.importorskip("scipy")
    pts = [_point(0.01 * bs + 0.001 * ns, bs * ns / 100, bs=bs, ns=ns) for bs in (32, 64, 128) for ns in (8, 64)]
    pts.append(_point(0.5, 1e6, ns=None, loss="ce"))  # full CE: not in the correlations
    table = {r["feature"]: r for r in spearman_table(pts)}
    assert table["bs"]["NDCG@10"][0] > 0.8 and table["sl"]["NDCG@10"] is None  # sl constant: undefined
    from scipy.stats import spearmanr

    sampled = [q for q in pts if q.ns is not None]
    ref = spearmanr([q.bs * q.ns for q in sampled], [q.ndcg for q in sampled]).statistic
    assert table["bs*ns"]["NDCG@10"][0] == pytest.approx(ref)
    mem = spearmanr([q.memory_mb for q in sampled], [q.ndcg for q in sampled]).statistic
    assert table["peak memory"]["NDCG@10"][0] == pytest.approx(mem)
    assert list(table)[-2:] == ["peak memory", "epoch time"]
    lines = budget_lines(pts)
    assert lines[0].startswith("under 256 MiB: cce_neg bs=128, sl=50, ns=64")  # 81.9 MiB, the best that fits
    assert lines[-1].startswith("under 16 GiB") is False and len(lines) == 1  # ce (1e6 MiB) fits no budget


def test_forest_importance_names_the_lever():
    pytest.importorskip("sklearn")
    rng = random.Random(1)
    pts = [_point(0.02 * (bs // 32) + rng.random() * 1e-3, 1.0, bs=bs, sl=sl, ns=ns)
           for bs in (32, 64, 128, 256) for sl in (25, 50) for ns in (32, 256)]
    res = forest_importance(pts)
    assert res is not None and res["cells"] == 16
    assert max(res["importance"], key=res["importance"].get) == "bs" and res["r2_cv"] > 0.8
    assert forest_importance(pts[:5]) is None  # too few cells


def test_report_study_section(tmp_path: Path):
    pytest.importorskip("sklearn")
    study_store(tmp_path / "s", datasets=("ml-100k", "ml-1m"))
    points = study_points(load_pivot(tmp_path / "s"))
    assert len(points) == 2 * 24 and sum(q.ns is None for q in points) == 2 * 6
    paths = write_report(tmp_path / "s", study=True)
    md = paths.markdown.read_text()
    assert "## Loss study" in md and "### ml-100k (24 cells)" in md and "| bs*ns |" in md
    assert re.search(r"Random-forest importance over 18 cells: bs \d\.\d\d", md)
    share = re.search(r"The loss's own share of peak memory .*: cce_neg median ([\d.]+)% .*18 cells\); ce median", md)
    assert share and 0 < float(share.group(1)) < 50  # loss 4 bytes per bs*sl*k against 200 MiB + 8 bytes
    page = paths.html.read_text()
    study = page[page.index('<h2 id="study">'):page.index('<h2 id="curves">')]
    assert study.count("<img") == 3  # vs memory, vs epoch time, importance
    assert '<a href="#study">Loss study</a>' in page
    plain = write_report(tmp_path / "s")  # without --study: no section
    assert "Loss study" not in plain.html.read_text()


def test_cli_report_study_and_a_store_without_study_axes(fake: Path, tmp_path: Path):
    res = CliRunner().invoke(app, ["report", str(fake), "--study"])
    assert res.exit_code == 0, res.output
    assert "No study cells" in (fake / "report.md").read_text()


def test_cli_bench_sample_records_the_draw(tmp_path: Path):
    grid = tmp_path / "g.yaml"
    grid.write_text("sweep: {dataset: [ml-1m], data.max_len: [20, 30, 40, 50]}\n")
    res = CliRunner().invoke(app, ["bench", str(grid), "--output", str(tmp_path / "o"), "--data-dir",
                                   str(tmp_path / "d"), "--sample", "2", "--sample-seed", "3"])
    assert res.exit_code == 0, res.output
    assert "2 cells: 0 run now, 0 from earlier, 2 skipped" in res.output
    from seqrec.bench.store import ResultStore

    store = ResultStore.open(tmp_path / "o", create=False)
    try:
        assert store.get_meta("sample") == {"cells": 2, "of": 4, "seed": 3}
    finally:
        store.close()


def test_study_section_renders_in_headless_chromium(tmp_path: Path):
    from test_grid_store_report import CHROMIUM, _chromium

    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    pytest.importorskip("sklearn")
    study_store(tmp_path / "s")
    paths = write_report(tmp_path / "s", study=True)
    shot, profile = tmp_path / "shot.png", tmp_path / "chromium-profile"
    proc = _chromium("--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1400,3000",
                     paths.html.resolve().as_uri(), profile=profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console_errors = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and ("Error" in ln or "error" in ln)]
    assert not console_errors, console_errors
    dom = _chromium("--dump-dom", paths.html.resolve().as_uri(), profile=profile).stdout
    study = dom[dom.index('<h2 id="study">'):dom.index('<h2 id="curves">')]
    assert study.count("<img") == 3 and 'class="study"' in study
