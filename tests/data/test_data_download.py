"""Downloads against a local http.server (127.0.0.1, random port) serving archives the tests build."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from seqrec.config import DataConfig
from seqrec.data import datasets, prepare_data
from seqrec.data.download import fetch_dataset, safe_extract
from seqrec.data.readers.movielens import read_ml100k
from seqrec.errors import DataError

U_DATA = "".join(
    f"{u}\t{i}\t{(u + i) % 5 + 1}\t{1000 + 7 * u + i}\n" for u in range(1, 9) for i in range(1, 8)
)


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server API
        self.hits.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"files": {}, "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, handler
    httpd.shutdown()
    httpd.server_close()


def make_zip(entries: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in entries.items():
            zf.writestr(name, text)
    return buf.getvalue()


def ml_recipe(url: str, sha: str | None) -> datasets.DatasetRecipe:
    base = datasets.DATASETS["ml-100k"]
    dl = dataclasses.replace(base.downloads[0], urls=(url,), sha256=sha, md5=None)
    return dataclasses.replace(base, downloads=(dl,))


def test_download_verify_extract_and_no_second_request(server, tmp_path, monkeypatch):
    base, handler = server
    archive = make_zip({"ml-100k/u.data": U_DATA, "ml-100k/README": "fake"})
    handler.files["/ml-100k.zip"] = archive
    recipe = ml_recipe(f"{base}/ml-100k.zip", hashlib.sha256(archive).hexdigest())
    monkeypatch.setitem(datasets.DATASETS, "ml-100k", recipe)
    cfg = DataConfig(name="ml-100k", min_user_interactions=0, min_item_interactions=0)
    data = prepare_data(cfg, tmp_path)
    assert (tmp_path / "ml-100k" / "u.data").read_text() == U_DATA
    assert data.num_users == 8 and data.num_items == 7
    assert handler.hits == ["/ml-100k.zip"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    data2 = prepare_data(cfg, tmp_path)
    assert handler.hits == ["/ml-100k.zip"] and data2.stats["cache"]["hit"]
    # even without the cache, local files are found and nothing is fetched
    prepare_data(cfg.model_copy(update={"cache": False}), tmp_path)
    assert handler.hits == ["/ml-100k.zip"]


def test_wrong_sha256_leaves_nothing_in_place(server, tmp_path):
    base, handler = server
    handler.files["/ml-100k.zip"] = make_zip({"ml-100k/u.data": U_DATA})
    recipe = ml_recipe(f"{base}/ml-100k.zip", "0" * 64)
    with pytest.raises(DataError) as err:
        fetch_dataset(recipe, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "sha256 mismatch" in msg and "ml-100k" in msg
    assert list(tmp_path.iterdir()) == []


def test_unknown_sha_is_printed_and_recorded(server, tmp_path, capsys):
    base, handler = server
    archive = make_zip({"ml-100k/u.data": U_DATA})
    handler.files["/ml-100k.zip"] = archive
    fetch_dataset(ml_recipe(f"{base}/ml-100k.zip", None), tmp_path)
    sha = hashlib.sha256(archive).hexdigest()
    assert sha in capsys.readouterr().out
    assert sha in (tmp_path / "ml-100k" / ".seqrec-download.json").read_text()


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "ml-100k/../../evil.txt"])
def test_path_traversal_zip_is_refused(server, tmp_path, member):
    base, handler = server
    archive = make_zip({"ml-100k/u.data": U_DATA, member: "pwned"})
    handler.files["/ml-100k.zip"] = archive
    target = tmp_path / "data"
    with pytest.raises(DataError, match="refusing"):
        fetch_dataset(ml_recipe(f"{base}/ml-100k.zip", hashlib.sha256(archive).hexdigest()), target)
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "ml-100k").exists()
    assert [p.name for p in target.iterdir()] == []


def _tar_with_symlink(link_target: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = U_DATA.encode()
        info = tarfile.TarInfo("ml-100k/u.data")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("ml-100k/link")
        link.type = tarfile.SYMTYPE
        link.linkname = link_target
        tf.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize("link_target", ["../../etc/passwd", "/etc/passwd"])
def test_tar_symlink_escaping_is_refused(tmp_path, link_target):
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar_with_symlink(link_target))
    with pytest.raises(DataError, match="refusing"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "ml-100k").exists()


def test_tar_in_bounds_symlink_is_fine(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar_with_symlink("u.data"))
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "ml-100k" / "u.data").read_text() == U_DATA


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_and_no_files_is_one_clear_line(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/ml-1m.zip"
    base = datasets.DATASETS["ml-1m"]
    recipe = dataclasses.replace(base, downloads=(dataclasses.replace(base.downloads[0], urls=(url,)),))
    monkeypatch.setitem(datasets.DATASETS, "ml-1m", recipe)
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(name="ml-1m"), tmp_path / "nothing-here")
    msg = str(err.value)
    assert "\n" not in msg and "'ml-1m'" in msg and str(tmp_path / "nothing-here") in msg
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(name="ml-1m", download=False), tmp_path / "nothing-here")
    msg = str(err.value)
    assert "\n" not in msg and "'ml-1m'" in msg and "data.download=false" in msg


def test_unknown_dataset_lists_known_names(tmp_path):
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(name="ml-7b"), tmp_path)
    assert "ml-100k" in str(err.value) and "\n" not in str(err.value)


def test_local_layouts_are_used_without_network(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text(U_DATA)
    found = datasets.find_local(datasets.DATASETS["ml-100k"], tmp_path)
    assert found is not None and found[0].reader is read_ml100k and found[2] is None
    assert isinstance(found[1], Path)


def test_zip_symlink_escaping_is_refused(tmp_path):
    import stat

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", U_DATA)
        info = zipfile.ZipInfo("ml-100k/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../etc/passwd")
    archive = tmp_path / "a.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="symlink"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "ml-100k").exists()
