"""Fast benchmark tests (no training): grid expansion, the SQLite store, skipped datasets, reports, the CLI."""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqrec.bench.grid import expand, load_grid, parse_grid
from seqrec.bench.report import write_report
from seqrec.bench.runner import _failure_reason, cell_metrics, dataset_unavailable, run_bench
from seqrec.bench.store import ResultStore
from seqrec.cli import app
from seqrec.config import build_config
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


def test_grid_recipes_per_dataset(tmp_path: Path):
    (tmp_path / "small.yaml").write_text("model: {name: sasrec, hidden: 24}\ntrain: {lr: 0.005}\n")
    (tmp_path / "big.yaml").write_text("model: {name: sasrec, hidden: 32}\ntrain: {lr: 0.002, batch_size: 32}\n")
    (tmp_path / "g.yaml").write_text(
        "recipes: {sasrec: {ml-1m: big.yaml, '*': small.yaml}}\n"
        "sweep: {model.name: [sasrec, gru4rec], data.name: [synthetic, ml-1m]}\n"
    )
    cells = {(c.labels["model.name"], c.labels["data.name"]): c.config for c in expand(load_grid(tmp_path / "g.yaml"))}
    assert cells["sasrec", "ml-1m"].model.hidden == 32 and cells["sasrec", "ml-1m"].train.batch_size == 32
    assert cells["sasrec", "synthetic"].model.hidden == 24 and cells["sasrec", "synthetic"].train.lr == 0.005
    assert cells["gru4rec", "ml-1m"].train.lr == 0.001  # no recipe: the defaults
    # per-dataset recipes without "*" must cover every dataset of the sweep: no silent fall back to the defaults
    (tmp_path / "g2.yaml").write_text(
        "recipes: {sasrec: {ml-1m: big.yaml}}\nsweep: {data.name: [synthetic, ml-1m]}\nfixed: {model.name: sasrec}\n"
    )
    with pytest.raises(ConfigError, match="no recipe for dataset 'synthetic'"):
        expand(load_grid(tmp_path / "g2.yaml"))
    (tmp_path / "g3.yaml").write_text("recipes: {sasrec: {ml-1m: 3}}\nsweep: {data.name: [ml-1m]}\n")
    with pytest.raises(ConfigError, match="must be a config file path"):
        load_grid(tmp_path / "g3.yaml")


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
    assert "kcore_min_user" not in m  # older metrics.json: nothing invented
    assert cell_metrics({"kcore": {"min_user": 5, "min_item": 3}}, {}) == {"kcore_min_user": (5.0,),
                                                                         "kcore_min_item": (3.0,)}


def test_protocol_line_gives_the_resolved_kcore_of_a_dataset_default():
    from seqrec.bench.pivot import protocol_line, resolved_config

    cfg = {"data": {"name": "ml-1m", "min_user_interactions": None, "min_item_interactions": 2}}
    resolved = resolved_config(cfg, {"kcore_min_user": (0.0,), "kcore_min_item": (2.0,)})
    assert "k-core users ≥ 0, items ≥ 2" in protocol_line(resolved)
    assert cfg["data"]["min_user_interactions"] is None  # the stored config is not modified
    assert "k-core users ≥ dataset default, items ≥ 2" in protocol_line(resolved_config(cfg, {}))  # not recorded
    explicit = {"data": {"min_user_interactions": 7, "min_item_interactions": 7}}
    assert "users ≥ 7" in protocol_line(resolved_config(explicit, {"kcore_min_user": (5.0,)}))  # config wins


# -- a fabricated store (tests/bench/bench_helpers.py): reports without training ------------------------


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
    table = [c for c in seed if c.config.data.name != "steam" and c.config.model.name != "gru4rec"]
    assert len(table) == 27 and len(seed) == 48  # the seed's 27 cells; Steam and the GRU4Rec baseline beside them
    assert {c.config.data.max_len for c in table} == {50, 75, 100}
    assert {c.config.model.name for c in table} == {"sasrec", "bert4rec", "xlstm"}
    assert {c.config.data.name for c in table} == {"ml-100k", "ml-1m", "ml-10m"}
    assert [c.config.data.name for c in seed[:12]] == ["ml-100k"] * 12  # ML-100K first: the cheap cells
    sas_1m = next(c for c in seed if c.config.model.name == "sasrec" and c.config.data.name == "ml-1m")
    assert sas_1m.config.train.batch_size == 32 and sas_1m.config.train.scheduler == "cosine"  # its ML-1M recipe
    assert all(c.config.train.threads == 1 for c in seed)
    assert load_grid(REPO / "configs" / "bench" / "seed-grid.yaml").jobs == 2  # 2 cores: two cells at once
    assert load_grid(REPO / "configs" / "bench" / "quickstart.yaml").jobs == 2
    bert = next(c for c in seed if c.config.model.name == "bert4rec")
    assert bert.config.train.lr == 0.003 and bert.config.model.mask_prob == 0.3  # the shipped recipe


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


# Flags from the workplace notes: no background networking (this machine's closed network refuses it noisily).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],  # type: ignore[list-item]
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_html_renders_in_headless_chromium(fake: Path, tmp_path: Path):
    paths = write_report(fake)
    shot = tmp_path / "shot.png"
    profile = tmp_path / "chromium-profile"
    proc = _chromium("--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1400,3000",
                     paths.html.resolve().as_uri(), profile=profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    console_errors = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and ("Error" in ln or "error" in ln)]
    assert not console_errors, console_errors  # no JavaScript or resource errors on the page
    dom = _chromium("--dump-dom", paths.html.resolve().as_uri(), profile=profile)
    assert dom.returncode == 0 and dom.stdout.count("<img") == 6  # 4 vs max_len, cost scatter, learning curves
    assert 'id="key-table"' in dom.stdout and 'id="all-table"' in dom.stdout


# Measures the key table after layout and writes the numbers into the DOM, which --dump-dom then returns.
# Inserted into a test-only copy of the page; the report itself has no script.
_PROBE = """<script>
(function () {
  const t = document.querySelector('#key-table');
  const ths = Array.from(t.querySelectorAll('thead th'));
  const wrap = t.closest('.wrap');
  const first = t.querySelector('tbody td');
  const all = document.querySelector('#all-table');
  const allWrap = all.closest('.wrap');
  const allFirst = all.querySelector('tbody td');
  const left0 = allFirst.getBoundingClientRect().left, cell = all.querySelector('tbody td:nth-child(5)');
  const cell0 = cell.getBoundingClientRect().left;
  allWrap.scrollLeft = 400;  // the label columns stay, the others move
  const out = {
    width: window.innerWidth, height: window.innerHeight,
    pageScrollWidth: document.documentElement.scrollWidth,
    keyRight: Math.max(...ths.map(th => th.getBoundingClientRect().right)),
    keyHeaderBottom: Math.max(...ths.map(th => th.getBoundingClientRect().bottom)),
    firstRowBottom: first.getBoundingClientRect().bottom,
    keyScroll: wrap.scrollWidth - wrap.clientWidth,
    headers: ths.map(th => th.textContent),
    headerClipped: ths.filter(th => th.scrollWidth > th.clientWidth).map(th => th.textContent),
    stickyMoved: allFirst.getBoundingClientRect().left - left0,
    otherMoved: cell.getBoundingClientRect().left - cell0,
    allScrollable: allWrap.scrollWidth > allWrap.clientWidth,
  };
  document.body.setAttribute('data-probe', JSON.stringify(out));
})();
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_first_screen_shows_the_key_columns_at_1400px(seed_like: Path, tmp_path: Path):
    """At 1400 x 900 the key table's header and first rows are on screen, with no horizontal scrolling."""
    paths = write_report(seed_like)
    profile = tmp_path / "chromium-profile"
    shot = tmp_path / "first-screen.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1400,900", paths.html.resolve().as_uri(),
                     profile=profile)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    assert Image.open(shot).size == (1400, 900)
    probe = tmp_path / "probe.html"
    probe.write_text(paths.html.read_text().replace("</body>", _PROBE + "</body>"))
    dom = _chromium("--window-size=1400,900", "--dump-dom", probe.resolve().as_uri(), profile=profile)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert found, dom.stdout[:2000]
    m = json.loads(html.unescape(found.group(1)))
    assert m["width"] == 1400  # (--dump-dom's viewport is shorter than the screenshot's: 757 px here)
    assert m["headers"] == ["Model", "Dataset", "max_len", "NDCG@10 [95% CI]", "HR@10", "MRR@10", "Recall@10",
                            "Epoch time (avg, s)", "Peak memory (MiB)", "Params"]
    assert m["keyRight"] <= m["width"] and m["keyScroll"] == 0, m  # every key column is visible
    assert m["pageScrollWidth"] <= m["width"], m  # the page itself never scrolls sideways
    assert m["firstRowBottom"] < m["height"], m  # header and the first row are on the first screen
    assert not m["headerClipped"], m
    assert m["allScrollable"] and m["stickyMoved"] == 0 and m["otherMoved"] < -100, m  # sticky label columns
