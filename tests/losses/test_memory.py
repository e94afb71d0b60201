"""seqrec.losses.memory: the loss-share estimates follow each implementation's allocation pattern."""

from __future__ import annotations

import pytest

from seqrec.config import build_config
from seqrec.losses.memory import loss_memory_bytes

N, D = 3416, 64  # ML-1M's catalogue, SASRec's hidden size


def _loss(*overrides: str):
    return build_config({}, list(overrides)).loss


def test_materialised_ce_is_three_logit_matrices_plus_gradients():
    m = 512 * 200
    assert loss_memory_bytes(_loss("loss.name=ce_materialized"), m, N, D) == 3 * m * N * 4 + m * D * 4 + (N + 1) * D * 4


@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_ce_is_one_block_far_below_materialised(threads):
    ce, full = _loss("loss.name=ce"), _loss("loss.name=ce_materialized")
    small, large = 32 * 25, 512 * 200
    # one chunk covers a small batch: the same logits as the materialised form
    assert loss_memory_bytes(ce, small, 1682, D, threads=threads) <= 1.01 * loss_memory_bytes(full, small, 1682, D)
    assert loss_memory_bytes(ce, large, N, D, threads=threads) < loss_memory_bytes(full, large, N, D) / 10


def test_sampled_losses_scale_with_their_negatives():
    m = 512 * 200
    shared = [loss_memory_bytes(_loss("loss.name=cce_neg", f"loss.num_negatives={k}"), m, N, D) for k in (32, 1024)]
    per_row = [loss_memory_bytes(_loss("loss.name=cce_neg", f"loss.num_negatives={k}", "loss.shared_negatives=false"),
                                 m, N, D) for k in (32, 1024)]
    assert shared[1] - shared[0] < 8 * 2**20  # shared ids: (K,) plus one bounded chunk
    assert per_row[1] - per_row[0] >= m * (1024 - 32) * 4  # per row: (M, K) int32 ids at least
    reference = loss_memory_bytes(_loss("loss.name=ce_neg", "loss.num_negatives=256",
                                        "loss.shared_negatives=false"), m, N, D)
    fused = loss_memory_bytes(_loss("loss.name=cce_neg", "loss.num_negatives=256",
                                    "loss.shared_negatives=false"), m, N, D)
    assert reference > 20 * fused  # the reference gathers (M, K, D)


@pytest.mark.parametrize("name", ["ce", "ce_materialized", "ce_neg", "cce_neg", "bce", "gbce", "sce"])
def test_every_loss_has_a_positive_estimate_growing_with_rows(name):
    cfg = _loss(f"loss.name={name}")
    values = [loss_memory_bytes(cfg, rows, N, D) for rows in (1, 100, 10_000, 100_000)]
    assert values[0] > 0 and values == sorted(values)


def test_trainer_estimate_reports_the_configured_loss():
    from seqrec.models import build_model
    from seqrec.train.trainer import estimate_memory

    cfg = build_config({}, ["loss.name=cce_neg", "loss.num_negatives=64", "train.batch_size=32", "data.max_len=50"])
    model = build_model(cfg.model, N, cfg.data.max_len)
    mem = estimate_memory(model, cfg, N, threads=1)
    assert mem["loss_mb"] == pytest.approx(loss_memory_bytes(cfg.loss, 32 * 50, N, D, threads=1) / 2**20)
    assert mem["total_mb"] == pytest.approx(mem["weights_optimizer_mb"] + mem["activations_mb"] + mem["loss_mb"])
    assert mem["logits_mb"] > mem["loss_mb"]
