"""Training history and experiment trackers.

``history.csv`` (one row per epoch, nested validation metrics flattened to ``valid/<metric>``) is always
written next to ``history.jsonl``. ``train.tracker`` additionally sends per-step and per-epoch scalars to one of
TensorBoard (event files under ``<run>/tensorboard``), Weights & Biases (offline mode unless ``WANDB_MODE`` is set,
files under ``<run>/wandb``) or MLflow (file store ``<run>/mlruns`` unless ``MLFLOW_TRACKING_URI`` is set,
e.g. ``sqlite:///mlflow.db``). The backends are optional extras (``pip install seqrec[track]``).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Protocol

from seqrec.config import Config, config_to_dict
from seqrec.errors import ConfigError
from seqrec.io import atomic_write_text


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """``{"valid": {"NDCG@10": x}}`` -> ``{"valid/NDCG@10": x}``."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update({f"{k}/{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


class HistoryWriter:
    """Rewrites ``path`` atomically after each epoch with every record so far (columns: union of keys)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        self.rows.append(flatten_record(record))
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    def __init__(self, log_dir: Path, config: Config) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.writer.add_text("config", f"```\n{config_to_dict(config)}\n```")

    def log(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, float(v), global_step=step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, run_dir: Path, config: Config) -> None:
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project="seqrec", dir=str(run_dir), config=config_to_dict(config), reinit=True)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, run_dir: Path, config: Config) -> None:
        import mlflow

        self.mlflow = mlflow
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # MLflow 3 keeps the file store behind an opt-in; it needs no database package
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (run_dir / "mlruns").resolve().as_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("seqrec")
        self.run = mlflow.start_run()
        flat = flatten_record({k: v for k, v in config_to_dict(config).items() if isinstance(v, dict)})
        mlflow.log_params({k: str(v)[:250] for k, v in flat.items() if not isinstance(v, dict)})

    def log(self, metrics: dict[str, float], step: int) -> None:
        clean = {k.replace("@", "_at_"): float(v) for k, v in metrics.items()}  # MLflow forbids '@' in keys
        self.mlflow.log_metrics(clean, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


TRACKERS: dict[str, Any] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def make_tracker(config: Config, run_dir: str | Path) -> Tracker | None:
    """The tracker named by ``train.tracker`` (None for ``none``); a missing package is a one-line ConfigError."""
    name = config.train.tracker
    if name == "none":
        return None
    run_dir = Path(run_dir)
    try:
        if name == "tensorboard":
            return TensorBoardTracker(run_dir / "tensorboard", config)
        return TRACKERS[name](run_dir, config)
    except ImportError:
        raise ConfigError(
            f"train.tracker={name}: package '{PACKAGES[name]}' is not installed (pip install 'seqrec[track]')"
        ) from None
