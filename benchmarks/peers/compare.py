"""Peer benchmark: seqrec vs RecBole 1.2.1 or RecTools 0.19.0, time-to-quality for SASRec, BERT4Rec and GRU4Rec.

Each (model, library) run is its own process with its own virtualenv's Python: ``seqrec_run.py`` in this one,
``recbole_run.py`` in ``benchmarks/peers/.venv-recbole`` (``bash benchmarks/peers/setup_recbole.sh`` makes it) or
``rectools_run.py`` in ``benchmarks/peers/.venv-rectools`` (``setup_rectools.sh``), chosen by ``--peer``.
Both train the seqrec recipe ``configs/<model>-<dataset>.yaml`` (the peer gets it resolved to plain values; RecTools
also gets seqrec's own split as integer arrays, RecBole re-splits the same ``ml-100k.inter`` identically) under the
same protocol (leave-one-out by time, full ranking, history filtered, early
stopping on validation NDCG@10) and log, after every epoch, the cumulative training wall time (training +
validation, the clock paused for the extra test evaluation) and the test NDCG@10 of the current weights.
Time-to-quality = that wall time at the first epoch whose test NDCG@10 reaches the threshold.

    python benchmarks/peers/compare.py                                   # RecBole, full run (hours: see README)
    python benchmarks/peers/compare.py --max-epochs 1 --out /tmp/peers_smoke.json   # smoke test
    python benchmarks/peers/compare.py --peer rectools --models sasrec,bert4rec
    python benchmarks/peers/compare.py --peer rectools --dataset ml-1m --models sasrec --out ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEER_PYTHON = {"recbole": HERE / ".venv-recbole" / "bin" / "python",
               "rectools": HERE / ".venv-rectools" / "bin" / "python"}
PEER_TITLE = {"recbole": "RecBole 1.2.1", "rectools": "RecTools 0.19.0"}
PEER_MODELS = {"recbole": ("sasrec", "bert4rec", "gru4rec"), "rectools": ("sasrec", "bert4rec")}
DATA_FILES = {"ml-100k": "ml-100k/ml-100k.inter", "ml-1m": "ml-1m/ml-1m.txt"}
DEFAULT_THRESHOLDS = {"ml-100k": "0.06,0.08,0.09", "ml-1m": "0.15,0.18"}

sys.path.insert(0, str(HERE))
from seqrec_run import export_split, recipe_path, resolved_recipe  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_one(lib: str, model: str, args: argparse.Namespace, console: Console) -> dict:
    """Run one (library, model) in its own process; returns its JSON (or an ``error`` record)."""
    with tempfile.TemporaryDirectory(prefix=f"peer-{lib}-{model}-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ)
        env.update({"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)})
        if lib == "seqrec":
            cmd = [sys.executable, str(HERE / "seqrec_run.py"), "--model", model, "--data-dir", args.data_dir,
                   "--dataset", args.dataset]
            if args.seqrec_config:
                cmd += ["--config", args.seqrec_config.format(model=model)]
        else:
            recipe = resolved_recipe(model, args.max_epochs, args.seed, args.dataset)
            recipe.pop("unmatched", None)
            if args.peer_max_epochs is not None:  # a slower-converging peer may need more epochs to reach a threshold
                recipe["epochs"] = args.peer_max_epochs
            env.setdefault("PYTHONWARNINGS", "ignore")
            if lib == "recbole":
                cmd = [str(args.peer_python), str(HERE / "recbole_run.py"), "--model", model,
                       "--data-path", args.data_dir, "--recipe", json.dumps(recipe)]
                env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
            else:  # RecTools trains and is scored on seqrec's own split (made here, before its clock starts)
                split = Path(tmp) / "split.npz"
                export_split(model, args.data_dir, split, args.dataset)
                cmd = [str(args.peer_python), str(HERE / "rectools_run.py"), "--model", model,
                       "--split", str(split), "--recipe", json.dumps(recipe)]
        cmd += ["--threads", str(args.threads), "--out", str(out)]
        if args.max_epochs is not None:
            cmd += ["--max-epochs", str(args.max_epochs)]
        if args.max_train_seconds is not None:
            cmd += ["--max-train-seconds", str(args.max_train_seconds)]
        if args.stop_at_last_threshold:
            cmd += ["--stop-at-test", str(max(args.threshold_values))]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        console.print(f"[bold]{lib} {model}[/]: {shlex.join(cmd[:4])} ...")
        tail: deque[str] = deque(maxlen=60)
        load_before = os.getloadavg()  # 1/5/15-minute load averages: how alone this run was
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=str(ROOT))
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if line.startswith(f"[{lib} "):  # the runners' own one-line-per-epoch progress
                console.print(line.rstrip("\n"), markup=False, highlight=False)
        rc = proc.wait()
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
        if rc != 0 or not out.is_file():
            console.print(f"[red]{lib} {model} failed (exit {rc})[/]")
            console.print("\n".join(tail), markup=False, highlight=False)
            return {"library": lib, "model": model, "error": f"exit {rc}", "log_tail": list(tail)[-20:]}
        result = json.loads(out.read_text())
    result["process_wall_s"] = wall
    result["load_average"] = {"before": list(load_before), "after": list(load_after)}
    return result


def time_to(run: dict, threshold: float) -> tuple[float, int] | None:
    """(cumulative training seconds, epoch) at the first epoch whose test NDCG@10 >= threshold."""
    for rec in run.get("epochs", []):
        if rec["test_NDCG@10"] is not None and rec["test_NDCG@10"] >= threshold:
            return rec["cum_train_s"], rec["epoch"]
    return None


def summarize(run: dict, thresholds: list[float]) -> dict:
    if "error" in run:
        return {"model": run["model"], "library": run["library"], "error": run["error"]}
    epochs = run["epochs"]
    label = run["library"]
    stem = Path(run.get("config") or "").stem
    if stem and stem != f"{run['model']}-{run.get('dataset', 'ml-100k')}":
        label += f" ({stem})"  # a recipe other than the shipped configs/<model>-<dataset>.yaml
    row = {
        "model": run["model"],
        "library": label,
        "epochs": run["epochs_trained"],
        "time_to": {},
        "total_train_s": run["total_train_s"],
        "best_epoch": run["best_epoch"],
        "test_NDCG@10": run["final"]["test"]["NDCG@10"],
        "test_HR@10": run["final"]["test"]["HR@10"],
        "s_per_epoch": sum(r["epoch_wall_s"] for r in epochs) / max(len(epochs), 1),
        "setup_s": run["setup_s"],
        "stopped_by_budget": run.get("stopped_by_budget", False),
        "stopped_at_test_threshold": run.get("stopped_at_test_threshold"),
        "load_average_after": run.get("load_average", {}).get("after"),
    }
    for thr in thresholds:
        hit = time_to(run, thr)
        row["time_to"][f"{thr:g}"] = None if hit is None else {"seconds": hit[0], "epoch": hit[1]}
    return row


def _fmt_time_to(v: dict | None) -> str:
    return "not reached" if v is None else f"{v['seconds']:.1f} s (ep {v['epoch']})"


def table_rows(rows: list[dict], thresholds: list[float]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "library", "epochs", *[f"time to NDCG@10 ≥ {t:g}" for t in thresholds], "total train wall",
              "best-valid epoch", "final test NDCG@10", "HR@10", "s/epoch", "setup"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["model"], r["library"], "failed: " + r["error"], *[""] * (len(header) - 3)])
            continue
        body.append([
            r["model"], r["library"], str(r["epochs"]) + (" (budget)" if r["stopped_by_budget"] else "")
            + (" (reached the last threshold)" if r.get("stopped_at_test_threshold") is not None else ""),
            *[_fmt_time_to(r["time_to"][f"{t:g}"]) for t in thresholds],
            f"{r['total_train_s']:.1f} s", str(r["best_epoch"]), f"{r['test_NDCG@10']:.4f}",
            f"{r['test_HR@10']:.4f}", f"{r['s_per_epoch']:.1f}", f"{r['setup_s']:.1f} s",
        ])
    return header, body


def markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", default="recbole", choices=sorted(PEER_PYTHON), help="the library beside seqrec")
    ap.add_argument("--dataset", default="ml-100k", choices=sorted(DATA_FILES),
                    help="recipes configs/<model>-<dataset>.yaml (RecBole: ml-100k only)")
    ap.add_argument("--models", default=None, help="default: every model the peer has")
    ap.add_argument("--libraries", default=None, help="default: seqrec,<peer>")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of each run (runs are sequential)")
    ap.add_argument("--thresholds", default=None,
                    help="test NDCG@10 values for time-to-quality (default: 0.06,0.08,0.09 ML-100K; 0.15,0.18 ML-1M)")
    ap.add_argument("--max-epochs", type=int, default=None, help="override every recipe's epoch cap (smoke tests)")
    ap.add_argument("--max-train-seconds", type=float, default=None,
                    help="stop a run after the first epoch whose cumulative training time reaches this")
    ap.add_argument("--seed", type=int, default=None, help="override train.seed (default: the recipes' 42)")
    ap.add_argument("--stop-at-last-threshold", action="store_true",
                    help="stop a run once its test NDCG@10 reaches the highest threshold (saves hours on ML-1M; "
                         "such a run's final metrics are marked and are not a protocol result)")
    ap.add_argument("--seqrec-config", default=None,
                    help="seqrec's recipe instead of configs/<model>-<dataset>.yaml ({model} is replaced); the peer "
                         "keeps the default recipe's values")
    ap.add_argument("--peer-max-epochs", type=int, default=None,
                    help="the peer's epoch cap (default: the recipe's, as seqrec); patience still applies")
    ap.add_argument("--data-dir", default=os.environ.get("SEQREC_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--peer-python", "--recbole-python", default=None,
                    help="the peer virtualenv's python (default: benchmarks/peers/.venv-<peer>/bin/python)")
    ap.add_argument("--out", default=None,
                    help="default: benchmarks/results/peers_<peer>.json (ML-100K), peers_<peer>_ml1m.json (ML-1M)")
    ap.add_argument("--append", action="store_true", help="keep the runs already in --out and add these")
    args = ap.parse_args()
    console = Console() if sys.stdout.isatty() else Console(width=220)  # no wrapping into a log file
    peer = args.peer
    args.peer_python = args.peer_python or str(PEER_PYTHON[peer])
    suffix = "" if args.dataset == "ml-100k" else "_" + args.dataset.replace("-", "")
    args.out = args.out or str(ROOT / "benchmarks" / "results" / f"peers_{peer}{suffix}.json")
    models = [m.strip() for m in (args.models or ",".join(PEER_MODELS[peer])).split(",") if m.strip()]
    libs = [x.strip() for x in (args.libraries or f"seqrec,{peer}").split(",") if x.strip()]
    thresholds = [float(t) for t in (args.thresholds or DEFAULT_THRESHOLDS[args.dataset]).split(",") if t.strip()]
    args.threshold_values = thresholds
    bad = [m for m in models if m not in PEER_MODELS[peer]] + [x for x in libs if x not in ("seqrec", peer)]
    bad += [f"{m} on {args.dataset} (no configs/{m}-{args.dataset}.yaml)" for m in models
            if not recipe_path(m, args.dataset).is_file()]
    if peer == "recbole" and args.dataset != "ml-100k":
        bad.append(f"recbole on {args.dataset} (its runner reads ml-100k.inter only)")
    if bad:
        ap.error(f"unknown or unsupported model/library: {', '.join(bad)}")
    args.data_dir = str(Path(args.data_dir).resolve())
    data_file = Path(args.data_dir) / DATA_FILES[args.dataset]
    if not data_file.is_file():
        console.print(f"skipped: {DATA_FILES[args.dataset]} not found under {args.data_dir}")
        return
    if peer in libs and not Path(args.peer_python).is_file():
        console.print(f"error: {args.peer_python} not found: run bash benchmarks/peers/setup_{peer}.sh first")
        sys.exit(2)

    report = {
        "benchmark": f"peer comparison: seqrec vs {PEER_TITLE[peer]}, {args.dataset} time-to-quality",
        "dataset": args.dataset,
        "command": shlex.join(["python", os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "threads": args.threads,
        "thresholds": thresholds,
        "max_epochs": args.max_epochs,
        "max_train_seconds": args.max_train_seconds,
        "stop_at_last_threshold": args.stop_at_last_threshold,
        "peer_max_epochs": args.peer_max_epochs,
        "seqrec_config": args.seqrec_config,
        "data": str(data_file),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "protocol": (
            "leave-one-out by time (last interaction test, second-to-last validation), no k-core, no rating "
            "filter, history cut to the recipe's data.max_len items, full-catalogue ranking with every earlier "
            "item of the user removed, NDCG@10/HR@10 over all users; early stopping on validation NDCG@10 with "
            "the recipe's patience and epoch cap, final numbers from the best-validation weights; time = "
            "cumulative wall time of training + validation from the start of fit, per-epoch test evaluation "
            "excluded"
        ),
        "versions": {},
        "runs": [],
        "rows": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and out.is_file():  # add rows (e.g. another seqrec recipe) to an earlier comparison
        earlier = json.loads(out.read_text())
        if earlier.get("thresholds") != thresholds or earlier.get("dataset", "ml-100k") != args.dataset:
            console.print(f"error: --append: {out} has other thresholds or another dataset")
            sys.exit(2)
        report["commands"] = [*earlier.get("commands", [earlier["command"]]), report["command"]]
        for key in ("runs", "rows"):
            report[key] = earlier[key] + report[key]
        report["versions"] = {**earlier.get("versions", {}), **report["versions"]}
    for model in models:
        for lib in libs:
            run = run_one(lib, model, args, console)
            report["runs"].append(run)
            if "versions" in run:
                report["versions"][lib] = run["versions"]
            report["rows"].append(summarize(run, thresholds))
            header, body = table_rows(report["rows"], thresholds)
            report["markdown"] = markdown(header, body)
            out.write_text(json.dumps(report, indent=1))  # after every run: a long benchmark keeps partial results

    header, body = table_rows(report["rows"], thresholds)
    budget = f", budget {args.max_train_seconds:g} s" if args.max_train_seconds else ""
    epochs = f", max {args.max_epochs} epochs" if args.max_epochs else ""
    table = Table(title=f"{args.dataset} time-to-quality: seqrec vs {PEER_TITLE[peer]} "
                  f"({args.threads} thread{'s' if args.threads > 1 else ''}{epochs}{budget})")
    for h in header:
        table.add_column(h, justify="left" if h in ("model", "library") else "right")
    for row in body:
        table.add_row(*row)
    console.print(table)
    print(report["markdown"])
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
