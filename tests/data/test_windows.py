
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec.data.sequences import Sequences
from seqrec.data.windows import gather_windows, length_grouped_batches, trim_leading_padding, window_index


def test_every_position_is_a_target_once():
    seqs = Sequences.from_lists([list(range(1, 12)), [5], [7, 8], list(range(20, 24))])
    L = 4
    rows, ends = window_index(seqs, L)
    w = gather_windows(seqs, rows, ends, L)
    targets = []
    for r, win in zip(rows, w, strict=True):
        inp, tgt = win[:-1], win[1:]
        targets += [(int(r), int(t)) for i, t in zip(inp, tgt, strict=True) if i != 0]
    expected = [(r, int(x)) for r in range(len(seqs)) for x in seqs[r][1:]]
    assert sorted(targets) == sorted(expected)
    assert len(targets) == len(set(targets))
    assert w.shape[1] == L + 1


def test_stride_one_gives_one_window_per_target_ending_at_it():
    """Models that predict only a window's newest item (Recformer) cut one window per target position: the
    window ends at its target, holds the max_len items before it, and every target appears exactly once."""
    seqs = Sequences.from_lists([list(range(1, 12)), [5], [7, 8], list(range(20, 24))])
    L = 4
    rows, ends = window_index(seqs, L, stride=1)
    w = gather_windows(seqs, rows, ends, L)
    got = [(int(r), int(win[-1]), [int(x) for x in win[:-1] if x]) for r, win in zip(rows, w, strict=True)]
    expected = [(r, int(s[t]), [int(x) for x in s[max(0, t - L) : t]])
                for r in range(len(seqs)) for s in [seqs[r]] for t in range(len(s) - 1, 0, -1)]
    assert got == expected
    default = window_index(seqs, L)
    same = window_index(seqs, L, stride=L)
    assert all((a == b).all() for a, b in zip(default, same, strict=True))


def test_trim_leading_padding_keeps_every_real_column_and_one_spare():
    batch = np.array([[0, 0, 0, 4, 5], [0, 0, 7, 8, 9], [0, 0, 0, 0, 3]])
    assert trim_leading_padding(batch).tolist() == [[0, 0, 4, 5], [0, 7, 8, 9], [0, 0, 0, 3]]
    assert trim_leading_padding(batch, spare=0).tolist() == [[0, 4, 5], [7, 8, 9], [0, 0, 3]]
    assert trim_leading_padding(batch[:, 2:]).shape == (3, 3)  # nothing to cut
    assert trim_leading_padding(np.zeros((2, 5), dtype=np.int64)).shape == (2, 1)
    as_tensor = trim_leading_padding(torch.from_numpy(batch))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.tolist() == trim_leading_padding(batch).tolist()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), batch_size=st.integers(1, 17), group=st.integers(0, 6), seed=st.integers(0, 10**6))
def test_length_grouped_batches_partition_the_permutation(n, batch_size, group, seed):
    """Every window id lands in exactly one batch; group 0 is plain slicing; group G sorts each run of
    G * batch_size ids (longest first), and only the epoch's last batch may be short."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    lengths = rng.integers(1, 9, n)
    batches = length_grouped_batches(order, lengths, batch_size, group, np.random.default_rng(seed + 1))
    flat = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(n))
    assert all(len(b) == batch_size for b in batches[:-1])
    if group == 0:
        assert flat.tolist() == order.tolist()
        return
    run = group * batch_size
    for b in batches:  # a batch never spans two runs, and is sorted longest first
        assert len({int(np.flatnonzero(order == i)[0]) // run for i in b}) == 1
        assert (np.diff(lengths[b]) <= 0).all()


def test_length_grouping_reduces_padding_on_skewed_lengths():
    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(1 / 60, 5000), 201)  # ML-1M-like: many short, a capped long tail
    order = rng.permutation(5000)
    width = {g: sum(int(lengths[b].max()) * len(b) for b in length_grouped_batches(order, lengths, 32, g, rng))
             for g in (0, 50)}
    assert width[50] < 0.6 * width[0]
