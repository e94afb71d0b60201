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
