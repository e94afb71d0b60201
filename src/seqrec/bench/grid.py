"""Benchmark grids: a YAML file with fixed settings and swept keys, expanded into a cartesian product of cells.

Grid file keys (all optional except ``sweep`` or ``fixed``)::

    name: quickstart                 # shown in the report title
    jobs: 2                          # cells trained at once (``seqrec bench --jobs`` overrides; default 1)
    recipes:                         # model name -> config file (relative to the grid file): the model's
      sasrec: ../sasrec-ml-100k.yaml #   hyper-parameters, the lowest layer of that model's cells
      bert4rec:                      # or dataset name -> config file, "*" for the other datasets: a recipe
        ml-1m: ../bert4rec-ml-1m.yaml  #   chosen per dataset (a cell's dataset is its swept or fixed data.name)
        "*": ../bert4rec-ml-100k.yaml
    fixed:                           # a config tree (sections) and/or dotted keys, applied to every cell
      train: {epochs: 5}
      data.max_len: 50
    sweep:                           # dotted config key -> list of values; cells = cartesian product
      model.name: [sasrec, bert4rec]
      data.max_len: [50, 100]
    only:                            # a swept key that applies only where other swept keys take given values
      loss.num_negatives: {loss.name: [cce_neg]}   # elsewhere it is left out: full-CE cells are not repeated

Layers, lowest first: the model's recipe, ``fixed``, ``--set`` overrides of the command line, the swept values.
Short aliases: ``model`` = ``model.name``, ``dataset`` = ``data.name``, ``max_len`` = ``data.max_len``,
``seed`` = ``train.seed``, ``loss`` = ``loss.name``. A cell's id is a hash of its fully resolved config, so the
same cell in an edited grid keeps its id (and its results).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from seqrec.config import Config, build_config, config_to_dict, read_config_tree
from seqrec.errors import ConfigError

ALIASES: dict[str, str] = {
    "model": "model.name",
    "dataset": "data.name",
    "max_len": "data.max_len",
    "seed": "train.seed",
    "loss": "loss.name",
}
_GRID_KEYS = ("name", "jobs", "recipes", "fixed", "sweep", "only")


@dataclass
class Grid:
    """A parsed grid file."""

    name: str
    fixed: dict[str, Any]  # nested config tree
    sweep: dict[str, list[Any]]  # canonical dotted key -> values (in file order)
    # model name -> {dataset name or "*" -> config tree}; a recipe given as one file is stored under "*"
    recipes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    source: str = ""  # path of the grid file
    jobs: int | None = None  # cells trained at once unless the command line says otherwise
    only: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # swept key -> {swept key: values}

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "fixed": self.fixed, "sweep": self.sweep, "recipes": self.recipes,
                "source": self.source, "jobs": self.jobs, "only": self.only}


@dataclass
class Cell:
    """One point of the grid: its swept values and the resolved config."""

    id: str
    ordinal: int
    labels: dict[str, Any]  # canonical dotted key -> value
    config: Config

    def describe(self) -> str:
        return " ".join(f"{label_name(k)}={v}" for k, v in self.labels.items())


def label_name(key: str) -> str:
    """Short display name of a dotted key: ``model.name`` -> ``model``, ``data.max_len`` -> ``max_len``."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def canonical_key(key: str) -> str:
    return ALIASES.get(key, key)


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"grid key '{key}': '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _tree(mapping: dict, where: str) -> dict:
    """A config tree from a mapping that may mix sections and dotted keys."""
    out: dict = {}
    for k, v in mapping.items():
        key = str(k) if isinstance(v, dict) else canonical_key(str(k))  # "model: {...}" is the section
        if "." in key:
            _set_dotted(out, key, v)
        elif isinstance(v, dict):
            out = _merge(out, {key: v})
        else:
            raise ConfigError(f"{where}: '{k}' must be a section (mapping) or a dotted key such as train.lr")
    return out


def _read_yaml(path: Path, what: str) -> dict:
    return read_config_tree(path, ConfigError, what=what, expected="a mapping")


def load_grid(path: str | Path) -> Grid:
    """Parse and validate a grid file (unknown keys and empty sweeps are one-line ConfigErrors)."""
    path = Path(path)
    raw = _read_yaml(path, "grid file")
    return parse_grid(raw, str(path), base_dir=path.parent)


def parse_grid(raw: dict, source: str = "<grid>", base_dir: Path | None = None) -> Grid:
    for k in raw:
        if k not in _GRID_KEYS:
            raise ConfigError(f"{source}: unknown grid key '{k}' (allowed: {', '.join(_GRID_KEYS)})")
    fixed_raw = raw.get("fixed") or {}
    sweep_raw = raw.get("sweep") or {}
    if not isinstance(fixed_raw, dict):
        raise ConfigError(f"{source}: 'fixed' must be a mapping of config keys")
    if not isinstance(sweep_raw, dict):
        raise ConfigError(f"{source}: 'sweep' must be a mapping of dotted config key -> list of values")
    sweep: dict[str, list[Any]] = {}
    for k, values in sweep_raw.items():
        key = canonical_key(str(k))
        if "." not in key:
            raise ConfigError(f"{source}: sweep key '{k}' must be a dotted config key such as data.max_len")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: sweep key '{k}' must be a non-empty list of values")
        if key in sweep:
            raise ConfigError(f"{source}: sweep key '{k}' given twice")
        sweep[key] = values
    recipes_raw = raw.get("recipes") or {}
    if not isinstance(recipes_raw, dict):
        raise ConfigError(f"{source}: 'recipes' must map a model name to a config file or {{dataset: file}}")
    recipes: dict[str, dict[str, dict]] = {}
    for model, entry in recipes_raw.items():
        by_dataset = entry if isinstance(entry, dict) else {"*": entry}
        recipes[str(model)] = {}
        for dataset, rel in by_dataset.items():
            if not isinstance(rel, str) or not rel:
                raise ConfigError(f"{source}: recipes: '{model}': '{dataset}' must be a config file path")
            p = Path(rel)
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            where = f"recipe of model '{model}'" + ("" if dataset == "*" else f" on '{dataset}'")
            recipes[str(model)][str(dataset)] = _read_yaml(p, where)
    name = str(raw.get("name") or Path(source).stem)
    jobs = raw.get("jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"{source}: 'jobs' must be a positive integer (cells trained at once), got {jobs!r}")
    return Grid(name=name, fixed=_tree(fixed_raw, f"{source}: fixed"), sweep=sweep, recipes=recipes,
                source=source, jobs=jobs, only=_parse_only(raw.get("only"), sweep, source))


def _parse_only(raw: Any, sweep: dict[str, list[Any]], source: str) -> dict[str, dict[str, list[Any]]]:
    """``only: {swept key: {other swept key: [values]}}``, validated against the sweep."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: 'only' must map a swept key to {{swept key: [values]}}")
    out: dict[str, dict[str, list[Any]]] = {}
    for k, cond in raw.items():
        key = canonical_key(str(k))
        if key not in sweep:
            raise ConfigError(f"{source}: only: '{k}' is not a swept key")
        if not isinstance(cond, dict) or not cond:
            raise ConfigError(f"{source}: only: '{k}' needs a mapping {{swept key: [values]}}")
        out[key] = {}
        for ck, values in cond.items():
            ckey = canonical_key(str(ck))
            if ckey not in sweep or ckey == key:
                raise ConfigError(f"{source}: only: '{k}': condition key '{ck}' must be another swept key")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{source}: only: '{k}': '{ck}' must be a non-empty list of values")
            out[key][ckey] = values
    return out


def recipe_for(grid: Grid, model: str, dataset: Any) -> dict[str, Any]:
    """The recipe tree of ``model`` on ``dataset``: the dataset's own, else the model's ``"*"`` one; a model
    without recipes has none (the config defaults), but one with per-dataset recipes and no ``"*"`` must name
    every dataset it runs on (a silent fall back to the defaults would be a different recipe)."""
    if model not in grid.recipes:
        return {}
    by_dataset = grid.recipes[model]
    if str(dataset) in by_dataset:
        return by_dataset[str(dataset)]
    if "*" in by_dataset:
        return by_dataset["*"]
    raise ConfigError(f"{grid.source}: recipes: '{model}' has no recipe for dataset '{dataset}' "
                      f"(expected one of {', '.join(sorted(by_dataset))} or a \"*\" entry)")


def cell_id(config: Config) -> str:
    """Stable id of a resolved config: the first 16 hex digits of the SHA-256 of its sorted JSON."""
    text = json.dumps(config_to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand(grid: Grid, overrides: list[str] | None = None) -> list[Cell]:
    """The grid's cells in sweep order (the last key varies fastest); duplicate configs are kept once (so a key
    left out by ``only`` gives one cell per combination of the others)."""
    keys = list(grid.sweep)
    cells: list[Cell] = []
    seen: set[str] = set()
    for values in itertools.product(*(grid.sweep[k] for k in keys)):
        labels = dict(zip(keys, values, strict=True))
        for key, cond in grid.only.items():  # a key that does not apply here is left out (its duplicates merge)
            if any(labels[ck] not in allowed for ck, allowed in cond.items()):
                del labels[key]
        model = labels.get("model.name", grid.fixed.get("model", {}).get("name", "sasrec"))
        dataset = labels.get("data.name", grid.fixed.get("data", {}).get("name"))
        tree = _merge(recipe_for(grid, str(model), dataset), grid.fixed)
        sweep_overrides = [f"{k}={json.dumps(v)}" for k, v in labels.items()]
        try:
            config = build_config(tree, [*(overrides or []), *sweep_overrides])
        except ConfigError as err:
            where = ", ".join(f"{k}={v}" for k, v in labels.items())
            raise ConfigError(f"{grid.source}: cell ({where}): {err}") from None
        cid = cell_id(config)
        if cid in seen:
            continue
        seen.add(cid)
        cells.append(Cell(id=cid, ordinal=len(cells), labels=labels, config=config))
    return cells


def sample_cells(cells: list[Cell], n: int, seed: int = 0) -> list[Cell]:
    """A seeded random subset of ``n`` cells (all of them when ``n`` >= their number), in grid order.

    The draw depends only on the cells' ids and the seed, so the same grid and seed give the same cells, and a
    resumed sampled run trains the cells it started.
    """
    if n < 1:
        raise ConfigError(f"--sample: expected a positive number of cells, got {n}")
    if n >= len(cells):
        return list(cells)
    order = sorted(cells, key=lambda c: c.id)  # independent of file order edits that keep the cells
    chosen = {c.id for c in random.Random(seed).sample(order, n)}
    return [replace(c, ordinal=i) for i, c in enumerate(c for c in cells if c.id in chosen)]
