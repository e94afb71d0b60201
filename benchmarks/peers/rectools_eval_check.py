"""Check that rectools_run.py's evaluator scores exactly what RecTools' own ``recommend`` returns.

Fits RecTools' SASRec and BERT4Rec for two epochs on seqrec's ML-100K split, then compares the runner's
``Evaluator`` (full catalogue, seen items removed, seqrec's rank rule) with ``model.recommend(k=10,
filter_viewed=True)`` on the test inputs: HR@10 and NDCG@10 must agree to the last digit. Run in the RecTools
virtualenv, after writing the split with the seqrec one:

    .venv/bin/python -c "import sys; sys.path.insert(0, 'benchmarks/peers'); from pathlib import Path; \
        from seqrec_run import export_split; export_split('sasrec', '../shared/data', Path('/tmp/split.npz'))"
    benchmarks/peers/.venv-rectools/bin/python benchmarks/peers/rectools_eval_check.py /tmp/split.npz
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import rectools_run as rr  # this folder is on sys.path: run as a script
import torch
from pytorch_lightning import seed_everything
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import BERT4RecModel, SASRecModel
from rectools.models.nn.item_net import IdEmbeddingsItemNet


def main(split_path: str) -> int:
    torch.set_num_threads(1)
    split = rr.load_split(split_path)
    rows = rr.csr_rows(split["test_offsets"], split["test_values"])
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    items = np.concatenate(rows)
    history = Dataset.construct(pd.DataFrame({
        Columns.User: users, Columns.Item: items, Columns.Weight: 1.0,
        Columns.Datetime: pd.to_datetime(np.arange(len(items)), unit="s"),
    }))
    targets = dict(enumerate(split["test_targets"].tolist()))
    failures = 0
    for cls in (SASRecModel, BERT4RecModel):
        seed_everything(1, verbose=False)
        model = cls(n_blocks=2, n_heads=1, n_factors=64, session_max_len=50, epochs=2, deterministic=True,
                    item_net_block_types=(IdEmbeddingsItemNet,))
        model.fit(Dataset.construct(rr.interactions_frame(split)))
        mine = rr.Evaluator(model, split, "test", int(split["num_items"]))()
        reco = model.recommend(users=np.arange(len(rows)), dataset=history, k=10, filter_viewed=True)
        hits = reco[reco[Columns.Item] == reco[Columns.User].map(targets)]
        theirs = {"NDCG@10": float((1 / np.log2(hits[Columns.Rank].to_numpy() + 1)).sum()) / len(rows),
                  "HR@10": len(hits) / len(rows)}
        same = all(abs(mine[k] - theirs[k]) < 1e-12 for k in mine)
        failures += not same
        print(f"{cls.__name__}: runner {mine}  recommend {theirs}  {'same' if same else 'DIFFERENT'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
