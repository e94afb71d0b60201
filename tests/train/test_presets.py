"""BERT4Rec scaling-study presets reach ~5M/85M/130M/430M parameters (counted on the meta device)."""

from __future__ import annotations

import pytest
import torch

from seqrec.config import build_config
from seqrec.models import build_model


@pytest.mark.parametrize(("size", "target"), [("5m", 5e6), ("85m", 85.11e6), ("130m", 130.10e6), ("430m", 429.15e6)])
def test_bert4rec_preset_sizes_on_ml100k_shape(size, target):
    cfg = build_config({}, ["model.name=bert4rec", f"model.size={size}"])
    with torch.device("meta"):
        model = build_model(cfg.model, 1682, 50)
    assert model.num_parameters() == pytest.approx(target, rel=0.05)
