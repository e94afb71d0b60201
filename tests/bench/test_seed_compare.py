"""benchmarks/seed_compare.py on a tiny seed table in the seed's format and a fabricated results store."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from seqrec.bench.report import write_report
from seqrec.errors import DataError

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("seed_compare", REPO / "benchmarks" / "seed_compare.py")
assert _spec and _spec.loader
seed_compare = importlib.util.module_from_spec(_spec)
sys.modules["seed_compare"] = seed_compare  # dataclasses look their module up there
_spec.loader.exec_module(seed_compare)

# The seed's layout (shared/seeds/benchmark-table.txt), cut down: super-header, separator, header, group rows,
# a thousands separator, '-' and empty values, a shifted Grand Total row, then prose.
TINY = """Max Value:

| Max of value | | | | | | | | | | | | Total | Total In Sec | Total In Sec | | |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{header}
| SAS4Rec | | | | | | | | | | | | | | | | |
| 100K | | | | | | | | | | | | | | | | |
| 50 | 5.97 | 1177 | 0 | 3.47 | 0.14 | 0.001 | 5113.95 | 270291 | 0.049 | 0.068 | 0.136 | 7 | 6 | 47 | | |
| 75 | 6.05 | 1177 | 35 | 4.12 | 0.13 | 0.001 | 5144.62 | 271891 | 0.046 | 0.099 | 0.133 | 12 | 6 | 76 | | |
| 1M | | | | | | | | | | | | | | - | | |
| 50 | 83.36 | | | 5.13 | 0.28 | 0.001 | 47815.95 | 1355643 | 0.125 | 0.162 | 0.284 | 14 | 82 | 1,236 | | |
| xLSTM | | | | | | | | | | | | | | | | |
| 1M | | | | | | | | | | | | | | | | |
| 75 | | | | | 0.21 | | 50743.71 | | 0.094 | 0.122 | 0.214 | 7 | - | - | | |
| 200 | | | | | 0.21 | | 50743.71 | | 0.094 | 0.122 | 0.214 | 7 | - | - | | |
| Grand Total (Max) | | | | | | | | | | | | 220.68 | 1177 | 40 | 7.84 | 0.29 |

Testing Scope: (27 Combinations)
""".format(header="| Row Labels | EpochTime (Max) | GPU/Memory(MiB) | GPU/Utilization(%) | GradientNorm "
           "| HitRate@10/test | LR | Loss/train | TotalParams | MRR@10/test | NDCG@10/test | Recall@10/test "
           "| Epoch Trained | Epoch Time (Avg) | Epoch Time (Sum) | | |")


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "benchmark-table.txt"
    path.write_text(TINY)
    return path


def test_parse_seed_table(table: Path):
    seed = seed_compare.parse_seed_table(table)
    assert set(seed.cells) == {("sasrec", "ml-100k", 50), ("sasrec", "ml-100k", 75), ("sasrec", "ml-1m", 50),
                               ("xlstm", "ml-1m", 75), ("xlstm", "ml-1m", 200)}  # SAS4Rec is SASRec
    c = seed.cells[("sasrec", "ml-100k", 50)]
    assert c["NDCG@10"] == 0.068 and c["HR@10"] == 0.14 and c["memory"] == 1177 and c["epoch_time_avg"] == 6
    assert c["params"] == 270291 and c["epochs"] == 7
    assert seed.cells[("sasrec", "ml-1m", 50)]["epoch_time_sum"] == 1236  # "1,236"
    assert seed.cells[("sasrec", "ml-1m", 50)]["memory"] is None  # empty
    assert seed.cells[("xlstm", "ml-1m", 75)]["epoch_time_avg"] is None  # "-"
    assert len(seed.skipped) == 1 and "Grand Total" in seed.skipped[0]


def test_compare_a_store_cell_by_cell(table: Path, seed_like: Path, tmp_path: Path, capsys):
    out = tmp_path / "cmp" / "seed_compare.md"
    assert seed_compare.main([str(seed_like), "--seed-table", str(table), "--out", str(out)]) == 0
    md = out.read_text()
    assert capsys.readouterr().out == md  # printed and written
    result = json.loads(out.with_suffix(".json").read_text())
    assert [(m["model"], m["dataset"], m["max_len"]) for m in result["matched"]] == [
        ("sasrec", "ml-100k", 50), ("sasrec", "ml-100k", 75), ("sasrec", "ml-1m", 50), ("xlstm", "ml-1m", 75)]
    ndcg = result["matched"][0]["metrics"]["NDCG@10"]  # seqrec 0.099 [0.089, 0.109] (bench_helpers)
    assert ndcg["seed"] == 0.068 and ndcg["seqrec"] == pytest.approx(0.099)
    assert ndcg["diff"] == pytest.approx(0.031) and ndcg["ratio"] == pytest.approx(0.099 / 0.068)
    assert ndcg["seqrec_ci95"] == pytest.approx([0.089, 0.109]) and ndcg["seed_in_ci"] is False
    assert result["matched"][1]["metrics"]["NDCG@10"]["seed_in_ci"] is True  # seed 0.099 in [0.0865, 0.1065]
    assert result["matched"][3]["metrics"]["epoch_time_avg"] == {"seed": None, "seqrec": pytest.approx(0.75),
                                                                 "diff": None, "ratio": None}
    assert result["seed_only"] == [{"model": "xlstm", "dataset": "ml-1m", "max_len": 200}]
    assert len(result["seqrec_only"]) == 18 - 4
    assert "| sasrec | ml-100k | 50 | 0.068 | 0.0990 [0.0890, 0.1090] | +0.0310 | ×1.46 | no | 0.14 |" in md
    assert "Only in the seed table (1): xlstm ml-1m max_len 200." in md
    assert "**seqrec protocol:** split leave_one_out" in md and "Grand Total" in md


def test_compare_a_report_csv(table: Path, seed_like: Path, tmp_path: Path):
    """A report CSV (e.g. benchmarks/results/seed_grid/report.csv) works too; the protocol comes from its .md."""
    paths = write_report(seed_like)
    out = tmp_path / "csv.md"
    seed_compare.main([str(paths.csv), "--seed-table", str(table), "--out", str(out)])
    from_csv = json.loads(out.with_suffix(".json").read_text())
    seed_compare.main([str(seed_like), "--seed-table", str(table), "--out", str(tmp_path / "store.md")])
    from_store = json.loads((tmp_path / "store.json").read_text())
    assert from_csv["protocol"] == from_store["protocol"]
    assert [m["model"] for m in from_csv["matched"]] == [m["model"] for m in from_store["matched"]]
    a = from_csv["matched"][0]["metrics"]["NDCG@10"]
    b = from_store["matched"][0]["metrics"]["NDCG@10"]
    assert a["seqrec"] == pytest.approx(b["seqrec"], rel=1e-5) and a["seed_in_ci"] == b["seed_in_ci"]


def test_errors_are_one_line(table: Path, tmp_path: Path, seed_like: Path, capsys):
    assert seed_compare.main([str(seed_like), "--seed-table", str(tmp_path / "nope.txt"),
                              "--out", str(tmp_path / "o.md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.txt" in err and err.count("\n") == 1
    table.write_text(TINY.replace("| 5.97 |", "| fast |"))
    with pytest.raises(DataError, match=r"benchmark-table.txt:8 column 'EpochTime \(Max\)'.*'fast'"):
        seed_compare.parse_seed_table(table)
    assert not (tmp_path / "o.md").exists()
