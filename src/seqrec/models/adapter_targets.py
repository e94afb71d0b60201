"""Which modules of a sequence model the adapters of :mod:`seqrec.train.adapters` attach to.

A ``peft.target_modules`` / ``peft.modules_to_save`` entry names a module by its full name (``blocks.0.qkv``) or
a dotted suffix (``qkv``, ``ffn.0``, ``item_emb``), the rule ``peft`` applies to a list of names. Targets must
be ``nn.Linear``; the default is every ``nn.Linear`` inside ``model.blocks`` (attention and feed-forward of the
transformers, the cell projections of xLSTM) and, for a model without ``blocks``, every ``nn.Linear``. The
config validates the names at config time on a meta-device copy of the model (no memory, no init).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqrec.errors import ConfigError


def matches(name: str, pattern: str) -> bool:
    """``peft``'s rule for a list of target names: the full module name, or a suffix after a dot."""
    return name == pattern or name.endswith("." + pattern)


def default_targets(model: nn.Module) -> list[str]:
    """Every ``nn.Linear`` under ``model.blocks`` (full names), else every ``nn.Linear`` of the model."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    inside = [n for n in linears if n.startswith("blocks.")]
    return inside or linears


def resolve_targets(model: nn.Module, patterns: list[str] | None) -> list[str]:
    """Full names of the Linear layers to adapt (ConfigError for a name that matches no Linear)."""
    if patterns is None:
        found = default_targets(model)
        if not found:
            raise ConfigError(f"config key 'peft.target_modules': {type(model).__name__} has no nn.Linear layer to "
                              f"adapt")
        return found
    modules = dict(model.named_modules())
    out: list[str] = []
    for pattern in patterns:
        hits = [n for n in modules if n and matches(n, pattern)]
        linear = [n for n in hits if isinstance(modules[n], nn.Linear)]
        if not linear:
            what = f"matches {', '.join(hits[:3])}, not an nn.Linear" if hits else "matches no module"
            raise ConfigError(f"config key 'peft.target_modules': {pattern!r} {what} of {type(model).__name__} "
                              f"(Linear layers: {', '.join(default_targets(model)[:6])}, ...)")
        out.extend(n for n in linear if n not in out)
    return out


def resolve_saved(model: nn.Module, patterns: list[str]) -> list[str]:
    """Full names of the modules trained in full beside the adapters (ConfigError for a name matching none)."""
    names = [n for n, m in model.named_modules() if n and next(m.parameters(), None) is not None]
    out: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if matches(n, pattern)]
        if not hits:
            top = [n for n in names if "." not in n]
            raise ConfigError(f"config key 'peft.modules_to_save': {pattern!r} matches no module with parameters "
                              f"(top-level modules: {', '.join(top)})")
        out.extend(n for n in hits if n not in out)
    return out


def check_peft_modules(
    model_section: Any, max_len: int, target_modules: list[str] | None, modules_to_save: list[str]
) -> None:
    """Config-time check of the peft module names against the model, built on the meta device (instant)."""
    from seqrec.models import build_model

    try:
        with torch.device("meta"):
            model = build_model(model_section, 2, max_len)
    except (RuntimeError, NotImplementedError, OSError, ValueError):
        # A constructor that reads files (pre-trained weights) cannot run on meta: the names are checked again
        # when the adapters are applied to the real model (same errors), so nothing is lost but the early exit.
        return
    resolve_targets(model, target_modules)
    resolve_saved(model, modules_to_save)
