"""``seqrec train --init-from RUN_DIR`` / ``Recommender.fit(init_from=...)``: start from a finished run's weights.

Rules (each violation is a one-line error naming the run directory):

- same model family: ``model.name`` of this config and of the run's ``config.yaml`` agree;
- every tensor of the new (not yet adapted) model exists in the run with the same shape (same ``model.*`` sizes
  and ``data.max_len``), except the item tables below when the catalogue differs;
- catalogue: when the run's ``items.json`` equals this dataset's item ids, every tensor loads as it is. Otherwise
  the item tables (:data:`ITEM_TABLES`) are mapped row by row by original item id: an item in both catalogues
  gets its trained row, an item only in this one keeps its fresh initialisation, an item only in the run is
  dropped; the padding row and rows after the items (BERT4Rec's [MASK]) are copied. One line says how many of
  each and which (the first ids; metrics.json's ``init_from`` lists up to 1,000);
- a run trained with LoRA is merged into its base weights first (:func:`~seqrec.train.adapters.merge_and_unload`);
  an iLoRA run cannot be merged and is refused.

The new run's own adapters (``peft``) are applied after this, on top of the loaded weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from seqrec.config import Config
from seqrec.errors import CheckpointError, ConfigError
from seqrec.models import build_model
from seqrec.train.adapters import apply_adapters, merge_and_unload
from seqrec.train.rundir import read_config, read_run

# Tensors whose rows are items (row 0 = padding, rows 1..V the items, any later rows special), per model family.
ITEM_TABLES: dict[str, tuple[str, ...]] = {
    "sasrec": ("item_emb.weight", "out_emb.weight"),
    "bert4rec": ("item_emb.weight",),  # row V + 1 is [MASK]
    "gru4rec": ("item_emb.weight",),
    "xlstm": ("item_emb.weight",),
    "recformer": ("item_matrix",),  # the text encoder's item matrix (refreshed from the item texts anyway)
}
LISTED = 1000  # ids of new / dropped items kept in metrics.json


def check_init_run(run_dir: str | Path, config: Config) -> None:
    """Cheap check before any data work: ``run_dir`` is a run directory of the same model family."""
    run_config = read_config(run_dir)
    if run_config.model.name != config.model.name:
        raise ConfigError(f"--init-from {run_dir}: a {run_config.model.name} run, but this config trains "
                          f"{config.model.name} (the same model family is needed)")
    if run_config.peft.method == "ilora":
        raise ConfigError(f"--init-from {run_dir}: an iLoRA run (instance-wise adapters cannot be merged into base "
                          f"weights); start from its base run instead")


def _run_base_tensors(run: dict[str, Any], run_dir: Path) -> dict[str, torch.Tensor]:
    """The run's weights as a plain model's state dict (a LoRA run merged)."""
    cfg, meta = run["config"], run["meta"]
    if cfg.peft.method == "none":
        return run["tensors"]
    model = apply_adapters(build_model(cfg.model, int(meta["num_items"]), int(meta["max_len"])), cfg.peft)
    try:
        model.load_state_dict(run["tensors"], strict=True)
    except RuntimeError:
        raise CheckpointError(f"{run_dir / 'model.safetensors'}: weights do not match the adapted model of its "
                              f"config.yaml") from None
    return merge_and_unload(model).state_dict()


def map_item_rows(
    fresh: torch.Tensor, trained: torch.Tensor, new_ids: list[str], old_ids: list[str]
) -> tuple[torch.Tensor, list[int]]:
    """``fresh`` (V_new + 1 + e, ...) with the rows of items also in ``old_ids`` taken from ``trained``
    (V_old + 1 + e, ...), padding and the ``e`` extra rows copied; returns it and the new rows kept fresh."""
    extra_new, extra_old = fresh.shape[0] - len(new_ids), trained.shape[0] - len(old_ids)
    if extra_new != extra_old or fresh.shape[1:] != trained.shape[1:]:
        raise ValueError(f"item table {tuple(trained.shape)} cannot map onto {tuple(fresh.shape)}")
    where = {item: i for i, item in enumerate(old_ids) if i > 0}
    pairs = [(j, where[item]) for j, item in enumerate(new_ids) if j > 0 and item in where]
    out = fresh.clone()
    out[0] = trained[0]
    if pairs:
        dst, src = (torch.tensor(x, dtype=torch.long) for x in zip(*pairs, strict=True))
        out[dst] = trained[src].to(out.dtype)
    if extra_new:
        out[len(new_ids):] = trained[len(old_ids):].to(out.dtype)
    mapped = {j for j, _ in pairs}
    return out, [j for j in range(1, len(new_ids)) if j not in mapped]


def _sample(ids: list[str], n: int = 8) -> str:
    shown = ", ".join(ids[:n])
    return shown + (f", ... +{len(ids) - n} more" if len(ids) > n else "")


def load_init(
    model: torch.nn.Module, config: Config, item_ids: list[str], run_dir: str | Path, console: Console
) -> dict[str, Any]:
    """Load ``run_dir``'s weights into ``model`` (new, not adapted) by the rules above; returns the report."""
    run_dir = Path(run_dir)
    check_init_run(run_dir, config)
    run = read_run(run_dir)
    tensors = _run_base_tensors(run, run_dir)
    old_ids, new_ids = [str(x) for x in run["item_ids"]], [str(x) for x in item_ids]
    same = old_ids == new_ids
    tables = [k for k in ITEM_TABLES.get(config.model.name, ()) if k in tensors]
    state = model.state_dict()
    missing = sorted(set(state) - set(tensors))
    unexpected = sorted(set(tensors) - set(state))
    if missing or unexpected:
        raise CheckpointError(f"--init-from {run_dir}: the run's tensors differ from this model's (missing "
                              f"{missing[:3]}, unexpected {unexpected[:3]}): same model options needed")
    loaded: dict[str, torch.Tensor] = {}
    fresh_rows: list[int] = []
    for key, value in state.items():
        source = tensors[key]
        if key in tables and not same:
            try:
                loaded[key], fresh_rows = map_item_rows(value, source, new_ids, old_ids)
            except ValueError as err:
                raise CheckpointError(f"--init-from {run_dir}: {key}: {err}") from None
            continue
        if source.shape != value.shape:
            raise CheckpointError(f"--init-from {run_dir}: {key} is {tuple(source.shape)} in the run, "
                                  f"{tuple(value.shape)} here (same model sizes and data.max_len needed)")
        loaded[key] = source.to(value.dtype)
    model.load_state_dict(loaded, strict=True)
    report: dict[str, Any] = {"run": str(run_dir), "catalogue": "same" if same else "mapped",
                              "items": len(new_ids) - 1, "run_items": len(old_ids) - 1}
    if same:
        console.print(f"init from {run_dir}: all {len(loaded)} tensors loaded (same {len(new_ids) - 1:,} items)",
                      highlight=False)
        return report
    new_items = [new_ids[j] for j in fresh_rows]
    dropped = sorted(set(old_ids[1:]) - set(new_ids[1:]))
    report.update(tables=tables, mapped=len(new_ids) - 1 - len(new_items), reinitialised=len(new_items),
                  dropped=len(dropped), reinitialised_ids=new_items[:LISTED], dropped_ids=dropped[:LISTED])
    console.print(
        f"init from {run_dir}: different catalogue; rows of {', '.join(tables)} mapped by original item id: "
        f"{report['mapped']:,} of {len(new_ids) - 1:,} items from the run, {len(new_items):,} new ones re-initialised"
        + (f" ({_sample(new_items)})" if new_items else "")
        + (f", {len(dropped):,} of the run's items not in this catalogue dropped ({_sample(dropped)})"
           if dropped else ""),
        highlight=False, soft_wrap=True,
    )
    return report
