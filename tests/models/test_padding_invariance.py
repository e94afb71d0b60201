"""``padding_invariant`` models: cutting a batch's all-padding leading columns changes no real position's output.

The trainer and the evaluation cut batches that way for these models (``seqrec.data.windows``), so the claim is
checked for every model that makes it, in eval mode (no dropout), and the models that do not make it stay off.
"""

from __future__ import annotations

import pytest
import torch
from model_helpers import MAX_LEN, NUM_ITEMS, tiny

from seqrec.data.windows import trim_leading_padding
from seqrec.models import MODELS

INVARIANT = sorted(name for name, cls in MODELS.items() if cls.padding_invariant)


def test_which_models_claim_it():
    assert INVARIANT == ["bert4rec", "gru4rec", "sasrec"]


@pytest.mark.parametrize("name", INVARIANT)
@pytest.mark.parametrize("longest", [1, 3, MAX_LEN - 1])
def test_trimmed_batch_gives_the_same_states(name, longest):
    g = torch.Generator().manual_seed(longest)
    batch, width = 6, MAX_LEN
    lengths = torch.randint(0, longest + 1, (batch,), generator=g)
    lengths[0] = longest
    items = torch.randint(1, NUM_ITEMS + 1, (batch, width), generator=g)
    items = items.masked_fill(torch.arange(width) < (width - lengths).unsqueeze(1), 0)  # left padding
    model = tiny(name).eval()
    with torch.no_grad():
        full = model(items)  # (B, W, D)
        trimmed = trim_leading_padding(items)  # (B, longest + 1): what the trainer and the evaluation feed
        assert trimmed.shape[1] == longest + 1
        cut = model(trimmed)
        real = (trimmed != 0).unsqueeze(-1)
        torch.testing.assert_close(cut * real, full[:, -trimmed.shape[1] :] * real, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.prediction_hidden(trimmed),
                                   model.prediction_hidden(items), atol=1e-5, rtol=1e-5)
