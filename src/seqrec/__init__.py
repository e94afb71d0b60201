"""seqrec: sequential recommenders that are fast, lean and evaluated correctly."""

__version__ = "0.1.0"
