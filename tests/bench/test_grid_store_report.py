"""Fast benchmark tests (no training): grid expansion, the SQLite store, skipped datasets, reports, the CLI."""

from __future__ import annotations

import csv
import io
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqrec.bench.grid import expand, load_grid, parse_grid
from seqrec.bench.report import aggregate, write_report
from seqrec.bench.runner import _failure_reason, cell_metrics, dataset_unavailable, run_bench
from seqrec.bench.store import ResultStore
from seqrec.cli import app
from seqrec.config import build_config, config_to_dict
from seqrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY_FIXED = {
    "data": {"name": "synthetic", "synthetic": {"num_users": 150, "num_items": 60, "mean_length": 12}},
    "train": {"epochs": 2, "threads": 1, "progress": False},
    "eval": {"bootstrap": 20},
    "model.hidden": 16,
}


def test_grid_expansion_cartesian_product_and_aliases():
    grid = parse_grid({"fixed": TINY_FIXED, "sweep": {"model": ["sasrec", "gru4rec"], "max_len": [6, 8, 10],
                                                      "seed": [1, 2]}})
    assert list(grid.sweep) == ["model.name", "data.max_len", "train.seed"]
    cells = expand(grid)
    assert len(cells) == 2 * 3 * 2
    assert len({c.id for c in cells}) == len(cells)
    assert cells[0].labels == {"model.name": "sasrec", "data.max_len": 6, "train.seed": 1}
    assert cells[1].labels["train.seed"] == 2  # the last key varies fastest
    assert all(c.config.train.epochs == 2 and c.config.model.hidden == 16 for c in cells)
    assert cells[-1].config.model.name == "gru4rec" and cells[-1].config.data.max_len == 10
    assert [c.id for c in expand(grid)] == [c.id for c in cells]  # ids are stable
    assert cells[0].describe() == "model=sasrec max_len=6 seed=1"


def test_grid_overrides_and_recipes(tmp_path: Path):
    (tmp_path / "rec.yaml").write_text("model: {name: sasrec, hidden: 24}\ntrain: {lr: 0.005}\n")
    (tmp_path / "g.yaml").write_text(
        "name: g\nrecipes: {sasrec: rec.yaml}\nfixed: {train.epochs: 3}\n"
        "sweep: {model.name: [sasrec, gru4rec]}\n"
    )
    cells = expand(load_grid(tmp_path / "g.yaml"), ["train.epochs=1"])
    sas, gru = cells
    assert sas.config.model.hidden == 24 and sas.config.train.lr == 0.005
    assert gru.config.train.lr == 0.001  # the recipe belongs to its model only
    assert sas.config.train.epochs == 1 and gru.config.train.epochs == 1


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"sweep": {"model.name": []}}, "non-empty list"),
        ({"sweep": {"model.name": "sasrec"}}, "non-empty list"),
        ({"fixed": {}, "swep": {}}, "unknown grid key 'swep'"),
        ({"sweep": {"train.nope": [1]}}, "train.nope"),
        ({"sweep": {"epochs": [1]}}, "dotted config key"),
        ({"jobs": 0, "sweep": {"model.name": ["sasrec"]}}, "'jobs' must be a positive integer"),
        ({"jobs": "2", "sweep": {"model.name": ["sasrec"]}}, "'jobs' must be a positive integer"),
    ],
)
def test_grid_errors_are_one_line(raw: dict, needle: str):
    with pytest.raises(ConfigError) as err:
        expand(parse_grid(raw, "g.yaml"))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_dataset_unavailable_is_cheap_and_names_the_dataset(tmp_path: Path):
    cfg = build_config({"data": {"name": "ml-1m"}})
    reason = dataset_unavailable(cfg, tmp_path, download=False)
    assert reason is not None and "ml-1m" in reason and "not found" in reason
    assert dataset_unavailable(build_config({}), tmp_path, download=False) is None  # synthetic


def test_unavailable_datasets_are_skipped_with_reason(tmp_path: Path):
    grid = tmp_path / "g.yaml"
    grid.write_text("fixed: {train.epochs: 1}\nsweep: {dataset: [ml-1m, ml-10m], max_len: [50, 100]}\n")
    summary = run_bench(grid, tmp_path / "out", data_dir=tmp_path / "data")
    assert len(summary.skipped) == 4 and not summary.ran
    store = ResultStore.open(tmp_path / "out", create=False)
    rows = store.cells()
    assert {r.status for r in rows} == {"skipped"}
    assert all("not found" in (r.reason or "") for r in rows)
    store.close()
    conn = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_failure_reasons(tmp_path: Path):
    (tmp_path / "stderr.log").write_text("Traceback ...\n  File x\nRuntimeError: boom\n\n")
    assert _failure_reason(1, tmp_path) == "RuntimeError: boom"
    assert _failure_reason(-9, tmp_path).startswith("killed by SIGKILL (out of memory?)")
    (tmp_path / "stderr.log").write_text("")
    assert _failure_reason(3, tmp_path) == "exit status 3"


def test_cell_metrics_flattens_metrics_json():
    m = cell_metrics(
        {"epoch_time_max_s": 2.0, "params": 10, "test": {"NDCG@10": 0.1, "Coverage@10": 0.5},
         "test_ci95": {"NDCG@10": [0.05, 0.15]}, "valid": {"NDCG@10": 0.2},
         "baselines": {"popularity": {"test": {"NDCG@10": 0.01}}}},
        {"utilisation_pct": 42.0},
    )
    assert m["NDCG@10"] == (0.1, 0.05, 0.15) and m["Coverage@10"] == (0.5,)
    assert m["params"] == (10.0,) and m["utilisation_pct"] == (42.0,)
    assert m["valid/NDCG@10"] == (0.2,) and m["popularity/NDCG@10"] == (0.01,)


def test_aggregate_over_seeds():
    one = aggregate([(0.5, 0.4, 0.6)])
    assert (one.mean, one.low, one.high, one.n) == (0.5, 0.4, 0.6, 1)
    two = aggregate([(1.0, None, None), (3.0, None, None)])
    assert two.mean == 2.0 and two.n == 2
    assert two.high - two.mean == pytest.approx(12.706 * 2**0.5 / 2**0.5)  # t(1) * sd / sqrt(n), sd = sqrt(2)
    assert aggregate([(None, None, None)]).mean is None


# -- a fabricated store: reports without training ------------------------------------------------------------


def fake_store(directory: Path, scale: float = 1.0) -> None:
    store = ResultStore.open(directory)
    sweep = {"model.name": ["sasrec", "xlstm"], "data.name": ["synthetic", "ml-1m"], "data.max_len": [20, 50],
             "train.seed": [1, 2]}
    store.set_meta("grid", {"name": "fake", "sweep": sweep})
    ids = []
    i = 0
    for model in sweep["model.name"]:
        for ds in sweep["data.name"]:
            for L in sweep["data.max_len"]:
                for seed in sweep["train.seed"]:
                    cfg = build_config({"data": {"name": ds, "max_len": L}, "model": {"name": model},
                                        "train": {"seed": seed}})
                    cid = f"c{i:03d}"
                    ids.append(cid)
                    labels = {"model.name": model, "data.name": ds, "data.max_len": L, "train.seed": seed}
                    store.ensure_cell(cid, i, labels, config_to_dict(cfg))
                    i += 1
                    if ds == "ml-1m":
                        store.set_status(cid, "skipped", "dataset 'ml-1m': not found under /nowhere")
                        continue
                    ndcg = scale * (0.1 + 0.001 * L + 0.01 * seed + (0.02 if model == "xlstm" else 0))
                    history = [{"epoch": e, "train_loss": 5.0 - e, "grad_norm_max": 1.0, "lr": 0.001,
                                "epoch_time_s": 0.01 * L, "throughput_seq_s": 1000.0, "peak_memory_mb": 300 + L,
                                "cpu_util_pct": 90.0} for e in (1, 2)]
                    metrics = {"epoch_time_max_s": 0.01 * L, "epoch_time_avg_s": 0.01 * L,
                               "epoch_time_sum_s": 0.02 * L, "peak_memory_mb": 300.0 + L, "grad_norm_max": 1.0,
                               "lr": 0.001, "train_loss": 3.0, "params": 1000 + L, "epochs_trained": 2,
                               "throughput_seq_s": 1000.0,
                               "test": {"NDCG@10": ndcg, "HR@10": 2 * ndcg, "MRR@10": ndcg / 2,
                                        "Recall@10": 2 * ndcg, "Coverage@10": 0.5, "Surprisal@10": 0.3},
                               "test_ci95": {"NDCG@10": [ndcg - 0.01, ndcg + 0.01]}}
                    env = {"device": "cpu", "threads": 1, "seqrec": "0.1.0", "torch": "x", "python": "3",
                           "git_commit": "abc", "utilisation_source": "cpu"}
                    store.record_done(cid, history, cell_metrics(metrics, {"utilisation_pct": 90.0}), env, 1.0)
    store.set_meta("cell_ids", ids)
    store.close()


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    fake_store(tmp_path / "a")
    return tmp_path / "a"


def test_store_contents(fake: Path):
    store = ResultStore.open(fake, create=False)
    cells = store.cells()
    assert len(cells) == 16 and sum(c.status == "done" for c in cells) == 8
    done = next(c for c in cells if c.status == "done")
    assert done.environment["git_commit"] == "abc" and done.config["data"]["name"] == "synthetic"
    assert [e["epoch"] for e in store.epochs(done.id)] == [1, 2]
    m = store.metrics(done.id)
    assert m["NDCG@10"][1] is not None and m["epoch_time_sum_s"][0] == pytest.approx(0.4)
    store.close()


def test_report_files(fake: Path):
    paths = write_report(fake)
    md = paths.markdown.read_text()
    assert md.startswith("## seqrec benchmark: fake")
    assert "**Protocol:** split leave_one_out; ranking full catalogue; seen items filtered" in md
    for header in ("EpochTime (Max, s)", "Peak memory (MiB)", "Utilization (%)", "GradientNorm (max)",
                   "HitRate@10/test", "LR", "Loss/train", "TotalParams", "MRR@10/test", "NDCG@10/test",
                   "Recall@10/test", "Epochs Trained", "Epoch Time (Avg, s)", "Epoch Time (Sum, s)",
                   "Coverage@10/test", "Surprisal@10/test", "Throughput (seq/s)", "NDCG@10 95% CI (seeds)"):
        assert header in md
    assert "| sasrec | synthetic | 20 | 2 |" in md and "±" in md  # two seeds aggregated
    assert "ml-1m" in md and "skipped: dataset 'ml-1m'" in md
    rows = list(csv.DictReader(io.StringIO(paths.csv.read_text())))
    assert len(rows) == 4 and rows[0]["seeds"] == "2"
    assert float(rows[0]["NDCG@10"]) == pytest.approx(0.1 + 0.02 + 0.015)
    page = paths.html.read_text()
    assert page.count("data:image/png;base64,") == 5  # NDCG, HR, epoch time, memory, scatter
    assert not re.search(r"(src|href)=\"(http|//)", page)  # self-contained
    assert "Protocol:" in page and "<table>" in page


def test_report_metric_subset_and_compare(fake: Path, tmp_path: Path):
    paths = write_report(fake, metrics=["NDCG@10", "epoch_time_avg"])
    header = paths.markdown.read_text().split("\n")[4]
    assert "NDCG@10/test" in header and "HitRate@10/test" not in header
    with pytest.raises(ConfigError, match="unknown column 'nope'"):
        write_report(fake, metrics=["nope"])
    fake_store(tmp_path / "b", scale=1.1)
    cmp = write_report(fake, compare=tmp_path / "b", output=tmp_path / "cmp")
    md = cmp.markdown.read_text()
    assert "+10.0%" in md and "NDCG@10/test A" in md and "NDCG@10/test B" in md
    assert cmp.html.is_file() and cmp.csv.read_text().startswith("model.name,data.name,data.max_len,NDCG@10_a")


def test_cli_report_and_errors(fake: Path, tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(fake), "--metrics", "NDCG@10,HR@10"])
    assert res.exit_code == 0, res.output
    assert "HTML report:" in res.output and (fake / "report.html").is_file()
    res = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "results store not found" in res.output
    res = runner.invoke(app, ["bench", str(tmp_path / "nope.yaml"), "--output", str(tmp_path / "o")])
    assert res.exit_code == 2 and "grid file not found" in res.output


def test_cli_bench_all_skipped_prints_table_and_html_path(tmp_path: Path):
    grid = tmp_path / "g.yaml"
    grid.write_text("sweep: {dataset: [ml-1m]}\n")
    res = CliRunner().invoke(app, ["bench", str(grid), "--output", str(tmp_path / "o"),
                                   "--data-dir", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "## seqrec benchmark" in res.output and "HTML report:" in res.output
    assert "1 skipped" in res.output


def test_shipped_grids_expand():
    quick = expand(load_grid(REPO / "configs" / "bench" / "quickstart.yaml"))
    assert len(quick) == 8 and {c.config.model.name for c in quick} == {"sasrec", "bert4rec", "gru4rec", "xlstm"}
    assert {c.config.data.name for c in quick} == {"synthetic"}
    seed = expand(load_grid(REPO / "configs" / "bench" / "seed-grid.yaml"))
    table = [c for c in seed if c.config.data.name != "steam"]
    assert len(table) == 27
    assert {c.config.data.max_len for c in table} == {50, 75, 100}
    assert {c.config.model.name for c in table} == {"sasrec", "bert4rec", "xlstm"}
    assert {c.config.data.name for c in table} == {"ml-100k", "ml-1m", "ml-10m"}
    assert load_grid(REPO / "configs" / "bench" / "seed-grid.yaml").jobs == 2  # 2 cores: two cells at once
    assert load_grid(REPO / "configs" / "bench" / "quickstart.yaml").jobs == 2
    bert = next(c for c in seed if c.config.model.name == "bert4rec")
    assert bert.config.train.lr == 0.003 and bert.config.model.mask_prob == 0.3  # the shipped recipe


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


# Flags from the workplace notes: no background networking (this machine's closed network refuses it noisily).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_html_renders_in_headless_chromium(fake: Path, tmp_path: Path):
    paths = write_report(fake)
    shot = tmp_path / "shot.png"
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1400,3000", paths.html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    console_errors = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and ("Error" in ln or "error" in ln)]
    assert not console_errors, console_errors  # no JavaScript or resource errors on the page
    dom = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", paths.html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert dom.returncode == 0 and dom.stdout.count("<img") == 5 and "<table>" in dom.stdout
