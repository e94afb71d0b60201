"""The README's Python example runs as written; the API works on in-memory frames with string ids."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```\s*<!-- /api-example -->", text, re.S)
    assert block, "README lacks the api-example block"
    return block.group(1)


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / "cache"))
    exec(compile(readme_example(), "README.md:api-example", "exec"), {"__name__": "readme"})  # noqa: S102
    assert (tmp_path / "out" / "api-run" / "model.safetensors").is_file()


def _log(n_users: int = 60, n_items: int = 40, length: int = 15, seed: int = 0):
    """A random log with string ids, a datetime column and item titles (rows shuffled: time decides order)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 30)))
        for t in range(length):
            rows.append((f"user-{u:03d}", f"sku-{int(rng.integers(0, n_items)):03d}", start + pd.Timedelta(hours=t)))
    df = pd.DataFrame(rows, columns=["customer", "product", "when"]).sample(frac=1.0, random_state=seed)
    titles = pd.DataFrame({"product": [f"sku-{i:03d}" for i in range(n_items)],
                           "title": [f"Product number {i}" for i in range(n_items)]})
    return df, titles


def test_from_pandas_string_ids_and_datetime_train_and_recommend(tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("pandas")
    from seqrec import Dataset, Recommender

    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / "cache"))
    df, titles = _log()
    data = Dataset.from_pandas(df, user_col="customer", item_col="product", time_col="when", item_text=titles,
                               max_len=10, min_user_interactions=0, min_item_interactions=0)
    assert data.stats()["users"] == 60 and data.data.item_ids[1].startswith("sku-")
    # chronology comes from the datetime column, not the (shuffled) row order
    last = df.sort_values("when", kind="stable").groupby("customer")["product"].last()
    tested = {str(data.data.user_ids[u]): str(data.data.item_ids[t])
              for u, t in zip(data.data.test.users, data.data.test.targets, strict=True)}
    assert all(tested[u] == last[u] for u in tested)
    rec = Recommender.from_config(None, train={"epochs": 2, "progress": False, "threads": 1}, model={"hidden": 16},
                                  eval={"bootstrap": 10}, data={"max_len": 10})
    rec.fit(data, output_dir=tmp_path / "run")
    top = rec.recommend(users=["user-000", "user-007"], k=5)
    assert top.height == 10 and set(top["user"]) == {"user-000", "user-007"}
    assert all(item.startswith("sku-") for item in top["item"]) and top["title"][0].startswith("Product number")
    seen = set(df[df.customer == "user-000"]["product"])
    assert not seen & set(top.filter(top["user"] == "user-000")["item"])  # seen items filtered
    again = Recommender.load(tmp_path / "run")
    from seqrec.errors import DataError

    with pytest.raises(DataError, match="in-memory frame"):
        again.evaluate("test")  # the frame cannot be rebuilt from config.yaml: pass dataset=
    assert again.recommend(users=["user-000", "user-007"], k=5, dataset=data).equals(top)
    assert again.evaluate("test", dataset=data).metrics == rec.evaluate("test").metrics
