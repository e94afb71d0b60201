"""Data layer: readers, named datasets, preprocessing, splits, the synthetic generator and the cached
pipeline.

Entry point: :func:`prepare_data` (``DataConfig`` → :class:`PreparedData`). See ``prepare.py`` for the
cache, ``sources.py`` for formats and :data:`DATASETS`, ``preprocess.py`` and ``split.py`` for the
semantics.
"""

from seqrec.data.prepare import describe, prepare_data, resolve_cache_root, resolve_data_dir
from seqrec.data.sequences import EvalSet, PreparedData, Sequences
from seqrec.data.sources import DATASETS, DatasetRecipe

__all__ = [
    "DATASETS",
    "DatasetRecipe",
    "EvalSet",
    "PreparedData",
    "Sequences",
    "describe",
    "prepare_data",
    "resolve_cache_root",
    "resolve_data_dir",
]
