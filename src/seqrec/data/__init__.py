"""Data layer: readers, named datasets, preprocessing, splits, the synthetic generator and the cached
pipeline.

Entry point: :func:`prepare_data` (``DataConfig`` → :class:`PreparedData`). See ``prepare.py`` for the
cache, ``readers/`` for the file formats, ``datasets.py`` for :data:`DATASETS` (and their default k-core),
``files.py`` for ``data.name=file``, ``preprocess.py`` and ``split.py`` for the semantics, and
``attributes.py`` for per-item text attributes.
"""

from seqrec.data.datasets import DATASETS, DatasetRecipe
from seqrec.data.prepare import describe, prepare_data, resolve_cache_root, resolve_data_dir
from seqrec.data.sequences import EvalSet, PreparedData, Sequences

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
