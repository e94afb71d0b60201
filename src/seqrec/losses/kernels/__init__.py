"""Optional Triton kernels (extra ``triton``). Import lazily: ``available()`` says whether they can run.

On CPU tensors the kernels only run under ``TRITON_INTERPRET=1`` (used by the tests); the loss functions pick
them automatically (``kernel="auto"``) only for CUDA tensors.
"""

from __future__ import annotations

import importlib.util
import os

import torch


def available(device: torch.device) -> bool:
    """True when triton is importable and can run on ``device`` (CUDA, or CPU under TRITON_INTERPRET=1)."""
    if importlib.util.find_spec("triton") is None:
        return False
    if device.type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET") == "1"
