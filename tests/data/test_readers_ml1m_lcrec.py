"""The SASRec authors' ml-1m.txt (+ item map to GroupLens movies.dat) and the LC-Rec JSON layout, on tiny files
in the official formats, including their bad-input cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqrec.config import DataConfig
from seqrec.data import prepare_data
from seqrec.data.attributes import item_attributes
from seqrec.data.datasets import DATASETS, find_local
from seqrec.data.readers.lcrec import read_lcrec
from seqrec.data.readers.movielens import read_ml1m_sasrec
from seqrec.errors import DataError


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def write_ml1m(root: Path, *, grouplens: bool = False) -> Path:
    folder = root / "ml-1m"
    folder.mkdir(parents=True)
    # users 1..4, items 1..3; line order is the chronology (user 2 watches 3 before 1)
    (folder / "ml-1m.txt").write_text("1 1\n1 2\n1 3\n2 3\n2 1\n2 2\n3 2\n3 1\n3 3\n4 1\n4 3\n4 2\n")
    (folder / "sas_to_original_items.txt").write_text("1 1198\n2 2\n3 3952\n")
    (folder / "movies.dat").write_bytes(
        "1198::Raiders of the Lost Ark (1981)::Action|Adventure\n"
        "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
        "3952::Contender, The (2000)::Drama|Thriller\n"
        "9::Café Society (1995)::Drama\n".encode("latin-1")
    )
    if grouplens:
        (folder / "ratings.dat").write_text("1::1198::5::978300760\n")
    return folder


def test_ml1m_sasrec_text_with_titles_through_the_item_map(tmp_path):
    folder = write_ml1m(tmp_path, grouplens=True)
    layout, main, side = find_local(DATASETS["ml-1m"], tmp_path)
    assert main == folder / "ml-1m.txt" and side == folder / "movies.dat"  # the txt layout wins over ratings.dat
    inter, feats = read_ml1m_sasrec(main, side)
    assert inter["item"].to_list()[:6] == [1, 2, 3, 3, 1, 2]
    assert feats.to_dicts()[0] == {"item": "1", "title": "Raiders of the Lost Ark", "year": "1981",
                                   "genres": "Action Adventure"}  # fmt: skip
    d = prepare_data(DataConfig(name="ml-1m"), tmp_path)
    assert (d.num_users, d.num_items, d.stats["interactions"]) == (4, 3, 12)  # no k-core by default
    assert d.stats["timestamps"] is False and list(d.item_ids[1:]) == ["1", "2", "3"]
    u2 = list(d.user_ids).index("2")
    row = list(d.test.users).index(u2)
    assert d.test.inputs[row].tolist() == [3, 1] and d.test.targets[row] == 2  # file order = chronology
    attrs = item_attributes(d)
    assert attrs[0] == [] and attrs[3] == [("title", "Contender, The"), ("year", "2000"), ("genres", "Drama Thriller")]


def test_ml1m_movies_dat_is_latin1(tmp_path):
    folder = write_ml1m(tmp_path)
    (folder / "sas_to_original_items.txt").write_text("1 9\n2 2\n3 3952\n")
    _, feats = read_ml1m_sasrec(folder / "ml-1m.txt", folder / "movies.dat")
    assert feats["title"][0] == "Café Society" and feats["year"][0] == "1995"


def test_ml1m_without_map_loads_without_titles(tmp_path):
    folder = write_ml1m(tmp_path)
    (folder / "sas_to_original_items.txt").unlink()
    inter, feats = read_ml1m_sasrec(folder / "ml-1m.txt", folder / "movies.dat")
    assert inter.height == 12 and feats is None


@pytest.mark.parametrize(("body", "line"), [("1 1198\n2 x\n", 2), ("1 1198\n1 2\n", 2), ("1 2 3\n", 1)])
def test_ml1m_bad_item_map_names_the_line(tmp_path, body, line):
    folder = write_ml1m(tmp_path)
    (folder / "sas_to_original_items.txt").write_text(body)
    with pytest.raises(DataError) as err:
        read_ml1m_sasrec(folder / "ml-1m.txt", folder / "movies.dat")
    msg = one_line(err)
    assert "sas_to_original_items.txt" in msg and f"line {line}" in msg


def test_ml1m_falls_back_to_grouplens_ratings(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    rows = "".join(f"{u}::{i}::{(u + i) % 5 + 1}::{978300000 + 10 * u + i}\n" for u in range(1, 8) for i in range(1, 7))
    (folder / "ratings.dat").write_text(rows)
    layout, _, _ = find_local(DATASETS["ml-1m"], tmp_path)
    assert layout.name == "read_ml_dat" and DATASETS["ml-1m"].kcore_for(layout) == 5
    d = prepare_data(DataConfig(name="ml-1m"), tmp_path)
    assert d.stats["kcore"]["min_user"] == 5 and d.stats["timestamps"] is True


# --------------------------------------------------------------------------------------------------- LC-Rec


def write_lcrec(root: Path, name: str = "amazon-scientific-2018", stem: str = "Scientific", inter=None, items=None):
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    inter = inter if inter is not None else {"0": [0, 1, 2], "1": [2, 0, 1, 3], "2": [3, 1, 0]}
    items = items if items is not None else {
        "0": {"title": "Beaker &amp; Flask", "description": "<b>Glass</b> set", "brand": "Acme",
              "categories": "Lab,Glassware"},
        "1": {"title": "Gloves", "description": "", "brand": "", "categories": "Lab,Safety"},
        "2": {"title": "Scale &quot;Pro&quot;", "description": "Weighs", "brand": "Ohaus", "categories": "Lab"},
        "3": {"title": "Tape", "description": None, "brand": "3M", "categories": ""},
    }  # fmt: skip
    (folder / f"{stem}.inter.json").write_text(inter if isinstance(inter, str) else json.dumps(inter))
    (folder / f"{stem}.item.json").write_text(items if isinstance(items, str) else json.dumps(items, indent=2))
    return folder


@pytest.mark.parametrize(("name", "stem"), [("amazon-scientific-2018", "Scientific"), ("amazon-office-2014", "Office")])
def test_lcrec_named_datasets_on_tiny_files(tmp_path, name, stem):
    write_lcrec(tmp_path, name, stem)
    d = prepare_data(DataConfig(name=name), tmp_path)
    assert (d.num_users, d.num_items, d.stats["interactions"]) == (3, 4, 10)  # no k-core by default
    assert d.stats["timestamps"] is False
    u1 = list(d.user_ids).index("1")
    row = list(d.test.users).index(u1)
    ids = list(d.item_ids)
    assert [ids[i] for i in d.test.inputs[row]] == ["2", "0", "1"] and ids[d.test.targets[row]] == "3"
    attrs = item_attributes(d)
    assert attrs[ids.index("0")] == [("title", "Beaker & Flask"), ("brand", "Acme"), ("categories", "Lab,Glassware"),
                                     ("description", "Glass set")]  # fmt: skip
    assert attrs[ids.index("1")] == [("title", "Gloves"), ("categories", "Lab,Safety")]  # empty fields dropped
    assert attrs[ids.index("2")][0] == ("title", 'Scale "Pro"')


def test_lcrec_file_mode(tmp_path):
    folder = write_lcrec(tmp_path)
    cfg = DataConfig(name="file", path=str(folder / "Scientific.inter.json"), min_user_interactions=0,
                     min_item_interactions=0)  # fmt: skip
    d = prepare_data(cfg, tmp_path)
    assert d.stats["timestamps"] is False and d.num_items == 4
    assert d.item_features is not None and "categories" in d.item_features.columns


def test_lcrec_missing_is_one_line_listing_paths(tmp_path):
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(name="amazon-office-2014"), tmp_path)
    msg = one_line(err)
    assert "amazon-office-2014/Office.inter.json" in msg and str(tmp_path) in msg and "no download" in msg


@pytest.mark.parametrize(
    ("inter", "items", "expect"),
    [
        ("[[0, 1], [1, 2]]", None, "top level"),  # a list instead of an object
        ("{}", None, "empty"),
        ('{"0": 5}', None, "list of item ids"),
        ('{"0": [0, {"x": 1}]}', None, "item ids"),
        ('{"0": [0, null]}', None, "item ids"),
        ('{"0": [0, true]}', None, "item ids"),
        ('{"0": [0, 1', None, "not valid JSON"),
        ('{"0": []}', None, "no interactions"),
        (None, "[1, 2]", "top level"),
        (None, '{"0": "title only"}', "object of text fields"),
        (None, "{}", "empty"),
    ],
)
def test_lcrec_bad_input_is_one_line_naming_the_file(tmp_path, inter, items, expect):
    folder = write_lcrec(tmp_path, inter=inter, items=items)
    with pytest.raises(DataError) as err:
        read_lcrec(folder / "Scientific.inter.json", folder / "Scientific.item.json")
    msg = one_line(err)
    wrong = "Scientific.inter.json" if inter is not None else "Scientific.item.json"
    assert wrong in msg and expect in msg, msg


def test_lcrec_invalid_utf8_names_the_line(tmp_path):
    folder = write_lcrec(tmp_path)
    (folder / "Scientific.item.json").write_bytes(b'{\n"0": {"title": "caf\xe9"}\n}')
    with pytest.raises(DataError) as err:
        read_lcrec(folder / "Scientific.inter.json", folder / "Scientific.item.json")
    assert "line 2" in one_line(err) and "utf-8" in str(err.value)
