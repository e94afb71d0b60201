
from seqrec.data.sequences import Sequences
from seqrec.data.windows import gather_windows, window_index


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
