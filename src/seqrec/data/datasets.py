"""The named datasets (:data:`DATASETS`): where their files live under the data dir, which reader parses them,
where to download them, and their default k-core.

The default k-core is the one source of ``data.min_user_interactions`` / ``data.min_item_interactions`` when a
config leaves them unset (None): files that are already filtered (the SASRec authors' text files, the LC-Rec
JSON, Amazon 5-core reviews, ML-100K whose users all have >= 20 ratings) default to 0 so the published
statistics are reproduced; raw dumps, the synthetic generator and user files keep 5.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from seqrec.data.readers.amazon import read_amazon
from seqrec.data.readers.atomic import read_atomic
from seqrec.data.readers.common import Reader
from seqrec.data.readers.lcrec import read_lcrec
from seqrec.data.readers.movielens import read_ml1m_sasrec, read_ml100k, read_ml_csv, read_ml_dat
from seqrec.data.readers.sasrec_text import read_sasrec
from seqrec.data.readers.steam import read_steam

FILE_DEFAULT_KCORE = 5  # data.name=file: user files are usually raw logs (unchanged since the first release)
RAW_DEFAULT_KCORE = 5  # raw dumps (ML-1M/10M/20M ratings, Steam reviews) and the synthetic generator


@dataclass(frozen=True)
class Download:
    """One file to fetch, URL by URL (mirrors); ``sha256``/``md5`` None: not known (printed and recorded)."""

    urls: tuple[str, ...]
    filename: str  # saved (or extracted) under <data_dir>/<recipe.folder>/
    sha256: str | None = None
    md5: str | None = None  # GroupLens publishes MD5 sums; verified in addition to sha256 when known
    archive_root: str | None = None  # zip/tar: folder inside the archive whose content becomes the recipe folder


@dataclass(frozen=True)
class Layout:
    """Files (relative to the data dir) that make a dataset available locally, and the reader for them."""

    reader: Reader  # reader(main, side) -> (interactions, item_features)
    main: str  # interaction file; its presence selects this layout
    side: str | None = None  # optional side-information file handed to the reader
    extra: tuple[str, ...] = ()  # more side files the reader finds next to ``main`` (part of the cache identity)
    timestamps: bool = True  # False: the files give an order only (line / list position stands in for time)
    kcore: int | None = None  # default k-core of this layout (None: the recipe's default_kcore)

    @property
    def name(self) -> str:
        """Stable text identity of the reader (hashed into the cache key)."""
        return self.reader.__name__


@dataclass(frozen=True)
class DatasetRecipe:
    name: str
    description: str
    layouts: tuple[Layout, ...]  # local layouts, tried in order; downloads produce one of them
    default_kcore: int  # min interactions per user and per item when the config leaves them None
    folder: str = ""  # download destination under the data dir
    downloads: tuple[Download, ...] = ()
    homepage: str = ""
    extra: dict = field(default_factory=dict)

    def kcore_for(self, layout: Layout | None) -> int:
        return layout.kcore if layout is not None and layout.kcore is not None else self.default_kcore


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"


def _movielens(
    name: str, md5: str, dat: tuple[str, str], reader: Reader, root: str, desc: str, kcore: int
) -> DatasetRecipe:
    return DatasetRecipe(
        name=name,
        description=desc,
        layouts=(
            Layout(reader, f"{name}/{dat[0]}", f"{name}/{dat[1]}"),
            Layout(read_atomic, f"{name}/{name}.inter", f"{name}/{name}.item"),
            Layout(reader, f"{root}/{dat[0]}", f"{root}/{dat[1]}"),
        ),
        default_kcore=kcore,
        folder=name,
        downloads=(Download((f"{_GROUPLENS}/{name}.zip",), f"{name}.zip", md5=md5, archive_root=root),),
        homepage="https://grouplens.org/datasets/movielens/",
    )


def _ml1m() -> DatasetRecipe:
    """The SASRec authors' ``ml-1m.txt`` first (already 5-core, ids from 1), else the GroupLens download."""
    grouplens = _movielens(
        "ml-1m",
        "c4d9eecfca2ab87c1945afe126590906",
        ("ratings.dat", "movies.dat"),
        read_ml_dat,
        "ml-1m",
        "MovieLens 1M: the SASRec authors' ml-1m.txt (999,611 interactions, 6,040 users, 3,416 movies) when "
        "present, else GroupLens ratings.dat (1,000,209 ratings, 3,706 movies; 5-core by default)",
        RAW_DEFAULT_KCORE,
    )
    sasrec = Layout(
        read_ml1m_sasrec,
        "ml-1m/ml-1m.txt",
        "ml-1m/movies.dat",
        extra=("ml-1m/sas_to_original_items.txt",),
        timestamps=False,
        kcore=0,
    )
    return dataclasses.replace(grouplens, layouts=(sasrec, *grouplens.layouts))


AMAZON_2018_CATEGORIES = (
    "Arts_Crafts_and_Sewing", "Industrial_and_Scientific", "Musical_Instruments", "Office_Products",
    "Pet_Supplies", "Video_Games", "Magazine_Subscriptions", "Luxury_Beauty", "Prime_Pantry", "Software",
    "All_Beauty", "Appliances", "Gift_Cards", "Toys_and_Games", "Grocery_and_Gourmet_Food", "Digital_Music",
)  # fmt: skip

_AMAZON_MIRRORS = (
    "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2",
    "https://jmcauley.ucsd.edu/data/amazon_v2",
    "http://deepyeti.ucsd.edu/jianmo/amazon",
)
# sha256 known only for these two files (measured on copies of the public downloads)
_AMAZON_SHA256 = {
    "Magazine_Subscriptions_5.json.gz": "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2",
    "meta_Magazine_Subscriptions.json.gz": "4e64f9028648dee43200a4bd3e7b8c497ffd80ea52018e8f994a5fbd5d97faf6",
}


def _amazon(category: str) -> DatasetRecipe:
    name = f"amazon-{category}"
    reviews, meta = f"{category}_5.json.gz", f"meta_{category}.json.gz"
    slug = category.lower().replace("_", "-")
    slug = {"magazine-subscriptions": "magazine"}.get(slug, slug)
    return DatasetRecipe(
        name=name,
        description=f"Amazon Review Data 2018 (Ni, Li & McAuley 2019), {category} 5-core reviews + metadata",
        layouts=(
            Layout(read_amazon, f"{name}/{reviews}", f"{name}/{meta}"),
            Layout(read_amazon, f"amazon-{slug}-2018/{reviews}", f"amazon-{slug}-2018/{meta}"),
            Layout(read_amazon, f"amazon-{slug}/{reviews}", f"amazon-{slug}/{meta}"),
        ),
        default_kcore=0,  # the 5-core files are the published dataset
        folder=name,
        downloads=(
            Download(
                tuple(f"{m}/categoryFilesSmall/{reviews}" for m in _AMAZON_MIRRORS),
                reviews,
                sha256=_AMAZON_SHA256.get(reviews),
            ),
            Download(
                tuple(f"{m}/metaFiles2/{meta}" for m in _AMAZON_MIRRORS), meta, sha256=_AMAZON_SHA256.get(meta)
            ),
        ),
        homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/",
    )


def _lcrec(name: str, stem: str, desc: str) -> DatasetRecipe:
    """LC-Rec JSON (no public download in this layout: the files must be placed under the data dir)."""
    layout = Layout(read_lcrec, f"{name}/{stem}.inter.json", f"{name}/{stem}.item.json", timestamps=False)
    return DatasetRecipe(name=name, description=desc, layouts=(layout,), default_kcore=0, folder=name,
                         homepage="https://github.com/RUCAIBox/LC-Rec")  # fmt: skip


def _steam() -> DatasetRecipe:
    return DatasetRecipe(
        name="steam",
        description="Steam reviews crawled by Kang & McAuley (SASRec, ICDM'18): 7.8M reviews + game info",
        layouts=(
            Layout(read_steam, "steam/steam_reviews.json.gz", "steam/steam_games.json.gz"),
            Layout(read_sasrec, "steam/Steam.txt", timestamps=False, kcore=0),  # the authors' filtered file
        ),
        default_kcore=RAW_DEFAULT_KCORE,
        folder="steam",
        downloads=(
            Download(("http://cseweb.ucsd.edu/~wckang/steam_reviews.json.gz",), "steam_reviews.json.gz"),
            Download(("http://cseweb.ucsd.edu/~wckang/steam_games.json.gz",), "steam_games.json.gz"),
        ),
        homepage="https://github.com/kang205/SASRec",
    )


def _video_sasrec() -> DatasetRecipe:
    return DatasetRecipe(
        name="amazon-video-games-sasrec",
        description="Amazon Video Games 5-core as preprocessed by the SASRec authors (Video.txt)",
        layouts=(
            Layout(read_sasrec, "amazon-video-games/Video.txt", timestamps=False),
            Layout(read_sasrec, "amazon-video-games-sasrec/Video.txt", timestamps=False),
        ),
        default_kcore=0,  # already filtered by the authors: 31,013 users, 23,715 items
        folder="amazon-video-games",
        downloads=(
            Download(
                ("https://raw.githubusercontent.com/kang205/SASRec/master/data/Video.txt",),
                "Video.txt",
                # measured on a copy of the authors' file
                sha256="b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651",
            ),
        ),
        homepage="https://github.com/kang205/SASRec",
    )


def _build_datasets() -> dict[str, DatasetRecipe]:
    datasets: dict[str, DatasetRecipe] = {
        "synthetic": DatasetRecipe(
            "synthetic",
            "embedded generator (seqrec.data.synthetic), configured by data.synthetic",
            (),
            default_kcore=RAW_DEFAULT_KCORE,
        ),
        "ml-100k": _movielens(
            "ml-100k",
            "0e33842e24a9c977be4e0107933c0723",
            ("u.data", "u.item"),
            read_ml100k,
            "ml-100k",
            "MovieLens 100K (GroupLens): 100,000 ratings, 943 users, 1,682 movies",
            0,  # every user has >= 20 ratings; the recipes and the seed grid use all 1,682 movies
        ),
        "ml-1m": _ml1m(),
        "ml-10m": _movielens(
            "ml-10m",
            "ce571fd55effeba0271552578f2648bd",
            ("ratings.dat", "movies.dat"),
            read_ml_dat,
            "ml-10M100K",
            "MovieLens 10M (GroupLens): 10,000,054 ratings, 69,878 users, 10,677 movies",
            RAW_DEFAULT_KCORE,
        ),
        "ml-20m": _movielens(
            "ml-20m",
            "cd245b17a1ae2cc31bb14903e1204af3",
            ("ratings.csv", "movies.csv"),
            read_ml_csv,
            "ml-20m",
            "MovieLens 20M (GroupLens): 20,000,263 ratings, 138,493 users, 26,744 movies",
            RAW_DEFAULT_KCORE,
        ),
        "steam": _steam(),
        "amazon-video-games-sasrec": _video_sasrec(),
        "amazon-scientific-2018": _lcrec(
            "amazon-scientific-2018",
            "Scientific",
            "Amazon 2018 Industrial and Scientific 5-core in the LC-Rec JSON layout (Recformer / UniSRec "
            "'Scientific'): 58,492 interactions, 8,317 users, 4,344 items, item text",
        ),
        "amazon-office-2014": _lcrec(
            "amazon-office-2014",
            "Office",
            "Amazon 2014 Office Products 5-core in the LC-Rec JSON layout: 53,258 interactions, 4,905 users, "
            "2,420 items, item text",
        ),
    }
    for category in AMAZON_2018_CATEGORIES:
        datasets[f"amazon-{category}"] = _amazon(category)
    return datasets


DATASETS: dict[str, DatasetRecipe] = _build_datasets()


def find_local(recipe: DatasetRecipe, data_dir: Path) -> tuple[Layout, Path, Path | None] | None:
    """The first layout of ``recipe`` present under ``data_dir``: (layout, main file, side file or None)."""
    for layout in recipe.layouts:
        main = data_dir / layout.main
        if main.is_file():
            side = data_dir / layout.side if layout.side else None
            return layout, main, side if side is not None and side.is_file() else None
    return None


def layout_files(layout: Layout, main: Path, side: Path | None, data_dir: Path) -> list[Path]:
    """Every file a layout reads that exists (main, side, extra): what the cache identity hashes."""
    extra = [data_dir / p for p in layout.extra]
    return [main] + ([side] if side is not None else []) + [p for p in extra if p.is_file()]
