"""Popularity: every user gets the training interaction counts (the scorer seqrec has always reported)."""

from __future__ import annotations

from seqrec.data.sequences import PreparedData
from seqrec.eval.ranking import Scorer, popularity_scorer


def fit(data: PreparedData) -> Scorer:
    """Scores (B, V + 1) = ``data.item_popularity`` (training interactions per item) for every row."""
    return popularity_scorer(data.item_popularity)
