"""Shared helpers for the model tests: small random left-padded batches and tiny model builders.

Imported as ``model_helpers`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import torch

from seqrec.models import build_model
from seqrec.models.base import SequenceModel

NUM_ITEMS = 50
MAX_LEN = 12


def make_batch(batch: int, length: int, num_items: int = NUM_ITEMS, seed: int = 0) -> torch.Tensor:
    """(batch, length) left-padded ids: row 0 full, row 1 fully padded, the rest random lengths 1..length."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, num_items + 1, (batch, length), generator=g)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    if batch > 1:
        lengths[1] = 0
    pad = torch.arange(length).unsqueeze(0) < (length - lengths).unsqueeze(1)
    return items.masked_fill(pad, 0)


def tiny(name: str, **overrides) -> SequenceModel:
    """A small model of each kind (hidden 16) for fast tests; dropout stays on unless overridden."""
    section = {"name": name, "size": "small", "hidden": 16, **overrides}
    if name in ("sasrec", "bert4rec"):
        section.setdefault("heads", 2)
    if name == "gru4rec":
        section.setdefault("gru_hidden", 24)
        section.setdefault("layers", 2)
    if name == "xlstm":
        section.setdefault("layers", 2)
        section.setdefault("slstm_at", [1])
    torch.manual_seed(0)
    return build_model(section, NUM_ITEMS, MAX_LEN)


def assert_causal(model: SequenceModel, items: torch.Tensor, positions: tuple[int, ...]) -> None:
    """Changing row 0's item at p leaves outputs before p (and every other row) unchanged, and changes p itself."""
    with torch.no_grad():
        base = model(items)  # (B, T, D)
        for p in positions:
            changed = items.clone()
            changed[0, p] = 49 if items[0, p] != 49 else 48
            out = model(changed)
            torch.testing.assert_close(out[0, :p], base[0, :p], rtol=0, atol=1e-6)
            assert not torch.allclose(out[0, p], base[0, p])
            torch.testing.assert_close(out[1:], base[1:], rtol=0, atol=1e-6)  # rows are independent
