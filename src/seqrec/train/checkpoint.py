"""Model checkpoints: safetensors weights + JSON metadata, written atomically, loaded without unpickling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.errors import CheckpointError
from seqrec.io import atomic_write

WEIGHTS = "model.safetensors"


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write ``state_dict`` to ``path`` atomically; ``metadata`` (JSON-able) goes into the safetensors header."""
    # safetensors refuses shared storage (tied tables); clone so each entry owns its memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    meta = {"seqrec": json.dumps(metadata)}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read weights and metadata; a missing, truncated or corrupted file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("seqrec", "{}")
        tensors = load_file(str(path))
        metadata = json.loads(raw)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: corrupted or truncated checkpoint ({err.__class__.__name__})") from None
    return tensors, metadata
