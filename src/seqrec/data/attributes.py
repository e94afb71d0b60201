"""Per-item text attributes for text-based models: ordered ``(key, value)`` string pairs per dense item id.

The key order depends on the source, recognised by its item-feature columns (first match wins):

=================  ===========================================  =========================================
marker column      source                                       keys, in order
=================  ===========================================  =========================================
``categories``     LC-Rec JSON (amazon-scientific-2018, ...)    title, brand, categories, description
``category``       Amazon 2014 / 2018 ``meta_*`` files          title, brand, category
``developer``      Steam games                                  title, developer, genres, tags
``genres``         MovieLens (ml-100k, ml-1m, ...)              title, year, genres
=================  ===========================================  =========================================

Any other feature table gives its text columns in table order. Null, empty and whitespace-only values are
dropped; HTML was already stripped by the readers.
"""

from __future__ import annotations

import math

import polars as pl

from seqrec.data.sequences import PreparedData

ATTRIBUTE_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("categories", ("title", "brand", "categories", "description")),
    ("category", ("title", "brand", "category")),
    ("developer", ("title", "developer", "genres", "tags")),
    ("genres", ("title", "year", "genres")),
)
_ID_COLUMNS = ("item", "item_id")


def attribute_keys(features: pl.DataFrame) -> tuple[str, ...]:
    """The ordered attribute keys for a feature table (see the module doc)."""
    for marker, keys in ATTRIBUTE_KEYS:
        if marker in features.columns:
            return tuple(k for k in keys if k in features.columns)
    return tuple(c for c in features.columns if c not in _ID_COLUMNS)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            value = int(value)  # RecBole "float" years: 1995.0 -> "1995"
    text = " ".join(str(value).split())
    return text or None


def item_attributes(prepared: PreparedData, keys: tuple[str, ...] | None = None) -> list[list[tuple[str, str]]]:
    """``out[i]`` = ordered (key, value) pairs of dense item ``i`` (``out[0] == []``, the padding item).

    ``keys`` overrides the per-source order. Items without features (or a dataset without any) get ``[]``.
    """
    out: list[list[tuple[str, str]]] = [[] for _ in range(prepared.num_items + 1)]
    features = prepared.item_features
    if not isinstance(features, pl.DataFrame) or "item" not in features.columns:
        return out
    keys = attribute_keys(features) if keys is None else tuple(k for k in keys if k in features.columns)
    dense = features["item"].to_list()
    columns = [features[k].to_list() for k in keys]
    for row, item in enumerate(dense):
        if item is None or not 1 <= int(item) <= prepared.num_items:
            continue
        pairs = []
        for key, values in zip(keys, columns, strict=True):
            text = _text(values[row])
            if text is not None:
                pairs.append((key, text))
        out[int(item)] = pairs
    return out
