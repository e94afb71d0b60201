"""End-to-end CLI: train/evaluate/recommend on tiny synthetic data, and one-line errors that lose nothing.

``test_bad_input_is_one_line_exit_2_and_changes_nothing`` runs every command against a table of bad inputs and
asserts: exit status 2, exactly one output line starting with ``error:`` that names the offending file/key, no
traceback, and the SHA-256 of every file under the data dir, the data cache, the run directories and the
benchmark store unchanged (no file created, none removed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqrec.bench.store import ResultStore
from seqrec.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--set", "data.synthetic.num_users=150", "--set", "data.synthetic.num_items=60",
    "--set", "data.synthetic.mean_length=12", "--set", "data.max_len=10", "--set", "train.epochs=2",
    "--set", "train.progress=false", "--set", "eval.bootstrap=20", "--set", "model.hidden=16",
]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """``root/{data, cache, run, bench}``: a finished run, its data and cache, an (empty) benchmark store."""
    root = tmp_path_factory.mktemp("cli")
    os.environ["SEQREC_CACHE_DIR"] = str(root / "cache")
    res = runner.invoke(app, ["train", "--output", str(root / "run"), "--data-dir", str(root / "data"), *TINY])
    assert res.exit_code == 0, res.output
    ResultStore.open(root / "bench").close()
    return root


@pytest.fixture(scope="module")
def trained(world: Path) -> Path:
    return world / "run"


def test_train_writes_run_directory(trained: Path):
    for name in ("metrics.json", "model.safetensors", "config.yaml", "history.jsonl", "items.json"):
        assert (trained / name).is_file()
    m = json.loads((trained / "metrics.json").read_text())
    keys = {"HR@10", "NDCG@10", "MRR@10", "Recall@10", "Coverage@10", "Surprisal@10"}
    assert keys <= set(m["valid"]) and keys <= set(m["test"])
    assert len((trained / "history.jsonl").read_text().splitlines()) == m["epochs_trained"] == 2
    assert m["params"] > 0 and "popularity" in m["baselines"]


def test_evaluate_json_is_only_json_and_reproduces_training(trained: Path, world: Path):
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(trained), "--data-dir", str(world / "data"), "--json"])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)  # the whole of stdout parses: no table mixed in
    m = json.loads((trained / "metrics.json").read_text())
    for split in ("valid", "test"):
        for k, v in m[split].items():
            assert printed[split][k] == pytest.approx(v, abs=1e-12)
    assert printed["test_ci95"] == m["test_ci95"]


def test_recommend_history_csv_and_json(trained: Path):
    items = json.loads((trained / "items.json").read_text())
    history = items[1:6]
    res = runner.invoke(app, ["recommend", "--checkpoint", str(trained), "--history", ",".join(history),
                              "--k", "10", "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split(",")[:4] == ["user", "rank", "item", "score"]
    recs = [line.split(",")[2] for line in lines[1:]]
    assert len(recs) == 10 and len(set(recs)) == 10
    assert not set(recs) & set(history) and set(recs) <= set(items[1:])
    res = runner.invoke(app, ["recommend", "--checkpoint", str(trained), "--history", ",".join(history),
                              "--format", "json"])
    rows = json.loads(res.stdout)
    assert [r["item"] for r in rows] == recs and all(isinstance(r["score"], float) for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(r.get("title") for r in rows)  # the synthetic items have titles


def test_recommend_for_users_file_prints_a_table(trained: Path, world: Path, tmp_path: Path):
    users = tmp_path / "users.txt"
    users.write_text("1\n2\n")
    res = runner.invoke(app, ["recommend", "--checkpoint", str(trained), "--users", str(users),
                              "--data-dir", str(world / "data")])
    assert res.exit_code == 0, res.output
    assert "rank" in res.stdout and "score" in res.stdout and "title" in res.stdout
    res = runner.invoke(app, ["recommend", "--checkpoint", str(trained), "--users", str(users),
                              "--data-dir", str(world / "data"), "--format", "csv"])
    body = res.stdout.strip().splitlines()[1:]
    assert len(body) == 20 and {line.split(",")[0] for line in body} == {"1", "2"}


def test_train_again_on_a_finished_run_needs_overwrite(world: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = ["train", "--output", str(out), "--data-dir", str(world / "data"), *TINY, "--set", "train.epochs=1"]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "model.safetensors").read_bytes()
    res = runner.invoke(app, [*args, "--set", "train.seed=7"])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "model.safetensors").read_bytes() == before
    res = runner.invoke(app, [*args, "--set", "train.seed=7", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").read_bytes() != before
    assert "seed: 7" in (out / "config.yaml").read_text()


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def _broken_run(world: Path, name: str, mutate) -> Path:  # noqa: ANN001 - mutate(run_dir) -> None
    run = world / "broken" / name
    if not run.exists():
        shutil.copytree(world / "run", run)
        mutate(run)
    return run


def _cases(world: Path) -> dict[str, tuple[list[str], str]]:
    """case -> (command line, text the error line must contain)."""
    d, run = str(world / "data"), str(world / "run")
    files = world / "files"
    good = "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{u * 100 + i}\n" for u in range(1, 8) for i in range(1, 9))
    csv = {
        "malformed": _write(files / "malformed.csv", good + "9,3\n"),
        "missing": _write(files / "missing.csv", good.replace("timestamp", "time")),
        "empty": _write(files / "empty.csv", ""),
        "nonint": _write(files / "nonint.txt", "1 2\n1 3\nabc 4\n"),
        "nan_time": _write(files / "nantime.csv", good + "9,3,nan\n"),
        "gz": _write(files / "cut.csv.gz", b"\x1f\x8b\x08\x00\x00\x00"),
    }
    users = _write(files / "users.txt", "1\nnobody\n")
    cfg_missing = str(files / "nope.yaml")
    cfg_bad_yaml = _write(files / "bad.yaml", "train: [1, 2\n")
    cfg_tag = _write(files / "tag.yaml", "train: !!python/object/apply:os.system ['echo hi']\n")
    out_file = _write(files / "not-a-dir", "x")
    ro = files / "readonly"
    ro.mkdir(exist_ok=True)
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    grid_bad = _write(files / "grid.yaml", "fixed: {train: {nope: 1}}\nsweep: {model.name: [sasrec]}\n")

    def items_garbage(r: Path) -> None:
        (r / "items.json").write_text("[1, 2")

    def items_short(r: Path) -> None:
        (r / "items.json").write_text(json.dumps(json.loads((r / "items.json").read_text())[:5]))

    def config_tag(r: Path) -> None:
        (r / "config.yaml").write_text("data: !!python/object/apply:os.system ['echo pwned']\n")

    def weights_no_meta(r: Path) -> None:
        from safetensors.torch import load_file, save_file

        save_file(load_file(str(r / "model.safetensors")), str(r / "model.safetensors"))

    def weights_truncated(r: Path) -> None:
        w = r / "model.safetensors"
        w.write_bytes(w.read_bytes()[:100])

    broken = {n: str(_broken_run(world, n, f)) for n, f in [
        ("items_garbage", items_garbage), ("items_short", items_short), ("config_tag", config_tag),
        ("weights_no_meta", weights_no_meta), ("weights_truncated", weights_truncated)]}
    train = ["train", "--data-dir", d, *TINY]
    fresh = str(world / "new-run")  # never created: every bad train input fails before writing anything
    file_data = ["--set", "data.name=file", "--set", "data.format=csv"]
    return {
        "train unknown key": ([*train, "--output", fresh, "--set", "train.learning_rate=0.1"], "train.learning_rate"),
        "train bad --set": ([*train, "--output", fresh, "--set", "train.lr"], "train.lr"),
        "train monitor": ([*train, "--output", fresh, "--set", "train.monitor=FOO"], "train.monitor"),
        "train monitor K": ([*train, "--output", fresh, "--set", "train.monitor=NDCG@7"], "train.monitor"),
        "train device tpu": ([*train, "--output", fresh, "--set", "train.device=tpu"], "train.device"),
        "train device cuda": ([*train, "--output", fresh, "--set", "train.device=cuda:7"], "train.device"),
        "train ks zero": ([*train, "--output", fresh, "--set", "eval.ks=[0]"], "eval.ks"),
        "train ks huge": ([*train, "--output", fresh, "--set", "eval.ks=[5000]"], "eval.ks"),
        "train loss": ([*train, "--output", fresh, "--set", "loss.name=nope"], "loss.name"),
        "train model": ([*train, "--output", fresh, "--set", "model.name=nope"], "model.name"),
        "train heads": ([*train, "--output", fresh, "--set", "model.heads=3"], "model.heads"),
        "train slstm_at": ([*train, "--output", fresh, "--set", "model.name=xlstm", "--set", "model.slstm_at=[9]"],
                           "model.slstm_at"),
        "train batch size": ([*train, "--output", fresh, "--set", "train.batch_size=0"], "train.batch_size"),
        "train dataset": ([*train, "--output", fresh, "--set", "data.name=nope"], "data.name"),
        "train file no path": ([*train, "--output", fresh, "--set", "data.name=file"], "data.path"),
        "train file missing": ([*train, "--output", fresh, *file_data, "--set", f"data.path={files / 'x.csv'}"],
                               "x.csv"),
        "train malformed row": ([*train, "--output", fresh, *file_data, "--set", f"data.path={csv['malformed']}"],
                                "malformed.csv"),
        "train missing column": ([*train, "--output", fresh, *file_data, "--set", f"data.path={csv['missing']}"],
                                 "timestamp"),
        "train empty file": ([*train, "--output", fresh, *file_data, "--set", f"data.path={csv['empty']}"],
                             "empty.csv"),
        "train non-integer id": ([*train, "--output", fresh, "--set", "data.name=file", "--set", "data.format=sasrec",
                                  "--set", f"data.path={csv['nonint']}"], "nonint.txt"),
        "train nan timestamp": ([*train, "--output", fresh, *file_data, "--set", f"data.path={csv['nan_time']}",
                                 "--set", "data.split=global_temporal"], "nantime.csv"),
        "train truncated gzip": ([*train, "--output", fresh, *file_data, "--set", f"data.path={csv['gz']}"],
                                 "cut.csv.gz"),
        "train output is a file": ([*train, "--output", str(out_file)], "not-a-dir"),
        "train output read-only": ([*train, "--output", str(ro / "run")], "readonly"),
        "train finished run": ([*train, "--output", run], "--overwrite"),
        "train resume nothing": (["train", "--resume", str(world / "files"), "--data-dir", d], "files"),
        "train config missing": (["train", "--config", cfg_missing, "--output", fresh], "nope.yaml"),
        "train config yaml": (["train", "--config", str(cfg_bad_yaml), "--output", fresh], "bad.yaml"),
        "train config tag": (["train", "--config", str(cfg_tag), "--output", fresh], "tag.yaml"),
        "evaluate no run": (["evaluate", "--checkpoint", str(world / "nowhere"), "--data-dir", d], "nowhere"),
        "evaluate items garbage": (["evaluate", "--checkpoint", broken["items_garbage"], "--data-dir", d],
                                   "items.json"),
        "evaluate items short": (["evaluate", "--checkpoint", broken["items_short"], "--data-dir", d], "items.json"),
        "evaluate config tag": (["evaluate", "--checkpoint", broken["config_tag"], "--data-dir", d], "config.yaml"),
        "evaluate weights meta": (["evaluate", "--checkpoint", broken["weights_no_meta"], "--data-dir", d],
                                  "model.safetensors"),
        "evaluate weights cut": (["evaluate", "--checkpoint", broken["weights_truncated"], "--data-dir", d],
                                 "model.safetensors"),
        "evaluate bad override": (["evaluate", "--checkpoint", run, "--data-dir", d, "--set", "eval.nope=1"],
                                  "eval.nope"),
        "recommend items short": (["recommend", "--checkpoint", broken["items_short"], "--history", "1"],
                                  "items.json"),
        "recommend unknown item": (["recommend", "--checkpoint", run, "--history", "1,no-such-item"], "no-such-item"),
        "recommend no input": (["recommend", "--checkpoint", run], "--history"),
        "recommend unknown user": (["recommend", "--checkpoint", run, "--users", str(users), "--data-dir", d],
                                   "nobody"),
        "recommend k": (["recommend", "--checkpoint", run, "--history", "1", "--k", "100000"], "k: 100000"),
        "recommend format": (["recommend", "--checkpoint", run, "--history", "1", "--format", "xml"], "--format"),
        "prepare dataset": (["data", "prepare", "--set", "data.name=nope", "--data-dir", d], "data.name"),
        "prepare malformed": (["data", "prepare", *file_data, "--set", f"data.path={csv['malformed']}",
                               "--data-dir", d], "malformed.csv"),
        "prepare split": (["data", "prepare", "--set", "data.split=random", "--data-dir", d], "data.split"),
        "bench grid missing": (["bench", str(files / "nogrid.yaml"), "--output", str(world / "bench")], "nogrid"),
        "bench grid key": (["bench", str(grid_bad), "--output", str(world / "bench")], "nope"),
        "bench output read-only": (["bench", str(ROOT / "configs" / "bench" / "quickstart.yaml"), "--output",
                                    str(ro / "bench")], "readonly"),
        "bench output is a file": (["bench", str(ROOT / "configs" / "bench" / "quickstart.yaml"), "--output",
                                    str(out_file)], "not-a-dir"),
        "report no store": (["report", str(world / "files")], "files"),
        "report missing dir": (["report", str(world / "nowhere")], "nowhere"),
    }


def test_bad_input_table_has_at_least_30_cases(world: Path):
    cases = _cases(world)
    assert len(cases) >= 30
    assert {c[0][0] for c in cases.values()} >= {"train", "evaluate", "recommend", "data", "bench", "report"}


def test_bad_input_is_one_line_exit_2_and_changes_nothing(world: Path):
    cases = _cases(world)
    before = tree_digest(world)
    failures = []
    for name, (args, needle) in cases.items():
        res = runner.invoke(app, args)
        lines = [line for line in res.output.splitlines() if line.strip()]
        ok = (res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
              and "Traceback" not in res.output)
        if not ok:
            failures.append(f"{name}: exit {res.exit_code}, output {res.output!r}, exception {res.exception!r}")
    assert not failures, "\n".join(failures)
    assert tree_digest(world) == before
