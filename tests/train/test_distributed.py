"""Distributed data parallel: 2 gloo ranks on CPU train like one process and evaluate exactly like one.

Workers are spawned with ``torch.multiprocessing`` and rendezvous through a file in the test's tmp folder (no
port to race for); the CLI test goes through ``seqrec train --devices 2`` and torch's elastic launcher.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console
from train_helpers import tiny_config
from typer.testing import CliRunner

from seqrec import distributed
from seqrec.cli import app
from seqrec.data import prepare_data
from seqrec.eval.ranking import evaluate, model_scorer, shard_rows
from seqrec.models import build_model
from seqrec.train.adapters import apply_adapters
from seqrec.train.resume import LAST, PREV
from seqrec.train.runtime import seed_everything
from seqrec.train.trainer import Trainer

WORLD = 2
# Optimizer steps as lists of global micro-batches (window indices): uneven shares (4 + 3 rows), a batch of one
# row (rank 1 has none and must still join the all-reduce), and two accumulated micro-batches in one step.
STEPS = [[list(range(7))], [[8]], [list(range(10, 15)), list(range(20, 23))]]
MODELS = {
    "sasrec": ["model.name=sasrec"],
    "sasrec-untied": ["model.name=sasrec", "model.tie_weights=false"],  # scoring table used only by the loss
    "gru4rec": ["model.name=gru4rec"],
    "xlstm": ["model.name=xlstm", "model.layers=2"],
    "bert4rec": ["model.name=bert4rec"],  # masks differ per rank: compared across ranks only
    "sasrec-ilora": ["model.name=sasrec", "peft.method=ilora"],  # frozen base, adapters + router trained
}


def _config(name: str):
    return tiny_config(*MODELS[name], "model.dropout=0")


def _train_steps(name: str, data_dir: Path) -> tuple[torch.Tensor, list[float]]:
    """Run ``STEPS`` (sharded when a process group is up) -> (all parameters flattened, per-step losses)."""
    config = _config(name)
    seed_everything(config.train.seed)
    data = prepare_data(config.data, data_dir)
    model = apply_adapters(build_model(config.model, data.num_items, config.data.max_len), config.peft)
    trainer = Trainer(model, data, config, torch.device("cpu"), Console(quiet=True))
    model.train()
    losses = [trainer.train_batches([np.array(b) for b in step])[0] for step in STEPS]
    return torch.cat([p.detach().flatten() for p in model.parameters()]), losses


def _spawned(rank: int, world: int, init_file: str, task: str, data_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        if task == "steps":
            result = {name: _train_steps(name, Path(data_dir)) for name in MODELS}
        else:
            result = _evaluations(Path(data_dir), sharded=True)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(task: str, tmp_path: Path, data_dir: Path) -> list[dict]:
    out = tmp_path / f"out-{task}"
    out.mkdir()
    args = (WORLD, str(tmp_path / f"rendezvous-{task}"), task, str(data_dir), str(out))
    workers = mp.spawn(_spawned, args=args, nprocs=WORLD, join=False)
    deadline = time.monotonic() + 180
    while not workers.join(timeout=1):  # raises if a worker failed
        if time.monotonic() > deadline:  # a collective that never completes: fail instead of hanging the suite
            for proc in workers.processes:
                proc.kill()
            pytest.fail(f"{task}: distributed workers did not finish in 180 s")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_ddp_step_leaves_identical_parameters_equal_to_one_process(tmp_path: Path):
    data_dir = tmp_path / "data"
    prepare_data(_config("sasrec").data, data_dir)  # fill the cache once
    ranks = _spawn("steps", tmp_path, data_dir)
    for name in MODELS:
        (p0, loss0), (p1, loss1) = ranks[0][name], ranks[1][name]
        assert torch.equal(p0, p1), f"{name}: parameters differ across ranks"
        assert loss0 == loss1
        if name == "bert4rec":
            continue
        single, single_loss = _train_steps(name, data_dir)  # no process group: the plain loop
        torch.testing.assert_close(p0, single, rtol=1e-5, atol=1e-6, msg=f"{name}: DDP step != one-process step")
        assert loss0 == pytest.approx(single_loss, rel=1e-5)


def _evaluations(data_dir: Path, sharded: bool) -> dict[str, dict]:
    config = tiny_config()
    seed_everything(0)
    data = prepare_data(config.data, data_dir)
    model = build_model(config.model, data.num_items, config.data.max_len).eval()
    out = {}
    for split, protocol in (("test", "full"), ("valid", "sampled")):
        res = evaluate(
            model_scorer(model), getattr(data, split), data, config.data.max_len, ks=[5, 10], batch_size=16,
            protocol=protocol, num_negatives=30, bootstrap=50, keep_per_user=True, sharded=sharded,
        )
        out[split] = {"metrics": res.metrics, "ci": res.ci, "per_user": res.per_user, "n": res.num_users}
    return out


def test_sharded_evaluation_equals_one_process(tmp_path: Path):
    data_dir = tmp_path / "data"
    single = _evaluations(data_dir, sharded=False)  # also fills the cache
    assert single["test"]["n"] > 3 * 16  # several chunks, so both ranks score users
    for result in _spawn("eval", tmp_path, data_dir):
        for split, ref in single.items():
            got = result[split]
            assert got["n"] == ref["n"]
            assert set(got["per_user"]) == set(ref["per_user"])
            for name, values in ref["per_user"].items():
                np.testing.assert_array_equal(got["per_user"][name], values, err_msg=f"{split} {name}")
            assert got["metrics"] == ref["metrics"] and got["ci"] == ref["ci"]


def test_shard_rows_cover_every_user_once_in_whole_chunks():
    for n, batch, world in [(150, 16, 2), (150, 16, 3), (5, 16, 2), (0, 8, 2), (100, 10, 4)]:
        bounds = [shard_rows(n, batch, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert all(start % batch == 0 for start, _ in bounds)


def test_launch_env_from_torchrun_and_slurm(monkeypatch):
    for key in (*distributed.ENV_KEYS, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_ID"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.launch_env() is None and not distributed.in_launch() and distributed.is_main()
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    env = distributed.launch_env()
    assert env == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(29500 + 345)}
    assert not distributed.is_main()
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h",
                       "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    assert distributed.launch_env() == {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h",
                                        "MASTER_PORT": "1"}  # torchrun's variables win over SLURM's
    assert distributed.is_main()


# ---- through the CLI: seqrec train --devices 2 ------------------------------------------------------------

runner = CliRunner()
CLI = [
    "--set", "data.synthetic.num_users=200", "--set", "data.synthetic.num_items=100", "--set", "train.epochs=2",
    "--set", "train.threads=1", "--set", "model.size=small", "--set", "train.progress=false",
    "--set", "eval.bootstrap=50", "--set", "data.max_len=20",
]
RUN_FILES = {"config.yaml", "history.csv", "history.jsonl", "items.json", "metrics.json", "model.safetensors",
             "item_titles.json", ".lock", LAST, PREV}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(2-process run, 1-process run, data dir) of the same config."""
    root = tmp_path_factory.mktemp("ddp-cli")
    data = root / "data"
    two = runner.invoke(app, ["train", "--devices", "2", "--output", str(root / "two"), "--data-dir", str(data), *CLI])
    assert two.exit_code == 0, two.output
    one = runner.invoke(app, ["train", "--output", str(root / "one"), "--data-dir", str(data), *CLI])
    assert one.exit_code == 0, one.output
    return root / "two", root / "one", data


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_cli_two_processes_write_one_run_close_to_one_process(cli_runs):
    two, one, _ = cli_runs
    assert {p.name for p in two.iterdir()} == RUN_FILES  # nothing stray (no temp files, no per-rank copies)
    history = [json.loads(line) for line in (two / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]  # each epoch logged once, by rank 0 only
    assert all(h["world_size"] == 2 for h in history)
    assert len((two / "history.csv").read_text().splitlines()) == 3
    m2, m1 = _metrics(two), _metrics(one)
    assert m2["environment"]["world_size"] == 2 and m1["environment"]["world_size"] == 1
    for split in ("valid", "test"):
        for name, value in m2[split].items():
            assert math.isfinite(value)
            assert value == pytest.approx(m1[split][name], abs=0.05), f"{split} {name}"
    assert m2["train_loss"] == pytest.approx(m1["train_loss"], rel=0.01)


@pytest.mark.parametrize("bad", [["--set", "train.learning_rate=0.1"], ["--dry-run"]])
def test_cli_devices_bad_input_is_one_line_error_before_launching(bad: list[str], tmp_path: Path):
    res = runner.invoke(app, ["train", "--devices", "2", "--output", str(tmp_path / "run"),
                              "--data-dir", str(tmp_path / "data"), *CLI, *bad])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_two_process_resume_matches_uninterrupted(cli_runs, tmp_path: Path):
    two, _, data = cli_runs
    resumed = tmp_path / "run"
    resumed.mkdir()
    shutil.copytree(two / PREV, resumed / LAST)  # state after epoch 1
    res = runner.invoke(app, ["train", "--devices", "2", "--resume", str(resumed), "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    ma, mb = _metrics(two), _metrics(resumed)
    assert ma["test"] == mb["test"] and ma["valid"] == mb["valid"] and ma["test_ci95"] == mb["test_ci95"]
    assert (two / "model.safetensors").read_bytes() == (resumed / "model.safetensors").read_bytes()
