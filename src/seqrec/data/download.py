"""Fetching named datasets: stream to a temp file, verify checksums, extract safely, rename into place.

Every download goes to a temporary file next to its destination (``<data_dir>/.download-*``), is hashed
while streaming (sha256, plus MD5 where the publisher gives one, e.g. GroupLens), and only a verified file
is renamed into place; a mismatch deletes the temporary file and raises a one-line :class:`DataError`.
When a recipe has no known sha256 the computed one is printed and recorded in
``<data_dir>/<folder>/.seqrec-download.json``.

Archives (zip, tar) are extracted into a temporary folder first. Members with absolute paths, ``..``
components, links pointing outside the target, or special files are refused with a DataError before
anything is written; the extracted ``archive_root`` folder is then renamed to ``<data_dir>/<folder>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from seqrec.data.datasets import DatasetRecipe, Download
from seqrec.errors import DataError
from seqrec.io import publish_dir

CHUNK = 1 << 20
TIMEOUT_S = 30.0
USER_AGENT = "seqrec-data/0.1 (+https://github.com/)"


def _is_archive(filename: str) -> bool:
    return filename.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))


def _stream(url: str, dest: Path, progress: bool, label: str) -> tuple[str, str, int]:
    """Download ``url`` into ``dest`` (an open-able path); returns (sha256, md5, size)."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
        total = resp.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        bar = None
        if progress:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TransferSpeedColumn,
            )

            bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                           TransferSpeedColumn())  # fmt: skip
            bar.start()
            task = bar.add_task(label, total=total)
        try:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
                if bar is not None:
                    bar.update(task, advance=len(chunk))
        finally:
            if bar is not None:
                bar.stop()
        out.flush()
        os.fsync(out.fileno())
    return sha.hexdigest(), md5.hexdigest(), size


# --------------------------------------------------------------------------------------------------
# safe extraction


def _check_member_name(archive: Path, name: str) -> PurePosixPath:
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or p.is_absolute() or (len(norm) > 1 and norm[1] == ":"):
        raise DataError(f"{archive}: refusing archive member with an absolute path: {name!r}")
    if ".." in p.parts:
        raise DataError(f"{archive}: refusing archive member with a '..' component: {name!r}")
    return p


def _link_escapes(member: PurePosixPath, link_target: str) -> bool:
    target = link_target.replace("\\", "/")
    if target.startswith("/"):
        return True
    depth = 0
    for part in (*member.parent.parts, *PurePosixPath(target).parts):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (".", ""):
            depth += 1
    return False


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip or tar archive into ``target`` (an empty folder), refusing unsafe members (DataError)."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                p = _check_member_name(archive, info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    link = zf.read(info).decode("utf-8", errors="replace")
                    if _link_escapes(p, link):
                        raise DataError(f"{archive}: refusing symlink escaping the target: {info.filename!r}")
                dest = (root / p).resolve()
                if dest != root and root not in dest.parents:
                    raise DataError(
                        f"{archive}: refusing archive member outside the target: {info.filename!r}"
                    )
            for info in infos:
                if stat.S_ISLNK(info.external_attr >> 16):
                    continue  # in-bounds links are not needed by any dataset: skip rather than materialise
                zf.extract(info, root)
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                p = _check_member_name(archive, m.name)
                if m.issym() or m.islnk():
                    link_base = p if m.issym() else PurePosixPath("x")
                    if _link_escapes(link_base, m.linkname):
                        raise DataError(f"{archive}: refusing link escaping the target: {m.name!r}")
                elif not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: refusing special file in archive: {m.name!r}")
            tf.extractall(root, members=members, filter="data")
        return
    raise DataError(f"{archive}: not a zip or tar archive")


# --------------------------------------------------------------------------------------------------
# fetching


def _record(folder: Path, entry: dict) -> None:
    from seqrec.io import atomic_write_json

    path = folder / ".seqrec-download.json"
    records: list = []
    if path.is_file():
        try:
            records = json.loads(path.read_text())
        except ValueError:
            records = []
    records = [r for r in records if r.get("filename") != entry["filename"]] + [entry]
    atomic_write_json(path, records)


def _say(progress: bool, text: str) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True).print(text, highlight=False)
    else:
        print(text, flush=True)


def fetch_file(dl: Download, recipe: DatasetRecipe, data_dir: Path, *, progress: bool = False) -> Path:
    """Download (and for archives extract) one file of ``recipe`` into ``<data_dir>/<recipe.folder>``."""
    folder = data_dir / recipe.folder
    final = folder / dl.filename
    if not _is_archive(dl.filename) and final.is_file():
        return final
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"dataset {recipe.name!r}: cannot create data dir {data_dir} ({err.strerror})"
        ) from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".download-{recipe.name}-", suffix=".part", dir=data_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    errors = []
    try:
        for url in dl.urls:
            try:
                sha, md5, size = _stream(url, tmp, progress, f"{recipe.name}: {dl.filename}")
                break
            except (urllib.error.URLError, OSError, TimeoutError, ValueError) as err:
                reason = (
                    getattr(err, "reason", None)
                    or getattr(err, "strerror", None)
                    or str(err)
                    or type(err).__name__
                )
                errors.append(f"{url}: {reason}")
        else:
            raise DataError(
                f"dataset {recipe.name!r}: not found under {data_dir} and the download failed "
                f"({'; '.join(errors)})"
            )
        if dl.sha256 is not None and sha != dl.sha256.lower():
            raise DataError(
                f"dataset {recipe.name!r}: sha256 mismatch for {url} (expected {dl.sha256}, got {sha}); "
                f"nothing was installed"
            )
        if dl.md5 is not None and md5 != dl.md5.lower():
            raise DataError(
                f"dataset {recipe.name!r}: md5 mismatch for {url} (expected {dl.md5}, got {md5}); "
                f"nothing was installed"
            )
        if dl.sha256 is None:
            _say(progress, f"{recipe.name}: {dl.filename} sha256 {sha} (no published value; recorded)")
        record = {
            "filename": dl.filename, "url": url, "sha256": sha, "md5": md5, "size": size,
            "verified": dl.sha256 is not None or dl.md5 is not None, "time": time.time(),
        }  # fmt: skip
        if _is_archive(dl.filename):
            _install_archive(tmp, dl, recipe, data_dir)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        _record(folder, record)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def _install_archive(archive: Path, dl: Download, recipe: DatasetRecipe, data_dir: Path) -> None:
    folder = data_dir / recipe.folder
    staging = Path(tempfile.mkdtemp(prefix=f".extract-{recipe.name}-", dir=data_dir))
    try:
        safe_extract(archive, staging)
        source = staging / dl.archive_root if dl.archive_root else staging
        if not source.is_dir():
            raise DataError(
                f"dataset {recipe.name!r}: archive {dl.filename} lacks the folder {dl.archive_root!r}"
            )
        if not folder.exists():

            def move_in(tmp: Path) -> None:
                for child in source.iterdir():
                    os.rename(child, tmp / child.name)

            publish_dir(folder, move_in)
            return
        for child in source.iterdir():  # folder exists (e.g. side files): add what is missing
            dest = folder / child.name
            if not dest.exists():
                os.rename(child, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_dataset(
    recipe: DatasetRecipe, data_dir: Path, *, allow_download: bool = True, progress: bool = False
) -> None:
    """Download every file of ``recipe`` (together they make one of its local layouts exist under ``data_dir``),
    or raise a one-line DataError."""
    looked = ", ".join(dict.fromkeys(layout.main for layout in recipe.layouts)) or "(no files)"  # distinct paths
    if not recipe.downloads:
        raise DataError(
            f"dataset {recipe.name!r}: not found under {data_dir} (looked for {looked}; it has no download, "
            f"place the files there)"
        )
    if not allow_download:
        raise DataError(
            f"dataset {recipe.name!r}: not found under {data_dir} (looked for {looked}) and downloads "
            f"are off (data.download=false)"
        )
    for dl in recipe.downloads:
        fetch_file(dl, recipe, data_dir, progress=progress)
