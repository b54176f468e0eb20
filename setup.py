"""Builds the optional C kernels (udfs/_rules.c). Everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and udfs.kernels runs the
pure-Python definitions (same decisions, slower)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("udfs._rules", ["udfs/_rules.c"], optional=True, extra_compile_args=["-O2"])])
