"""Model refresh on ML-100K (issue #14, scenario a): full fine-tuning vs LoRA vs iLoRA vs retraining from scratch
vs not refreshing, all on the same post-cutoff test.

    SEQREC_DATA_DIR=/work/shared/data python benchmarks/peft_refresh.py       # 3 seeds, ~60 min on 1 busy thread
    python benchmarks/peft_refresh.py --seeds 42 --fast                         # smoke run (minutes)

Protocol (global temporal, cutoffs are quantiles of all ML-100K timestamps):

- T_old = q(0.6), T_eval = q(0.9). The OLD model is BERT4Rec with the shipped recipe
  (``configs/bert4rec-ml-100k.yaml``, 40 epochs) trained on the interactions with t <= T_old only (an in-memory
  frame, so its catalogue is the items seen by then), leave-one-out inside that log for early stopping.
- REFRESH data (``configs/refresh/*.yaml``): the whole log split ``global_temporal`` at q(0.9): training pool
  t <= T_eval; validation = the last pool interaction of 20% of the users (removed from their training
  sequence). Catalogue: all ML-100K items, so items first seen in (T_old, T_eval] are new to the old model.
- TEST (the compared numbers): every interaction after T_eval that has an earlier interaction of its user, each
  predicted from all of that user's earlier interactions (pool plus the post-T_eval ones before it: what a
  deployed model reads, never trained on), full-catalogue ranking, seen items filtered; 95% CIs bootstrap USERS
  (a user's events move together). The split's own test (the LAST post-T_eval interaction of the 90 users with
  history on both sides, from their pool alone) is reported as ``test_last_item``: with 90 users its CI is as
  wide as the differences (+-0.03), so it is not what the variants are compared on.
- Variants, per seed (42, 43, 44; the seed of the old model too). All but ``scratch`` start from that seed's
  old model via ``--init-from`` (item rows mapped by original item id, new items freshly initialised):
  ``stale`` the old model evaluated as is (not refreshed); ``full`` every parameter fine-tuned; ``lora`` peft
  LoRA on the attention + feed-forward linears plus the item table (``modules_to_save: [item_emb]``: the
  catalogue changed); ``ilora`` iLoRA with the same rank split into K experts, plus the item table;
  ``scratch`` the recipe retrained from random init on the refresh data (40 epochs).
- Budget: fine-tuning runs 15 epochs at most (patience 5); the old model and scratch the recipe's 40 (patience
  10). Hyper-parameters: the learning rate of each fine-tuning variant is chosen on refresh-VALIDATION NDCG@10
  with seed 42 from a small grid (``GRIDS``); seeds 43 and 44 rerun the chosen value.
- Costs: trainable share (with and without the item table), optimizer step time (training epoch time / steps),
  peak RSS of the training process (each run its own process; peft's import adds ~100 MB to the LoRA runs),
  training-state memory (fp32 weights of every parameter + gradient and two AdamW moments of the trainable
  ones), adapter file size, training time. LoRA runs also score the merged model (``merge_adapters``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "refresh"
RECIPE = ROOT / "configs" / "bert4rec-ml-100k.yaml"
OUT = ROOT / "benchmarks" / "results" / "peft_refresh.json"
Q_OLD = 0.6  # T_old; the refresh configs hold T_eval (data.temporal_quantile 0.9)
VARIANTS = ("stale", "full", "lora", "ilora", "scratch")
GRIDS: dict[str, list[float]] = {v: [1e-3, 3e-3, 1e-2] for v in ("full", "lora", "ilora")}  # train.lr
COMMON = ["train.threads=1", "train.progress=false"]


# ---- cells (each runs in its own process: python peft_refresh.py --cell JSON) ---------------------------------


def _old_dataset(data_dir: str):
    """ML-100K interactions with t <= T_old as an in-memory frame (leave-one-out), and T_old."""
    import polars as pl

    from seqrec.api import Dataset
    from seqrec.config import build_config
    from seqrec.data.prepare import read_source, resolve_data_dir, resolve_source

    cfg = build_config({"data": {"name": "ml-100k"}}).data
    raw, features = read_source(cfg, resolve_source(cfg, resolve_data_dir(data_dir)))
    t_old = float(np.quantile(raw["timestamp"].to_numpy(), Q_OLD))
    old = raw.filter(pl.col("timestamp") <= t_old).select("user", "item", "timestamp")
    titles = features.select("item", "title") if features is not None else None
    data = Dataset.from_polars(old, user_col="user", item_col="item", time_col="timestamp", item_text=titles,
                               max_len=50, min_user_interactions=0, min_item_interactions=0)
    return data, t_old


def test_events(data_dir: str, data: Any) -> Any:
    """Every interaction after T_eval that has a predecessor, as an EvalSet: input = all the user's earlier
    interactions (also those after T_eval: what a deployed model reads), target = the interaction."""
    from seqrec.config import build_config
    from seqrec.data.prepare import read_source, resolve_data_dir, resolve_source
    from seqrec.data.preprocess import preprocess
    from seqrec.data.sequences import EvalSet
    from seqrec.data.split import take_prefixes

    cfg = build_config({"data": {"name": "ml-100k"}}).data
    raw, _ = read_source(cfg, resolve_source(cfg, resolve_data_dir(data_dir)))
    inter, _ = preprocess(raw, min_user_interactions=0, min_item_interactions=0, source="ml-100k")
    if list(inter.item_ids) != list(data.item_ids):
        raise SystemExit("test events: item ids differ from the refresh data's")
    offsets, lengths = inter.offsets(), np.diff(inter.offsets())
    position = np.arange(len(inter.items)) - np.repeat(offsets[:-1], lengths)  # index within the user's sequence
    user = np.repeat(np.arange(inter.num_users), lengths)
    chosen = np.flatnonzero((np.asarray(inter.times, dtype=np.float64) > data.stats["cutoff"]) & (position >= 1))
    return EvalSet(users=user[chosen].astype(np.int64), targets=inter.items[chosen].astype(np.int64),
                   inputs=take_prefixes(offsets, inter.items, user[chosen], position[chosen]))


def _events_eval(model: Any, cfg: Any, data: Any, events: Any, out: Path) -> dict[str, Any]:
    """Metrics on the test events; per-event NDCG@10 and users saved beside the run (for paired bootstraps)."""
    from seqrec.eval.ranking import evaluate, model_scorer

    model.eval()
    res = evaluate(model_scorer(model), events, data, cfg.data.max_len, ks=cfg.eval.ks, bootstrap=0,
                   filter_seen=cfg.eval.filter_seen, keep_per_user=True)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "events_ndcg10.npy", res.per_user["NDCG@10"])
    np.save(out / "events_users.npy", events.users)
    return {"NDCG@10": res.metrics["NDCG@10"], "HR@10": res.metrics["HR@10"], "events": len(events),
            "users": int(len(np.unique(events.users))), "file": str(out / "events_ndcg10.npy")}


def cell(spec: dict[str, Any]) -> dict[str, Any]:
    """One run: ``{"kind": old|stale|fit, "variant", "seed", "lr", "out", "data_dir", "fast"}`` -> result row.

    A run directory that already holds a finished run is reused (its metrics.json gives the training costs), so
    an interrupted study continues where it stopped."""
    from seqrec.api import Recommender
    from seqrec.config import load_config
    from seqrec.data import prepare_data

    kind, seed, out = spec["kind"], spec["seed"], Path(spec["out"])
    fast = ["train.epochs=2"] if spec.get("fast") else []
    if kind == "old":
        data, t_old = _old_dataset(spec["data_dir"])
        old_cfg = load_config(RECIPE, [*COMMON, f"train.seed={seed}", *fast])
        if not _finished(out, old_cfg, None, skip_data_name=True):
            Recommender(old_cfg).fit(data, output_dir=out, overwrite=True)
        m = json.loads((out / "metrics.json").read_text())
        return {"kind": kind, "seed": seed, "t_old": t_old, "items": data.data.num_items,
                "valid_NDCG@10": m["valid"]["NDCG@10"], "epochs": m["epochs_trained"],
                "train_time_s": m["train_time_s"], "run": str(out)}
    variant = spec["variant"]
    config_file = CONFIGS / f"{'full' if variant == 'stale' else variant}.yaml"
    sets = [*COMMON, f"train.seed={seed}", *fast, *([f"train.lr={spec['lr']}"] if spec.get("lr") else [])]
    cfg = load_config(config_file, sets)
    data = prepare_data(cfg.data, spec["data_dir"])
    events = test_events(spec["data_dir"], data)
    if kind == "stale":
        return _stale(cfg, data, events, spec["init"], seed, out)
    if not _finished(out, cfg, spec.get("init")):
        Recommender(cfg).fit(output_dir=out, data_dir=spec["data_dir"], overwrite=True, init_from=spec.get("init"))
    rec = Recommender.load(out)
    m = rec.metrics
    row = {"kind": kind, "variant": variant, "seed": seed, "lr": cfg.train.lr, "valid_NDCG@10": m["valid"]["NDCG@10"],
           "test_events": _events_eval(rec.model, cfg, data, events, out),
           "test_last_item": {"NDCG@10": m["test"]["NDCG@10"], "HR@10": m["test"]["HR@10"],
                              "ci95": m["test_ci95"]["NDCG@10"], "users": m["num_test_users"]},
           "init": {k: m["init_from"][k] for k in ("catalogue", "mapped", "reinitialised", "dropped")
                    if k in m["init_from"]} if "init_from" in m else None,
           **_costs(m, cfg, data), "run": str(out)}
    adapter = out / "adapter.safetensors"
    if adapter.is_file():
        from seqrec.train.adapters import is_adapter_key

        row["adapter_file_kb"] = adapter.stat().st_size / 1024
        row["adapter_only_params"] = sum(p.numel() for n, p in rec.model.named_parameters() if is_adapter_key(n))
    if variant == "lora":  # merged export scores like the adapted model
        merged = rec.merge_adapters()
        row["merged_test_events_NDCG@10"] = _events_eval(merged.model, cfg, data, events, out / "merged")["NDCG@10"]
    return row


def _finished(out: Path, cfg: Any, init: str | None, skip_data_name: bool = False) -> bool:
    """``out`` holds a finished run of exactly this config, started from ``init`` (``--init-from``) and finished
    after it: then it is reused, not retrained. ``skip_data_name``: the old models train on an in-memory frame."""
    from seqrec.config import load_config

    if not (out / "metrics.json").is_file() or not (out / "config.yaml").is_file():
        return False
    exclude = {"train": {"threads", "progress"}, **({"data": {"name"}} if skip_data_name else {})}
    if load_config(out / "config.yaml").model_dump(exclude=exclude) != cfg.model_dump(exclude=exclude):
        return False
    ran_from = (json.loads((out / "metrics.json").read_text()).get("init_from") or {}).get("run")
    if (ran_from and str(Path(ran_from).resolve())) != (init and str(Path(init).resolve())):
        return False
    # a run older than the model it started from was fine-tuned from an earlier version of it
    return init is None or (out / "metrics.json").stat().st_mtime > (Path(init) / "metrics.json").stat().st_mtime


def _costs(m: dict[str, Any], cfg: Any, data: Any) -> dict[str, Any]:
    """Training costs from metrics.json: step time, peak RSS, training-state memory (fp32 weights for every
    parameter, gradient + two AdamW moments for the trainable ones), time, parameter counts."""
    from seqrec.data.windows import window_index

    steps_per_epoch = -(-len(window_index(data.train, cfg.data.max_len)[0]) // cfg.train.batch_size)
    total, trainable = m["total_params"], m["trainable_params"]
    return {"trainable_params": trainable, "total_params": total, "epochs": m["epochs_trained"],
            "best_epoch": m["best_epoch"], "step_time_ms": 1e3 * m["epoch_time_sum_s"] / (m["epochs_trained"]
                                                                                        * steps_per_epoch),
            "train_time_s": m["train_time_s"], "peak_rss_mb": m["peak_memory_mb"],
            "train_state_mb": (4 * total + 12 * trainable) / 2**20}


def _stale(cfg: Any, data: Any, events: Any, init: str, seed: int, out: Path) -> dict[str, Any]:
    """The old model on the refresh catalogue (item rows mapped, new items fresh), evaluated without training."""
    from rich.console import Console

    from seqrec.train.run import build_for, evaluate_split
    from seqrec.train.runtime import setup_process

    device = setup_process(1, seed, "cpu")
    model, report = build_for(cfg, data, device, Console(quiet=True), init_from=init)
    last = evaluate_split(model, data, cfg, "test", device)
    valid = evaluate_split(model, data, cfg, "valid", device, bootstrap=0)
    return {"kind": "stale", "variant": "stale", "seed": seed, "valid_NDCG@10": valid.metrics["NDCG@10"],
            "test_events": _events_eval(model, cfg, data, events, out),
            "test_last_item": {"NDCG@10": last.metrics["NDCG@10"], "HR@10": last.metrics["HR@10"],
                               "ci95": last.ci["NDCG@10"], "users": last.num_users},
            "trainable_params": 0, "total_params": sum(p.numel() for p in model.parameters()),
            "init": {k: report[k] for k in ("catalogue", "mapped", "reinitialised", "dropped") if k in report}}


# ---- orchestration ----------------------------------------------------------------------------------------


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--cell", json.dumps(spec)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise SystemExit(f"cell {spec} failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - t0
    print(json.dumps({k: v for k, v in row.items() if k != "run"}), flush=True)
    return row


def _seed_mean(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-event test NDCG@10 averaged over the variant's seeds, and the events' users (same events in every run)."""
    values = np.mean([np.load(r["test_events"]["file"]) for r in rows], axis=0)
    return values, np.load(Path(rows[0]["test_events"]["file"]).with_name("events_users.npy"))


def cluster_bootstrap(per_event: dict[str, np.ndarray], users: np.ndarray, n: int = 2000,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Bootstrap over USERS (a user's events move together: they are correlated) of each variant's mean per-event
    NDCG@10; the same resamples for every variant, so ratios between variants are paired. -> (n,) means each."""
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(users, return_inverse=True)
    n_users = int(inverse.max()) + 1
    draws = np.zeros((n, n_users))
    np.add.at(draws, (np.repeat(np.arange(n), n_users), rng.integers(0, n_users, size=n * n_users)), 1.0)
    counts = np.bincount(inverse, minlength=n_users)
    return {v: draws @ np.bincount(inverse, weights=x, minlength=n_users) / (draws @ counts)
            for v, x in per_event.items()}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: test-event NDCG@10 per seed, mean / sd over seeds, a 95% user-bootstrap CI of the seed mean,
    paired ratios to full fine-tuning and to not refreshing, the last-item test, and costs (means over seeds)."""
    present = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    per_event, users = {}, None
    for v in present:
        per_event[v], users = _seed_mean([r for r in rows if r["variant"] == v])
    boots = cluster_bootstrap(per_event, users)
    out: dict[str, Any] = {}
    for v in present:
        mine = [r for r in rows if r["variant"] == v]
        ndcg = [r["test_events"]["NDCG@10"] for r in mine]
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in mine], "test_NDCG@10": ndcg, "test_NDCG@10_mean": float(np.mean(ndcg)),
            "test_NDCG@10_sd": float(np.std(ndcg)), "test_NDCG@10_ci95": _ci(boots[v]),
            "test_HR@10_mean": float(np.mean([r["test_events"]["HR@10"] for r in mine])),
            "last_item_NDCG@10_mean": float(np.mean([r["test_last_item"]["NDCG@10"] for r in mine])),
            "valid_NDCG@10_mean": float(np.mean([r["valid_NDCG@10"] for r in mine])),
        }
        for ref in ("full", "stale"):
            if ref in boots and v != ref:
                entry[f"vs_{ref}"] = {"ratio": float(per_event[v].mean() / per_event[ref].mean()),
                                      "ci95": _ci(boots[v] / boots[ref])}
        for key in ("lr", "trainable_params", "total_params", "step_time_ms", "peak_rss_mb", "train_state_mb",
                    "train_time_s", "epochs", "adapter_file_kb", "adapter_only_params", "merged_test_events_NDCG@10"):
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                entry[key] = float(np.mean(values))
        if entry.get("total_params"):
            entry["trainable_pct"] = 100.0 * entry["trainable_params"] / entry["total_params"]
            if "adapter_only_params" in entry:
                entry["adapter_only_pct"] = 100.0 * entry["adapter_only_params"] / entry["total_params"]
        out[v] = entry
    return out


def _ci(draws: np.ndarray) -> list[float]:
    return [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    ap.add_argument("--seeds", default="42,43,44")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--fast", action="store_true", help="2 epochs per run (smoke test; numbers meaningless)")
    ap.add_argument("--data-dir", default=os.environ.get("SEQREC_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--work", default=str(ROOT / "out" / "peft_refresh"), help="run directories")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if args.cell:
        print(json.dumps(cell(json.loads(args.cell))))
        return
    if not (Path(args.data_dir) / "ml-100k").is_dir():
        print(f"skipped: ML-100K not found under {args.data_dir}")
        return
    t0 = time.perf_counter()
    seeds, variants, work = [int(s) for s in args.seeds.split(",")], args.variants.split(","), Path(args.work)
    base = {"data_dir": args.data_dir, "fast": args.fast}
    olds = {s: run_cell({**base, "kind": "old", "seed": s, "out": str(work / f"old-s{s}")}) for s in seeds}
    rows, trials, chosen = [], [], {}
    for v in variants:
        for i, s in enumerate(seeds):
            init = None if v == "scratch" else olds[s]["run"]
            spec = {**base, "kind": "stale" if v == "stale" else "fit", "variant": v, "seed": s, "init": init}
            if v in GRIDS and i == 0:  # choose the learning rate on validation with the first seed
                tried = [run_cell({**spec, "lr": lr, "out": str(work / f"{v}-s{s}-lr{lr:g}")}) for lr in GRIDS[v]]
                trials += [{k: r[k] for k in ("variant", "seed", "lr", "valid_NDCG@10")} for r in tried]
                best = max(tried, key=lambda r: r["valid_NDCG@10"])
                chosen[v] = best["lr"]
                rows.append(best)
                continue
            lr = chosen.get(v)
            rows.append(run_cell({**spec, **({"lr": lr} if lr else {}), "out": str(work / f"{v}-s{s}")}))
    result = {"command": "python benchmarks/" + " ".join([Path(__file__).name, *sys.argv[1:]]),
              "protocol": __doc__.split("Protocol", 1)[1].strip(), "q_old": Q_OLD, "old_models": list(olds.values()),
              "lr_trials": trials, "chosen_lr": chosen, "summary": summarise(rows), "rows": rows,
              "wall_s": time.perf_counter() - t0, "load_avg": os.getloadavg(), "fast": args.fast}
    atomic_write_text(Path(args.out), json.dumps(result, indent=1) + "\n")
    for v, e in result["summary"].items():
        ratio = e.get("vs_full", {})
        print(f"{v:8s} NDCG@10 {e['test_NDCG@10_mean']:.4f} ± {e['test_NDCG@10_sd']:.4f}  vs full "
              f"{ratio.get('ratio', float('nan')):.3f} {ratio.get('ci95', '')}  trainable "
              f"{e.get('trainable_pct', 0):.1f}%  step {e.get('step_time_ms', 0):.0f} ms")
    print(f"wrote {args.out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
