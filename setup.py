"""Builds the optional C kernels (udfs/_rules.c, udfs/_lid.c). Everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and udfs.kernels runs the
pure-Python definitions (same decisions, slower)."""

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so udfs/_lid.c's float arithmetic is fastText's, bit for bit
FLAGS = ["-O2", "-ffp-contract=off"]
setup(ext_modules=[Extension("udfs._rules", ["udfs/_rules.c"], optional=True, extra_compile_args=FLAGS),
                   Extension("udfs._lid", ["udfs/_lid.c"], optional=True, extra_compile_args=FLAGS)])
