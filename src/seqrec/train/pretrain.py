"""Recformer pre-training (``seqrec pretrain --config ...``): MLM + item-item contrastive on a text corpus.

The config is an ordinary run config plus a ``pretrain`` section::

    data: {max_len: 50}                      # preprocessing of every corpus part; data.name = the target domain
    model: {name: recformer, size: mini}
    train: {epochs: 5, lr: 5.0e-5, batch_size: 16}
    pretrain:
      datasets: [ml-1m, amazon-office-2014, amazon-Magazine_Subscriptions]   # names, or data sections
      shared_pass: false                     # true: the IIC sequence state from the masked pass (one pass fewer)

The corpus is the listed datasets side by side (:func:`seqrec.data.corpus.concat_prepared`), each prepared and
split as ``data`` says (a dict entry overrides ``data`` keys for that part); a part equal to the target domain
(``data.name``; for synthetic data the same seed and generator) is refused, so a zero-shot figure is honest.
Training examples are every (history, next item) of the parts' training sequences (one window per target), the
loss per batch is ``L = L_IIC + model.mlm_weight * L_MLM`` (:func:`seqrec.losses.contrastive.pretrain_losses`:
in-batch negatives, whole-word MLM 15% with 80/10/10). The loop is the training loop (:mod:`seqrec.train.loop`):
same progress, history, ``last/`` checkpoints, ``--resume`` and early stopping, here on the corpus' validation
NDCG@10 (items re-encoded before each validation). The run directory is a normal one (``config.yaml``,
``model.safetensors``, ``items.json`` = the corpus' items, ``metrics.json``) plus ``pretrain.yaml``, so:

- ``seqrec evaluate --checkpoint RUN --set data.name=X`` scores an unseen dataset zero-shot (its items encoded
  from their text, see :func:`seqrec.train.text_setup.for_catalogue`);
- ``seqrec train --config FT.yaml --set model.init_from=RUN`` fine-tunes from it (all weights but the item
  matrix, which is derived; the MLM head is kept in the file and frozen in fine-tuning).

One process only (no ``--devices``; DDP would need the pre-training loss inside the wrapped forward).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

from seqrec import distributed
from seqrec.config import Config, DataConfig, build_config, parse_override, read_config_tree
from seqrec.data import prepare_data
from seqrec.data.attributes import item_attributes
from seqrec.data.corpus import concat_prepared
from seqrec.data.sequences import PreparedData
from seqrec.data.text import (
    ItemTokens,
    concat_item_tokens,
    continuation_flags,
    load_tokenizer,
    pretrain_batch,
    text_collator,
)
from seqrec.errors import CheckpointError, ConfigError
from seqrec.io import atomic_write_text
from seqrec.losses.contrastive import pretrain_losses
from seqrec.models import build_model, model_config_from_section
from seqrec.models.base import SequenceModel
from seqrec.train.callbacks import Callback, ConsoleLog, HistoryFiles
from seqrec.train.loop import fit
from seqrec.train.resume import restore_trainer, resume_config
from seqrec.train.run import evaluate_split, metrics_block
from seqrec.train.rundir import RunLock, write_run
from seqrec.train.runtime import environment, setup_process
from seqrec.train.text_setup import attribute_tokens, is_text_model
from seqrec.train.trainer import Trainer
from seqrec.version import __version__

PRETRAIN_FILE = "pretrain.yaml"
_SAME_DATA_IGNORED = {"max_len", "cache", "download"}


class PretrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    datasets: list[str | dict[str, Any]] = Field(min_length=1)  # corpus parts: dataset names or data sections
    shared_pass: bool = False  # IIC sequence state from the MLM-masked pass (saves one encoder pass)


def pretrain_section(section: dict, where: str) -> PretrainConfig:
    try:
        return PretrainConfig.model_validate(section)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "datasets"
        raise ConfigError(f"{where}: config key 'pretrain.{key}': {first['msg']}") from None


def check_text_model(config: Config, where: str) -> None:
    if config.model.name != "recformer":
        raise ConfigError(f"{where}: seqrec pretrain trains text models (model.name: recformer), got "
                          f"{config.model.name!r}")


def split_config(tree: dict, overrides: list[str] | None, where: str) -> tuple[Config, PretrainConfig]:
    """A config tree with a ``pretrain`` section (+ ``--set`` overrides, ``pretrain.*`` ones included)."""
    tree = dict(tree)
    section = dict(tree.pop("pretrain", None) or {})
    rest = []
    for text in overrides or []:
        path, value = parse_override(text)
        if path[0] == "pretrain":
            if len(path) != 2:
                raise ConfigError(f"--set {text}: expected pretrain.<key>=value")
            section[path[1]] = value
        else:
            rest.append(text)
    try:
        config = build_config(tree, rest)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    pre = pretrain_section(section, where)
    check_text_model(config, where)
    return config, pre


def load_pretrain_config(path: str | Path, overrides: list[str] | None = None) -> tuple[Config, PretrainConfig]:
    return split_config(read_config_tree(path), overrides, str(path))


def part_config(base: DataConfig, entry: str | dict[str, Any], index: int) -> DataConfig:
    """The data config of corpus part ``index``: ``base`` with the entry's name (or keys) on top."""
    tree = base.model_dump(mode="json")
    tree.update({"name": entry, "path": None} if isinstance(entry, str) else entry)
    try:
        return build_config({"data": tree}).data
    except ConfigError as err:
        raise ConfigError(f"config key 'pretrain.datasets[{index}]': {err}") from None


def same_domain(a: DataConfig, b: DataConfig) -> bool:
    """Whether two data configs describe the same domain (named datasets: the name; synthetic: the generator
    and seed; files: the path)."""
    if a.name != b.name:
        return False
    if a.name == "synthetic":
        return a.seed == b.seed and a.synthetic == b.synthetic
    if a.name == "file":
        return Path(a.path or "").resolve() == Path(b.path or "").resolve()
    return True


def build_corpus(config: Config, pre: PretrainConfig, data_dir: str | Path | None) -> tuple[PreparedData, ItemTokens]:
    parts, tokens, labels = [], [], []
    model_cfg = model_config_from_section(config.model)  # the text caps
    for i, entry in enumerate(pre.datasets):
        cfg = part_config(config.data, entry, i)
        if same_domain(cfg, config.data):
            raise ConfigError(f"config key 'pretrain.datasets[{i}]': {cfg.name} is the target domain (data.name); "
                              f"pre-training never sees it, so zero-shot results stay honest")
        data = prepare_data(cfg, data_dir)
        tokens.append(attribute_tokens(item_attributes(data), model_cfg, f"pretrain.datasets[{i}] ({cfg.name})"))
        label = cfg.name if cfg.name not in [p.split("#")[0] for p in labels] else f"{cfg.name}#{i}"
        parts.append(data)
        labels.append(label)
    return concat_prepared(parts, labels), concat_item_tokens(tokens)


class PretrainTrainer(Trainer):
    """The shared Trainer with Recformer's pre-training loss in place of the next-item softmax."""

    def __init__(self, model: SequenceModel, data: PreparedData, config: Config, device: torch.device,
                 items: ItemTokens, shared_pass: bool, console: Console | None = None) -> None:
        super().__init__(model, data, config, device, console)
        self.items, self.shared_pass = items, shared_pass
        self.continuation = torch.from_numpy(continuation_flags(load_tokenizer()))
        self.parts = {"iic": 0.0, "mlm": 0.0, "n": 0}

    def forward_backward(self, window: torch.Tensor, divide: int = 1, weight: float = 1.0) -> torch.Tensor:
        """One micro-batch of (history, next item) pairs: L_IIC + lambda L_MLM, gradients accumulated."""
        model, mc = self.model, self.model.config  # type: ignore[attr-defined]
        inputs, targets = model.training_example(window, self.gen)  # (B, T), (B, 1): every window has a history
        batch = pretrain_batch(inputs, targets[:, 0], self.items, self.continuation,
                               max_items=model.text.max_items, max_tokens=mc.max_tokens,  # type: ignore[attr-defined]
                               probability=mc.mlm_probability, vocab_size=mc.vocab_size, cls_id=mc.cls_token_id,
                               mask_id=mc.mask_token_id, generator=self.gen).to(self.device)
        with self.autocast():
            losses = pretrain_losses(model, batch, shared_pass=self.shared_pass)  # type: ignore[arg-type]
        loss = losses["loss"]
        self.scaled_loss(loss, divide, weight).backward()
        self.parts["iic"] += float(losses["iic"])
        self.parts["mlm"] += float(losses["mlm"])
        self.parts["n"] += 1
        return loss.detach()


class PretrainSteps(Callback):
    """Every rank: I encoded before each validation (the corpus' NDCG@10 is the early-stopping signal); the
    epoch's record gets the mean IIC and MLM losses."""

    every_rank = True

    def on_validation_start(self, trainer: Trainer, record: dict[str, Any]) -> None:
        trainer.model.refresh_item_matrix()  # type: ignore[operator]

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        parts = trainer.parts  # type: ignore[attr-defined]
        n = max(parts["n"], 1)
        record["iic_loss"], record["mlm_loss"] = parts["iic"] / n, parts["mlm"] / n
        parts.update(iic=0.0, mlm=0.0, n=0)


def pretrain_model(
    config: Config, pre: PretrainConfig, corpus: PreparedData, items: ItemTokens, device: torch.device, *,
    output_dir: Path | None, console: Console, resume: bool = False, callbacks: Sequence[Callback] = (),
) -> tuple[SequenceModel, dict[str, Any], dict[str, Any]]:
    """Build the model for ``corpus``, train it with the pre-training loss -> (model, metrics, meta)."""
    t0 = time.perf_counter()
    model = build_model(config.model, corpus.num_items, config.data.max_len)
    if not is_text_model(model):  # pragma: no cover - split_config admits recformer only
        raise ConfigError("seqrec pretrain: model.name must be a text model")
    model.attach_text(text_collator(model.config, items, config.data.max_len))  # type: ignore[operator]
    console.print(f"[bold]pretrain {config.model.name}[/] on {corpus.name}: {corpus.num_users} users, "
                  f"{corpus.num_items} items, {model.num_parameters():,} params, device {device}")
    trainer = PretrainTrainer(model, corpus, config, device, items, pre.shared_pass, console)
    if resume:
        restore_trainer(trainer, output_dir, console)
    hooks: list[Callback] = [PretrainSteps(), ConsoleLog()]
    if output_dir is not None:
        hooks.append(HistoryFiles(output_dir))
    hooks.extend(callbacks)
    ckpt = output_dir if output_dir is not None and (config.train.checkpoint_every or resume) else None
    result = fit(trainer, hooks, checkpoint_dir=ckpt)
    valid = evaluate_split(model, corpus, config, "valid", device)
    test = evaluate_split(model, corpus, config, "test", device)
    metrics = {**metrics_block(valid, test), "model": config.model.name, "pretrain": True,
               "corpus": corpus.stats["parts"], "epochs_trained": result.epochs_trained,
               "best_epoch": result.best_epoch, "train_time_s": result.train_time_s,
               "params": model.num_parameters(), "total_time_s": time.perf_counter() - t0,
               "environment": environment()}
    meta = {"model": config.model.name, "num_items": corpus.num_items, "max_len": config.data.max_len,
            "params": model.num_parameters(), "seqrec": __version__, "pretrained_on": corpus.name}
    return model, metrics, meta


def pretrain_run(
    config_path: str | Path | None, output: Path, *, overrides: list[str] | None = None,
    data_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
    console: Console | None = None, callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """``seqrec pretrain``: the run directory ``output`` (locked while training), resumable; returns metrics."""
    console = console if console is not None else Console(quiet=True)
    if resume:
        spec = output / PRETRAIN_FILE
        if not spec.is_file():
            raise CheckpointError(f"{spec}: not found (is {output} a seqrec pretrain run?)")
        config = resume_config(output, [o for o in overrides or [] if not o.startswith("pretrain.")])
        check_text_model(config, str(output))
        pre = pretrain_section(read_config_tree(spec, CheckpointError), str(spec))
    elif config_path is None:
        raise ConfigError("seqrec pretrain: --config is required (it lists pretrain.datasets)")
    else:
        config, pre = load_pretrain_config(config_path, overrides)
    if distributed.world_size() > 1:
        raise ConfigError("seqrec pretrain: runs in one process (no --devices / torchrun)")
    with RunLock(output, resume=resume, overwrite=overwrite) as lock:
        device = setup_process(config.train.threads, config.train.seed, config.train.device)
        corpus, items = build_corpus(config, pre, data_dir)  # bad corpus entries fail before anything is written
        lock.clear()
        atomic_write_text(output / PRETRAIN_FILE, yaml.safe_dump(pre.model_dump(mode="json"), sort_keys=False))
        model, metrics, meta = pretrain_model(config, pre, corpus, items, device, output_dir=output,
                                              console=console, resume=resume, callbacks=callbacks)
        write_run(output, model=model, config=config, item_ids=[str(x) for x in corpus.item_ids], item_titles=None,
                  meta=meta, metrics=metrics)
    return metrics
