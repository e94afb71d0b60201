"""Synthetic sequential interactions: the embedded default dataset (no download, deterministic by seed).

The generator is built so that order matters, i.e. a sequential model can beat popularity:

* items have a Zipf popularity (``p ∝ rank ** -popularity_exponent``, ranks randomly permuted) and belong to
  one of ``num_topics`` topics (clusters);
* every user has a main and a secondary topic (latent taste);
* every item has ``K = 4`` successors drawn from its own topic by popularity; with probability
  ``transition_strength`` the next item is one of the previous item's successors (probabilities
  0.55/0.25/0.12/0.08), otherwise it is drawn by popularity from the user's main topic (75%), secondary
  topic (20%) or any topic (5%);
* a user never gets the same item twice (as in MovieLens): an already-seen item is redrawn up to 3 times from
  the user's topics, then once uniformly; a draw still seen is skipped, so a few users end slightly shorter;
* except by a deliberate repeat (``repeat_prob`` > 0, e.g. music or grocery logs): with that probability the next
  item is re-consumed from the user's own history, the previous item with probability 0.6, else one of the
  last 5 items uniformly (the previous one included). With ``repeat_prob == 0`` no extra random number is drawn,
  so the output is exactly that of the generator before the option existed;
* sequence lengths are ``min_length + Geometric`` with mean ``mean_length`` (capped at 20x the mean);
  timestamps increase per user (start uniform over ~3 years, exponential gaps averaging one day);
* items get text attributes (title, category, brand, description) composed from word lists, for text models.

Everything is vectorised over users (one numpy step per sequence position, users in chunks bounded by a 32 MiB
seen-item table), so 100k users x 50 interactions take a few seconds. Original ids are the integers
``1..num_users`` and ``1..num_items``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from seqrec.config import SyntheticConfig

SUCCESSOR_PROBS = np.array([0.55, 0.25, 0.12, 0.08])
MAX_RETRIES = 3  # redraws from the user's topics when an item was already seen
SEEN_TABLE_BYTES = 1 << 25  # per-chunk seen-item table (users x items booleans)
START_TIME = 1_500_000_000  # 2017-07-14, unix seconds
TIME_SPAN = 3 * 365 * 86_400
MEAN_GAP = 86_400
REPEAT_PREVIOUS = 0.6  # a repeat re-consumes the previous item with this probability ...
REPEAT_WINDOW = 5  # ... else one of the last REPEAT_WINDOW items uniformly

_CATEGORIES = [
    "Outdoor Gear", "Kitchen Tools", "Board Games", "Science Fiction", "Jazz Records", "Garden Supplies",
    "Running Shoes", "Art Materials", "Office Furniture", "Pet Care", "Video Games", "Travel Bags",
    "Home Audio", "Baking", "Cycling", "Photography", "Yoga", "Mystery Novels", "Craft Beer", "Camping Food",
]  # fmt: skip
_BRANDS = [
    "Acme", "Northwind", "Bluepeak", "Stellar", "Oakridge", "Nimbus", "Redfox", "Silverline", "Evergreen",
    "Quantum", "Harbor", "Summit",
    "Lumen", "Granite", "Willow", "Vertex", "Cobalt", "Maple", "Orion", "Falcon",
]  # fmt: skip
_ADJECTIVES = [
    "Classic", "Compact", "Deluxe", "Essential", "Lightweight", "Premium", "Rugged", "Smart", "Vintage",
    "Ultra", "Portable", "Advanced", "Eco", "Pro", "Mini", "Grand", "Swift", "Silent", "Bright", "Bold",
]  # fmt: skip
_NOUNS = [
    "Kit", "Set", "Edition", "Collection", "Pack", "Bundle", "Series", "Box", "Guide", "Model", "Station",
    "Toolkit", "Organizer", "Companion", "Starter", "Classic", "Deck", "Case", "Volume", "System",
]  # fmt: skip
_AUDIENCES = [
    "beginners", "professionals", "families", "weekend hobbyists", "collectors", "students", "travellers",
    "enthusiasts", "small spaces", "everyday use",
]  # fmt: skip
_FEATURES = [
    "Built to last", "Easy to clean", "Ships ready to use", "Includes a quick-start card",
    "Award-winning design",
    "Made from recycled materials", "Backed by a two-year warranty", "Fits in any bag", "Quiet and efficient",
    "Designed with experts",
]  # fmt: skip


def _topic_sampler(topic: np.ndarray, pop: np.ndarray, num_topics: int) -> tuple[np.ndarray, np.ndarray]:
    """Items sorted by topic and a key whose values in topic t lie in (t, t+1] (cumulative within-topic mass).

    ``order[searchsorted(key, t + u, side="right")]`` draws an item of topic t by popularity for u ~ U[0, 1).
    """
    order = np.lexsort((np.arange(len(topic)), topic))
    t_sorted = topic[order]
    mass = np.bincount(topic, weights=pop, minlength=num_topics)
    within = pop[order] / mass[t_sorted]
    csum = np.cumsum(within)
    starts = np.searchsorted(t_sorted, np.arange(num_topics), side="left")
    base = np.concatenate([[0.0], csum])[starts]  # cumulative mass before each topic
    key = t_sorted + (csum - base[t_sorted])
    ends = np.searchsorted(t_sorted, np.arange(num_topics), side="right") - 1
    key[ends] = np.arange(num_topics) + 1.0  # exact upper bound (no float drift)
    return order, key


def _draw(order: np.ndarray, key: np.ndarray, topics: np.ndarray, u: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(key, topics + u, side="right")
    return order[np.minimum(idx, len(order) - 1)]


def _lengths(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    extra_mean = cfg.mean_length - cfg.min_length
    if extra_mean <= 0:
        return np.full(cfg.num_users, cfg.min_length, dtype=np.int64)
    extra = rng.geometric(1.0 / (extra_mean + 1.0), size=cfg.num_users) - 1
    cap = max(cfg.min_length, int(20 * cfg.mean_length))
    return np.minimum(cfg.min_length + extra, cap).astype(np.int64)


def _repeat_items(rng: np.random.Generator, values: np.ndarray, starts: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """One item per user from its own recent history (``fill`` >= 1 items written from ``starts``), see module doc."""
    window = np.minimum(fill, REPEAT_WINDOW)
    back = np.where(
        rng.random(len(fill)) < REPEAT_PREVIOUS, 0, (rng.random(len(fill)) * window).astype(np.int64)
    )  # 0 = the previous item
    return values[starts + fill - 1 - np.minimum(back, window - 1)]


def generate_arrays(cfg: SyntheticConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(users, items, times, item_info): flat arrays grouped by user, 0-based user and item indices.

    ``item_info`` holds ``topic`` and ``popularity``.
    """
    # Over 80 lines on purpose: one loop of vectorised steps whose random draws must keep exactly this order
    # (tests/data/test_data_synthetic.py pins the output); helpers would thread a dozen arrays through calls.
    rng = np.random.default_rng(seed)
    n_items, n_users, n_topics = cfg.num_items, cfg.num_users, cfg.num_topics
    ranks = rng.permutation(n_items) + 1
    pop = ranks.astype(np.float64) ** (-cfg.popularity_exponent)
    pop /= pop.sum()
    topic = rng.permutation(np.arange(n_items) % n_topics)  # every topic non-empty when n_topics <= n_items
    n_topics_eff = int(topic.max()) + 1
    order, key = _topic_sampler(topic, pop, n_topics_eff)

    K = len(SUCCESSOR_PROBS)
    succ, succ_cdf = _successors(rng, order, key, topic)

    main = rng.integers(0, n_topics_eff, n_users)
    second = rng.integers(0, n_topics_eff, n_users)
    lengths = _lengths(rng, cfg)

    # Users sorted by length (descending) and processed in chunks; inside a chunk the active users at step t
    # are a prefix, and a (chunk, n_items) table of seen items keeps every user's items distinct.
    by_len = np.argsort(-lengths, kind="stable")
    len_sorted = lengths[by_len]
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(len_sorted, out=offsets[1:])
    values = np.full(int(offsets[-1]), -1, dtype=np.int64)
    main_s, second_s = main[by_len], second[by_len]
    chunk = max(1, min(n_users, SEEN_TABLE_BYTES // n_items))
    seen = np.zeros(chunk * n_items, dtype=bool)  # flat (chunk, n_items) table: row * n_items + item
    fill = np.zeros(n_users, dtype=np.int64)  # items written so far per user

    for c0 in range(0, n_users, chunk):
        c1 = min(n_users, c0 + chunk)
        clen = len_sorted[c0:c1]
        active_counts = np.searchsorted(-clen, -np.arange(int(clen[0])), side="left")
        for t in range(int(clen[0])):
            a = int(active_counts[t])
            base = np.arange(a, dtype=np.int64) * n_items  # seen-table row offsets of the active users
            users_t = c0 + np.arange(a)
            r = rng.random(a)
            topics = np.where(
                r < 0.75,
                main_s[users_t],
                np.where(r < 0.95, second_s[users_t], rng.integers(0, n_topics_eff, a)),
            )
            if t > 0:
                has_prev = fill[users_t] > 0
                prev = values[np.maximum(offsets[users_t] + fill[users_t] - 1, 0)]
                k = np.minimum(np.searchsorted(succ_cdf, rng.random(a), side="right"), K - 1)
                use = has_prev & (rng.random(a) < cfg.transition_strength)
                cand = succ[prev, k]
                draw = np.flatnonzero(~use)  # only these need a draw from the user's topics
                cand[draw] = _draw(order, key, topics[draw], rng.random(len(draw)))
            else:
                cand = _draw(order, key, topics, rng.random(a))
            repeat = np.zeros(a, dtype=bool)  # users re-consuming a history item: exempt from the seen check
            if cfg.repeat_prob > 0 and t > 0:  # guarded: repeat_prob == 0 draws nothing (pinned output)
                repeat = (fill[users_t] > 0) & (rng.random(a) < cfg.repeat_prob)
                cand[repeat] = _repeat_items(rng, values, offsets[users_t[repeat]], fill[users_t[repeat]])
            for attempt in range(MAX_RETRIES + 1):
                clash = np.flatnonzero(seen[base + cand] & ~repeat)
                if len(clash) == 0:
                    break
                if attempt < MAX_RETRIES:
                    cand[clash] = _draw(order, key, topics[clash], rng.random(len(clash)))
                else:
                    cand[clash] = rng.integers(0, n_items, len(clash))  # last resort: any item
            ok = ~seen[base + cand] | repeat
            base, users_t, cand = base[ok], users_t[ok], cand[ok]
            seen[base + cand] = True
            values[offsets[users_t] + fill[users_t]] = cand
            fill[users_t] += 1
        seg = values[offsets[c0] : offsets[c1]]  # clear only the bits that were set
        set_rows = np.repeat(np.arange(c1 - c0, dtype=np.int64), clen)
        seen[set_rows[seg >= 0] * n_items + seg[seg >= 0]] = False

    keep = values >= 0
    values = values[keep]
    len_sorted = fill
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(len_sorted, out=offsets[1:])

    user_sorted = np.repeat(np.arange(n_users), len_sorted)
    times = _timestamps(rng, offsets, user_sorted)
    users = by_len[user_sorted]  # back to the original user index
    return users, values, times, {"topic": topic, "popularity": pop}


def _successors(
    rng: np.random.Generator, order: np.ndarray, key: np.ndarray, topic: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(n_items, K) successor table: K items of the same topic drawn by popularity, self-loops redrawn once;
    and the CDF of SUCCESSOR_PROBS to pick a column."""
    n_items, K = len(topic), len(SUCCESSOR_PROBS)
    succ = _draw(order, key, np.repeat(topic, K), rng.random(n_items * K)).reshape(n_items, K)
    self_loop = succ == np.arange(n_items)[:, None]
    redraw = _draw(
        order, key, np.repeat(topic, K).reshape(n_items, K)[self_loop], rng.random(self_loop.sum())
    )
    succ[self_loop] = redraw
    succ_cdf = np.cumsum(SUCCESSOR_PROBS)
    succ_cdf[-1] = 1.0
    return succ, succ_cdf


def _timestamps(rng: np.random.Generator, offsets: np.ndarray, user_sorted: np.ndarray) -> np.ndarray:
    """Increasing times per user: a random start, then exponential gaps (>= 1 s) between interactions."""
    n_users = len(offsets) - 1
    gaps = rng.exponential(MEAN_GAP, size=len(user_sorted)).astype(np.int64) + 1
    starts = START_TIME + rng.integers(0, TIME_SPAN, n_users)
    csum = np.cumsum(gaps)
    first = np.concatenate([[0], csum])[offsets[:-1]]  # cumulative gap before each user's first interaction
    return starts[user_sorted] + (csum - first[user_sorted])


def _item_text(rng: np.random.Generator, topic: np.ndarray) -> dict[str, list[str]]:
    n = len(topic)
    n_topics = int(topic.max()) + 1 if n else 0
    categories = [_CATEGORIES[t % len(_CATEGORIES)] + (f" {t // len(_CATEGORIES) + 1}" if t >= 20 else "")
                  for t in range(n_topics)]  # fmt: skip
    topic_brands = rng.integers(0, len(_BRANDS), size=(max(n_topics, 1), 3))
    brand = topic_brands[topic, rng.integers(0, 3, n)]
    adj, adj2 = rng.integers(0, len(_ADJECTIVES), n), rng.integers(0, len(_ADJECTIVES), n)
    noun = rng.integers(0, len(_NOUNS), n)
    audience, feature = rng.integers(0, len(_AUDIENCES), n), rng.integers(0, len(_FEATURES), n)
    model = rng.integers(100, 1000, n)
    titles, descs, brands, cats = [], [], [], []
    for i in range(n):
        b, c = _BRANDS[brand[i]], categories[topic[i]]
        titles.append(f"{b} {_ADJECTIVES[adj[i]]} {c.split()[-1]} {_NOUNS[noun[i]]} {model[i]}")
        descs.append(
            f"A {_ADJECTIVES[adj2[i]].lower()} {_NOUNS[noun[i]].lower()} from {b} for "
            f"{_AUDIENCES[audience[i]]} who love {c.lower()}. {_FEATURES[feature[i]]}."
        )
        brands.append(b)
        cats.append(c)
    return {"title": titles, "category": cats, "brand": brands, "description": descs}


def generate(cfg: SyntheticConfig, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(interactions, item_features): the raw tables a reader would return (string ids, see module doc)."""
    users, items, times, info = generate_arrays(cfg, seed)
    # integer ids (1-based); preprocessing turns the retained ones into strings, which is much cheaper
    inter = pl.DataFrame({"user": users + 1, "item": items + 1, "timestamp": times.astype(np.int64)})
    text = _item_text(np.random.default_rng([seed, 1]), info["topic"])
    features = pl.DataFrame({"item": [str(i + 1) for i in range(cfg.num_items)], **text})
    return inter, features
