"""Recformer cost per preset: parameters, training step time and peak RSS at one batch shape, on CPU.

Every (preset, threads) cell runs in its own process, so peak RSS is that cell's alone. A step is one
fine-tuning step: encode a batch of histories (``--batch`` x ``--tokens`` tokens, every row full), cos / tau
scores against the item matrix, chunked CE, backward, AdamW step. ``base`` (max_tokens 1024) is measured at the
same ``--tokens`` length as the others. ``--compare-attention`` instead times the encoder's forward + backward
(mini sizes, batch 8 x 512, 1 thread) for this model's two SDPA attention paths (``blocked``: banded key
blocks; ``full``: one (L, L) mask) and for transformers' ``LongformerModel`` (random weights, same sizes,
window 64, global attention on token 0), each with attention dropout 0.1 (the default) and 0.

    python benchmarks/recformer_cost.py                        # mini, minilm, base x 1 and 2 threads
    python benchmarks/recformer_cost.py --compare-attention
    python benchmarks/recformer_cost.py --presets mini --threads 1 --steps 2

Results are merged into ``benchmarks/results/recformer_cost.json`` (keys ``cost`` and ``attention``), with the
machine's load average before and after each cell: on a shared machine, a loaded run is slower and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "recformer_cost.json"
NUM_ITEMS = 10_000  # catalogue size of the item matrix the CE scores against (small next to the encoder)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def full_batch(model, batch: int, tokens: int, seed: int = 0):
    """``batch`` histories of 50 items x 24 tokens, cut to ``tokens``: every row exactly ``tokens`` long."""
    import numpy as np

    from seqrec.data.text import KEY, VALUE, ItemTokens, text_collator

    rng = np.random.default_rng(seed)
    lens = np.full(model.num_items + 1, 24)
    lens[0] = 0
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    toks = rng.integers(1000, 30000, int(lens.sum())).astype(np.int32)
    types = np.where(np.arange(len(toks)) % 8 == 0, KEY, VALUE).astype(np.int8)
    items = ItemTokens(offsets, toks, types)
    model.attach_text(text_collator(model.config, items, max_len=50))
    hist = rng.integers(1, model.num_items + 1, (batch, 50))
    out = collate_to(model, hist, tokens)
    assert out.tokens.shape == (batch, tokens) and bool(out.mask.all())
    return out


def collate_to(model, hist, tokens: int):
    """The model's own collation, cut at ``tokens`` (base keeps max_tokens 1024 but is timed at 512)."""
    from seqrec.data.text import collate

    return collate(hist, model.text.items, max_items=50, max_tokens=tokens, cls_id=model.config.cls_token_id)


def worker_cost(preset: str, threads: int, batch: int, tokens: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from seqrec.losses.ce import chunked_cross_entropy
    from seqrec.models.recformer import Recformer, RecformerConfig

    rss_start = current_rss_mb()
    torch.manual_seed(0)
    model = Recformer(RecformerConfig(**Recformer.PRESETS[preset]), num_items=NUM_ITEMS, max_len=50)
    model.set_item_matrix(torch.randn(NUM_ITEMS + 1, model.config.hidden))
    text = full_batch(model, batch, tokens)
    targets = torch.randint(1, NUM_ITEMS + 1, (batch,))
    params = [p for n, p in model.named_parameters() if not n.startswith("mlm_head.")]  # fine-tuning: no MLM
    opt = torch.optim.AdamW(params, lr=1e-4)
    rss_model = current_rss_mb()
    model.train()
    times = []
    for s in range(steps + 1):  # step 0 warms up (allocator, AdamW state)
        t0 = time.perf_counter()
        hidden = model.scores_hidden(model.encode_sequences(text))  # (B, D)
        loss = chunked_cross_entropy(hidden, model.item_weight(), targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if s:
            times.append(time.perf_counter() - t0)
    return {
        "preset": preset, "threads": threads, "batch": batch, "tokens": tokens,
        "max_tokens": model.config.max_tokens, "params": model.num_parameters(),
        "params_encoder": sum(p.numel() for p in params),
        "step_s_median": statistics.median(times), "step_s_min": min(times), "steps": steps,
        "rss_start_mb": rss_start, "rss_model_mb": rss_model, "peak_rss_mb": peak_rss_mb(),
    }


def worker_attention(impl: str, batch: int, tokens: int, steps: int, attention_dropout: float) -> dict:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if impl == "longformer":
        from transformers import LongformerConfig, LongformerModel

        cfg = LongformerConfig(
            vocab_size=30522, hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024,
            attention_window=64, max_position_embeddings=tokens + 2, type_vocab_size=4,
            attention_probs_dropout_prob=attention_dropout,
        )
        model = LongformerModel(cfg, add_pooling_layer=False).train()
        ids = torch.randint(1000, 30000, (batch, tokens))
        glob = torch.zeros(batch, tokens, dtype=torch.long)
        glob[:, 0] = 1

        def step() -> None:
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), global_attention_mask=glob)
            out.last_hidden_state.pow(2).mean().backward()
    else:
        from seqrec.models.recformer import Recformer, RecformerConfig

        overrides = {"attention_dropout": attention_dropout, "attention": impl}
        cfg = RecformerConfig(**{**Recformer.PRESETS["mini"], **overrides})
        model = Recformer(cfg, num_items=NUM_ITEMS, max_len=50).train()
        text = full_batch(model, batch, tokens)

        def step() -> None:
            model.encode(text).pow(2).mean().backward()

    times = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        step()
        model.zero_grad(set_to_none=True)
        if s:
            times.append(time.perf_counter() - t0)
    return {"impl": impl, "attention_dropout": attention_dropout, "batch": batch, "tokens": tokens, "threads": 1,
            "fwd_bwd_s_median": statistics.median(times), "fwd_bwd_s_min": min(times), "steps": steps,
            "peak_rss_mb": peak_rss_mb()}


def run_cell(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"error: cell {args} failed: {proc.stderr.strip().splitlines()[-1:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["load_1min_before"], row["load_1min_after"] = load_before, os.getloadavg()[0]
    return row


def print_cost(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Recformer fine-tuning step (CPU)")
    for c in ("preset", "threads", "params", "step s (median)", "peak RSS MB", "RSS growth MB", "load"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["preset"], str(r["threads"]), f"{r['params'] / 1e6:.1f}M", f"{r['step_s_median']:.2f}",
                  f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] - r['rss_start_mb']:.0f}",
                  f"{r['load_1min_before']:.1f}/{r['load_1min_after']:.1f}")
    Console().print(t)


def ratios(rows: list[dict]) -> dict:
    """mini / base per thread count: step time, peak RSS, and peak RSS growth past the bare interpreter."""
    out = {}
    by = {(r["preset"], r["threads"]): r for r in rows}
    for (preset, threads), r in by.items():
        base = by.get(("base", threads))
        if preset != "mini" or base is None:
            continue
        out[f"mini_over_base_threads{threads}"] = {
            "step_time": r["step_s_median"] / base["step_s_median"],
            "peak_rss": r["peak_rss_mb"] / base["peak_rss_mb"],
            "peak_rss_growth": (r["peak_rss_mb"] - r["rss_start_mb"]) / (base["peak_rss_mb"] - base["rss_start_mb"]),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="mini,minilm,base")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="timed steps per cell (after one warm-up step)")
    p.add_argument("--compare-attention", action="store_true")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    sys.path.insert(0, str(ROOT / "src"))  # this checkout's seqrec, also in the parent process
    if a.worker:
        kind, *rest = a.worker
        if kind == "cost":
            row = worker_cost(rest[0], int(rest[1]), a.batch, a.tokens, a.steps)
        else:
            row = worker_attention(rest[0], a.batch, a.tokens, a.steps, float(rest[1]))
        print(json.dumps(row))
        return
    result = json.loads(a.output.read_text()) if a.output.is_file() else {}
    import torch

    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                         "python": platform.python_version()}
    if a.compare_attention:
        rows = []
        for impl in ("blocked", "full", "longformer"):
            for drop in ("0.1", "0.0"):
                rows.append(run_cell(["attention", impl, drop, "--batch", "8", "--tokens", "512",
                                      "--steps", str(a.steps)]))
                print(json.dumps(rows[-1]))
        result["attention"] = {"command": " ".join(["python benchmarks/recformer_cost.py", *sys.argv[1:]]),
                               "rows": rows}
    else:
        rows = []
        for preset in a.presets.split(","):
            for threads in (int(t) for t in a.threads.split(",")):
                rows.append(run_cell(["cost", preset, str(threads), "--batch", str(a.batch), "--tokens",
                                      str(a.tokens), "--steps", str(a.steps)]))
                print(json.dumps(rows[-1]), flush=True)
        result["cost"] = {"command": " ".join(["python benchmarks/recformer_cost.py", *sys.argv[1:]]),
                          "num_items": NUM_ITEMS, "rows": rows, "ratios": ratios(rows)}
        print_cost(rows)
        print(json.dumps(result["cost"]["ratios"], indent=2))
    a.output.parent.mkdir(parents=True, exist_ok=True)
    from seqrec.io import atomic_write_json

    atomic_write_json(a.output, result)


if __name__ == "__main__":
    main()
