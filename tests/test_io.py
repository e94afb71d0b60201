import stat
from pathlib import Path

from seqrec import io
from seqrec.io import atomic_write_json, atomic_write_text


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_write_gives_a_plain_files_mode_and_keeps_an_existing_one(tmp_path: Path):
    atomic_write_json(tmp_path / "summary.json", {"a": 1})  # mkstemp alone would leave it 0600
    assert _mode(tmp_path / "summary.json") == 0o666 & ~io._UMASK  # 0644 under the usual umask 022
    (tmp_path / "kept.txt").write_text("old")
    (tmp_path / "kept.txt").chmod(0o640)
    atomic_write_text(tmp_path / "kept.txt", "new")
    assert _mode(tmp_path / "kept.txt") == 0o640 and (tmp_path / "kept.txt").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
