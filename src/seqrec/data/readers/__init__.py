"""Readers, one module per file format; each returns :data:`~seqrec.data.readers.common.Frames`.

``delimited`` (CSV/TSV, optionally gzip, and Parquet), ``atomic`` (RecBole), ``movielens`` (GroupLens layouts and
the SASRec authors' ``ml-1m.txt``), ``sasrec_text`` (``user item`` lines), ``amazon`` (2014/2018 reviews + meta),
``lcrec`` (LC-Rec JSON), ``steam`` (Kang & McAuley). ``common`` holds the shared contract and helpers. Which
reader a named dataset uses is in :mod:`seqrec.data.datasets`; explicit files are dispatched by
:mod:`seqrec.data.files`.
"""
