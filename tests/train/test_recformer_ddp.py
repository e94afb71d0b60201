"""Recformer under data parallel (2 gloo ranks on CPU): the frozen MLM head and the frozen item matrix leave
every gradient DDP waits for reachable, and sharded steps equal one process's steps; a variant that trains the
item matrix is refused with a one-line error."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from recformer_helpers import rf_config
from rich.console import Console

from seqrec.data import prepare_data
from seqrec.errors import ConfigError
from seqrec.models import build_model
from seqrec.train.runtime import seed_everything
from seqrec.train.text_setup import prepare_for_training
from seqrec.train.text_stages import TextStages
from seqrec.train.trainer import Trainer

STEPS = [[list(range(7))], [[8]], [list(range(10, 15)), list(range(20, 23))]]  # uneven shares, 1 row, 2 micro


def _config():
    return rf_config("model.dropout=0", "model.attention_dropout=0")


def _steps(data_dir: Path) -> tuple[torch.Tensor, list[float]]:
    config = _config()
    seed_everything(config.train.seed)
    data = prepare_data(config.data, data_dir)
    model = build_model(config.model, data.num_items, config.data.max_len)
    prepare_for_training(model, config, data)
    trainer = Trainer(model, data, config, torch.device("cpu"), Console(quiet=True))
    model.refresh_item_matrix()
    model.train()
    losses = [trainer.train_batches([np.array(b) for b in step])[0] for step in STEPS]
    return torch.cat([p.detach().flatten() for p in model.parameters()]), losses


def _worker(rank: int, world: int, init_file: str, data_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = {"steps": _steps(Path(data_dir))}
        try:
            trained_matrix = rf_config("model.item_matrix=original")  # stage 2 trains I
            TextStages(build_model(trained_matrix.model, 10, 6), trained_matrix)
            result["refused"] = ""
        except ConfigError as err:
            result["refused"] = str(err)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_steps_equal_one_process_and_trained_item_matrix_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    single, single_loss = _steps(data_dir)  # also fills the caches
    out = tmp_path / "out"
    out.mkdir()
    workers = mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(data_dir), str(out)), nprocs=2,
                       join=False)
    deadline = time.monotonic() + 240
    while not workers.join(timeout=1):
        if time.monotonic() > deadline:
            for proc in workers.processes:
                proc.kill()
            pytest.fail("distributed Recformer workers did not finish in 240 s")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    (p0, loss0), (p1, loss1) = ranks[0]["steps"], ranks[1]["steps"]
    assert torch.equal(p0, p1) and loss0 == loss1
    # Float summation order differs between the all-reduced and the single-process gradient; AdamW's g / sqrt(v)
    # turns that into update differences only where a gradient is ~0. A wrong shard weighting would move most
    # parameters by ~lr (3e-3): allow 0.1% of them to differ by at most 1e-4.
    diff = (p0 - single).abs()
    assert diff.max() < 1e-4 and (diff > 1e-6).float().mean() < 1e-3
    assert loss0 == pytest.approx(single_loss, rel=1e-5)
    assert all("one process" in r["refused"] for r in ranks), [r["refused"] for r in ranks]
