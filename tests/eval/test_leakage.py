"""What a model receives at evaluation: never the target, never anything after it (real ML-100K data)."""

import numpy as np
import torch

from seqrec.config import build_config
from seqrec.data import prepare_data
from seqrec.eval.ranking import rank_targets


def test_model_input_never_contains_the_test_target(shared_data):
    cfg = build_config({}, ["data.name=ml-100k", "data.min_user_interactions=0", "data.min_item_interactions=0"])
    data = prepare_data(cfg.data, shared_data)
    seen_batches: list[torch.Tensor] = []

    def recording_scorer(history: torch.Tensor) -> torch.Tensor:
        seen_batches.append(history.clone())
        return torch.rand(history.shape[0], data.num_items + 1)

    for split in (data.valid, data.test):
        seen_batches.clear()
        rank_targets(recording_scorer, split, data.num_items, 50, batch_size=100)
        histories = torch.cat(seen_batches).numpy()
        assert len(histories) == len(split)
        assert not (histories == np.asarray(split.targets)[:, None]).any()
    # leave-one-out: the validation target is the test input's last item, the test target is absent from training
    assert np.array_equal(np.asarray([data.test.inputs[i][-1] for i in range(len(data.test))]), data.valid.targets)
    for i, u in enumerate(data.test.users):
        assert data.train[u].tolist() == data.test.inputs[i][:-1].tolist()
