"""iLoRA, instance-wise LoRA (Kong et al., NeurIPS 2024, "Customizing Language Models with Instance-wise LoRA
for Sequential Recommendation"), as one small layer and a router; ``peft`` has no such layer.

A rank-r LoRA split along its rank into K experts (expert k: rows ``k r/K .. (k+1) r/K - 1`` of A, the same
columns of B, each of rank r/K). A router (``nn.Linear(D, K)`` + softmax) reads the *frozen* base model's
representation of each sequence and gives one gate vector g (K,) per sequence, shared by every adapted layer::

    y = W x + (alpha / (r / K)) * sum_k g_k B_k A_k x  =  W x + s * B (repeat(g, r/K) * (A x))

With K = 1 (g = 1) this is LoRA of rank r with scaling alpha / r; with a uniform gate and K identical experts it
is LoRA of rank r/K with scaling alpha / (r/K). A starts Kaiming-uniform and B at zero (peft's LoRA init), so the
adapted model starts equal to the base model.

The base representation is the model's own forward with the adapters off, in eval mode (no dropout) and without
autograd: the mean of its hidden states over the input's non-padding positions (a model returning one state per
sequence gives that state). So every forward runs the base model once more without gradients.

Deviation from the paper: there the adapters sit in an LLM and the router reads the sequence embedding of a
separately trained SASRec; here the adapted model is itself the sequential recommender, so the router reads that
model with its adapters off (modules in ``peft.modules_to_save`` are read as they currently are, not as frozen
copies). The gate of the latest forward stays set until the next one, so activation checkpointing recomputes the
blocks with the same gates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GateState:
    """The per-sequence gates of the current forward, shared by one model's iLoRA layers (None: adapters off)."""

    def __init__(self) -> None:
        self.gate: Tensor | None = None  # (B, K)


class ILoRALinear(nn.Module):
    """``base_layer(x) + s * B (repeat(g, r/K) * (A dropout(x)))`` with g from the shared :class:`GateState`."""

    def __init__(self, base: nn.Linear, rank: int, experts: int, alpha: float, dropout: float,
                 state: GateState) -> None:
        super().__init__()
        if rank % experts:
            raise ValueError(f"iLoRA rank {rank} must be divisible by the number of experts {experts}")
        self.base_layer = base
        self.rank, self.experts = rank, experts
        self.scaling = alpha / (rank / experts)
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.ilora_A = nn.Parameter(torch.empty(rank, base.in_features, **like))  # (r, in): K stacked A_k
        self.ilora_B = nn.Parameter(torch.zeros(base.out_features, rank, **like))  # (out, r): K stacked B_k
        if base.weight.device.type != "meta":
            nn.init.kaiming_uniform_(self.ilora_A, a=math.sqrt(5))
        self.drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.state = state  # a plain object, not a module: not in the state dict

    def forward(self, x: Tensor) -> Tensor:  # (B, ..., in) -> (B, ..., out)
        out = self.base_layer(x)
        gate = self.state.gate  # (B, K)
        if gate is None:
            return out
        if gate.shape[0] != x.shape[0]:
            raise RuntimeError(f"iLoRA: gates for {gate.shape[0]} sequences, input of {x.shape[0]} (adapted layers "
                               f"run inside the model's forward, which sets the gates)")
        h = F.linear(self.drop(x), self.ilora_A)  # (B, ..., r)
        g = gate.to(h.dtype).repeat_interleave(self.rank // self.experts, dim=-1)  # (B, r)
        g = g.reshape(g.shape[0], *([1] * (h.ndim - 2)), g.shape[-1])  # broadcast over the middle dims
        return out + F.linear(h * g, self.ilora_B) * self.scaling


def sequence_representation(hidden: Tensor, items: Tensor) -> Tensor:
    """(B, T', D) hidden states of ``items`` (B, T) -> (B, D): mean over non-padding positions (T' = T), else mean."""
    if hidden.shape[1] == items.shape[1]:
        weight = (items != 0).to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * weight).sum(1) / weight.sum(1).clamp(min=1.0)
    return hidden.mean(1)


def inject_ilora(model: nn.Module, targets: list[str], rank: int, experts: int, alpha: float,
                 dropout: float) -> GateState:
    """Replace each Linear named in ``targets`` by an :class:`ILoRALinear`, add ``model.ilora_router`` and wrap
    ``model.forward`` (instance attribute, so ``prediction_hidden``'s direct ``self.forward`` calls are gated too)."""
    state = GateState()
    for name in targets:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, ILoRALinear(getattr(owner, child), rank, experts, alpha, dropout, state))
    weight = model.item_weight()  # (V + 1, D): D is the width of the states the router reads
    router = nn.Linear(weight.shape[-1], experts, device=weight.device, dtype=weight.dtype)
    if weight.device.type != "meta":
        nn.init.normal_(router.weight, std=0.02)  # near-uniform gates at the start
        nn.init.zeros_(router.bias)
    model.ilora_router = router
    inner = model.forward  # the class's forward, bound to the model

    def gated_forward(items: Tensor) -> Tensor:
        state.gate = None
        was_training = model.training
        with torch.no_grad():
            model.train(False)
            try:
                base = inner(items)  # (B, T', D) the frozen base model: adapters off, no dropout
            finally:
                model.train(was_training)
        logits = model.ilora_router(sequence_representation(base, items))  # (B, K)
        state.gate = torch.softmax(logits.float(), dim=-1)
        return inner(items)

    model.forward = gated_forward
    return state
