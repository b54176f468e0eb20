"""The registered dedup methods (``base`` says how to add one): importing a method's module registers
it, so a new method is its file plus its name in the import line below."""

from jobs.dedup.methods import exact, minhash, paragraph, url  # noqa: F401  (registration)
from jobs.dedup.methods.base import (  # noqa: F401
    METHODS,
    KeepConfig,
    Method,
    StepConfig,
    StepContext,
    StepResult,
    method_for,
    register,
    step_type,
)
