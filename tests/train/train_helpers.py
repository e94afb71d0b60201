"""Shared helpers of the training tests: a tiny synthetic config (seconds to train on one thread)."""

from __future__ import annotations

from seqrec.config import Config, build_config

TINY = [
    "data.synthetic.num_users=150", "data.synthetic.num_items=60", "data.synthetic.mean_length=12",
    "data.max_len=10", "train.epochs=3", "train.progress=false", "eval.bootstrap=20", "model.hidden=16",
    "train.threads=1", "train.patience=10",
]


def tiny_config(*extra: str) -> Config:
    return build_config({}, [*TINY, *extra])


def train_run(config: Config, output, *, data_dir=None, resume: bool = False, console=None) -> dict:
    """Train ``config`` into the run directory ``output`` through the public API; returns metrics.json's dict."""
    from seqrec.api import Recommender

    return Recommender(config).fit(output_dir=output, data_dir=data_dir, resume=resume, console=console).metrics
