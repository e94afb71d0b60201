"""Parameter-efficient fine-tuning of any seqrec model: LoRA through ``peft``, iLoRA (:mod:`seqrec.train.ilora`),
merged export and adapter-only files.

``apply_adapters(model, config.peft)`` freezes the model, injects the adapters in place (the model stays the same
:class:`~seqrec.models.base.SequenceModel`, so the trainer, losses and evaluation see nothing new) and unfreezes
``peft.modules_to_save``:

- ``lora``: ``peft.inject_adapter_in_model`` with a ``LoraConfig(r, lora_alpha, lora_dropout)`` on the resolved
  target Linear layers (state-dict keys ``blocks.0.qkv.base_layer.weight``, ``blocks.0.qkv.lora_A.default.weight``);
- ``ilora``: our :class:`~seqrec.train.ilora.ILoRALinear` on the same layers plus ``ilora_router``.

Frozen parameters are left out of AdamW by ``SequenceModel.param_groups``. A run directory of an adapted run keeps
the whole adapted state dict in ``model.safetensors`` (``Recommender.load`` re-applies the adapters from
``config.yaml``) and the trainable tensors alone in ``adapter.safetensors`` (:func:`save_adapter`: adapters,
router and ``modules_to_save``; a few MB on the large presets). :func:`merge_and_unload` folds LoRA into the base
weights (peft's ``LoraLayer.merge``) for inference without adapters; iLoRA cannot be merged (its update depends on
each sequence's gates).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from seqrec.config import Config, PeftConfig
from seqrec.errors import CheckpointError, ConfigError
from seqrec.models.adapter_targets import resolve_saved, resolve_targets
from seqrec.train.checkpoint import load_weights, save_weights
from seqrec.train.ilora import ILoRALinear, inject_ilora

ADAPTER = "adapter.safetensors"


def apply_adapters(model: nn.Module, pc: PeftConfig) -> nn.Module:
    """Freeze ``model`` and inject ``pc``'s adapters in place (``method: none``: untouched); returns ``model``."""
    if pc.method == "none":
        return model
    targets = resolve_targets(model, pc.target_modules)
    saved = resolve_saved(model, pc.modules_to_save)
    for p in model.parameters():
        p.requires_grad_(False)
    if pc.method == "lora":
        if importlib.util.find_spec("peft") is None:
            raise ConfigError("config key 'peft.method': lora needs the peft package (pip install 'seqrec[peft]')")
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(r=pc.rank, lora_alpha=pc.alpha, lora_dropout=pc.dropout, target_modules=targets,
                          bias="none")
        inject_adapter_in_model(lora, model)
    else:
        inject_ilora(model, targets, pc.rank, pc.experts, pc.alpha, pc.dropout)
    for p in model.parameters():  # peft marks its adapters trainable; ours start frozen like the rest
        p.requires_grad_(False)
    for name, p in model.named_parameters():
        if is_adapter_key(name):
            p.requires_grad_(True)
    for name in saved:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)
    return model


def is_adapter_key(name: str) -> bool:
    """A parameter / state-dict key of an injected adapter (LoRA A/B, iLoRA A/B, the iLoRA router)."""
    return ".lora_A." in name or ".lora_B." in name or ".ilora_" in name or name.startswith("ilora_router.")


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, shared tensors counted once."""
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)


def params_block(model: nn.Module, pc: PeftConfig) -> dict[str, Any]:
    """``trainable_params``, ``total_params``, ``trainable_pct`` and the peft method (metrics.json, --dry-run)."""
    trainable, total = param_counts(model)
    return {"trainable_params": trainable, "total_params": total, "trainable_pct": 100.0 * trainable / max(total, 1),
            "peft_method": pc.method}


def describe_params(block: dict[str, Any]) -> str:
    """``1,234,567 params`` or ``1,234,567 params, 12,345 trainable (1.00%, lora)``."""
    text = f"{block['total_params']:,} params"
    if block["peft_method"] != "none" or block["trainable_params"] != block["total_params"]:
        text += f", {block['trainable_params']:,} trainable ({block['trainable_pct']:.2f}%, {block['peft_method']})"
    return text


# ---- merge ---------------------------------------------------------------------------------------------------


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold every LoRA layer into its base Linear (peft's ``merge``) and remove the adapters, in place.

    Afterwards the model is a plain model (every parameter trainable, base state-dict keys). iLoRA raises
    ConfigError: its update is a per-sequence mixture of experts, not one weight matrix.
    """
    if any(isinstance(m, ILoRALinear) for m in model.modules()):
        raise ConfigError("peft.method ilora: instance-wise adapters cannot be merged into the base weights (each "
                          "sequence has its own gates); keep the adapted model")
    if importlib.util.find_spec("peft") is not None:
        from peft.tuners.lora import LoraLayer

        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
        for name, layer in layers:
            layer.merge(safe_merge=True)  # raises ValueError if the merged weights are not finite
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, layer.get_base_layer())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


# ---- adapter-only files --------------------------------------------------------------------------------------


def adapter_state(model: nn.Module) -> dict[str, Tensor]:
    """The trainable tensors of an adapted model: adapters, the iLoRA router and ``modules_to_save``."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def _peft_meta(config: Config) -> dict[str, Any]:
    return {"model": config.model.name, "peft": config.peft.model_dump(mode="json")}


def save_adapter(path: str | Path, model: nn.Module, config: Config) -> Path:
    """``adapter.safetensors``: :func:`adapter_state` plus the model name and peft section in the header."""
    if config.peft.method == "none":
        raise ConfigError("save_adapter: peft.method is none (the whole model is trained; save the run directory)")
    save_weights(path, adapter_state(model), {**_peft_meta(config), "format": 1})
    return Path(path)


def load_adapter(path: str | Path, model: nn.Module, config: Config) -> None:
    """Load :func:`save_adapter`'s file into a model built and adapted with ``config`` (every key checked)."""
    path = Path(path)
    tensors, meta = load_weights(path)
    want = _peft_meta(config)
    if not isinstance(meta, dict) or meta.get("model") != want["model"] or meta.get("peft") != want["peft"]:
        got = {k: meta.get(k) for k in ("model", "peft")} if isinstance(meta, dict) else meta
        raise CheckpointError(f"{path}: adapter for {got}, but the config has {want}")
    expected = adapter_state(model)
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: adapter tensors do not match the model (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]})")
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {tuple(value.shape)}, the model "
                                  f"{tuple(expected[name].shape)}")
    model.load_state_dict(tensors, strict=False)


def without_peft(config: Config) -> Config:
    """The config of a merged model: same everything, ``peft.method: none``."""
    return config.model_copy(update={"peft": PeftConfig()})


def peft_summary(pc: PeftConfig) -> dict[str, Any]:
    """The peft section as recorded in metrics.json (method none: just the method)."""
    if pc.method == "none":
        return {"method": "none"}
    out = pc.model_dump(mode="json")
    if pc.method != "ilora":
        out.pop("experts", None)
    return out
