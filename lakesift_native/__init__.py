"""Compiled kernels (C, built by ``pip install .`` / ``make setup``), used through :mod:`udfs.kernels`.

* ``_rules``: word counts, Gopher n-gram repetition and line-share modifiers of :mod:`udfs.steps`;
* ``_lid``: fastText language-ID inference with a per-word cache (same predictions as fastText).

A package of its own, outside the code zip that ``--py-files`` / ``addPyFile`` ship (a zip cannot hold
importable extension modules): install the project on a cluster's nodes and the executors find the
kernels here while the code comes from the zip. Without them everything runs in pure Python.
"""
