import torch

from seqrec.config import ModelSection
from seqrec.models import build_model


def test_untied_output_table_adds_exactly_one_table():
    tied = build_model(ModelSection(name="sasrec"), 100, 20)
    untied = build_model(ModelSection(name="sasrec", tie_weights=False), 100, 20)
    assert untied.num_parameters() - tied.num_parameters() == 101 * 64
    assert untied.item_weight() is not untied.item_emb.weight
    h = untied(torch.randint(0, 101, (3, 20)))
    assert h.shape == (3, 20, 64) and not torch.isnan(h).any()
