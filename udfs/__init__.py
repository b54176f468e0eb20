"""Per-document logic: plain Python on bytes, strings and numpy arrays. No Spark imports here.

Everything in this package can be tested with literals and reused outside Spark (benchmarks, notebooks).
"""
