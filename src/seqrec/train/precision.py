"""Mixed precision, torch.compile and activation checkpointing for the training loop.

- ``train.precision``: ``32`` (no autocast), ``bf16-mixed`` (``torch.autocast`` with bfloat16, CPU and CUDA) and
  ``16-mixed`` (float16 autocast plus a ``GradScaler``; Micikevicius et al., 2018, "Mixed Precision Training").
  Weights, gradients and optimizer state stay fp32; losses compute their log-sum-exp in fp32.
- ``train.compile``: ``torch.compile`` of the training forward (Ansel et al., 2024, "PyTorch 2"). Compilation is
  lazy, so failures surface at the first call; we then print one line and continue eagerly.
- ``train.activation_checkpointing``: each block of ``model.blocks`` is recomputed in backward
  (Chen et al., 2016, "Training Deep Nets with Sublinear Memory Cost"), via non-reentrant
  ``torch.utils.checkpoint``. Parameters and state-dict keys are untouched (only ``forward`` is wrapped).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.checkpoint import checkpoint

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def autocast_context(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of fresh context managers: ``torch.autocast`` for mixed precision, a no-op for ``32``."""
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for ``16-mixed`` (fp16 gradients underflow without it); None otherwise."""
    if precision != "16-mixed":
        return None
    return torch.amp.GradScaler(device.type)


class CompiledForward:
    """Calls ``torch.compile(model)``; on the first failure prints one line and falls back to the eager model."""

    def __init__(self, model: nn.Module, mode: str, console: Console) -> None:
        self.model = model
        self.console = console
        self.compiled: Callable[..., Any] | None
        try:
            self.compiled = torch.compile(model, mode=None if mode == "default" else mode)
        except Exception as err:  # noqa: BLE001 - any backend problem means "run eagerly"
            self._fallback(err)

    def _fallback(self, err: BaseException) -> None:
        first = (str(err).strip().splitlines() or [""])[0][:160]
        self.console.print(f"torch.compile unavailable ({type(err).__name__}: {first}); continuing uncompiled")
        self.compiled = None

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as err:  # noqa: BLE001
                self._fallback(err)
        return self.model(*args)


def training_forward(model: nn.Module, compile_model: bool, mode: str, console: Console) -> Callable[..., Any]:
    """The callable the loop uses for training forwards: the model itself or its compiled wrapper."""
    return CompiledForward(model, mode, console) if compile_model else model


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Wrap ``forward`` of every module in ``model.blocks`` with non-reentrant checkpointing; returns the count."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError(
            f"train.activation_checkpointing: {type(model).__name__} exposes no model.blocks ModuleList"
        )
    for block in blocks:
        if getattr(block, "_seqrec_checkpointed", False):
            continue
        inner = block.forward

        def wrapped(*args: Any, _inner: Callable[..., Any] = inner, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = wrapped  # type: ignore[method-assign]
        block._seqrec_checkpointed = True  # type: ignore[assignment]
    return len(blocks)
