
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
