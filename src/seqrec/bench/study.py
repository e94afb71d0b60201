"""The memory-quality study of the losses paper (§5.1, Figs. 5-7) over a results store (``seqrec report --study``).

A grid over batch size ``bs`` (``train.batch_size``), sequence length ``sl`` (``data.max_len``) and negatives
``ns`` (``loss.num_negatives``, only for the sampled loss; full-CE cells have none: ``configs/bench/loss-study.yaml``)
gives one point per finished pivot row. The section shows, per dataset:
- NDCG@10 against peak memory and against epoch time in the paper's encoding (marker size = sl, colour = bs,
  shape = ns, a star = full CE), with the Pareto frontier (no other cell is both cheaper and better) drawn;
- Spearman correlations (``scipy.stats.spearmanr``) of bs, sl, ns and their pairwise products with NDCG@10,
  Coverage@10 and Surprisal@10, over the sampled-loss cells (ns is undefined for full CE);
- random-forest importance of bs, sl, ns for NDCG@10 (``sklearn``, 300 trees) with its 5-fold cross-validated R²
  (a low R² means the importances explain little and the section says so);
- one sentence per memory budget: the best cell that fits.
scipy and scikit-learn are the optional ``[study]`` extra; without them the section is a one-line error.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seqrec.bench.pivot import Pivot
from seqrec.errors import ConfigError

BS, SL, NS, LOSS = "train.batch_size", "data.max_len", "loss.num_negatives", "loss.name"
FEATURES = ("bs", "sl", "ns")
PRODUCTS = (("bs", "sl"), ("bs", "ns"), ("sl", "ns"))
METRICS = (("ndcg", "NDCG@10"), ("coverage", "Coverage@10"), ("surprisal", "Surprisal@10"))
BUDGETS_MB = (256, 512, 1024, 2048, 4096, 8192, 16384)
MIN_CELLS_FOR_FOREST = 10  # fewer sampled-loss cells: no importance (a cross-validated R² would mean nothing)


@dataclass(frozen=True)
class StudyPoint:
    """One finished grid row of the study."""

    dataset: str
    loss: str
    bs: int
    sl: int
    ns: int | None  # None: full-catalogue loss
    ndcg: float | None
    coverage: float | None
    surprisal: float | None
    memory_mb: float | None
    epoch_time_s: float | None
    loss_memory_mb: float | None = None  # the loss's own working memory, estimated (seqrec.losses.memory)

    def label(self) -> str:
        neg = f", ns={self.ns}" if self.ns is not None else ""
        return f"{self.loss} bs={self.bs}, sl={self.sl}{neg}"

    def feature(self, name: str) -> float:
        return float(getattr(self, name))


def study_points(p: Pivot) -> list[StudyPoint]:
    """The pivot rows that have ``bs`` and ``sl`` in their key (swept), as study points."""
    def stat(stats: dict, key: str) -> float | None:
        s = stats.get(key)
        return float(s.mean) if s is not None and s.known else None

    out = []
    for r in p.rows:
        if r.key.get(BS) is None or r.key.get(SL) is None:
            continue
        ns = r.key.get(NS)
        out.append(StudyPoint(
            dataset=str(r.key.get("data.name")), loss=str(r.key.get(LOSS, "?")), bs=int(r.key[BS]),
            sl=int(r.key[SL]), ns=int(ns) if ns is not None else None, ndcg=stat(r.stats, "NDCG@10"),
            coverage=stat(r.stats, "Coverage@10"), surprisal=stat(r.stats, "Surprisal@10"),
            memory_mb=stat(r.stats, "memory"), epoch_time_s=stat(r.stats, "epoch_time_avg"),
            loss_memory_mb=stat(r.stats, "loss_memory"),
        ))
    return out


def pareto_front(points: Sequence[StudyPoint], cost: str) -> list[StudyPoint]:
    """Points no other point beats on both ``cost`` (lower) and NDCG@10 (higher), cheapest first."""
    known = sorted((q for q in points if q.ndcg is not None and getattr(q, cost) is not None),
                   key=lambda q: (getattr(q, cost), -q.ndcg))  # type: ignore[operator]
    front: list[StudyPoint] = []
    for q in known:
        if not front or q.ndcg > front[-1].ndcg:  # type: ignore[operator]
            front.append(q)
    return front


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"--study needs {module.split('.')[0]} (pip install 'seqrec[study]')") from None


def spearman_table(points: Sequence[StudyPoint]) -> list[dict[str, Any]]:
    """Rows ``{"feature": "bs*ns", "NDCG@10": (rho, p), ...}`` over the sampled-loss points (ns known): bs, sl,
    ns, their pairwise products, then the measured peak memory and epoch time."""
    stats = _require("scipy.stats")
    pts = [q for q in points if q.ns is not None]
    names = [*FEATURES, *(f"{a}*{b}" for a, b in PRODUCTS)]
    value: dict[str, Callable[[StudyPoint], float | None]] = {
        name: (lambda q, parts=name.split("*"): math.prod(q.feature(f) for f in parts)) for name in names}
    # the measured costs as well: "does NDCG@10 rise with memory?" is the paper's first finding
    value["peak memory"] = lambda q: q.memory_mb
    value["epoch time"] = lambda q: q.epoch_time_s
    rows = []
    for name, get in value.items():
        row: dict[str, Any] = {"feature": name}
        for attr, metric in METRICS:
            pairs = [(x, getattr(q, attr)) for q in pts
                     if getattr(q, attr) is not None and (x := get(q)) is not None]
            xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
            if len(pairs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
                row[metric] = None
                continue
            res = stats.spearmanr(xs, ys)
            row[metric] = (float(res.statistic), float(res.pvalue))
        rows.append(row)
    return rows


def forest_importance(points: Sequence[StudyPoint], seed: int = 0) -> dict[str, Any] | None:
    """Random-forest importance of bs, sl, ns for NDCG@10 with the 5-fold cross-validated R² (None: too few)."""
    pts = [q for q in points if q.ns is not None and q.ndcg is not None]
    if len(pts) < MIN_CELLS_FOR_FOREST:
        return None
    ensemble = _require("sklearn.ensemble")
    selection = _require("sklearn.model_selection")
    x = [[q.feature(f) for f in FEATURES] for q in pts]
    y = [q.ndcg for q in pts]
    forest = ensemble.RandomForestRegressor(n_estimators=300, random_state=seed, n_jobs=1)
    folds = selection.KFold(n_splits=5, shuffle=True, random_state=seed)
    r2 = selection.cross_val_score(forest, x, y, cv=folds, scoring="r2")
    forest.fit(x, y)
    return {"cells": len(pts), "r2_cv": float(r2.mean()), "r2_folds": [float(v) for v in r2],
            "importance": dict(zip(FEATURES, (float(v) for v in forest.feature_importances_), strict=True))}


def budget_lines(points: Sequence[StudyPoint]) -> list[str]:
    """For each memory budget where the answer changes: the best cell (NDCG@10) whose peak memory fits."""
    lines = []
    last = None
    for budget in BUDGETS_MB:
        fits = [q for q in points if q.memory_mb is not None and q.ndcg is not None and q.memory_mb <= budget]
        if not fits:
            continue
        best = max(fits, key=lambda q: q.ndcg)  # type: ignore[arg-type, return-value]
        if best == last:
            continue
        last = best
        size = f"{budget // 1024} GiB" if budget >= 1024 else f"{budget} MiB"
        lines.append(f"under {size}: {best.label()} (NDCG@10 {best.ndcg:.4f}, {best.memory_mb:.0f} MiB)")
    return lines


def loss_share_line(points: Sequence[StudyPoint]) -> str | None:
    """How much of the measured peak the loss itself takes (estimated), per loss: median and range."""
    parts = []
    for loss in dict.fromkeys(q.loss for q in points):
        shares = sorted(q.loss_memory_mb / q.memory_mb for q in points if q.loss == loss and q.memory_mb
                        and q.loss_memory_mb is not None)
        if not shares:
            continue
        mid = statistics.median(shares)
        parts.append(f"{loss} median {100 * mid:.1f}% (range {100 * shares[0]:.1f}-{100 * shares[-1]:.1f}%, "
                     f"{len(shares)} cells)")
    if not parts:
        return None
    return ("The loss's own share of peak memory (its working memory estimated by seqrec.losses.memory, over the "
            "measured peak): " + "; ".join(parts) + ".")


def study_plots(points: Sequence[StudyPoint]) -> list[tuple[str, str]]:
    """(title, base64 PNG): NDCG@10 vs memory and vs epoch time per dataset, with the frontier."""
    from seqrec.bench.plots import _plt, _png

    plt = _plt()
    datasets = list(dict.fromkeys(q.dataset for q in points))
    bss = sorted({q.bs for q in points})  # the encoding, shared by both figures
    colours = {b: plt.get_cmap("viridis")(i / max(len(bss) - 1, 1)) for i, b in enumerate(bss)}
    nss = sorted({q.ns for q in points if q.ns is not None})
    shapes = dict(zip(nss, "o^sDvPXh<>", strict=False))
    sls = sorted({q.sl for q in points})
    out = []
    for cost, xlabel in (("memory_mb", "peak memory (MiB)"), ("epoch_time_s", "epoch time (s)")):
        usable = [q for q in points if q.ndcg is not None and getattr(q, cost) is not None]
        if not usable:
            continue
        fig, axes = plt.subplots(1, len(datasets), figsize=(5.6 * len(datasets), 4.4), squeeze=False)
        for ax, ds in zip(axes[0], datasets, strict=True):
            pts = [q for q in usable if q.dataset == ds]
            for q in pts:
                size = 25 + 100 * sls.index(q.sl) / max(len(sls) - 1, 1)
                marker = "*" if q.ns is None else shapes.get(q.ns, "o")
                ax.scatter(getattr(q, cost), q.ndcg, s=size * (2.2 if q.ns is None else 1), marker=marker,
                           color=colours[q.bs], edgecolors="black", linewidths=0.4, alpha=0.85)
            front = pareto_front(pts, cost)
            if front:
                ax.step([getattr(q, cost) for q in front], [q.ndcg for q in front], where="post", color="tab:red",
                        linewidth=1.2, label="Pareto frontier")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test NDCG@10")
            ax.set_title(ds)
            ax.grid(True, alpha=0.3)
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[b], label=f"bs={b}") for b in bss]
        handles += [plt.Line2D([], [], marker=shapes[n], linestyle="", color="grey", label=f"ns={n}") for n in nss]
        handles.append(plt.Line2D([], [], marker="*", linestyle="", color="grey", markersize=11, label="full CE"))
        handles.append(plt.Line2D([], [], color="tab:red", label="Pareto frontier"))
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="marker size = sl")
        fig.tight_layout()
        out.append((f"NDCG@10 vs {xlabel}", _png(fig)))
    return out


def importance_plot(results: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    from seqrec.bench.plots import _plt, _png

    if not results:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, (ds, res) in zip(axes[0], results.items(), strict=True):
        ax.bar(list(res["importance"]), list(res["importance"].values()), color="tab:blue")
        ax.set_title(f"{ds}: R² (5-fold CV) {res['r2_cv']:.2f}")
        ax.set_ylabel("importance")
        ax.set_ylim(0, 1)
    fig.tight_layout()
    return "Random-forest importance for NDCG@10", _png(fig)


@dataclass
class StudySection:
    markdown: str
    html: str  # with the plots embedded


def _rho(v: tuple[float, float] | None) -> str:
    return "–" if v is None else f"{v[0]:+.2f} (p={v[1]:.2g})"


def study_section(p: Pivot) -> StudySection:
    """The whole study section; a store without bs/sl swept gets a one-paragraph explanation instead."""
    from seqrec.bench.render import img_tag

    points = study_points(p)
    if not points:
        text = ("No study cells: the study needs train.batch_size and data.max_len swept (and loss.num_negatives for "
                "the sampled loss), as in configs/bench/loss-study.yaml.")
        return StudySection(f"## Loss study\n\n{text}\n", f'<h2 id="study">Loss study</h2><p>{html.escape(text)}</p>')
    md = ["## Loss study", "", "Per dataset: the best cell under each memory budget, Spearman correlations over the "
          "sampled-loss cells, random-forest importance for NDCG@10 with its cross-validated R².", ""]
    parts = ['<h2 id="study">Loss study</h2>']
    forests: dict[str, dict[str, Any]] = {}
    for ds in dict.fromkeys(q.dataset for q in points):
        pts = [q for q in points if q.dataset == ds]
        md += [f"### {ds} ({len(pts)} cells)", ""]
        parts.append(f"<h3>{html.escape(ds)} ({len(pts)} cells)</h3>")
        lines = budget_lines(pts)
        md += [f"- {x}" for x in lines] + [""]
        parts.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>")
        share = loss_share_line(pts)
        if share:
            md += [share, ""]
            parts.append(f"<p>{html.escape(share)}</p>")
        table = spearman_table(pts)
        header = ["feature", *(m for _, m in METRICS)]
        md += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(METRICS)]
        md += ["| " + " | ".join([r["feature"], *(_rho(r[m]) for _, m in METRICS)]) + " |" for r in table] + [""]
        parts.append('<table class="study"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                     + "</tr></thead><tbody>" + "".join(
                         "<tr>" + f"<td>{html.escape(r['feature'])}</td>"
                         + "".join(f"<td>{html.escape(_rho(r[m]))}</td>" for _, m in METRICS) + "</tr>"
                         for r in table) + "</tbody></table>")
        forest = forest_importance(pts)
        if forest is None:
            note = f"Importance: fewer than {MIN_CELLS_FOR_FOREST} sampled-loss cells, not estimated."
        else:
            forests[ds] = forest
            imp = ", ".join(f"{k} {v:.2f}" for k, v in sorted(forest["importance"].items(), key=lambda kv: -kv[1]))
            trust = "" if forest["r2_cv"] >= 0.5 else " (low R²: the importances explain little)"
            note = (f"Random-forest importance over {forest['cells']} cells: {imp}; 5-fold CV R² "
                    f"{forest['r2_cv']:.2f}{trust}.")
        md += [note, ""]
        parts.append(f"<p>{html.escape(note)}</p>")
    plots = study_plots(points)
    imp = importance_plot(forests)
    parts += [img_tag(t, img) for t, img in [*plots, *([imp] if imp else [])]]
    return StudySection("\n".join(md), "\n".join(parts))


__all__ = ["StudyPoint", "StudySection", "budget_lines", "forest_importance", "loss_share_line", "pareto_front",
           "spearman_table", "study_points", "study_section"]
