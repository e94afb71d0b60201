"""Text-based models (Recformer) in the shared pipeline: item text from the dataset, pre-trained weights, and a
trained model moved to another catalogue (zero-shot). ID models pass through every function untouched.

A text model is one with ``attach_text`` (:class:`~seqrec.models.recformer.Recformer`). Its catalogue's text
is ``item_attributes(data)`` tokenized once and cached as CSR arrays under the data cache root
(``$SEQREC_CACHE_DIR``, :func:`seqrec.data.text.item_tokens`); it is never saved with the weights, so a loaded
model gets it again from its dataset. Tensors a model lists in ``derived_tensors`` (Recformer's item matrix I)
are computed from the weights and the text, so they are never transferred between catalogues: a pre-trained or
fine-tuned model meets a new catalogue by encoding it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.config import Config
from seqrec.data.attributes import item_attributes
from seqrec.data.prepare import resolve_cache_root
from seqrec.data.sequences import PreparedData
from seqrec.data.text import ItemTokens, TextCaps, item_tokens, text_collator
from seqrec.errors import CheckpointError, ConfigError
from seqrec.models import build_model
from seqrec.models.base import SequenceModel
from seqrec.train.checkpoint import WEIGHTS, load_weights


def is_text_model(model: Any) -> bool:
    return callable(getattr(model, "attach_text", None))


def attribute_tokens(attributes: list[list[tuple[str, str]]], model_config: Any, where: str) -> ItemTokens:
    """Token ids of ``attributes`` (one list of (key, value) pairs per dense item), cached; ConfigError if no item
    has any text (``where`` names the dataset)."""
    if not any(attributes[1:]):
        raise ConfigError(f"model.name=recformer reads item text, but {where} has no item attributes (no title, "
                          f"category, ... columns); use a dataset with item text or an ID model")
    caps = TextCaps(model_config.max_attr_num, model_config.max_attr_length)
    return item_tokens(attributes, resolve_cache_root(), caps)


def catalogue_tokens(data: PreparedData, model_config: Any) -> ItemTokens:
    return attribute_tokens(item_attributes(data), model_config, f"dataset {data.name}")


def attach_item_text(model: SequenceModel, config: Config, data: PreparedData) -> None:
    """Give a text model ``data``'s item text (no-op for ID models)."""
    if is_text_model(model):
        tokens = catalogue_tokens(data, model.config)
        model.attach_text(text_collator(model.config, tokens, config.data.max_len))  # type: ignore[operator]


def transferable(model: SequenceModel, tensors: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """``tensors`` minus the model's derived ones, checked against its own (a one-line ConfigError otherwise)."""
    derived = set(getattr(model, "derived_tensors", ()))
    own = model.state_dict()
    out = {k: v for k, v in tensors.items() if k not in derived}
    unexpected = [k for k in out if k not in own]
    missing = [k for k in own if k not in out and k not in derived]
    if unexpected or missing:
        name = (unexpected or missing)[0]
        raise ConfigError(f"{where}: weights do not fit this model ({'unexpected' if unexpected else 'missing'} "
                          f"tensor {name!r}; is it the same model and size?)")
    for k, v in out.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ConfigError(f"{where}: tensor {k!r} has shape {tuple(v.shape)}, this model needs "
                              f"{tuple(own[k].shape)} (same model.size and sizes as the pre-trained run?)")
    return out


def load_init_weights(model: SequenceModel, run_dir: str | Path) -> dict[str, Any]:
    """``model.init_from``: copy a run directory's weights (``seqrec pretrain`` or ``seqrec train``) into
    ``model``, all but its derived tensors; returns the run's weight metadata."""
    path = Path(run_dir)
    file = path / WEIGHTS if path.is_dir() else path
    where = f"config key 'model.init_from': {file}"
    if not file.is_file():
        raise ConfigError(f"{where}: not found (expected a run directory written by seqrec pretrain or train)")
    try:
        tensors, meta = load_weights(file)
    except CheckpointError as err:
        raise ConfigError(f"config key 'model.init_from': {err}") from None
    kind = meta.get("model") if isinstance(meta, dict) else None
    if kind is not None and kind != type(model).__name__.lower():
        raise ConfigError(f"{where}: weights of model {kind!r}, not {type(model).__name__.lower()!r}")
    model.load_state_dict(transferable(model, tensors, where), strict=False)
    return meta if isinstance(meta, dict) else {}


def prepare_for_training(model: SequenceModel, config: Config, data: PreparedData) -> None:
    """Before a Trainer is built: a text model gets its item text, ``model.init_from`` weights and a frozen
    pre-training head (fine-tuning never reads it). ID models: nothing."""
    if not is_text_model(model):
        return
    init_from = getattr(model.config, "init_from", None)
    if init_from:
        load_init_weights(model, init_from)
    attach_item_text(model, config, data)
    model.freeze_pretraining_head()  # type: ignore[operator]


def same_catalogue(data: PreparedData, item_ids: list[str] | None) -> bool:
    return item_ids is not None and len(item_ids) == data.num_items + 1 and bool(
        np.array_equal(np.asarray(data.item_ids, dtype=str)[1:], np.asarray(item_ids[1:], dtype=str)))


def for_catalogue(
    model: SequenceModel, config: Config, data: PreparedData, item_ids: list[str] | None,
    device: torch.device | str | None = None,
) -> tuple[SequenceModel, bool]:
    """A text model ready to score ``data``'s catalogue -> (model, whether it is a new one).

    The catalogue it was trained on: the same model with its item text attached (its item matrix, possibly
    trained in stage 2, is kept). Another one (zero-shot, a new domain): a new model of the same config for
    ``data.num_items`` items with all but the derived weights, the new text, and I encoded from it.
    """
    if same_catalogue(data, item_ids):
        if getattr(model, "text", None) is None:
            attach_item_text(model, config, data)
        return model, False
    fresh = build_model(config.model, data.num_items, model.max_len)
    fresh.load_state_dict(transferable(fresh, model.state_dict(), f"model for {data.name}"), strict=False)
    if device is not None:
        fresh.to(device)
    attach_item_text(fresh, config, data)
    fresh.refresh_item_matrix()  # type: ignore[operator]
    fresh.eval()
    return fresh, True
