"""Several prepared datasets as one: the pre-training corpus of a text model (``seqrec pretrain``).

Each part keeps its own preprocessing and split; the union renumbers them side by side: part k's users and
items follow those of parts 0..k-1 (item 0 stays the one padding id), original ids become ``<part>:<id>``, and
the training sequences, evaluation sets and popularity counts are concatenated. No sequence ever mixes parts,
so a history and its next item always come from the same dataset. Item text stays per part (concatenated by
:func:`seqrec.data.text.concat_item_tokens` in the same order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqrec.data.sequences import EvalSet, PreparedData, Sequences


def _concat_seqs(parts: Sequence[Sequences], item_offsets: Sequence[int]) -> Sequences:
    lengths = np.concatenate([p.lengths() for p in parts]) if parts else np.zeros(0, np.int64)
    values = [np.asarray(p.values, dtype=np.int64) + off for p, off in zip(parts, item_offsets, strict=True)]
    return Sequences.from_lengths(lengths, np.concatenate(values) if values else np.zeros(0, np.int64))


def _concat_eval(parts: Sequence[EvalSet], user_offsets: Sequence[int], item_offsets: Sequence[int]) -> EvalSet:
    return EvalSet(
        users=np.concatenate([np.asarray(p.users, np.int64) + u for p, u in zip(parts, user_offsets, strict=True)]),
        inputs=_concat_seqs([p.inputs for p in parts], item_offsets),
        targets=np.concatenate([np.asarray(p.targets, np.int64) + i
                                for p, i in zip(parts, item_offsets, strict=True)]),
    )


def concat_prepared(parts: Sequence[PreparedData], labels: Sequence[str]) -> PreparedData:
    """One :class:`PreparedData` holding every part side by side (see the module docstring)."""
    if not parts or len(parts) != len(labels):
        raise ValueError("concat_prepared: expected one label per part and at least one part")
    item_off = np.concatenate([[0], np.cumsum([p.num_items for p in parts])[:-1]]).astype(np.int64)
    user_off = np.concatenate([[0], np.cumsum([p.num_users for p in parts])[:-1]]).astype(np.int64)
    item_ids = ["<pad>"] + [f"{lab}:{x}" for p, lab in zip(parts, labels, strict=True)
                            for x in np.asarray(p.item_ids, dtype=str)[1:]]
    user_ids = [f"{lab}:{x}" for p, lab in zip(parts, labels, strict=True) for x in np.asarray(p.user_ids, dtype=str)]
    popularity = np.concatenate([[0]] + [np.asarray(p.item_popularity, np.int64)[1:] for p in parts])
    return PreparedData(
        name="+".join(labels),
        num_users=int(sum(p.num_users for p in parts)),
        num_items=int(sum(p.num_items for p in parts)),
        train=_concat_seqs([p.train for p in parts], item_off),
        valid=_concat_eval([p.valid for p in parts], user_off, item_off),
        test=_concat_eval([p.test for p in parts], user_off, item_off),
        item_ids=np.asarray(item_ids, dtype=str),
        user_ids=np.asarray(user_ids, dtype=str),
        item_popularity=popularity.astype(np.int64),
        split=parts[0].split,
        stats={"parts": [{"name": lab, "users": p.num_users, "items": p.num_items,
                          "train_interactions": int(p.train.nnz)} for p, lab in zip(parts, labels, strict=True)]},
    )
