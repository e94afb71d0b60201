"""Model registry: one explicit dict from name to model class.

Each model class carries ``Config`` (its config dataclass) and ``PRESETS`` (size name -> field overrides).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter, ValidationError

from seqrec.errors import ConfigError
from seqrec.models.base import SequenceModel
from seqrec.models.bert4rec import BERT4Rec
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.recformer import Recformer
from seqrec.models.sasrec import SASRec
from seqrec.models.xlstm import XLSTM

MODELS: dict[str, type[SequenceModel]] = {
    "sasrec": SASRec,
    "bert4rec": BERT4Rec,
    "gru4rec": GRU4Rec,
    "xlstm": XLSTM,
    "recformer": Recformer,  # text-based: needs item text (seqrec.train.text_setup), model.size tiny|mini|minilm|base
}


def model_config_from_section(section: Any) -> Any:
    """Build the model's config dataclass from a ``model`` config section (name, size, field overrides)."""
    raw = section.model_dump() if hasattr(section, "model_dump") else dict(section)
    name = raw.pop("name", "sasrec")
    size = raw.pop("size", "small")
    if name not in MODELS:
        raise ConfigError(f"config key 'model.name': unknown model {name!r} (allowed: {', '.join(MODELS)})")
    cls = MODELS[name]
    if size not in cls.PRESETS:
        raise ConfigError(
            f"config key 'model.size': unknown size {size!r} for {name} (allowed: {', '.join(cls.PRESETS)})"
        )
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"unknown config key 'model.{key}' for {name} (allowed: {', '.join(sorted(fields))})")
    values = {**cls.PRESETS[size], **raw}
    try:
        config = TypeAdapter(cls.Config).validate_python(values)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config key 'model.{key}': {first['msg']} (got {first.get('input')!r})") from None
    check = getattr(config, "check", None)
    if check is not None:  # cross-field constraints (hidden divisible by heads, ...): ConfigError at config time
        check()
    return config


def build_model(section: Any, num_items: int, max_len: int) -> SequenceModel:
    """Instantiate the model named by a ``model`` config section for a catalogue of ``num_items`` items."""
    config = model_config_from_section(section)
    name = section.name if hasattr(section, "name") else section["name"]
    return MODELS[name](config, num_items=num_items, max_len=max_len)
