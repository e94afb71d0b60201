"""Recformer: language representations for sequential recommendation (Li et al., KDD 2023, "Text Is All You
Need: Learning Language Representations for Sequential Recommendation"), with the sizes of a 6x-cheaper
re-implementation's "Recformer-mini" (6 layers x 256 hidden, 4 heads, FFN 1024, 512 tokens).

An item is its text (``key value key value ...``, see :mod:`seqrec.data.text`); a user is ``[CLS]`` followed by
the texts of their items, most recent first. One bidirectional encoder reads both: the ``[CLS]`` state of an
item alone is the item's representation, that of a history is the user's. Four embedding tables are summed
(token, token position, token type CLS/key/value/pad, item position 0 = CLS, 1..max_items) -> LayerNorm ->
dropout, then BERT-style post-LN blocks (GELU) with Longformer attention: every token sees the tokens within
``attention_window / 2`` of it plus ``[CLS]``, and ``[CLS]`` sees everything (global attention).

Scoring is cosine similarity over a temperature: ``forward`` returns ``normalize(h_CLS) / tau`` and
:meth:`Recformer.item_weight` returns the item matrix ``I`` (rows normalised, row 0 = zeros), so the project's
losses (``hidden @ weight.T``, chunked CE) and full-catalogue evaluation apply unchanged. ``I`` is derived, not
learned from ids: the training steps (:mod:`seqrec.train.text_stages`) re-encode it with
:meth:`Recformer.refresh_item_matrix` (fine-tuning stage 1: every epoch; stage 2: frozen, or trained as a free
table in the ablation variants that say so, see ``item_matrix``), and a new catalogue (zero-shot) is encoded
from its text. It is a parameter (``requires_grad`` off unless a variant trains it), saved with the weights.
Training predicts only the newest item of a history (``training_example``), so the trainer cuts one window per
target position (``window_stride = 1``).
Pre-training (:func:`seqrec.losses.contrastive.pretrain_losses`): item-item contrastive loss with in-batch
negatives + 0.1 * MLM.

Deviations from the paper and its code (github AaronHeee/RecFormer):
- attention: Longformer's pattern as masks over ``F.scaled_dot_product_attention`` instead of HF
  ``LongformerModel``. ``attention="blocked"`` (default) cuts the queries into blocks of ``window // 2``; each
  block sees its 3 neighbouring key blocks plus a [CLS] slot, masked down to each query's band, and the [CLS]
  row is computed apart over all keys: the same keys per query as one (L, L) mask (``attention="full"``, kept
  as the reference; tests check they agree), with O(L * window) memory. Chosen by measured CPU speed
  (``python benchmarks/recformer_cost.py --compare-attention``: mini sizes, batch 8 x 512 tokens, forward +
  backward, 1 thread, attention dropout 0.1, load ~3 on the shared 2-core machine): blocked 2.8 s, full mask
  4.4 s, ``LongformerModel`` 4.3 s (dropout 0: 2.6 / 3.6 / 3.3 s). Global attention reuses the local q/k/v
  projections (Longformer adds separate ``*_global`` ones, initialised as copies of the local ones);
- BERT post-LN blocks (as MiniLM, so the ``minilm`` preset loads all-MiniLM-L6-v2 as is) with token positions
  0..L-1, not RoBERTa's ``padding_idx + 1`` offset; pad tokens take token type PAD and item position 0 (they
  are never attended to, so neither changes a real token);
- the original pre-training runs MLM on separate masked passes of both the sequence and the next item; here
  MLM runs on one masked pass of the sequence (``shared_pass=True`` reuses it for the contrastive term too);
- presets ``mini`` and ``base`` are randomly initialised (no Longformer weights ship offline); ``minilm`` starts
  from all-MiniLM-L6-v2 (word/position/LayerNorm embeddings and all 6 layers; the token-type and
  item-position tables are new, random). A post-LN encoder at BERT's init (std 0.02) starts collapsed: every
  [CLS] is nearly the same vector (tiny: item cosines 0.99998), so fine-tuning from scratch sat at CE = log V
  for 3 epochs on synthetic data. ``tiny`` therefore uses std 0.05 (NDCG@10 0.05 -> 0.19 in 4 epochs there;
  std 0.2 collapsed); ``mini``/``base`` keep 0.02 and are meant to be pre-trained first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrec.errors import ConfigError
from seqrec.models.base import SequenceModel, init_normal
from seqrec.models.minilm import load_minilm, minilm_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from local files only

# Token types: the four rows of the token-type table.
CLS, KEY, VALUE, PAD = 0, 1, 2, 3
# Special ids of the uncased BERT WordPiece vocabulary shipped with all-MiniLM-L6-v2.
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 100, 101, 102, 103
BERT_VOCAB_SIZE = 30522


@dataclass
class TextBatch:
    """Padded Recformer inputs (built by :mod:`seqrec.data.text`); row b holds its real tokens, then padding."""

    tokens: Tensor  # (B, L) int64 WordPiece ids, PAD_ID on padding
    token_types: Tensor  # (B, L) int64 CLS / KEY / VALUE / PAD
    positions: Tensor  # (B, L) int64 token positions 0..len-1 (0 on padding)
    item_positions: Tensor  # (B, L) int64: 0 = CLS (and padding), k = the k-th most recent item
    mask: Tensor  # (B, L) bool, True on real tokens

    def to(self, device: torch.device | str) -> TextBatch:
        return TextBatch(*(t.to(device, non_blocking=True) for t in vars(self).values()))


class TextSource(Protocol):
    """What the model needs from its catalogue's text (``seqrec.data.text.TextCollator`` implements it)."""

    num_items: int  # V
    max_items: int  # items kept per history
    max_tokens: int  # tokens kept per input, [CLS] included

    def __call__(self, histories: Tensor | np.ndarray, pad_to: int | None = None) -> TextBatch: ...

    def alone(self, ids: np.ndarray) -> TextBatch: ...  # each item alone: [CLS] + its tokens

    def item_lengths(self) -> np.ndarray: ...  # (V + 1,) tokens per item


ItemMatrix = Literal["original", "fix", "variable", "training_only", "finetune_only"]
# The seed's ablation table (recformer-slides, "Ablative Model Variants"), read as: "training stage" = fine-tuning
# stage 1 (I re-encoded at every epoch start), "fine-tuning stage" = stage 2 (from the best stage-1 weights, I not
# re-encoded); "Fix" = I gets no gradient, "Trainable" = I is a free table updated by the optimizer.
# name -> (stage 1 runs, I trainable in stage 1, stage 2 runs, I trainable in stage 2)
ITEM_MATRIX_VARIANTS: dict[str, tuple[bool, bool, bool, bool]] = {
    "original": (True, False, True, True),  # the slides' "Original": Fix in stage 1, Trainable in stage 2
    "fix": (True, False, True, False),  # Algorithm 1 as written: stage 2 freezes I (the released code's behaviour)
    "variable": (True, True, True, False),  # Trainable in stage 1 (re-encoded each epoch, then updated), Fix after
    "training_only": (True, False, False, False),  # stage 1 only
    "finetune_only": (False, False, True, True),  # no stage 1: I encoded once from the initial weights, Trainable
}


@dataclass
class RecformerConfig:
    hidden: int = 64  # D: embedding and hidden size
    layers: int = 2  # transformer blocks
    heads: int = 2  # attention heads (hidden must divide by heads)
    ffn: int = 256  # feed-forward inner size
    max_tokens: int = 256  # tokens per input, [CLS] included (longer inputs are cut); token-position table size
    max_items: int = 50  # most recent items kept per history (and <= max_len); item-position table: max_items + 1
    max_attr_num: int = 3  # attributes per item (text flattening cap, see seqrec.data.text.TextCaps)
    max_attr_length: int = 32  # tokens per attribute, key + value (text flattening cap)
    attention_window: int = 64  # local attention: a token sees tokens within attention_window // 2 of it
    global_attention: bool = True  # [CLS] attends to all and all attend to [CLS] (False: local only, ablation)
    attention: Literal["blocked", "full"] = "blocked"  # banded key blocks, O(L * window); full: (L, L) mask, reference
    dropout: float = 0.1  # dropout on embeddings and after attention / feed-forward
    attention_dropout: float = 0.1  # dropout on attention probabilities
    layer_norm_eps: float = 1e-12  # BERT's (and MiniLM's) LayerNorm epsilon
    init_std: float = 0.02  # normal init of new embeddings and linear weights
    temperature: float = 0.05  # tau: scores are cos / tau
    mlm_weight: float = 0.1  # lambda in L = L_IIC + lambda * L_MLM
    mlm_probability: float = 0.15  # share of maskable tokens predicted by MLM
    vocab_size: int = BERT_VOCAB_SIZE  # WordPiece vocabulary (token table rows, MLM classes)
    cls_token_id: int = CLS_ID  # [CLS] id of that vocabulary
    mask_token_id: int = MASK_ID  # [MASK] id of that vocabulary
    init: Literal["random", "minilm"] = "random"  # "minilm": load all-MiniLM-L6-v2 (needs the minilm sizes)
    weights_dir: str | None = None  # folder with model.safetensors for init="minilm"; None = the installed package
    # ---- fine-tuning (seqrec.train.text_stages): the seed's Algorithm 1 and its ablation variants
    item_matrix: ItemMatrix = "fix"  # how I is handled per stage (ITEM_MATRIX_VARIANTS); fix = Algorithm 1
    stage1_epochs: int | None = None  # most epochs of stage 1 (None: until early stopping); within train.epochs
    stage2_patience: int | None = None  # stage 2's own early-stopping patience (None: train.patience)
    encode_batch_size: int = 256  # items per no-grad batch when (re-)encoding the catalogue into I
    init_from: str | None = None  # run directory (seqrec pretrain / train) whose weights start fine-tuning


def longformer_mask(valid: Tensor, window: int, global_cls: bool = True) -> Tensor:
    """(B, L) real-token mask -> (B, 1, L, L) bool, True = query may attend key (the plain reference pattern).

    Keys: real tokens within ``window // 2`` of the query, plus (global) ``[CLS]`` at position 0; the ``[CLS]``
    query sees every real token. Every query also sees itself, so a padding row never has an empty softmax
    (padding keys are never seen by a real token, so padding never changes a real output).
    """
    L = valid.shape[1]
    pos = torch.arange(L, device=valid.device)
    allowed = (pos[:, None] - pos[None, :]).abs() <= window // 2  # (L, L) band
    if global_cls:
        allowed = allowed | (pos[:, None] == 0) | (pos[None, :] == 0)
    eye = torch.eye(L, dtype=torch.bool, device=valid.device)
    return ((allowed[None] & valid[:, None, :]) | eye[None]).unsqueeze(1)  # (B, 1, L, L)


@dataclass
class Pattern:
    """One forward's attention pattern, built once and shared by every layer.

    ``full``: the (B, 1, L, L) reference mask. ``blocked``: queries in blocks of s = window // 2; block i sees
    key blocks i-1, i, i+1 (3s keys, a superset of every query's band) plus a global [CLS] slot in front,
    masked down to exactly the reference pattern; the [CLS] query row is computed apart over all keys.
    Same keys per query as ``full``, so the same outputs; O(L * window) memory instead of O(L^2).
    """

    length: int  # L
    full: Tensor | None = None  # (B, 1, L, L) bool
    block: int = 0  # s
    local: Tensor | None = None  # (B, 1, nb, s, 1 + 3s) bool; slot 0 = [CLS]
    cls: Tensor | None = None  # (B, 1, 1, L) bool: the [CLS] query's keys (global attention only)


def attention_pattern(valid: Tensor, window: int, global_cls: bool, blocked: bool) -> Pattern:
    """(B, L) real-token mask -> :class:`Pattern`; ``blocked`` only pays off past ~4 blocks, so shorter
    inputs take the full mask (identical result)."""
    B, L = valid.shape
    s = window // 2
    if not blocked or L <= 4 * s:
        return Pattern(L, full=longformer_mask(valid, window, global_cls))
    nb = -(-L // s)
    dev = valid.device
    qpos = torch.arange(nb * s, device=dev).view(nb, s)  # (nb, s)
    kpos = (torch.arange(nb, device=dev)[:, None] - 1) * s + torch.arange(3 * s, device=dev)  # (nb, 3s)
    inside = (kpos >= 0) & (kpos < L)
    kvalid = valid[:, kpos.clamp(0, L - 1)] & inside  # (B, nb, 3s)
    band = (qpos[:, :, None] - kpos[:, None, :]).abs() <= s  # (nb, s, 3s)
    if global_cls:
        band = band & (kpos[:, None, :] != 0)  # position 0 sits in the global slot, never twice
    local = (band[None] & kvalid[:, :, None, :]) | (qpos[:, :, None] == kpos[:, None, :])[None]  # + itself
    slot = torch.full((B, nb, s, 1), global_cls, dtype=torch.bool, device=dev)
    cls = valid[:, None, None, :] if global_cls else None
    return Pattern(L, block=s, local=torch.cat([slot, local], dim=-1).unsqueeze(1), cls=cls)


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool mask -> 0 / -inf in the query's dtype (CPU SDPA ran 25% faster with it than with a bool mask)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def attend(q: Tensor, k: Tensor, v: Tensor, pattern: Pattern, dropout_p: float) -> Tensor:
    """Multi-head attention under ``pattern``: q, k, v (B, H, L, d) -> (B, H, L, d)."""
    if pattern.full is not None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=_additive(pattern.full, q.dtype), dropout_p=dropout_p)
    B, H, L, d = q.shape
    s = pattern.block
    nb = pattern.local.shape[2]
    pad = nb * s - L
    qb = F.pad(q, (0, 0, 0, pad)).view(B, H, nb, s, d)
    kp, vp = F.pad(k, (0, 0, s, s + pad)), F.pad(v, (0, 0, s, s + pad))  # (B, H, (nb + 2) s, d)
    kb = kp.unfold(2, 3 * s, s).transpose(-1, -2)  # (B, H, nb, 3s, d): blocks i-1, i, i+1
    vb = vp.unfold(2, 3 * s, s).transpose(-1, -2)
    kb = torch.cat([k[:, :, None, :1].expand(B, H, nb, 1, d), kb], dim=3)  # [CLS] slot first
    vb = torch.cat([v[:, :, None, :1].expand(B, H, nb, 1, d), vb], dim=3)
    y = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=_additive(pattern.local, q.dtype), dropout_p=dropout_p)
    y = y.reshape(B, H, nb * s, d)[:, :, :L]
    if pattern.cls is None:
        return y
    y0 = F.scaled_dot_product_attention(q[:, :, :1], k, v, attn_mask=_additive(pattern.cls, q.dtype),
                                        dropout_p=dropout_p)  # (B, H, 1, d): [CLS] sees everything
    return torch.cat([y0, y[:, :, 1:]], dim=2)


class Block(nn.Module):
    """BERT post-LN block: x = LN(x + Attn(x)); x = LN(x + FFN(x)), GELU (erf) feed-forward."""

    def __init__(self, cfg: RecformerConfig) -> None:
        super().__init__()
        self.heads, self.attn_p = cfg.heads, cfg.attention_dropout
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)  # query, key, value stacked (BERT's three Linears)
        self.attn_out = nn.Linear(cfg.hidden, cfg.hidden)
        self.ln1 = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden, cfg.ffn)
        self.ffn_out = nn.Linear(cfg.ffn, cfg.hidden)
        self.ln2 = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, pattern: Pattern) -> Tensor:  # x (B, L, D)
        B, L, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, L, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, d)
        y = attend(q, k, v, pattern, self.attn_p if self.training else 0.0)  # (B, H, L, d)
        x = self.ln1(x + self.drop(self.attn_out(y.transpose(1, 2).reshape(B, L, D))))
        return self.ln2(x + self.drop(self.ffn_out(F.gelu(self.ffn_in(x)))))


class MLMHead(nn.Module):
    """BERT's LM head: dense -> GELU -> LayerNorm -> decoder tied to the token embedding table (+ bias)."""

    def __init__(self, cfg: RecformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.ln = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, h: Tensor, token_weight: Tensor) -> Tensor:  # (N, D), (vocab, D) -> (N, vocab) logits
        # The decoder weight is passed in, not held, so the state dict stores the token table once.
        return self.ln(F.gelu(self.dense(h))) @ token_weight.T + self.bias


def check_config(config: RecformerConfig) -> None:
    """Raise ConfigError naming the first bad ``model.*`` key."""
    if config.hidden % config.heads:
        raise ConfigError(f"config key 'model.hidden': {config.hidden} is not divisible by heads={config.heads}")
    if config.attention_window < 2 or config.attention_window % 2:
        raise ConfigError(f"config key 'model.attention_window': expected an even value >= 2, got "
                          f"{config.attention_window}")
    for key, low in (("max_tokens", 2), ("max_items", 1), ("layers", 1), ("vocab_size", 1)):
        if getattr(config, key) < low:
            raise ConfigError(f"config key 'model.{key}': expected >= {low}, got {getattr(config, key)}")
    if not config.temperature > 0:
        raise ConfigError(f"config key 'model.temperature': expected > 0, got {config.temperature}")
    if config.attention not in ("blocked", "full"):
        raise ConfigError(f"config key 'model.attention': expected 'blocked' or 'full', got {config.attention!r}")
    if config.init not in ("random", "minilm"):
        raise ConfigError(f"config key 'model.init': expected 'random' or 'minilm', got {config.init!r}")
    if config.item_matrix not in ITEM_MATRIX_VARIANTS:
        raise ConfigError(f"config key 'model.item_matrix': expected one of {', '.join(ITEM_MATRIX_VARIANTS)}, "
                          f"got {config.item_matrix!r}")
    for key in ("stage1_epochs", "stage2_patience", "encode_batch_size"):
        value = getattr(config, key)
        if value is not None and value < 1:
            raise ConfigError(f"config key 'model.{key}': expected >= 1, got {value}")


class Recformer(SequenceModel):
    Config = RecformerConfig
    window_stride = 1  # one training window per target position: only a history's newest item is predicted
    derived_tensors = ("item_matrix",)  # computed from the weights and the catalogue's text, never transferred
    PRESETS = {
        # tests and the quickstart; trained from scratch, so a wider init (see the module docstring)
        "tiny": {"hidden": 64, "layers": 2, "heads": 2, "ffn": 256, "max_tokens": 256, "init_std": 0.05},
        "mini": {"hidden": 256, "layers": 6, "heads": 4, "ffn": 1024, "max_tokens": 512},  # the seed's mini
        "minilm": {"hidden": 384, "layers": 6, "heads": 12, "ffn": 1536, "max_tokens": 512, "init": "minilm"},
        "base": {"hidden": 768, "layers": 12, "heads": 12, "ffn": 3072, "max_tokens": 1024},
    }

    def __init__(self, config: RecformerConfig, num_items: int, max_len: int) -> None:
        super().__init__()
        check_config(config)
        self.config = config
        self.num_items, self.max_len = num_items, max_len
        D = config.hidden
        self.token_emb = nn.Embedding(config.vocab_size, D, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_tokens, D)
        self.type_emb = nn.Embedding(4, D)  # CLS / KEY / VALUE / PAD
        self.item_pos_emb = nn.Embedding(config.max_items + 1, D)  # 0 = CLS, k = k-th most recent item
        self.emb_ln = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.emb_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.mlm_head = MLMHead(config)  # pre-training only; decoder tied to token_emb
        self.apply(lambda m: init_normal(m, config.init_std))
        # I: normalised item representations, row 0 = padding (zeros); saved with the model. A parameter so the
        # ablation variants can train it (set_item_trainable); frozen (no gradient) unless one does.
        self.item_matrix = nn.Parameter(torch.zeros(num_items + 1, D), requires_grad=False)
        self.text: TextSource | None = None  # set by attach_text; derived from data, never checkpointed
        if config.init == "minilm":
            load_minilm(self, Path(config.weights_dir) if config.weights_dir else minilm_dir())

    # ---- inputs ------------------------------------------------------------------------------------------

    def attach_text(self, text: TextSource) -> None:
        """Give the model its catalogue's text (needed by forward / encode_items / prediction_hidden); build it
        with ``seqrec.data.text.text_collator(model.config, item_tokens, max_len)``."""
        cfg = self.config
        if text.num_items != self.num_items:
            raise ValueError(f"item text covers {text.num_items} items, the model {self.num_items}")
        if text.max_tokens > cfg.max_tokens or text.max_items > cfg.max_items:
            raise ValueError(f"item text cuts at {text.max_items} items / {text.max_tokens} tokens, the model "
                             f"has tables for {cfg.max_items} / {cfg.max_tokens}")
        self.text = text

    def text_batch(self, histories: Tensor | np.ndarray, pad_to: int | None = None) -> TextBatch:
        """Histories of item ids (B, T), 0 = padding, oldest first -> this model's padded text inputs (CPU)."""
        if self.text is None:
            raise RuntimeError("Recformer needs its item texts: call model.attach_text(text_collator(...)) first")
        return self.text(histories, pad_to=pad_to)

    # ---- encoder -----------------------------------------------------------------------------------------

    def embed(self, batch: TextBatch, tokens: Tensor | None = None) -> Tensor:  # -> (B, L, D)
        """Sum of the four embeddings -> LayerNorm -> dropout; ``tokens`` overrides ``batch.tokens`` (MLM)."""
        if batch.tokens.shape[1] > self.config.max_tokens:
            raise ValueError(f"batch of {batch.tokens.shape[1]} tokens exceeds max_tokens={self.config.max_tokens}")
        x = (self.token_emb(batch.tokens if tokens is None else tokens) + self.pos_emb(batch.positions)
             + self.type_emb(batch.token_types) + self.item_pos_emb(batch.item_positions))
        return self.emb_drop(self.emb_ln(x))

    def encode(self, batch: TextBatch, tokens: Tensor | None = None) -> Tensor:  # -> (B, L, D) token states
        cfg = self.config
        pattern = attention_pattern(batch.mask, cfg.attention_window, cfg.global_attention, cfg.attention == "blocked")
        x = self.embed(batch, tokens)
        for block in self.blocks:
            x = block(x, pattern)
        return x

    def encode_sequences(self, batch: TextBatch) -> Tensor:  # -> (B, D) raw [CLS] states
        return self.encode(batch)[:, 0]

    def scores_hidden(self, cls: Tensor) -> Tensor:  # (B, D) -> normalize / tau, the "hidden" losses see
        return F.normalize(cls, dim=-1) / self.config.temperature

    def mlm_logits(self, states: Tensor) -> Tensor:  # (N, D) token states -> (N, vocab), decoder = token table
        return self.mlm_head(states, self.token_emb.weight)

    # ---- item matrix I ---------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_items(self, text: TextSource | None = None, batch_size: int = 256) -> Tensor:
        """Every item alone (``[CLS]`` + its tokens), eval mode, no grad -> (V + 1, D) raw [CLS]; row 0 = zeros.

        Items are batched in order of token count so each batch pads little; results do not depend on it.
        """
        text = text if text is not None else self.text
        if text is None:
            raise RuntimeError("Recformer.encode_items needs item text (argument or attach_text)")
        device = self.item_matrix.device
        out = torch.zeros(text.num_items + 1, self.config.hidden, device=device)
        order = np.argsort(text.item_lengths()[1:], kind="stable") + 1  # (V,) ids, shortest first
        was_training = self.training
        self.eval()
        try:
            for s in range(0, len(order), batch_size):
                ids = order[s : s + batch_size]
                out[torch.as_tensor(ids, device=device)] = self.encode_sequences(text.alone(ids).to(device)).float()
        finally:
            self.train(was_training)
        return out

    @torch.no_grad()
    def set_item_matrix(self, reps: Tensor) -> None:
        """Store ``normalize(reps)`` (V + 1, D) as I; row 0 stays zeros."""
        if reps.shape != self.item_matrix.shape:
            raise ValueError(f"item matrix must be {tuple(self.item_matrix.shape)}, got {tuple(reps.shape)}")
        self.item_matrix.copy_(F.normalize(reps.float(), dim=-1))
        self.item_matrix[0].zero_()

    def refresh_item_matrix(self, batch_size: int | None = None) -> None:
        """Re-encode the catalogue into I (fine-tuning stage 1 calls this at every epoch start)."""
        self.set_item_matrix(self.encode_items(batch_size=batch_size or self.config.encode_batch_size))

    def set_item_trainable(self, trainable: bool) -> None:
        """I as a free table updated by the optimizer (ablation variants) or fixed (no gradient)."""
        self.item_matrix.requires_grad_(trainable)

    def item_weight(self) -> Tensor:  # (V + 1, D) I with rows normalised; row 0 = zeros
        """Fixed I is stored normalised and returned as is (no gradient); a trained I is normalised here, so
        scores stay cosine / tau, and its padding row gets no gradient."""
        weight = self.item_matrix
        if not weight.requires_grad:
            return weight
        return torch.cat([torch.zeros_like(weight[:1]), F.normalize(weight[1:], dim=-1)])

    def param_groups(self, weight_decay: float) -> list[dict]:
        """The base groups without I, plus I in its own group (no decay) whether or not it trains now: the
        optimizer's layout is then the same in every stage and variant, so a checkpoint resumes in any of them
        (AdamW skips a parameter without gradient)."""
        groups = super().param_groups(weight_decay)
        for group in groups:
            group["params"] = [p for p in group["params"] if p is not self.item_matrix]
        return [*groups, {"params": [self.item_matrix], "weight_decay": 0.0}]

    def freeze_pretraining_head(self) -> None:
        """Fine-tuning never reads the MLM head: no gradient, no optimizer state, nothing DDP waits for."""
        self.mlm_head.requires_grad_(False)

    # ---- SequenceModel contract --------------------------------------------------------------------------

    def forward(self, items: Tensor) -> Tensor:  # (B, T) left-padded histories -> (B, 1, D)
        """One state per history (its [CLS], normalised / tau), not one per position: Recformer reads the
        whole history as one text, so only the newest position is predicted (see ``training_example``)."""
        batch = self.text_batch(items).to(self.item_matrix.device)
        return self.scores_hidden(self.encode_sequences(batch)).unsqueeze(1)

    def training_example(self, window: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``window`` (B, T + 1) -> inputs (B, T), targets (B, 1) = the newest item; an empty history predicts
        nothing (target 0)."""
        inputs = window[:, :-1]
        targets = window[:, -1:].clone()
        targets[(inputs == 0).all(dim=1)] = 0
        return inputs, targets

    def prediction_hidden(self, history: Tensor) -> Tensor:  # (B, T) -> (B, D) normalize(CLS) / tau
        return self.forward(history)[:, 0]
