"""The Python API: :class:`Dataset` and :class:`Recommender` (``fit`` / ``evaluate`` / ``recommend`` / ``save`` /
``load``). The ``seqrec`` CLI and the benchmark scripts are thin callers of these two classes.

Example (the README's, executed by ``tests/test_api.py``)::

    from seqrec import Dataset, Recommender

    data = Dataset.load("synthetic")                       # or "ml-100k", a file path, Dataset.from_pandas(df, ...)
    rec = Recommender.from_config("configs/quickstart.yaml", train={"epochs": 3})
    rec.fit(data)                                          # same loop, progress, early stopping as `seqrec train`
    print(rec.evaluate("test").metrics["NDCG@10"])
    top = rec.recommend(users=["0", "1"], k=10)           # polars DataFrame: user, rank, item, score (+ title)
    rec.save("out/run")                                    # exactly the run directory `seqrec train` writes
    same = Recommender.load("out/run")

Recommendations are in the dataset's original ids, computed in user chunks (no users x items matrix), seen
items filtered unless ``filter_seen=False``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from rich.console import Console

from seqrec import distributed
from seqrec.config import Config, DataConfig, build_config, config_to_dict, load_config
from seqrec.data import describe, prepare_data
from seqrec.data.sequences import PreparedData, Sequences
from seqrec.errors import CheckpointError, ConfigError, DataError
from seqrec.eval.ranking import EvalResult, csr_gather_index, left_padded, masked_scores, model_scorer, topk_real
from seqrec.io import atomic_write_text
from seqrec.models import build_model
from seqrec.models.base import SequenceModel
from seqrec.train.adapters import ADAPTER, apply_adapters, merge_and_unload, save_adapter, without_peft
from seqrec.train.callbacks import Callback
from seqrec.train.init_from import check_init_run
from seqrec.train.run import build_for, check_against_data, evaluate_split, item_titles, repeat_warning, train_model
from seqrec.train.rundir import RunLock, read_run, write_run
from seqrec.train.runtime import setup_process
from seqrec.train.text_setup import for_catalogue, is_text_model

FRAME = "frame"  # data.name of a Dataset built from an in-memory frame (it cannot be rebuilt from the config)


def _overrides_tree(overrides: dict[str, Any]) -> list[str]:
    """``train={"lr": 1e-3}`` / ``**{"train.lr": 1e-3}`` / ``train__lr=1e-3`` -> ``["train.lr=0.001"]``."""
    out: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out.append(f"{prefix}={json.dumps(value)}")

    for key, value in overrides.items():
        walk(key.replace("__", "."), value)
    return out


class Dataset:
    """A preprocessed, split dataset (see :mod:`seqrec.data`) and the data config that produced it."""

    def __init__(self, data: PreparedData, config: DataConfig) -> None:
        self.data = data
        self.config = config

    @classmethod
    def load(
        cls, name_or_path: str = "synthetic", *, data_dir: str | Path | None = None, **data_options: Any
    ) -> Dataset:
        """A named dataset (``synthetic``, ``ml-100k``, ``ml-1m``, ...) or a file path, with ``data`` options.

        ``Dataset.load("ml-100k", max_len=50)``; ``Dataset.load("log.csv", user_col="u", time_col="ts")``.
        Same preprocessing, split and cache as ``seqrec data prepare``.
        """
        tree: dict[str, Any] = dict(data_options)
        path = Path(name_or_path).expanduser()
        if path.suffix and (path.exists() or "/" in str(name_or_path)):
            tree.update(name="file", path=str(path))
        else:
            tree["name"] = name_or_path
        cfg = build_config({"data": tree}).data
        return cls(prepare_data(cfg, data_dir, progress=True), cfg)

    @classmethod
    def from_polars(
        cls, df: pl.DataFrame, *, user_col: str = "user_id", item_col: str = "item_id", time_col: str | None = None,
        item_text: pl.DataFrame | dict[Any, str] | None = None, **data_options: Any,
    ) -> Dataset:
        """An in-memory interaction log (ids of any type; time numeric, datetime or None = row order)."""
        from seqrec.data.prepare import prepare_frame

        cfg = build_config({"data": {**data_options, "name": FRAME}}).data
        raw, features = _frame_inputs(df, user_col, item_col, time_col, item_text)
        return cls(prepare_frame(cfg, raw, features), cfg)

    @classmethod
    def from_pandas(
        cls, df: Any, *, user_col: str = "user_id", item_col: str = "item_id", time_col: str | None = None,
        item_text: Any = None, **data_options: Any,
    ) -> Dataset:
        """Like :meth:`from_polars` for a pandas DataFrame (converted with ``polars.from_pandas``)."""
        if item_text is not None and not isinstance(item_text, dict | pl.DataFrame):
            item_text = pl.from_pandas(item_text)
        return cls.from_polars(pl.from_pandas(df), user_col=user_col, item_col=item_col, time_col=time_col,
                               item_text=item_text, **data_options)

    def stats(self) -> dict[str, Any]:
        """The statistics ``seqrec data prepare`` prints."""
        return describe(self.data)

    @property
    def name(self) -> str:
        return self.data.name

    def __repr__(self) -> str:
        return f"Dataset({self.data.name!r}, users={self.data.num_users}, items={self.data.num_items})"


def _frame_inputs(
    df: pl.DataFrame, user_col: str, item_col: str, time_col: str | None, item_text: Any
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """A user frame -> the raw interaction frame every reader produces (user, item, timestamp) + item features."""
    for role, col in (("user_col", user_col), ("item_col", item_col), ("time_col", time_col)):
        if col is not None and col not in df.columns:
            raise DataError(f"frame: missing {role} column {col!r} (columns: {', '.join(df.columns)})")
    if df.height == 0:
        raise DataError("frame: no rows")
    cols = [pl.col(user_col).cast(pl.String).alias("user"), pl.col(item_col).cast(pl.String).alias("item")]
    if time_col is None:
        cols.append(pl.int_range(0, pl.len(), dtype=pl.Int64).alias("timestamp"))
    elif df.schema[time_col].is_temporal():
        cols.append(pl.col(time_col).cast(pl.Datetime("us")).dt.epoch("us").alias("timestamp"))
    elif df.schema[time_col].is_numeric():
        cols.append(pl.col(time_col).cast(pl.Float64).alias("timestamp"))
    else:
        raise DataError(f"frame: time_col {time_col!r} must be numeric or datetime, got {df.schema[time_col]}")
    raw = df.select(cols)
    for role in ("user", "item", "timestamp"):
        if raw[role].null_count():
            row = int(raw[role].is_null().arg_true()[0])
            raise DataError(f"frame: column for {role} has missing values (row {row})")
    if raw.schema["timestamp"] == pl.Float64 and not raw["timestamp"].is_finite().all():
        bad = int((~raw["timestamp"].is_finite()).arg_true()[0])
        raise DataError(f"frame: time_col {time_col!r} row {bad}: timestamp must be finite, "
                        f"got {raw['timestamp'][bad]}")
    features = None
    if isinstance(item_text, dict):
        features = pl.DataFrame({"item": [str(k) for k in item_text], "title": [str(v) for v in item_text.values()]})
    elif isinstance(item_text, pl.DataFrame):
        key = item_col if item_col in item_text.columns else "item"
        if key not in item_text.columns:
            raise DataError(f"item_text: needs an item id column ({item_col!r} or 'item')")
        features = item_text.rename({key: "item"}).with_columns(pl.col("item").cast(pl.String))
    return raw, features


class Recommender:
    """A sequential recommender: a config, and after ``fit``/``load`` a trained model and its catalogue."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.model: SequenceModel | None = None
        self.item_ids: list[str] | None = None  # original id of every dense item id ([0] = padding)
        self.item_titles: list[str | None] | None = None
        self.metrics: dict[str, Any] | None = None
        self.history: list[dict] = []
        self.report: dict[str, Any] | None = None  # what --profile / --dry-run produced
        self.dataset: Dataset | None = None
        self.meta: dict[str, Any] = {}

    # ---- construction ------------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: str | Path | dict | Config | None = None, **overrides: Any) -> Recommender:
        """From a YAML file, a config tree, a :class:`Config` or the defaults, plus overrides
        (``train={"lr": 3e-3}``, ``**{"model.name": "gru4rec"}`` or ``train__epochs=5``)."""
        sets = _overrides_tree(overrides)
        if isinstance(config, Config):
            return cls(build_config(config_to_dict(config), sets))
        if isinstance(config, dict):
            return cls(build_config(config, sets))
        return cls(load_config(config, sets))

    @classmethod
    def load(cls, directory: str | Path, overrides: list[str] | None = None) -> Recommender:
        """A run directory written by ``seqrec train`` or :meth:`save` (every file checked; one-line errors)."""
        run = read_run(directory, overrides)
        rec = cls(run["config"])
        meta = run["meta"]
        if meta.get("model", rec.config.model.name) != rec.config.model.name:
            raise CheckpointError(f"{Path(directory) / 'model.safetensors'}: weights of model {meta.get('model')!r} "
                                  f"but config.yaml says {rec.config.model.name!r}")
        model = apply_adapters(build_model(rec.config.model, int(meta["num_items"]), int(meta["max_len"])),
                               rec.config.peft)  # an adapted run's weights include its adapters
        try:
            model.load_state_dict(run["tensors"], strict=True)
        except RuntimeError:
            raise CheckpointError(f"{Path(directory) / 'model.safetensors'}: weights do not match the model in "
                                  f"config.yaml (different sizes or missing tensors)") from None
        model.eval()
        rec.model, rec.meta = model, meta
        rec.item_ids, rec.item_titles, rec.metrics = run["item_ids"], run["item_titles"], run["metrics"]
        history = Path(directory) / "history.jsonl"
        if history.is_file():
            with contextlib.suppress(ValueError):
                rec.history = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
        return rec

    # ---- training -----------------------------------------------------------------------------------------

    def fit(
        self, dataset: Dataset | None = None, *, output_dir: str | Path | None = None,
        data_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
        console: Console | None = None, callbacks: Sequence[Callback] = (), init_from: str | Path | None = None,
    ) -> Recommender:
        """Train with early stopping on validation, evaluate the best weights (``self.metrics``).

        ``output_dir``: write the run directory there while training (``history.*``, ``last/`` for ``resume``)
        and at the end (weights, config, items, metrics); it is locked for the duration, a finished run there is
        never replaced unless ``overwrite``. ``train.profile`` / ``train.dry_run`` run a few steps instead and
        leave their report in ``self.report``. Inside torchrun/srun every rank calls ``fit``; rank 0 writes.
        ``init_from``: a run directory of the same model family whose weights start this run (item tables mapped
        by original item id when the catalogue differs, see :mod:`seqrec.train.init_from`).
        """
        if dataset is not None:  # the dataset defines the data; the model's history length stays this config's
            self.config.data = dataset.config.model_copy(update={"max_len": self.config.data.max_len})
        config, tc = self.config, self.config.train
        main = distributed.is_main()
        console = console if console is not None and main else Console(quiet=True)
        out = Path(output_dir) if output_dir is not None else None
        if init_from is not None:
            check_init_run(init_from, config)
        lock = RunLock(out, resume=resume, overwrite=overwrite) if out is not None and main else None
        with lock if lock is not None else contextlib.nullcontext():
            device = setup_process(tc.threads, tc.seed, tc.device)
            joins = distributed.in_launch() and not torch.distributed.is_initialized()
            device = distributed.init(device)
            try:
                data = self._data(dataset, data_dir)
                check_against_data(config, data)
                warning = repeat_warning(data, config)
                if warning is not None:
                    console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
                if tc.profile or tc.dry_run:
                    self.report = self._probe(data, device, out, console, init_from)
                    return self
                if lock is not None:
                    lock.clear()
                run = train_model(config, data, device, output_dir=out, console=console, resume=resume,
                                  callbacks=callbacks, init_from=init_from)
                self.model, self.metrics, self.meta, self.history = run.model, run.metrics, run.meta, run.result.history
                self.item_ids = [str(x) for x in data.item_ids]
                self.item_titles = item_titles(data)
                if out is not None and main:
                    self._write(out)
                distributed.barrier()  # no rank returns before the run directory is complete
            finally:
                if joins:
                    distributed.cleanup()
        return self

    def _probe(self, data: PreparedData, device: torch.device, out: Path | None, console: Console,
               init_from: str | Path | None = None) -> dict:
        if distributed.world_size() > 1:
            raise ConfigError("train.profile/train.dry_run: run in one process (no --devices, no torchrun)")
        from seqrec.train.profiling import dry_run, profile_run

        model, _ = build_for(self.config, data, device, console, init_from=init_from)
        if self.config.train.dry_run:
            return dry_run(model, data, self.config, device=device, console=console)
        return profile_run(model, data, self.config, out or Path("out/profile"), device=device, console=console)

    def _data(self, dataset: Dataset | None, data_dir: str | Path | None) -> PreparedData:
        if dataset is not None:
            self.dataset = dataset
            return dataset.data
        if self.dataset is not None:
            return self.dataset.data
        if self.config.data.name == FRAME:
            raise DataError("data.name 'frame': this model was trained on an in-memory frame; pass the Dataset "
                            "(dataset=Dataset.from_pandas(...))")
        with distributed.local_main_first():  # one rank per node fills the data cache, the others read it
            data = prepare_data(self.config.data, data_dir)
        self.dataset = Dataset(data, self.config.data)
        return data

    # ---- evaluation and recommendation -------------------------------------------------------------------

    def _trained(self) -> SequenceModel:
        if self.model is None:
            raise CheckpointError("this Recommender has no trained model (call fit or Recommender.load first)")
        return self.model

    def evaluate(
        self, split: str = "test", dataset: Dataset | None = None, *, data_dir: str | Path | None = None
    ) -> EvalResult:
        """Metrics @K with 95% bootstrap CIs on ``valid`` or ``test`` (full ranking unless eval.protocol=sampled),
        or ``cold`` (test users whose target was held out of training, ``data.cold_item_fraction``).

        A text model (Recformer) evaluates on any dataset with item text: another catalogue than its own is
        encoded from its text first (zero-shot), and the Recommender then holds that catalogue."""
        if split not in ("valid", "test", "cold"):
            raise ConfigError(f"split: expected 'valid', 'test' or 'cold', got {split!r}")
        self._trained()
        data = self._data(dataset, data_dir)
        check_against_data(self.config, data)
        device = setup_process(self.config.train.threads, self.config.train.seed, self.config.train.device)
        model = self._check_catalogue(data, device)
        model.to(device)
        return evaluate_split(model, data, self.config, split, device)

    def _check_catalogue(self, data: PreparedData, device: torch.device | None = None) -> SequenceModel:
        """The model, ready for ``data``'s catalogue: ID models must have been trained on it; a text model gets
        its item text attached, or becomes a model of the new catalogue (see ``for_catalogue``)."""
        model = self._trained()
        if is_text_model(model):
            model, new = for_catalogue(model, self.config, data, self.item_ids, device)
            if new:
                self.model, self.item_ids, self.item_titles = model, [str(x) for x in data.item_ids], item_titles(data)
                self.meta = {**self.meta, "num_items": data.num_items}
            return model
        if self.item_ids is not None and len(self.item_ids) != data.num_items + 1:
            raise DataError(f"dataset {data.name}: {data.num_items} items, but the model was trained on "
                            f"{len(self.item_ids) - 1} (different data or preprocessing)")
        return model

    def recommend(
        self, users: Sequence[Any] | None = None, histories: Sequence[Sequence[Any]] | None = None, k: int = 10,
        filter_seen: bool = True, *, dataset: Dataset | None = None, data_dir: str | Path | None = None,
        batch_size: int = 512,
    ) -> pl.DataFrame:
        """Top-``k`` items per user (``users``: original user ids of the dataset, scored on their full history)
        or per history (``histories``: lists of original item ids, oldest first). Returns a DataFrame with
        columns ``user`` (the user id, or the history's index), ``rank`` (1..k), ``item``, ``score`` and
        ``title`` when the items have titles. Users are scored in chunks of ``batch_size``."""
        model = self._trained()
        if (users is None) == (histories is None):
            raise DataError("recommend: give exactly one of users= or histories=")
        if histories is not None and is_text_model(model):  # items are read as text: it comes from the dataset
            model = self._check_catalogue(self._data(dataset, data_dir))
        assert self.item_ids is not None
        if not 1 <= k <= len(self.item_ids) - 1:
            raise DataError(f"k: {k} must be between 1 and the catalogue size {len(self.item_ids) - 1}")
        if histories is not None:
            names = [str(i) for i in range(len(histories))]
            seqs = self._encode_histories(histories)
        else:
            data = self._data(dataset, data_dir)
            model = self._check_catalogue(data)
            names = [str(u) for u in users]  # type: ignore[union-attr]
            seqs = _user_histories(data, names)
        ids, scores = self._topk(model, seqs, k, filter_seen, batch_size)  # (n, k) each
        item_ids = np.asarray(self.item_ids, dtype=object)
        frame = {
            "user": np.repeat(np.asarray(names, dtype=object), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(names)),
            "item": item_ids[ids.ravel()],
            "score": scores.ravel(),
        }
        if self.item_titles is not None:
            frame["title"] = np.asarray(self.item_titles, dtype=object)[ids.ravel()]
        out = pl.DataFrame({k_: list(v) if v.dtype == object else v for k_, v in frame.items()})
        return out.filter(pl.col("item") != self.item_ids[0])  # fewer than k unseen items: no padding rows

    def _encode_histories(self, histories: Sequence[Sequence[Any]]) -> Sequences:
        """Original item ids -> dense CSR histories (one vectorised lookup for all items of all histories)."""
        assert self.item_ids is not None
        lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
        flat = np.asarray([str(x) for h in histories for x in h], dtype=str)
        catalogue = np.asarray(self.item_ids[1:], dtype=str)
        order = np.argsort(catalogue)
        pos = np.searchsorted(catalogue, flat, sorter=order)
        pos = np.clip(pos, 0, len(catalogue) - 1)
        dense = order[pos] + 1
        unknown = catalogue[order[pos]] != flat if len(flat) else np.zeros(0, dtype=bool)
        if unknown.any():
            listed = ", ".join(dict.fromkeys(flat[unknown].tolist()[:5]))
            raise DataError(f"histories: unknown item id(s) {listed} (not in the model's catalogue)")
        return Sequences.from_lengths(lengths, dense.astype(np.int64))

    @torch.no_grad()
    def _topk(self, model: SequenceModel, seqs: Sequences, k: int, filter_seen: bool, batch_size: int):
        device = next(model.parameters()).device
        model.eval()
        scorer = model_scorer(model)
        max_len = int(self.meta.get("max_len", self.config.data.max_len))
        n = len(seqs)
        ids = np.zeros((n, k), dtype=np.int64)
        scores = np.zeros((n, k), dtype=np.float32)
        for first in range(0, n, batch_size):
            rows = np.arange(first, min(first + batch_size, n))
            history = torch.from_numpy(left_padded(seqs, rows, max_len)).to(device)
            block = masked_scores(scorer, history, seqs, rows, filter_seen, device)  # (b, V + 1)
            top = topk_real(block, k)  # (b, k)
            ids[rows] = top.cpu().numpy()
            scores[rows] = block.gather(1, top).cpu().numpy()
        return ids, scores

    # ---- persistence ----------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the run directory (weights, config, items, titles, metrics, history) atomically, file by file."""
        model = self._trained()
        assert self.item_ids is not None
        d = Path(directory)
        meta = self.meta or {"model": self.config.model.name, "num_items": len(self.item_ids) - 1,
                             "max_len": self.config.data.max_len, "params": model.num_parameters()}
        write_run(d, model=model, config=self.config, item_ids=self.item_ids, item_titles=self.item_titles,
                  meta=meta, metrics=self.metrics)
        if self.config.peft.method != "none":
            save_adapter(d / ADAPTER, model, self.config)
        if self.history:
            atomic_write_text(d / "history.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))
        return d

    def _write(self, out: Path) -> None:
        assert self.model is not None and self.item_ids is not None
        write_run(out, model=self.model, config=self.config, item_ids=self.item_ids, item_titles=self.item_titles,
                  meta=self.meta, metrics=self.metrics)
        if self.config.peft.method != "none":
            save_adapter(out / ADAPTER, self.model, self.config)

    def merge_adapters(self) -> Recommender:
        """LoRA folded into the base weights (peft's merge): afterwards a plain model with ``peft.method: none``,
        scoring as before (to float rounding); :meth:`save` then writes an adapter-free run. iLoRA: ConfigError."""
        self.model = merge_and_unload(self._trained())
        self.config = without_peft(self.config)
        return self

    def __repr__(self) -> str:
        state = "trained" if self.model is not None else "untrained"
        return f"Recommender({self.config.model.name!r}, {state})"


def _user_histories(data: PreparedData, users: list[str]) -> Sequences:
    """Each user's complete chronological history (test input + test target where present) as CSR, vectorised."""
    user_ids = np.asarray(data.user_ids, dtype=str)
    order = np.argsort(user_ids)
    query = np.asarray(users, dtype=str)
    pos = np.clip(np.searchsorted(user_ids, query, sorter=order), 0, max(len(user_ids) - 1, 0))
    dense = order[pos]
    unknown = user_ids[dense] != query
    if unknown.any():
        listed = ", ".join(query[unknown].tolist()[:5])
        raise DataError(f"users: unknown user id(s) {listed} (not in dataset {data.name})")
    test_row = np.full(data.num_users, -1, dtype=np.int64)
    test_row[np.asarray(data.test.users, dtype=np.int64)] = np.arange(len(data.test))
    rows = test_row[dense]
    in_test = rows >= 0
    train_len = data.train.lengths()[dense]
    test_len = np.where(in_test, data.test.inputs.lengths()[np.maximum(rows, 0)] + 1, 0)
    lengths = np.where(in_test, test_len, train_len)
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.zeros(int(offsets[-1]), dtype=np.int64)
    plain = np.flatnonzero(~in_test)  # users without a test target: their training sequence
    if len(plain):
        values[_spans(offsets[plain], lengths[plain])] = np.asarray(data.train.values)[
            csr_gather_index(data.train.offsets, dense[plain])]
    tested = np.flatnonzero(in_test)  # the others: test input, then the test target
    if len(tested):
        t_rows, starts, n_in = rows[tested], offsets[tested], lengths[tested] - 1
        values[_spans(starts, n_in)] = np.asarray(data.test.inputs.values)[
            csr_gather_index(data.test.inputs.offsets, t_rows)]
        values[starts + n_in] = np.asarray(data.test.targets, dtype=np.int64)[t_rows]
    return Sequences(offsets, values)


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``range(s, s + n)`` for each (s, n), without a Python loop."""
    total = int(lengths.sum())
    return np.repeat(starts, lengths) + (np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths))
