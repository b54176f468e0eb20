"""Builds the optional C kernels (lakesift_native/_rules.c, _lid.c). Everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and udfs.kernels runs the
pure-Python definitions (same decisions, slower)."""

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so _lid.c's float arithmetic is fastText's, bit for bit
FLAGS = ["-O2", "-ffp-contract=off"]
setup(ext_modules=[Extension("lakesift_native._rules", ["lakesift_native/_rules.c"], optional=True, extra_compile_args=FLAGS),
                   Extension("lakesift_native._lid", ["lakesift_native/_lid.c"], optional=True, extra_compile_args=FLAGS)])
