"""Run configuration: YAML files validated by Pydantic, with ``--set section.key=value`` overrides.

The top-level :class:`Config` has one section per stage of the pipeline. Models get their own config
dataclass (``seqrec.models.<name>.<Name>Config``), built from ``model.size`` (a preset) plus any other keys of
the ``model`` section, so a model never sees a god object. Every error names the offending key in one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seqrec.errors import ConfigError, SeqrecError

METRIC_NAMES = "HR|NDCG|MRR|Recall|Coverage|Surprisal"
# Baseline scorers (seqrec.eval.baselines.BASELINES has exactly these keys; a test checks it). Listed here so the
# config validates eval.baselines without importing the evaluation layer.
BASELINE_NAMES = ("popularity", "repeat_last", "markov", "sknn", "ease")
BaselineName = Literal["popularity", "repeat_last", "markov", "sknn", "ease"]
BASELINE_PARAMS = {  # the keyword parameters of each baseline's fit (the same test checks these)
    "popularity": (), "repeat_last": (), "markov": ("smoothing",), "sknn": ("neighbours", "decay"),
    "ease": ("l2", "max_items"),
}
MONITOR = re.compile(rf"(?:{METRIC_NAMES})@[1-9][0-9]*")


def check_device(name: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` that exists on this machine (else a ValueError saying why)."""
    if name in ("auto", "cpu"):
        return name
    if not re.fullmatch(r"cuda(:[0-9]+)?", name):
        raise ValueError("expected auto, cpu, cuda or cuda:N")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(name.partition(":")[2] or 0)
    if index >= count:
        raise ValueError(f"this machine has {count} visible CUDA device(s) (use auto or cpu)")
    return name


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticConfig(_Section):
    num_users: int = Field(2000, ge=1)  # users generated
    num_items: int = Field(1000, ge=2)  # catalogue size
    mean_length: float = Field(40.0, gt=1)  # mean interactions per user (lengths are drawn around it)
    min_length: int = Field(5, ge=1)  # shortest user sequence
    popularity_exponent: float = Field(1.0, ge=0)  # Zipf exponent of item popularity
    num_topics: int = Field(20, ge=1)  # latent user tastes / item clusters
    transition_strength: float = Field(0.6, ge=0, le=1)  # share of next items drawn from item-to-item transitions
    repeat_prob: float = Field(0.0, ge=0, le=1)  # share of next items re-consumed from the user's recent history


class DataConfig(_Section):
    name: str = "synthetic"  # named dataset (synthetic, ml-100k, ml-1m, ..., amazon-<Category>) or "file"
    path: str | None = None  # input file when name == "file"
    format: Literal["auto", "csv", "tsv", "parquet", "atomic", "sasrec", "amazon", "lcrec"] = "auto"
    user_col: str = "user_id"  # column names for csv/tsv/parquet files
    item_col: str = "item_id"
    time_col: str | None = "timestamp"  # None: file order is the chronology
    rating_col: str | None = None  # explicit rating column, used with rating_threshold
    rating_threshold: float | None = None  # keep interactions with rating >= threshold (implicit conversion)
    duplicates: Literal["keep", "first", "last"] = "keep"  # repeated (user, item) pairs
    # iterative k-core on users / items (0 or 1 = off). None: the dataset's default (seqrec.data.datasets): 0 for
    # files that are already filtered (ml-100k, ml-1m.txt, SASRec text, LC-Rec, Amazon 5-core), 5 otherwise
    min_user_interactions: int | None = Field(None, ge=0)
    min_item_interactions: int | None = Field(None, ge=0)
    split: Literal["leave_one_out", "global_temporal"] = "leave_one_out"
    temporal_quantile: float = Field(0.9, gt=0, lt=1)  # cutoff quantile of timestamps (global_temporal)
    valid_user_fraction: float = Field(0.05, gt=0, le=1)  # users holding out a validation item (global_temporal)
    max_len: int = Field(50, ge=2)  # longest history a model sees (training windows and evaluation input)
    seed: int = 42  # data seed: synthetic generation, temporal validation users
    cache: bool = True  # cache the preprocessed split under $SEQREC_CACHE_DIR (else ~/.cache/seqrec/cache)
    download: bool = True  # fetch a named dataset that is not found under the data dir
    synthetic: SyntheticConfig = SyntheticConfig()
    # cold start (seqrec.data.cold): a seeded share of the items held out of training entirely; their test users
    # are evaluated apart (metrics.json "cold"). 0 = off (and then left out of config dumps, so ids stay as before)
    cold_item_fraction: float = Field(0.0, ge=0, lt=1)


class ModelSection(BaseModel):
    """``name`` picks the model, ``size`` a preset; every other key overrides a field of the model's config."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = "sasrec"
    size: str = "small"


class LossConfig(_Section):
    name: str = "ce"  # see seqrec.losses.LOSSES
    num_negatives: int | None = Field(None, ge=1)  # sampled losses: negatives per positive
    sampler: Literal["uniform", "popularity", "in_batch"] = "uniform"
    popularity_alpha: float = Field(0.75, ge=0, le=1)  # popularity sampler: p ~ count ** alpha
    # One negative set for the whole batch (a plain matmul) or negatives per row. None: per row for the binary
    # losses (bce, gbce: SASRec/gSASRec draw negatives per position; one shared BCE negative for a whole batch
    # barely trains), shared for the softmax losses (ce_neg, cce_neg: the set is scored against every row).
    shared_negatives: bool | None = None
    chunk_size: int | None = Field(None, ge=1)  # catalogue chunk of the fused losses (None: automatic)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    filter_eps: float | None = Field(None, ge=0)  # gradient filtering threshold (CCE)
    gbce_t: float = Field(0.75, ge=0, le=1)  # gBCE calibration parameter t
    sce_buckets: int | None = Field(None, ge=1)  # SCE: number of buckets (None: sqrt of rows)
    logq: bool | None = None  # sampled CE: subtract log(K q) from negative logits (None: on unless uniform)
    kernel: Literal["auto", "torch", "triton"] = "auto"  # fused CCE-: Triton on CUDA when installed (auto)


class TrainConfig(_Section):
    epochs: int = Field(200, ge=1)  # upper bound; early stopping usually ends sooner
    batch_size: int = Field(128, ge=1)  # training windows per step
    # 0: batches are slices of a random permutation. G > 0: every G * batch_size windows of that permutation are
    # sorted by length, cut into batches, and the batches shuffled, so a padding-invariant model (SASRec,
    # BERT4Rec, GRU4Rec) computes far fewer padding positions (ML-1M at max_len 200: 43% of them are padding).
    length_grouping: int = Field(0, ge=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = Field(0, ge=0)  # linear warm-up of the learning rate
    scheduler: Literal["constant", "cosine"] = "constant"  # after warm-up
    # Length of the cosine schedule in epochs (None: train.epochs). Above train.epochs, training stops part-way
    # down a longer schedule: a time budget that keeps the learning-rate curve whose validation peak it needs
    # (configs/sasrec-ml-100k-fast.yaml stops at epoch 10 of 12, where all three seeds' validation had peaked).
    schedule_epochs: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(1.0, gt=0)  # max gradient norm (None: no clipping)
    patience: int = Field(10, ge=1)  # epochs without validation improvement before stopping
    eval_every: int = Field(1, ge=1)  # validate every N epochs
    monitor: str = "NDCG@10"  # validation metric for early stopping / best checkpoint
    seed: int = 42  # initialisation, batch order, masking, negatives
    threads: int | None = Field(None, ge=1)  # torch CPU threads (None: one per available core, see runtime)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"  # autocast dtype; 16-mixed adds gradient scaling
    progress: bool = True  # Rich progress bars
    compile: bool = False  # torch.compile the model's training forward (falls back to eager on failure)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    accumulate_grad_batches: int = Field(1, ge=1)  # micro-batches per optimizer step
    activation_checkpointing: bool = False  # recompute each block of model.blocks in backward (saves memory)
    checkpoint_every: int = Field(1, ge=0)  # write <output>/last every N epochs for --resume (0: never)
    profile: bool = False  # run a few steps under torch.profiler, write a Chrome trace, print top ops, stop
    profile_steps: int = Field(5, ge=1)  # profiled steps (after 1 wait + 1 warm-up step)
    dry_run: bool = False  # build the model, print params and memory estimate, run one step, stop
    tracker: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"  # experiment tracker (history.csv always)
    detect_anomaly: bool = False  # autograd anomaly mode: name the op that first produced a NaN (slow; debugging)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # --set train.precision=32

    @field_validator("device")
    @classmethod
    def _device_exists(cls, v: str) -> str:
        return check_device(v)

    @model_validator(mode="after")
    def _schedule_covers_training(self) -> TrainConfig:
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ValueError(f"schedule_epochs ({self.schedule_epochs}) must be >= train.epochs ({self.epochs}): "
                             "a shorter schedule would train its last epochs at learning rate 0")
        return self

    @field_validator("monitor")
    @classmethod
    def _monitor_is_a_metric(cls, v: str) -> str:
        if not MONITOR.fullmatch(v):
            raise ValueError(f"expected a validation metric ({METRIC_NAMES})@K such as NDCG@10")
        return v


class EvalConfig(_Section):
    ks: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [10], min_length=1)  # cut-offs; 10 added
    filter_seen: bool = True  # remove the user's input items from the ranking
    batch_size: int = Field(512, ge=1)  # users scored per chunk (bounds the users x items block)
    protocol: Literal["full", "sampled"] = "full"  # sampled: rank the target among fixed negatives
    num_negatives: int = Field(100, ge=1)  # sampled protocol: negatives per user
    negative_sampler: Literal["uniform", "popularity"] = "uniform"
    bootstrap: int = Field(1000, ge=0)  # resamples for 95% confidence intervals (0: none)
    seed: int = 0  # sampled negatives and bootstrap
    # Simple baselines evaluated beside every model (metrics.json "baselines", the CLI table, benchmark rows)
    baselines: list[BaselineName] = Field(default_factory=lambda: ["popularity"])
    tune_baselines: bool = True  # choose baseline hyper-parameters on validation NDCG@10 (never on test)
    baseline_params: dict[str, dict[str, Any]] = Field(default_factory=dict)  # fixed parameters: no tuning


class PeftConfig(_Section):
    """Parameter-efficient fine-tuning (:mod:`seqrec.train.adapters`): LoRA through ``peft`` or our iLoRA layer."""

    method: Literal["none", "lora", "ilora"] = "none"  # none: every parameter trains
    rank: int = Field(4, ge=1)  # r (iLoRA: the total rank, split into `experts` experts of rank r / K)
    alpha: float = Field(8.0, gt=0)  # adapter output scaled by alpha / r (iLoRA: alpha / (r / K))
    dropout: float = Field(0.0, ge=0, lt=1)  # dropout on the adapter's input
    experts: int = Field(2, ge=1)  # iLoRA: K experts, one softmax gate each per sequence (rank divisible by K)
    target_modules: list[str] | None = None  # Linear layers to adapt, names or suffixes; None: those in model.blocks
    modules_to_save: list[str] = Field(default_factory=list)  # trained in full beside the adapters, e.g. item_emb


class Config(_Section):
    data: DataConfig = DataConfig()
    model: ModelSection = ModelSection()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    peft: PeftConfig = PeftConfig()


# ---------------------------------------------------------------------------------------------------------------


def _format_validation_error(err: ValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    key = f"{prefix}{loc}" if loc else prefix.rstrip(".")
    if first["type"] == "extra_forbidden":
        return f"unknown config key '{key}'"
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"config key '{key}': {msg} (got {first.get('input')!r})"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> (["train", "lr"], 0.001); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    key, _, raw = text.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; numbers should be numbers
        try:
            value = float(value)
        except ValueError:
            pass
    return path, value


def _apply_override(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{'.'.join(path[: i + 1])}' is not a section")
        node = child
    node[path[-1]] = value


def _check_known_keys(tree: dict) -> None:
    """Reject unknown keys with the full dotted path and the allowed keys."""
    sections = Config.model_fields
    for name, value in tree.items():
        if name not in sections:
            raise ConfigError(f"unknown config key '{name}' (allowed: {', '.join(sections)})")
        if name == "model" or not isinstance(value, dict):
            continue
        cls = sections[name].annotation
        _check_section_keys(cls, value, name)


def _check_section_keys(cls: type[BaseModel], value: dict, prefix: str) -> None:
    allowed = cls.model_fields
    for key, sub in value.items():
        if key not in allowed:
            raise ConfigError(f"unknown config key '{prefix}.{key}' (allowed: {', '.join(allowed)})")
        ann = allowed[key].annotation
        if isinstance(sub, dict) and isinstance(ann, type) and issubclass(ann, BaseModel):
            _check_section_keys(ann, sub, f"{prefix}.{key}")


def build_config(tree: dict | None = None, overrides: list[str] | None = None) -> Config:
    """Validate a raw config tree plus ``--set`` overrides into a :class:`Config` (or raise ConfigError)."""
    tree = dict(tree or {})
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in tree.items()}
    for text in overrides or []:
        path, value = parse_override(text)
        _apply_override(tree, path, value)
    _check_known_keys(tree)
    try:
        config = Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None
    if 10 not in config.eval.ks:
        config.eval.ks = sorted({*config.eval.ks, 10})
    k = int(config.train.monitor.rpartition("@")[2])
    if k not in config.eval.ks:
        raise ConfigError(f"config key 'train.monitor': {config.train.monitor} needs K={k} in eval.ks "
                          f"(got {config.eval.ks})")
    # Validate the model and loss sections against their registries now, so errors surface before any work.
    from seqrec.losses import LOSSES
    from seqrec.models import model_config_from_section

    if config.loss.name not in LOSSES:
        raise ConfigError(f"config key 'loss.name': unknown loss {config.loss.name!r} (allowed: {', '.join(LOSSES)})")
    model_config_from_section(config.model)
    _check_baseline_params(config.eval)
    _check_peft(config)
    return config


def _check_peft(config: Config) -> None:
    """peft: cross-field rules, and the target / saved modules exist in the model (built on the meta device)."""
    pc = config.peft
    if pc.method == "none":
        if pc.target_modules is not None or pc.modules_to_save:
            raise ConfigError("config key 'peft.method': target_modules / modules_to_save need method lora or ilora")
        return
    import importlib.util

    if pc.method == "lora" and importlib.util.find_spec("peft") is None:
        raise ConfigError("config key 'peft.method': lora needs the peft package (pip install 'seqrec[peft]')")
    if pc.method == "ilora" and pc.rank % pc.experts:
        raise ConfigError(f"config key 'peft.experts': peft.rank ({pc.rank}) must be divisible by peft.experts "
                          f"({pc.experts}): each iLoRA expert has rank r / K")
    from seqrec.models.adapter_targets import check_peft_modules

    check_peft_modules(config.model, config.data.max_len, pc.target_modules, pc.modules_to_save)


def _check_baseline_params(ec: EvalConfig) -> None:
    """eval.baseline_params: only for listed baselines, only parameters their fit function takes."""
    for name, params in ec.baseline_params.items():
        if name not in ec.baselines:
            raise ConfigError(f"config key 'eval.baseline_params.{name}': {name!r} is not in eval.baselines "
                              f"({', '.join(ec.baselines)})")
        accepted = BASELINE_PARAMS[name]
        for key in params:
            if key not in accepted:
                raise ConfigError(f"config key 'eval.baseline_params.{name}.{key}': unknown parameter "
                                  f"(allowed: {', '.join(accepted) or 'none'})")


def read_config_tree(
    path: str | os.PathLike, error: type[SeqrecError] = ConfigError, what: str = "config file",
    expected: str = "a mapping of sections (data, model, loss, train, eval)",
) -> dict:
    """The mapping in a YAML file (``yaml.safe_load``: tags such as ``!!python/object`` are refused); errors name
    the file and say what it is (``what``) and what its top level must be (``expected``)."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} not found")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise error(f"{p}:{where} invalid YAML (plain YAML without tags expected)") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise error(f"{p}: expected {expected}")
    return loaded


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config file (optional) and apply ``--set`` overrides; errors name the file."""
    tree = read_config_tree(path) if path is not None else {}
    try:
        return build_config(tree, overrides)
    except ConfigError as err:
        if path is not None and not str(err).startswith(str(path)):
            raise ConfigError(f"{path}: {err}") from None
        raise


# Options added after configs were already hashed (bench cell ids) and saved: left out of a dump while at their
# default, so existing ids and config files do not change.
_OMITTED_AT_DEFAULT = {("data", "cold_item_fraction"): 0.0}


def config_to_dict(config: Config) -> dict:
    tree = config.model_dump(mode="json")
    for (section, key), default in _OMITTED_AT_DEFAULT.items():
        if tree[section].get(key) == default:
            tree[section].pop(key)
    return tree


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
