"""The tests' oracles live in ``benchmarks/oracles.py`` (lax and plain-JAX
references, shared with the benchmarks); test modules import them from here."""

from benchmarks.oracles import *  # noqa: F401,F403
from benchmarks.oracles import __all__  # noqa: F401
