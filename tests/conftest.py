"""Test configuration: f64 enabled (oracle comparisons at ~1e-12), Hypothesis profiles.

Profiles (select with ``JCNN_HYPOTHESIS_PROFILE``):

* ``ci`` (default): 100 examples per property (a quarter for the second-order ones),
  derandomized, no deadline, no database: the suite fits CI's 2 cores.
* ``thorough``: 2,000 examples per property, random seeds.
* ``dev``: 25 examples, for quick local iteration.
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
# Properties jit one function per drawn shape; XLA's optimisation passes would
# dominate the run time without changing any result the tests look at.
jax.config.update("jax_disable_most_optimizations", True)

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, **_common)
settings.register_profile("thorough", max_examples=2000, **_common)
settings.register_profile("dev", max_examples=25, derandomize=True, database=None, **_common)
settings.load_profile(os.environ.get("JCNN_HYPOTHESIS_PROFILE", "ci"))
